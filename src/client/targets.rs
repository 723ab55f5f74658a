//! Which server a command talks to: remote arguments may name their server
//! in front, scp-style (`box:/d/`, `alice@host:notes`,
//! `qftp://alice@host:4501/d`; see [`qftp_client::address`]). The server
//! part is taken off here, so the commands see plain remote paths, and
//! the program connects with that server's saved session.

use qftp_client::address::Target;

use super::cli::Command;

/// Takes the server off every remote argument of `command`; the server
/// they name (all must name the same one), or `None` for the default
/// session.
pub fn take_server(command: &mut Command) -> anyhow::Result<Option<String>> {
    let mut server: Option<String> = None;
    for argument in remote_arguments(command) {
        let Target::Remote {
            server: named,
            path,
        } = Target::parse(argument)?
        else {
            continue;
        };
        match &server {
            Some(first) if *first != named => anyhow::bail!(
                "{first} and {named}: one command talks to one server (copying between two servers is not supported)"
            ),
            _ => server = Some(named),
        }
        *argument = path;
    }
    Ok(server)
}

/// The arguments of `command` that are remote paths.
fn remote_arguments(command: &mut Command) -> Vec<&mut String> {
    match command {
        Command::Put { paths, .. } if paths.len() >= 2 => paths.last_mut().into_iter().collect(),
        Command::Get { paths, .. } => {
            let sources = paths.len().saturating_sub(1).max(1);
            paths.iter_mut().take(sources).collect()
        }
        Command::Sync(args) => {
            if args.pull {
                vec![&mut args.source]
            } else {
                vec![&mut args.destination]
            }
        }
        Command::Ls(args) => args.paths.iter_mut().collect(),
        Command::Cd { path } => path.iter_mut().collect(),
        Command::Mkdir { paths, .. } | Command::Rm { paths, .. } => paths.iter_mut().collect(),
        Command::Mv { from, to } => vec![from, to],
        _ => Vec::new(),
    }
}

#[cfg(test)]
mod tests {
    use clap::Parser as _;

    use super::*;
    use crate::client::cli::Cli;

    fn command(words: &[&str]) -> Command {
        Cli::try_parse_from(std::iter::once("qftp").chain(words.iter().copied()))
            .unwrap()
            .command
    }

    #[test]
    fn the_server_comes_off_remote_arguments_only() {
        let mut put = command(&["put", "a:b.txt", "box:/d/"]);
        assert_eq!(take_server(&mut put).unwrap().as_deref(), Some("box"));
        let Command::Put { paths, .. } = put else {
            unreachable!()
        };
        assert_eq!(paths, ["a:b.txt", "/d/"]);

        let mut get = command(&["get", "qftp://bob@h:9/x", "bob@h:9:y", "out"]);
        assert!(take_server(&mut get).is_err());
        let mut get = command(&["get", "box:x", "box:y", "out"]);
        assert_eq!(take_server(&mut get).unwrap().as_deref(), Some("box"));

        let mut ls = command(&["ls", "-l", "/plain"]);
        assert_eq!(take_server(&mut ls).unwrap(), None);
        assert!(take_server(&mut command(&["ls", "a@@b:x"])).is_err());
    }
}
