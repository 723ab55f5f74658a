//! The client's config directory: the saved sessions and the known hosts.
//!
//! The directory is `$QFTP_CONFIG_DIR` if set, else `qftp` inside the
//! platform's config directory. Files here are written atomically with mode
//! 0600. A session holds the server, the user, the session token and the
//! current directory; never a password. Each server has its own session in
//! `sessions/` (so several servers are used without logging in again), and
//! `session.toml` is the default one: the last login's, used by commands
//! that name no server.

use std::io::Write as _;
use std::os::unix::fs::{DirBuilderExt as _, PermissionsExt as _};
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::error::ClientError;

/// The file name of the saved session.
pub const SESSION_FILE: &str = "session.toml";
/// The file name of the known-hosts list.
pub const KNOWN_HOSTS_FILE: &str = "known_hosts";
/// The directory of the sessions per server.
pub const SESSIONS_DIR: &str = "sessions";

/// The file of the session with `server` (`host:port`), in `dir`.
pub fn session_path(dir: &Path, server: &str) -> PathBuf {
    let name: String = server
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || matches!(c, '.' | '-') {
                c
            } else {
                '_'
            }
        })
        .collect();
    dir.join(SESSIONS_DIR).join(format!("{name}.toml"))
}

/// The client's config directory.
pub fn config_dir() -> Result<PathBuf, ClientError> {
    if let Some(dir) = std::env::var_os("QFTP_CONFIG_DIR").filter(|dir| !dir.is_empty()) {
        return Ok(PathBuf::from(dir));
    }
    dirs::config_dir()
        .map(|dir| dir.join("qftp"))
        .ok_or_else(|| {
            ClientError::Usage("cannot find a config directory; set QFTP_CONFIG_DIR".into())
        })
}

/// What `qftp login` leaves for later commands.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SavedSession {
    /// The server as `host:port`.
    pub server: String,
    /// The user logged in.
    pub user: String,
    /// The session token (not the password).
    pub token: String,
    /// The remote current directory.
    pub cwd: String,
    /// A CA file to verify the server with, instead of the pinned fingerprint.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ca: Option<PathBuf>,
}

impl SavedSession {
    /// Reads the default session from `dir`, or `None` if there is none.
    pub fn load(dir: &Path) -> Result<Option<Self>, ClientError> {
        Self::read(&dir.join(SESSION_FILE))
    }

    /// Reads the session with `server` (`host:port`), or `None`.
    pub fn load_for(dir: &Path, server: &str) -> Result<Option<Self>, ClientError> {
        if let Some(session) = Self::read(&session_path(dir, server))? {
            return Ok(Some(session));
        }
        Ok(Self::load(dir)?.filter(|session| session.server == server))
    }

    fn read(path: &Path) -> Result<Option<Self>, ClientError> {
        match std::fs::read_to_string(path) {
            Ok(text) => toml::from_str(&text)
                .map(Some)
                .map_err(|error| ClientError::Usage(format!("{}: {error}", path.display()))),
            Err(error) if error.kind() == std::io::ErrorKind::NotFound => Ok(None),
            Err(error) => Err(ClientError::local(path, error)),
        }
    }

    /// Writes the session (mode 0600) as its server's, and as the default
    /// when the default is this server's or there is none.
    pub fn save(&self, dir: &Path) -> Result<(), ClientError> {
        let default = Self::load(dir)?;
        let is_default = default.is_none_or(|default| default.server == self.server);
        self.write(dir, is_default)
    }

    /// Writes the session as its server's and as the default.
    pub fn save_as_default(&self, dir: &Path) -> Result<(), ClientError> {
        self.write(dir, true)
    }

    fn write(&self, dir: &Path, as_default: bool) -> Result<(), ClientError> {
        let text = toml::to_string(self).map_err(|error| ClientError::Usage(error.to_string()))?;
        write_private(&session_path(dir, &self.server), text.as_bytes())?;
        if as_default {
            write_private(&dir.join(SESSION_FILE), text.as_bytes())?;
        }
        Ok(())
    }

    /// Forgets the session with `server`, and the default one if it is
    /// that server's.
    pub fn remove_for(dir: &Path, server: &str) -> Result<(), ClientError> {
        remove_file(&session_path(dir, server))?;
        if Self::load(dir)?.is_some_and(|default| default.server == server) {
            remove_file(&dir.join(SESSION_FILE))?;
        }
        Ok(())
    }
}

