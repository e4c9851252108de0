//! Where a replica's peer-port credentials come from, validated: either
//! `--peer-ca-dir`, the mounted peer CA Secret from which the replica
//! issues its own certificate, or the three `--peer-*-file` flags (a
//! certificate made elsewhere), and how often either is read again. Also
//! the `NAMESPACE/NAME` of a Secret, as `certgen --secret` takes it.

use std::path::PathBuf;
use std::time::Duration;

use super::flags::ClusterArgs;
use super::{ConfigError, bad};

/// The source of the peer CA and this replica's peer certificate.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PeerCredentials {
    /// `--peer-ca-file`, `--peer-cert-file`, `--peer-key-file`.
    Files { ca_file: PathBuf, cert_file: PathBuf, key_file: PathBuf },
    /// `--peer-ca-dir`: the CA as the mounted peer CA Secret holds it.
    CaDir(PathBuf),
}

/// A Secret's namespace and name.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SecretRef {
    pub namespace: String,
    pub name: String,
}

impl std::fmt::Display for SecretRef {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}/{}", self.namespace, self.name)
    }
}

/// The validated peer credential settings.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PeerTlsSettings {
    pub credentials: PeerCredentials,
    /// How long an issued certificate is valid (`--peer-cert-validity`).
    pub cert_validity: Duration,
    /// How often the Secret or the files are read again (`--peer-reload-interval`).
    pub reload_interval: Duration,
}

/// The shortest `--peer-cert-validity`: renewal at two thirds must stay
/// well apart from the reload interval's polling.
const MIN_VALIDITY: Duration = Duration::from_secs(60);

/// A DNS-1123 label (namespaces): lower-case alphanumerics and `-`,
/// alphanumeric at both ends, at most 63 characters.
fn is_dns_label(s: &str) -> bool {
    let alnum = |c: char| c.is_ascii_lowercase() || c.is_ascii_digit();
    !s.is_empty()
        && s.len() <= 63
        && s.chars().all(|c| alnum(c) || c == '-')
        && s.starts_with(alnum)
        && s.ends_with(alnum)
}

/// A DNS-1123 subdomain (Secret names): dot-separated labels, at most 253.
fn is_dns_subdomain(s: &str) -> bool {
    s.len() <= 253 && s.split('.').all(is_dns_label)
}

/// Parses a Secret reference given to `flag`: `NAMESPACE/NAME`, or `NAME`
/// in `default_namespace`.
pub fn parse_secret_ref(flag: &'static str, value: &str, default_namespace: &str) -> Result<SecretRef, ConfigError> {
    let (namespace, name) = match value.split_once('/') {
        Some((ns, name)) => (ns, name),
        None => (default_namespace, value),
    };
    if !is_dns_label(namespace) {
        return Err(bad(flag, format!("{value:?}: namespace {namespace:?} is not a DNS-1123 label")));
    }
    if !is_dns_subdomain(name) {
        return Err(bad(flag, format!("{value:?}: Secret name {name:?} is not a DNS-1123 subdomain")));
    }
    Ok(SecretRef { namespace: namespace.to_string(), name: name.to_string() })
}

