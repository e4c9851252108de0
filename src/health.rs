//! `/healthz`, `/livez` and `/readyz` with metrics-server's check names and
//! the generic apiserver's output (`?verbose`, `?exclude=`, `/<endpoint>/<check>`),
//! and `--livez-grace-period` (the generic checks of /livez pass for that
//! long after start; `metric-collection-timely` never waits).
//! Checks are closures over the state they inspect; this module owns only
//! the endpoint semantics and the text format.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicI64, Ordering};
use std::time::Duration;

use axum::Router;
use axum::extract::{Path, RawQuery, State};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use http::{HeaderValue, StatusCode, header};

use crate::model::{UnixNanos, now_nanos};

/// One named check: `Ok` passes, `Err(reason)` fails (the reason is logged,
/// and sent only by an [`Check::explained`] check: otherwise the body says
/// "reason withheld", as Kubernetes does).
pub struct Check {
    pub name: &'static str,
    pub run: Box<dyn Fn() -> Result<(), String> + Send + Sync>,
    /// What a passing check adds to its `?verbose` line (our own checks only;
    /// metrics-server's keep their exact lines).
    pub detail: Option<Box<dyn Fn() -> String + Send + Sync>>,
    /// Whether a failing `?verbose` line says why.
    pub explain: bool,
}

impl Check {
    pub fn new(name: &'static str, run: impl Fn() -> Result<(), String> + Send + Sync + 'static) -> Check {
        Check { name, run: Box::new(run), detail: None, explain: false }
    }

    /// A check whose failing `?verbose` line gives its reason (one of ours,
    /// whose reason tells an operator what broke and carries no secret).
    pub fn explained(mut self) -> Check {
        self.explain = true;
        self
    }

    /// A check whose verbose line says more when it passes.
    pub fn with_detail(mut self, detail: impl Fn() -> String + Send + Sync + 'static) -> Check {
        self.detail = Some(Box::new(detail));
        self
    }
}

/// The checks of the three endpoints.
pub struct HealthChecks {
    pub healthz: Vec<Check>,
    pub livez: Vec<Check>,
    pub readyz: Vec<Check>,
}

/// Time the last scrape round started, for `metric-collection-timely`.
#[derive(Debug, Default)]
pub struct TickClock(AtomicI64);

impl TickClock {
    pub fn mark(&self, at: UnixNanos) {
        self.0.store(at, Ordering::Release);
    }
    pub fn last(&self) -> Option<UnixNanos> {
        let v = self.0.load(Ordering::Acquire);
        (v != 0).then_some(v)
    }
}

/// `metric-collection-timely`: passes before the first round and while the
/// last round started at most 1.5 × resolution ago (a stuck scrape loop fails
/// it; a failed scrape does not).
pub fn collection_timely(clock: &TickClock, resolution: Duration, now: UnixNanos) -> Result<(), String> {
    let Some(last) = clock.last() else { return Ok(()) };
    let limit = resolution.mul_f64(1.5).as_nanos() as i64;
    let since = now.saturating_sub(last);
    if since > limit {
        Err(format!("last scrape round started {:.1}s ago, more than 1.5 × resolution", since as f64 / 1e9))
    } else {
        Ok(())
    }
}

/// Why the replica's Raft node can no longer take part, if it cannot.
pub type RaftFault = Arc<dyn Fn() -> Option<String> + Send + Sync>;
/// `metric-storage-ready` as metrics-server 0.9 has it (its #1818: node
/// *and* pod metrics can be served), for one replica: from its own store;
/// in a cluster also when it owns no node yet (it answers by fan-out, which
/// the `ring` check covers) or holds both in the backups it keeps for
/// other owners' nodes (its own nodes may run no pod yet).
pub fn storage_ready(own: bool, clustered: bool, owned_nodes: i64, backups: bool) -> bool {
    own || (clustered && (owned_nodes == 0 || backups))
}

