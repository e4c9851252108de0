//! What the benchmark reads: CPU time and resident memory of processes from
//! /proc, request latencies through the aggregation proxy (sequential for
//! `top pod -A`, open-loop at a fixed rate for the HPA query), percentiles.

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
    let req = http::Request::get(path).body(Vec::new()).map_err(|e| e.to_string())?;
    client.request_text(req).await.map_err(|e| e.to_string())
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
    let period = Duration::from_secs_f64(1.0 / rate);
    let mut tick = tokio::time::interval(period);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Burst);
    let mut tasks = tokio::task::JoinSet::new();
    let end = Instant::now() + duration;
    let mut i = 0;
    while Instant::now() < end {
        let scheduled = tick.tick().await.into_std();
        let (client, path) = (client.clone(), paths[i % paths.len()].clone());
        i += 1;
        tasks.spawn(async move {
            let ok = get(&client, &path).await.is_ok_and(|body| body.contains("\"containers\""));
            ok.then(|| scheduled.elapsed().as_secs_f64() * 1e3)
        });
    }
    let (mut ms, mut errors) = (Vec::new(), 0);
    while let Some(done) = tasks.join_next().await {
        match done {
            Ok(Some(v)) => ms.push(v),
            _ => errors += 1,
        }
    }
    Latency::of(ms, errors)
}

/// Items in a metrics list at `path` (None when the request fails).
pub async fn item_count(client: &kube::Client, path: &str) -> Option<usize> {
    let body = get(client, path).await.ok()?;
    let list: serde_json::Value = serde_json::from_str(&body).ok()?;
    list["items"].as_array().map(Vec::len)
}
