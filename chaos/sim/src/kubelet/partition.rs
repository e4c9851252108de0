//! Source blocks: cut one client (by source IP: one replica) off from every
//! kubelet of the fleet, as a network partition between that replica and
//! the nodes would, while every other client still gets through. A blocked
//! source's new connections are closed at once ([`BlockMode::Refuse`]) or
//! held unanswered ([`BlockMode::Blackhole`], like dropped packets), and its
//! open connections are cut when the block is set. `serve` asks this module
//! on every accept; the knobs are on [`KubeletFleet`].

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::Mutex;

use tokio::sync::watch;

use super::KubeletFleet;

/// How a blocked source is turned away.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BlockMode {
    /// Connections are closed as soon as they are accepted (a reset).
    Refuse,
    /// Connections are accepted and never answered (packets dropped):
    /// the client waits for its own timeout.
    Blackhole,
}

/// The fleet-wide table of blocked sources.
#[derive(Debug)]
pub(crate) struct SourceBlocks {
    table: Mutex<HashMap<IpAddr, BlockMode>>,
    /// Bumped on every change, so open connections can check again.
    changed: watch::Sender<u64>,
}

impl Default for SourceBlocks {
    fn default() -> Self {
        SourceBlocks { table: Mutex::new(HashMap::new()), changed: watch::Sender::new(0) }
    }
}

impl SourceBlocks {
    pub fn mode(&self, ip: IpAddr) -> Option<BlockMode> {
        self.table.lock().unwrap_or_else(|p| p.into_inner()).get(&ip).copied()
    }

    pub fn subscribe(&self) -> watch::Receiver<u64> {
        self.changed.subscribe()
    }

    fn set(&self, ip: IpAddr, mode: Option<BlockMode>) {
        {
            let mut table = self.table.lock().unwrap_or_else(|p| p.into_inner());
            match mode {
                Some(m) => table.insert(ip, m),
                None => table.remove(&ip),
            };
        }
        self.changed.send_modify(|g| *g += 1);
    }

    fn all(&self) -> Vec<(IpAddr, BlockMode)> {
        self.table.lock().unwrap_or_else(|p| p.into_inner()).iter().map(|(k, v)| (*k, *v)).collect()
    }
}

impl KubeletFleet {
    /// Cuts `source` (a replica's address) off from every kubelet: its open
    /// connections are dropped and new ones turned away as `mode` says.
    /// Other clients are not affected.
    pub fn block_source(&self, source: IpAddr, mode: BlockMode) {
        self.shared.blocks.set(source, Some(mode));
    }

    /// Lets `source` through again.
    pub fn unblock_source(&self, source: IpAddr) {
        self.shared.blocks.set(source, None);
    }

    /// The sources blocked now.
    pub fn blocked_sources(&self) -> Vec<(IpAddr, BlockMode)> {
        self.shared.blocks.all()
    }
}
