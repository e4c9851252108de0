//! What the benchmark reads: CPU time and resident memory of processes from
//! /proc, request latencies through the aggregation proxy (sequential for
//! `top pod -A`, open-loop at a fixed rate for the HPA query), percentiles,
//! and whether answers are complete (their item count against the steady
//! state's).

use std::sync::Arc;
use std::time::{Duration, Instant};

use serde::Serialize;

/// utime + stime of `pid` (all its threads), in seconds; 0 once it is gone.
pub fn cpu_seconds(pid: u32) -> f64 {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
    let after = stat.rsplit_once(')').map(|(_, r)| r).unwrap_or("");
    let f: Vec<&str> = after.split_whitespace().collect();
    // SAFETY: sysconf has no preconditions.
    let ticks = unsafe { libc::sysconf(libc::_SC_CLK_TCK) } as f64;
    let ut: f64 = f.get(11).and_then(|v| v.parse().ok()).unwrap_or(0.0);
    let st: f64 = f.get(12).and_then(|v| v.parse().ok()).unwrap_or(0.0);
    (ut + st) / ticks
}

/// A field of /proc/pid/status in MiB (`VmHWM:` peak, `VmRSS:` now).
pub fn status_mib(pid: u32, field: &str) -> f64 {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .unwrap_or_default()
        .lines()
        .find(|l| l.starts_with(field))
        .and_then(|l| l.split_whitespace().nth(1)?.parse::<f64>().ok())
        .unwrap_or(0.0)
        / 1024.0
}

pub fn total_cpu(pids: &[u32]) -> f64 {
    pids.iter().map(|&p| cpu_seconds(p)).sum()
}

pub fn total_mib(pids: &[u32], field: &str) -> f64 {
    pids.iter().map(|&p| status_mib(p, field)).sum()
}

/// Latency percentiles in milliseconds, and how many requests failed.
#[derive(Debug, Clone, Default, Serialize)]
pub struct Latency {
    pub requests: usize,
    pub errors: usize,
    pub p50_ms: f64,
    pub p99_ms: f64,
    pub max_ms: f64,
}

impl Latency {
    pub fn of(mut ms: Vec<f64>, errors: usize) -> Latency {
        ms.sort_by(f64::total_cmp);
        let at = |q: f64| -> f64 {
            if ms.is_empty() {
                return f64::NAN;
            }
            ms[((ms.len() as f64 * q).ceil() as usize).clamp(1, ms.len()) - 1]
        };
        Latency { requests: ms.len() + errors, errors, p50_ms: at(0.50), p99_ms: at(0.99), max_ms: at(1.0) }
    }
}

/// GETs `path` and returns the body, or the error as text.
pub async fn get(client: &kube::Client, path: &str) -> Result<String, String> {
    get_warned(client, path).await.map(|(body, _)| body)
}

/// GETs `path` and returns the body with the answer's `Warning` headers (a
/// replica names there each member whose part of a partial answer is
/// missing, and why), or the error as text (an HTTP error status too).
pub async fn get_warned(client: &kube::Client, path: &str) -> Result<(String, Vec<String>), String> {
    use http_body_util::BodyExt;
    let req = http::Request::get(path).body(kube::client::Body::from(Vec::new())).map_err(|e| e.to_string())?;
    let resp = client.send(req).await.map_err(|e| e.to_string())?;
    let status = resp.status();
    let warnings = resp
        .headers()
        .get_all(http::header::WARNING)
        .iter()
        .map(|v| String::from_utf8_lossy(v.as_bytes()).into_owned())
        .collect();
    let body = resp.into_body().collect().await.map_err(|e| e.to_string())?.to_bytes();
    let body = String::from_utf8(body.to_vec()).map_err(|e| e.to_string())?;
    if !status.is_success() {
        return Err(format!("{status}: {}", body.chars().take(200).collect::<String>()));
    }
    Ok((body, warnings))
}

