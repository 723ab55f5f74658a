//! Logins, sessions, trust and concurrent users.

use std::os::unix::fs::PermissionsExt as _;

use crate::support::{TestClient, TestServer, run_with_input, text};

#[test]
fn two_users_at_once_each_see_only_their_own_home() {
    let server = TestServer::start();
    server.add_user("alice", "alice-password", None);
    server.add_user("bob", "bob-password", None);
    let alice = TestClient::new();
    let bob = TestClient::new();
    alice.login(&server, "alice", "alice-password");
    bob.login(&server, "bob", "bob-password");

    alice.ok(&["mkdir", "alice-only"]);
    bob.ok(&["mkdir", "bob-only"]);
    assert_eq!(alice.ok(&["ls"]), "alice-only/\n");
    assert_eq!(bob.ok(&["ls"]), "bob-only/\n");
    assert_eq!(
        alice.ok(&["whoami"]).trim(),
        format!("alice@{}", server.host())
    );

    // A second, separate login of alice sees alice's files.
    let alice_again = TestClient::new();
    alice_again.login(&server, "alice", "alice-password");
    assert_eq!(alice_again.ok(&["ls"]), "alice-only/\n");
    assert!(server.home("alice").join("alice-only").is_dir());
    assert!(!server.home("alice").join("bob-only").exists());
}

#[test]
fn wrong_password_and_unknown_user_look_the_same_and_failures_are_throttled() {
    let server = TestServer::start();
    server.add_user("alice", "right-password", None);
    let client = TestClient::new();
    let wrong = client.try_login(&server, "alice", "wrong-password");
    let unknown = client.try_login(&server, "nobody", "wrong-password");
    assert!(!wrong.status.success() && !unknown.status.success());
    let wrong_error = text(&wrong.stderr);
    assert!(wrong_error.contains("login failed"), "{wrong_error}");
    assert_eq!(wrong_error, text(&unknown.stderr));

    for _ in 0..4 {
        assert!(
            !client
                .try_login(&server, "alice", "wrong-password")
                .status
                .success()
        );
    }
    // Five failures for alice from this address (the unknown user's counts
    // apart): the next attempt is refused even with the right password.
    let sixth = client.try_login(&server, "alice", "right-password");
    assert!(!sixth.status.success());
    assert!(
        text(&sixth.stderr).contains("too many failed logins"),
        "{}",
        text(&sixth.stderr)
    );
    assert!(!client.session_file().exists());
}

#[test]
fn the_session_file_is_private_and_logout_revokes_the_token() {
    let server = TestServer::start();
    server.add_user("alice", "secret-password-1", None);
    let client = TestClient::new();
    client.login(&server, "alice", "secret-password-1");
    let session = client.session_file();
    let mode = std::fs::metadata(&session).unwrap().permissions().mode();
    assert_eq!(mode & 0o777, 0o600);
    let saved = std::fs::read_to_string(&session).unwrap();
    assert!(!saved.contains("secret-password-1"));
    assert!(saved.contains("token"));

    client.ok(&["logout"]);
    assert!(!session.exists());
    // Put the old session back: the server must refuse its token.
    std::fs::write(&session, &saved).unwrap();
    let error = client.fails(&["ls"]);
    assert!(error.contains("session expired or revoked"), "{error}");
}

#[test]
fn a_changed_certificate_is_refused_until_the_new_fingerprint_is_given() {
    let mut server = TestServer::start();
    server.add_user("alice", "password-1", None);
    let client = TestClient::new();
    client.login(&server, "alice", "password-1");
    let old_fingerprint = server.fingerprint.clone();

    server.kill();
    let output = server.admin(&["init", "--force"]).output().unwrap();
    assert!(output.status.success(), "{}", text(&output.stderr));
    server.restart();
    assert_ne!(server.fingerprint, old_fingerprint);

    let error = client.fails(&["ls"]);
    assert!(error.contains("certificate changed"), "{error}");
    assert!(
        error.contains(&old_fingerprint) && error.contains(&server.fingerprint),
        "{error}"
    );
    assert!(error.contains("known_hosts"), "{error}");

    // Without --fingerprint or --trust, a non-interactive login is refused.
    let target = format!("alice@{}", server.host());
    let refused = run_with_input(
        &mut client.command(&["login", &target, "--password-stdin"]),
        "password-1\n",
    );
    assert!(!refused.status.success());
    // With the right fingerprint it works, without any prompt.
    client.login(&server, "alice", "password-1");
    client.ok(&["ls"]);
}

#[test]
fn commands_without_a_session_say_so() {
    let client = TestClient::new();
    let error = client.fails(&["ls"]);
    assert!(error.contains("not logged in"), "{error}");
}

#[test]
fn an_unreachable_server_is_one_clear_error() {
    let server = TestServer::start();
    server.add_user("alice", "pw-123456", None);
    let client = TestClient::new();
    client.login(&server, "alice", "pw-123456");
    drop(server);
    let error = client.fails(&["ls"]);
    assert!(error.contains("server unreachable"), "{error}");
}