fn remove_file(path: &Path) -> Result<(), ClientError> {
    match std::fs::remove_file(path) {
        Ok(()) => Ok(()),
        Err(error) if error.kind() == std::io::ErrorKind::NotFound => Ok(()),
        Err(error) => Err(ClientError::local(path, error)),
    }
}

/// Writes `bytes` to `path` atomically (temporary file, fsync, rename) with
/// mode 0600, creating the parent directory with mode 0700.
///
/// The temporary file gets a random name and is created exclusively
/// (`O_CREAT | O_EXCL`, which never follows a symlink), so in a config
/// directory others can write to, a link planted at a predictable name
/// cannot redirect the session token into a file of the attacker's choice.
pub fn write_private(path: &Path, bytes: &[u8]) -> Result<(), ClientError> {
    let parent = path.parent().unwrap_or(Path::new("."));
    std::fs::DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(parent)
        .map_err(|error| ClientError::local(parent, error))?;
    let file_name = path
        .file_name()
        .and_then(|name| name.to_str())
        .unwrap_or("file");
    let result = (|| {
        let mut temporary = tempfile::Builder::new()
            .prefix(&format!(".{file_name}."))
            .suffix(".tmp")
            .permissions(std::fs::Permissions::from_mode(0o600))
            .tempfile_in(parent)?;
        temporary.write_all(bytes)?;
        temporary.as_file().sync_all()?;
        // On failure the temporary file is removed when it is dropped.
        temporary.persist(path).map_err(|error| error.error)?;
        Ok(())
    })();
    result.map_err(|error: std::io::Error| ClientError::local(path, error))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn session_is_private_and_round_trips() {
        let temp = tempfile::tempdir().unwrap();
        let dir = temp.path().join("config");
        assert_eq!(SavedSession::load(&dir).unwrap(), None);
        let session = SavedSession {
            server: "localhost:4433".into(),
            user: "alice".into(),
            token: "ab".repeat(32),
            cwd: "/docs".into(),
            ca: None,
        };
        session.save(&dir).unwrap();
        let mode = std::fs::metadata(dir.join(SESSION_FILE))
            .unwrap()
            .permissions()
            .mode();
        assert_eq!(mode & 0o777, 0o600);
        assert_eq!(SavedSession::load(&dir).unwrap(), Some(session.clone()));
        let other = SavedSession {
            server: "[::1]:7".into(),
            ..session.clone()
        };
        other.save(&dir).unwrap();
        // The default stays the first server's; each has its own.
        assert_eq!(SavedSession::load(&dir).unwrap(), Some(session.clone()));
        assert_eq!(
            SavedSession::load_for(&dir, "[::1]:7").unwrap(),
            Some(other.clone())
        );
        other.save_as_default(&dir).unwrap();
        assert_eq!(SavedSession::load(&dir).unwrap(), Some(other));
        SavedSession::remove_for(&dir, "[::1]:7").unwrap();
        assert_eq!(SavedSession::load(&dir).unwrap(), None);
        assert_eq!(
            SavedSession::load_for(&dir, "localhost:4433").unwrap(),
            Some(session)
        );
    }

    #[test]
    fn a_symlink_planted_at_the_temporary_name_is_not_followed() {
        let temp = tempfile::tempdir().unwrap();
        let dir = temp.path().join("config");
        std::fs::create_dir(&dir).unwrap();
        let victim = temp.path().join("victim");
        std::fs::write(&victim, "precious").unwrap();
        // The name the temporary file used to have, predictable from the PID.
        let planted = dir.join(format!(".{SESSION_FILE}.{}.tmp", std::process::id()));
        std::os::unix::fs::symlink(&victim, &planted).unwrap();
        let session = SavedSession {
            server: "localhost:4433".into(),
            user: "alice".into(),
            token: "cd".repeat(32),
            cwd: "/".into(),
            ca: None,
        };
        session.save(&dir).unwrap();
        assert_eq!(std::fs::read_to_string(&victim).unwrap(), "precious");
        assert!(
            std::fs::symlink_metadata(&planted)
                .unwrap()
                .file_type()
                .is_symlink()
        );
        let saved = std::fs::symlink_metadata(dir.join(SESSION_FILE)).unwrap();
        assert!(saved.file_type().is_file());
        assert_eq!(saved.permissions().mode() & 0o777, 0o600);
        assert_eq!(SavedSession::load(&dir).unwrap(), Some(session));
        // Only the planted link, the session and the sessions per server
        // are left behind.
        assert_eq!(std::fs::read_dir(&dir).unwrap().count(), 3);
    }
}
