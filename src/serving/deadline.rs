//! `--request-timeout`: every request must be answered within it (or
//! within a shorter `timeout` query parameter, as the generic apiserver
//! allows); past it the client gets 504 with a `Timeout` Status and the
//! handler is dropped. It bounds, it does not retry.

use std::time::Duration;

use apimachinery::status::{Status, StatusDetails};
use axum::extract::{Request, State};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use http::StatusCode;

/// The `timeout` query parameter, if given: `Err` when it is not a duration.
fn requested(query: Option<&str>) -> Result<Option<Duration>, String> {
    let Some(value) = query.into_iter().flat_map(|q| q.split('&')).find_map(|kv| kv.strip_prefix("timeout=")) else {
        return Ok(None);
    };
    if value.is_empty() {
        return Ok(None);
    }
    let decoded = value.replace("%2B", "+").replace("%2b", "+");
    apimachinery::parse_go_duration(&decoded)
        .map(Some)
        .map_err(|e| format!("invalid timeout specified in the request URL - time: {e}"))
}

/// How long a request may take: `max`, or a shorter positive `timeout`.
pub fn deadline(max: Duration, query: Option<&str>) -> Result<Duration, String> {
    Ok(match requested(query)? {
        Some(t) if !t.is_zero() && t < max => t,
        _ => max,
    })
}

/// The 504 answer.
pub fn timed_out() -> Response {
    Status::failure(
        StatusCode::GATEWAY_TIMEOUT,
        "Timeout",
        "Timeout: request did not complete within the allotted timeout",
    )
    .with_details(StatusDetails::default())
    .into_response()
}

/// The middleware.
pub async fn bound(State(max): State<Duration>, request: Request, next: Next) -> Response {
    let within = match deadline(max, request.uri().query()) {
        Ok(d) => d,
        Err(message) => return Status::bad_request(message).into_response(),
    };
    match tokio::time::timeout(within, next.run(request)).await {
        Ok(response) => response,
        Err(_) => timed_out(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_shorter_positive_timeout_parameter_wins() {
        let max = Duration::from_secs(60);
        assert_eq!(deadline(max, None), Ok(max));
        assert_eq!(deadline(max, Some("timeout=5s")), Ok(Duration::from_secs(5)));
        assert_eq!(deadline(max, Some("a=b&timeout=1m30s")), Ok(max));
        assert_eq!(deadline(max, Some("timeout=0s")), Ok(max));
        assert!(deadline(max, Some("timeout=soon")).is_err());
    }
}