/// `count` sequential GETs of `path`: the request `kubectl top pod -A` makes.
pub async fn sequential(client: &kube::Client, path: &str, count: usize) -> Latency {
    let (mut ms, mut errors) = (Vec::with_capacity(count), 0);
    for _ in 0..count {
        let start = Instant::now();
        match get(client, path).await {
            Ok(_) => ms.push(start.elapsed().as_secs_f64() * 1e3),
            Err(_) => errors += 1,
        }
    }
    Latency::of(ms, errors)
}

/// Open-loop load: one request every `1/rate` s for `duration`, cycling over
/// `paths`, each timed from its scheduled start (so a stall shows as latency,
/// not as a lower rate). A request that fails or returns no items is an error.
pub async fn open_loop(client: &kube::Client, paths: &[String], rate: f64, duration: Duration) -> Latency {
    let paths: Arc<[String]> = paths.into();
    let judged = drive(client, paths.clone(), rate, tokio::time::sleep(duration), move |_, body| {
        (!body.contains("\"containers\"")).then_some(0)
    })
    .await;
    // Here an answer without items is as bad as a failed request.
    Latency::of(judged.ms_of(true), judged.errors + judged.ms_of(false).len())
}

/// Open-loop load like [`open_loop`] over `load` (`(path, items)`), until
/// `stop` completes, holding every answer to the item count its path had in
/// the steady state.
pub async fn open_loop_checked(
    client: &kube::Client,
    load: &[(String, usize)],
    rate: f64,
    stop: impl Future<Output = ()>,
) -> Checked {
    let (paths, expected): (Vec<String>, Vec<usize>) = load.iter().cloned().unzip();
    drive(client, paths.into(), rate, stop, move |i, body| shortfall(body, expected[i])).await.checked()
}

/// A node list through the proxy every `every` until `stop` completes, each
/// held to list all `nodes`.
pub async fn node_lists(
    client: &kube::Client,
    nodes: usize,
    every: Duration,
    stop: impl Future<Output = ()>,
) -> Checked {
    let mut judged = Judged::default();
    let mut tick = tokio::time::interval(every);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    tokio::pin!(stop);
    loop {
        tokio::select! {
            _ = &mut stop => break,
            _ = tick.tick() => {}
        }
        let start = Instant::now();
        let answer = get_warned(client, NODES).await;
        let short = answer.map(|(body, w)| (shortfall(&body, nodes), w));
        judged.add(start.elapsed().as_secs_f64() * 1e3, unix_now(), short);
    }
    judged.checked()
}

/// How a list answer falls short of `expected` items: `None` when it has
/// exactly that many, else how many it lacks (all when it is not a list; 0
/// when it has more).
pub fn shortfall(body: &str, expected: usize) -> Option<usize> {
    let items = items_in(body).unwrap_or(0);
    (items != expected).then(|| expected.saturating_sub(items))
}

/// Answers held to an expectation: how long each took, how each fell short.
#[derive(Debug, Default)]
struct Judged {
    /// `(ms, shortfall)` of every answer (`None`: it met the expectation).
    answers: Vec<(f64, Option<usize>)>,
    /// The first [`KEPT_SHORT`] answers that fell short, in full.
    short: Vec<Short>,
    /// Requests that failed (an HTTP error or no answer).
    errors: usize,
}

/// Now, in seconds since the Unix epoch.
pub fn unix_now() -> f64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0.0, |d| d.as_secs_f64())
}

/// How many short answers a measurement keeps in full.
const KEPT_SHORT: usize = 10_000;

/// One answer that fell short of its expectation.
#[derive(Debug, Clone, Serialize)]
pub struct Short {
    /// When it arrived, in seconds since the Unix epoch (to set beside the
    /// replicas' logs).
    pub at_unix_s: f64,
    pub ms: f64,
    /// Items it lacked (0: it had more than expected).
    pub lacked: usize,
    /// Its `Warning` headers: empty when the replica gave no sign that
    /// the answer was partial.
    pub warnings: Vec<String>,
}

