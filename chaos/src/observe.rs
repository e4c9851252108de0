//! `chaos observe`: the same observer and invariants against a real cluster
//! through kube-apiserver (no simulator): the metrics lists through
//! `/apis/metrics.k8s.io` every 500 ms (nodes) and 2 s (pods), judged for
//! coverage against the Node list and the pods Running from start to end,
//! for freshness against `--resolution`, and for API errors. Run it while a
//! Chaos Mesh experiment runs; it writes the same report. With
//! `--prometheus URL` it also reads the SLIs the operator's Prometheus
//! collected over the same window and judges them beside its own polling
//! ([`crate::observe_prometheus`]).

use std::collections::BTreeSet;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::Context;
use http_body_util::BodyExt;
use serde_json::Value;

use crate::invariants::{Check, serving};
use crate::observe_prometheus::PromClient;
use crate::observer::parse_items;
use crate::record::{Answer, Kind, Recording, Source, now_ms};
use crate::runner::Outcome;

#[derive(Debug, clap::Args)]
pub struct ObserveArgs {
    /// Kubeconfig of the cluster to observe (its current context).
    #[arg(long)]
    pub kubeconfig: PathBuf,
    /// How long to observe (Go duration).
    #[arg(long, default_value = "60s")]
    pub duration: String,
    /// The metric resolution the server runs with (the freshness bound is this + 5 s).
    #[arg(long, default_value = "15s")]
    pub resolution: String,
    #[arg(long, default_value = "target/chaos-observe")]
    pub out: PathBuf,
    /// Also read the SLIs from this Prometheus (for example
    /// `http://127.0.0.1:9090` through `kubectl port-forward`) and judge
    /// coverage, freshness and availability from them beside the polling.
    #[arg(long)]
    pub prometheus: Option<String>,
    /// How often that Prometheus scrapes the replicas (the ServiceMonitor's
    /// interval): the step of its SLIs and how far it may lag the polling.
    #[arg(long, default_value = "30s")]
    pub scrape_interval: String,
}

/// GETs `path` through the apiserver: status, Warning texts, body.
async fn get(client: &kube::Client, path: &str) -> Option<(u16, Vec<String>, String)> {
    let req = http::Request::get(path).body(kube::client::Body::empty()).ok()?;
    let resp = tokio::time::timeout(Duration::from_secs(10), client.send(req)).await.ok()?.ok()?;
    let status = resp.status().as_u16();
    let warnings = resp
        .headers()
        .get_all(http::header::WARNING)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .map(|v| v.strip_prefix("299 - ").unwrap_or(v).trim_matches('"').to_string())
        .collect();
    let body = resp.into_body().collect().await.ok()?.to_bytes();
    Some((status, warnings, String::from_utf8_lossy(&body).into_owned()))
}

async fn names(client: &kube::Client, path: &str) -> anyhow::Result<BTreeSet<String>> {
    let (status, _, body) = get(client, path).await.with_context(|| format!("GET {path}: no answer"))?;
    anyhow::ensure!(status == 200, "GET {path}: {status}: {body}");
    let v: Value = serde_json::from_str(&body).with_context(|| format!("GET {path}: not JSON"))?;
    Ok(v["items"]
        .as_array()
        .map(|items| {
            items
                .iter()
                .map(|i| {
                    let name = i["metadata"]["name"].as_str().unwrap_or_default();
                    match i["metadata"]["namespace"].as_str() {
                        Some(ns) => format!("{ns}/{name}"),
                        None => name.to_string(),
                    }
                })
                .collect()
        })
        .unwrap_or_default())
}

const RUNNING_PODS: &str = "/api/v1/pods?fieldSelector=status.phase%3DRunning";

