//! Bearer tokens: asks kube-apiserver (through a [`TokenReviewer`]) who a
//! token belongs to, and remembers the answer, good or bad, for a short
//! time in a bounded cache keyed by the token's SHA-256. It must not keep
//! tokens themselves, and never caches a failed review.

use std::sync::Arc;
use std::time::Duration;

use futures::future::BoxFuture;

use super::UserInfo;
use super::cache::TtlCache;

/// The answer of a TokenReview.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TokenOutcome {
    /// The token belongs to this user.
    Authenticated(UserInfo),
    /// The token is not valid (reason from `status.error`, may be empty).
    Rejected(String),
}

/// A review (TokenReview or SubjectAccessReview) could not be made.
#[derive(Debug, Clone, thiserror::Error)]
pub enum ReviewError {
    #[error("{review} to kube-apiserver failed: {reason}")]
    Request { review: &'static str, reason: String },
    #[error("{review} to kube-apiserver timed out after {timeout:?}")]
    Timeout { review: &'static str, timeout: Duration },
    #[error("{review}: kube-apiserver answered without a status")]
    NoStatus { review: &'static str },
}

/// Reviews a bearer token (kube-apiserver's TokenReview, or a test double).
pub trait TokenReviewer: Send + Sync {
    fn review<'a>(&'a self, token: &'a str) -> BoxFuture<'a, Result<TokenOutcome, ReviewError>>;
}

/// Default time a review may take.
pub const REVIEW_TIMEOUT: Duration = Duration::from_secs(10);

/// A [`TokenReviewer`] behind a cache.
pub struct TokenAuthenticator {
    reviewer: Arc<dyn TokenReviewer>,
    cache: TtlCache<[u8; 32], TokenOutcome>,
    ttl: Duration,
    timeout: Duration,
}

impl TokenAuthenticator {
    pub fn new(reviewer: Arc<dyn TokenReviewer>, ttl: Duration, capacity: usize) -> Self {
        TokenAuthenticator { reviewer, cache: TtlCache::new(capacity), ttl, timeout: REVIEW_TIMEOUT }
    }

    /// Who `token` belongs to, from the cache or a fresh review.
    pub async fn authenticate(&self, token: &str) -> Result<TokenOutcome, ReviewError> {
        let key = token_key(token);
        if let Some(hit) = key.and_then(|k| self.cache.get(&k)) {
            return Ok(hit);
        }
        let outcome = tokio::time::timeout(self.timeout, self.reviewer.review(token))
            .await
            .map_err(|_| ReviewError::Timeout { review: "TokenReview", timeout: self.timeout })??;
        if let Some(k) = key {
            self.cache.insert(k, outcome.clone(), self.ttl);
        }
        Ok(outcome)
    }
}

/// SHA-256 of the token, with the ring provider rustls already carries.
fn token_key(token: &str) -> Option<[u8; 32]> {
    let suite = rustls::crypto::ring::cipher_suite::TLS13_AES_128_GCM_SHA256.tls13()?;
    let digest = suite.common.hash_provider.hash(token.as_bytes());
    digest.as_ref().try_into().ok()
}

/// The bearer token of an `Authorization` header value, if it is one.
pub fn bearer_token(value: &[u8]) -> Option<&str> {
    let value = std::str::from_utf8(value).ok()?.trim();
    let (scheme, token) = value.split_once(' ')?;
    let token = token.trim();
    (scheme.eq_ignore_ascii_case("bearer") && !token.is_empty()).then_some(token)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicUsize, Ordering};

    struct Counting {
        calls: AtomicUsize,
    }

    impl TokenReviewer for Counting {
        fn review<'a>(&'a self, token: &'a str) -> BoxFuture<'a, Result<TokenOutcome, ReviewError>> {
            self.calls.fetch_add(1, Ordering::SeqCst);
            let out = if token == "good" {
                TokenOutcome::Authenticated(UserInfo { name: "alice".into(), ..UserInfo::default() })
            } else if token == "broken" {
                return Box::pin(async { Err(ReviewError::Request { review: "TokenReview", reason: "down".into() }) });
            } else {
                TokenOutcome::Rejected("invalid bearer token".into())
            };
            Box::pin(async move { Ok(out) })
        }
    }

    #[tokio::test]
    async fn both_outcomes_are_cached_and_errors_are_not() {
        let r = Arc::new(Counting { calls: AtomicUsize::new(0) });
        let a = TokenAuthenticator::new(r.clone(), crate::config::defaults::TOKEN_CACHE_TTL, 16);
        for _ in 0..3 {
            assert!(matches!(a.authenticate("good").await, Ok(TokenOutcome::Authenticated(_))));
            assert!(matches!(a.authenticate("bad").await, Ok(TokenOutcome::Rejected(_))));
        }
        assert_eq!(r.calls.load(Ordering::SeqCst), 2);
        for _ in 0..3 {
            assert!(a.authenticate("broken").await.is_err());
        }
        assert_eq!(r.calls.load(Ordering::SeqCst), 5);
    }

    #[test]
    fn bearer_header_parsing() {
        assert_eq!(bearer_token(b"Bearer abc"), Some("abc"));
        assert_eq!(bearer_token(b"bearer  abc "), Some("abc"));
        assert_eq!(bearer_token(b"Basic abc"), None);
        assert_eq!(bearer_token(b"Bearer "), None);
        assert_eq!(bearer_token(b"Bearer"), None);
        assert_eq!(bearer_token(&[0xff, 0xfe]), None);
    }

    #[test]
    fn token_key_is_sha256() {
        let k = token_key("abc").unwrap();
        assert_eq!(k[..4], [0xba, 0x78, 0x16, 0xbf]);
    }
}
