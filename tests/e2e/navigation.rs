//! Moving around and managing the home: cd, pwd, ls, mkdir, rm, mv, shell.

use crate::support::{TestClient, TestServer, run_with_input, text};

fn alice() -> (TestServer, TestClient) {
    let server = TestServer::start();
    server.add_user("alice", "alice-pw-1", None);
    let client = TestClient::new();
    client.login(&server, "alice", "alice-pw-1");
    (server, client)
}

#[test]
fn directories_are_created_listed_moved_and_removed() {
    let (server, client) = alice();
    client.ok(&["mkdir", "-p", "projects/2024/q4"]);
    std::fs::write(server.home("alice").join("projects/notes.txt"), "hello").unwrap();
    client.ok(&["cd", "projects"]);
    assert_eq!(client.ok(&["pwd"]).trim(), "/projects");
    assert_eq!(client.ok(&["ls"]), "2024/\nnotes.txt\n");

    let listing: serde_json::Value = serde_json::from_str(&client.ok(&["ls", "--json"])).unwrap();
    let notes = listing
        .as_array()
        .unwrap()
        .iter()
        .find(|entry| entry["name"] == "notes.txt")
        .unwrap();
    assert_eq!(notes["kind"], "file");
    assert_eq!(notes["size"], 5);
    let long = client.ok(&["ls", "-l"]);
    assert!(
        long.lines()
            .any(|line| line.starts_with('d') && line.ends_with("2024/")),
        "{long}"
    );

    client.ok(&["mv", "notes.txt", "2024"]);
    assert!(
        server
            .home("alice")
            .join("projects/2024/notes.txt")
            .is_file()
    );
    client.ok(&["mv", "2024/notes.txt", "/renamed.txt"]);
    assert!(server.home("alice").join("renamed.txt").is_file());

    let error = client.fails(&["cd", "/renamed.txt"]);
    assert!(error.contains("not a directory"), "{error}");
    let error = client.fails(&["rm", "/projects"]);
    assert!(error.contains("directory not empty"), "{error}");
    let error = client.fails(&["mkdir", "2024"]);
    assert!(error.contains("already exists"), "{error}");
    let error = client.fails(&["ls", "missing"]);
    assert!(
        error.contains("/projects/missing: no such file or directory"),
        "{error}"
    );
    client.ok(&["cd", "/"]);
    client.ok(&["rm", "-r", "projects"]);
    assert_eq!(client.ok(&["ls"]), "renamed.txt\n");
}

#[test]
fn the_shell_runs_commands_over_one_connection() {
    let (server, client) = alice();
    let script = "mkdir docs\ncd docs\npwd\nmkdir 'two words'\nls\ncd /nowhere\nls /\nexit\n";
    let output = run_with_input(&mut client.command(&["shell"]), script);
    assert!(output.status.success(), "{}", text(&output.stderr));
    let stdout = text(&output.stdout);
    assert!(stdout.contains("/docs\n"), "{stdout}");
    assert!(stdout.contains("two words/\n"), "{stdout}");
    assert!(stdout.contains("docs/\n"), "{stdout}");
    // A failing command reports and the shell goes on.
    assert!(
        text(&output.stderr).contains("/nowhere: no such file or directory"),
        "{}",
        text(&output.stderr)
    );
    assert!(server.home("alice").join("docs/two words").is_dir());
}

#[test]
fn completions_are_printed() {
    let client = TestClient::new();
    let script = client.ok(&["completions", "bash"]);
    assert!(
        script.contains("qftp") && script.contains("login"),
        "{script}"
    );
}
