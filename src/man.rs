//! The manual pages of both programs, made from their clap command tables
//! with `clap_mangen`: `qftp.1`, `qftp-server.1`, and one page per
//! subcommand (`qftp-put.1`, `qftp-server-user-add.1`, …).
//!
//! Each page has the sections clap_mangen renders (name, synopsis,
//! description, options, subcommands, version); the text after the help
//! (examples, and the blocks headed by a line such as `EXIT STATUS:`)
//! becomes sections of their own, and every page ends with the program's
//! EXIT STATUS, the same text its `--help` shows. `cargo run --example man
//! -- DIR` writes them (see the README).
//!
//! This module only renders; what the commands are is [`crate::client::cli`]'s
//! and [`crate::server`]'s.

use std::io::{self, Write as _};
use std::path::{Path, PathBuf};

use clap::CommandFactory as _;
use clap_mangen::Man;
use clap_mangen::roff::{Roff, roman};

/// Writes every page of both programs into `dir` (which must exist);
/// returns the files written.
pub fn write_pages(dir: &Path) -> io::Result<Vec<PathBuf>> {
    let mut written = Vec::new();
    let programs = [
        (
            crate::client::cli::Cli::command(),
            crate::client::exit::EXIT_STATUS_HELP,
        ),
        (crate::server::command(), crate::server::EXIT_STATUS_HELP),
    ];
    for (command, exit_status) in programs {
        let mut command = command.disable_help_subcommand(true);
        command.build();
        write_tree(&command, exit_status, dir, &mut written)?;
    }
    Ok(written)
}

/// Writes the page of `command` and of each of its visible subcommands.
fn write_tree(
    command: &clap::Command,
    exit_status: &str,
    dir: &Path,
    written: &mut Vec<PathBuf>,
) -> io::Result<()> {
    let man = Man::new(command.clone());
    let path = dir.join(man.get_filename());
    let page = render(&man, command, exit_status)?;
    std::fs::write(&path, page)?;
    written.push(path);
    for subcommand in command.get_subcommands().filter(|sub| !sub.is_hide_set()) {
        write_tree(subcommand, exit_status, dir, written)?;
    }
    Ok(())
}

/// The roff text of one page.
fn render(man: &Man, command: &clap::Command, exit_status: &str) -> io::Result<Vec<u8>> {
    let mut page = Vec::new();
    man.render_title(&mut page)?;
    man.render_name_section(&mut page)?;
    man.render_synopsis_section(&mut page)?;
    man.render_description_section(&mut page)?;
    if command
        .get_arguments()
        .any(|argument| !argument.is_hide_set())
    {
        man.render_options_section(&mut page)?;
    }
    if command.get_subcommands().any(|sub| !sub.is_hide_set()) {
        man.render_subcommands_section(&mut page)?;
    }
    let after = command
        .get_after_long_help()
        .or(command.get_after_help())
        .map(|text| text.to_string())
        .unwrap_or_default();
    let mut blocks = headed_blocks(&after);
    if !blocks.iter().any(|(title, _)| title == "EXIT STATUS") {
        blocks.extend(headed_blocks(exit_status));
    }
    let mut roff = Roff::default();
    for (title, lines) in &blocks {
        roff.control("SH", [title.as_str()]);
        roff.control("nf", []);
        for line in lines {
            roff.text([roman(line.as_str())]);
        }
        roff.control("fi", []);
    }
    page.write_all(roff.to_roff().as_bytes())?;
    if command
        .get_version()
        .or(command.get_long_version())
        .is_some()
    {
        man.render_version_section(&mut page)?;
    }
    Ok(page)
}

/// The blocks of a help text: each starts with a heading line ending in
/// `:` (`Example:` becomes `EXAMPLES`) and runs to the next blank line
/// followed by a heading; the lines lose the help's two-space indent.
fn headed_blocks(text: &str) -> Vec<(String, Vec<String>)> {
    let mut blocks: Vec<(String, Vec<String>)> = Vec::new();
    let mut after_blank = true;
    for line in text.lines() {
        let heading = line
            .strip_suffix(':')
            .filter(|heading| after_blank && !heading.starts_with(' ') && !heading.is_empty());
        match (heading, blocks.last_mut()) {
            (Some(heading), _) => {
                let title = match heading {
                    "Example" | "Examples" => "EXAMPLES".to_owned(),
                    other => other.to_uppercase(),
                };
                blocks.push((title, Vec::new()));
            }
            (None, Some((_, lines))) => {
                lines.push(line.strip_prefix("  ").unwrap_or(line).to_owned());
            }
            (None, None) => blocks.push(("NOTES".to_owned(), vec![line.to_owned()])),
        }
        after_blank = line.trim().is_empty();
    }
    for (_, lines) in &mut blocks {
        while lines.last().is_some_and(|line| line.trim().is_empty()) {
            lines.pop();
        }
    }
    blocks
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn help_text_splits_into_headed_blocks() {
        let blocks =
            headed_blocks("Example:\n  qftp ls\n\nEXIT STATUS:\n  0    success\n  1    error");
        assert_eq!(
            blocks,
            [
                ("EXAMPLES".to_owned(), vec!["qftp ls".to_owned()]),
                (
                    "EXIT STATUS".to_owned(),
                    vec!["0    success".to_owned(), "1    error".to_owned()]
                ),
            ]
        );
    }
}
