//! The error type of the `tls` module: every message names the file or the
//! thing being configured and the cause.

use std::path::PathBuf;

/// Failure to load or build TLS material.
#[derive(Debug, thiserror::Error)]
pub enum TlsError {
    #[error("reading {}: {source}", path.display())]
    Read {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("writing {}: {source}", path.display())]
    Write {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("parsing PEM in {what}: {source}")]
    Pem {
        what: String,
        #[source]
        source: rustls::pki_types::pem::Error,
    },
    #[error("{what} contains no PEM certificate")]
    NoCertificates { what: String },
    #[error("{what} contains no PEM private key")]
    NoPrivateKey { what: String },
    #[error("building TLS configuration for {what}: {source}")]
    Rustls {
        what: String,
        #[source]
        source: rustls::Error,
    },
    #[error("building certificate verifier for {what}: {source}")]
    Verifier {
        what: String,
        #[source]
        source: rustls::server::VerifierBuilderError,
    },
    #[error("{what}: {message}")]
    Invalid { what: String, message: String },
    #[error(transparent)]
    Pki(#[from] crate::pki::PkiError),
}
