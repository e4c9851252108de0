//! Supervised tasks: a panic restarts the task; one that keeps panicking
//! becomes the node's fault instead of silently stopping.

use std::sync::Arc;
use std::sync::atomic::AtomicUsize;

use super::*;

#[tokio::test]
async fn a_task_that_panics_is_restarted_and_one_that_keeps_panicking_is_a_fault() {
    let faults = Faults::default();
    let runs = Arc::new(AtomicUsize::new(0));
    let r = runs.clone();
    supervise(1, "flaky", CancellationToken::new(), faults.clone(), move || {
        let n = r.fetch_add(1, Ordering::SeqCst);
        async move { assert!(n >= MAX_RESTARTS, "run {n} fails") }
    })
    .await;
    assert_eq!(runs.load(Ordering::SeqCst), MAX_RESTARTS + 1, "restarted after each panic, done once it returned");
    assert!(faults.get().is_none());

    let r = runs.clone();
    supervise(1, "broken", CancellationToken::new(), faults.clone(), move || {
        r.fetch_add(1, Ordering::SeqCst);
        async { panic!("always") }
    })
    .await;
    let Some(Fault::TaskDied { task, reason }) = faults.get() else { panic!("no fault: {:?}", faults.get()) };
    assert_eq!((task, reason.as_str()), ("broken", "always"));
}

#[tokio::test]
async fn a_task_that_panics_while_the_node_stops_is_not_a_fault() {
    let faults = Faults::default();
    let stop = CancellationToken::new();
    stop.cancel();
    supervise(1, "stopping", stop, faults.clone(), || async { panic!("during shutdown") }).await;
    assert!(faults.get().is_none());
}
