//! The data sets the benchmark transfers and the checks that a copy matches
//! its source.
//!
//! Data sets are generated once under `target/bench/data` with
//! deterministic pseudo-random content (incompressible, identical on every
//! machine) and reused by later runs; a `NAME.complete` stamp next to each
//! one records that it was written completely with the current generator.

use std::fs::{self, File};
use std::io::{self, Write as _};
use std::path::{Path, PathBuf};

use anyhow::{Context as _, bail};
use serde::Serialize;

use crate::process;

/// Seed of the generator; change it (and the stamp) to get other content.
const SEED: u64 = 0x7166_7470_2d62_656e;

/// Most entries a directory walk visits before it gives up.
const MAX_ENTRIES: usize = 10_000_000;

/// A data set.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum DataSet {
    /// One file of 1 GiB.
    Big,
    /// 10,000 files of 4 KiB in 100 directories.
    Small,
    /// 1,000 files of 1 MiB in 10 directories.
    Medium,
    /// One file of 256 MiB, for the network-link scenarios.
    Link,
    /// 100,000 files of 100 B in 1,000 directories.
    Tiny,
}

/// How a data set is laid out.
#[derive(Debug, Clone, Copy)]
struct Shape {
    /// Directories of files; zero for a single file.
    directories: u64,
    files_per_directory: u64,
    file_size: u64,
}

impl DataSet {
    /// Its file or directory name under the data directory.
    pub fn name(self) -> &'static str {
        match self {
            Self::Big => "big-1g.bin",
            Self::Small => "small-10k-4k",
            Self::Medium => "medium-1k-1m",
            Self::Link => "link-256m.bin",
            Self::Tiny => "tiny-100k-100b",
        }
    }

    /// A short description.
    pub fn description(self) -> &'static str {
        match self {
            Self::Big => "one 1 GiB file",
            Self::Small => "10,000 files of 4 KiB in 100 directories",
            Self::Medium => "1,000 files of 1 MiB in 10 directories",
            Self::Link => "one 256 MiB file",
            Self::Tiny => "100,000 files of 100 B in 1,000 directories",
        }
    }

    fn shape(self) -> Shape {
        match self {
            Self::Big => Shape {
                directories: 0,
                files_per_directory: 1,
                file_size: 1 << 30,
            },
            Self::Small => Shape {
                directories: 100,
                files_per_directory: 100,
                file_size: 4 << 10,
            },
            Self::Medium => Shape {
                directories: 10,
                files_per_directory: 100,
                file_size: 1 << 20,
            },
            Self::Link => Shape {
                directories: 0,
                files_per_directory: 1,
                file_size: 256 << 20,
            },
            Self::Tiny => Shape {
                directories: 1_000,
                files_per_directory: 100,
                file_size: 100,
            },
        }
    }

    /// Whether it is a directory tree (else a single file).
    pub fn is_tree(self) -> bool {
        self.shape().directories > 0
    }

    /// Number of files.
    pub fn files(self) -> u64 {
        let shape = self.shape();
        shape.directories.max(1) * shape.files_per_directory
    }

    /// Payload bytes.
    pub fn bytes(self) -> u64 {
        self.files() * self.shape().file_size
    }

    fn stamp(self) -> String {
        format!(
            "{}; xorshift64* seed {SEED:#x}, one stream per file; format 1\n",
            self.description()
        )
    }
}

/// Makes sure the data set exists under `directory` and returns its path.
pub fn ensure(directory: &Path, set: DataSet) -> anyhow::Result<PathBuf> {
    let path = directory.join(set.name());
    let stamp_path = directory.join(format!("{}.complete", set.name()));
    let stamp = set.stamp();
    if path.exists() && fs::read_to_string(&stamp_path).is_ok_and(|found| found == stamp) {
        return Ok(path);
    }
    remove(&stamp_path)?;
    remove(&path)?;
    fs::create_dir_all(directory).with_context(|| format!("creating {}", directory.display()))?;
    eprintln!("generating {} at {}", set.description(), path.display());
    let shape = set.shape();
    if set.is_tree() {
        let mut index = 0;
        for directory_number in 0..shape.directories {
            process::check_interrupted()?;
            let subdirectory = path.join(format!("d{directory_number:03}"));
            fs::create_dir_all(&subdirectory)
                .with_context(|| format!("creating {}", subdirectory.display()))?;
            for file_number in 0..shape.files_per_directory {
                let file = subdirectory.join(format!("f{file_number:03}.bin"));
                write_random(&file, shape.file_size, SEED ^ index)?;
                index += 1;
            }
        }
    } else {
        write_random(&path, shape.file_size, SEED)?;
    }
    fs::write(&stamp_path, stamp).with_context(|| format!("writing {}", stamp_path.display()))?;
    Ok(path)
}

