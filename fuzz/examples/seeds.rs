//! Writes the seed corpus under `corpus/` (run from this directory with
//! `cargo run --example seeds`): real frames of every message type, paths
//! that try to climb out, and sizes at the edges of what parses.
//!
//! Files are named after what they hold, so rerunning rewrites the same set.

use std::fs;
use std::path::{Path, PathBuf};

use qftp_fuzz::{frames, paths};
use qftp_proto::{
    ClientFrame, ClientHello, DEFAULT_MAX_FRAME, DataHeader, EntryInfo, EntryKind, ErrorKind,
    ErrorReply, PROTOCOL_VERSION, Request, Response, ResumePoint, ServerFrame, ServerHello,
    Timestamp, Usage, frame,
};

/// The index into [`frames::LIMITS`] of a limit.
fn limit_choice(limit: usize) -> u8 {
    frames::LIMITS.iter().position(|&l| l == limit).unwrap() as u8
}

fn write(dir: &Path, name: &str, bytes: &[u8]) {
    fs::write(dir.join(name), bytes).unwrap();
}

fn frame_seed<T: serde::Serialize>(message: &T, limit: usize, split: u8) -> Vec<u8> {
    let mut seed = vec![limit_choice(limit), split];
    seed.extend(frame::encode(message, limit).unwrap());
    seed
}

fn requests() -> Vec<Request> {
    let mtime = Timestamp {
        secs: 1_700_000_000,
        nanos: 123_456_789,
    };
    vec![
        Request::Login {
            user: "alice".into(),
            password: "correct horse".into(),
        },
        Request::Authenticate {
            token: "0123456789abcdef".into(),
        },
        Request::Logout,
        Request::WhoAmI,
        Request::Stat {
            path: "/docs/report.pdf".into(),
        },
        Request::List { path: "/".into() },
        Request::Walk {
            path: "/site".into(),
            hashes: true,
        },
        Request::Mkdir {
            path: "a/b/c".into(),
            parents: true,
        },
        Request::Remove {
            path: "/old".into(),
            recursive: true,
        },
        Request::Rename {
            from: "/a".into(),
            to: "/b/".into(),
        },
        Request::DiskUsage,
        Request::Symlink {
            path: "/www/current".into(),
            target: "../releases/v2".into(),
        },
        Request::PutOpen {
            transfer_id: 3,
            path: "/big.iso".into(),
            size: 4 << 30,
            mtime,
            resume: true,
        },
        Request::PutCommit {
            transfer_id: 3,
            hash: [0xAB; 32],
        },
        Request::PutSmall {
            transfer_id: 4,
            path: "/site/index.html".into(),
            size: 512,
            mtime,
            hash: [0x5A; 32],
        },
        Request::PutAbort { transfer_id: 3 },
        Request::GetOpen {
            transfer_id: u64::MAX,
            path: "/照片/my file.txt".into(),
            resume: Some(ResumePoint {
                offset: 1 << 20,
                prefix_hash: [7; 32],
            }),
        },
    ]
}

fn responses() -> Vec<(&'static str, Response)> {
    let entry = EntryInfo {
        name: "notes.txt".into(),
        kind: EntryKind::File,
        size: 1234,
        mtime: Timestamp {
            secs: -1,
            nanos: 999_999_999,
        },
        mode: 0o644,
        hash: Some([1; 32]),
        link_target: None,
    };
    let link = EntryInfo {
        name: "sub/link".into(),
        kind: EntryKind::Symlink,
        size: 0,
        mtime: Timestamp::default(),
        mode: 0o777,
        hash: None,
        link_target: Some("../notes.txt".into()),
    };
    let usage = Usage {
        used: 10 << 20,
        reserved: 1 << 20,
        quota: Some(100 << 20),
    };
    vec![
        ("ok", Response::Ok),
        (
            "error_quota",
            Response::Error(ErrorReply {
                kind: ErrorKind::QuotaExceeded {
                    needed: 5 << 30,
                    free: 1 << 30,
                },
                message: "quota exceeded".into(),
            }),
        ),
        (
            "logged_in",
            Response::LoggedIn {
                user: "alice".into(),
                token: "tok".into(),
                expires: Timestamp {
                    secs: i64::MAX,
                    nanos: 0,
                },
            },
        ),
        (
            "identity",
            Response::Identity {
                user: "alice".into(),
                usage,
            },
        ),
        ("entry", Response::Entry(entry.clone())),
        (
            "listing",
            Response::Listing {
                entries: vec![entry, link.clone()],
                done: false,
            },
        ),
        (
            "tree",
            Response::Tree {
                entries: vec![link],
                done: true,
            },
        ),
        (
            "put_ready",
            Response::PutReady {
                offset: 4096,
                prefix_hash: Some([9; 32]),
            },
        ),
        (
            "get_ready",
            Response::GetReady {
                size: 1 << 40,
                mtime: Timestamp {
                    secs: i64::MIN,
                    nanos: 1,
                },
                offset: 0,
            },
        ),
        ("get_done", Response::GetDone { hash: [0xFF; 32] }),
    ]
}

