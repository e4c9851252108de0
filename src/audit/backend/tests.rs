use std::sync::Mutex;

use super::*;
use crate::audit::event::{Event, EventUser};
use crate::audit::policy::{Level, Stage};

/// Records every write; fails them all when `fail` is set.
#[derive(Default)]
struct Collect {
    writes: Mutex<Vec<Vec<String>>>,
    fail: bool,
}

impl Sink for Collect {
    fn write<'a>(&'a self, events: &'a [Event]) -> BoxFuture<'a, Result<(), String>> {
        Box::pin(async move {
            if self.fail {
                return Err("disk full".into());
            }
            self.writes.lock().unwrap().push(events.iter().map(|e| e.audit_id.clone()).collect());
            Ok(())
        })
    }
    fn name(&self) -> &'static str {
        "test"
    }
}

fn event(id: &str) -> Event {
    Event::new(Level::Metadata, Stage::ResponseComplete, id, "/x", "get", EventUser::default(), vec![], "", None, 0, 0)
}

fn batch(max: usize, wait: Duration) -> BatchSettings {
    BatchSettings { buffer_size: 100, max_batch_size: max, max_wait: wait, throttle: None }
}

#[tokio::test]
async fn blocking_writes_before_returning_and_strict_reports_failures() {
    let sink = Arc::new(Collect::default());
    let stop = CancellationToken::new();
    let (b, task) = Backend::start(sink.clone(), Mode::Blocking, batch(1, Duration::ZERO), None, stop.clone());
    assert!(task.is_none());
    b.process(event("a")).await.unwrap();
    assert_eq!(sink.writes.lock().unwrap().clone(), [["a"]]);
    let failing = Arc::new(Collect { fail: true, ..Collect::default() });
    let (lenient, _) = Backend::start(failing.clone(), Mode::Blocking, batch(1, Duration::ZERO), None, stop.clone());
    assert!(lenient.process(event("b")).await.is_ok());
    let (strict, _) = Backend::start(failing, Mode::BlockingStrict, batch(1, Duration::ZERO), None, stop);
    assert_eq!(strict.process(event("c")).await, Err("disk full".to_string()));
}

#[tokio::test(start_paused = true)]
async fn batches_hold_at_most_max_size_and_wait_at_most_max_wait() {
    let sink = Arc::new(Collect::default());
    let stop = CancellationToken::new();
    let (b, task) = Backend::start(sink.clone(), Mode::Batch, batch(3, Duration::from_secs(5)), None, stop.clone());
    for id in ["1", "2", "3", "4"] {
        b.process(event(id)).await.unwrap();
    }
    tokio::time::sleep(Duration::from_secs(1)).await;
    assert_eq!(sink.writes.lock().unwrap().clone(), [vec!["1", "2", "3"]], "a full batch goes at once");
    tokio::time::sleep(Duration::from_secs(5)).await;
    assert_eq!(sink.writes.lock().unwrap().len(), 2, "a partial one after max-wait");
    b.process(event("5")).await.unwrap();
    stop.cancel();
    task.unwrap().await.unwrap();
    assert_eq!(sink.writes.lock().unwrap().last().unwrap(), &["5"], "queued events are written at shutdown");
}

#[tokio::test(start_paused = true)]
async fn throttled_batches_keep_to_the_rate() {
    let sink = Arc::new(Collect::default());
    let stop = CancellationToken::new();
    let settings =
        BatchSettings { buffer_size: 100, max_batch_size: 1, max_wait: Duration::ZERO, throttle: Some((2.0, 1)) };
    let (b, _task) = Backend::start(sink.clone(), Mode::Batch, settings, None, stop);
    for i in 0..5 {
        b.process(event(&i.to_string())).await.unwrap();
    }
    tokio::time::sleep(Duration::from_millis(1_100)).await;
    // One at once (the burst), then one every 500 ms.
    assert_eq!(sink.writes.lock().unwrap().len(), 3);
}

#[test]
fn oversized_events_lose_their_bodies_then_are_dropped_and_batches_split() {
    let mut e = event("big");
    e.response_object = Some(serde_json::json!({"data": "x".repeat(1000)}));
    let small = size(&event("big"));
    let limits = TruncateSettings { max_event_bytes: small + 100, max_batch_bytes: 2 * small + 10 };
    let t = truncate_event(e.clone(), Some(limits)).unwrap();
    assert!(t.response_object.is_none());
    assert_eq!(t.annotations[TRUNCATED], "true");
    assert!(truncate_event(e, Some(TruncateSettings { max_event_bytes: 10, max_batch_bytes: 10 })).is_none());
    let parts = split_batch(vec![event("a"), event("b"), event("c")], Some(limits));
    assert_eq!(parts.iter().map(Vec::len).collect::<Vec<_>>(), [2, 1]);
}
