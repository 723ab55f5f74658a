//! No-change re-runs of the peers (rsync, lftp) for the `resync-*`
//! scenarios.
//!
//! The peers script measures first runs only (`small.rsync`, `small.lftp`,
//! ...), and it stops its sshd when it exits. What it set up stays on disk,
//! though: its ssh client config, keys and sshd config. This module reads
//! their locations and the peers' command lines from the script itself (its
//! top-level assignments such as `P=`, `C=`, `SSHP=`, `H=`, the line that
//! starts its sshd and its `lftp -c "... mirror -R ..."` case), so nothing
//! about the script's layout is built in. For the duration of the re-run
//! measurement the benchmark starts that sshd itself, in the foreground
//! (`sshd -D -f CONFIG -o PidFile=none`, so the script's pid file is left
//! alone), as its own child, and stops it by PID afterwards.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::net::{IpAddr, Ipv4Addr, SocketAddr, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{Context as _, bail};

use crate::process::{self, Guard};
use crate::server::log_files;

/// How long the sshd may take to accept connections.
const START_LIMIT: Duration = Duration::from_secs(15);

/// Time limit of the `ssh HOST true` check.
const CHECK_LIMIT: Duration = Duration::from_secs(60);

/// A peer whose no-change re-run the benchmark knows how to run.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Tool {
    /// `rsync -a -e SSH SRC/ HOST:DST/`, as the script's rsync cases.
    Rsync,
    /// `lftp -c "...; mirror -R --parallel=8 SRC DST"`, as the script's lftp cases.
    Lftp,
}

impl Tool {
    /// The tool of a peers-script case id (`rsync`, `lftp`), if known.
    pub fn from_case_id(id: &str) -> Option<Self> {
        match id {
            "rsync" => Some(Self::Rsync),
            "lftp" => Some(Self::Lftp),
            _ => None,
        }
    }
}

/// What the peers script set up, and the peers' command lines.
#[derive(Debug, Clone)]
pub struct Rerun {
    /// The sshd binary, as the script starts it.
    sshd: PathBuf,
    /// The script's sshd config.
    sshd_config: PathBuf,
    /// The ssh command of the script's cases (`SSHP`), e.g.
    /// `ssh -F .../ssh_config -p 2222`.
    ssh: String,
    /// The login of the script's cases (`H`), e.g. `root@127.0.0.1`.
    host: String,
    /// The lftp commands before `mirror`, e.g. `set sftp:connect-program
    /// '...'; set cmd:fail-exit yes; open -u root, -p 2222 sftp://127.0.0.1; `.
    lftp_prefix: String,
    /// `mirror` and its options, e.g. `mirror -R --parallel=8`.
    mirror: Vec<String>,
}

impl Rerun {
    /// Reads the script at `script`.
    pub fn from_script(script: &Path) -> anyhow::Result<Self> {
        let text = std::fs::read_to_string(script)
            .with_context(|| format!("reading {}", script.display()))?;
        let variables = variables(&text);
        let variable = |name: &str| {
            variables.get(name).cloned().with_context(|| {
                format!(
                    "no top-level assignment of {name} in {} to derive the re-run commands from",
                    script.display()
                )
            })
        };
        let ssh = variable("SSHP")?;
        let host = variable("H")?;
        let (sshd, sshd_config) = sshd_line(&text, &variables).with_context(|| {
            format!("finding the line that starts sshd in {}", script.display())
        })?;
        let (lftp_prefix, mirror) = lftp_case(&text, &variables).with_context(|| {
            format!(
                "finding the lftp mirror case (lftp -c \\\"... mirror -R ...\\\") in {}",
                script.display()
            )
        })?;
        Ok(Self {
            sshd,
            sshd_config,
            ssh,
            host,
            lftp_prefix,
            mirror,
        })
    }

    /// The sshd binary the script starts.
    pub fn sshd(&self) -> &Path {
        &self.sshd
    }

    /// The script's sshd config.
    pub fn sshd_config(&self) -> &Path {
        &self.sshd_config
    }

    /// The ssh client config of the script's cases: the `-F` of its `SSHP`.
    pub fn ssh_config(&self) -> Option<PathBuf> {
        let words: Vec<&str> = self.ssh.split_whitespace().collect();
        let index = words.iter().position(|word| *word == "-F")?;
        words.get(index + 1).map(PathBuf::from)
    }

