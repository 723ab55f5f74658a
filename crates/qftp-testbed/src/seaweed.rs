//! [`Seaweed`]: a SeaweedFS server (`weed mini`: master, volume, filer and
//! S3 gateway in one process) in a temporary directory, on 127.0.0.1 with
//! free ports, with one bucket and one access key.

use std::io::{Read as _, Write as _};
use std::net::TcpStream;
use std::path::Path;
use std::time::Duration;

use crate::error::TestbedError;
use crate::guardian::{Guarded, Launch};
use crate::ports::free_ports;
use crate::programs;
use crate::wait::READY_BOUND;

/// How many times a start is tried with new ports when the server exits
/// early (another program took a port in between).
const START_ATTEMPTS: usize = 3;

/// The ports `weed mini` listens on, each given explicitly so that no
/// default collides with another server on the machine.
const PORT_FLAGS: [&str; 10] = [
    "master.port",
    "master.port.grpc",
    "volume.port",
    "volume.port.grpc",
    "filer.port",
    "filer.port.grpc",
    "s3.port",
    "s3.port.grpc",
    "admin.port",
    "admin.port.grpc",
];

/// The key pair the S3 gateway accepts.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct S3Credentials {
    /// `AWS_ACCESS_KEY_ID`.
    pub access_key_id: String,
    /// `AWS_SECRET_ACCESS_KEY`.
    pub secret_access_key: String,
}

/// A running SeaweedFS server, stopped when dropped.
#[derive(Debug)]
pub struct Seaweed {
    server: Guarded,
    s3_port: u16,
    bucket: String,
    credentials: S3Credentials,
    _temp: tempfile::TempDir,
}

impl Seaweed {
    /// The region the gateway is addressed with (SeaweedFS accepts any).
    pub const REGION: &'static str = "us-east-1";

    /// Starts a server with the bucket `bucket`, waiting (bounded) until
    /// its S3 gateway serves the bucket.
    pub fn start(bucket: &str) -> Result<Seaweed, TestbedError> {
        let mut last = None;
        for _ in 0..START_ATTEMPTS {
            match Seaweed::start_once(bucket) {
                Ok(seaweed) => return Ok(seaweed),
                Err(error @ TestbedError::Exited { .. }) => last = Some(error),
                Err(error) => return Err(error),
            }
        }
        Err(last.expect("at least one attempt"))
    }

    fn start_once(bucket: &str) -> Result<Seaweed, TestbedError> {
        let weed = programs::weed()?;
        let temp = tempfile::Builder::new()
            .prefix("qftp-seaweed-")
            .tempdir()
            .map_err(TestbedError::io(std::env::temp_dir()))?;
        let workdir = temp.path().to_owned();
        let data = workdir.join("data");
        std::fs::create_dir(&data).map_err(TestbedError::io(&data))?;
        let credentials = S3Credentials {
            access_key_id: "qftp-test".to_owned(),
            secret_access_key: random_secret()?,
        };
        let config = workdir.join("s3.json");
        std::fs::write(&config, identities(&credentials)).map_err(TestbedError::io(&config))?;

        let ports = free_ports(PORT_FLAGS.len())?;
        let port_of = |flag: &str| ports[PORT_FLAGS.iter().position(|f| *f == flag).expect("flag")];
        let (s3_port, filer_port) = (port_of("s3.port"), port_of("filer.port"));
        let mut command = vec![
            weed.display().to_string(),
            "mini".to_owned(),
            format!("-dir={}", data.display()),
            "-ip=127.0.0.1".to_owned(),
            "-ip.bind=127.0.0.1".to_owned(),
            format!("-s3.config={}", config.display()),
            format!("-bucket={bucket}"),
            "-admin.ui=false".to_owned(),
            "-webdav=false".to_owned(),
            "-s3.port.iceberg=0".to_owned(),
            "-s3.port.lance=0".to_owned(),
        ];
        command.extend(
            PORT_FLAGS
                .iter()
                .zip(&ports)
                .map(|(flag, port)| format!("-{flag}={port}")),
        );
        let mut server = Guarded::start(Launch {
            server: "seaweedfs",
            workdir: &workdir,
            stop_signal: "TERM",
            command,
            user: None,
        })?;
        let bucket_path = format!("/buckets/{bucket}/");
        server.wait_ready(READY_BOUND, || {
            http_status(s3_port, "/").is_some()
                && http_status(filer_port, &bucket_path) == Some(200)
        })?;
        Ok(Seaweed {
            server,
            s3_port,
            bucket: bucket.to_owned(),
            credentials,
            _temp: temp,
        })
    }

    /// The S3 gateway's URL, `http://127.0.0.1:PORT`.
    pub fn endpoint(&self) -> String {
        format!("http://127.0.0.1:{}", self.s3_port)
    }

    /// The bucket made at the start.
    pub fn bucket(&self) -> &str {
        &self.bucket
    }

    /// The key pair the gateway accepts.
    pub fn credentials(&self) -> &S3Credentials {
        &self.credentials
    }

    /// The server's PID.
    pub fn pid(&self) -> i32 {
        self.server.pid()
    }

    /// The server's work directory (data, configuration and log).
    pub fn workdir(&self) -> &Path {
        self.server.workdir()
    }
}

/// The gateway's identities file: one identity with every action.
fn identities(credentials: &S3Credentials) -> String {
    format!(
        r#"{{"identities":[{{"name":"qftp","credentials":[{{"accessKey":"{}","secretKey":"{}"}}],"actions":["Admin","Read","Write","List","Tagging"]}}]}}"#,
        credentials.access_key_id, credentials.secret_access_key
    )
}

/// A secret of 32 hex digits from the system's random source.
fn random_secret() -> Result<String, TestbedError> {
    let mut bytes = [0u8; 16];
    std::fs::File::open("/dev/urandom")
        .and_then(|mut random| random.read_exact(&mut bytes))
        .map_err(TestbedError::io("/dev/urandom"))?;
    Ok(bytes.iter().map(|byte| format!("{byte:02x}")).collect())
}

/// The status of a plain `GET path` on 127.0.0.1:`port`, if it answers.
fn http_status(port: u16, path: &str) -> Option<u16> {
    let timeout = Duration::from_secs(5);
    let mut stream = TcpStream::connect_timeout(&([127, 0, 0, 1], port).into(), timeout).ok()?;
    stream.set_read_timeout(Some(timeout)).ok()?;
    write!(
        stream,
        "GET {path} HTTP/1.0\r\nHost: 127.0.0.1:{port}\r\nAccept: application/json\r\n\r\n"
    )
    .ok()?;
    let mut head = [0u8; 12];
    stream.read_exact(&mut head).ok()?;
    std::str::from_utf8(&head[9..12]).ok()?.parse().ok()
}
