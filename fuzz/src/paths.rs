//! Lexical path normalization and the symlink-target check on hostile text.
//!
//! Input layout: byte 0 is a mode; when its top bit is set the next eight
//! bytes are a little-endian depth (any `usize`), otherwise the depth is the
//! low seven bits. The rest is `base 0xFF target` (a byte that never occurs
//! in UTF-8), or just `target`; both are read as UTF-8, lossily.
//!
//! Checked: a normalized path is rooted and has no empty, `.` or `..`
//! component, no `/` or NUL inside a name and no name over the limit;
//! normalizing its printed form gives it back; joining agrees with a
//! reference stack model and never climbs above the home; errors are the
//! documented ones; `link_target_stays_inside` (the canonical-form rule)
//! agrees with a reference model, is monotonic in the depth and agrees with
//! joining.

use qftp_proto::path::{
    MAX_NAME_BYTES, MAX_PATH_BYTES, PathError, RemotePath, link_target_stays_inside,
};

/// The separator between base and target in an input.
pub const SEPARATOR: u8 = 0xFF;

/// The whole check; see the module docs for the input layout.
pub fn check(data: &[u8]) {
    let Some((&mode, rest)) = data.split_first() else {
        return;
    };
    let (depth, rest) = if mode & 0x80 != 0 {
        let Some((bytes, rest)) = rest.split_first_chunk::<8>() else {
            return;
        };
        (u64::from_le_bytes(*bytes) as usize, rest)
    } else {
        (usize::from(mode & 0x7F), rest)
    };
    let (base, target) = match rest.iter().position(|&byte| byte == SEPARATOR) {
        Some(at) => (&rest[..at], &rest[at + 1..]),
        None => (&[][..], rest),
    };
    let base = String::from_utf8_lossy(base);
    let target = String::from_utf8_lossy(target);

    let base = match RemotePath::parse(&base) {
        Ok(path) => {
            check_normal(&path);
            path
        }
        Err(_) => RemotePath::root(),
    };
    check_resolve(&RemotePath::root(), &target);
    check_resolve(&base, &target);
    check_link_target(depth, &target);
    check_link_target(base.components().len(), &target);
}

/// The invariants of every normalized path.
fn check_normal(path: &RemotePath) {
    for name in path.components() {
        assert!(!name.is_empty(), "empty name in {path:?}");
        assert!(name != "." && name != "..", "dot name in {path:?}");
        assert!(!name.contains('/') && !name.contains('\0'), "{path:?}");
        assert!(name.len() <= MAX_NAME_BYTES, "long name in {path:?}");
    }
    let shown = path.to_string();
    assert!(shown.starts_with('/'));
    assert_eq!(path.is_root(), path.components().is_empty());
    assert_eq!(
        path.file_name(),
        path.components().last().map(String::as_str)
    );
    assert_eq!(
        path.parent().components(),
        path.components()
            .split_last()
            .map_or(&[][..], |(_, rest)| rest)
    );
    // Normalizing again gives the same path, whenever the printed form is
    // short enough to be accepted at all.
    if shown.len() <= MAX_PATH_BYTES {
        assert_eq!(
            RemotePath::parse(&shown).as_ref(),
            Ok(path),
            "reparse {shown:?}"
        );
        assert_eq!(RemotePath::resolve(path, "").as_ref(), Ok(path));
        assert_eq!(RemotePath::resolve(path, ".").as_ref(), Ok(path));
        let relative = path.relative();
        assert_eq!(RemotePath::parse(&relative).as_ref(), Ok(path));
        // Seen from anywhere, the printed (absolute) form names the same path.
        let elsewhere = RemotePath::parse("/elsewhere/deep").unwrap();
        assert_eq!(RemotePath::resolve(&elsewhere, &shown).as_ref(), Ok(path));
    } else {
        assert_eq!(RemotePath::parse(&shown), Err(PathError::TooLong));
    }
}

/// What resolving `path` from `base` must give, by a plain stack model.
fn model_resolve(base: &RemotePath, path: &str) -> Result<Vec<String>, PathError> {
    if path.len() > MAX_PATH_BYTES {
        return Err(PathError::TooLong);
    }
    if path.contains('\0') {
        return Err(PathError::Nul);
    }
    let mut stack: Vec<String> = if path.starts_with('/') {
        Vec::new()
    } else {
        base.components().to_vec()
    };
    for name in path.split('/') {
        if name.is_empty() || name == "." {
            continue;
        }
        if name == ".." {
            stack.pop();
        } else if name.len() > MAX_NAME_BYTES {
            return Err(PathError::NameTooLong);
        } else if qftp_proto::is_reserved_name(name) {
            return Err(PathError::Reserved(name.to_owned()));
        } else {
            stack.push(name.to_owned());
        }
    }
    Ok(stack)
}

fn check_resolve(base: &RemotePath, path: &str) {
    let resolved = RemotePath::resolve(base, path);
    let model = model_resolve(base, path);
    match (&resolved, &model) {
        (Ok(got), Ok(want)) => assert_eq!(got.components(), want.as_slice()),
        (Err(got), Err(want)) => assert_eq!(got, want),
        _ => panic!("resolve {path:?} from {base}: {resolved:?}, model {model:?}"),
    }
    assert_eq!(base.join(path), resolved);
    let Ok(resolved) = resolved else {
        return;
    };
    check_normal(&resolved);
    if path.starts_with('/') {
        assert_eq!(RemotePath::parse(path).as_ref(), Ok(&resolved));
    }
    // A relative path that never climbs more than `k` levels keeps all but
    // the last `k` names of its base: joining never leaves the part of the
    // tree the link check promises.
    if !path.starts_with('/') && !path.is_empty() {
        let names = base.components();
        for up in 0..=names.len().min(4) {
            if link_target_stays_inside(up, path) {
                let kept = &names[..names.len() - up];
                assert!(
                    resolved.components().starts_with(kept),
                    "{path:?} from {base} left {kept:?}: {resolved}"
                );
            }
        }
    }
}

/// The reference answer for `link_target_stays_inside`: the canonical form
/// (leading `..` only, then plain names, no `.` or empty name, no name a
/// server reserves) climbing at
/// most `depth`, in wide arithmetic.
fn model_stays_inside(depth: usize, target: &str) -> bool {
    if target.is_empty()
        || target.len() > MAX_PATH_BYTES
        || target.starts_with('/')
        || target.contains('\0')
    {
        return false;
    }
    let names: Vec<&str> = target.split('/').collect();
    let ups = names.iter().take_while(|name| **name == "..").count();
    let rest_plain = names[ups..]
        .iter()
        .all(|name| {
            !matches!(*name, "" | "." | "..")
                && name.len() <= MAX_NAME_BYTES
                && !qftp_proto::is_reserved_name(name)
        });
    rest_plain && ups as i128 <= depth as i128
}

fn check_link_target(depth: usize, target: &str) {
    let inside = link_target_stays_inside(depth, target);
    assert_eq!(
        inside,
        model_stays_inside(depth, target),
        "depth {depth}, {target:?}"
    );
    if inside {
        if let Some(deeper) = depth.checked_add(1) {
            assert!(link_target_stays_inside(deeper, target));
        }
    } else if let Some(shallower) = depth.checked_sub(1) {
        assert!(!link_target_stays_inside(shallower, target));
    }
}