    /// Checks that the script's sshd config is in place and valid
    /// (`sshd -t`, which also wants its privilege-separation directory).
    pub fn check(&self, logs: &Path) -> anyhow::Result<()> {
        if !self.sshd_config.is_file() {
            bail!("{} does not exist", self.sshd_config.display());
        }
        let log = logs.join("peers-sshd-check.log");
        let (stdout, stderr) = log_files(&log)?;
        let mut command = Command::new(&self.sshd);
        command
            .arg("-t")
            .arg("-f")
            .arg(&self.sshd_config)
            .args(["-o", "PidFile=none"])
            .stdout(stdout)
            .stderr(stderr);
        process::run_ok(&mut command, None, CHECK_LIMIT, "sshd -t")
            .with_context(|| format!("see {}", log.display()))?;
        Ok(())
    }

    /// The address the sshd listens on, from its config.
    fn address(&self) -> anyhow::Result<SocketAddr> {
        let text = std::fs::read_to_string(&self.sshd_config)
            .with_context(|| format!("reading {}", self.sshd_config.display()))?;
        let mut port = 22;
        let mut ip = IpAddr::V4(Ipv4Addr::LOCALHOST);
        for line in text.lines() {
            let mut words = line.split_whitespace();
            match (words.next(), words.next()) {
                (Some(key), Some(value)) if key.eq_ignore_ascii_case("Port") => {
                    port = value.parse().with_context(|| {
                        format!("Port {value} in {}", self.sshd_config.display())
                    })?;
                }
                (Some(key), Some(value)) if key.eq_ignore_ascii_case("ListenAddress") => {
                    if let Ok(address) = value.parse::<IpAddr>()
                        && !address.is_unspecified()
                    {
                        ip = address;
                    }
                }
                _ => {}
            }
        }
        Ok(SocketAddr::new(ip, port))
    }

    /// Starts the script's sshd in the foreground as a child of this
    /// process; the guard stops it by PID. Fails if something already
    /// listens on its address (e.g. a concurrent run of the peers script).
    pub fn start_sshd(&self, logs: &Path) -> anyhow::Result<Guard> {
        let address = self.address()?;
        if TcpStream::connect_timeout(&address, Duration::from_secs(1)).is_ok() {
            bail!(
                "{address} is already in use (another sshd, e.g. a concurrent run of the peers script); not starting one"
            );
        }
        let log = logs.join("peers-sshd.log");
        let (stdout, stderr) = log_files(&log)?;
        let child = Command::new(&self.sshd)
            .arg("-D")
            .arg("-e")
            .arg("-f")
            .arg(&self.sshd_config)
            .args(["-o", "PidFile=none"])
            .stdin(Stdio::null())
            .stdout(stdout)
            .stderr(stderr)
            .spawn()
            .with_context(|| format!("starting {}", self.sshd.display()))?;
        let mut guard = Guard::new(child, "sshd (the peers script's config)", "TERM");
        let deadline = Instant::now() + START_LIMIT;
        loop {
            if guard.exited() {
                bail!("sshd exited at once; see {}", log.display());
            }
            if TcpStream::connect_timeout(&address, Duration::from_millis(500)).is_ok() {
                break;
            }
            if Instant::now() >= deadline {
                bail!(
                    "sshd did not listen on {address} within {} s; see {}",
                    START_LIMIT.as_secs(),
                    log.display()
                );
            }
            process::sleep(Duration::from_millis(100))?;
        }
        let check = logs.join("peers-ssh-check.log");
        let (stdout, stderr) = log_files(&check)?;
        let mut words = self.ssh.split_whitespace();
        let mut command = Command::new(words.next().context("an empty ssh command")?);
        command
            .args(words)
            .arg(&self.host)
            .arg("true")
            .stdout(stdout)
            .stderr(stderr);
        process::run_ok(&mut command, None, CHECK_LIMIT, "ssh HOST true")
            .with_context(|| format!("see {}", check.display()))?;
        if guard.exited() {
            bail!(
                "sshd exited, yet ssh {} got in: another sshd answers",
                self.host
            );
        }
        Ok(guard)
    }

