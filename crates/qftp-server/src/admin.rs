//! The administrator's operations on a server root: create it, and add,
//! change, list, remove and recount users.
//!
//! Each operation is a function over a [`ServerRoot`] that does the work and
//! returns what it did, for a program to report; they run on the same SQLite
//! database as a running server, whose connections see a change at the
//! user's next login (quotas within a second).
//!
//! This module parses no arguments, prompts for nothing and prints nothing:
//! a password comes from a function the caller passes, and the outcome is a
//! value. It holds no rules of its own about users, certificates or
//! settings either: it calls [`crate::userdb`], [`crate::certs`],
//! [`crate::auth`], [`crate::config`] and [`crate::jail`].

use std::fs;
use std::io;
use std::path::{Path, PathBuf};

use qftp_transport::Fingerprint;

use crate::auth::{AuthError, hash_password};
use crate::certs::{self, CertError};
use crate::config::{CONFIG_TEMPLATE, ConfigError, ServerConfig, ServerRoot};
use crate::userdb::{DbError, UserDb, UserRecord, validate_user_name};

/// An administrative operation failed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum AdminError {
    /// The root lacks a file that `init` creates.
    #[error(
        "{} is not initialised ({} is missing): run `qftp-server init` first",
        root.display(),
        missing.display()
    )]
    NotInitialised {
        /// The server root.
        root: PathBuf,
        /// The first missing file.
        missing: PathBuf,
    },
    /// The root has no user database yet.
    #[error("{} has no user database: run `qftp-server init` first", .0.display())]
    NoDatabase(PathBuf),
    /// A directory could not be created.
    #[error("cannot create directory {}", path.display())]
    CreateDirectory {
        /// The directory.
        path: PathBuf,
        /// Why.
        source: io::Error,
    },
    /// The configuration template could not be written.
    #[error("cannot write {}", path.display())]
    WriteConfig {
        /// The configuration file.
        path: PathBuf,
        /// Why.
        source: io::Error,
    },
    /// A home to purge is the server root or contains it.
    #[error("refusing to purge {}: it contains the server root", .0.display())]
    PurgeRoot(PathBuf),
    /// The user was deleted but their home could not be removed.
    #[error("deleted user {name}, but cannot remove {}", home.display())]
    Purge {
        /// The deleted user.
        name: String,
        /// Their home.
        home: PathBuf,
        /// Why.
        source: io::Error,
    },
    /// A home could not be measured.
    #[error("cannot scan home {}", home.display())]
    ScanHome {
        /// The home.
        home: PathBuf,
        /// Why.
        source: io::Error,
    },
    /// A setting of `config.toml` has a value the operation cannot use.
    #[error("{0}")]
    Setting(String),
    /// The configuration could not be loaded.
    #[error(transparent)]
    Config(#[from] ConfigError),
    /// The certificate could not be made or read.
    #[error(transparent)]
    Certificate(#[from] CertError),
    /// The user database refused.
    #[error(transparent)]
    Database(#[from] DbError),
    /// The password could not be hashed.
    #[error(transparent)]
    Hash(#[from] AuthError),
    /// The caller's password source failed.
    #[error(transparent)]
    Password(Box<dyn std::error::Error + Send + Sync>),
}

/// A result of an administrative operation.
pub type AdminResult<T> = Result<T, AdminError>;

/// One thing [`init`] did, in the order it did them.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum InitStep {
    /// A directory (the root, the homes) was made, or already existed.
    Directory {
        /// The directory.
        path: PathBuf,
        /// Whether it was made now.
        created: bool,
    },
    /// A new certificate and key were written.
    Certificate {
        /// The certificate file.
        cert: PathBuf,
        /// The private key file.
        key: PathBuf,
    },
    /// The configuration template was written, or a file was kept.
    Config {
        /// The configuration file.
        path: PathBuf,
        /// Whether it was written now.
        created: bool,
    },
    /// The user database was made, or an existing one was kept.
    Database {
        /// The database file.
        path: PathBuf,
        /// Whether it was made now.
        created: bool,
    },
    /// The fingerprint of the root's certificate, which clients pin.
    Fingerprint(Fingerprint),
}

/// Creates the server root (mode 0700): a self-signed certificate for
/// `localhost` and `sans`, the configuration template, the user database
/// and the homes directory, keeping what exists. An existing certificate is
/// replaced only with `force` ([`CertError::Exists`] otherwise). Each step
/// is passed to `report` as it is done.
pub fn init(
    root: &ServerRoot,
    sans: &[String],
    force: bool,
    mut report: impl FnMut(InitStep),
) -> AdminResult<()> {
    report(InitStep::Directory {
        path: root.path().to_owned(),
        created: create_private_dir(root.path())?,
    });
    create_private_dir(&root.certs_dir())?;
    let (cert, key) = (root.cert_file(), root.key_file());
    certs::generate_self_signed(&cert, &key, sans, force)?;
    report(InitStep::Certificate { cert, key });
    let path = root.config_file();
    let created = !path.exists();
    if created {
        fs::write(&path, CONFIG_TEMPLATE).map_err(|source| AdminError::WriteConfig {
            path: path.clone(),
            source,
        })?;
    }
    report(InitStep::Config { path, created });
    let config = ServerConfig::load(root)?;
    let database = root.database();
    let created = !database.exists();
    UserDb::open(&database)?;
    report(InitStep::Database {
        path: database,
        created,
    });
    let homes = root.homes_dir(&config);
    let created = create_private_dir(&homes)?;
    report(InitStep::Directory {
        path: homes,
        created,
    });
    report(InitStep::Fingerprint(certs::fingerprint(
        &root.cert_file(),
    )?));
    Ok(())
}

/// Fails with [`AdminError::NotInitialised`] unless the root has a config
/// file and a certificate with its key.
pub fn require_initialised(root: &ServerRoot) -> AdminResult<()> {
    for path in [root.config_file(), root.cert_file(), root.key_file()] {
        if !path.exists() {
            return Err(AdminError::NotInitialised {
                root: root.path().to_owned(),
                missing: path,
            });
        }
    }
    Ok(())
}

/// Creates `path` and any missing parents with mode 0700; whether it was
/// created (false if it already existed).
fn create_private_dir(path: &Path) -> AdminResult<bool> {
    if path.is_dir() {
        return Ok(false);
    }
    let mut builder = fs::DirBuilder::new();
    builder.recursive(true);
    #[cfg(unix)]
    std::os::unix::fs::DirBuilderExt::mode(&mut builder, 0o700);
    builder
        .create(path)
        .map_err(|source| AdminError::CreateDirectory {
            path: path.to_owned(),
            source,
        })?;
    Ok(true)
}

/// The configuration and the user database of an initialised root.
fn open_admin(root: &ServerRoot) -> AdminResult<(ServerConfig, UserDb)> {
    let database = root.database();
    if !database.exists() {
        return Err(AdminError::NoDatabase(root.path().to_owned()));
    }
    let config = ServerConfig::load(root)?;
    Ok((config, UserDb::open(&database)?))
}

fn existing_user(db: &UserDb, name: &str) -> AdminResult<UserRecord> {
    Ok(db
        .user(name)?
        .ok_or_else(|| DbError::NoSuchUser(name.to_owned()))?)
}

/// Asks `read_password` for a password and hashes it.
fn new_password_hash<E>(read_password: impl FnOnce() -> Result<String, E>) -> AdminResult<String>
where
    E: Into<Box<dyn std::error::Error + Send + Sync>>,
{
    let password = read_password().map_err(|error| AdminError::Password(error.into()))?;
    Ok(hash_password(&password)?)
}

/// A user to add.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewUser {
    /// The user name (see [`validate_user_name`]).
    pub name: String,
    /// `Some(None)` for unlimited, `None` for `default_quota` from `config.toml`.
    pub quota: Option<Option<u64>>,
    /// The home, relative paths taken from the root; `None` for `HOMES_DIR/NAME`.
    pub home: Option<PathBuf>,
}

/// What [`add_user`] did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AddedUser {
    /// The user's quota in bytes (`None`: unlimited).
    pub quota: Option<u64>,
    /// The user's home.
    pub home: PathBuf,
    /// Whether the home was made now (else it existed and is not counted yet).
    pub home_created: bool,
}

