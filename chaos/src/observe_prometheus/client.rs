//! A small client of Prometheus' HTTP API (`/api/v1/query`,
//! `/api/v1/query_range`, `/api/v1/alerts`, `/api/v1/targets`): requests
//! out, typed values back. It knows the API's JSON shapes and nothing about
//! what the queries mean.

use std::collections::BTreeMap;
use std::time::Duration;

use bytes::Bytes;
use http_body_util::{BodyExt, Empty};
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::TokioExecutor;
use serde_json::Value;

/// A request to Prometheus failed.
#[derive(Debug, thiserror::Error)]
pub enum PromError {
    #[error("Prometheus URL {url:?}: {reason}")]
    Url { url: String, reason: String },
    #[error("GET {path}: {reason}")]
    Http { path: String, reason: String },
    #[error("GET {path}: HTTP {status}: {body}")]
    Status { path: String, status: u16, body: String },
    #[error("{path}: Prometheus answered {error_type}: {error}")]
    Api { path: String, error_type: String, error: String },
    #[error("{path}: unexpected answer: {reason}")]
    Decode { path: String, reason: String },
}

/// One series of an instant vector.
#[derive(Debug, Clone, PartialEq)]
pub struct Sample {
    pub labels: BTreeMap<String, String>,
    pub value: f64,
}

/// One series of a range query: `(unix seconds, value)` pairs.
#[derive(Debug, Clone, PartialEq)]
pub struct Series {
    pub labels: BTreeMap<String, String>,
    pub values: Vec<(f64, f64)>,
}

/// One alert as `/api/v1/alerts` lists it.
#[derive(Debug, Clone, PartialEq)]
pub struct Alert {
    pub name: String,
    /// `pending` or `firing`.
    pub state: String,
    pub labels: BTreeMap<String, String>,
    pub annotations: BTreeMap<String, String>,
    /// When it became pending (RFC 3339), as Prometheus says.
    pub active_at: String,
}

/// A Prometheus server's API.
#[derive(Clone)]
pub struct PromClient {
    base: String,
    http: Client<hyper_rustls::HttpsConnector<HttpConnector>, Empty<Bytes>>,
}

impl PromClient {
    /// `url` is the server's base URL (`http://127.0.0.1:9090`, or behind a path prefix).
    pub fn new(url: &str) -> Result<PromClient, PromError> {
        let base = url.trim_end_matches('/').to_string();
        let bad = |reason: &str| PromError::Url { url: url.to_string(), reason: reason.to_string() };
        let uri: http::Uri = base.parse().map_err(|e: http::uri::InvalidUri| bad(&e.to_string()))?;
        if !matches!(uri.scheme_str(), Some("http" | "https")) || uri.host().is_none() {
            return Err(bad("want http://host:port or https://host:port"));
        }
        let https =
            hyper_rustls::HttpsConnectorBuilder::new().with_webpki_roots().https_or_http().enable_http1().build();
        Ok(PromClient { base, http: Client::builder(TokioExecutor::new()).build(https) })
    }

    /// The base URL.
    pub fn url(&self) -> &str {
        &self.base
    }

    async fn get(&self, path: &str, params: &[(&str, String)]) -> Result<Value, PromError> {
        let query: Vec<String> = params.iter().map(|(k, v)| format!("{k}={}", percent(v))).collect();
        let url = if query.is_empty() {
            format!("{}{path}", self.base)
        } else {
            format!("{}{path}?{}", self.base, query.join("&"))
        };
        let http = |reason: String| PromError::Http { path: path.to_string(), reason };
        let req = http::Request::get(&url).body(Empty::new()).map_err(|e| http(e.to_string()))?;
        let resp = tokio::time::timeout(Duration::from_secs(10), self.http.request(req))
            .await
            .map_err(|_| http("no answer in 10 s".into()))?
            .map_err(|e| http(e.to_string()))?;
        let status = resp.status().as_u16();
        let body = tokio::time::timeout(Duration::from_secs(10), resp.into_body().collect())
            .await
            .map_err(|_| http("body not complete in 10 s".into()))?
            .map_err(|e| http(e.to_string()))?
            .to_bytes();
        let v: Value = serde_json::from_slice(&body).map_err(|_| PromError::Status {
            path: path.to_string(),
            status,
            body: String::from_utf8_lossy(&body).chars().take(300).collect(),
        })?;
        if v["status"] != "success" {
            return Err(PromError::Api {
                path: path.to_string(),
                error_type: v["errorType"].as_str().unwrap_or("?").to_string(),
                error: v["error"].as_str().unwrap_or("?").to_string(),
            });
        }
        Ok(v["data"].clone())
    }

