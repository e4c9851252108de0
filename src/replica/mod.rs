//! Every movement of points between replicas, in one home: copies of each
//! scrape to the node's other holders, handovers to a new owner, seeds for a
//! new holder, pulls of what a replica lacks, confirmation before leaving,
//! and forgetting what it no longer holds. Laid out as Garage lays out its
//! cluster layout: [`plan`] is pure (which actions an ownership change
//! calls for), [`manager`] is the IO shell that performs them, [`outbox`]
//! owns the queues and the chunked transfers, [`intake`] takes what other
//! members send. Who holds what is `ownership`'s to say; how a message
//! travels is `peer`'s; this module must not answer API queries.
//!
//! The replication factor RF (committed in the cluster state) is how many
//! members hold each node's last two points, the owner included: the owner
//! copies every scrape to the next RF−1 distinct members on the ring, so any
//! holder that becomes owner serves at once and its first scrape yields a
//! rate.
//!
//! Points travel as their sender holds them: a node's last points with the
//! previous ones (two batches of one node in a row in a push, oldest
//! first), and a receiver that takes the newer also takes the sender's
//! previous points, so every holder serves the same rate as the owner, not
//! one over a point of its own (`Store::store_replica_pair`).

pub mod intake;
pub mod manager;
pub mod outbox;
pub mod plan;

pub use intake::PointsIntake;
pub use manager::{Handover, Manager, NodeNames, Replicas, leave};
pub use outbox::Outbox;
pub use plan::{Action, actions};
