//! The client as people used to cp, scp and rsync expect it: where files
//! land, `-` for standard input and output, remote globs, `ls` and `rm`
//! with the usual options.

use crate::support::{TestClient, TestServer, run_with_input, text};

/// A server with `alice` logged in, and a local working directory.
fn logged_in() -> (TestServer, TestClient, tempfile::TempDir) {
    let server = TestServer::start();
    server.add_user("alice", "alice-password", None);
    let client = TestClient::new();
    client.login(&server, "alice", "alice-password");
    (server, client, tempfile::tempdir().expect("temp dir"))
}

fn path_text(path: &std::path::Path) -> &str {
    path.to_str().expect("a UTF-8 path")
}

#[test]
fn a_trailing_slash_names_a_directory_in_both_directions() {
    let (server, client, local) = logged_in();
    let file = local.path().join("a.txt");
    std::fs::write(&file, b"alpha").unwrap();
    let file = path_text(&file);

    // put: the missing directory is made, the file lands inside it.
    client.ok(&["put", file, "newdir/"]);
    assert_eq!(
        std::fs::read(server.home("alice").join("newdir/a.txt")).unwrap(),
        b"alpha"
    );
    // Missing parents are made without -r too, for a file under a new name.
    client.ok(&["put", file, "deep/er/b.txt"]);
    assert_eq!(
        std::fs::read(server.home("alice").join("deep/er/b.txt")).unwrap(),
        b"alpha"
    );

    // get: the same rule on this side.
    let newlocal = local.path().join("newlocal/");
    client.ok(&["get", "newdir/a.txt", &format!("{}/", path_text(&newlocal))]);
    assert_eq!(std::fs::read(newlocal.join("a.txt")).unwrap(), b"alpha");
    let renamed = local.path().join("made/for/c.txt");
    client.ok(&["get", "deep/er/b.txt", path_text(&renamed)]);
    assert_eq!(std::fs::read(&renamed).unwrap(), b"alpha");

    // A trailing slash on an existing file is refused, the same both ways.
    let stderr = client.fails(&["put", file, "newdir/a.txt/"]);
    assert!(stderr.contains("not a directory"), "{stderr}");
    let stderr = client.fails(&["get", "newdir/a.txt", &format!("{file}/")]);
    assert!(stderr.contains("not a directory"), "{stderr}");
}

#[test]
fn with_several_sources_the_missing_one_is_reported_and_the_others_copied() {
    let (server, client, local) = logged_in();
    let mut arguments = vec!["put".to_owned()];
    for name in ["a", "b", "missing", "c"] {
        let path = local.path().join(name);
        if name != "missing" {
            std::fs::write(&path, name.as_bytes()).unwrap();
        }
        arguments.push(path_text(&path).to_owned());
    }
    client.ok(&["mkdir", "DIR"]);
    arguments.push("DIR".to_owned());
    let arguments: Vec<&str> = arguments.iter().map(String::as_str).collect();
    let output = client.run(&arguments);
    assert_eq!(output.status.code(), Some(3), "{}", text(&output.stderr));
    let stderr = text(&output.stderr);
    assert!(stderr.contains("missing"), "{stderr}");
    assert!(!stderr.contains("os error"), "{stderr}");
    for name in ["a", "b", "c"] {
        assert_eq!(
            std::fs::read(server.home("alice").join("DIR").join(name)).unwrap(),
            name.as_bytes()
        );
    }
    assert!(!server.home("alice").join("DIR/missing").exists());

    // The same for get: a missing remote source does not stop the others.
    let out = local.path().join("out");
    let output = client.run(&[
        "get",
        "DIR/a",
        "DIR/missing",
        "DIR/c",
        &format!("{}/", path_text(&out)),
    ]);
    assert_eq!(output.status.code(), Some(3), "{}", text(&output.stderr));
    assert!(text(&output.stderr).contains("missing"));
    assert_eq!(std::fs::read(out.join("a")).unwrap(), b"a");
    assert_eq!(std::fs::read(out.join("c")).unwrap(), b"c");

    // Several sources and a missing destination without the slash: refused
    // before anything moves.
    let stderr = client.fails(&["put", arguments[1], arguments[2], "nowhere"]);
    assert!(stderr.contains("no such directory"), "{stderr}");
    assert!(!server.home("alice").join("nowhere").exists());
}

#[test]
fn user_add_refuses_a_short_password_unless_allowed() {
    let server = TestServer::start();
    let add = |extra: &[&str], name: &str| {
        let mut arguments = vec!["user", "add", name, "--password-stdin"];
        arguments.extend_from_slice(extra);
        run_with_input(&mut server.admin(&arguments), "short\n")
    };
    let output = add(&[], "bob");
    assert!(!output.status.success());
    let stderr = text(&output.stderr);
    assert!(stderr.contains("minimum of 8"), "{stderr}");
    assert!(stderr.contains("--allow-weak"), "{stderr}");
    for (extra, name) in [
        (&["--allow-weak"][..], "carol"),
        (&["--min-password-length", "4"][..], "dave"),
    ] {
        let output = add(extra, name);
        assert!(output.status.success(), "{}", text(&output.stderr));
    }
    // The refused account does not exist; the allowed one logs in.
    let client = TestClient::new();
    assert!(!client.try_login(&server, "bob", "short").status.success());
    client.login(&server, "carol", "short");
}

#[test]
fn rm_goes_past_missing_paths_and_force_says_nothing() {
    let (server, client, _local) = logged_in();
    client.ok(&["mkdir", "a", "b"]);
    let output = client.run(&["rm", "a", "missing", "b"]);
    assert_eq!(output.status.code(), Some(3), "{}", text(&output.stderr));
    let stderr = text(&output.stderr);
    assert!(stderr.contains("missing"), "{stderr}");
    assert!(!server.home("alice").join("a").exists());
    assert!(!server.home("alice").join("b").exists());
    let output = client.run(&["rm", "-f", "missing"]);
    assert!(output.status.success(), "{}", text(&output.stderr));
    assert_eq!(text(&output.stderr), "");
}
