//! metrics-server's "Apiserver secure serving" section: the HTTPS listener,
//! its certificates, TLS parameters and HTTP/2 settings. Parsing only.

use std::path::PathBuf;

use clap::{ArgAction, Args};

use super::super::defaults as d;
use super::values::{Int32List, NamedCertKey, StringList, go_bool, go_int64};

/// The HTTPS listener.
#[derive(Debug, Clone, Args)]
#[command(next_help_heading = "Apiserver secure serving flags")]
pub struct SecureServingArgs {
    /// The IP address to serve on. 0.0.0.0 or :: : every interface.
    #[arg(long, default_value = d::BIND_ADDRESS, value_name = "IP")]
    pub bind_address: String,

    /// Directory of the self-signed certificate (apiserver.crt, apiserver.key)
    /// used when --tls-cert-file is not given; made there when missing.
    #[arg(long, default_value = d::CERT_DIR, value_name = "DIR")]
    pub cert_dir: PathBuf,

    /// Serve HTTP/1.1 only (ALPN offers no h2).
    #[arg(long, num_args = 0..=1, require_equals = true, default_missing_value = "true", default_value = "false",
          value_parser = go_bool, action = ArgAction::Set, value_name = "BOOL")]
    pub disable_http2_serving: bool,

    /// Concurrent HTTP/2 streams a client may open on one connection. 0: Go's default (250).
    #[arg(long, default_value_t = 0, value_parser = go_int64, value_name = "N")]
    pub http2_max_streams_per_connection: i64,

    /// Set SO_REUSEADDR on the listener (it always is, as Go always sets it
    /// on Linux, so this changes nothing, as in metrics-server).
    #[arg(long, num_args = 0..=1, require_equals = true, default_missing_value = "true", default_value = "false",
          value_parser = go_bool, action = ArgAction::Set, value_name = "BOOL")]
    pub permit_address_sharing: bool,

    /// Set SO_REUSEPORT on the listener, so several processes can share the address and port.
    #[arg(long, num_args = 0..=1, require_equals = true, default_missing_value = "true", default_value = "false",
          value_parser = go_bool, action = ArgAction::Set, value_name = "BOOL")]
    pub permit_port_sharing: bool,

    /// The HTTPS port. 0: do not serve. (metrics-server's built-in default
    /// is 443; its manifests and chart set 10250.)
    #[arg(long, default_value_t = i64::from(d::SECURE_PORT), value_parser = go_int64, value_name = "PORT")]
    pub secure_port: i64,

    /// Serving certificate (PEM, chain allowed); reloaded when its contents change.
    #[arg(long, value_name = "PATH")]
    pub tls_cert_file: Option<PathBuf>,

    /// Cipher suites for TLS 1.2 and 1.3 (Go's names). Default: the safe
    /// defaults. Names of suites rustls does not implement (CBC, RC4, 3DES,
    /// static RSA) are accepted and not offered.
    #[arg(long, value_name = "SUITES")]
    pub tls_cipher_suites: Vec<StringList>,

    /// Key exchange groups by Go tls.CurveID number (23 P-256, 24 P-384,
    /// 25 P-521, 29 X25519, 4588 X25519MLKEM768), in order of preference.
    /// Default: X25519, P-256, P-384.
    #[arg(long, value_name = "IDS")]
    pub tls_curve_preferences: Vec<Int32List>,

    /// Lowest TLS version: VersionTLS10, VersionTLS11, VersionTLS12 (default)
    /// or VersionTLS13. TLS 1.0 and 1.1 are accepted and served as 1.2 (rustls has neither).
    #[arg(long, value_name = "VERSION")]
    pub tls_min_version: Option<String>,

    /// Key of --tls-cert-file.
    #[arg(long, value_name = "PATH")]
    pub tls_private_key_file: Option<PathBuf>,

    /// An extra certificate chosen by SNI: `cert,key` (names from the
    /// certificate) or `cert,key:name1,*.name2` (explicit names, which win;
    /// exact names win over wildcards). An IP name matches connections to
    /// that address without SNI. Repeatable.
    #[arg(long, value_name = "CERT,KEY[:NAMES]")]
    pub tls_sni_cert_key: Vec<NamedCertKey>,
}
