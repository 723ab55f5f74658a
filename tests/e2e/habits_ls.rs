//! `qftp ls` as people used to ls expect it: combined short flags (`-lh`),
//! dot entries only with `-a`, `-R`, several paths under headings, local
//! time unless `--utc`, and `--json` (also for `df` and `whoami`) as one
//! document. The server's partial files never show.

use std::time::Duration;

use crate::support::{TestClient, TestServer, server_partial, text, wait_until, write_random};

/// A server with `alice` logged in through a client running with
/// `environment`.
fn logged_in(environment: &[(&str, &str)]) -> (TestServer, TestClient) {
    let server = TestServer::start();
    server.add_user("alice", "alice-password", None);
    let client = TestClient::with_environment(environment);
    client.login(&server, "alice", "alice-password");
    (server, client)
}

#[test]
fn ls_lh_combines_the_flags_and_prints_human_sizes() {
    let (server, client) = logged_in(&[]);
    let home = server.home("alice");
    std::fs::write(home.join("big.bin"), vec![0u8; 3 * 1024 * 1024]).unwrap();

    let human = client.ok(&["ls", "-lh"]);
    let line = human
        .lines()
        .find(|line| line.ends_with(" big.bin"))
        .unwrap_or_else(|| panic!("{human}"));
    assert!(line.starts_with("-rw"), "{line}");
    assert!(line.contains(" 3 MiB "), "{line}");
    assert!(!human.contains("Usage"), "{human}");

    // Without -h the size is in bytes, as ls -l writes it.
    let exact = client.ok(&["ls", "-l"]);
    assert!(exact.contains(" 3145728 "), "{exact}");
    // -h alone is not help either, and --help still is.
    assert_eq!(client.ok(&["ls", "-h"]), "big.bin\n");
    assert!(client.ok(&["ls", "--help"]).contains("--human-readable"));
}

#[test]
fn dot_entries_need_a_and_partial_files_never_show() {
    let (server, client) = logged_in(&[]);
    let home = server.home("alice");
    std::fs::write(home.join(".profile"), b"hidden").unwrap();
    std::fs::write(home.join("notes.txt"), b"seen").unwrap();
    std::fs::create_dir(home.join(".cache")).unwrap();
    std::fs::write(home.join(".cache/entry"), b"deep").unwrap();

    assert_eq!(client.ok(&["ls"]), "notes.txt\n");
    assert_eq!(client.ok(&["ls", "-a"]), ".cache/\n.profile\nnotes.txt\n");
    // -R does not descend into hidden directories unless -a.
    assert_eq!(client.ok(&["ls", "-R"]), ".:\nnotes.txt\n");
    assert_eq!(
        client.ok(&["ls", "-aR"]),
        ".:\n.cache/\n.profile\nnotes.txt\n\n./.cache:\nentry\n"
    );

    // An upload in progress keeps a partial file on the server; no listing
    // names it, not even with -a.
    let local = tempfile::tempdir().unwrap();
    let source = local.path().join("slow.bin");
    write_random(&source, 8 * 1024 * 1024, 14);
    let mut upload = client.spawn(&[
        "put",
        "--limit-rate",
        "256KiB",
        source.to_str().unwrap(),
        "/slow.bin",
    ]);
    let partial = server_partial(&home, "/slow.bin");
    let started = wait_until(Duration::from_secs(60), || partial.exists());
    let listing = client.ok(&["ls", "-a", "-R", "-l", "/"]);
    let json = client.ok(&["ls", "-a", "-R", "--json", "/"]);
    let _ = upload.kill();
    let _ = upload.wait();
    assert!(started, "the upload never started");
    for output in [&listing, &json] {
        assert!(!output.contains("qftp-part"), "{output}");
        assert!(!output.contains(qftp_proto::STAGING_DIR), "{output}");
        assert!(!output.contains("slow.bin"), "{output}");
    }
    assert!(listing.contains(".profile"), "{listing}");
}

#[test]
fn ls_r_lists_each_directory_under_its_heading_depth_first() {
    let (server, client) = logged_in(&[]);
    let home = server.home("alice");
    std::fs::create_dir_all(home.join("top/b/c")).unwrap();
    std::fs::create_dir_all(home.join("top/d")).unwrap();
    std::fs::write(home.join("top/x.txt"), b"x").unwrap();
    std::fs::write(home.join("top/b/c/y.txt"), b"y").unwrap();

    assert_eq!(
        client.ok(&["ls", "-R", "top"]),
        "top:\nb/\nd/\nx.txt\n\ntop/b:\nc/\n\ntop/b/c:\ny.txt\n\ntop/d:\n"
    );
}

