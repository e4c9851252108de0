//! The generic apiserver's delegated authentication and authorization
//! flags, with the same names and defaults, for the command line to flatten
//! in. It only parses; [`super::kube::start`] acts on them.

use std::path::PathBuf;
use std::time::Duration;

use super::AuthSettings;
use super::authz::{AlwaysAllowPaths, BadAllowPath};
use super::trust::TrustOverrides;
use apimachinery::parse_go_duration;

/// Delegated authentication and authorization flags.
#[derive(Debug, Clone, PartialEq, Eq, clap::Args)]
pub struct AuthFlags {
    /// kubeconfig for TokenReview (default: the main client).
    #[arg(long)]
    pub authentication_kubeconfig: Option<PathBuf>,
    /// TTL of cached TokenReview answers.
    #[arg(long, default_value = "10s", value_parser = parse_go_duration)]
    pub authentication_token_webhook_cache_ttl: Duration,
    /// kubeconfig for SubjectAccessReview (default: the main client).
    #[arg(long)]
    pub authorization_kubeconfig: Option<PathBuf>,
    /// Paths allowed without authentication or authorization (`*` suffix = prefix).
    #[arg(long, value_delimiter = ',', default_value = "/healthz,/readyz,/livez")]
    pub authorization_always_allow_paths: Vec<String>,
    /// TTL of cached "allowed" answers.
    #[arg(long, default_value = "10s", value_parser = parse_go_duration)]
    pub authorization_webhook_cache_authorized_ttl: Duration,
    /// TTL of cached "denied" answers.
    #[arg(long, default_value = "10s", value_parser = parse_go_duration)]
    pub authorization_webhook_cache_unauthorized_ttl: Duration,
    /// CA bundle for client certificates (overrides the ConfigMap's client-ca-file).
    #[arg(long)]
    pub client_ca_file: Option<PathBuf>,
    /// CA bundle for the front proxy's client certificate.
    #[arg(long)]
    pub requestheader_client_ca_file: Option<PathBuf>,
    /// Allowed front-proxy common names; empty = any signed by the CA.
    #[arg(long, value_delimiter = ',')]
    pub requestheader_allowed_names: Option<Vec<String>>,
    /// Headers holding the user name (default x-remote-user).
    #[arg(long, value_delimiter = ',')]
    pub requestheader_username_headers: Option<Vec<String>>,
    /// Headers holding groups (default x-remote-group).
    #[arg(long, value_delimiter = ',')]
    pub requestheader_group_headers: Option<Vec<String>>,
    /// Prefixes of headers holding extra attributes (default x-remote-extra-).
    #[arg(long, value_delimiter = ',')]
    pub requestheader_extra_headers_prefix: Option<Vec<String>>,
    /// Headers holding the user's UID.
    #[arg(long, value_delimiter = ',')]
    pub requestheader_uid_headers: Option<Vec<String>>,
}

impl Default for AuthFlags {
    /// The same values as the flags' defaults.
    fn default() -> Self {
        AuthFlags {
            authentication_kubeconfig: None,
            authentication_token_webhook_cache_ttl: super::token::DEFAULT_TOKEN_TTL,
            authorization_kubeconfig: None,
            authorization_always_allow_paths: super::authz::DEFAULT_ALWAYS_ALLOW_PATHS
                .iter()
                .map(|s| s.to_string())
                .collect(),
            authorization_webhook_cache_authorized_ttl: super::authz::DEFAULT_ALLOWED_TTL,
            authorization_webhook_cache_unauthorized_ttl: super::authz::DEFAULT_DENIED_TTL,
            client_ca_file: None,
            requestheader_client_ca_file: None,
            requestheader_allowed_names: None,
            requestheader_username_headers: None,
            requestheader_group_headers: None,
            requestheader_extra_headers_prefix: None,
            requestheader_uid_headers: None,
        }
    }
}

impl AuthFlags {
    /// The trust overrides these flags make.
    pub fn trust_overrides(&self) -> TrustOverrides {
        TrustOverrides {
            client_ca_file: self.client_ca_file.clone(),
            requestheader_client_ca_file: self.requestheader_client_ca_file.clone(),
            requestheader_allowed_names: self.requestheader_allowed_names.clone(),
            requestheader_username_headers: self.requestheader_username_headers.clone(),
            requestheader_group_headers: self.requestheader_group_headers.clone(),
            requestheader_extra_headers_prefix: self.requestheader_extra_headers_prefix.clone(),
            requestheader_uid_headers: self.requestheader_uid_headers.clone(),
        }
    }

    /// The chain's tunables.
    pub fn settings(&self) -> Result<AuthSettings, BadAllowPath> {
        Ok(AuthSettings {
            always_allow_paths: AlwaysAllowPaths::new(&self.authorization_always_allow_paths)?,
            token_cache_ttl: self.authentication_token_webhook_cache_ttl,
            authorized_ttl: self.authorization_webhook_cache_authorized_ttl,
            unauthorized_ttl: self.authorization_webhook_cache_unauthorized_ttl,
            ..AuthSettings::default()
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::Parser;

    #[derive(Parser)]
    struct Cli {
        #[command(flatten)]
        auth: AuthFlags,
    }

    #[test]
    fn defaults_match_the_generic_apiserver() {
        let cli = Cli::try_parse_from(["x"]).unwrap();
        let s = cli.auth.settings().unwrap();
        assert_eq!(s.token_cache_ttl, Duration::from_secs(10));
        assert_eq!(s.authorized_ttl, Duration::from_secs(10));
        assert_eq!(s.unauthorized_ttl, Duration::from_secs(10));
        assert!(s.always_allow_paths.matches("/readyz"));
        assert_eq!(cli.auth.trust_overrides(), TrustOverrides::default());
        assert_eq!(cli.auth, AuthFlags::default());
    }

    #[test]
    fn list_flags_split_on_commas_and_win() {
        let cli = Cli::try_parse_from([
            "x",
            "--requestheader-allowed-names=front-proxy-client,aggregator",
            "--authorization-always-allow-paths=/healthz,/metrics*",
            "--authentication-token-webhook-cache-ttl=1m30s",
        ])
        .unwrap();
        let o = cli.auth.trust_overrides();
        assert_eq!(o.requestheader_allowed_names, Some(vec!["front-proxy-client".into(), "aggregator".into()]));
        let s = cli.auth.settings().unwrap();
        assert!(s.always_allow_paths.matches("/metrics/slis"));
        assert_eq!(s.token_cache_ttl, Duration::from_secs(90));
    }
}
