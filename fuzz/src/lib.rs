//! The checks behind the qftp fuzz targets.
//!
//! Each target in `fuzz_targets/` is one call into a module here, so the same
//! checks also run as plain unit tests over the committed seed corpus
//! (`cargo test` in this directory, no cargo-fuzz needed) and the seed
//! generator (`cargo run --example seeds`) can use the input layouts they
//! document.

pub mod frames;
pub mod paths;
pub mod sizes;

#[cfg(test)]
mod corpus_replay {
    use std::path::Path;

    fn replay(target: &str, check: fn(&[u8])) {
        let dir = Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("corpus")
            .join(target);
        let mut count = 0;
        for entry in std::fs::read_dir(&dir).expect("the seed corpus exists") {
            let path = entry.unwrap().path();
            check(&std::fs::read(&path).unwrap());
            count += 1;
        }
        assert!(count > 0, "no seeds in {}", dir.display());
    }

    #[test]
    fn frame_seeds_pass() {
        replay("frames", super::frames::check);
    }

    #[test]
    fn path_seeds_pass() {
        replay("paths", super::paths::check);
    }

    #[test]
    fn size_seeds_pass() {
        replay("sizes", super::sizes::check);
    }
}
