//! The manual pages: generated for both programs and every subcommand,
//! readable by `man -l`, showing the commands and the exit codes; and the
//! same exit codes in `--help` and in what the programs return.

use std::process::Command;

use crate::support::{binary, text};

/// `man -l PAGE` as plain text, 100 columns wide.
fn read_page(page: &std::path::Path) -> String {
    let output = Command::new("man")
        .arg("-l")
        .arg(page)
        .env("MANPAGER", "cat")
        .env("MANWIDTH", "100")
        .env("MAN_KEEP_FORMATTING", "")
        .output()
        .expect("running man (Debian's man-db)");
    assert!(
        output.status.success(),
        "man -l {} failed: {}",
        page.display(),
        text(&output.stderr)
    );
    text(&output.stdout)
}

#[test]
fn man_pages_show_the_commands_and_the_exit_codes() {
    let dir = tempfile::tempdir().unwrap();
    let written = qftp::man::write_pages(dir.path()).expect("writing the pages");
    for name in [
        "qftp.1",
        "qftp-put.1",
        "qftp-get.1",
        "qftp-known-hosts-remove.1",
        "qftp-server.1",
        "qftp-server-serve.1",
        "qftp-server-user-add.1",
    ] {
        assert!(
            written.contains(&dir.path().join(name)),
            "{name} not among {written:?}"
        );
    }
    let client = read_page(&dir.path().join("qftp.1"));
    for shown in [
        "SYNOPSIS",
        "login",
        "put",
        "sync",
        "EXIT STATUS",
        "EXAMPLES",
    ] {
        assert!(client.contains(shown), "{shown} not in qftp.1:\n{client}");
    }
    for code in [
        "0    success",
        "2    usage error",
        "3    partial failure",
        "130  interrupted",
    ] {
        assert!(client.contains(code), "{code} not in qftp.1:\n{client}");
    }
    let put = read_page(&dir.path().join("qftp-put.1"));
    assert!(put.contains("WHERE FILES LAND"), "{put}");
    assert!(put.contains("3    partial failure"), "{put}");
    let server = read_page(&dir.path().join("qftp-server.1"));
    for shown in [
        "serve",
        "user",
        "sessions",
        "kick",
        "EXIT STATUS",
        "1    error",
    ] {
        assert!(
            server.contains(shown),
            "{shown} not in qftp-server.1:\n{server}"
        );
    }
    let add = read_page(&dir.path().join("qftp-server-user-add.1"));
    assert!(add.contains("--password-stdin"), "{add}");
    assert!(add.contains("EXIT STATUS"), "{add}");
}

#[test]
fn help_names_the_exit_codes_the_programs_return() {
    for program in ["qftp", "qftp-server"] {
        let help = Command::new(binary(program))
            .arg("--help")
            .output()
            .expect("running --help");
        assert!(help.status.success());
        let help = text(&help.stdout);
        assert!(help.contains("EXIT STATUS:"), "{program}: {help}");
        assert!(help.contains("  2    usage error"), "{program}: {help}");
        let usage = Command::new(binary(program))
            .arg("--no-such-option")
            .output()
            .expect("running with a bad option");
        assert_eq!(usage.status.code(), Some(2), "{program}");
    }
    // An error is 1: a user of a root that does not exist.
    let root = tempfile::tempdir().unwrap();
    let missing = Command::new(binary("qftp-server"))
        .arg("--root")
        .arg(root.path().join("none"))
        .args(["user", "del", "nobody"])
        .output()
        .expect("running user del");
    assert_eq!(missing.status.code(), Some(1), "{}", text(&missing.stderr));
}
