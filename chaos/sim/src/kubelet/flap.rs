//! [`Fault::Flapping`](super::Fault::Flapping): a kubelet that goes down
//! and comes back on a fixed rhythm (a node whose kubelet crash-loops or
//! whose link flaps). One task per flapping node toggles the node's
//! listener until another fault replaces the flapping one or the fleet
//! stops. Everything else about the node is untouched.

use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;

use tokio_util::sync::CancellationToken;

use super::node::NodeState;

/// Toggles `node` down for `down`, up for `up`, … while its fault
/// generation is still `generation`; leaves it up when it ends.
pub(crate) async fn flap(node: Arc<NodeState>, generation: u64, down: Duration, up: Duration, stop: CancellationToken) {
    let mut listening = true;
    loop {
        {
            // Checked and toggled under the node's lock, which `set_fault`
            // takes after bumping the generation: a flap that lost the race
            // to a new fault never overrides the listener state it set.
            let _inner = node.lock();
            if node.fault_gen.load(Ordering::SeqCst) != generation {
                return;
            }
            listening = !listening;
            node.want_up.send_replace(listening);
        }
        let wait = if listening { up } else { down };
        tokio::select! {
            _ = stop.cancelled() => return,
            _ = tokio::time::sleep(wait.max(Duration::from_millis(10))) => {}
        }
    }
}
