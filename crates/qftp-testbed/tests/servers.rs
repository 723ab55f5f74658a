//! The testbed's servers start, serve, and are gone once dropped.

use std::path::Path;
use std::process::Command;

use qftp_testbed::{Postgres, Seaweed, programs};

/// Whether a process of this PID runs (a zombie awaiting its parent's
/// `wait` has stopped).
fn alive(pid: i32) -> bool {
    std::fs::read_to_string(Path::new(&format!("/proc/{pid}/stat"))).is_ok_and(|stat| {
        stat.rsplit_once(") ")
            .is_some_and(|(_, rest)| !rest.starts_with('Z'))
    })
}

#[test]
fn postgres_serves_databases_and_stops_on_drop() {
    let postgres = Postgres::start().expect("PostgreSQL starts");
    let url = postgres
        .create_database("testbed_check")
        .expect("a database is made");
    assert!(url.ends_with("/testbed_check"), "{url}");
    let psql = programs::postgresql("psql").expect("psql");
    let output = Command::new(psql)
        .args([
            &url,
            "--tuples-only",
            "--no-align",
            "--command",
            "select 40 + 2",
        ])
        .output()
        .expect("psql runs");
    assert_eq!(
        String::from_utf8_lossy(&output.stdout).trim(),
        "42",
        "the database answers: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    let (pid, workdir) = (postgres.pid(), postgres.workdir().to_owned());
    assert!(alive(pid));
    drop(postgres);
    assert!(!alive(pid), "the server is stopped by its PID on drop");
    assert!(!workdir.exists(), "its directory is removed");
}

#[test]
fn seaweed_serves_its_bucket_and_stops_on_drop() {
    let seaweed = Seaweed::start("testbed-check").expect("SeaweedFS starts");
    assert_eq!(seaweed.bucket(), "testbed-check");
    assert!(seaweed.endpoint().starts_with("http://127.0.0.1:"));
    let (pid, workdir) = (seaweed.pid(), seaweed.workdir().to_owned());
    assert!(alive(pid));
    drop(seaweed);
    assert!(!alive(pid), "the server is stopped by its PID on drop");
    assert!(!workdir.exists(), "its directory is removed");
}