/// A xorshift64* generator: fast, deterministic, not for secrets.
#[derive(Debug)]
pub struct Generator(u64);

impl Generator {
    /// A generator whose sequence depends only on `seed`.
    pub fn new(seed: u64) -> Self {
        // Spread the seed so neighbouring seeds start far apart; never zero.
        Self(seed.wrapping_mul(0x9e37_79b9_7f4a_7c15) | 1)
    }

    /// The next 64 pseudo-random bits.
    pub fn next_u64(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }

    /// True with probability `probability` (0 never, 1 always).
    pub fn chance(&mut self, probability: f64) -> bool {
        // 53 random bits as a fraction in [0, 1).
        let fraction = (self.next_u64() >> 11) as f64 / (1u64 << 53) as f64;
        fraction < probability
    }

    fn fill(&mut self, buffer: &mut [u8]) {
        for chunk in buffer.chunks_mut(8) {
            let bytes = self.next_u64().to_le_bytes();
            chunk.copy_from_slice(&bytes[..chunk.len()]);
        }
    }
}

fn write_random(path: &Path, size: u64, seed: u64) -> anyhow::Result<()> {
    const BUFFER: u64 = 1 << 20;
    let mut generator = Generator::new(seed);
    let mut buffer = vec![0; usize::try_from(size.min(BUFFER)).context("buffer size")?];
    let mut file = File::create(path).with_context(|| format!("creating {}", path.display()))?;
    let mut left = size;
    while left > 0 {
        process::check_interrupted()?;
        let length = usize::try_from(left.min(BUFFER)).context("chunk size")?;
        generator.fill(&mut buffer[..length]);
        file.write_all(&buffer[..length])
            .with_context(|| format!("writing {}", path.display()))?;
        left -= length as u64;
    }
    Ok(())
}

/// Removes a file or a directory tree; a missing path is fine.
pub fn remove(path: &Path) -> anyhow::Result<()> {
    match fs::symlink_metadata(path) {
        Ok(metadata) if metadata.is_dir() => {
            fs::remove_dir_all(path).with_context(|| format!("removing {}", path.display()))
        }
        Ok(_) => fs::remove_file(path).with_context(|| format!("removing {}", path.display())),
        Err(error) if error.kind() == io::ErrorKind::NotFound => Ok(()),
        Err(error) => Err(error).with_context(|| format!("examining {}", path.display())),
    }
}

/// The regular files under `root` (or `root` itself), relative to it,
/// sorted; fails on anything that is neither a file nor a directory.
pub fn files(root: &Path) -> anyhow::Result<Vec<PathBuf>> {
    let metadata =
        fs::symlink_metadata(root).with_context(|| format!("examining {}", root.display()))?;
    if metadata.is_file() {
        return Ok(vec![PathBuf::new()]);
    }
    let mut found = Vec::new();
    let mut pending = vec![PathBuf::new()];
    let mut visited = 0;
    while let Some(relative) = pending.pop() {
        let directory = root.join(&relative);
        for entry in
            fs::read_dir(&directory).with_context(|| format!("listing {}", directory.display()))?
        {
            let entry = entry.with_context(|| format!("listing {}", directory.display()))?;
            visited += 1;
            if visited > MAX_ENTRIES {
                bail!("{} holds more than {MAX_ENTRIES} entries", root.display());
            }
            let kind = entry
                .file_type()
                .with_context(|| format!("examining {}", entry.path().display()))?;
            let path = relative.join(entry.file_name());
            if kind.is_dir() {
                pending.push(path);
            } else if kind.is_file() {
                found.push(path);
            } else {
                bail!(
                    "{}: not a regular file or directory",
                    entry.path().display()
                );
            }
        }
    }
    found.sort();
    Ok(found)
}

/// `root/relative`, or `root` itself for an empty `relative` (which
/// [`files`] returns for a single file; joining it would add a slash).
fn inside(root: &Path, relative: &Path) -> PathBuf {
    if relative.as_os_str().is_empty() {
        root.to_owned()
    } else {
        root.join(relative)
    }
}

