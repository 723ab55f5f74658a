//! Why an entry sent by the server was not written here. A pull goes on
//! past a refused entry; the reasons are collected and shown to the user.
//! Deciding what to refuse is [`crate::destination`]'s business.

/// The reason one pulled entry was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum Refusal {
    /// The name, or one of its parts, is empty.
    #[error("empty name or name part")]
    Empty,
    /// The name starts at the root of the file system.
    #[error("absolute name")]
    Absolute,
    /// A part of the name is `.` or `..`.
    #[error("`.` or `..` in the name")]
    Climbs,
    /// The name holds a NUL byte.
    #[error("NUL byte in the name")]
    Nul,
    /// A part of the name is a partial file's name (`.name.qftp-part`) or
    /// the server's staging directory.
    #[error("reserved name `{part}`")]
    Reserved {
        /// The reserved part.
        part: String,
    },
    /// A directory on the way is a symlink; nothing is written through one.
    #[error("`{at}` is a symlink, and nothing is written through a link")]
    ThroughLink {
        /// The part of the name, from the destination, that is a link.
        at: String,
    },
    /// A directory on the way is something else.
    #[error("`{at}` is not a directory")]
    NotADirectory {
        /// The part of the name, from the destination, that is not one.
        at: String,
    },
    /// A directory on the way was swapped while it was being opened.
    #[error("`{at}` changed while it was being opened")]
    Swapped {
        /// The part of the name, from the destination, that changed.
        at: String,
    },
    /// A symlink's target is not canonical or leads outside the destination.
    #[error("symlink target {target:?} leads outside the destination")]
    LinkOutside {
        /// The target the server sent.
        target: String,
    },
}
