//! `qftp ls`: several paths, each directory under a heading as ls does
//! when more than one is given, `-R` for a depth-first walk (one listing
//! request per directory, so that output starts at once), and `--json` for
//! one document of everything listed. A path the server refuses is
//! reported and the others are still listed. How each line reads is
//! [`super::listing`]'s business.

use std::io::Write;
use std::process::ExitCode;

use qftp_client::ClientError;
use qftp_proto::{EntryInfo, EntryKind};

use super::cli::LsArgs;
use super::exit;
use super::listing::{Clock, ListingStyle, entry_json};
use super::report::tidy;
use super::session::Session;

/// Lists what `args` names to `out`; the exit code says whether some paths
/// could not be listed.
pub async fn list(
    session: &Session,
    args: &LsArgs,
    out: &mut impl Write,
) -> anyhow::Result<ExitCode> {
    let operands = if args.paths.is_empty() {
        vec![".".to_owned()]
    } else {
        args.paths.clone()
    };
    let mut printer = Printer {
        style: ListingStyle {
            long: args.long,
            all: args.all,
            human: args.human_readable,
            clock: Clock::new(args.utc),
        },
        json: args.json.then(Vec::new),
        out,
        blocks: 0,
        failures: 0,
    };
    // As ls: file arguments first, then each directory under its heading.
    let mut directories = Vec::new();
    for operand in &operands {
        let path = match session.resolve_string(operand) {
            Ok(path) => path,
            Err(error) => {
                printer.report(&format!("{error:#}"));
                continue;
            }
        };
        match session.client.stat(&path).await {
            Ok(entry) if entry.kind == EntryKind::Directory => {
                directories.push(Directory {
                    heading: operand.clone(),
                    path,
                });
            }
            Ok(entry) => printer.entry(&entry, operand, &path)?,
            Err(error) => printer.refused(error)?,
        }
    }
    let headings = operands.len() > 1 || args.recursive;
    for top in directories {
        // Depth first, each directory before its subdirectories, siblings
        // in name order: the stack holds the subdirectories still to list.
        let mut pending = vec![top];
        while let Some(directory) = pending.pop() {
            let entries = match session.client.list(&directory.path).await {
                Ok(entries) => entries,
                Err(error) => {
                    printer.refused(error)?;
                    continue;
                }
            };
            printer.start_block(headings.then_some(directory.heading.as_str()))?;
            let mut below = Vec::new();
            for entry in &entries {
                if !printer.style.shows(&entry.name) {
                    continue;
                }
                let path = child(&directory.path, &entry.name);
                printer.entry(entry, &entry.name, &path)?;
                if args.recursive && entry.kind == EntryKind::Directory {
                    below.push(Directory {
                        heading: child(&directory.heading, &entry.name),
                        path,
                    });
                }
            }
            pending.extend(below.into_iter().rev());
        }
    }
    printer.finish()
}

/// A directory still to list: its heading as the user wrote it, and its
/// remote path.
struct Directory {
    heading: String,
    path: String,
}

/// `name` inside `parent`, with one `/` between them.
fn child(parent: &str, name: &str) -> String {
    format!("{}/{name}", parent.trim_end_matches('/'))
}

/// Where the lines go: text as it comes, or JSON values gathered for one
/// document at the end.
struct Printer<'a, W: Write> {
    style: ListingStyle,
    json: Option<Vec<serde_json::Value>>,
    out: &'a mut W,
    /// Blocks of text written so far (a blank line goes between two).
    blocks: usize,
    failures: usize,
}

impl<W: Write> Printer<'_, W> {
    fn entry(&mut self, entry: &EntryInfo, name: &str, path: &str) -> anyhow::Result<()> {
        match &mut self.json {
            Some(values) => values.push(entry_json(entry, path)),
            None => {
                self.blocks = self.blocks.max(1);
                self.style.write_entry(self.out, entry, name)?;
            }
        }
        Ok(())
    }

    /// Starts a directory's block of text, under `heading` when given.
    fn start_block(&mut self, heading: Option<&str>) -> anyhow::Result<()> {
        if self.json.is_some() {
            return Ok(());
        }
        if self.blocks > 0 {
            writeln!(self.out)?;
        }
        self.blocks += 1;
        if let Some(heading) = heading {
            writeln!(self.out, "{heading}:")?;
        }
        Ok(())
    }

    /// Reports a path the server would not list; an error of the
    /// connection itself ends the command.
    fn refused(&mut self, error: ClientError) -> anyhow::Result<()> {
        if error.server_kind().is_none() {
            return Err(error.into());
        }
        self.report(&error.to_string());
        Ok(())
    }

    fn report(&mut self, message: &str) {
        // What was written so far goes first, so the lines stay in order.
        let _ = self.out.flush();
        eprintln!("qftp: ls: {}", tidy(message));
        self.failures += 1;
    }

    fn finish(self) -> anyhow::Result<ExitCode> {
        if let Some(values) = &self.json {
            writeln!(self.out, "{}", serde_json::to_string_pretty(values)?)?;
        }
        self.out.flush()?;
        Ok(exit::for_failures(self.failures))
    }
}
