//! The shell's local commands, which touch this machine and not the
//! server: `lcd DIR`, `lls [ARGS]`, `lpwd` and `!CMD`. `lls` and `!CMD` run
//! through `/bin/sh`, in the local current directory `lcd` sets (the
//! process's own, so `put` and `get` read and write there too).

use std::path::{Path, PathBuf};
use std::process::Command;

use anyhow::Context as _;

/// A line the shell runs locally, recognised from its words.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum LocalCommand {
    /// `lcd [DIR]`: change the local directory (home when omitted).
    Lcd(Option<String>),
    /// `lls [ARGS]`: `ls ARGS` on this machine.
    Lls(Vec<String>),
    /// `lpwd`: print the local directory.
    Lpwd,
    /// `!CMD`: the rest of the line run by `/bin/sh -c`.
    Shell(String),
}

impl LocalCommand {
    /// The local command `line` (split into `words`) names, if any.
    pub fn recognise(line: &str, words: &[String]) -> Option<Self> {
        if let Some(rest) = line.trim_start().strip_prefix('!') {
            return Some(Self::Shell(rest.trim().to_owned()));
        }
        let (first, rest) = words.split_first()?;
        match first.as_str() {
            "lcd" => Some(Self::Lcd(rest.first().cloned())),
            "lls" => Some(Self::Lls(rest.to_vec())),
            "lpwd" => Some(Self::Lpwd),
            _ => None,
        }
    }

    /// Runs the command; an error names the path or program involved.
    pub fn run(&self) -> anyhow::Result<()> {
        match self {
            Self::Lcd(directory) => {
                let target = match directory {
                    Some(directory) => PathBuf::from(directory),
                    None => std::env::var_os("HOME")
                        .map(PathBuf::from)
                        .context("lcd: no directory given and $HOME is not set")?,
                };
                change_directory(&target)
            }
            Self::Lls(arguments) => {
                let status = Command::new("ls")
                    .args(arguments)
                    .status()
                    .context("lls: could not run ls")?;
                if !status.success() {
                    anyhow::bail!("lls: ls failed ({status})");
                }
                Ok(())
            }
            Self::Lpwd => {
                let directory =
                    std::env::current_dir().context("lpwd: the local directory is unreadable")?;
                println!("{}", directory.display());
                Ok(())
            }
            Self::Shell(command) if command.is_empty() => {
                anyhow::bail!("!: give a command to run, e.g. `!ls -l`")
            }
            Self::Shell(command) => {
                let status = Command::new("/bin/sh")
                    .arg("-c")
                    .arg(command)
                    .status()
                    .context("!: could not run /bin/sh")?;
                if !status.success() {
                    eprintln!("qftp: !{command}: {status}");
                }
                Ok(())
            }
        }
    }
}

/// `lcd`: the process's current directory becomes `target`.
fn change_directory(target: &Path) -> anyhow::Result<()> {
    std::env::set_current_dir(target).map_err(|error| {
        let reason = match error.kind() {
            std::io::ErrorKind::NotFound => "no such directory".to_owned(),
            std::io::ErrorKind::NotADirectory => "not a directory".to_owned(),
            std::io::ErrorKind::PermissionDenied => "permission denied".to_owned(),
            _ => super::report::tidy(&error.to_string()),
        };
        anyhow::anyhow!("lcd: {}: {reason}", target.display())
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn words(line: &str) -> Vec<String> {
        line.split_whitespace().map(str::to_owned).collect()
    }

    #[test]
    fn local_commands_are_recognised() {
        let line = "lcd /tmp";
        assert_eq!(
            LocalCommand::recognise(line, &words(line)),
            Some(LocalCommand::Lcd(Some("/tmp".into())))
        );
        let line = "lls -l a";
        assert_eq!(
            LocalCommand::recognise(line, &words(line)),
            Some(LocalCommand::Lls(vec!["-l".into(), "a".into()]))
        );
        let line = " !echo 'a  b'";
        assert_eq!(
            LocalCommand::recognise(line, &[]),
            Some(LocalCommand::Shell("echo 'a  b'".into()))
        );
        let line = "ls -l";
        assert_eq!(LocalCommand::recognise(line, &words(line)), None);
    }
}