    /// The command that mirrors `source` to `destination` with `tool` (with
    /// `dry_run`: only lists what it would do), and its shell form.
    pub fn command(
        &self,
        tool: Tool,
        source: &Path,
        destination: &Path,
        dry_run: bool,
    ) -> anyhow::Result<(Command, String)> {
        let source = plain(source)?;
        let destination = plain(destination)?;
        Ok(match tool {
            Tool::Rsync => {
                let mut arguments = vec!["-a".to_owned()];
                if dry_run {
                    arguments.extend(["-n".to_owned(), "-i".to_owned()]);
                }
                arguments.extend([
                    "-e".to_owned(),
                    self.ssh.clone(),
                    format!("{source}/"),
                    format!("{}:{destination}/", self.host),
                ]);
                let shown = arguments
                    .iter()
                    .map(|argument| quote(argument))
                    .collect::<Vec<_>>()
                    .join(" ");
                let mut command = Command::new("rsync");
                command.args(&arguments);
                (command, format!("rsync {shown}"))
            }
            Tool::Lftp => {
                let mut mirror = self.mirror.clone();
                if dry_run {
                    mirror.insert(1, "--dry-run".into());
                }
                let script = format!(
                    "{}{} {source} {destination}",
                    self.lftp_prefix,
                    mirror.join(" ")
                );
                let mut command = Command::new("lftp");
                command.arg("-c").arg(&script);
                (command, format!("lftp -c \"{script}\""))
            }
        })
    }

    /// What the dry run of `tool` printed that is an action, i.e. not the
    /// `mkdir -p` of `destination` itself, which lftp always lists.
    pub fn pending(tool: Tool, output: &str, destination: &Path) -> Vec<String> {
        let destination = destination.display().to_string();
        output
            .lines()
            .map(str::trim)
            .filter(|line| !line.is_empty())
            .filter(|line| {
                !(tool == Tool::Lftp
                    && line.starts_with("mkdir ")
                    && line.trim_end_matches('/').ends_with(&destination))
            })
            .map(str::to_owned)
            .collect()
    }
}

/// `path` as text, refused if it holds characters the command lines above
/// would have to quote.
fn plain(path: &Path) -> anyhow::Result<String> {
    let text = path
        .to_str()
        .with_context(|| format!("{} is not UTF-8", path.display()))?;
    if text
        .chars()
        .any(|c| c.is_whitespace() || "'\"\\$;`&|<>(){}*?!#~".contains(c))
    {
        bail!("{text}: the re-run commands need a path without spaces or shell characters");
    }
    Ok(text.to_owned())
}

/// Single-quotes `word` for display when it needs it.
fn quote(word: &str) -> String {
    if word
        .chars()
        .all(|c| c.is_ascii_alphanumeric() || "-_./:@=,+".contains(c))
    {
        word.to_owned()
    } else {
        format!("'{}'", word.replace('\'', "'\\''"))
    }
}

/// The script's top-level assignments (`NAME=value` at the very start of
/// a line; assignments in function bodies are indented or `local`), with
/// `$NAME` expanded from earlier ones; the first assignment of a name wins. Values holding command
/// substitutions or `${...}` defaults are left out.
pub fn variables(text: &str) -> BTreeMap<String, String> {
    let mut variables = BTreeMap::new();
    for line in text.lines() {
        let Some((name, rest)) = line.split_once('=') else {
            continue;
        };
        let valid_name = name
            .chars()
            .next()
            .is_some_and(|c| c.is_ascii_alphabetic() || c == '_')
            && name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_');
        if !valid_name || variables.contains_key(name) {
            continue;
        }
        let raw = if let Some(quoted) = rest.strip_prefix('"') {
            match quoted.split_once('"') {
                Some((value, _)) => value,
                None => continue,
            }
        } else if let Some(quoted) = rest.strip_prefix('\'') {
            match quoted.split_once('\'') {
                Some((value, _)) => {
                    variables.insert(name.to_owned(), value.to_owned());
                    continue;
                }
                None => continue,
            }
        } else {
            rest.split_whitespace()
                .next()
                .unwrap_or("")
                .trim_end_matches(';')
        };
        if raw.contains("$(") || raw.contains("${") || raw.contains('`') {
            continue;
        }
        if let Ok(value) = expand(raw, &variables) {
            variables.insert(name.to_owned(), value);
        }
    }
    variables
}

