//! Binding a peer request to its client certificate: the sender an envelope
//! names must be the member the certificate names, on every route; a
//! joiner must name itself (its declared name and peer address are what
//! its certificate names); every refusal is counted by reason
//! ([`Refusals`]). Pure checks and counters: which member a sender id is
//! (the cluster state, the Raft membership, or an introduction by a member
//! this node knows) is the caller's to say; what the request may do once
//! its sender is known is the handler's.

use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use tls::PeerCertificates;
use tls::identity::Identity;

use crate::state::{MemberInfo, NodeId};

/// Why a peer request was refused for who sent it (the `reason` label of
/// the server's `ha_metrics_server_peer_requests_refused_total`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Refusal {
    /// No client certificate reached the handler on the TLS transport.
    NoCertificate,
    /// The envelope names a sender this node knows no member for, on a
    /// route that only members may use.
    UnknownSender,
    /// The envelope names a member the client certificate does not name.
    NotTheSender,
    /// A join under a name or peer address the certificate does not name.
    JoinNotSelf,
}

impl Refusal {
    /// Every reason, in label order.
    pub const ALL: [Refusal; 4] =
        [Refusal::NoCertificate, Refusal::UnknownSender, Refusal::NotTheSender, Refusal::JoinNotSelf];

    /// The `reason` label.
    pub fn label(self) -> &'static str {
        match self {
            Refusal::NoCertificate => "no_certificate",
            Refusal::UnknownSender => "unknown_sender",
            Refusal::NotTheSender => "not_the_sender",
            Refusal::JoinNotSelf => "join_not_self",
        }
    }

    fn index(self) -> usize {
        self as usize
    }
}

/// Least time between two log lines about refusals of one reason (each is
/// counted; a sender making requests up must not flood the log).
pub const LOG_EVERY: Duration = Duration::from_secs(10);

/// Peer requests refused for who sent them, by reason, since the node started.
#[derive(Debug, Default)]
pub struct Refusals {
    counts: [AtomicU64; Refusal::ALL.len()],
    logged: Mutex<[Option<Instant>; Refusal::ALL.len()]>,
}

impl Refusals {
    /// Counts one refusal; true when it is worth a log line (the first of
    /// its reason, or the first after [`LOG_EVERY`]).
    pub fn count(&self, reason: Refusal) -> bool {
        self.counts[reason.index()].fetch_add(1, Ordering::Relaxed);
        let now = Instant::now();
        let mut logged = self.logged.lock().unwrap_or_else(|p| p.into_inner());
        let slot = &mut logged[reason.index()];
        let due = slot.is_none_or(|t| now.duration_since(t) >= LOG_EVERY);
        if due {
            *slot = Some(now);
        }
        due
    }

    /// `(reason label, count)` for every reason, zeros included.
    pub fn snapshot(&self) -> Vec<(&'static str, u64)> {
        Refusal::ALL.iter().map(|r| (r.label(), self.counts[r.index()].load(Ordering::Relaxed))).collect()
    }
}

/// A refused request: the reason counted and the text sent back (403).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Denied {
    /// What was wrong.
    pub reason: Refusal,
    /// Names the claimed sender and what the certificate names.
    pub message: String,
}

/// Who may send on a route.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Admit {
    /// Members only: the sender must be known and named by the certificate.
    Members,
    /// Also a sender this node does not know (hello, which a joiner asks
    /// before it has an id anyone knows, and join, whose body the handler
    /// binds with [`joiner`]); a known sender is still bound.
    Strangers,
}

/// The client certificate a request came with, as the transport reports it.
#[derive(Debug, Clone, Copy)]
pub enum Presented<'a> {
    /// The plain-HTTP crate-test transport: there are no certificates.
    PlainTransport,
    /// The TLS transport: the chain the client presented, if any.
    Tls(Option<&'a PeerCertificates>),
}

/// The names in the leaf certificate, or a refusal when there is none.
fn leaf(presented: Presented<'_>) -> Result<Option<Identity>, Denied> {
    match presented {
        Presented::PlainTransport => Ok(None),
        Presented::Tls(None) => Err(Denied {
            reason: Refusal::NoCertificate,
            message: "no client certificate reached the peer route".into(),
        }),
        Presented::Tls(Some(certs)) => Ok(Some(certs.0.first().and_then(Identity::of).unwrap_or_default())),
    }
}

/// Checks that the certificate names the sender `from` claims to be:
/// `known` is the member this node knows under that id (none: a stranger).
pub fn sender(presented: Presented<'_>, from: NodeId, known: Option<&MemberInfo>, admit: Admit) -> Result<(), Denied> {
    let Some(id) = leaf(presented)? else { return Ok(()) };
    match known {
        Some(info) if id.names_member(&info.name, &info.peer_addr) => Ok(()),
        Some(info) => Err(Denied {
            reason: Refusal::NotTheSender,
            message: format!(
                "the request claims to come from member {info} (node {from:016x}), but its client certificate \
                 ({id}) names another replica"
            ),
        }),
        None if admit == Admit::Strangers => Ok(()),
        None => Err(Denied {
            reason: Refusal::UnknownSender,
            message: format!(
                "the request claims to come from node {from:016x}, which is no member this node knows, with a \
                 client certificate ({id}); only members may use this route"
            ),
        }),
    }
}

/// Checks that a joiner's certificate names the name and peer address it
/// asks to join under (a join under another replica's name would retire
/// that replica).
pub fn joiner(presented: Presented<'_>, from: NodeId, info: &MemberInfo) -> Result<(), Denied> {
    let Some(id) = leaf(presented)? else { return Ok(()) };
    if id.names_itself(&info.name, &info.peer_addr) {
        return Ok(());
    }
    Err(Denied {
        reason: Refusal::JoinNotSelf,
        message: format!(
            "node {from:016x} asks to join as {info}, but its client certificate ({id}) does not name both that \
             name and that address: a replica joins only under its own name"
        ),
    })
}

#[cfg(test)]
mod tests;