/// Observes for `--duration` and returns the judged outcome.
pub async fn observe(args: &ObserveArgs) -> anyhow::Result<Outcome> {
    let duration = apimachinery::parse_go_duration(&args.duration).map_err(|e| anyhow::anyhow!("--duration: {e}"))?;
    let resolution =
        apimachinery::parse_go_duration(&args.resolution).map_err(|e| anyhow::anyhow!("--resolution: {e}"))?;
    let scrape_interval = apimachinery::parse_go_duration(&args.scrape_interval)
        .map_err(|e| anyhow::anyhow!("--scrape-interval: {e}"))?;
    let prometheus = args.prometheus.as_deref().map(PromClient::new).transpose()?;
    let kc = kube::config::Kubeconfig::read_from(&args.kubeconfig)
        .with_context(|| format!("reading {}", args.kubeconfig.display()))?;
    let mut config = kube::Config::from_custom_kubeconfig(kc, &kube::config::KubeConfigOptions::default()).await?;
    // A 503 is what the observer is here to see, not something to retry away.
    config.default_retry = false;
    let client = kube::Client::try_from(config)?;
    let started = Instant::now();
    let nodes = names(&client, "/api/v1/nodes").await?;
    let pods_at_start = names(&client, RUNNING_PODS).await?;
    let answers = Arc::new(Mutex::new(Vec::new()));
    let start_ms = now_ms();
    let mut tasks = Vec::new();
    for (kind, path, every) in [
        (Kind::Nodes, "/apis/metrics.k8s.io/v1beta1/nodes", Duration::from_millis(500)),
        (Kind::Pods, "/apis/metrics.k8s.io/v1beta1/pods", Duration::from_secs(2)),
    ] {
        let (client, answers) = (client.clone(), answers.clone());
        tasks.push(tokio::spawn(async move {
            let mut tick = tokio::time::interval(every);
            tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            while started.elapsed() < duration {
                tick.tick().await;
                let got = get(&client, path).await;
                let at_ms = now_ms();
                let a = match got {
                    Some((status, warnings, body)) => {
                        let items = if status == 200 { parse_items(&body) } else { Vec::new() };
                        Answer {
                            at_ms,
                            source: Source::Proxy,
                            kind,
                            status: Some(status),
                            warnings,
                            epoch: None,
                            items,
                        }
                    }
                    None => Answer {
                        at_ms,
                        source: Source::Proxy,
                        kind,
                        status: None,
                        warnings: vec![],
                        epoch: None,
                        items: vec![],
                    },
                };
                answers.lock().unwrap_or_else(|p| p.into_inner()).push(a);
            }
        }));
    }
    for t in tasks {
        let _ = t.await;
    }
    let pods_at_end = names(&client, RUNNING_PODS).await?;
    let mut rec = Recording {
        resolution_ms: resolution.as_millis() as u64,
        start_ms,
        fault_start_ms: start_ms,
        heal_ms: now_ms(),
        end_ms: now_ms(),
        nodes: nodes.into_iter().collect(),
        pods: pods_at_start.intersection(&pods_at_end).cloned().collect(),
        ..Recording::default()
    };
    rec.answers = std::mem::take(&mut *answers.lock().unwrap_or_else(|p| p.into_inner()));
    rec.answers.sort_by_key(|a| a.at_ms);
    let mut checks: Vec<Check> = vec![serving::coverage(&rec), serving::freshness(&rec), serving::api_errors(&rec)];
    if let Some(client) = &prometheus {
        let slis = crate::observe_prometheus::read_when_scraped(client, rec.start_ms, rec.end_ms, scrape_interval)
            .await
            .with_context(|| format!("reading the SLIs from {}", client.url()))?;
        let tol =
            crate::observe_prometheus::Tolerance { scrape_interval, failures: vec![], lease: Duration::from_secs(3) };
        checks.extend(crate::observe_prometheus::checks(&slis, &rec, &tol));
    }
    let pass = checks.iter().all(|c| c.pass);
    Ok(Outcome {
        name: "observe".into(),
        what: match &prometheus {
            Some(p) => format!("{} through kube-apiserver and {} for {duration:?}", args.kubeconfig.display(), p.url()),
            None => format!("{} through kube-apiserver for {duration:?}", args.kubeconfig.display()),
        },
        verdict: if pass { "pass".into() } else { "fail".into() },
        seconds: started.elapsed().as_secs_f64(),
        checks,
        events: vec![],
        recording: Some(rec),
    })
}

/// `chaos observe`: observes, writes the report, says whether it passed.
pub async fn run(args: ObserveArgs) -> anyhow::Result<bool> {
    let outcome = observe(&args).await?;
    let outcomes = [outcome];
    let files = crate::report::write(&args.out, &outcomes, 0, "observe")?;
    println!("{}", crate::report::markdown(&outcomes, 0, "observe"));
    for f in files {
        println!("wrote {}", f.display());
    }
    Ok(outcomes[0].passed())
}
