//! Bearer tokens: asks kube-apiserver (through a [`TokenReviewer`]) who a
//! token belongs to, and remembers the answer, good or bad, for a short
//! time in a bounded cache keyed by the token's SHA-256. So that requests
//! with made-up tokens cannot flood kube-apiserver: identical reviews in
//! flight are made once and shared, a review that could not be made is
//! remembered for a second, and at most a fixed number of reviews run at
//! once (the rest wait, within the review timeout). It must not keep
//! tokens themselves.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use futures::FutureExt;
use futures::future::{BoxFuture, Shared};
use tokio::sync::Semaphore;

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

type Review = Shared<BoxFuture<'static, Result<TokenOutcome, ReviewError>>>;

/// A [`TokenReviewer`] behind a cache.
pub struct TokenAuthenticator {
    inner: Arc<Inner>,
}

struct Inner {
    reviewer: Arc<dyn TokenReviewer>,
    cache: TtlCache<[u8; 32], TokenOutcome>,
    failures: TtlCache<[u8; 32], ReviewError>,
    in_flight: Mutex<HashMap<[u8; 32], Review>>,
    slots: Semaphore,
    ttl: Duration,
    failure_ttl: Duration,
    timeout: Duration,
}

impl TokenAuthenticator {
    pub fn new(reviewer: Arc<dyn TokenReviewer>, ttl: Duration, capacity: usize) -> Self {
        TokenAuthenticator {
            inner: Arc::new(Inner {
                reviewer,
                cache: TtlCache::new(capacity),
                failures: TtlCache::new(capacity),
                in_flight: Mutex::new(HashMap::new()),
                slots: Semaphore::new(crate::config::defaults::TOKEN_REVIEWS_IN_FLIGHT),
                ttl,
                failure_ttl: crate::config::defaults::TOKEN_FAILURE_TTL,
                timeout: REVIEW_TIMEOUT,
            }),
        }
    }

    /// How long a failed review is remembered, and how many reviews may
    /// run at once.
    pub fn with_flood_limits(self, failure_ttl: Duration, max_in_flight: usize) -> Self {
        let inner = Arc::try_unwrap(self.inner).unwrap_or_else(|_| unreachable!("not shared before it is built"));
        TokenAuthenticator {
            inner: Arc::new(Inner { failure_ttl, slots: Semaphore::new(max_in_flight.max(1)), ..inner }),
        }
    }

    /// Who `token` belongs to, from the cache, a review already in flight
    /// for it, or a fresh review.
    pub async fn authenticate(&self, token: &str) -> Result<TokenOutcome, ReviewError> {
        let Some(key) = token_key(token) else {
            // Without a digest there is no key to share or cache under.
            return self.inner.clone().review(token.to_string()).await;
        };
        if let Some(hit) = self.inner.cache.get(&key) {
            return Ok(hit);
        }
        if let Some(failed) = self.inner.failures.get(&key) {
            return Err(failed);
        }
        let review = {
            let mut in_flight = self.inner.in_flight.lock().unwrap_or_else(|p| p.into_inner());
            in_flight
                .entry(key)
                .or_insert_with(|| {
                    // A task of its own: it finishes (and leaves the map)
                    // even if every request waiting for it goes away.
                    let inner = self.inner.clone();
                    let token = token.to_string();
                    let task = tokio::spawn(async move {
                        let result = inner.clone().review(token).await;
                        match &result {
                            Ok(outcome) => inner.cache.insert(key, outcome.clone(), inner.ttl),
                            Err(e) => inner.failures.insert(key, e.clone(), inner.failure_ttl),
                        }
                        inner.in_flight.lock().unwrap_or_else(|p| p.into_inner()).remove(&key);
                        result
                    });
                    async move {
                        task.await.unwrap_or_else(|e| {
                            Err(ReviewError::Request {
                                review: "TokenReview",
                                reason: format!("review task failed: {e}"),
                            })
                        })
                    }
                    .boxed()
                    .shared()
                })
                .clone()
        };
        review.await
    }
}

