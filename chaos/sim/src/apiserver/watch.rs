//! Watch streams: newline-delimited `{"type":…,"object":…}` events over a
//! chunked `application/json` response, replayed from the store's event log
//! after a resourceVersion (or after a synthetic ADDED snapshot), with
//! periodic BOOKMARKs, the watch-list `initial-events-end` bookmark,
//! `timeoutSeconds`, and an `ERROR` event with a 410 Expired Status when the
//! requested resourceVersion has been compacted away (what kube-apiserver's
//! watch cache does). Ends on timeout, client disconnect or shutdown.

use std::convert::Infallible;
use std::time::Duration;

use axum::body::Body;
use axum::response::{IntoResponse, Response};
use bytes::Bytes;
use http::{HeaderValue, StatusCode, header};
use serde_json::{Value, json};
use tokio::sync::mpsc;

use super::objects;
use super::resources::{Filter, Params, Repr};
use super::router::AppState;
use super::store::{Event, EventType, Expired};
use apimachinery::status::Status;

/// Where a watch starts.
enum Start {
    /// Synthetic ADDED events for the current state, then changes.
    Snapshot { initial_events_end: bool },
    /// Changes after this resourceVersion.
    After(u64),
}

/// Answers a `?watch=true` request.
pub fn respond(state: AppState, filter: Filter, repr: Repr, params: &Params) -> Response {
    let rv = params.resource_version.as_deref().unwrap_or("");
    let start = if params.send_initial_events || rv.is_empty() || rv == "0" {
        Start::Snapshot { initial_events_end: params.send_initial_events }
    } else {
        match rv.parse::<u64>() {
            Ok(rv) => Start::After(rv),
            Err(_) => {
                return Status::bad_request(format!("invalid resourceVersion {rv:?}")).into_response();
            }
        }
    };
    let (tx, mut rx) = mpsc::channel::<Bytes>(64);
    let bookmarks = params.allow_bookmarks.then_some(state.bookmark_interval);
    let timeout = params.timeout_seconds.map(Duration::from_secs);
    let task = Watcher { state: state.clone(), filter, repr, tx };
    tokio::spawn(task.run(start, bookmarks, timeout));
    let stream = futures::stream::poll_fn(move |cx| rx.poll_recv(cx).map(|b| b.map(Ok::<_, Infallible>)));
    let mut resp = Response::new(Body::from_stream(stream));
    *resp.status_mut() = StatusCode::OK;
    resp.headers_mut().insert(header::CONTENT_TYPE, HeaderValue::from_static("application/json"));
    resp
}

struct Watcher {
    state: AppState,
    filter: Filter,
    repr: Repr,
    tx: mpsc::Sender<Bytes>,
}

/// The client went away.
struct Closed;

impl Watcher {
    async fn send(&self, ty: &str, object: Value) -> Result<(), Closed> {
        let mut line = json!({"type": ty, "object": object}).to_string();
        line.push('\n');
        self.tx.send(Bytes::from(line)).await.map_err(|_| Closed)
    }

    fn render(&self, object: &Value) -> Value {
        match self.repr {
            Repr::Meta => objects::partial_metadata(object),
            Repr::Full | Repr::Table => object.clone(),
        }
    }

    async fn bookmark(&self, rv: u64, initial_events_end: bool) -> Result<(), Closed> {
        let (kind, api_version) = match self.repr {
            Repr::Meta => ("PartialObjectMetadata", "meta.k8s.io/v1"),
            Repr::Full | Repr::Table => (self.filter.kind.as_str(), "v1"),
        };
        let mut metadata = json!({"resourceVersion": rv.to_string()});
        if initial_events_end {
            metadata["annotations"] = json!({"k8s.io/initial-events-end": "true"});
        }
        self.send("BOOKMARK", json!({"kind": kind, "apiVersion": api_version, "metadata": metadata})).await
    }

    async fn expired(&self, e: Expired) -> Result<(), Closed> {
        let status = Status::failure(
            StatusCode::GONE,
            "Expired",
            format!("too old resource version: {} ({})", e.requested, e.oldest),
        );
        self.send("ERROR", serde_json::to_value(&status).unwrap_or(Value::Null)).await
    }

    /// The event a client with this filter sees for a stored change, if any.
    async fn deliver(&self, e: &Event) -> Result<(), Closed> {
        let now = self.filter.matches(&e.object);
        let before = e.prev.as_ref().is_some_and(|p| self.filter.matches(p));
        let ty = match (e.ty, before, now) {
            (EventType::Added, _, true) => "ADDED",
            (EventType::Modified, false, true) => "ADDED",
            (EventType::Modified, true, true) => "MODIFIED",
            (EventType::Modified, true, false) => "DELETED",
            (EventType::Deleted, b, n) if b || n => "DELETED",
            _ => return Ok(()),
        };
        self.send(ty, self.render(&e.object)).await
    }

    async fn run(self, start: Start, bookmarks: Option<Duration>, timeout: Option<Duration>) {
        let deadline = timeout.map(|t| tokio::time::Instant::now() + t);
        let _ = self.stream(start, bookmarks, deadline).await;
    }

    async fn stream(
        &self,
        start: Start,
        bookmarks: Option<Duration>,
        deadline: Option<tokio::time::Instant>,
    ) -> Result<(), Closed> {
        let store = &self.state.store;
        // Subscribe before reading, so no change between the read and the wait is missed.
        let mut changed = store.subscribe();
        changed.borrow_and_update();
        let mut cursor = match start {
            Start::Snapshot { initial_events_end } => {
                let (items, rv) = store.list(self.filter.kind, self.filter.namespace.as_deref());
                for object in items.iter().filter(|o| self.filter.matches(o)) {
                    self.send("ADDED", self.render(object)).await?;
                }
                if initial_events_end {
                    self.bookmark(rv, true).await?;
                }
                rv
            }
            Start::After(rv) => rv,
        };
        let mut tick = bookmarks.map(|every| tokio::time::interval_at(tokio::time::Instant::now() + every, every));
        let shutdown = self.state.shutdown.clone();
        loop {
            changed.borrow_and_update();
            match store.events_since(self.filter.kind, cursor) {
                Err(e) => return self.expired(e).await,
                Ok((events, now)) => {
                    for e in &events {
                        self.deliver(e).await?;
                    }
                    cursor = cursor.max(now);
                }
            }
            tokio::select! {
                r = changed.changed() => if r.is_err() { return Ok(()) },
                _ = async { match tick.as_mut() { Some(t) => { t.tick().await; } None => std::future::pending().await } } => {
                    self.bookmark(cursor, false).await?;
                }
                _ = async { match deadline { Some(d) => tokio::time::sleep_until(d).await, None => std::future::pending().await } } => {
                    return Ok(());
                }
                _ = shutdown.cancelled() => return Ok(()),
                _ = self.tx.closed() => return Err(Closed),
            }
        }
    }
}
