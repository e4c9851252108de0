//! `--max-requests-inflight`: at most that many requests are served at
//! once; past the limit a request gets 429 with `Retry-After: 1` and a
//! `TooManyRequests` Status, as the generic apiserver's max-in-flight filter
//! answers. It never queues: a client retries.

use std::sync::Arc;

use apimachinery::status::Status;
use axum::Router;
use axum::extract::{Request, State};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use http::{HeaderValue, StatusCode, header};
use tokio::sync::Semaphore;

/// `router` with at most `limit` requests served at once.
pub fn limited(router: Router, limit: usize) -> Router {
    router.layer(axum::middleware::from_fn_with_state(Arc::new(Semaphore::new(limit.max(1))), admit))
}

async fn admit(State(limit): State<Arc<Semaphore>>, request: Request, next: Next) -> Response {
    let Ok(_permit) = limit.try_acquire() else {
        let mut r = Status::failure(
            StatusCode::TOO_MANY_REQUESTS,
            "TooManyRequests",
            "Too many requests, please try again later.",
        )
        .into_response();
        r.headers_mut().insert(header::RETRY_AFTER, HeaderValue::from_static("1"));
        return r;
    };
    next.run(request).await
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::body::Body;
    use axum::routing::get;
    use http_body_util::BodyExt;
    use tokio::sync::Notify;
    use tower::ServiceExt;

    #[tokio::test]
    async fn requests_past_the_limit_get_429_with_retry_after_and_a_status_and_the_limit_frees_up() {
        let release = Arc::new(Notify::new());
        let entered = Arc::new(Notify::new());
        let (r, e) = (release.clone(), entered.clone());
        let app = limited(
            Router::new()
                .route(
                    "/slow",
                    get(move || {
                        let (r, e) = (r.clone(), e.clone());
                        async move {
                            e.notify_one();
                            r.notified().await;
                            "done"
                        }
                    }),
                )
                .route("/fast", get(|| async { "fast" })),
            1,
        );
        let get = |path: &str| http::Request::get(path).body(Body::empty()).unwrap();
        let held = tokio::spawn(app.clone().oneshot(get("/slow")));
        entered.notified().await;
        let refused = app.clone().oneshot(get("/fast")).await.unwrap();
        assert_eq!(refused.status(), StatusCode::TOO_MANY_REQUESTS);
        assert_eq!(refused.headers()[header::RETRY_AFTER], "1");
        let body = refused.into_body().collect().await.unwrap().to_bytes();
        let status: serde_json::Value = serde_json::from_slice(&body).unwrap();
        assert_eq!(status["reason"], "TooManyRequests");
        assert_eq!(status["code"], 429);
        release.notify_one();
        assert_eq!(held.await.unwrap().unwrap().status(), StatusCode::OK);
        assert_eq!(app.oneshot(get("/fast")).await.unwrap().status(), StatusCode::OK);
    }
}
