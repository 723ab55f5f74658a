//! Free TCP ports on 127.0.0.1.

use std::net::TcpListener;

use crate::error::TestbedError;

/// `count` distinct ports that were free a moment ago (each was bound at
/// once, so they differ; another program may still take one before the
/// server does, which a server's start reports as an early exit).
pub fn free_ports(count: usize) -> Result<Vec<u16>, TestbedError> {
    let listeners = (0..count)
        .map(|_| TcpListener::bind("127.0.0.1:0"))
        .collect::<Result<Vec<_>, _>>()
        .map_err(TestbedError::io("127.0.0.1:0"))?;
    listeners
        .iter()
        .map(|listener| {
            listener
                .local_addr()
                .map(|address| address.port())
                .map_err(TestbedError::io("127.0.0.1:0"))
        })
        .collect()
}
