//! Every message of the protocol, in the order the crate docs describe them.
//!
//! Paths on the wire are strings in the user's view of their home: `/` is
//! the home directory, `/a/b` a path inside it. The server normalizes and
//! confines every path it receives; nothing here is trusted.

use serde::{Deserialize, Serialize};

/// A BLAKE3 hash as it travels on the wire.
pub type HashBytes = [u8; 32];

/// The first frame the client sends on the control stream.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ClientHello {
    /// The client's protocol version, [`crate::PROTOCOL_VERSION`].
    pub version: u32,
    /// A free-form client name and version, for the server's logs.
    pub client: String,
}

/// The server's answer to [`ClientHello`].
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ServerHello {
    /// The server's protocol version.
    pub version: u32,
    /// A free-form server name and version.
    pub server: String,
    /// The largest control frame payload the server accepts.
    pub max_frame: u32,
}

/// A request on the control stream, tagged with the client's request id.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ClientFrame {
    /// Chosen by the client; answers carry the same id.
    pub id: u64,
    /// What the client asks for.
    pub request: Request,
}

/// An answer on the control stream.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ServerFrame {
    /// The id of the request this answers.
    pub id: u64,
    /// The answer.
    pub response: Response,
}

/// A point in time, as seconds and nanoseconds since the Unix epoch.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default, Serialize, Deserialize,
)]
pub struct Timestamp {
    /// Whole seconds since 1970-01-01T00:00:00Z (negative before it).
    pub secs: i64,
    /// Nanoseconds within the second, below 1,000,000,000.
    pub nanos: u32,
}

impl From<std::time::SystemTime> for Timestamp {
    fn from(time: std::time::SystemTime) -> Self {
        match time.duration_since(std::time::UNIX_EPOCH) {
            Ok(after) => Self {
                secs: i64::try_from(after.as_secs()).unwrap_or(i64::MAX),
                nanos: after.subsec_nanos(),
            },
            Err(before) => {
                let before = before.duration();
                // Negated directly: 2^63 seconds before the epoch is i64::MIN,
                // which has no positive counterpart to negate.
                let secs = 0i64
                    .checked_sub_unsigned(before.as_secs())
                    .unwrap_or(i64::MIN);
                if before.subsec_nanos() == 0 {
                    Self { secs, nanos: 0 }
                } else {
                    Self {
                        secs: secs.saturating_sub(1),
                        nanos: 1_000_000_000 - before.subsec_nanos(),
                    }
                }
            }
        }
    }
}

impl Timestamp {
    /// The current time.
    pub fn now() -> Self {
        std::time::SystemTime::now().into()
    }

    /// The time as `YYYY-MM-DD HH:MM` in UTC, for listings and reports.
    pub fn to_utc_minutes(self) -> String {
        let days = self.secs.div_euclid(86_400);
        let second_of_day = self.secs.rem_euclid(86_400);
        // The civil date of a day count since 1970-01-01 (Howard Hinnant's
        // algorithm).
        let shifted = days + 719_468;
        let era = shifted.div_euclid(146_097);
        let day_of_era = shifted.rem_euclid(146_097);
        let year_of_era =
            (day_of_era - day_of_era / 1460 + day_of_era / 36_524 - day_of_era / 146_096) / 365;
        let day_of_year = day_of_era - (365 * year_of_era + year_of_era / 4 - year_of_era / 100);
        let month_index = (5 * day_of_year + 2) / 153;
        let day = day_of_year - (153 * month_index + 2) / 5 + 1;
        let month = if month_index < 10 {
            month_index + 3
        } else {
            month_index - 9
        };
        let year = year_of_era + era * 400 + i64::from(month <= 2);
        format!(
            "{year:04}-{month:02}-{day:02} {:02}:{:02}",
            second_of_day / 3600,
            second_of_day % 3600 / 60
        )
    }

    /// Converts back to a [`std::time::SystemTime`], or `None` when the
    /// value is out of range (including `nanos` of a second or more).
    pub fn to_system_time(self) -> Option<std::time::SystemTime> {
        if self.nanos >= 1_000_000_000 {
            return None;
        }
        let nanos = std::time::Duration::from_nanos(u64::from(self.nanos));
        if self.secs >= 0 {
            std::time::UNIX_EPOCH
                .checked_add(std::time::Duration::from_secs(self.secs as u64))?
                .checked_add(nanos)
        } else {
            std::time::UNIX_EPOCH
                .checked_sub(std::time::Duration::from_secs(self.secs.unsigned_abs()))?
                .checked_add(nanos)
        }
    }
}

