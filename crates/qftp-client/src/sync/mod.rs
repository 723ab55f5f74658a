//! `qftp sync`: bring a destination tree in line with a source tree.
//!
//! Both trees are listed first: the local one by walking the disk, the
//! remote one with a single streamed `Walk` request (no round trip per
//! directory). [`plan`] compares them, a pure function, and the plan is
//! carried out with the same transfer engine as `put` and `get`
//! ([`crate::batch`]). A file counts as changed when its size or mtime
//! differs, or with `checksum` when its BLAKE3 differs. An interrupted sync
//! run again skips what already arrived and resumes the partial file.
//!
//! Symlinks are reported and skipped unless `links` asks to recreate them;
//! only relative links that stay inside the tree are ever created, on
//! either side, and they are created after all files, so no transfer can
//! be routed through a link the sync itself made. A link is sent in the
//! canonical form the server accepts (`..` first, then names; see
//! [`qftp_proto::path::LinkTarget`]): a target that differs from it only by
//! `.`, doubled slashes or a `..` after a real directory of the tree is
//! rewritten to it, and anything else (absolute, leading out of the tree,
//! `..` after a link or a file) is skipped with the reason, the way rsync's
//! `--safe-links` skips unsafe links, rather than failing the whole sync.
//!
//! Modules: [`tree`] (the model), [`excludes`], [`scan`] (listing both
//! sides), [`links`] (which links may be recreated), [`plan`] (the pure
//! planner) and [`execute`] (`push` and `pull`).

pub mod excludes;
pub mod execute;
pub mod links;
pub mod plan;
pub mod scan;
pub mod tree;

pub use excludes::Excludes;
pub use execute::{SyncOptions, SyncReport, pull, push};
pub use links::{canonical_link_target, link_stays_inside};
pub use plan::{PlanOptions, SyncPlan, plan};
pub use scan::{local_tree, remote_tree};
pub use tree::{Node, Tree};
