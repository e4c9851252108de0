//! Which CA and which credentials the kubelet client uses, decided from the
//! flags and what the cluster provides, the way metrics-server defaults them:
//! `--kubelet-certificate-authority`, else the kubeconfig's cluster CA, else
//! the service account's `ca.crt`; `--kubelet-token-file`, else the
//! kubeconfig's token file, else the service account's token. A pure
//! decision over its inputs; the shell passes what it found.

use std::path::{Path, PathBuf};

use super::{KubeletClientConfig, KubeletTls};
use crate::config::KubeletSettings;

/// Where in-cluster service-account credentials are mounted.
pub const SA_DIR: &str = "/var/run/secrets/kubernetes.io/serviceaccount";

/// What the Kubernetes client configuration and the pod offer.
#[derive(Debug, Clone, Default)]
pub struct ClusterCredentials {
    /// The kubeconfig's (or in-cluster) CA certificates, PEM.
    pub kube_ca_pem: Option<Vec<u8>>,
    /// The kubeconfig's token file.
    pub kube_token_file: Option<PathBuf>,
    /// The service-account `ca.crt`, if mounted.
    pub sa_ca_file: Option<PathBuf>,
    /// The service-account `token`, if mounted.
    pub sa_token_file: Option<PathBuf>,
}

impl ClusterCredentials {
    /// The service-account files present under `dir`.
    pub fn with_service_account(mut self, dir: &Path) -> ClusterCredentials {
        let ca = dir.join("ca.crt");
        let token = dir.join("token");
        self.sa_ca_file = ca.is_file().then_some(ca);
        self.sa_token_file = token.is_file().then_some(token);
        self
    }
}

/// No CA to verify kubelets with, and verification is on.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error(
    "--kubelet-certificate-authority: no CA to verify kubelets with (none given, none in the kubeconfig, \
     not in a cluster); give one, or --kubelet-insecure-tls for testing"
)]
pub struct NoKubeletCa;

/// The client configuration for these settings and credentials.
pub fn client_config(k: &KubeletSettings, found: &ClusterCredentials) -> Result<KubeletClientConfig, NoKubeletCa> {
    let tls = if k.completely_insecure {
        KubeletTls::PlainHttp
    } else if k.insecure_tls {
        KubeletTls::Insecure
    } else if let Some(ca) = &k.certificate_authority {
        KubeletTls::CaFile(ca.clone())
    } else if let Some(pem) = &found.kube_ca_pem {
        KubeletTls::CaPem(pem.clone())
    } else if let Some(ca) = &found.sa_ca_file {
        KubeletTls::CaFile(ca.clone())
    } else {
        return Err(NoKubeletCa);
    };
    let mut c = KubeletClientConfig::new(tls);
    c.request_timeout = k.request_timeout;
    c.client_cert = k.client_cert.clone();
    c.token_file =
        k.token_file.clone().or_else(|| found.kube_token_file.clone()).or_else(|| found.sa_token_file.clone());
    Ok(c)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    fn settings() -> KubeletSettings {
        KubeletSettings {
            port: 10250,
            use_node_status_port: false,
            address_types: vec![crate::config::AddressType::InternalIp],
            insecure_tls: false,
            certificate_authority: None,
            client_cert: None,
            request_timeout: Duration::from_secs(7),
            completely_insecure: false,
            token_file: None,
            concurrency: 1,
        }
    }

    fn everything() -> ClusterCredentials {
        ClusterCredentials {
            kube_ca_pem: Some(b"kube-ca".to_vec()),
            kube_token_file: Some("/kube/token".into()),
            sa_ca_file: Some("/sa/ca.crt".into()),
            sa_token_file: Some("/sa/token".into()),
        }
    }

    #[test]
    fn the_ca_falls_back_from_the_flag_to_the_kubeconfig_to_the_service_account() {
        let mut k = settings();
        k.certificate_authority = Some("/flag/ca.crt".into());
        assert_eq!(client_config(&k, &everything()).unwrap().tls, KubeletTls::CaFile("/flag/ca.crt".into()));
        k.certificate_authority = None;
        assert_eq!(client_config(&k, &everything()).unwrap().tls, KubeletTls::CaPem(b"kube-ca".to_vec()));
        let sa_only = ClusterCredentials { kube_ca_pem: None, ..everything() };
        assert_eq!(client_config(&k, &sa_only).unwrap().tls, KubeletTls::CaFile("/sa/ca.crt".into()));
        let none = ClusterCredentials::default();
        assert_eq!(client_config(&k, &none).unwrap_err(), NoKubeletCa);
    }

    #[test]
    fn insecure_modes_need_no_ca_and_win_over_one() {
        let mut k = settings();
        k.insecure_tls = true;
        assert_eq!(client_config(&k, &ClusterCredentials::default()).unwrap().tls, KubeletTls::Insecure);
        k.insecure_tls = false;
        k.completely_insecure = true;
        assert_eq!(client_config(&k, &everything()).unwrap().tls, KubeletTls::PlainHttp);
    }

    #[test]
    fn the_token_falls_back_from_the_flag_to_the_kubeconfig_to_the_service_account() {
        let mut k = settings();
        k.token_file = Some("/flag/token".into());
        assert_eq!(client_config(&k, &everything()).unwrap().token_file, Some("/flag/token".into()));
        k.token_file = None;
        assert_eq!(client_config(&k, &everything()).unwrap().token_file, Some("/kube/token".into()));
        let sa_only = ClusterCredentials { kube_token_file: None, ..everything() };
        assert_eq!(client_config(&k, &sa_only).unwrap().token_file, Some("/sa/token".into()));
        let c = client_config(&k, &ClusterCredentials { kube_token_file: None, sa_token_file: None, ..everything() });
        assert_eq!(c.unwrap().token_file, None);
    }

    #[test]
    fn request_timeout_and_client_certificate_come_from_the_flags() {
        let mut k = settings();
        k.client_cert = Some(("/c".into(), "/k".into()));
        let c = client_config(&k, &everything()).unwrap();
        assert_eq!(c.request_timeout, Duration::from_secs(7));
        assert_eq!(c.client_cert, Some(("/c".into(), "/k".into())));
    }
}
