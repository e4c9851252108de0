//! The fault-injecting TCP proxy in front of every replica's peer port. Each
//! replica is advertised to its peers at its proxy's address, so every peer
//! connection passes through here; a partition is then real at the socket
//! level: the proxies refuse new connections and cut open ones in both
//! directions (into the partitioned replica, and out of it, told apart by
//! the source address each replica connects from). This module owns the
//! sockets and the partition table; it knows nothing of Raft or HTTP.

use std::collections::BTreeSet;
use std::net::{IpAddr, SocketAddr};
use std::sync::{Arc, Mutex};

use tokio::net::{TcpListener, TcpStream};
use tokio::sync::watch;
use tokio_util::sync::CancellationToken;

/// Errors starting a proxy.
#[derive(Debug, thiserror::Error)]
pub enum ProxyError {
    #[error("peer proxy cannot listen on {addr}: {source}")]
    Bind { addr: SocketAddr, source: std::io::Error },
}

/// Addresses cut off from the others, shared by every proxy of a cluster.
#[derive(Debug)]
pub struct Partitions {
    isolated: Mutex<BTreeSet<IpAddr>>,
    changed: watch::Sender<u64>,
}

impl Default for Partitions {
    fn default() -> Self {
        Partitions { isolated: Mutex::new(BTreeSet::new()), changed: watch::Sender::new(0) }
    }
}

impl Partitions {
    /// Cuts `replica` (its own address) off from every peer, both ways.
    pub fn isolate(&self, replica: IpAddr) {
        self.isolated.lock().unwrap_or_else(|p| p.into_inner()).insert(replica);
        self.changed.send_modify(|g| *g += 1);
    }

    /// Heals every partition.
    pub fn heal(&self) {
        self.isolated.lock().unwrap_or_else(|p| p.into_inner()).clear();
        self.changed.send_modify(|g| *g += 1);
    }

    /// Whether a connection from `source` to the replica at `target` is cut.
    pub fn cuts(&self, source: IpAddr, target: IpAddr) -> bool {
        let set = self.isolated.lock().unwrap_or_else(|p| p.into_inner());
        set.contains(&source) || set.contains(&target)
    }
}

/// One proxy: listens on `listen`, forwards to `target`.
pub struct PeerProxy {
    pub listen: SocketAddr,
}

impl PeerProxy {
    /// Starts the proxy; it stops on `shutdown`.
    pub async fn start(
        listen: SocketAddr,
        target: SocketAddr,
        partitions: Arc<Partitions>,
        shutdown: CancellationToken,
    ) -> Result<PeerProxy, ProxyError> {
        let listener = TcpListener::bind(listen).await.map_err(|source| ProxyError::Bind { addr: listen, source })?;
        tokio::spawn(accept_loop(listener, target, partitions, shutdown));
        Ok(PeerProxy { listen })
    }
}

async fn accept_loop(
    listener: TcpListener,
    target: SocketAddr,
    partitions: Arc<Partitions>,
    shutdown: CancellationToken,
) {
    loop {
        let accepted = tokio::select! {
            _ = shutdown.cancelled() => return,
            a = listener.accept() => a,
        };
        let Ok((inbound, from)) = accepted else { continue };
        if partitions.cuts(from.ip(), target.ip()) {
            drop(inbound); // refused: closed at once
            continue;
        }
        tokio::spawn(relay(inbound, from.ip(), target, partitions.clone(), shutdown.clone()));
    }
}

/// Copies both ways until either side closes, the partition table cuts
/// this link, or the proxy shuts down.
async fn relay(
    mut inbound: TcpStream,
    source: IpAddr,
    target: SocketAddr,
    partitions: Arc<Partitions>,
    shutdown: CancellationToken,
) {
    let Ok(mut outbound) = TcpStream::connect(target).await else { return };
    let _ = outbound.set_nodelay(true);
    let _ = inbound.set_nodelay(true);
    let mut changed = partitions.changed.subscribe();
    let copy = tokio::io::copy_bidirectional(&mut inbound, &mut outbound);
    tokio::pin!(copy);
    loop {
        tokio::select! {
            _ = shutdown.cancelled() => return,
            _ = &mut copy => return,
            r = changed.changed() => {
                if r.is_err() || partitions.cuts(source, target.ip()) {
                    return; // dropping both streams cuts the link
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_isolated_replica_is_cut_both_ways_and_others_are_not() {
        let p = Partitions::default();
        let (a, b, c): (IpAddr, IpAddr, IpAddr) =
            ("127.0.9.10".parse().unwrap(), "127.0.9.11".parse().unwrap(), "127.0.9.12".parse().unwrap());
        assert!(!p.cuts(a, b));
        p.isolate(a);
        assert!(p.cuts(a, b) && p.cuts(b, a));
        assert!(!p.cuts(b, c));
        p.heal();
        assert!(!p.cuts(a, b));
    }
}