/// Adds a user and creates their home. The password is asked for only once
/// the name is valid and free.
pub fn add_user<E>(
    root: &ServerRoot,
    user: &NewUser,
    read_password: impl FnOnce() -> Result<String, E>,
) -> AdminResult<AddedUser>
where
    E: Into<Box<dyn std::error::Error + Send + Sync>>,
{
    validate_user_name(&user.name)?;
    let (config, db) = open_admin(root)?;
    if db.user(&user.name)?.is_some() {
        return Err(DbError::UserExists(user.name.clone()).into());
    }
    let quota = match user.quota {
        Some(quota) => quota,
        None => config.default_quota()?,
    };
    let password_hash = new_password_hash(read_password)?;
    let record = UserRecord {
        name: user.name.clone(),
        password_hash,
        quota,
        used: 0,
        home: user.home.clone(),
        account: 0,
    };
    let home = root.home_of(&config, &record);
    let home_created = create_private_dir(&home)?;
    db.add_user(
        &record.name,
        &record.password_hash,
        quota,
        record.home.as_deref(),
    )?;
    Ok(AddedUser {
        quota,
        home,
        home_created,
    })
}

/// Changes a user's password, which ends their sessions.
pub fn set_password<E>(
    root: &ServerRoot,
    name: &str,
    read_password: impl FnOnce() -> Result<String, E>,
) -> AdminResult<()>
where
    E: Into<Box<dyn std::error::Error + Send + Sync>>,
{
    let (_, db) = open_admin(root)?;
    existing_user(&db, name)?;
    let password_hash = new_password_hash(read_password)?;
    db.set_password(name, &password_hash)?;
    Ok(())
}

