//! Raft-replicated ring membership.