/// The directories of the script's `export PATH=...` line that can be
/// expanded from its top-level variables (`$PATH` itself and variables of
/// the environment such as `$HOME` are left out): where the tools it
/// installs for itself (e.g. qcp) live.
pub fn exported_path(text: &str) -> Vec<PathBuf> {
    let variables = variables(text);
    let Some(line) = text
        .lines()
        .find_map(|line| line.strip_prefix("export PATH="))
    else {
        return Vec::new();
    };
    let value = line.split_whitespace().next().unwrap_or("");
    let value = value.trim_matches('"');
    value
        .split(':')
        .filter(|part| !part.is_empty())
        .filter_map(|part| expand(part, &variables).ok())
        .map(PathBuf::from)
        .collect()
}

/// Expands `$NAME` and `${NAME}` in `text` from `variables`; fails on an
/// unknown name or any other `$` construct.
fn expand(text: &str, variables: &BTreeMap<String, String>) -> anyhow::Result<String> {
    let mut out = String::new();
    let mut rest = text;
    while let Some(index) = rest.find('$') {
        out.push_str(&rest[..index]);
        let after = &rest[index + 1..];
        let (name, tail) = if let Some(braced) = after.strip_prefix('{') {
            let end = braced.find('}').context("an unclosed ${")?;
            (&braced[..end], &braced[end + 1..])
        } else {
            let end = after
                .find(|c: char| !(c.is_ascii_alphanumeric() || c == '_'))
                .unwrap_or(after.len());
            (&after[..end], &after[end..])
        };
        let value = variables
            .get(name)
            .with_context(|| format!("${name} is not a top-level variable of the script"))?;
        let _ = write!(out, "{value}");
        rest = tail;
    }
    out.push_str(rest);
    Ok(out)
}

/// The line that starts the loopback sshd (`/usr/sbin/sshd -f CONFIG`, not
/// the `-t` check, not inside a network namespace): binary and config.
fn sshd_line(
    text: &str,
    variables: &BTreeMap<String, String>,
) -> anyhow::Result<(PathBuf, PathBuf)> {
    for line in text.lines() {
        let words: Vec<&str> = line.split_whitespace().collect();
        let Some(first) = words.first() else {
            continue;
        };
        if !(first.ends_with("/sshd") || *first == "sshd") || words.contains(&"-t") {
            continue;
        }
        let Some(config) = words
            .iter()
            .position(|word| *word == "-f")
            .and_then(|index| words.get(index + 1))
        else {
            continue;
        };
        return Ok((
            PathBuf::from(expand(first, variables)?),
            PathBuf::from(expand(config, variables)?),
        ));
    }
    bail!("no line starting with `sshd -f CONFIG`")
}

/// The script's lftp mirror case: the commands before `mirror` (expanded)
/// and the `mirror` command without its source and destination.
fn lftp_case(
    text: &str,
    variables: &BTreeMap<String, String>,
) -> anyhow::Result<(String, Vec<String>)> {
    const START: &str = "lftp -c \\\"";
    let line = text
        .lines()
        .find(|line| line.contains(START) && line.contains("mirror -R"))
        .context("no line with `lftp -c \\\"` and `mirror -R`")?;
    let inner = &line[line.find(START).context("no lftp -c")? + START.len()..];
    let inner = &inner[..inner
        .find("\\\"")
        .context("no closing \\\" after lftp -c")?];
    let at = inner.rfind("mirror ").context("no mirror command")?;
    let prefix = expand(&inner[..at], variables)?;
    let mut mirror: Vec<String> = inner[at..].split_whitespace().map(str::to_owned).collect();
    // The last two words are the case's source and destination.
    if mirror.len() < 4
        || mirror
            .iter()
            .take(mirror.len() - 2)
            .any(|w| w.contains('$'))
    {
        bail!("unexpected mirror command {:?}", &inner[at..]);
    }
    mirror.truncate(mirror.len() - 2);
    Ok((prefix, mirror))
}

#[cfg(test)]
mod tests {
    use super::*;

