//! Loopback address plan for the dev mode and the tests. Every process gets
//! its own address with fixed ports; nothing binds a wildcard.
//!
//! The 127/8 range is cut into blocks. Block `b` owns
//! - `127.0.b.1`: the stand-in kube-apiserver,
//! - `127.0.b.10 + i`: replica `i`,
//! - `127.(b+1).x.y`: the simulated kubelets (node `n` at `x = n / 254`,
//!   `y = n % 254 + 1`).
//!
//! The dev mode uses block 0 (kubelets on `127.1.x.y`, as DESIGN.md says).
//! Tests take a free block with [`Block::acquire`], which holds an advisory
//! lock on a file per block, so parallel test processes never collide and a
//! crashed test's block is free again as soon as its process is gone.

use std::fs::{File, OpenOptions};
use std::net::Ipv4Addr;
use std::os::fd::AsRawFd;
use std::path::PathBuf;

/// Lock files of the blocks this process holds.
static HELD: std::sync::Mutex<Vec<File>> = std::sync::Mutex::new(Vec::new());

/// The most nodes one block can hold.
pub const MAX_NODES_PER_BLOCK: usize = 254 * 256;
/// First block handed to tests (0 is the dev mode's; 1 is left free).
const FIRST_TEST_BLOCK: u8 = 2;
/// Last block (kubelets of block `b` live in `127.(b+1)`).
const LAST_BLOCK: u8 = 250;

/// One block of loopback addresses.
#[derive(Debug)]
pub struct Block {
    index: u8,
}

impl Block {
    /// The dev mode's block (no lock: one dev cluster per machine).
    pub fn dev() -> Block {
        Block { index: 0 }
    }

    /// A block with a fixed index and no lock (for a simulator started by
    /// another process that already holds the block).
    pub fn fixed(index: u8) -> Block {
        Block { index }
    }

    /// Reserves a free block for this process.
    pub fn acquire() -> std::io::Result<Block> {
        let dir = std::env::temp_dir().join("ha-metrics-server-blocks");
        std::fs::create_dir_all(&dir)?;
        for index in FIRST_TEST_BLOCK..=LAST_BLOCK {
            let path: PathBuf = dir.join(format!("{index}.lock"));
            let file = OpenOptions::new().create(true).truncate(false).write(true).open(&path)?;
            // SAFETY: flock on a file descriptor we own; no memory is shared.
            let rc = unsafe { libc::flock(file.as_raw_fd(), libc::LOCK_EX | libc::LOCK_NB) };
            if rc == 0 {
                // Keep the lock until the process exits, not until the Block
                // is dropped: sockets bound on the block (a server task still
                // winding down) live as long as the process may.
                HELD.lock().unwrap_or_else(|p| p.into_inner()).push(file);
                return Ok(Block { index });
            }
        }
        Err(std::io::Error::other("every loopback address block is in use"))
    }

    /// The block number.
    pub fn index(&self) -> u8 {
        self.index
    }

    /// The stand-in kube-apiserver's address.
    pub fn apiserver(&self) -> Ipv4Addr {
        Ipv4Addr::new(127, 0, self.index, 1)
    }

    /// Replica `i`'s address (`i` < 200).
    pub fn replica(&self, i: usize) -> Ipv4Addr {
        Ipv4Addr::new(127, 0, self.index, 10 + (i % 200) as u8)
    }

    /// An extra address for a test's own helper process (`i` < 40), such as a
    /// fault-injecting proxy.
    pub fn aux(&self, i: usize) -> Ipv4Addr {
        Ipv4Addr::new(127, 0, self.index, 210 + (i % 40) as u8)
    }

    /// Node `n`'s kubelet address.
    pub fn kubelet(&self, n: usize) -> Ipv4Addr {
        let n = n % MAX_NODES_PER_BLOCK;
        Ipv4Addr::new(127, self.index + 1, (n / 254) as u8, (n % 254 + 1) as u8)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dev_block_puts_kubelets_on_127_1() {
        let b = Block::dev();
        assert_eq!(b.kubelet(0), Ipv4Addr::new(127, 1, 0, 1));
        assert_eq!(b.kubelet(254), Ipv4Addr::new(127, 1, 1, 1));
        assert_eq!(b.apiserver(), Ipv4Addr::new(127, 0, 0, 1));
        assert_eq!(b.replica(2), Ipv4Addr::new(127, 0, 0, 12));
    }

    #[test]
    fn two_acquired_blocks_differ() {
        let a = Block::acquire().unwrap();
        let b = Block::acquire().unwrap();
        assert_ne!(a.index(), b.index());
    }
}
