//! The BLAKE3 of a file from the chaining values of its fixed-size parts.
//!
//! A large upload is cut into parts of [`PART_SIZE`] bytes (the last one
//! shorter). [`PART_SIZE`] is a power of two of at least BLAKE3's chunk, so
//! every part but the last is a complete, aligned subtree of the file's
//! BLAKE3 tree, and the last is the right edge. Each part's chaining value
//! ([`chaining_value`]) is computed once, as it is uploaded, and stored; the
//! hash of any whole-part prefix, or of the whole file, is then merged
//! from those values ([`root_hash`]) without reading a byte back. One
//! exception is a single part on its own: a root is not a merge of
//! chaining values, so the first part's own BLAKE3 ([`PartHash::whole`]) is
//! kept beside its chaining value.

use blake3::hazmat::{
    HasherExt as _, Mode, left_subtree_len, merge_subtrees_non_root, merge_subtrees_root,
};

/// The size of every part of a multipart upload but the last (8 MiB).
pub const PART_SIZE: u64 = 8 << 20;

/// What is kept of one part's hash.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PartHash {
    /// The part's chaining value at its place in the file.
    pub chaining: [u8; 32],
    /// For the first part, its own BLAKE3 as a whole input (the hash of a
    /// one-part prefix).
    pub whole: Option<[u8; 32]>,
}

/// The hash of part `index` of a file cut into parts of `part_size` bytes
/// (a power of two of at least 1024), holding `data` (non-empty).
pub fn chaining_value(part_size: u64, index: u64, data: &[u8]) -> PartHash {
    let mut hasher = blake3::Hasher::new();
    hasher.set_input_offset(index * part_size);
    hasher.update(data);
    PartHash {
        chaining: hasher.finalize_non_root(),
        whole: (index == 0).then(|| *blake3::hash(data).as_bytes()),
    }
}

/// The BLAKE3 of the first `length` bytes of a file whose first
/// `parts.len()` parts of `part_size` hash as `parts`, where those parts
/// hold exactly `length` bytes (all full but possibly the last). `None` if
/// the values cannot describe that input (no parts, or a first part
/// without its whole hash when it is alone).
pub fn root_hash(part_size: u64, parts: &[PartHash], length: u64) -> Option<[u8; 32]> {
    match parts {
        [] => None,
        [only] => only.whole,
        _ => {
            let left = left_subtree_len(length);
            let split = usize::try_from(left / part_size).ok()?;
            let (left_parts, right_parts) = parts.split_at(split.min(parts.len()));
            if right_parts.is_empty() {
                return None;
            }
            let left_value = subtree(part_size, left_parts, left);
            let right_value = subtree(part_size, right_parts, length - left);
            Some(*merge_subtrees_root(&left_value, &right_value, Mode::Hash).as_bytes())
        }
    }
}

/// The chaining value of the non-root subtree of `length` bytes made of
/// `parts` (all aligned, so every split falls between parts).
fn subtree(part_size: u64, parts: &[PartHash], length: u64) -> [u8; 32] {
    if parts.len() == 1 {
        return parts[0].chaining;
    }
    let left = left_subtree_len(length);
    let split = usize::try_from(left / part_size)
        .unwrap_or(usize::MAX)
        .min(parts.len() - 1);
    let (left_parts, right_parts) = parts.split_at(split);
    merge_subtrees_non_root(
        &subtree(part_size, left_parts, left),
        &subtree(part_size, right_parts, length - left),
        Mode::Hash,
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    const SMALL_PART: u64 = 4096;

    fn data(length: usize) -> Vec<u8> {
        (0..length).map(|index| (index * 7 % 253) as u8).collect()
    }

    fn parts_of(input: &[u8]) -> Vec<PartHash> {
        input
            .chunks(SMALL_PART as usize)
            .enumerate()
            .map(|(index, part)| chaining_value(SMALL_PART, index as u64, part))
            .collect()
    }

    #[test]
    fn merged_part_values_are_the_whole_hash_for_every_shape() {
        let part = SMALL_PART as usize;
        for length in [
            1,
            part - 1,
            part,
            part + 1,
            2 * part,
            3 * part - 5,
            5 * part,
            7 * part + 100,
            16 * part,
            17 * part + 1,
        ] {
            let input = data(length);
            let parts = parts_of(&input);
            assert_eq!(
                root_hash(SMALL_PART, &parts, length as u64),
                Some(*blake3::hash(&input).as_bytes()),
                "{length} bytes"
            );
        }
    }

    #[test]
    fn whole_part_prefixes_hash_as_their_bytes() {
        let part = SMALL_PART as usize;
        let input = data(9 * part + 17);
        let parts = parts_of(&input);
        for count in 1..=9 {
            assert_eq!(
                root_hash(SMALL_PART, &parts[..count], (count * part) as u64),
                Some(*blake3::hash(&input[..count * part]).as_bytes()),
                "a prefix of {count} parts"
            );
        }
    }

    #[test]
    fn the_real_part_size_is_an_aligned_subtree() {
        assert!(PART_SIZE.is_power_of_two() && PART_SIZE >= blake3::CHUNK_LEN as u64);
    }
}