fn frame_seeds(dir: &Path) {
    let limit = DEFAULT_MAX_FRAME;
    let client_hello = ClientHello {
        version: PROTOCOL_VERSION,
        client: "qftp 0.1.0".into(),
    };
    let server_hello = ServerHello {
        version: PROTOCOL_VERSION,
        server: "qftp-server 0.1.0".into(),
        max_frame: limit as u32,
    };
    let header = DataHeader {
        transfer_id: 3,
        offset: 1 << 20,
    };
    write(dir, "client_hello", &frame_seed(&client_hello, limit, 0));
    write(dir, "server_hello", &frame_seed(&server_hello, limit, 3));
    write(dir, "data_header", &frame_seed(&header, 64, 1));

    // A whole conversation in one stream, pushed in uneven pieces.
    let mut conversation = vec![limit_choice(limit), 7];
    conversation.extend(frame::encode(&client_hello, limit).unwrap());
    for (id, request) in requests().into_iter().enumerate() {
        let kind = request.kind();
        let message = ClientFrame {
            id: id as u64,
            request,
        };
        write(
            dir,
            &format!("request_{kind}"),
            &frame_seed(&message, limit, 0),
        );
        conversation.extend(frame::encode(&message, limit).unwrap());
    }
    for (id, (name, response)) in responses().into_iter().enumerate() {
        let message = ServerFrame {
            id: id as u64,
            response,
        };
        write(
            dir,
            &format!("response_{name}"),
            &frame_seed(&message, limit, 0),
        );
        conversation.extend(frame::encode(&message, limit).unwrap());
    }
    write(dir, "conversation", &conversation);

    // Ends inside a frame; announces more than the limit.
    let mut truncated = frame_seed(&header, 64, 2);
    truncated.truncate(truncated.len() - 3);
    write(dir, "truncated", &truncated);
    let mut oversized = vec![limit_choice(1024), 0];
    oversized.extend(2000u32.to_be_bytes());
    oversized.extend([0; 16]);
    write(dir, "oversized_prefix", &oversized);
}

fn path_seeds(dir: &Path) {
    let small = |depth: u8, base: &str, target: &str| {
        let mut seed = vec![depth & 0x7F];
        seed.extend(base.as_bytes());
        seed.push(paths::SEPARATOR);
        seed.extend(target.as_bytes());
        seed
    };
    write(
        dir,
        "etc_passwd",
        &small(0, "/docs/2024", "../../etc/passwd"),
    );
    write(dir, "dots_and_slashes", &small(2, "", "a/./b//c/"));
    write(dir, "nul", &small(1, "/a", "\0"));
    write(dir, "absolute_link", &small(3, "/x/y/z", "/etc/shadow"));
    write(dir, "climb_back", &small(1, "/a/b", "x/../../../y"));
    write(
        dir,
        "unicode",
        &small(1, "/照片", "../ünï/c\u{301}ode/\u{202e}txt.exe/😀"),
    );
    write(dir, "long_name", &small(0, "/", &"n".repeat(256)));
    write(dir, "max_name", &small(0, "/", &"n".repeat(255)));
    let long_path = "abcdefg/".repeat(512);
    write(dir, "long_path", &small(0, "", &long_path[..4096]));
    write(dir, "only_dots", &small(5, "/./../.", "../.../..../."));
    let mut huge_depth = vec![0x80];
    huge_depth.extend(u64::MAX.to_le_bytes());
    huge_depth.extend(b"a/../..");
    write(dir, "huge_depth", &huge_depth);
}

fn size_seeds(dir: &Path) {
    for (name, text) in [
        ("mib", "10 MiB"),
        ("fraction", "1.5G"),
        ("u64_max", "18446744073709551615"),
        ("u64_max_plus_one", "18446744073709551616"),
        ("negative", "-1"),
        ("unlimited", "unlimited"),
        ("none", " NONE "),
        ("long_fraction", "0.0000000000001TiB"),
        ("bare_dot", ".5kib"),
        ("two_dots", "1.2.3"),
        ("overflow_unit", "20000000TiB"),
        ("pib", "1.78 PiB"),
        ("plain", "4096"),
        ("unicode_unit", "5 ＭiB"),
    ] {
        write(dir, name, text.as_bytes());
    }
}

fn main() {
    let root = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("corpus");
    for (target, seeds) in [
        ("frames", frame_seeds as fn(&Path)),
        ("paths", path_seeds),
        ("sizes", size_seeds),
    ] {
        let dir = root.join(target);
        fs::create_dir_all(&dir).unwrap();
        seeds(&dir);
    }
}
