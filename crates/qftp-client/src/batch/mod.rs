//! Many transfers at once: expanding `put`/`get` arguments into per-file
//! jobs, and running them with a bounded number in flight on one
//! connection, each file on its own stream.
//!
//! [`plan`] expands the arguments, placing them by the cp/rsync rules of
//! [`placement`]; [`run`] carries the jobs out, creating the remote
//! directories first through [`directories`].

pub mod directories;
pub mod placement;
pub mod plan;
pub mod run;

pub use plan::{DownloadJob, DownloadPlan, UploadJob, UploadPlan, plan_download, plan_upload};
pub use run::{BatchReport, download, download_beneath, upload};
