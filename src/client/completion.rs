//! Tab completion in `qftp shell`: command names in the first word, remote
//! paths in the arguments of remote commands (listed through the
//! connection, each directory's listing kept for [`LISTING_LIFETIME`] and
//! forgotten at once after a command that changes the server's files), and
//! local paths in those of `put`, `lcd`, `lls` and `!`.

use std::cell::RefCell;
use std::collections::HashMap;
use std::time::{Duration, Instant};

use qftp_client::connection::Client;
use qftp_proto::EntryKind;
use qftp_proto::path::RemotePath;
use rustyline::completion::{Completer, FilenameCompleter, Pair};
use rustyline::highlight::Highlighter;
use rustyline::hint::Hinter;
use rustyline::validate::Validator;

use super::shell_commands::{Arguments, COMMANDS, find};

/// How long a directory's listing is reused.
pub const LISTING_LIFETIME: Duration = Duration::from_secs(5);
/// A listing that takes longer than this completes nothing.
const LISTING_TIMEOUT: Duration = Duration::from_secs(3);

/// One entry of a remote directory as completion needs it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Name {
    /// The entry's name.
    pub name: String,
    /// Whether it is a directory (completed with a trailing `/`).
    pub directory: bool,
}

/// The word being completed: where it starts in the line, its text, and
/// whether it is the line's first word.
pub fn current_word(line: &str, position: usize) -> (usize, &str, bool) {
    let before = &line[..position];
    let start = before
        .char_indices()
        .rev()
        .find(|(index, character)| character.is_whitespace() && !before[..*index].ends_with('\\'))
        .map_or(0, |(index, character)| index + character.len_utf8());
    let first = before[..start].trim().is_empty();
    (start, &before[start..], first)
}

/// Command names that start with `prefix`.
pub fn command_candidates(prefix: &str) -> Vec<String> {
    COMMANDS
        .iter()
        .map(|command| command.name)
        .chain(["quit", "bye"])
        .filter(|name| name.starts_with(prefix))
        .map(|name| format!("{name} "))
        .collect()
}

/// A typed remote path split into the directory to list (as typed, empty
/// for the current one) and the start of the name.
pub fn split_remote(word: &str) -> (&str, &str) {
    match word.rfind('/') {
        Some(slash) => (&word[..=slash], &word[slash + 1..]),
        None => ("", word),
    }
}

/// The completions of `typed_directory` + `prefix` among `names`:
/// directories end with `/`, spaces are escaped, and hidden names are
/// offered only when the prefix starts with a dot.
pub fn path_candidates(typed_directory: &str, prefix: &str, names: &[Name]) -> Vec<String> {
    let mut candidates: Vec<String> = names
        .iter()
        .filter(|entry| entry.name.starts_with(prefix))
        .filter(|entry| prefix.starts_with('.') || !entry.name.starts_with('.'))
        .map(|entry| {
            let escaped = escape(&entry.name);
            let end = if entry.directory { "/" } else { " " };
            format!("{}{escaped}{end}", escape(typed_directory))
        })
        .collect();
    candidates.sort();
    candidates
}

/// `text` with the characters the shell's word splitting treats specially
/// escaped by a backslash.
fn escape(text: &str) -> String {
    let mut escaped = String::with_capacity(text.len());
    for character in text.chars() {
        if character.is_whitespace() || matches!(character, '\\' | '\'' | '"') {
            escaped.push('\\');
        }
        escaped.push(character);
    }
    escaped
}

/// Remote listings by directory, each with the time it was read.
#[derive(Debug, Default)]
pub struct ListingCache {
    listings: HashMap<String, (Instant, Vec<Name>)>,
}

impl ListingCache {
    /// The listing of `directory` if it was read less than
    /// [`LISTING_LIFETIME`] before `now`.
    pub fn get(&self, directory: &str, now: Instant) -> Option<&[Name]> {
        self.listings
            .get(directory)
            .filter(|(read, _)| now.saturating_duration_since(*read) < LISTING_LIFETIME)
            .map(|(_, names)| names.as_slice())
    }

    /// Keeps `names` as the listing of `directory` read at `now`.
    pub fn insert(&mut self, directory: String, names: Vec<Name>, now: Instant) {
        self.listings.insert(directory, (now, names));
    }

    /// Forgets every listing (the server's files changed).
    pub fn clear(&mut self) {
        self.listings.clear();
    }
}

/// The shell's rustyline helper: completion over the session's connection.
pub struct ShellHelper {
    runtime: tokio::runtime::Handle,
    client: Client,
    cwd: RemotePath,
    cache: RefCell<ListingCache>,
    files: FilenameCompleter,
}

impl std::fmt::Debug for ShellHelper {
    fn fmt(&self, formatter: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        formatter
            .debug_struct("ShellHelper")
            .field("cwd", &self.cwd)
            .finish_non_exhaustive()
    }
}

impl ShellHelper {
    /// A helper listing through `client`, relative to `cwd`.
    pub fn new(runtime: tokio::runtime::Handle, client: Client, cwd: RemotePath) -> Self {
        Self {
            runtime,
            client,
            cwd,
            cache: RefCell::new(ListingCache::default()),
            files: FilenameCompleter::new(),
        }
    }

    /// Follows the session: its connection (new after a reconnect) and its
    /// remote directory.
    pub fn follow(&mut self, client: &Client, cwd: &RemotePath) {
        self.client = client.clone();
        self.cwd = cwd.clone();
    }

