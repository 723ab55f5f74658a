//! Server addresses and scp-style remote targets, parsed without touching
//! the network.
//!
//! A server is named `[qftp://][USER@]HOST[:PORT][/PATH]`, where HOST is a
//! name, an IPv4 address or an IPv6 address in brackets (`[::1]:4433`); a
//! bare IPv6 address without a port is accepted too. A remote argument of
//! `put`, `get`, `sync` and the other commands may carry its server in front,
//! as scp does: `HOST:PATH` or `ALIAS:PATH` (a host profile), `USER@HOST:PATH`,
//! `[v6]:PATH`, or a whole `qftp://USER@HOST:PORT/PATH`. An argument whose
//! text before the first `:` contains a `/` is a plain path (`./a:b` names
//! the file `a:b`).
//!
//! Everything here is pure: a malformed address is refused before any
//! packet leaves, so it can never count as a failed login on the server.

/// The port a server listens on when none is given.
pub const DEFAULT_PORT: u16 = 4433;

/// The scheme that may stand in front of an address.
pub const SCHEME: &str = "qftp://";

/// Why an address could not be parsed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum AddressError {
    /// Nothing where a host was expected.
    #[error("invalid address {0:?}: no host")]
    NoHost(String),
    /// A scheme other than `qftp://`.
    #[error("invalid address {0:?}: only qftp:// addresses are understood")]
    Scheme(String),
    /// The user name has characters no user name has.
    #[error("invalid address {address:?}: {user:?} is not a user name")]
    User {
        /// The whole address.
        address: String,
        /// The user part.
        user: String,
    },
    /// The host has characters no host name has.
    #[error("invalid address {address:?}: {host:?} is not a host name or IP address")]
    Host {
        /// The whole address.
        address: String,
        /// The host part.
        host: String,
    },
    /// The port is not a number from 1 to 65535.
    #[error("invalid address {address:?}: port {port:?} is not a number from 1 to 65535")]
    Port {
        /// The whole address.
        address: String,
        /// The port part.
        port: String,
    },
}

/// A parsed server address.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ServerAddress {
    /// The user, when the address names one.
    pub user: Option<String>,
    /// The host name or IP address (IPv6 without brackets).
    pub host: String,
    /// The port, when the address names one.
    pub port: Option<u16>,
    /// The path after the authority (`qftp://host/PATH`), when present.
    pub path: Option<String>,
}

impl ServerAddress {
    /// Parses `[qftp://][USER@]HOST[:PORT][/PATH]`.
    pub fn parse(text: &str) -> Result<Self, AddressError> {
        let rest = strip_scheme(text)?;
        let (authority, path) = match rest.find('/') {
            Some(slash) if !rest.starts_with('[') || rest[..slash].contains(']') => {
                (&rest[..slash], Some(rest[slash..].to_owned()))
            }
            _ => (rest, None),
        };
        let (user, host_port) = match authority.rsplit_once('@') {
            Some((user, host_port)) => {
                if !is_user_name(user) {
                    return Err(AddressError::User {
                        address: text.to_owned(),
                        user: user.to_owned(),
                    });
                }
                (Some(user.to_owned()), host_port)
            }
            None => (None, authority),
        };
        let (host, port) = split_host_port(text, host_port)?;
        Ok(Self {
            user,
            host,
            port,
            path,
        })
    }

    /// The port, or the default one.
    pub fn port_or_default(&self) -> u16 {
        self.port.unwrap_or(DEFAULT_PORT)
    }

    /// The canonical `host:port` key of this server (as in known_hosts).
    pub fn key(&self) -> String {
        host_key(&self.host, self.port_or_default())
    }
}

/// A command-line argument that may name a server before its path.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Target {
    /// A plain path (local or remote, as the command decides).
    Path(String),
    /// `SERVER:PATH`: the server part as typed (an address or a host
    /// profile's name) and the path (`.` when empty).
    Remote {
        /// What stood before the `:` (or the authority of a `qftp://` URL).
        server: String,
        /// The path on that server.
        path: String,
    },
}

impl Target {
    /// Splits an scp-style argument; see the module docs for the rules.
    pub fn parse(text: &str) -> Result<Self, AddressError> {
        if let Some(rest) = text.strip_prefix(SCHEME) {
            let address = ServerAddress::parse(text)?;
            let authority = match rest.find('/') {
                Some(slash) => &rest[..slash],
                None => rest,
            };
            return Ok(Target::Remote {
                server: authority.to_owned(),
                path: address.path.unwrap_or_else(|| ".".into()),
            });
        }
        let (server, path) = if text.starts_with('[') {
            match text.find("]:") {
                Some(end) if !text[..end].contains('/') => (&text[..=end], &text[end + 2..]),
                _ => return Ok(Target::Path(text.to_owned())),
            }
        } else {
            match text.split_once(':') {
                Some((server, path)) if !server.is_empty() && !server.contains('/') => {
                    (server, path)
                }
                _ => return Ok(Target::Path(text.to_owned())),
            }
        };
        ServerAddress::parse(server)?;
        Ok(Target::Remote {
            server: server.to_owned(),
            path: if path.is_empty() { "." } else { path }.to_owned(),
        })
    }
}

fn strip_scheme(text: &str) -> Result<&str, AddressError> {
    if let Some(rest) = text.strip_prefix(SCHEME) {
        return Ok(rest);
    }
    match text.find("://") {
        Some(_) => Err(AddressError::Scheme(text.to_owned())),
        None => Ok(text),
    }
}

