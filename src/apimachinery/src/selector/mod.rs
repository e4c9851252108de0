//! Kubernetes label selectors (full syntax: `a=b`, `a==b`, `a!=b`,
//! `a in (x,y)`, `a notin (x)`, `a`, `!a`, `a>1`, `a<1`, comma = AND) and the
//! field selectors the metrics API accepts (`metadata.name`,
//! `metadata.namespace` with `=`, `==`, `!=`). Used by the API handlers and by
//! `--node-selector`. Pure parsing and matching; no I/O.

use crate::status::Status;

/// Why a selector was rejected. The message is what the client sees in a 400.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SelectorError {
    #[error("unable to parse requirement: {0}")]
    Requirement(String),
    #[error("{0}")]
    Syntax(String),
    #[error("{0}")]
    Field(String),
}

impl SelectorError {
    /// The 400 BadRequest Status the API answers with.
    pub fn to_status(&self) -> Status {
        Status::bad_request(self.to_string())
    }
}

mod field;
mod label;

pub use field::{Field, FieldSelector, FieldTerm};
pub use label::{LabelSelector, Operator, Requirement};

#[cfg(test)]
mod tests;
