//! [`StoreError`]: why the data dir cannot be opened. Every variant names
//! the file and says what the operator can do; none of them is resolved by
//! changing the data dir behind the operator's back.

use std::io;
use std::path::{Path, PathBuf};

/// Errors opening the data dir.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// An I/O error on a named path.
    #[error("data dir {path}: {source}")]
    Io {
        /// The file or dir.
        path: PathBuf,
        /// The cause.
        source: io::Error,
    },
    /// The data dir belongs to another replica or cluster.
    #[error(
        "data dir {path} belongs to replica {found_name} of cluster {found_cluster}, not {name} of {cluster}; use another --data-dir or empty it"
    )]
    Foreign {
        /// The dir.
        path: PathBuf,
        /// Name recorded in the dir.
        found_name: String,
        /// Cluster recorded in the dir.
        found_cluster: String,
        /// Our name.
        name: String,
        /// Our cluster.
        cluster: String,
    },
    /// A file, or a record in it, of a version this build does not read
    /// (written by a newer release). Nothing was changed in the data dir.
    #[error(
        "{path}: {what} has version {version}, this build reads up to version {max}; it was written by a newer release. \
         Run that release again, or move the data dir aside to start this replica as a new incarnation"
    )]
    Version {
        /// The file.
        path: PathBuf,
        /// What carries the version ("the file format", "the record at byte 4096", "the snapshot").
        what: String,
        /// The version found.
        version: u32,
        /// The newest version this build reads.
        max: u32,
    },
    /// Bytes that pass their checksum (so no torn write) but do not decode:
    /// written by another release, or altered. Nothing was changed in the data dir.
    #[error(
        "{path}: {what} (version {version}) passes its checksum but does not decode with this build ({reason}); \
         it was probably written by a newer release. Run that release again, or move the data dir aside to start \
         this replica as a new incarnation"
    )]
    Undecodable {
        /// The file.
        path: PathBuf,
        /// What did not decode ("the record at byte 4096", "the snapshot").
        what: String,
        /// Its version.
        version: u32,
        /// The decoder's complaint.
        reason: String,
    },
    /// A file that must hold exactly one whole frame does not.
    #[error("{path} is damaged ({reason}); move it aside (or the whole data dir) to start over")]
    Damaged {
        /// The file.
        path: PathBuf,
        /// What is wrong.
        reason: String,
    },
}

impl StoreError {
    /// As an I/O error (for openraft's storage errors at run time).
    pub fn into_io(self) -> io::Error {
        match self {
            StoreError::Io { source, .. } => source,
            e => io::Error::new(io::ErrorKind::InvalidData, e.to_string()),
        }
    }
}

/// Maps an I/O error at `path` to [`StoreError::Io`].
pub fn io_at(path: &Path) -> impl FnOnce(io::Error) -> StoreError + '_ {
    move |source| StoreError::Io { path: path.to_path_buf(), source }
}
