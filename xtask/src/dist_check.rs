//! `cargo xtask dist-check`: checks the packaging in `dist/` with the tools
//! this machine has, and says which checks it could not run.
//!
//! - The systemd unit goes through `systemd-analyze verify` when systemd's
//!   tools are installed, with its `ExecStart` pointed at the workspace's
//!   built `qftp-server` (built first), since `verify` insists that the
//!   program exists.
//! - The container recipe is built with the first builder (podman, docker,
//!   buildah) whose service answers; with none, the check says so.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use anyhow::{Context as _, Result, bail};

/// The arguments of `dist-check`.
#[derive(Debug, clap::Args)]
pub struct DistCheckArgs {
    /// Skip the container build even when a builder runs.
    #[arg(long)]
    pub no_container: bool,
}

/// Runs the checks; fails if one that could run failed.
pub fn run(arguments: &DistCheckArgs) -> Result<()> {
    let workspace = workspace_root();
    check_unit(&workspace)?;
    if arguments.no_container {
        println!("container: skipped (--no-container)");
    } else {
        check_container(&workspace)?;
    }
    Ok(())
}

fn workspace_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("xtask sits in the workspace")
        .to_owned()
}

/// Whether `program` can be started at all.
fn installed(program: &str, probe: &[&str]) -> bool {
    Command::new(program)
        .args(probe)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|status| status.success())
}

fn check_unit(workspace: &Path) -> Result<()> {
    let unit_path = workspace.join("dist/qftp-server.service");
    let unit = std::fs::read_to_string(&unit_path)
        .with_context(|| format!("reading {}", unit_path.display()))?;
    if !installed("systemd-analyze", &["--version"]) {
        println!("systemd unit: not verified (systemd-analyze is not installed)");
        return Ok(());
    }
    let status = Command::new(env!("CARGO"))
        .args(["build", "--locked", "--bin", "qftp-server"])
        .current_dir(workspace)
        .status()
        .context("running cargo build")?;
    if !status.success() {
        bail!("cargo build --bin qftp-server failed");
    }
    let target = std::env::var_os("CARGO_TARGET_DIR")
        .map_or_else(|| workspace.join("target"), PathBuf::from);
    let program = target.join("debug/qftp-server");
    let scratch = tempfile::tempdir().context("making a scratch directory")?;
    let copy = scratch.path().join("qftp-server.service");
    std::fs::write(&copy, with_exec_start(&unit, &program)?)
        .with_context(|| format!("writing {}", copy.display()))?;
    let output = Command::new("systemd-analyze")
        .arg("verify")
        .arg(&copy)
        .output()
        .context("running systemd-analyze verify")?;
    let complaints = String::from_utf8_lossy(&output.stderr);
    if !output.status.success() || !complaints.trim().is_empty() {
        bail!("systemd-analyze verify rejects dist/qftp-server.service:\n{complaints}");
    }
    println!("systemd unit: systemd-analyze verify passed");
    Ok(())
}

/// `unit` with its `ExecStart` program replaced by `program`.
fn with_exec_start(unit: &str, program: &Path) -> Result<String> {
    let mut replaced = false;
    let lines: Vec<String> = unit
        .lines()
        .map(|line| match line.strip_prefix("ExecStart=") {
            Some(command) => {
                replaced = true;
                let arguments = command.split_once(' ').map_or("", |(_, rest)| rest);
                format!("ExecStart={} {arguments}", program.display())
            }
            None => line.to_owned(),
        })
        .collect();
    if !replaced {
        bail!("the unit has no ExecStart line");
    }
    Ok(lines.join("\n") + "\n")
}

fn check_container(workspace: &Path) -> Result<()> {
    let builders: [(&str, &[&str]); 3] = [
        ("podman", &["info"]),
        ("docker", &["info"]),
        ("buildah", &["info"]),
    ];
    let Some((builder, _)) = builders
        .iter()
        .find(|(program, probe)| installed(program, probe))
    else {
        println!("container: not built (no podman, docker or buildah answers here)");
        return Ok(());
    };
    let mut build = Command::new(builder);
    if *builder == "buildah" {
        build.arg("bud");
    } else {
        build.arg("build");
    }
    let status = build
        .args([
            "-f",
            "dist/Containerfile",
            "-t",
            "qftp-server:dist-check",
            ".",
        ])
        .current_dir(workspace)
        .status()
        .with_context(|| format!("running {builder}"))?;
    if !status.success() {
        bail!("{builder} could not build dist/Containerfile");
    }
    println!("container: built qftp-server:dist-check with {builder}");
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn exec_start_points_at_the_given_program() {
        let unit = "[Service]\nExecStart=/usr/local/bin/qftp-server serve\nUser=qftp\n";
        let changed = with_exec_start(unit, Path::new("/build/qftp-server")).unwrap();
        assert!(
            changed.contains("ExecStart=/build/qftp-server serve\n"),
            "{changed}"
        );
        assert!(changed.contains("User=qftp"));
        assert!(with_exec_start("[Service]\n", Path::new("/x")).is_err());
    }
}