impl PeerTlsSettings {
    /// Checks the peer credential flags of a replica in a cluster.
    pub fn from_args(args: &ClusterArgs) -> Result<PeerTlsSettings, ConfigError> {
        if args.peer_secret.is_some() {
            return Err(bad(
                "--peer-secret",
                "is no longer supported: replicas do not read the peer CA Secret through the API (their service \
                 account, whose token every kubelet sees, may not read Secrets). Mount the Secret that \
                 `ha-metrics-server certgen` makes and pass --peer-ca-dir (deploy/README.md)",
            ));
        }
        let files = [
            ("--peer-ca-file", &args.peer_ca_file),
            ("--peer-cert-file", &args.peer_cert_file),
            ("--peer-key-file", &args.peer_key_file),
        ];
        let credentials = match &args.peer_ca_dir {
            Some(dir) => {
                if let Some((flag, _)) = files.iter().find(|(_, v)| v.is_some()) {
                    return Err(bad(
                        "--peer-ca-dir",
                        format!("cannot be combined with {flag}: the peer certificate comes from one or the other"),
                    ));
                }
                PeerCredentials::CaDir(dir.clone())
            }
            None => {
                let need = |(flag, v): (&'static str, &Option<PathBuf>)| {
                    v.clone().ok_or_else(|| {
                        bad(
                            flag,
                            "required with --peers unless --peer-ca-dir is given: peers authenticate each other \
                             with mutual TLS",
                        )
                    })
                };
                let [ca, cert, key] = files;
                PeerCredentials::Files { ca_file: need(ca)?, cert_file: need(cert)?, key_file: need(key)? }
            }
        };
        let cert_validity = args.peer_cert_validity.0;
        if cert_validity < MIN_VALIDITY {
            return Err(bad("--peer-cert-validity", format!("{cert_validity:?} is shorter than {MIN_VALIDITY:?}")));
        }
        let reload_interval = args.peer_reload_interval.0;
        if reload_interval.is_zero() || reload_interval * 3 > cert_validity {
            return Err(bad(
                "--peer-reload-interval",
                format!("{reload_interval:?} must be above zero and at most a third of --peer-cert-validity"),
            ));
        }
        Ok(PeerTlsSettings { credentials, cert_validity, reload_interval })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The peer settings as `Config::from_args` validates them.
    fn settings(flags: &[&str]) -> Result<PeerTlsSettings, ConfigError> {
        let mut argv = vec!["x", "--peers=a=127.0.0.1:1", "--node-name=a", "--pod-namespace=kube-system"];
        argv.extend_from_slice(flags);
        let config = crate::config::Config::from_args(&crate::cli::parse_from(argv).expect("flags parse").serve)?;
        Ok(config.cluster.expect("a cluster with --peers").tls)
    }

    #[test]
    fn a_secret_reference_takes_an_optional_namespace_and_kubernetes_names() {
        let r = parse_secret_ref("--secret", "monitoring/peer-ca", "kube-system").unwrap();
        assert_eq!((r.namespace.as_str(), r.name.as_str()), ("monitoring", "peer-ca"));
        assert_eq!(
            parse_secret_ref("--secret", "peer-ca.v2", "kube-system").unwrap().to_string(),
            "kube-system/peer-ca.v2"
        );
        for bad in ["", "ns/", "/name", "Ns/name", "ns/Name", "ns/a_b", "a/b/c", "-ns/x", "ns/-x"] {
            let e = parse_secret_ref("--secret", bad, "kube-system").unwrap_err();
            assert_eq!(e.flag, "--secret", "{bad}");
        }
        assert!(parse_secret_ref("--secret", &format!("ns/{}", "a".repeat(254)), "x").is_err());
    }

    #[test]
    fn the_ca_dir_and_the_files_exclude_each_other_and_one_is_required() {
        let s = settings(&["--peer-ca-dir=/etc/peer-ca"]).unwrap();
        assert_eq!(s.credentials, PeerCredentials::CaDir(PathBuf::from("/etc/peer-ca")));
        assert_eq!(s.reload_interval, crate::config::defaults::PEER_RELOAD_INTERVAL);
        for file in ["--peer-ca-file=/ca", "--peer-cert-file=/c", "--peer-key-file=/k"] {
            let e = settings(&["--peer-ca-dir=/etc/peer-ca", file]).unwrap_err();
            assert_eq!(e.flag, "--peer-ca-dir", "{file}");
            assert!(e.message.contains(file.split('=').next().unwrap()), "{e}");
        }
        let e = settings(&[]).unwrap_err();
        assert_eq!(e.flag, "--peer-ca-file");
        assert!(e.message.contains("--peer-ca-dir"), "{e}");
        let e = settings(&["--peer-ca-file=/ca", "--peer-cert-file=/c"]).unwrap_err();
        assert_eq!(e.flag, "--peer-key-file");
        let files = settings(&["--peer-ca-file=/ca", "--peer-cert-file=/c", "--peer-key-file=/k"]).unwrap();
        assert!(matches!(files.credentials, PeerCredentials::Files { .. }));
    }

    #[test]
    fn the_old_peer_secret_flag_says_what_replaced_it() {
        let e = settings(&["--peer-secret=peer-ca"]).unwrap_err();
        assert_eq!(e.flag, "--peer-secret");
        assert!(e.message.contains("--peer-ca-dir") && e.message.contains("certgen"), "{e}");
    }

    #[test]
    fn validity_and_reload_interval_are_bounded() {
        let e = settings(&["--peer-ca-dir=/p", "--peer-cert-validity=30s"]).unwrap_err();
        assert_eq!(e.flag, "--peer-cert-validity");
        let e = settings(&["--peer-ca-dir=/p", "--peer-cert-validity=1h", "--peer-reload-interval=30m"]).unwrap_err();
        assert_eq!(e.flag, "--peer-reload-interval");
        assert_eq!(
            settings(&["--peer-ca-dir=/p", "--peer-reload-interval=0s"]).unwrap_err().flag,
            "--peer-reload-interval"
        );
        let ok = settings(&["--peer-ca-dir=/p", "--peer-cert-validity=1h", "--peer-reload-interval=1s"]).unwrap();
        assert_eq!((ok.cert_validity, ok.reload_interval), (Duration::from_secs(3_600), Duration::from_secs(1)));
    }
}
