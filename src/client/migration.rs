//! Following the local network during a command: when the operating
//! system reports that the network changed, or when the program gets
//! SIGUSR1 (for a network manager's hook scripts), the connection moves to
//! a new local socket and transfers in flight carry on, with no resume.

use qftp_client::Client;
use qftp_client::network_change::NetworkChanges;
use tokio::task::JoinHandle;

/// Moves `client` to a new socket on every change, until aborted.
pub fn follow_network(client: Client) -> JoinHandle<()> {
    tokio::spawn(async move {
        let mut changes = match NetworkChanges::watch() {
            Ok(changes) => Some(changes),
            Err(error) => {
                tracing::debug!(%error, "not watching the local network");
                None
            }
        };
        let mut asked =
            match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::user_defined1()) {
                Ok(signal) => Some(signal),
                Err(error) => {
                    tracing::debug!(%error, "SIGUSR1 will not move the connection");
                    None
                }
            };
        loop {
            let cue = tokio::select! {
                Some(()) = next_change(&mut changes) => "the local network changed",
                Some(()) = next_signal(&mut asked) => "SIGUSR1",
                else => return,
            };
            match client.rebind() {
                Ok(address) => tracing::info!(%address, "{cue}: moved the connection"),
                Err(error) => tracing::warn!(%error, "{cue}"),
            }
        }
    })
}

async fn next_change(changes: &mut Option<NetworkChanges>) -> Option<()> {
    let watching = changes.as_mut()?;
    let change = watching.next().await;
    if change.is_none() {
        *changes = None;
    }
    change
}

async fn next_signal(signal: &mut Option<tokio::signal::unix::Signal>) -> Option<()> {
    signal.as_mut()?.recv().await
}
