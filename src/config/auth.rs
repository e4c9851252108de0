//! The validated delegated-authentication settings: which kubeconfigs the
//! reviews use, which paths need no authentication, cache lifetimes, and the
//! trust the flags override (CA files, front-proxy names and headers). The
//! `auth` module acts on them; nothing here talks to Kubernetes.

use std::path::PathBuf;
use std::time::Duration;

use super::defaults as d;
use super::flags::AuthArgs;
use super::flags::values::{StringList, flatten};
use super::{ConfigError, bad};

/// `--authorization-always-allow-paths`: exact paths, or prefixes ending in `*`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AlwaysAllowPaths {
    exact: Vec<String>,
    prefixes: Vec<String>,
}

impl AlwaysAllowPaths {
    /// Parses the flag's entries; a `*` anywhere but at the end is refused.
    pub fn new<S: AsRef<str>>(paths: &[S]) -> Result<AlwaysAllowPaths, ConfigError> {
        let mut out = AlwaysAllowPaths { exact: Vec::new(), prefixes: Vec::new() };
        for p in paths {
            let p = p.as_ref().trim();
            if p.is_empty() {
                continue;
            }
            let trimmed = p.trim_start_matches('/');
            match trimmed.strip_suffix('*') {
                Some(prefix) if !prefix.contains('*') => out.prefixes.push(prefix.to_string()),
                None if !trimmed.contains('*') => out.exact.push(trimmed.to_string()),
                _ => {
                    return Err(bad(
                        "--authorization-always-allow-paths",
                        format!("{p:?}: only a trailing '*' is allowed"),
                    ));
                }
            }
        }
        Ok(out)
    }

    /// Whether `path` needs neither authentication nor authorization.
    pub fn matches(&self, path: &str) -> bool {
        let p = path.trim_start_matches('/');
        self.exact.iter().any(|e| e == p) || self.prefixes.iter().any(|pre| p.starts_with(pre.as_str()))
    }
}

impl Default for AlwaysAllowPaths {
    /// The probes: `/healthz,/readyz,/livez`.
    fn default() -> Self {
        let probes: Vec<&str> = d::ALWAYS_ALLOW_PATHS.split(',').collect();
        let exact = probes.iter().map(|p| p.trim_start_matches('/').to_string()).collect();
        AlwaysAllowPaths { exact, prefixes: Vec::new() }
    }
}

/// What the flags say about trust, overriding the authentication ConfigMap.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct TrustOverrides {
    /// `--client-ca-file`.
    pub client_ca_file: Option<PathBuf>,
    /// `--requestheader-client-ca-file`.
    pub requestheader_client_ca_file: Option<PathBuf>,
    /// `--requestheader-allowed-names`.
    pub requestheader_allowed_names: Option<Vec<String>>,
    /// `--requestheader-username-headers`.
    pub requestheader_username_headers: Option<Vec<String>>,
    /// `--requestheader-group-headers`.
    pub requestheader_group_headers: Option<Vec<String>>,
    /// `--requestheader-extra-headers-prefix`.
    pub requestheader_extra_headers_prefix: Option<Vec<String>>,
    /// `--requestheader-uid-headers`.
    pub requestheader_uid_headers: Option<Vec<String>>,
}

impl TrustOverrides {
    /// Whether both CAs come from flags, so the ConfigMap is not needed
    /// (the generic apiserver skips its lookup then).
    pub fn skips_lookup(&self) -> bool {
        self.client_ca_file.is_some() && self.requestheader_client_ca_file.is_some()
    }
}

/// Validated authentication and authorization settings.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AuthSettings {
    /// `--authentication-kubeconfig` (TokenReview); `None`: the main client.
    pub authentication_kubeconfig: Option<PathBuf>,
    /// `--authorization-kubeconfig` (SubjectAccessReview); `None`: the main client.
    pub authorization_kubeconfig: Option<PathBuf>,
    /// Paths that need neither authentication nor authorization.
    pub always_allow_paths: AlwaysAllowPaths,
    /// How long a TokenReview answer is reused.
    pub token_cache_ttl: Duration,
    /// Most TokenReview answers kept.
    pub token_cache_size: usize,
    /// How long an "allowed" SubjectAccessReview answer is reused.
    pub authorized_ttl: Duration,
    /// How long a "denied" SubjectAccessReview answer is reused.
    pub unauthorized_ttl: Duration,
    /// Most SubjectAccessReview answers kept.
    pub decision_cache_size: usize,
    /// Trust the flags set instead of the ConfigMap.
    pub trust: TrustOverrides,
    /// `--authentication-skip-lookup`: never read the authentication ConfigMap.
    pub skip_lookup: bool,
    /// `--authentication-tolerate-lookup-failure`: a failed first read of
    /// the ConfigMap is a warning, not a reason to exit.
    pub tolerate_lookup_failure: bool,
    /// How long a failed TokenReview (no answer) is remembered per token.
    pub token_failure_ttl: Duration,
    /// Most TokenReviews in flight at once.
    pub token_reviews_in_flight: usize,
}

impl Default for AuthSettings {
    /// The generic apiserver's defaults.
    fn default() -> Self {
        AuthSettings {
            authentication_kubeconfig: None,
            authorization_kubeconfig: None,
            always_allow_paths: AlwaysAllowPaths::default(),
            token_cache_ttl: d::TOKEN_CACHE_TTL,
            token_cache_size: d::TOKEN_CACHE_SIZE,
            authorized_ttl: d::AUTHORIZED_TTL,
            unauthorized_ttl: d::UNAUTHORIZED_TTL,
            decision_cache_size: d::DECISION_CACHE_SIZE,
            trust: TrustOverrides::default(),
            skip_lookup: false,
            tolerate_lookup_failure: false,
            token_failure_ttl: d::TOKEN_FAILURE_TTL,
            token_reviews_in_flight: d::TOKEN_REVIEWS_IN_FLIGHT,
        }
    }
}

impl AuthSettings {
    /// Checks the flags.
    pub fn from_args(args: &AuthArgs) -> Result<AuthSettings, ConfigError> {
        let list = |v: &Option<Vec<StringList>>| v.as_deref().map(flatten);
        Ok(AuthSettings {
            authentication_kubeconfig: args.authentication_kubeconfig.clone(),
            authorization_kubeconfig: args.authorization_kubeconfig.clone(),
            always_allow_paths: AlwaysAllowPaths::new(&flatten(&args.authorization_always_allow_paths))?,
            token_cache_ttl: args.authentication_token_webhook_cache_ttl.0,
            authorized_ttl: args.authorization_webhook_cache_authorized_ttl.0,
            unauthorized_ttl: args.authorization_webhook_cache_unauthorized_ttl.0,
            trust: TrustOverrides {
                client_ca_file: args.client_ca_file.clone(),
                requestheader_client_ca_file: args.requestheader_client_ca_file.clone(),
                requestheader_allowed_names: list(&args.requestheader_allowed_names),
                requestheader_username_headers: list(&args.requestheader_username_headers),
                requestheader_group_headers: list(&args.requestheader_group_headers),
                requestheader_extra_headers_prefix: list(&args.requestheader_extra_headers_prefix),
                requestheader_uid_headers: list(&args.requestheader_uid_headers),
            },
            skip_lookup: args.authentication_skip_lookup,
            tolerate_lookup_failure: args.authentication_tolerate_lookup_failure,
            ..AuthSettings::default()
        })
    }
}