/// What the standard checks look at.
pub struct HealthInputs {
    pub store_ready: Arc<dyn Fn() -> bool + Send + Sync>,
    pub informers_synced: Arc<dyn Fn() -> bool + Send + Sync>,
    pub pods_informer_synced: Arc<dyn Fn() -> bool + Send + Sync>,
    pub tick: Arc<TickClock>,
    pub resolution: Duration,
    /// Set when SIGTERM arrives: readiness fails while requests drain.
    pub shutting_down: Arc<AtomicBool>,
    /// In a cluster, `ring`: what this replica answers by (epoch, owned
    /// nodes), or why it cannot answer yet.
    pub ring: Option<Arc<dyn Fn() -> Result<String, String> + Send + Sync>>,
    /// In a cluster, `raft`: why this replica's Raft node can no longer take
    /// part (its store failed), if it cannot.
    pub raft: Option<RaftFault>,
    /// `--livez-grace-period` from `started`: until then /livez reports its
    /// generic checks as passing (metric-collection-timely excepted).
    pub livez_grace: Duration,
    pub started: std::time::Instant,
}

/// `check` as /livez runs it during `--livez-grace-period` after `started`:
/// passing while the grace lasts, as the generic apiserver delays its
/// post-start and informer checks.
fn delayed(check: Check, started: std::time::Instant, grace: Duration) -> Check {
    if grace.is_zero() {
        return check;
    }
    let Check { name, run, detail, explain } = check;
    Check { name, run: Box::new(move || if started.elapsed() < grace { Ok(()) } else { run() }), detail, explain }
}

impl HealthChecks {
    /// metrics-server's checks, in its order.
    pub fn standard(i: HealthInputs) -> HealthChecks {
        let common = || {
            vec![
                Check::new("ping", || Ok(())),
                Check::new("log", || Ok(())),
                Check::new("poststarthook/max-in-flight-filter", || Ok(())),
                Check::new("poststarthook/storage-object-count-tracker-hook", || Ok(())),
            ]
        };
        let meta = {
            let f = i.pods_informer_synced.clone();
            move || {
                Check::new("metadata-informer-sync", {
                    let f = f.clone();
                    move || if f() { Ok(()) } else { Err("pod metadata informer not synced".into()) }
                })
            }
        };
        let mut healthz = common();
        healthz.push(meta());
        let (started, grace) = (i.started, i.livez_grace);
        let mut livez: Vec<Check> = common().into_iter().map(|c| delayed(c, started, grace)).collect();
        let (tick, res) = (i.tick.clone(), i.resolution);
        livez.push(Check::new("metric-collection-timely", move || collection_timely(&tick, res, now_nanos())));
        livez.push(delayed(meta(), started, grace));
        let mut readyz = common();
        let ready = i.store_ready.clone();
        readyz.push(Check::new("metric-storage-ready", move || {
            if ready() { Ok(()) } else { Err("no metrics to serve".into()) }
        }));
        let synced = i.informers_synced.clone();
        readyz.push(Check::new("metric-informer-sync", move || {
            if synced() { Ok(()) } else { Err("informers not synced".into()) }
        }));
        readyz.push(meta());
        if let Some(ring) = i.ring.clone() {
            let detail = ring.clone();
            readyz.push(
                Check::new("ring", move || ring().map(|_| ())).with_detail(move || detail().unwrap_or_else(|e| e)),
            );
        }
        if let Some(raft) = i.raft.clone() {
            readyz.push(Check::new("raft", move || raft().map_or(Ok(()), Err)).explained());
        }
        let down = i.shutting_down.clone();
        readyz.push(Check::new("shutdown", move || {
            if down.load(Ordering::Acquire) { Err("process is shutting down".into()) } else { Ok(()) }
        }));
        HealthChecks { healthz, livez, readyz }
    }
}

/// Runs `checks` as endpoint `name` with the raw query string, returning
/// the HTTP status and body the generic apiserver would.
pub fn evaluate(name: &str, checks: &[Check], query: Option<&str>) -> (StatusCode, String) {
    let mut verbose = false;
    let mut excluded: Vec<String> = Vec::new();
    for (k, v) in form_pairs(query.unwrap_or("")) {
        match k.as_str() {
            "verbose" => verbose = true,
            "exclude" => excluded.push(v),
            _ => {}
        }
    }
    let mut out = String::new();
    let mut failed = false;
    for c in checks {
        if let Some(pos) = excluded.iter().position(|e| e == c.name) {
            excluded.remove(pos);
            out.push_str(&format!("[+]{} excluded: ok\n", c.name));
            continue;
        }
        match (c.run)() {
            Ok(()) => match &c.detail {
                Some(detail) => out.push_str(&format!("[+]{} ok: {}\n", c.name, detail())),
                None => out.push_str(&format!("[+]{} ok\n", c.name)),
            },
            Err(reason) => {
                failed = true;
                tracing::info!(check = c.name, endpoint = name, %reason, "health check failed");
                if c.explain {
                    out.push_str(&format!("[-]{} failed: {}\n", c.name, reason.replace('\n', " ")));
                } else {
                    out.push_str(&format!("[-]{} failed: reason withheld\n", c.name));
                }
            }
        }
    }
    for e in excluded {
        out.push_str(&format!("warn: some health checks cannot be excluded: no matches for \"{e}\"\n"));
    }
    if failed {
        out.push_str(&format!("{name} check failed\n"));
        return (StatusCode::INTERNAL_SERVER_ERROR, out);
    }
    if verbose {
        out.push_str(&format!("{name} check passed\n"));
        (StatusCode::OK, out)
    } else {
        (StatusCode::OK, "ok".to_string())
    }
}