/// Where a download may continue: the client's partial file.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct ResumePoint {
    /// The length of the client's partial file.
    pub offset: u64,
    /// The BLAKE3 hash of those `offset` bytes.
    pub prefix_hash: HashBytes,
}

/// Everything a client can ask.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[non_exhaustive]
pub enum Request {
    /// Log in with a password; answered by [`Response::LoggedIn`].
    Login {
        /// The user name.
        user: String,
        /// The password, only ever sent inside TLS.
        password: String,
    },
    /// Authenticate with a session token from an earlier login.
    Authenticate {
        /// The token from [`Response::LoggedIn`].
        token: String,
    },
    /// Revoke the session this connection authenticated with.
    Logout,
    /// Who is logged in, and their quota.
    WhoAmI,
    /// Metadata of one path, following symlinks that stay in the home.
    Stat {
        /// The path to inspect.
        path: String,
    },
    /// The entries of a directory; answered by one or more
    /// [`Response::Listing`] chunks.
    List {
        /// The directory to list.
        path: String,
    },
    /// Every entry below a directory, recursively, answered by
    /// [`Response::Tree`] chunks. Symlinks are reported, not followed.
    Walk {
        /// The directory to walk.
        path: String,
        /// Include the BLAKE3 of every regular file.
        hashes: bool,
    },
    /// Create a directory.
    Mkdir {
        /// The directory to create.
        path: String,
        /// Create missing parents too, and accept an existing directory.
        parents: bool,
    },
    /// Remove a file, an empty directory or, with `recursive`, a tree.
    Remove {
        /// What to remove.
        path: String,
        /// Remove directories with their contents.
        recursive: bool,
    },
    /// Rename or move an entry within the home.
    Rename {
        /// The existing path.
        from: String,
        /// The new path; an existing directory receives `from` inside it.
        to: String,
    },
    /// Quota use of the logged-in user.
    DiskUsage,
    /// Create a symbolic link at `path` pointing to `target`. The target
    /// must be relative and must stay inside the home when resolved from
    /// the link's directory.
    Symlink {
        /// Where the link is created.
        path: String,
        /// What it points to, as stored in the link.
        target: String,
    },
    /// Open an upload; see the crate docs for the sequence.
    PutOpen {
        /// Chosen by the client, unique within the connection.
        transfer_id: u64,
        /// The final path of the file.
        path: String,
        /// The exact size of the whole file.
        size: u64,
        /// The modification time to give the stored file.
        mtime: Timestamp,
        /// Offer to continue from an existing partial file.
        resume: bool,
    },
    /// Finish an upload whose data stream is complete.
    PutCommit {
        /// The transfer to finish.
        transfer_id: u64,
        /// BLAKE3 of the whole file as the client read it.
        hash: HashBytes,
    },
    /// Abandon an upload; its partial file stays for a later resume.
    PutAbort {
        /// The transfer to abandon.
        transfer_id: u64,
    },
    /// Open a download; see the crate docs for the sequence.
    GetOpen {
        /// Chosen by the client, unique within the connection.
        transfer_id: u64,
        /// The file to download.
        path: String,
        /// The client's partial file, if it has one.
        resume: Option<ResumePoint>,
    },
    /// Upload a small file in one exchange: its data stream (offset 0)
    /// follows at once, without waiting for `PutReady`, and the whole
    /// file's hash comes up front, so no `PutCommit` is needed. The server
    /// answers `PutDone` or an error. `size` is at most
    /// [`crate::SMALL_FILE_MAX`]; such files are never resumed.
    PutSmall {
        /// Chosen by the client, unique within the connection.
        transfer_id: u64,
        /// The final path of the file.
        path: String,
        /// The exact size of the whole file.
        size: u64,
        /// The modification time to give the stored file.
        mtime: Timestamp,
        /// BLAKE3 of the whole file.
        hash: HashBytes,
    },
}

