//! The binaries under test: building them (`cargo build --release --bins`
//! in the workspace), checking that `qftp` and `qftp-server` are there,
//! copying them (and this program) to the benchmark's own directory, and
//! the commit they were built from.
//!
//! It does not run them; the scenarios do, from the copies.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use anyhow::{Context as _, bail};

use super::paths::Paths;
use crate::data;
use crate::process;

/// Time limit of building the release binaries.
const BUILD_LIMIT: Duration = Duration::from_secs(3600);

/// `cargo` arguments that build every binary of the default members, run
/// from the workspace root: no package named, so the build does not depend
/// on which package a program lives in.
const BUILD_ARGUMENTS: [&str; 3] = ["build", "--release", "--bins"];

/// The programs under test, as `cargo build` names them in `target/release`.
const PROGRAMS: [&str; 2] = ["qftp-server", "qftp"];

/// Builds the release binaries of the workspace's default members, which
/// include `qftp` and `qftp-server` whichever package holds them (the root
/// package or the server and client crates).
pub fn build(paths: &Paths) -> anyhow::Result<()> {
    let cargo = std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into());
    eprintln!("building the release binaries");
    let mut command = Command::new(cargo);
    command.args(BUILD_ARGUMENTS).current_dir(&paths.workspace);
    process::run_ok(
        &mut command,
        None,
        BUILD_LIMIT,
        "cargo build --release --bins",
    )?;
    check_binaries(paths)
}

/// Copies the release binaries to the benchmark's own directory, so a build
/// by someone else in the shared target directory cannot swap them during
/// the run; returns the BLAKE3 of each copy (first 16 hex digits).
pub fn snapshot_binaries(paths: &Paths) -> anyhow::Result<BTreeMap<String, String>> {
    data::remove(&paths.snapshot)?;
    std::fs::create_dir_all(&paths.snapshot)
        .with_context(|| format!("creating {}", paths.snapshot.display()))?;
    let mut hashes = BTreeMap::new();
    // This program too: the link scenarios run its `nfdelay` task and the
    // memory ceiling its `mem-ceiling` task.
    let sources = PROGRAMS
        .map(|program| (program, paths.binaries.join(program)))
        .into_iter()
        .chain([("xtask", this_program()?)]);
    for (binary, from) in sources {
        let to = paths.snapshot.join(binary);
        std::fs::copy(&from, &to)
            .with_context(|| format!("copying {} to {}", from.display(), to.display()))?;
        let hash = data::hash(&to)?.to_hex();
        eprintln!(
            "{binary}: {} (blake3 {})",
            to.display(),
            &hash.as_str()[..16]
        );
        hashes.insert(binary.to_owned(), hash.as_str()[..16].to_owned());
    }
    Ok(hashes)
}

/// The file to copy this program from: its running image where `/proc`
/// shows it, which stays readable when a build has since replaced the file
/// it was started from (the build above includes this package); elsewhere
/// its path.
fn this_program() -> anyhow::Result<PathBuf> {
    let image = Path::new("/proc/self/exe");
    if image.exists() {
        return Ok(image.to_owned());
    }
    std::env::current_exe().context("the path of this program")
}

/// Fails unless both release binaries exist.
pub fn check_binaries(paths: &Paths) -> anyhow::Result<()> {
    for program in PROGRAMS {
        let path = paths.binaries.join(program);
        if !path.is_file() {
            bail!(
                "{} is missing; build it with `cargo {}` in {}",
                path.display(),
                BUILD_ARGUMENTS.join(" "),
                paths.workspace.display()
            );
        }
    }
    Ok(())
}

/// `git describe --always --dirty` of the workspace, or `unknown`.
pub fn commit(workspace: &Path) -> String {
    let describe = || -> anyhow::Result<String> {
        let mut output = tempfile::tempfile().context("creating a temporary file")?;
        let mut command = Command::new("git");
        command
            .args(["describe", "--always", "--dirty"])
            .current_dir(workspace)
            .stdout(output.try_clone().context("duplicating a file handle")?)
            .stderr(std::process::Stdio::null());
        process::run_ok(
            &mut command,
            None,
            process::SHORT_COMMAND_LIMIT,
            "git describe",
        )?;
        let mut text = String::new();
        use std::io::{Read as _, Seek as _};
        output.rewind().context("rewinding git's output")?;
        output
            .read_to_string(&mut text)
            .context("reading git's output")?;
        Ok(text.trim().to_owned())
    };
    describe().unwrap_or_else(|_| "unknown".into())
}