fn form_pairs(q: &str) -> Vec<(String, String)> {
    q.split('&')
        .filter(|s| !s.is_empty())
        .map(|kv| {
            let (k, v) = kv.split_once('=').unwrap_or((kv, ""));
            (k.to_string(), v.replace("%2F", "/").replace("%2f", "/"))
        })
        .collect()
}

fn text(status: StatusCode, body: String) -> Response {
    let mut r = (status, body).into_response();
    r.headers_mut().insert(header::CONTENT_TYPE, HeaderValue::from_static("text/plain; charset=utf-8"));
    r.headers_mut().insert("x-content-type-options", HeaderValue::from_static("nosniff"));
    r
}

/// The router serving the three endpoints and their per-check paths.
pub fn router(checks: Arc<HealthChecks>) -> Router {
    async fn all(State((c, which)): State<(Arc<HealthChecks>, &'static str)>, RawQuery(q): RawQuery) -> Response {
        let list = pick(&c, which);
        let (s, b) = evaluate(which, list, q.as_deref());
        text(s, b)
    }
    async fn one(State((c, which)): State<(Arc<HealthChecks>, &'static str)>, Path(check): Path<String>) -> Response {
        match pick(&c, which).iter().find(|x| x.name == check) {
            None => text(StatusCode::NOT_FOUND, "404 page not found\n".into()),
            Some(x) => match (x.run)() {
                Ok(()) => text(StatusCode::OK, "ok".into()),
                Err(e) => text(StatusCode::INTERNAL_SERVER_ERROR, format!("internal server error: {e}\n")),
            },
        }
    }
    fn pick<'a>(c: &'a HealthChecks, which: &str) -> &'a [Check] {
        match which {
            "healthz" => &c.healthz,
            "livez" => &c.livez,
            _ => &c.readyz,
        }
    }
    let mut r = Router::new();
    for which in ["healthz", "livez", "readyz"] {
        let st = (checks.clone(), which);
        r = r
            .route(&format!("/{which}"), get(all).with_state(st.clone()))
            .route(&format!("/{which}/{{*check}}"), get(one).with_state(st));
    }
    r
}

#[cfg(test)]
mod tests {
    use super::*;

    fn inputs(ready: bool) -> HealthInputs {
        HealthInputs {
            store_ready: Arc::new(move || ready),
            informers_synced: Arc::new(|| true),
            pods_informer_synced: Arc::new(|| true),
            tick: Arc::new(TickClock::default()),
            resolution: Duration::from_secs(15),
            shutting_down: Arc::new(AtomicBool::new(false)),
            ring: None,
            raft: None,
            livez_grace: Duration::ZERO,
            started: std::time::Instant::now(),
        }
    }

    #[test]
    fn verbose_readyz_matches_metrics_server_exactly() {
        let c = HealthChecks::standard(inputs(true));
        let (s, body) = evaluate("readyz", &c.readyz, Some("verbose"));
        assert_eq!(s, StatusCode::OK);
        assert_eq!(
            body,
            "[+]ping ok\n[+]log ok\n[+]poststarthook/max-in-flight-filter ok\n\
             [+]poststarthook/storage-object-count-tracker-hook ok\n[+]metric-storage-ready ok\n\
             [+]metric-informer-sync ok\n[+]metadata-informer-sync ok\n[+]shutdown ok\nreadyz check passed\n"
        );
        let (_, body) = evaluate("livez", &c.livez, Some("verbose"));
        assert_eq!(
            body,
            "[+]ping ok\n[+]log ok\n[+]poststarthook/max-in-flight-filter ok\n\
             [+]poststarthook/storage-object-count-tracker-hook ok\n[+]metric-collection-timely ok\n\
             [+]metadata-informer-sync ok\nlivez check passed\n"
        );
    }

