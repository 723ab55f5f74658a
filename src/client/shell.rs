//! `qftp shell`: an interactive prompt over one connection, with line
//! editing and history, accepting the same commands as the command line
//! (`ls`, `cd`, `put`, ...), plus the local commands of [`super::local`]
//! (`lcd`, `lls`, `lpwd`, `!CMD`), `help` (the table of
//! [`super::shell_commands`]) and `exit`.

use std::process::ExitCode;

use clap::Parser as _;
use rustyline::error::ReadlineError;

use super::cli::{Cli, Command};
use super::commands::execute;
use super::completion::ShellHelper;
use super::local::LocalCommand;
use super::session::Session;
use super::shell_commands::help_text;

/// The history file's name in the config directory.
const HISTORY_FILE: &str = "history";

/// Splits a command line into words, honouring single and double quotes
/// and backslash escapes.
pub fn split_words(line: &str) -> Result<Vec<String>, String> {
    let mut words = Vec::new();
    let mut current = String::new();
    let mut in_word = false;
    let mut quote: Option<char> = None;
    let mut characters = line.chars();
    while let Some(character) = characters.next() {
        match (quote, character) {
            (Some(open), c) if c == open => quote = None,
            (Some('"') | None, '\\') => {
                let escaped = characters.next().ok_or("a backslash ends the line")?;
                current.push(escaped);
                in_word = true;
            }
            (Some(_), c) => current.push(c),
            (None, '\'' | '"') => {
                quote = Some(character);
                in_word = true;
            }
            (None, c) if c.is_whitespace() => {
                if in_word {
                    words.push(std::mem::take(&mut current));
                    in_word = false;
                }
            }
            (None, c) => {
                current.push(c);
                in_word = true;
            }
        }
    }
    if quote.is_some() {
        return Err("unclosed quote".into());
    }
    if in_word {
        words.push(current);
    }
    Ok(words)
}

/// Runs the prompt until `exit`, `quit` or end of input.
pub fn run(runtime: &tokio::runtime::Runtime, session: &mut Session) -> anyhow::Result<ExitCode> {
    let mut editor: rustyline::Editor<ShellHelper, rustyline::history::DefaultHistory> =
        rustyline::Editor::new()?;
    editor.set_helper(Some(ShellHelper::new(
        runtime.handle().clone(),
        session.client.clone(),
        session.cwd.clone(),
    )));
    let history = session.config.join(HISTORY_FILE);
    let _ = editor.load_history(&history);
    println!(
        "connected to {} as {}; type `help` for commands, `exit` to leave",
        session.saved.server, session.saved.user
    );
    loop {
        if let Some(helper) = editor.helper_mut() {
            helper.follow(&session.client, &session.cwd);
        }
        let prompt = format!("qftp {}:{}> ", session.saved.user, session.cwd);
        let line = match editor.readline(&prompt) {
            Ok(line) => line,
            Err(ReadlineError::Interrupted) => continue,
            Err(ReadlineError::Eof) => break,
            Err(error) => return Err(error.into()),
        };
        if line.trim_start().starts_with('!') {
            let _ = editor.add_history_entry(line.as_str());
            if let Some(local) = LocalCommand::recognise(&line, &[])
                && let Err(error) = local.run()
            {
                eprintln!("qftp: {error:#}");
            }
            continue;
        }
        let words = match split_words(&line) {
            Ok(words) => words,
            Err(error) => {
                eprintln!("qftp: {error}");
                continue;
            }
        };
        let Some(first) = words.first().cloned() else {
            continue;
        };
        let _ = editor.add_history_entry(line.as_str());
        match first.as_str() {
            "exit" | "quit" | "bye" => break,
            "help" | "?" if words.len() == 1 => {
                print!("{}", help_text());
                continue;
            }
            "help" | "?" => {
                // `help put` is `put --help`.
                let _ = Cli::try_parse_from(["qftp", words[1].as_str(), "--help"])
                    .map_err(|help| help.print());
                continue;
            }
            _ => {}
        }
        if let Some(local) = LocalCommand::recognise(&line, &words) {
            if let Err(error) = local.run() {
                eprintln!("qftp: {error:#}");
            }
            continue;
        }
        let arguments = std::iter::once("qftp".to_owned()).chain(words);
        let command = match Cli::try_parse_from(arguments) {
            Ok(cli) => cli.into_command(),
            Err(error) => {
                let _ = error.print();
                continue;
            }
        };
        if matches!(
            command,
            Command::Shell | Command::Login(_) | Command::Logout | Command::Completions { .. }
        ) {
            eprintln!("qftp: {first} is not available inside the shell");
            continue;
        }
        let changes_files = matches!(
            command,
            Command::Mkdir { .. }
                | Command::Rm { .. }
                | Command::Mv { .. }
                | Command::Put { .. }
                | Command::Sync(_)
        );
        if let Err(error) = runtime.block_on(execute(session, command)) {
            eprintln!("qftp: error: {error}");
        }
        if changes_files && let Some(helper) = editor.helper_mut() {
            helper.forget_listings();
        }
    }
    let _ = editor.save_history(&history);
    Ok(ExitCode::SUCCESS)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn words_are_split_like_a_shell() {
        assert_eq!(split_words("ls -l").unwrap(), ["ls", "-l"]);
        assert_eq!(
            split_words("put 'my file.txt' \"照片 2024\"").unwrap(),
            ["put", "my file.txt", "照片 2024"]
        );
        assert_eq!(split_words(r"cd a\ b").unwrap(), ["cd", "a b"]);
        assert_eq!(split_words("put ''").unwrap(), ["put", ""]);
        assert!(split_words("ls 'open").is_err());
        assert!(split_words("  ").unwrap().is_empty());
    }
}