impl Request {
    /// A short name of the request kind, for logs (never its arguments).
    pub fn kind(&self) -> &'static str {
        match self {
            Request::Login { .. } => "login",
            Request::Authenticate { .. } => "authenticate",
            Request::Logout => "logout",
            Request::WhoAmI => "whoami",
            Request::Stat { .. } => "stat",
            Request::List { .. } => "list",
            Request::Walk { .. } => "walk",
            Request::Mkdir { .. } => "mkdir",
            Request::Remove { .. } => "remove",
            Request::Rename { .. } => "rename",
            Request::DiskUsage => "df",
            Request::Symlink { .. } => "symlink",
            Request::PutOpen { .. } => "put-open",
            Request::PutCommit { .. } => "put-commit",
            Request::PutAbort { .. } => "put-abort",
            Request::GetOpen { .. } => "get-open",
            Request::PutSmall { .. } => "put-small",
        }
    }
}

/// The kind of a directory entry.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum EntryKind {
    /// A regular file.
    File,
    /// A directory.
    Directory,
    /// A symbolic link (reported by listings; never followed out of a home).
    Symlink,
    /// Anything else: sockets, devices, fifos.
    Other,
}

/// Metadata of one entry.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct EntryInfo {
    /// The entry's name, or for [`Request::Walk`] its path relative to the
    /// walked directory, with `/` separators.
    pub name: String,
    /// What it is.
    pub kind: EntryKind,
    /// Size in bytes (0 for directories).
    pub size: u64,
    /// Last modification.
    pub mtime: Timestamp,
    /// Unix permission bits.
    pub mode: u32,
    /// BLAKE3 of a regular file's content, when asked for.
    pub hash: Option<HashBytes>,
    /// A symlink's target as stored, when the entry is a symlink.
    pub link_target: Option<String>,
}

/// Quota figures of one user.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Usage {
    /// Bytes stored, partial files included.
    pub used: u64,
    /// Bytes promised to uploads in flight.
    pub reserved: u64,
    /// The quota, or `None` when unlimited.
    pub quota: Option<u64>,
}

impl Usage {
    /// Bytes still free for new uploads, or `None` when unlimited.
    pub fn free(&self) -> Option<u64> {
        self.quota
            .map(|quota| quota.saturating_sub(self.used.saturating_add(self.reserved)))
    }
}

/// Everything the server answers.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[non_exhaustive]
pub enum Response {
    /// The request succeeded and has nothing to report.
    Ok,
    /// The request failed.
    Error(ErrorReply),
    /// A login succeeded.
    LoggedIn {
        /// The user name.
        user: String,
        /// The session token: present it with [`Request::Authenticate`].
        token: String,
        /// When the session expires.
        expires: Timestamp,
    },
    /// A session token was accepted.
    Authenticated {
        /// The user the session belongs to.
        user: String,
    },
    /// The answer to [`Request::WhoAmI`].
    Identity {
        /// The user name.
        user: String,
        /// Their quota use.
        usage: Usage,
    },
    /// The answer to [`Request::Stat`].
    Entry(EntryInfo),
    /// One chunk of a directory listing.
    Listing {
        /// Entries in this chunk.
        entries: Vec<EntryInfo>,
        /// Whether this is the last chunk.
        done: bool,
    },
    /// One chunk of a recursive walk (entries carry relative paths).
    Tree {
        /// Entries in this chunk.
        entries: Vec<EntryInfo>,
        /// Whether this is the last chunk.
        done: bool,
    },
    /// The answer to [`Request::DiskUsage`].
    DiskUsage(Usage),
    /// An upload is open: send data from `offset`.
    PutReady {
        /// Length of the partial file the server holds (0 when none).
        offset: u64,
        /// BLAKE3 of those `offset` bytes, when `offset` is not 0.
        prefix_hash: Option<HashBytes>,
    },
    /// An upload is stored under its final name.
    PutDone {
        /// Bytes that travelled in this transfer.
        bytes_received: u64,
        /// Bytes that were already there from an earlier attempt.
        resumed: u64,
    },
    /// A download is open: its data stream starts at `offset`.
    GetReady {
        /// The whole file's size.
        size: u64,
        /// The file's modification time.
        mtime: Timestamp,
        /// Where the data stream starts (the resume offset, or 0).
        offset: u64,
    },
    /// A download's data stream is complete.
    GetDone {
        /// BLAKE3 of the whole file as the server read it.
        hash: HashBytes,
    },
}

