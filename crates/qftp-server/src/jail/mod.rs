//! Every file-system operation of one user, confined to their home directory.
//!
//! A [`Jail`] is opened once per session on the user's home and answers the
//! navigation requests (stat, list, walk, mkdir, remove, rename, disk usage)
//! and hands out the handles that uploads and downloads work with.
//!
//! # What it guarantees
//!
//! Confinement comes in two layers:
//!
//! 1. **Lexical normalization** by [`RemotePath`]: every path arrives with no
//!    `.`, no `..` and no empty names, read from the home (`/` is the home,
//!    `..` at the root stays at the root). A user cannot even spell a path
//!    above their home.
//! 2. **Resolution beneath the home's directory handle** by `cap-std`: the
//!    home is opened once as a [`cap_std::fs::Dir`] and every path is
//!    resolved relative to that handle, never through an absolute server
//!    path. On Linux 5.6 and later this is `openat2` with `RESOLVE_BENEATH`;
//!    elsewhere cap-std walks the path one name at a time. A symlink whose
//!    target is absolute or climbs above the home is refused with
//!    [`ErrorKind::OutsideHome`] instead of being followed, and because each
//!    step is taken from an open handle, renaming directories or swapping
//!    them for symlinks while a request runs cannot redirect it outside.
//!
//! Symlinks that stay inside the home are followed when they are part of a
//! path the user names (stat, open for reading, the parent of an upload, the
//! directory to list or walk). Listings and walks report symlink entries as
//! [`EntryKind::Symlink`] without following them; removal deletes the link,
//! never its target; walks, recursive removal and disk usage never descend
//! into a link, and they check that a directory they open is the one they
//! examined (same device and inode), so a directory swapped for a link
//! between the look and the open is not entered either.
//!
//! Links a user makes ([`Jail::symlink`]) or moves ([`Jail::rename`]) keep
//! resolving inside the home for every program that follows them, not only
//! for qftp: the rule and its checks live in [`crate::links`].
//!
//! The names a server keeps for itself (the staging directory of partial
//! uploads, old-style partial files; see [`qftp_proto::is_reserved_name`])
//! cannot be spelled in a [`RemotePath`] and are hidden from listings and
//! walks, but count in disk usage and in what a removal frees.
//!
//! # What it does not do
//!
//! * It keeps no quota: [`crate::quota`] decides whether bytes fit, this
//!   module only reports the bytes it frees and finds.
//! * It takes no locks: two transfers on the same path are kept apart by the
//!   transfer code, not here.
//! * Absolute symlinks are always refused, even when they point into the
//!   home: cap-std cannot tell, and the user cannot see server paths anyway.
//! * Hard links and mount points that an administrator places inside a home
//!   are ordinary entries to it; users cannot create either through qftp.
//! * Only regular files are opened for reading. The check happens before
//!   the open, so a regular file replaced by a FIFO in between could block a
//!   read; users cannot create FIFOs through qftp.
//! * Names that are not UTF-8 are reported lossily (with U+FFFD), so such
//!   entries are visible but cannot be named in a request.
//! * Directory handles given out by [`Jail::open_parent`] are sandboxes of
//!   their own: a symlink resolved relative to such a handle cannot climb
//!   above that directory, even where it would stay inside the home.
//!
//! # Code map
//!
//! * `home.rs`: the [`Jail`] of one home, its limits and the functions all operations share.
//! * `resolve.rs`: stat, [`JailedTarget`] (where an upload lands), files to read.
//! * `listing.rs`: listings and walks in chunks.
//! * `create.rs`: mkdir and symlink.
//! * `remove.rs`: removal, recursive or not.
//! * `rename.rs`: rename.
//! * `usage.rs`: measuring a home.

mod create;
mod home;
mod listing;
mod remove;
mod rename;
mod resolve;
#[cfg(test)]
mod tests;
mod usage;

pub use home::{Jail, JailLimits};
pub use listing::{Lister, Walker, entry_info};
pub use resolve::JailedTarget;
