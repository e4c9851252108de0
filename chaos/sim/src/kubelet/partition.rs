//! Source blocks: cut one client (by source IP: one replica) off from every
//! kubelet of the fleet, or from some of them, as a network partition
//! between that replica and the nodes would, while every other client still
//! gets through. A blocked
//! source's new connections are closed at once ([`BlockMode::Refuse`]) or
//! held unanswered ([`BlockMode::Blackhole`], like dropped packets), and its
//! open connections are cut when the block is set. `serve` asks this module
//! on every accept; the knobs are on [`KubeletFleet`].

use std::collections::{HashMap, HashSet};
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
    /// Sources cut off from the named kubelets only.
    partial: Mutex<HashMap<IpAddr, (BlockMode, HashSet<String>)>>,
    /// Bumped on every change, so open connections can check again.
    changed: watch::Sender<u64>,
}

impl Default for SourceBlocks {
    fn default() -> Self {
        SourceBlocks {
            table: Mutex::new(HashMap::new()),
            partial: Mutex::new(HashMap::new()),
            changed: watch::Sender::new(0),
        }
    }
}

impl SourceBlocks {
    pub fn mode(&self, ip: IpAddr) -> Option<BlockMode> {
        self.table.lock().unwrap_or_else(|p| p.into_inner()).get(&ip).copied()
    }

    /// How `ip` is turned away by the kubelet of `node`, if it is.
    pub fn mode_at(&self, ip: IpAddr, node: &str) -> Option<BlockMode> {
        self.mode(ip).or_else(|| {
            let partial = self.partial.lock().unwrap_or_else(|p| p.into_inner());
            partial.get(&ip).filter(|(_, nodes)| nodes.contains(node)).map(|(m, _)| *m)
        })
    }

    fn set_partial(&self, ip: IpAddr, block: Option<(BlockMode, HashSet<String>)>) {
        {
            let mut partial = self.partial.lock().unwrap_or_else(|p| p.into_inner());
            match block {
                Some(b) => partial.insert(ip, b),
                None => partial.remove(&ip),
            };
        }
        self.changed.send_modify(|g| *g += 1);
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

    /// Cuts `source` off from the kubelets of `nodes` only (open
    /// connections to them dropped, new ones turned away as `mode` says);
    /// the other kubelets still answer it.
    pub fn block_source_from(&self, source: IpAddr, nodes: &[String], mode: BlockMode) {
        self.shared.blocks.set_partial(source, Some((mode, nodes.iter().cloned().collect())));
    }

    /// Lets `source` through again, to every kubelet.
    pub fn unblock_source(&self, source: IpAddr) {
        self.shared.blocks.set(source, None);
        self.shared.blocks.set_partial(source, None);
    }

    /// The sources blocked now.
    pub fn blocked_sources(&self) -> Vec<(IpAddr, BlockMode)> {
        self.shared.blocks.all()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_partial_block_turns_its_source_away_from_the_named_kubelets_only() {
        let blocks = SourceBlocks::default();
        let (a, b): (IpAddr, IpAddr) = ("127.0.0.1".parse().unwrap(), "127.0.0.2".parse().unwrap());
        blocks.set_partial(a, Some((BlockMode::Refuse, ["node-1".to_string()].into())));
        assert_eq!(blocks.mode_at(a, "node-1"), Some(BlockMode::Refuse));
        assert_eq!(blocks.mode_at(a, "node-0"), None);
        assert_eq!(blocks.mode_at(b, "node-1"), None, "other sources get through");
        assert_eq!(blocks.mode(a), None, "a partial block is not a full one");
        blocks.set(a, Some(BlockMode::Blackhole));
        assert_eq!(blocks.mode_at(a, "node-0"), Some(BlockMode::Blackhole), "a full block covers every kubelet");
        blocks.set(a, None);
        blocks.set_partial(a, None);
        assert_eq!(blocks.mode_at(a, "node-1"), None);
    }
}