/// A failed request: a stable kind plus a human-readable message.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ErrorReply {
    /// What went wrong, for programs.
    pub kind: ErrorKind,
    /// What went wrong, for people: one line, no secrets.
    pub message: String,
}

/// The classes of failure a client may want to act on.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[non_exhaustive]
pub enum ErrorKind {
    /// The path does not exist.
    NotFound,
    /// A directory was expected.
    NotADirectory,
    /// A file was expected.
    IsADirectory,
    /// The target exists already.
    AlreadyExists,
    /// A directory to remove is not empty.
    DirectoryNotEmpty,
    /// The path leads outside the user's home.
    OutsideHome,
    /// The path is not acceptable (empty name, NUL, reserved name).
    InvalidPath,
    /// The operation is not permitted.
    PermissionDenied,
    /// The upload does not fit in the quota.
    QuotaExceeded {
        /// Bytes the upload needs.
        needed: u64,
        /// Bytes still free.
        free: u64,
    },
    /// Login failed: wrong user name or password (never says which).
    AuthenticationFailed,
    /// Too many failed logins from this address; try again later.
    TooManyAttempts {
        /// Seconds until logins are accepted again.
        retry_after_secs: u64,
    },
    /// The session token is unknown, revoked or expired.
    SessionExpired,
    /// The request needs a logged-in connection.
    NotAuthenticated,
    /// The data did not match its declared hash or size.
    IntegrityMismatch,
    /// Another transfer is writing this path right now.
    Busy,
    /// A configured limit was reached.
    LimitReached,
    /// The peer broke the protocol.
    Protocol,
    /// The server failed; the message says how.
    Internal,
}

