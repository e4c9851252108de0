//! Delivering events to a sink (the log file or the webhook) in the mode
//! the flags ask: `blocking` (written before the response; a failure is
//! logged), `blocking-strict` (a failure fails the request) or `batch`
//! (queued, written by a task in batches of at most N events or after the
//! longest wait, throttled to a rate), with optional truncation of
//! oversized events and batches. The sinks only write; this module decides
//! when and how much.

use std::sync::Arc;
use std::time::Duration;

use futures::future::BoxFuture;
use tokio::sync::mpsc;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

use super::event::Event;
use crate::config::audit::{BatchSettings, Mode, TruncateSettings};

/// Where events go.
pub trait Sink: Send + Sync {
    /// Writes these events, in order.
    fn write<'a>(&'a self, events: &'a [Event]) -> BoxFuture<'a, Result<(), String>>;
    /// For logs: `log` or `webhook`.
    fn name(&self) -> &'static str;
}

/// One backend: a sink and how events reach it.
#[derive(Clone)]
pub struct Backend {
    sink: Arc<dyn Sink>,
    mode: Mode,
    truncate: Option<TruncateSettings>,
    queue: Option<mpsc::Sender<Event>>,
}

/// The annotation kube-apiserver sets on an event whose bodies were dropped.
pub const TRUNCATED: &str = "audit.k8s.io/truncated";

impl Backend {
    /// A backend; in batch mode its writer task runs until `stop`, then
    /// writes what is queued and ends (the handle is the caller's to await).
    pub fn start(
        sink: Arc<dyn Sink>,
        mode: Mode,
        batch: BatchSettings,
        truncate: Option<TruncateSettings>,
        stop: CancellationToken,
    ) -> (Backend, Option<JoinHandle<()>>) {
        if mode != Mode::Batch {
            return (Backend { sink, mode, truncate, queue: None }, None);
        }
        let (tx, rx) = mpsc::channel(batch.buffer_size.max(1));
        let task = tokio::spawn(run_batches(sink.clone(), rx, batch, truncate, stop));
        (Backend { sink, mode, truncate, queue: Some(tx) }, Some(task))
    }

    /// Hands one event over. `Err` only in `blocking-strict` mode.
    pub async fn process(&self, event: Event) -> Result<(), String> {
        let Some(event) = truncate_event(event, self.truncate) else {
            tracing::warn!(
                backend = self.sink.name(),
                "audit event larger than the event limit even without bodies; dropped"
            );
            return Ok(());
        };
        match (&self.queue, self.mode) {
            (Some(queue), _) => {
                if queue.try_send(event).is_err() {
                    tracing::warn!(backend = self.sink.name(), "audit buffer full; event dropped");
                }
                Ok(())
            }
            (None, Mode::BlockingStrict) => self.sink.write(std::slice::from_ref(&event)).await,
            (None, _) => {
                if let Err(error) = self.sink.write(std::slice::from_ref(&event)).await {
                    tracing::warn!(backend = self.sink.name(), %error, "writing an audit event failed");
                }
                Ok(())
            }
        }
    }
}

/// Encoded size of an event (its JSON).
fn size(e: &Event) -> usize {
    serde_json::to_vec(e).map_or(0, |b| b.len())
}

/// With truncation on, an event over the limit loses its bodies (and is
/// marked); `None` if it is still too large.
pub fn truncate_event(mut event: Event, limits: Option<TruncateSettings>) -> Option<Event> {
    let Some(limits) = limits else { return Some(event) };
    if size(&event) <= limits.max_event_bytes {
        return Some(event);
    }
    event.request_object = None;
    event.response_object = None;
    event.annotations.insert(TRUNCATED.to_string(), "true".to_string());
    (size(&event) <= limits.max_event_bytes).then_some(event)
}

/// Splits a batch so no part is over the byte limit (one event may be alone).
pub fn split_batch(events: Vec<Event>, limits: Option<TruncateSettings>) -> Vec<Vec<Event>> {
    let Some(limits) = limits else { return vec![events] };
    let mut out = Vec::new();
    let (mut current, mut bytes) = (Vec::new(), 0);
    for e in events {
        let s = size(&e);
        if !current.is_empty() && bytes + s > limits.max_batch_bytes {
            out.push(std::mem::take(&mut current));
            bytes = 0;
        }
        bytes += s;
        current.push(e);
    }
    if !current.is_empty() {
        out.push(current);
    }
    out
}

/// A token bucket: `qps` batches a second, `burst` at once.
struct Throttle {
    qps: f64,
    burst: f64,
    tokens: f64,
    last: tokio::time::Instant,
}

impl Throttle {
    fn new(qps: f64, burst: usize) -> Throttle {
        Throttle { qps, burst: burst as f64, tokens: burst as f64, last: tokio::time::Instant::now() }
    }

    async fn take(&mut self) {
        let now = tokio::time::Instant::now();
        self.tokens = (self.tokens + now.duration_since(self.last).as_secs_f64() * self.qps).min(self.burst);
        self.last = now;
        if self.tokens < 1.0 {
            let wait = Duration::from_secs_f64((1.0 - self.tokens) / self.qps);
            tokio::time::sleep(wait).await;
            self.tokens = 1.0;
            self.last = tokio::time::Instant::now();
        }
        self.tokens -= 1.0;
    }
}

async fn run_batches(
    sink: Arc<dyn Sink>,
    mut rx: mpsc::Receiver<Event>,
    settings: BatchSettings,
    truncate: Option<TruncateSettings>,
    stop: CancellationToken,
) {
    let mut throttle = settings.throttle.map(|(qps, burst)| Throttle::new(qps, burst));
    loop {
        let first = tokio::select! {
            e = rx.recv() => e,
            _ = stop.cancelled() => None,
        };
        let Some(first) = first else { break };
        let mut batch = vec![first];
        let deadline = tokio::time::Instant::now() + settings.max_wait;
        while batch.len() < settings.max_batch_size {
            let next = if settings.max_wait.is_zero() {
                rx.try_recv().ok()
            } else {
                tokio::select! {
                    e = rx.recv() => e,
                    _ = tokio::time::sleep_until(deadline) => None,
                    _ = stop.cancelled() => rx.try_recv().ok(),
                }
            };
            match next {
                Some(e) => batch.push(e),
                None => break,
            }
        }
        if let Some(t) = throttle.as_mut() {
            t.take().await;
        }
        write_all(&*sink, batch, truncate).await;
    }
    // Shutdown: what is queued is still written, in batches, unthrottled.
    rx.close();
    let mut rest = Vec::new();
    while let Ok(e) = rx.try_recv() {
        rest.push(e);
        if rest.len() == settings.max_batch_size {
            write_all(&*sink, std::mem::take(&mut rest), truncate).await;
        }
    }
    if !rest.is_empty() {
        write_all(&*sink, rest, truncate).await;
    }
}

async fn write_all(sink: &dyn Sink, batch: Vec<Event>, truncate: Option<TruncateSettings>) {
    for part in split_batch(batch, truncate) {
        if let Err(error) = sink.write(&part).await {
            tracing::warn!(backend = sink.name(), events = part.len(), %error, "writing audit events failed; dropped");
        }
    }
}

#[cfg(test)]
mod tests;