#[test]
fn several_paths_are_listed_and_a_missing_one_is_reported() {
    let (server, client) = logged_in(&[]);
    let home = server.home("alice");
    std::fs::create_dir_all(home.join("one")).unwrap();
    std::fs::create_dir_all(home.join("two")).unwrap();
    std::fs::write(home.join("one/a.txt"), b"a").unwrap();
    std::fs::write(home.join("two/b.txt"), b"b").unwrap();
    std::fs::write(home.join("loose.txt"), b"loose").unwrap();

    assert_eq!(
        client.ok(&["ls", "one", "two"]),
        "one:\na.txt\n\ntwo:\nb.txt\n"
    );
    let output = client.run(&["ls", "one", "missing", "loose.txt", "two"]);
    assert_eq!(output.status.code(), Some(3), "{}", text(&output.stderr));
    // File arguments first, then each directory, as ls does.
    assert_eq!(
        text(&output.stdout),
        "loose.txt\n\none:\na.txt\n\ntwo:\nb.txt\n"
    );
    let stderr = text(&output.stderr);
    assert!(
        stderr.contains("/missing: no such file or directory"),
        "{stderr}"
    );
    assert!(!stderr.contains("os error"), "{stderr}");
}

#[test]
fn long_listings_show_local_time_unless_utc_is_asked() {
    // A POSIX zone five hours east of UTC, so that the test does not depend
    // on the machine's zone or its time zone database.
    let (server, client) = logged_in(&[("TZ", "XST-5")]);
    let file = server.home("alice").join("stamped.txt");
    std::fs::write(&file, b"stamped").unwrap();
    filetime::set_file_mtime(&file, filetime::FileTime::from_unix_time(1_700_000_000, 0)).unwrap();

    let local = client.ok(&["ls", "-l"]);
    assert!(local.contains(" 2023-11-15 03:13 stamped.txt"), "{local}");
    let utc = client.ok(&["ls", "-l", "--utc"]);
    assert!(utc.contains(" 2023-11-14 22:13 UTC stamped.txt"), "{utc}");
}

#[test]
fn json_is_one_document_for_ls_df_and_whoami() {
    let (server, client) = logged_in(&[]);
    let home = server.home("alice");
    std::fs::create_dir_all(home.join("one/inner")).unwrap();
    std::fs::write(home.join("one/inner/deep.txt"), b"deep").unwrap();
    std::fs::write(home.join("file.txt"), b"12345").unwrap();

    let listing: serde_json::Value =
        serde_json::from_str(&client.ok(&["ls", "--json", "-R", "one", "file.txt"])).unwrap();
    let paths: Vec<&str> = listing
        .as_array()
        .unwrap()
        .iter()
        .map(|entry| entry["path"].as_str().unwrap())
        .collect();
    assert_eq!(paths, ["/file.txt", "/one/inner", "/one/inner/deep.txt"]);
    assert_eq!(listing[0]["size"], 5);
    assert_eq!(listing[0]["kind"], "file");
    assert_eq!(listing[1]["kind"], "directory");

    let usage: serde_json::Value = serde_json::from_str(&client.ok(&["df", "--json"])).unwrap();
    assert!(usage["used"].is_u64(), "{usage}");
    assert_eq!(usage["reserved"], 0, "{usage}");
    assert!(usage["quota"].is_null(), "{usage}");
    assert!(usage["free"].is_null(), "{usage}");

    client.ok(&["cd", "one"]);
    let who: serde_json::Value = serde_json::from_str(&client.ok(&["whoami", "--json"])).unwrap();
    assert_eq!(who["user"], "alice");
    assert_eq!(who["cwd"], "/one");
    let plain = client.ok(&["whoami"]);
    assert_eq!(
        plain.trim(),
        format!("alice@{}", who["server"].as_str().unwrap())
    );
}

#[test]
fn df_json_gives_the_quota_figures() {
    let server = TestServer::start();
    server.add_user("bob", "bob-password", Some("1MiB"));
    let client = TestClient::new();
    client.login(&server, "bob", "bob-password");
    let local = tempfile::tempdir().unwrap();
    let source = local.path().join("part.bin");
    write_random(&source, 100_000, 7);
    client.ok(&["put", "-q", source.to_str().unwrap()]);

    let usage: serde_json::Value = serde_json::from_str(&client.ok(&["df", "--json"])).unwrap();
    assert_eq!(usage["quota"], 1024 * 1024, "{usage}");
    let used = usage["used"].as_u64().unwrap();
    assert!(used >= 100_000, "{usage}");
    assert_eq!(usage["free"], 1024 * 1024 - used, "{usage}");
}