/// Deletes a user, and with `purge` their home and everything in it; the
/// home that was theirs is returned. A home that is the server root or
/// contains it is never purged ([`AdminError::PurgeRoot`], nothing deleted).
pub fn delete_user(root: &ServerRoot, name: &str, purge: bool) -> AdminResult<PathBuf> {
    let (config, db) = open_admin(root)?;
    let record = existing_user(&db, name)?;
    let home = root.home_of(&config, &record);
    if purge {
        refuse_to_purge_root(root, &home)?;
    }
    db.delete_user(&record.name)?;
    if purge {
        match fs::remove_dir_all(&home) {
            Ok(()) => {}
            Err(error) if error.kind() == io::ErrorKind::NotFound => {}
            Err(source) => {
                return Err(AdminError::Purge {
                    name: record.name,
                    home,
                    source,
                });
            }
        }
    }
    Ok(home)
}

/// A home that is the server root or contains it must never be purged.
fn refuse_to_purge_root(root: &ServerRoot, home: &Path) -> AdminResult<()> {
    let (Ok(home), Ok(root_path)) = (home.canonicalize(), root.path().canonicalize()) else {
        return Ok(());
    };
    if root_path.starts_with(&home) {
        return Err(AdminError::PurgeRoot(home));
    }
    Ok(())
}

/// Every user with their home, sorted by name.
pub fn list_users(root: &ServerRoot) -> AdminResult<Vec<(UserRecord, PathBuf)>> {
    let (config, db) = open_admin(root)?;
    let users = db.users()?;
    Ok(users
        .into_iter()
        .map(|user| {
            let home = root.home_of(&config, &user);
            (user, home)
        })
        .collect())
}

/// Sets a user's quota (`None`: unlimited); the bytes they use.
pub fn set_quota(root: &ServerRoot, name: &str, quota: Option<u64>) -> AdminResult<u64> {
    let (_, db) = open_admin(root)?;
    db.set_quota(name, quota)?;
    let (used, _) = db.usage(name)?;
    Ok(used)
}

/// What [`rescan`] found.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Rescanned {
    /// The bytes the ledger held before.
    pub before: u64,
    /// The bytes the home holds, now in the ledger.
    pub after: u64,
}