/// The same rule as the server's user names, so a typo is caught here.
fn is_user_name(user: &str) -> bool {
    (1..=32).contains(&user.chars().count())
        && !user.starts_with(['.', '-'])
        && user
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '.' | '-'))
}

fn is_host_name(host: &str) -> bool {
    !host.is_empty()
        && host.len() <= 253
        && !host.starts_with(['.', '-'])
        && host
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '.' | '_'))
}

fn split_host_port(address: &str, text: &str) -> Result<(String, Option<u16>), AddressError> {
    let bad_host = |host: &str| AddressError::Host {
        address: address.to_owned(),
        host: host.to_owned(),
    };
    // `u16::from_str` takes a leading `+`, which no port is written with.
    let parse_port = |port: &str| {
        Some(port)
            .filter(|port| port.bytes().all(|byte| byte.is_ascii_digit()))
            .and_then(|port| port.parse::<u16>().ok())
            .filter(|port| *port != 0)
            .ok_or_else(|| AddressError::Port {
                address: address.to_owned(),
                port: port.to_owned(),
            })
    };
    if text.is_empty() {
        return Err(AddressError::NoHost(address.to_owned()));
    }
    if let Some(rest) = text.strip_prefix('[') {
        let (host, after) = rest.split_once(']').ok_or_else(|| bad_host(text))?;
        if host.parse::<std::net::Ipv6Addr>().is_err() {
            return Err(bad_host(host));
        }
        let port = match after.strip_prefix(':') {
            Some(port) => Some(parse_port(port)?),
            None if after.is_empty() => None,
            None => return Err(bad_host(text)),
        };
        return Ok((host.to_owned(), port));
    }
    if text.parse::<std::net::Ipv6Addr>().is_ok() {
        return Ok((text.to_owned(), None));
    }
    let (host, port) = match text.rsplit_once(':') {
        Some((host, port)) => (host, Some(parse_port(port)?)),
        None => (text, None),
    };
    if host.is_empty() {
        return Err(AddressError::NoHost(address.to_owned()));
    }
    if !is_host_name(host) {
        return Err(bad_host(host));
    }
    Ok((host.to_owned(), port))
}

/// The canonical `host:port` key of a server (as in the known-hosts file).
pub fn host_key(host: &str, port: u16) -> String {
    if host.contains(':') {
        format!("[{host}]:{port}")
    } else {
        format!("{host}:{port}")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn address(user: Option<&str>, host: &str, port: Option<u16>) -> ServerAddress {
        ServerAddress {
            user: user.map(str::to_owned),
            host: host.to_owned(),
            port,
            path: None,
        }
    }

    #[test]
    fn every_form_of_a_server_parses() {
        let parse = |text| ServerAddress::parse(text).unwrap();
        assert_eq!(parse("example.org"), address(None, "example.org", None));
        assert_eq!(
            parse("bob@example.org:99"),
            address(Some("bob"), "example.org", Some(99))
        );
        assert_eq!(
            parse("qftp://bob@127.0.0.1:4501"),
            address(Some("bob"), "127.0.0.1", Some(4501))
        );
        assert_eq!(parse("[::1]:7"), address(None, "::1", Some(7)));
        assert_eq!(parse("::1"), address(None, "::1", None));
        assert_eq!(
            parse("alice@[::1]:7"),
            address(Some("alice"), "::1", Some(7))
        );
        let with_path = parse("qftp://alice@host/srv/data");
        assert_eq!(with_path.path.as_deref(), Some("/srv/data"));
        assert_eq!(with_path.key(), "host:4433");
        assert_eq!(parse("[::1]:7").key(), "[::1]:7");
    }

    #[test]
    fn malformed_servers_are_refused() {
        for text in [
            "",
            "@host",
            "bob@",
            "host:",
            "host:notaport",
            "host:0",
            "host:+5",
            "host:65536",
            "http://host",
            "qftp://",
            "bo b@host",
            "qftp://qftp://bob@host",
            "[::1",
            "[nothost]:5",
            "ho st",
            "a@b@host",
        ] {
            assert!(ServerAddress::parse(text).is_err(), "{text:?} parsed");
        }
    }

    #[test]
    fn targets_split_like_scp() {
        let remote = |server: &str, path: &str| Target::Remote {
            server: server.into(),
            path: path.into(),
        };
        let parse = |text| Target::parse(text).unwrap();
        assert_eq!(parse("a.txt"), Target::Path("a.txt".into()));
        assert_eq!(parse("/d/a.txt"), Target::Path("/d/a.txt".into()));
        assert_eq!(parse("./a:b"), Target::Path("./a:b".into()));
        assert_eq!(parse("box:/d/"), remote("box", "/d/"));
        assert_eq!(parse("box:"), remote("box", "."));
        assert_eq!(parse("bob@box:notes"), remote("bob@box", "notes"));
        assert_eq!(parse("[::1]:/x"), remote("[::1]", "/x"));
        assert_eq!(
            parse("qftp://bob@127.0.0.1:4501/d/"),
            remote("bob@127.0.0.1:4501", "/d/")
        );
        assert_eq!(
            parse("qftp://bob@127.0.0.1:4501"),
            remote("bob@127.0.0.1:4501", ".")
        );
        assert!(Target::parse("bo b@box:x").is_err());
        assert!(Target::parse("qftp://bob@host:x/d").is_err());
    }
}