impl Inner {
    /// One review: waits for a slot, then asks, all within the timeout.
    async fn review(self: Arc<Self>, token: String) -> Result<TokenOutcome, ReviewError> {
        let timeout = self.timeout;
        let asked = async {
            let _slot = self
                .slots
                .acquire()
                .await
                .map_err(|_| ReviewError::Request { review: "TokenReview", reason: "shutting down".to_string() })?;
            self.reviewer.review(&token).await
        };
        tokio::time::timeout(timeout, asked)
            .await
            .map_err(|_| ReviewError::Timeout { review: "TokenReview", timeout })?
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
    async fn both_outcomes_are_cached() {
        let r = Arc::new(Counting { calls: AtomicUsize::new(0) });
        let a = TokenAuthenticator::new(r.clone(), crate::config::defaults::TOKEN_CACHE_TTL, 16);
        for _ in 0..3 {
            assert!(matches!(a.authenticate("good").await, Ok(TokenOutcome::Authenticated(_))));
            assert!(matches!(a.authenticate("bad").await, Ok(TokenOutcome::Rejected(_))));
        }
        assert_eq!(r.calls.load(Ordering::SeqCst), 2);
    }

    /// Issue 18: a review that could not be made is remembered briefly, so
    /// retries with one token while kube-apiserver struggles cost one review.
    #[tokio::test]
    async fn a_failed_review_is_remembered_briefly() {
        let r = Arc::new(Counting { calls: AtomicUsize::new(0) });
        let a = TokenAuthenticator::new(r.clone(), Duration::from_secs(10), 16)
            .with_flood_limits(Duration::from_secs(1), 4);
        for _ in 0..5 {
            assert!(a.authenticate("broken").await.is_err());
        }
        assert_eq!(r.calls.load(Ordering::SeqCst), 1);
        // Asked again once the failure expired (after about a second).
        let again = sim::wait::until(Duration::from_secs(10), async || {
            assert!(a.authenticate("broken").await.is_err());
            r.calls.load(Ordering::SeqCst) == 2
        })
        .await
        .expect("a review again after the failure TTL");
        assert!(again >= Duration::from_millis(900), "the failure was remembered for {again:?}");
    }

    /// A reviewer that blocks until released, counting calls and the most
    /// reviews it saw at once.
    struct Gated {
        calls: AtomicUsize,
        running: AtomicUsize,
        peak: AtomicUsize,
        release: tokio::sync::Semaphore,
    }

    impl TokenReviewer for Gated {
        fn review<'a>(&'a self, _token: &'a str) -> BoxFuture<'a, Result<TokenOutcome, ReviewError>> {
            Box::pin(async move {
                self.calls.fetch_add(1, Ordering::SeqCst);
                let now = self.running.fetch_add(1, Ordering::SeqCst) + 1;
                self.peak.fetch_max(now, Ordering::SeqCst);
                let _ = self.release.acquire().await.map(|p| p.forget());
                self.running.fetch_sub(1, Ordering::SeqCst);
                Ok(TokenOutcome::Rejected("no".into()))
            })
        }
    }

    fn gated() -> Arc<Gated> {
        Arc::new(Gated {
            calls: AtomicUsize::new(0),
            running: AtomicUsize::new(0),
            peak: AtomicUsize::new(0),
            release: tokio::sync::Semaphore::new(0),
        })
    }

    /// Issue 18: a hundred requests with one token in flight make one review.
    #[tokio::test]
    async fn identical_reviews_in_flight_are_made_once() {
        let r = gated();
        let a = Arc::new(TokenAuthenticator::new(r.clone(), Duration::from_secs(10), 16));
        let waiting: Vec<_> = (0..100)
            .map(|_| {
                let a = a.clone();
                tokio::spawn(async move { a.authenticate("same").await })
            })
            .collect();
        let started =
            sim::wait::until(Duration::from_secs(10), async || r.calls.load(Ordering::SeqCst) >= 1).await.is_some();
        assert!(started);
        tokio::task::yield_now().await;
        r.release.add_permits(1000);
        for w in waiting {
            assert!(matches!(w.await.unwrap(), Ok(TokenOutcome::Rejected(_))));
        }
        assert_eq!(r.calls.load(Ordering::SeqCst), 1);
    }

    /// Issue 18: made-up tokens, all different, never have more reviews in
    /// flight than the limit.
    #[tokio::test]
    async fn distinct_tokens_never_exceed_the_reviews_in_flight_limit() {
        let r = gated();
        let a = Arc::new(
            TokenAuthenticator::new(r.clone(), Duration::from_secs(10), 1024)
                .with_flood_limits(Duration::from_secs(1), 4),
        );
        let waiting: Vec<_> = (0..64)
            .map(|i| {
                let a = a.clone();
                tokio::spawn(async move { a.authenticate(&format!("random-{i}")).await })
            })
            .collect();
        assert!(
            sim::wait::until(Duration::from_secs(10), async || r.running.load(Ordering::SeqCst) == 4).await.is_some()
        );
        r.release.add_permits(1000);
        for w in waiting {
            assert!(w.await.unwrap().is_ok());
        }
        assert_eq!(r.calls.load(Ordering::SeqCst), 64);
        assert_eq!(r.peak.load(Ordering::SeqCst), 4, "at most the limit at once");
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