    /// An instant query at `at` (unix seconds; now when `None`).
    pub async fn query(&self, expr: &str, at: Option<f64>) -> Result<Vec<Sample>, PromError> {
        let mut params = vec![("query", expr.to_string())];
        if let Some(t) = at {
            params.push(("time", format!("{t:.3}")));
        }
        let data = self.get("/api/v1/query", &params).await?;
        let decode = |reason: &str| PromError::Decode { path: format!("query {expr}"), reason: reason.into() };
        match data["resultType"].as_str() {
            Some("vector") => data["result"]
                .as_array()
                .ok_or_else(|| decode("no result"))?
                .iter()
                .map(|s| {
                    Ok(Sample {
                        labels: labels(&s["metric"]),
                        value: value(&s["value"]).ok_or_else(|| decode("bad value"))?,
                    })
                })
                .collect(),
            Some("scalar") => Ok(vec![Sample {
                labels: BTreeMap::new(),
                value: value(&data["result"]).ok_or_else(|| decode("bad scalar"))?,
            }]),
            other => Err(decode(&format!("result type {other:?}"))),
        }
    }

    /// A range query over `[start, end]` (unix seconds) every `step`.
    pub async fn query_range(
        &self,
        expr: &str,
        start: f64,
        end: f64,
        step: Duration,
    ) -> Result<Vec<Series>, PromError> {
        let params = [
            ("query", expr.to_string()),
            ("start", format!("{start:.3}")),
            ("end", format!("{end:.3}")),
            ("step", format!("{:.3}", step.as_secs_f64())),
        ];
        let data = self.get("/api/v1/query_range", &params).await?;
        let decode = |reason: &str| PromError::Decode { path: format!("query_range {expr}"), reason: reason.into() };
        data["result"]
            .as_array()
            .ok_or_else(|| decode("no result"))?
            .iter()
            .map(|s| {
                let values = s["values"]
                    .as_array()
                    .ok_or_else(|| decode("no values"))?
                    .iter()
                    .map(|p| Some((p[0].as_f64()?, value(p)?)))
                    .collect::<Option<Vec<_>>>()
                    .ok_or_else(|| decode("bad point"))?;
                Ok(Series { labels: labels(&s["metric"]), values })
            })
            .collect()
    }

    /// Every pending or firing alert.
    pub async fn alerts(&self) -> Result<Vec<Alert>, PromError> {
        let data = self.get("/api/v1/alerts", &[]).await?;
        Ok(data["alerts"]
            .as_array()
            .into_iter()
            .flatten()
            .map(|a| {
                let labels = labels(&a["labels"]);
                Alert {
                    name: labels.get("alertname").cloned().unwrap_or_default(),
                    state: a["state"].as_str().unwrap_or_default().to_string(),
                    annotations: self::labels(&a["annotations"]),
                    active_at: a["activeAt"].as_str().unwrap_or_default().to_string(),
                    labels,
                }
            })
            .collect())
    }

    /// `/api/v1/targets` as Prometheus returns it (`activeTargets`, `droppedTargets`).
    pub async fn targets(&self) -> Result<Value, PromError> {
        self.get("/api/v1/targets", &[]).await
    }
}

fn labels(v: &Value) -> BTreeMap<String, String> {
    v.as_object()
        .map(|m| m.iter().map(|(k, v)| (k.clone(), v.as_str().unwrap_or_default().to_string())).collect())
        .unwrap_or_default()
}

/// The value of a `[time, "value"]` pair (Prometheus writes values as strings: "NaN", "+Inf").
fn value(pair: &Value) -> Option<f64> {
    pair.get(1)?.as_str()?.parse().ok()
}

/// Percent-encodes a query parameter (RFC 3986 unreserved characters stay).
pub fn percent(s: &str) -> String {
    s.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => (b as char).to_string(),
            _ => format!("%{b:02X}"),
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn queries_are_percent_encoded_and_values_parsed_from_strings() {
        assert_eq!(percent("sum(rate(x{a=\"b\"}[5m])) > 0"), "sum%28rate%28x%7Ba%3D%22b%22%7D%5B5m%5D%29%29%20%3E%200");
        assert_eq!(value(&serde_json::json!([1.5, "0.25"])), Some(0.25));
        assert!(value(&serde_json::json!([1.5, "NaN"])).is_some_and(f64::is_nan));
        assert_eq!(value(&serde_json::json!([1.5, "+Inf"])), Some(f64::INFINITY));
        assert!(PromClient::new("ftp://x").is_err());
        assert!(PromClient::new("not a url").is_err());
    }
}
