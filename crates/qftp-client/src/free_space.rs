//! Room on the local file system for a pull, checked before it starts.
//!
//! A download that runs out of space half-way leaves a full disk and a
//! hidden partial file; this check refuses it up front instead, saying how
//! much it needs and how much is free, before any partial file exists. It
//! is a check at one moment: another program may still fill the disk
//! meanwhile, and then the download fails on its write as before.

use std::path::Path;

use cap_std::fs::Dir;

use crate::error::ClientError;

/// Refuses a pull of `needed` bytes into `directory` (shown as `shown`)
/// when the file system holding it has fewer bytes free for this user.
pub fn check_free_space(directory: &Dir, shown: &Path, needed: u64) -> Result<(), ClientError> {
    if needed == 0 {
        return Ok(());
    }
    let stats = rustix::fs::fstatvfs(directory)
        .map_err(|error| ClientError::local(shown, std::io::Error::from(error)))?;
    let free = stats.f_bavail.saturating_mul(stats.f_frsize);
    if needed > free {
        return Err(ClientError::NoSpace {
            path: shown.to_owned(),
            needed,
            free,
        });
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn more_than_the_file_system_holds_is_refused_with_both_figures() {
        let temp = tempfile::tempdir().unwrap();
        let directory = Dir::open_ambient_dir(temp.path(), cap_std::ambient_authority()).unwrap();
        assert!(check_free_space(&directory, temp.path(), 0).is_ok());
        assert!(check_free_space(&directory, temp.path(), 1).is_ok());
        let error = check_free_space(&directory, temp.path(), u64::MAX).unwrap_err();
        let ClientError::NoSpace { needed, free, .. } = &error else {
            panic!("not a space refusal: {error}");
        };
        assert_eq!(*needed, u64::MAX);
        assert!(*free < u64::MAX);
        let message = error.to_string();
        assert!(message.contains("needs 16 EiB"), "{message}");
        assert!(
            message.contains(&temp.path().display().to_string()),
            "{message}"
        );
    }
}
