//! The client as people used to ssh and scp expect it: address forms, host
//! profiles with a session each, a closed port noticed at once, Ctrl-C
//! during an upload, global `-q`/`-v`, messages and exit codes.

use std::time::{Duration, Instant};

use crate::support::{TestClient, TestServer, file_hash, run_with_input, text, write_random};

/// Writes a client config with host profiles.
fn write_profiles(client: &TestClient, profiles: &str) {
    std::fs::write(client.config.path().join("config.toml"), profiles).expect("config.toml");
}

fn login_with_input(
    client: &TestClient,
    arguments: &[&str],
    password: &str,
) -> std::process::Output {
    run_with_input(&mut client.command(arguments), &format!("{password}\n"))
}

#[test]
fn a_qftp_url_logs_in_and_a_malformed_address_never_reaches_the_server() {
    let server = TestServer::start();
    server.add_user("alice", "alice-password", None);
    let client = TestClient::new();
    // More malformed attempts than the login throttle allows failures: had
    // any reached the server as a login, the right one would be blocked.
    for malformed in [
        format!("qftp://al ice@{}", server.host()),
        format!("alice@@{}", server.host()),
        format!("http://alice@{}", server.host()),
        format!("alice@{}:99999", server.host()),
        format!("qftp://qftp://alice@{}", server.host()),
        format!("alice@127.0.0.1:{}x", server.address.port()),
    ] {
        let started = Instant::now();
        let output = login_with_input(
            &client,
            &[
                "login",
                &malformed,
                "--password-stdin",
                "--fingerprint",
                &server.fingerprint,
            ],
            "wrong",
        );
        assert!(!output.status.success(), "{malformed} logged in");
        let stderr = text(&output.stderr);
        assert!(stderr.contains("invalid address"), "{malformed}: {stderr}");
        assert!(started.elapsed() < Duration::from_secs(5));
    }
    let url = format!("qftp://alice@{}", server.host());
    let output = login_with_input(
        &client,
        &[
            "login",
            &url,
            "--password-stdin",
            "--fingerprint",
            &server.fingerprint,
        ],
        "alice-password",
    );
    assert!(output.status.success(), "{}", text(&output.stderr));
    assert_eq!(
        client.ok(&["whoami"]).trim(),
        format!("alice@{}", server.host())
    );
}

#[test]
fn host_profiles_name_two_servers_each_with_its_own_session() {
    let first = TestServer::start();
    let second = TestServer::start();
    first.add_user("alice", "alice-password", None);
    second.add_user("bob", "bob-password", None);
    let client = TestClient::new();
    write_profiles(
        &client,
        &format!(
            "[hosts.a]\naddress = \"{}\"\nuser = \"alice\"\nfingerprint = \"{}\"\n\n\
             [hosts.b]\naddress = \"qftp://bob@127.0.0.1\"\nport = {}\nfingerprint = \"{}\"\n",
            first.host(),
            first.fingerprint,
            second.address.port(),
            second.fingerprint
        ),
    );
    for (profile, password) in [("a", "alice-password"), ("b", "bob-password")] {
        let output = login_with_input(&client, &["login", profile, "--password-stdin"], password);
        assert!(output.status.success(), "{}", text(&output.stderr));
    }
    let local = client.config.path().join("f.txt");
    std::fs::write(&local, b"one file, two servers").unwrap();
    let local = local.to_str().unwrap();
    client.ok(&["mkdir", "a:/x"]);
    client.ok(&["mkdir", "b:/x"]);
    client.ok(&["put", local, "a:/x/"]);
    client.ok(&["put", local, "b:/x/"]);
    for (server, user) in [(&first, "alice"), (&second, "bob")] {
        assert_eq!(
            std::fs::read(server.home(user).join("x/f.txt")).unwrap(),
            b"one file, two servers"
        );
    }
    // Neither upload needed a new login; the default session is the last
    // login's, and each server's listing shows its own file.
    assert!(client.ok(&["ls", "a:/x"]).contains("f.txt"));
    assert_eq!(
        client.ok(&["whoami"]).trim(),
        format!("bob@{}", second.host())
    );
    // A remote argument naming a server nobody logged in to says so.
    let stderr = client.fails(&["ls", "nobody@127.0.0.1:1:/"]);
    assert!(stderr.contains("not logged in"), "{stderr}");
}

#[test]
fn a_closed_port_is_refused_at_once() {
    let mut server = TestServer::start();
    server.add_user("alice", "alice-password", None);
    let client = TestClient::new();
    client.login(&server, "alice", "alice-password");
    server.kill();
    let started = Instant::now();
    let stderr = client.fails(&["ls"]);
    let elapsed = started.elapsed();
    assert!(
        stderr.to_lowercase().contains("connection refused"),
        "{stderr}"
    );
    // A behaviour, not a benchmark: well under the 10 s handshake timeout.
    assert!(elapsed < Duration::from_secs(3), "took {elapsed:?}");
    // --connect-timeout is accepted (and bounded).
    assert!(
        client
            .fails(&["--connect-timeout", "0", "ls"])
            .contains("0")
    );
    let stderr = client.fails(&["ls", "--connect-timeout", "2"]);
    assert!(stderr.to_lowercase().contains("connection refused"));
}