    #[test]
    fn failing_check_gives_500_and_withholds_the_reason() {
        let c = HealthChecks::standard(inputs(false));
        let (s, body) = evaluate("readyz", &c.readyz, None);
        assert_eq!(s, StatusCode::INTERNAL_SERVER_ERROR);
        assert!(body.contains("[-]metric-storage-ready failed: reason withheld\n"));
        assert!(body.ends_with("readyz check failed\n"));
        let (s, body) = evaluate("readyz", &c.readyz, Some("exclude=metric-storage-ready"));
        assert_eq!((s, body.as_str()), (StatusCode::OK, "ok"));
    }

    #[test]
    fn collection_timely_fails_only_after_one_and_a_half_resolutions() {
        let clock = TickClock::default();
        let r = Duration::from_secs(10);
        assert!(collection_timely(&clock, r, 1_000_000_000_000).is_ok());
        clock.mark(1_000_000_000_000);
        assert!(collection_timely(&clock, r, 1_000_000_000_000 + 10_000_000_000).is_ok());
        assert!(collection_timely(&clock, r, 1_000_000_000_000 + 20_000_000_000).is_err());
    }

    #[test]
    fn a_raft_fault_fails_readiness_with_its_reason_in_the_verbose_line() {
        let fault = Arc::new(std::sync::Mutex::new(None::<String>));
        let mut i = inputs(true);
        let f = fault.clone();
        i.raft = Some(Arc::new(move || f.lock().unwrap().clone()));
        let c = HealthChecks::standard(i);
        let (s, body) = evaluate("readyz", &c.readyz, Some("verbose"));
        assert_eq!(s, StatusCode::OK);
        assert!(body.contains("[+]raft ok\n"), "{body}");

        let why =
            "raft storage failed: appending to the raft log /data/raft.wal: No space left on device (os error 28)";
        *fault.lock().unwrap() = Some(why.to_string());
        let (s, body) = evaluate("readyz", &c.readyz, Some("verbose"));
        assert_eq!(s, StatusCode::INTERNAL_SERVER_ERROR);
        assert!(body.contains(&format!("[-]raft failed: {why}\n")), "{body}");
        assert_eq!(evaluate("livez", &c.livez, None).0, StatusCode::OK, "liveness is not the place: the process exits");
    }

    #[test]
    fn storage_readiness_needs_node_and_pod_metrics_somewhere_this_replica_answers_from() {
        assert!(storage_ready(true, false, 5, false));
        assert!(!storage_ready(false, false, 0, true), "a single replica: its own store only");
        assert!(storage_ready(false, true, 0, false), "owns nothing yet: answers by fan-out");
        assert!(!storage_ready(false, true, 3, false), "owns nodes without node and pod metrics");
        assert!(storage_ready(false, true, 3, true));
    }

    #[test]
    fn livez_grace_period_passes_generic_checks_but_not_collection_timeliness() {
        let mut i = inputs(true);
        i.pods_informer_synced = Arc::new(|| false);
        i.livez_grace = Duration::from_secs(3_600);
        let tick = i.tick.clone();
        let c = HealthChecks::standard(i);
        assert_eq!(evaluate("livez", &c.livez, None).0, StatusCode::OK, "metadata-informer-sync is in its grace");
        assert_eq!(evaluate("healthz", &c.healthz, None).0, StatusCode::INTERNAL_SERVER_ERROR, "healthz has none");
        tick.mark(1);
        assert_eq!(evaluate("livez", &c.livez, None).0, StatusCode::INTERNAL_SERVER_ERROR, "collection is not delayed");
        let mut i = inputs(true);
        i.pods_informer_synced = Arc::new(|| false);
        let c = HealthChecks::standard(i);
        assert_eq!(evaluate("livez", &c.livez, None).0, StatusCode::INTERNAL_SERVER_ERROR, "no grace by default");
    }

    #[test]
    fn shutdown_makes_readiness_fail_but_not_liveness() {
        let i = inputs(true);
        let down = i.shutting_down.clone();
        let c = HealthChecks::standard(i);
        down.store(true, Ordering::Release);
        assert_eq!(evaluate("readyz", &c.readyz, None).0, StatusCode::INTERNAL_SERVER_ERROR);
        assert_eq!(evaluate("livez", &c.livez, None).0, StatusCode::OK);
    }
}
