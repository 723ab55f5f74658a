//! The shell's command table: each command the prompt accepts, a one-line
//! description for `help`, and whether its arguments name remote or local
//! paths (what Tab completes). Shared by [`super::shell`] and
//! [`super::completion`]; it runs nothing.

/// What a command's arguments name.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Arguments {
    /// Paths on the server.
    Remote,
    /// Paths on this machine.
    Local,
    /// Nothing Tab can complete.
    Other,
}

/// One command of the shell.
#[derive(Debug, Clone, Copy)]
pub struct ShellCommand {
    /// What is typed.
    pub name: &'static str,
    /// Its arguments, as `help` shows them.
    pub usage: &'static str,
    /// One line saying what it does.
    pub summary: &'static str,
    /// What Tab completes in its arguments.
    pub arguments: Arguments,
}

const fn command(
    name: &'static str,
    usage: &'static str,
    summary: &'static str,
    arguments: Arguments,
) -> ShellCommand {
    ShellCommand {
        name,
        usage,
        summary,
        arguments,
    }
}

/// Every command of the shell, in the order `help` lists them.
pub const COMMANDS: &[ShellCommand] = &[
    command(
        "ls",
        "[-l] [-a] [-R] [PATH...]",
        "list remote files",
        Arguments::Remote,
    ),
    command(
        "cd",
        "[DIR]",
        "change the remote directory",
        Arguments::Remote,
    ),
    command("pwd", "", "print the remote directory", Arguments::Other),
    command(
        "mkdir",
        "[-p] DIR...",
        "create remote directories",
        Arguments::Remote,
    ),
    command(
        "rm",
        "[-r] [-f] PATH...",
        "remove remote files",
        Arguments::Remote,
    ),
    command(
        "mv",
        "FROM TO",
        "rename or move a remote file",
        Arguments::Remote,
    ),
    command(
        "put",
        "[-r] LOCAL... [REMOTE]",
        "upload files",
        Arguments::Local,
    ),
    command(
        "get",
        "[-r] REMOTE... [LOCAL]",
        "download files",
        Arguments::Remote,
    ),
    command(
        "sync",
        "[--pull] SOURCE DEST",
        "mirror a directory",
        Arguments::Local,
    ),
    command(
        "df",
        "",
        "show the quota and what is used",
        Arguments::Other,
    ),
    command(
        "whoami",
        "",
        "show the user and the server",
        Arguments::Other,
    ),
    command(
        "lcd",
        "[DIR]",
        "change the local directory",
        Arguments::Local,
    ),
    command(
        "lls",
        "[ARGS...]",
        "list local files (runs ls)",
        Arguments::Local,
    ),
    command("lpwd", "", "print the local directory", Arguments::Other),
    command("!", "CMD", "run CMD in a local shell", Arguments::Local),
    command(
        "help",
        "",
        "this list (`COMMAND --help` for one command)",
        Arguments::Other,
    ),
    command(
        "exit",
        "",
        "leave the shell (also quit, bye, Ctrl-D)",
        Arguments::Other,
    ),
];

/// The command called `name`.
pub fn find(name: &str) -> Option<&'static ShellCommand> {
    COMMANDS.iter().find(|command| command.name == name)
}

/// The text of `help`: one line per command.
pub fn help_text() -> String {
    let width = COMMANDS
        .iter()
        .map(|command| command.name.len() + 1 + command.usage.len())
        .max()
        .unwrap_or(0);
    let mut text = String::from("Commands:\n");
    for command in COMMANDS {
        let call = if command.usage.is_empty() {
            command.name.to_owned()
        } else {
            format!("{} {}", command.name, command.usage)
        };
        text.push_str(&format!("  {call:<width$}  {}\n", command.summary));
    }
    text
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn help_has_one_line_per_command() {
        let help = help_text();
        assert_eq!(help.lines().count(), COMMANDS.len() + 1);
        for name in ["lcd", "lls", "lpwd", "!", "put", "get", "exit"] {
            assert!(
                help.lines().any(|line| line.trim_start().starts_with(name)),
                "{name} missing from {help}"
            );
        }
    }

    #[test]
    fn arguments_say_where_paths_live() {
        assert_eq!(find("get").map(|c| c.arguments), Some(Arguments::Remote));
        assert_eq!(find("lcd").map(|c| c.arguments), Some(Arguments::Local));
        assert!(find("nonsense").is_none());
    }
}