    /// Forgets the cached listings, after a command that changed files.
    pub fn forget_listings(&mut self) {
        self.cache.get_mut().clear();
    }

    /// The names in the remote directory typed as `typed_directory`.
    fn remote_names(&self, typed_directory: &str) -> Vec<Name> {
        let directory = if typed_directory.is_empty() {
            self.cwd.clone()
        } else {
            match RemotePath::resolve(&self.cwd, typed_directory) {
                Ok(directory) => directory,
                Err(_) => return Vec::new(),
            }
        };
        let key = directory.to_string();
        let now = Instant::now();
        if let Some(names) = self.cache.borrow().get(&key, now) {
            return names.to_vec();
        }
        let listing = self.runtime.block_on(async {
            tokio::time::timeout(LISTING_TIMEOUT, self.client.list(&key)).await
        });
        let names: Vec<Name> = match listing {
            Ok(Ok(entries)) => entries
                .into_iter()
                .map(|entry| Name {
                    directory: entry.kind == EntryKind::Directory,
                    name: entry.name,
                })
                .collect(),
            _ => return Vec::new(),
        };
        self.cache.borrow_mut().insert(key, names.clone(), now);
        names
    }
}

impl Completer for ShellHelper {
    type Candidate = Pair;

    fn complete(
        &self,
        line: &str,
        position: usize,
        context: &rustyline::Context<'_>,
    ) -> rustyline::Result<(usize, Vec<Pair>)> {
        let (start, word, first) = current_word(line, position);
        if first && !word.starts_with('!') {
            let pairs = command_candidates(word)
                .into_iter()
                .map(|candidate| Pair {
                    display: candidate.trim_end().to_owned(),
                    replacement: candidate,
                })
                .collect();
            return Ok((start, pairs));
        }
        let command = line.split_whitespace().next().unwrap_or_default();
        let arguments = if command.starts_with('!') {
            Arguments::Local
        } else {
            find(command).map_or(Arguments::Other, |command| command.arguments)
        };
        match arguments {
            Arguments::Remote if !word.starts_with('-') => {
                let (typed_directory, prefix) = split_remote(word);
                let names = self.remote_names(typed_directory);
                let pairs = path_candidates(typed_directory, prefix, &names)
                    .into_iter()
                    .map(|candidate| Pair {
                        display: candidate
                            .trim_end()
                            .rsplit('/')
                            .find(|part| !part.is_empty())
                            .unwrap_or_default()
                            .to_owned(),
                        replacement: candidate,
                    })
                    .collect();
                Ok((start, pairs))
            }
            Arguments::Local => self.files.complete(line, position, context),
            _ => Ok((start, Vec::new())),
        }
    }
}

impl Hinter for ShellHelper {
    type Hint = String;
}

impl Highlighter for ShellHelper {}

impl Validator for ShellHelper {}

impl rustyline::Helper for ShellHelper {}

#[cfg(test)]
mod tests {
    use super::*;

    fn names(list: &[(&str, bool)]) -> Vec<Name> {
        list.iter()
            .map(|(name, directory)| Name {
                name: (*name).to_owned(),
                directory: *directory,
            })
            .collect()
    }

    #[test]
    fn the_word_under_the_cursor_is_found() {
        assert_eq!(current_word("ls", 2), (0, "ls", true));
        assert_eq!(current_word("get docs/re", 11), (4, "docs/re", false));
        assert_eq!(current_word("get my\\ fi", 10), (4, "my\\ fi", false));
        assert_eq!(current_word("get ", 4), (4, "", false));
    }

    #[test]
    fn command_names_complete() {
        assert_eq!(command_candidates("lc"), ["lcd "]);
        let all = command_candidates("l");
        assert!(all.contains(&"ls ".to_owned()) && all.contains(&"lpwd ".to_owned()));
        assert!(command_candidates("zz").is_empty());
    }

    #[test]
    fn remote_paths_complete_with_their_directory() {
        assert_eq!(split_remote("docs/re"), ("docs/", "re"));
        assert_eq!(split_remote("/a/b/"), ("/a/b/", ""));
        assert_eq!(split_remote("re"), ("", "re"));
        let listing = names(&[
            ("report.pdf", false),
            ("reports", true),
            ("my file", false),
            (".hidden", false),
            ("other", false),
        ]);
        assert_eq!(
            path_candidates("docs/", "re", &listing),
            ["docs/report.pdf ", "docs/reports/"]
        );
        assert_eq!(path_candidates("", "my", &listing), ["my\\ file "]);
        assert!(
            path_candidates("", "", &listing)
                .iter()
                .all(|c| !c.starts_with('.'))
        );
        assert_eq!(path_candidates("", ".h", &listing), [".hidden "]);
    }

    #[test]
    fn listings_are_kept_for_a_while_and_forgotten_on_change() {
        let mut cache = ListingCache::default();
        let read = Instant::now();
        cache.insert("/docs".into(), names(&[("a", false)]), read);
        assert!(cache.get("/docs", read + Duration::from_secs(1)).is_some());
        assert!(cache.get("/docs", read + LISTING_LIFETIME).is_none());
        assert!(cache.get("/other", read).is_none());
        cache.clear();
        assert!(cache.get("/docs", read).is_none());
    }
}