impl Judged {
    /// Adds one answer that arrived at `at_unix_s`: `(shortfall,
    /// warnings)`, or the request's error.
    fn add(&mut self, ms: f64, at_unix_s: f64, answer: Result<(Option<usize>, Vec<String>), String>) {
        match answer {
            Ok((short, warnings)) => {
                self.answers.push((ms, short));
                if let Some(lacked) = short
                    && self.short.len() < KEPT_SHORT
                {
                    self.short.push(Short { at_unix_s, ms, lacked, warnings });
                }
            }
            Err(_) => self.errors += 1,
        }
    }

    fn ms_of(&self, met: bool) -> Vec<f64> {
        self.answers.iter().filter(|a| a.1.is_none() == met).map(|a| a.0).collect()
    }

    fn checked(self) -> Checked {
        let short: Vec<usize> = self.answers.iter().filter_map(|a| a.1).collect();
        Checked {
            answers: self.answers.len(),
            incomplete: short.len(),
            most_missing: short.into_iter().max().unwrap_or(0),
            latency: Latency::of(self.answers.into_iter().map(|a| a.0).collect(), self.errors),
            short: self.short,
        }
    }
}

/// Answers held to the item count of the steady state.
#[derive(Debug, Clone, Default, Serialize)]
pub struct Checked {
    /// Latency of every answer, complete or not; `errors` counts the
    /// requests that got none (an HTTP error, such as the proxy's 503 while
    /// a replica goes down).
    pub latency: Latency,
    /// Answers checked (requests minus errors).
    pub answers: usize,
    /// Of those, answers whose item count was not the steady state's (a
    /// node or pod missing).
    pub incomplete: usize,
    /// The most items one answer lacked.
    pub most_missing: usize,
    /// The answers that fell short (the first [`KEPT_SHORT`]), each with
    /// when it came and the replica's warnings.
    pub short: Vec<Short>,
}

/// The open-loop engine: requests of `paths[i % len]` every `1/rate` s
/// until `stop`, each timed from its scheduled start and its body judged by
/// `judge(i % len, body)` (its shortfall, `None` when it met the expectation).
async fn drive(
    client: &kube::Client,
    paths: Arc<[String]>,
    rate: f64,
    stop: impl Future<Output = ()>,
    judge: impl Fn(usize, &str) -> Option<usize> + Clone + Send + 'static,
) -> Judged {
    let period = Duration::from_secs_f64(1.0 / rate);
    let mut tick = tokio::time::interval(period);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Burst);
    let mut tasks = tokio::task::JoinSet::new();
    tokio::pin!(stop);
    let mut i = 0;
    loop {
        let scheduled = tokio::select! {
            _ = &mut stop => break,
            t = tick.tick() => t.into_std(),
        };
        let (client, paths, judge, at) = (client.clone(), paths.clone(), judge.clone(), i % paths.len());
        i += 1;
        tasks.spawn(async move {
            let answer = get_warned(&client, &paths[at]).await.map(|(body, w)| (judge(at, &body), w));
            (scheduled.elapsed().as_secs_f64() * 1e3, unix_now(), answer)
        });
    }
    let mut judged = Judged::default();
    while let Some(done) = tasks.join_next().await {
        match done {
            Ok((ms, at, answer)) => judged.add(ms, at, answer),
            Err(e) => judged.add(0.0, unix_now(), Err(e.to_string())),
        }
    }
    judged
}

const NODES: &str = "/apis/metrics.k8s.io/v1beta1/nodes";

/// The length of a metrics list's `items` (None when the body is not a list).
pub fn items_in(body: &str) -> Option<usize> {
    let list: serde_json::Value = serde_json::from_str(body).ok()?;
    list["items"].as_array().map(Vec::len)
}

/// Items in a metrics list at `path` (None when the request fails).
pub async fn item_count(client: &kube::Client, path: &str) -> Option<usize> {
    items_in(&get(client, path).await.ok()?)
}