/// The frame that starts every data stream.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct DataHeader {
    /// The transfer this stream carries, as chosen in the open request.
    pub transfer_id: u64,
    /// The file offset of the first byte after this header.
    pub offset: u64,
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::{Duration, UNIX_EPOCH};

    fn round_trips<T>(message: &T)
    where
        T: Serialize + serde::de::DeserializeOwned + PartialEq + std::fmt::Debug,
    {
        let wire = crate::codec::to_bytes(message).unwrap();
        assert_eq!(&crate::codec::from_bytes::<T>(&wire).unwrap(), message);
    }

    #[test]
    fn every_message_round_trips() {
        let mtime = Timestamp {
            secs: 1_700_000_000,
            nanos: 5,
        };
        let hash = [9; 32];
        let path = || "/docs/report.pdf".to_owned();
        let requests = [
            Request::Login {
                user: "alice".into(),
                password: "secret".into(),
            },
            Request::Authenticate {
                token: "ab".repeat(32),
            },
            Request::Logout,
            Request::WhoAmI,
            Request::Stat { path: path() },
            Request::List { path: path() },
            Request::Walk {
                path: path(),
                hashes: true,
            },
            Request::Mkdir {
                path: path(),
                parents: true,
            },
            Request::Remove {
                path: path(),
                recursive: false,
            },
            Request::Rename {
                from: path(),
                to: "/b".into(),
            },
            Request::DiskUsage,
            Request::Symlink {
                path: path(),
                target: "../x".into(),
            },
            Request::PutOpen {
                transfer_id: 3,
                path: path(),
                size: u64::MAX,
                mtime,
                resume: true,
            },
            Request::PutCommit {
                transfer_id: 3,
                hash,
            },
            Request::PutAbort { transfer_id: 3 },
            Request::GetOpen {
                transfer_id: 4,
                path: path(),
                resume: Some(ResumePoint {
                    offset: 10,
                    prefix_hash: hash,
                }),
            },
            Request::PutSmall {
                transfer_id: 5,
                path: path(),
                size: 12,
                mtime,
                hash,
            },
        ];
        let kinds: std::collections::BTreeSet<_> = requests.iter().map(Request::kind).collect();
        assert_eq!(kinds.len(), requests.len(), "one of each request");
        for (id, request) in requests.into_iter().enumerate() {
            round_trips(&ClientFrame {
                id: id as u64,
                request,
            });
        }
        let usage = Usage {
            used: 1,
            reserved: 2,
            quota: Some(3),
        };
        let entry = EntryInfo {
            name: "x".into(),
            kind: EntryKind::Symlink,
            size: 0,
            mtime,
            mode: 0o777,
            hash: Some(hash),
            link_target: Some("../y".into()),
        };
        let responses = [
            Response::Ok,
            Response::Error(ErrorReply {
                kind: ErrorKind::QuotaExceeded {
                    needed: 10,
                    free: 5,
                },
                message: "no room".into(),
            }),
            Response::LoggedIn {
                user: "alice".into(),
                token: "t".into(),
                expires: mtime,
            },
            Response::Authenticated {
                user: "alice".into(),
            },
            Response::Identity {
                user: "alice".into(),
                usage,
            },
            Response::Entry(entry.clone()),
            Response::Listing {
                entries: vec![entry.clone()],
                done: false,
            },
            Response::Tree {
                entries: vec![entry],
                done: true,
            },
            Response::DiskUsage(usage),
            Response::PutReady {
                offset: 4,
                prefix_hash: Some(hash),
            },
            Response::PutDone {
                bytes_received: 6,
                resumed: 4,
            },
            Response::GetReady {
                size: 10,
                mtime,
                offset: 4,
            },
            Response::GetDone { hash },
        ];
        for (id, response) in responses.into_iter().enumerate() {
            round_trips(&ServerFrame {
                id: id as u64,
                response,
            });
        }
        round_trips(&ClientHello {
            version: crate::PROTOCOL_VERSION,
            client: "qftp".into(),
        });
        round_trips(&ServerHello {
            version: crate::PROTOCOL_VERSION,
            server: "qftp-server".into(),
            max_frame: 1 << 20,
        });
        round_trips(&DataHeader {
            transfer_id: u64::MAX,
            offset: 0,
        });
    }

    #[test]
    fn a_data_header_keeps_its_encoding() {
        // Two varints, nothing else: the bytes every peer of this protocol
        // version writes.
        let header = DataHeader {
            transfer_id: 1,
            offset: 300,
        };
        assert_eq!(
            crate::codec::to_bytes(&header).unwrap(),
            vec![0x01, 0xac, 0x02]
        );
    }

    #[test]
    fn timestamps_are_written_in_utc() {
        let at = |secs| Timestamp { secs, nanos: 0 }.to_utc_minutes();
        assert_eq!(at(0), "1970-01-01 00:00");
        assert_eq!(at(1_700_000_000), "2023-11-14 22:13");
        assert_eq!(at(951_782_400), "2000-02-29 00:00");
        assert_eq!(at(-86_400), "1969-12-31 00:00");
        assert_eq!(at(-1), "1969-12-31 23:59");
    }

    #[test]
    fn timestamps_round_trip_through_system_time() {
        for time in [
            UNIX_EPOCH,
            UNIX_EPOCH + Duration::new(1_700_000_000, 123_456_789),
            UNIX_EPOCH - Duration::new(5, 250_000_000),
            UNIX_EPOCH - Duration::from_secs(86_400),
        ] {
            let stamp = Timestamp::from(time);
            assert!(stamp.nanos < 1_000_000_000);
            assert_eq!(stamp.to_system_time(), Some(time));
        }
        assert_eq!(
            Timestamp {
                secs: 0,
                nanos: 2_000_000_000
            }
            .to_system_time(),
            None
        );
    }

    #[test]
    fn the_earliest_timestamp_round_trips() {
        // Found by fuzz/ (target `frames`, a decoded mtime): 2^63 seconds
        // before the epoch came back one second later, as -(2^63 - 1).
        for stamp in [
            Timestamp {
                secs: i64::MIN,
                nanos: 0,
            },
            Timestamp {
                secs: i64::MIN,
                nanos: 1,
            },
        ] {
            // Platforms whose SystemTime cannot reach that far have nothing
            // to convert back.
            if let Some(time) = stamp.to_system_time() {
                assert_eq!(Timestamp::from(time), stamp);
            }
        }
    }
}