#[test]
fn ctrl_c_during_an_upload_releases_the_reservation_and_the_rerun_resumes() {
    let server = TestServer::start();
    server.add_user("alice", "alice-password", Some("1GiB"));
    let client = TestClient::new();
    client.login(&server, "alice", "alice-password");
    let local = client.config.path().join("big.bin");
    write_random(&local, 24 * 1024 * 1024, 14);
    let local = local.to_str().unwrap();
    // Rate limited, so the upload is surely running when the signal comes.
    let mut upload = client
        .command(&["put", local, "/big.bin", "--limit-rate", "4MiB"])
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("starting qftp put");
    let reserving = crate::support::wait_until(Duration::from_secs(30), || {
        !client.ok(&["df"]).contains(" 0 B reserved")
    });
    assert!(reserving, "the upload never reserved its quota");
    // Let some bytes arrive, so there is a partial to resume.
    std::thread::sleep(Duration::from_millis(700));
    let status = std::process::Command::new("kill")
        .args(["-INT", &upload.id().to_string()])
        .status()
        .expect("kill -INT");
    assert!(status.success());
    let status = crate::support::wait_bounded(&mut upload, Duration::from_secs(20))
        .expect("qftp put ends after SIGINT");
    let output = upload.wait_with_output().expect("output");
    assert_eq!(status.code(), Some(130), "{}", text(&output.stderr));
    assert!(text(&output.stderr).contains("resume"));
    let released = crate::support::wait_until(Duration::from_secs(2), || {
        client.ok(&["df"]).contains(" 0 B reserved")
    });
    assert!(released, "still reserved: {}", client.ok(&["df"]));
    let rerun = client
        .command(&["put", local, "/big.bin"])
        .output()
        .unwrap();
    assert!(rerun.status.success(), "{}", text(&rerun.stderr));
    assert!(
        text(&rerun.stderr).contains("resuming /big.bin at"),
        "{}",
        text(&rerun.stderr)
    );
    assert_eq!(
        file_hash(&server.home("alice").join("big.bin")),
        file_hash(std::path::Path::new(local))
    );
}

#[test]
fn quiet_and_verbose_work_anywhere_and_messages_read_cleanly() {
    let server = TestServer::start();
    server.add_user("alice", "alice-password", None);
    let client = TestClient::new();
    client.login(&server, "alice", "alice-password");
    let local = client.config.path().join("q.txt");
    std::fs::write(&local, b"quiet").unwrap();
    let local = local.to_str().unwrap();
    for arguments in [
        ["-q", "put", local],
        ["put", "-q", local],
        ["put", local, "-q"],
    ] {
        let output = client.run(&arguments);
        assert!(output.status.success(), "{}", text(&output.stderr));
        assert_eq!(text(&output.stderr), "", "{arguments:?}");
    }
    let missing = client.config.path().join("missing/file.txt");
    let output = client.run(&["-v", "put", missing.to_str().unwrap(), "/"]);
    assert!(!output.status.success());
    let stderr = text(&output.stderr);
    assert!(!stderr.contains("os error"), "{stderr}");
    assert_eq!(stderr.matches("No such file").count(), 1, "{stderr}");
    assert!(!stderr.contains("rustls"), "{stderr}");
    // A partial failure has its own documented exit code.
    let help = client.ok(&["--help"]);
    assert!(help.contains("EXIT STATUS"), "{help}");
    assert!(help.contains("130"));
    assert!(help.contains("partial failure"));
}

#[test]
fn first_login_trust_errors_say_what_to_do() {
    let server = TestServer::start();
    server.add_user("alice", "alice-password", None);
    let client = TestClient::new();
    let target = format!("alice@{}", server.host());
    // A mistyped fingerprint is a mismatch, not a changed certificate.
    let wrong = format!("SHA256:{}", "ab".repeat(32));
    let output = login_with_input(
        &client,
        &[
            "login",
            &target,
            "--password-stdin",
            "--fingerprint",
            &wrong,
        ],
        "alice-password",
    );
    assert!(!output.status.success());
    let stderr = text(&output.stderr);
    assert!(stderr.contains("fingerprint mismatch"), "{stderr}");
    assert!(!stderr.contains("certificate changed"), "{stderr}");
    // Without a terminal and without --password-stdin, it says which flag.
    let output = client
        .command(&["login", &target, "--fingerprint", &server.fingerprint])
        .stdin(std::process::Stdio::null())
        .output()
        .unwrap();
    assert!(!output.status.success());
    assert!(text(&output.stderr).contains("--password-stdin"));
    // A pinned host can be forgotten; then a changed certificate would be
    // accepted again at the next login.
    client.login(&server, "alice", "alice-password");
    let out = client.ok(&["known-hosts", "remove", &server.host()]);
    assert!(out.contains(&server.fingerprint), "{out}");
    let known = std::fs::read_to_string(client.config.path().join("known_hosts")).unwrap();
    assert!(!known.contains(&server.fingerprint));
    let stderr = client.fails(&["known-hosts", "remove", &server.host()]);
    assert!(stderr.contains("not in"), "{stderr}");
    // A second login to another user on the same server says it replaces.
    server.add_user("bob", "bob-password", None);
    let output = client.try_login(&server, "bob", "bob-password");
    assert!(output.status.success());
    assert!(text(&output.stderr).contains("replacing the session of alice@"));
}