/// Measures a user's home as the server does and stores the result.
pub fn rescan(root: &ServerRoot, name: &str) -> AdminResult<Rescanned> {
    let (config, db) = open_admin(root)?;
    let record = existing_user(&db, name)?;
    let home = root.home_of(&config, &record);
    let limits =
        crate::jail::JailLimits::from_config(&config.limits).map_err(AdminError::Setting)?;
    let after = crate::jail::Jail::open(&home, name, limits)
        .and_then(|jail| jail.disk_usage())
        .map_err(|source| AdminError::ScanHome { home, source })?
        .bytes;
    db.set_used(name, after)?;
    Ok(Rescanned {
        before: record.used,
        after,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::auth::verify_password;

    fn initialised() -> (tempfile::TempDir, ServerRoot) {
        let dir = tempfile::tempdir().unwrap();
        let root = ServerRoot::new(dir.path().join("data"));
        init(&root, &["files.example.org".into()], false, |_| {}).unwrap();
        (dir, root)
    }

    fn new_user(name: &str, quota: Option<Option<u64>>) -> NewUser {
        NewUser {
            name: name.into(),
            quota,
            home: None,
        }
    }

    fn add(root: &ServerRoot, name: &str, quota: Option<Option<u64>>) -> AddedUser {
        add_user(root, &new_user(name, quota), || {
            Ok::<_, io::Error>("pw-1".into())
        })
        .unwrap()
    }

    fn database(root: &ServerRoot) -> UserDb {
        UserDb::open(&root.database()).unwrap()
    }

    #[test]
    fn init_creates_the_root_and_reports_each_step() {
        let dir = tempfile::tempdir().unwrap();
        let root = ServerRoot::new(dir.path().join("data"));
        let mut steps = Vec::new();
        init(&root, &[], false, |step| steps.push(step)).unwrap();
        assert_eq!(
            fs::read_to_string(root.config_file()).unwrap(),
            CONFIG_TEMPLATE
        );
        assert!(root.cert_file().is_file() && root.key_file().is_file());
        assert!(root.database().is_file());
        let homes = root.homes_dir(&ServerConfig::default());
        assert!(homes.is_dir());
        let fingerprint = certs::fingerprint(&root.cert_file()).unwrap();
        assert_eq!(
            steps,
            vec![
                InitStep::Directory {
                    path: root.path().to_owned(),
                    created: true
                },
                InitStep::Certificate {
                    cert: root.cert_file(),
                    key: root.key_file()
                },
                InitStep::Config {
                    path: root.config_file(),
                    created: true
                },
                InitStep::Database {
                    path: root.database(),
                    created: true
                },
                InitStep::Directory {
                    path: homes,
                    created: true
                },
                InitStep::Fingerprint(fingerprint),
            ]
        );
        require_initialised(&root).unwrap();
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let mode = fs::metadata(root.path()).unwrap().permissions().mode();
            assert_eq!(mode & 0o777, 0o700);
        }
    }

    #[test]
    fn init_again_keeps_config_and_replaces_the_certificate_only_when_forced() {
        let (_dir, root) = initialised();
        fs::write(root.config_file(), "max_connections = 7\n").unwrap();
        let before = certs::fingerprint(&root.cert_file()).unwrap();
        let error = init(&root, &[], false, |_| {}).unwrap_err();
        assert!(
            matches!(error, AdminError::Certificate(CertError::Exists(_))),
            "{error:?}"
        );
        assert_eq!(certs::fingerprint(&root.cert_file()).unwrap(), before);
        let mut kept_config = false;
        init(&root, &[], true, |step| {
            kept_config |= step
                == InitStep::Config {
                    path: root.config_file(),
                    created: false,
                };
        })
        .unwrap();
        assert!(kept_config);
        assert_ne!(certs::fingerprint(&root.cert_file()).unwrap(), before);
        assert_eq!(
            fs::read_to_string(root.config_file()).unwrap(),
            "max_connections = 7\n"
        );
    }

    #[test]
    fn uninitialised_root_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let root = ServerRoot::new(dir.path());
        let error = require_initialised(&root).unwrap_err();
        assert!(error.to_string().contains("run `qftp-server init` first"));
        let error = list_users(&root).unwrap_err();
        assert!(error.to_string().contains("run `qftp-server init` first"));
        assert!(!root.database().exists());
    }

    #[test]
    fn add_user_stores_the_user_and_creates_the_home() {
        let (_dir, root) = initialised();
        let added = add(&root, "alice", Some(Some(500 << 20)));
        assert_eq!(added.quota, Some(500 << 20));
        assert!(added.home_created);
        let record = database(&root).user("alice").unwrap().unwrap();
        assert_eq!(record.quota, Some(500 << 20));
        assert!(verify_password(&record.password_hash, "pw-1"));
        assert!(root.home_of(&ServerConfig::default(), &record).is_dir());
        let error = add_user(&root, &new_user("alice", None), || -> io::Result<String> {
            panic!("no password should be asked for an existing user")
        })
        .unwrap_err();
        assert_eq!(error.to_string(), "user \"alice\" already exists");
    }

    #[test]
    fn add_user_uses_the_default_quota_and_a_custom_home() {
        let (_dir, root) = initialised();
        fs::write(root.config_file(), "default_quota = \"1GiB\"\n").unwrap();
        let user = NewUser {
            home: Some(PathBuf::from("elsewhere/bob")),
            ..new_user("bob", None)
        };
        add_user(&root, &user, || Ok::<_, io::Error>("pw".into())).unwrap();
        let record = database(&root).user("bob").unwrap().unwrap();
        assert_eq!(record.quota, Some(1 << 30));
        assert!(root.path().join("elsewhere/bob").is_dir());
    }

    #[test]
    fn add_user_refuses_bad_names_and_failed_password_sources() {
        let (_dir, root) = initialised();
        let error = add_user(&root, &new_user(".x", None), || {
            Ok::<_, io::Error>("pw".into())
        })
        .unwrap_err();
        assert!(error.to_string().contains("invalid user name"));
        let error = add_user(&root, &new_user("carol", None), || {
            Err(io::Error::other("the passwords do not match"))
        })
        .unwrap_err();
        assert_eq!(error.to_string(), "the passwords do not match");
        assert_eq!(database(&root).user("carol").unwrap(), None);
    }

    #[test]
    fn set_password_changes_the_hash_and_ends_sessions() {
        let (_dir, root) = initialised();
        add(&root, "alice", None);
        let db = database(&root);
        db.create_session("alice", &[1; 32], i64::MAX).unwrap();
        set_password(&root, "alice", || Ok::<_, io::Error>("pw-2".into())).unwrap();
        let record = db.user("alice").unwrap().unwrap();
        assert!(verify_password(&record.password_hash, "pw-2"));
        assert_eq!(db.session_user(&[1; 32], 0).unwrap(), None);
        let error = set_password(&root, "nobody", || Ok::<_, io::Error>("x".into())).unwrap_err();
        assert_eq!(error.to_string(), "no such user \"nobody\"");
    }

    #[test]
    fn delete_keeps_the_home_unless_purging() {
        let (_dir, root) = initialised();
        add(&root, "alice", None);
        add(&root, "bob", None);
        let homes = root.homes_dir(&ServerConfig::default());
        fs::write(homes.join("alice/file"), "x").unwrap();
        assert_eq!(
            delete_user(&root, "alice", false).unwrap(),
            homes.join("alice")
        );
        assert!(homes.join("alice/file").exists());
        delete_user(&root, "bob", true).unwrap();
        assert!(!homes.join("bob").exists());
        assert!(database(&root).users().unwrap().is_empty());
    }

    #[test]
    fn purge_never_removes_the_root() {
        let (_dir, root) = initialised();
        let user = NewUser {
            home: Some(PathBuf::from(".")),
            ..new_user("odd", None)
        };
        add_user(&root, &user, || Ok::<_, io::Error>("pw".into())).unwrap();
        let error = delete_user(&root, "odd", true).unwrap_err();
        assert!(error.to_string().contains("contains the server root"));
        assert!(root.database().exists());
        assert!(database(&root).user("odd").unwrap().is_some());
    }

    #[test]
    fn users_are_listed_by_name_with_their_homes() {
        let (_dir, root) = initialised();
        assert!(list_users(&root).unwrap().is_empty());
        add(&root, "bob", None);
        add(&root, "alice", Some(Some(10 << 30)));
        let users = list_users(&root).unwrap();
        let names: Vec<&str> = users.iter().map(|(user, _)| user.name.as_str()).collect();
        assert_eq!(names, ["alice", "bob"]);
        assert!(users[0].1.ends_with("homes/alice"));
    }

    #[test]
    fn quota_is_changed() {
        let (_dir, root) = initialised();
        add(&root, "alice", None);
        assert_eq!(set_quota(&root, "alice", Some(2048)).unwrap(), 0);
        assert_eq!(database(&root).usage("alice").unwrap(), (0, Some(2048)));
        set_quota(&root, "alice", None).unwrap();
        assert_eq!(database(&root).usage("alice").unwrap(), (0, None));
        let error = set_quota(&root, "nobody", None).unwrap_err();
        assert_eq!(error.to_string(), "no such user \"nobody\"");
    }

    #[test]
    fn rescan_counts_files_in_the_home_only() {
        let (dir, root) = initialised();
        add(&root, "alice", None);
        let home = root.homes_dir(&ServerConfig::default()).join("alice");
        fs::create_dir_all(home.join("a/b")).unwrap();
        fs::write(home.join("top"), vec![0; 100]).unwrap();
        fs::write(home.join("a/b/deep"), vec![0; 20]).unwrap();
        fs::write(home.join(qftp_proto::partial_name("upload")), vec![0; 3]).unwrap();
        let outside = dir.path().join("outside");
        fs::create_dir(&outside).unwrap();
        fs::write(outside.join("big"), vec![0; 5000]).unwrap();
        #[cfg(unix)]
        {
            std::os::unix::fs::symlink(&outside, home.join("link-dir")).unwrap();
            std::os::unix::fs::symlink(outside.join("big"), home.join("link-file")).unwrap();
        }
        database(&root).set_used("alice", 999).unwrap();
        // Everything on disk is charged: files (an old-style partial
        // included), the two directories and the two links as one block each.
        let expected = 100 + 20 + 3 + 4 * 4096;
        assert_eq!(
            rescan(&root, "alice").unwrap(),
            Rescanned {
                before: 999,
                after: expected
            }
        );
        assert_eq!(database(&root).usage("alice").unwrap().0, expected);
    }
}