    const SCRIPT: &str = r#"#!/bin/bash
set -uo pipefail

P=/tmp/peers-test
S=$P/ssh                  # keys + configs
C=$S/ssh_config           # client config
RUNS=${RUNS:-5}
export PATH=$P/bin:$PATH:$HOME/.cargo/bin   # tools
NS_A=qa; NS_B=qb

do_setup() {
    if true; then
        /usr/sbin/sshd -t -f $S/sshd_config || exit 1
        /usr/sbin/sshd -f $S/sshd_config
    fi
    ip netns exec $NS_B /usr/sbin/sshd -f $S/sshd_config_qb || return 1
}

SSHP="ssh -F $C -p 2222"
H=root@127.0.0.1

do_local() {
    bench small lftp "lftp mirror" lftp $SB 10000 "" "$PS" \
        "lftp -c \"set sftp:connect-program 'ssh -a -x -F $C'; set cmd:fail-exit yes; open -u root, -p 2222 sftp://127.0.0.1; mirror -R --parallel=8 $D/small4k $DS\"" "$VS"
}
"#;

    #[test]
    fn script_is_read() {
        let variables = variables(SCRIPT);
        assert_eq!(variables["P"], "/tmp/peers-test");
        assert_eq!(variables["C"], "/tmp/peers-test/ssh/ssh_config");
        assert_eq!(
            variables["SSHP"],
            "ssh -F /tmp/peers-test/ssh/ssh_config -p 2222"
        );
        assert_eq!(variables["H"], "root@127.0.0.1");
        assert_eq!(variables["NS_A"], "qa");
        assert!(!variables.contains_key("RUNS"));
        assert_eq!(
            exported_path(SCRIPT),
            [PathBuf::from("/tmp/peers-test/bin")]
        );
        let (sshd, config) = sshd_line(SCRIPT, &variables).unwrap();
        assert_eq!(sshd, Path::new("/usr/sbin/sshd"));
        assert_eq!(config, Path::new("/tmp/peers-test/ssh/sshd_config"));
        let (prefix, mirror) = lftp_case(SCRIPT, &variables).unwrap();
        assert_eq!(
            prefix,
            "set sftp:connect-program 'ssh -a -x -F /tmp/peers-test/ssh/ssh_config'; set cmd:fail-exit yes; open -u root, -p 2222 sftp://127.0.0.1; "
        );
        assert_eq!(mirror, ["mirror", "-R", "--parallel=8"]);
    }

    #[test]
    fn commands_are_built() {
        let directory = tempfile::tempdir().unwrap();
        let script = directory.path().join("peers.sh");
        std::fs::write(&script, SCRIPT).unwrap();
        let rerun = Rerun::from_script(&script).unwrap();
        assert_eq!(
            rerun.ssh_config(),
            Some(PathBuf::from("/tmp/peers-test/ssh/ssh_config"))
        );
        let (_, shown) = rerun
            .command(Tool::Rsync, Path::new("/src/a"), Path::new("/dst/b"), false)
            .unwrap();
        assert_eq!(
            shown,
            "rsync -a -e 'ssh -F /tmp/peers-test/ssh/ssh_config -p 2222' /src/a/ root@127.0.0.1:/dst/b/"
        );
        let (_, shown) = rerun
            .command(Tool::Lftp, Path::new("/src/a"), Path::new("/dst/b"), true)
            .unwrap();
        assert!(shown.ends_with("mirror --dry-run -R --parallel=8 /src/a /dst/b\""));
        assert!(
            rerun
                .command(Tool::Rsync, Path::new("/src/a b"), Path::new("/dst"), false)
                .is_err()
        );
    }

    #[test]
    fn lftp_dry_run_ignores_the_top_mkdir() {
        let output = "mkdir -p sftp://root:@127.0.0.1:2222/dst/b\n";
        assert!(Rerun::pending(Tool::Lftp, output, Path::new("/dst/b")).is_empty());
        let output = "mkdir -p sftp://root:@127.0.0.1:2222/dst/b\nget -O sftp://x/dst/b/d1 file:/src/a/d1/f\n";
        assert_eq!(
            Rerun::pending(Tool::Lftp, output, Path::new("/dst/b")).len(),
            1
        );
        assert_eq!(
            Rerun::pending(Tool::Rsync, "", Path::new("/dst/b")).len(),
            0
        );
        assert_eq!(
            Rerun::pending(Tool::Rsync, ">f+++++++++ d/f\n", Path::new("/dst/b")).len(),
            1
        );
    }
}
