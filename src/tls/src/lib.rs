//! TLS for every socket the server and the simulated Kubernetes own: the one
//! accept loop all listeners share (`serve`), the rustls configurations they
//! use (`config`), the verifiers behind them (`verify`), PEM loading (`pem`),
//! the operator's version, cipher and curve policy (`policy`), SNI
//! certificates (`sni`), the
//! serving-certificate source with its hot reload (`source`), swappable
//! mutual-TLS material for the peer port (`rotating`), and
//! certificate issuing with rcgen (`pki`: self-signed serving certificates,
//! cluster and test CAs). It does not decide who a client is: the peer chain
//! is handed to the caller untouched. Only the ring crypto provider is used.

pub mod config;
pub mod error;
pub mod identity;
pub mod pem;
pub mod pki;
pub mod policy;
pub mod rotating;
pub mod serve;
pub mod sni;
pub mod source;
pub mod verify;

#[cfg(test)]
mod tests;

pub use config::{CertKey, api_server_config, mutual_tls_client_config, mutual_tls_server_config};
pub use error::TlsError;
pub use policy::TlsPolicy;
pub use serve::{PeerCertificates, RemoteAddr, ServeLimits, ServeOptions, TlsSource, serve, serve_with};