/// Reads every file under `root`, so the page cache holds it.
pub fn warm(root: &Path) -> anyhow::Result<()> {
    for relative in files(root)? {
        process::check_interrupted()?;
        let path = inside(root, &relative);
        let mut file = File::open(&path).with_context(|| format!("opening {}", path.display()))?;
        io::copy(&mut file, &mut io::sink())
            .with_context(|| format!("reading {}", path.display()))?;
    }
    Ok(())
}

/// The BLAKE3 of a file.
pub fn hash(path: &Path) -> anyhow::Result<blake3::Hash> {
    let file = File::open(path).with_context(|| format!("opening {}", path.display()))?;
    let mut hasher = blake3::Hasher::new();
    hasher
        .update_reader(file)
        .with_context(|| format!("reading {}", path.display()))?;
    Ok(hasher.finalize())
}

/// Checks that `copy` holds exactly the files of `source` with the same
/// BLAKE3 hashes; returns how many files were compared.
pub fn verify(source: &Path, copy: &Path) -> anyhow::Result<usize> {
    let expected = files(source)?;
    let found = files(copy)?;
    if expected != found {
        let missing = expected
            .iter()
            .find(|path| found.binary_search(path).is_err());
        let extra = found
            .iter()
            .find(|path| expected.binary_search(path).is_err());
        bail!(
            "{} holds {} files where {} holds {} (first missing: {}, first extra: {})",
            copy.display(),
            found.len(),
            source.display(),
            expected.len(),
            missing.map_or("none".into(), |path| path.display().to_string()),
            extra.map_or("none".into(), |path| path.display().to_string()),
        );
    }
    for relative in &expected {
        process::check_interrupted()?;
        let (left, right) = (inside(source, relative), inside(copy, relative));
        if hash(&left)? != hash(&right)? {
            bail!("{} differs from {}", right.display(), left.display());
        }
    }
    Ok(expected.len())
}

/// Opens every file under `root` (or `root` itself) and fsyncs it, then
/// each directory holding such a file, one after the other: the durability
/// work qftp does for each file it stores (data, then the rename).
pub fn fsync_each(root: &Path) -> anyhow::Result<()> {
    let mut directories = Vec::new();
    for relative in files(root)? {
        let path = inside(root, &relative);
        File::open(&path)
            .and_then(|file| file.sync_all())
            .with_context(|| format!("syncing {}", path.display()))?;
        if let Some(parent) = path.parent()
            && directories
                .last()
                .is_none_or(|last: &PathBuf| last != parent)
        {
            directories.push(parent.to_owned());
        }
    }
    directories.sort();
    directories.dedup();
    for path in directories {
        File::open(&path)
            .and_then(|directory| directory.sync_all())
            .with_context(|| format!("syncing {}", path.display()))?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn generator_is_deterministic_and_seed_dependent() {
        let mut first = [0; 20];
        let mut second = [0; 20];
        Generator::new(1).fill(&mut first);
        Generator::new(1).fill(&mut second);
        assert_eq!(first, second);
        Generator::new(2).fill(&mut second);
        assert_ne!(first, second);
    }

    #[test]
    fn sizes_add_up() {
        assert_eq!(DataSet::Big.files(), 1);
        assert_eq!(DataSet::Big.bytes(), 1 << 30);
        assert_eq!(DataSet::Small.files(), 10_000);
        assert_eq!(DataSet::Small.bytes(), 40_960_000);
        assert_eq!(DataSet::Medium.bytes(), 1_048_576_000);
        assert_eq!(DataSet::Link.bytes(), 268_435_456);
    }

    #[test]
    fn verify_finds_differences() {
        let directory = tempfile::tempdir().unwrap();
        let source = directory.path().join("source");
        let copy = directory.path().join("copy");
        for root in [&source, &copy] {
            fs::create_dir_all(root.join("d")).unwrap();
            write_random(&root.join("d/a"), 5000, 7).unwrap();
            write_random(&root.join("b"), 10, 8).unwrap();
        }
        assert_eq!(verify(&source, &copy).unwrap(), 2);
        write_random(&copy.join("b"), 10, 9).unwrap();
        assert!(verify(&source, &copy).is_err());
        write_random(&copy.join("b"), 10, 8).unwrap();
        write_random(&copy.join("d/extra"), 1, 1).unwrap();
        assert!(verify(&source, &copy).is_err());
        fsync_each(&copy).unwrap();
        fsync_each(&copy.join("b")).unwrap();
        assert_eq!(verify(&source.join("b"), &copy.join("b")).unwrap(), 1);
    }
}
