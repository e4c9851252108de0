//! The monitoring of `deploy/monitoring/` against the real Prometheus (the
//! Debian package's server, installed on first use) and three replicas on
//! the simulated cluster, configured as the Prometheus Operator would
//! configure it ([`prom::live`]): the ServiceMonitor's HTTPS scrape with
//! Prometheus' own token and the operator's relabelling, and the
//! PrometheusRule's rules on a clock [`SPEEDUP`] times faster (every `for`,
//! range and interval divided, nothing else changed: `prometheus_rules`
//! tests the real durations with promtool).
//!
//! One cluster, one fault after the other, the chaos observer polling the
//! replicas throughout: kill -9 of a follower (replica and member down),
//! kill -9 of both followers (the survivor, the old leader, loses its
//! quorum: degraded and no leader), a kubelet that stops answering (stale
//! node, scrape errors). Each alert must go pending and fire within its
//! `for` plus two scrape intervals of its condition holding on the replicas'
//! own `/metrics`, and resolve after the heal; the SLIs Prometheus collects
//! must agree with what the observer saw; and every dashboard query must
//! return data.

mod prom;

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use chaos::faults::{self, Fault, KubeletFault, Target, Undo};
use chaos::harness::{Harness, HarnessOptions};
use chaos::observe_prometheus::Tolerance;
use chaos::observer::{Observer, Targets};
use chaos::record::{Event, Recording, now_ms};
use prom::live::{self, Prometheus, SPEEDUP};
use prom::scale::{parse_duration, scale_groups};
use prom::watch::{AlertWatch, GaugeWatch};
use serde_json::Value;

/// One alert's life through its fault, in ms from the fault.
#[derive(Debug, Default)]
struct Timing {
    alert: String,
    condition: u64,
    pending: u64,
    firing: u64,
    resolved_after_heal: u64,
    for_ms: u64,
}

/// The first range (`[15s]`) of `alert`'s expression in the scaled rules, in ms.
fn range_of(groups: &Value, alert: &str) -> u64 {
    let (_, rule) = prom::rules(groups).into_iter().find(|(_, r)| r["alert"] == alert).expect("the alert");
    let expr = rule["expr"].as_str().unwrap();
    let range = expr.split('[').nth(1).and_then(|r| r.split(']').next()).expect("a range");
    parse_duration(range).unwrap()
}

/// The `for` of `alert` in the scaled rules, in ms.
fn for_of(groups: &Value, alert: &str) -> u64 {
    prom::rules(groups)
        .into_iter()
        .find(|(_, r)| r["alert"] == alert)
        .and_then(|(_, r)| parse_duration(r["for"].as_str()?))
        .unwrap_or(0)
}

struct Run {
    h: Harness,
    p: Prometheus,
    alerts: AlertWatch,
    gauges: GaugeWatch,
    groups: Value,
    scrape: Duration,
    events: Vec<Event>,
    timings: Vec<Timing>,
}

impl Run {
    /// Waits for `alert` (with `labels`) to go pending and fire after the
    /// fault at `t0`; `condition` says when its condition first held (from
    /// the replicas' own gauges, or the fault's time plus what the
    /// expression's window needs); checks the bounds and records the times.
    async fn fires(
        &mut self,
        alert: &str,
        labels: &[(&str, &str)],
        t0: u64,
        condition: impl Fn(&GaugeWatch) -> Option<u64>,
    ) -> usize {
        let for_ms = for_of(&self.groups, alert);
        let within = Duration::from_millis(for_ms) + self.scrape * 4 + Duration::from_secs(60);
        let what = format!("{alert} {labels:?} pending");
        let pending = self.alerts.wait(&what, alert, labels, "pending", t0, within).await;
        let what = format!("{alert} {labels:?} firing");
        let firing = self.alerts.wait(&what, alert, labels, "firing", t0, within).await;
        let condition =
            condition(&self.gauges).unwrap_or_else(|| panic!("{alert}: its condition never held on the replicas"));
        let a = self.alerts.firing(alert, labels, t0).expect("seen firing");
        for k in ["summary", "description", "runbook_url"] {
            assert!(a.annotations.get(k).is_some_and(|v| !v.is_empty() && !v.contains("{{")), "{alert}: {k} {a:?}");
        }
        assert!(a.labels.contains_key("severity"), "{alert}: {a:?}");
        // Pending at the first evaluation after the first scrape that shows
        // the condition; firing `for` later: two scrape intervals (the
        // evaluation interval is the scrape interval) plus polling slack.
        let slack = 2 * self.scrape.as_millis() as u64 + 2_000;
        let c = condition.max(t0);
        assert!(
            pending <= c + slack,
            "{alert}: pending {} ms after its condition (bound {slack} ms)",
            pending.saturating_sub(c)
        );
        assert!(
            firing <= c + for_ms + slack,
            "{alert}: firing {} ms after its condition (bound for {for_ms} ms + {slack} ms)",
            firing.saturating_sub(c)
        );
        assert!(
            firing + 500 >= pending + for_ms,
            "{alert}: fired {} ms after pending, its for is {for_ms} ms",
            firing - pending
        );
        self.timings.push(Timing {
            alert: format!("{alert}{}", labels.iter().map(|(k, v)| format!(" {k}={v}")).collect::<String>()),
            condition: c - t0,
            pending: pending - t0,
            firing: firing - t0,
            for_ms,
            ..Timing::default()
        });
        self.timings.len() - 1
    }

    async fn resolves(&mut self, timing: usize, alert: &str, labels: &[(&str, &str)], healed: u64) {
        let what = format!("{alert} {labels:?} to resolve");
        let gone = self.alerts.wait_gone(&what, alert, labels, healed, Duration::from_secs(90)).await;
        self.timings[timing].resolved_after_heal = gone - healed;
    }

    async fn heal(&mut self, undo: Undo) -> u64 {
        faults::heal(&mut self.h, undo, &mut self.events).await.expect("heal");
        now_ms()
    }
}

/// Fills the dashboard's template variables in `expr` (their current or
/// first value; Grafana's interval variables as Grafana would for a 5 m view).
fn fill_variables(dashboard: &Value, expr: &str) -> String {
    let mut out = expr.to_string();
    for v in dashboard["templating"]["list"].as_array().into_iter().flatten() {
        let name = v["name"].as_str().unwrap_or_default();
        let value = v["current"]["value"]
            .as_str()
            .or_else(|| v["options"][0]["value"].as_str())
            .or_else(|| v["query"].as_str())
            .unwrap_or_default();
        out = out.replace(&format!("${{{name}}}"), value).replace(&format!("${name}"), value);
    }
    for (var, value) in [("$__rate_interval", "1m"), ("$__interval", "15s"), ("$__range", "5m")] {
        out = out.replace(&format!("${{{}}}", &var[1..]), value).replace(var, value);
    }
    assert!(!out.contains('$'), "a dashboard variable the test does not know in {expr}");
    out
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn prometheus_fires_each_alert_on_its_fault_agrees_with_the_observer_and_fills_every_dashboard_panel() {
    let started = Instant::now();
    let dir = tempfile::tempdir().unwrap();
    // Before the cluster: a first run installs them, which takes a while.
    sim::tools::prometheus("the live monitoring test runs the real Prometheus").unwrap_or_else(|e| panic!("{e}"));
    let resolution = Duration::from_secs(2);
    let h = Harness::start(HarnessOptions {
        replicas: 3,
        nodes: 6,
        pods_per_node: 2,
        resolution,
        seed: 7,
        binary: env!("CARGO_BIN_EXE_ha-metrics-server").into(),
        work_dir: dir.path().join("cluster"),
        // A leaving replica records its handover's duration just before it
        // exits: it must keep serving /metrics for two scrape intervals for
        // Prometheus to see it (see deploy/monitoring/README.md).
        extra_args: vec!["--shutdown-delay-duration=3s".into()],
        faketime: None,
        clustered: true,
        wrong_kubelet_ca: false,
    })
    .await
    .expect("cluster");
    h.settled(&[0, 1, 2], 3, Duration::from_secs(90)).await.expect("settled");
    h.serving(&[0, 1, 2], Duration::from_secs(90)).await.expect("serving");

    // Prometheus, as the operator would run it from deploy/monitoring.
    let pdir = dir.path().join("prometheus");
    std::fs::create_dir_all(&pdir).unwrap();
    let token = live::install_identity(&h.env.apiserver, &pdir);
    let pods: Vec<(String, std::net::IpAddr)> = (0..3).map(|i| (format!("replica-{i}"), h.ip(i))).collect();
    let sd = pdir.join("endpoints.json");
    std::fs::write(&sd, serde_json::to_string(&live::endpoint_targets(&pods)).unwrap()).unwrap();
    let sm = prom::service_monitor();
    let groups = scale_groups(&prom::rule_groups(), SPEEDUP);
    let rules = prom::write_rules(&pdir, &groups);
    let listen = SocketAddr::new(h.env.block.aux(39).into(), 9090);
    let p = Prometheus::start(&pdir, listen, live::scrape_job(&sm, &sd, &token, SPEEDUP), &rules, SPEEDUP);
    let scrape = live::scrape_interval(&sm, SPEEDUP);
    assert_eq!(live::evaluation_interval(SPEEDUP), scrape, "the bounds below assume rules run at the scrape interval");

    // Every replica is a target, labelled as the operator labels it; the
    // peer Service's endpoints are dropped by the port filter.
    let mut targets = Value::Null;
    let up = sim::wait::until(Duration::from_secs(60), async || {
        targets = p.client.targets().await.unwrap_or_default();
        let active = targets["activeTargets"].as_array().cloned().unwrap_or_default();
        active.len() == 3 && active.iter().all(|t| t["health"] == "up")
    })
    .await;
    assert!(up.is_some(), "targets not all up: {targets:#}\n{}", p.log_tail());
    for t in targets["activeTargets"].as_array().unwrap() {
        let l = &t["labels"];
        assert_eq!((l["job"].as_str(), l["namespace"].as_str()), (Some("metrics-server"), Some("kube-system")), "{t}");
        assert_eq!((l["service"].as_str(), l["endpoint"].as_str()), (Some("metrics-server"), Some("https")), "{t}");
        assert_eq!(l["container"], "metrics-server", "{t}");
        assert!(l["pod"].as_str().is_some_and(|p| p.starts_with("replica-")), "{t}");
        assert_eq!(t["scrapeUrl"].as_str().map(|u| u.starts_with("https://")), Some(true), "{t}");
    }
    let dropped = targets["droppedTargets"].as_array().map_or(0, Vec::len);
    assert_eq!(dropped, 3, "the peer Service's three endpoints are dropped: {targets:#}");

    let alerts = AlertWatch::start(p.client.clone());
    let gauges = GaugeWatch::start((0..3).map(|i| (i, h.env.replica_addr(i))).collect(), h.admin.clone());
    let obs = Observer::start(Targets {
        replicas: (0..3).map(|i| (i, h.env.replica_addr(i), h.env.peer_addr(i))).collect(),
        apiserver: Some(h.env.apiserver.addr()),
        admin: h.admin.clone(),
        views: Some(h.views.clone()),
        hpas: Vec::new(),
    });
    let mut run = Run { h, p, alerts, gauges, groups, scrape, events: vec![], timings: vec![] };
    let mut rng = chaos::rng::Rng::new(7);
    let mut phases: Vec<(&str, u64, u64)> = Vec::new();
    let mut failures = Vec::new();

    // Healthy: nothing fires.
    let healthy_from = now_ms();
    run.h.pass_time(scrape * 12).await;
    let healthy_to = now_ms();
    let fired = run.alerts.fired_between(healthy_from, healthy_to);
    assert!(fired.is_empty(), "alerts firing on a healthy cluster: {fired:?}");
    phases.push(("healthy", healthy_from, healthy_to));

    // kill -9 of a follower: ReplicaDown and MemberDown.
    let t0 = now_ms();
    failures.push(t0);
    let undo = faults::inject(&mut run.h, Fault::Kill(Target::Follower), &mut rng, &mut run.events).await.unwrap();
    let Undo::Restart(ref killed) = undo else { panic!("{undo:?}") };
    let victim = format!("replica-{}", killed[0]);
    let pod = [("pod", victim.as_str())];
    let down = run.fires("HAMetricsServerReplicaDown", &pod, t0, |_| Some(t0)).await;
    let member_down = |g: &GaugeWatch| g.first(t0, |r| r.values().any(|g| g.members_down > 0.0));
    let member = run.fires("HAMetricsServerMemberDown", &[], t0, member_down).await;
    let healed = run.heal(undo).await;
    run.resolves(down, "HAMetricsServerReplicaDown", &pod, healed).await;
    run.resolves(member, "HAMetricsServerMemberDown", &[], healed).await;
    // Until the restart (after it the restarted replica is briefly
    // degraded while it catches up, which the scaled 6 s `for` may see).
    let fired = run.alerts.fired_between(t0, healed);
    for quiet in ["HAMetricsServerDegraded", "HAMetricsServerNoLeader"] {
        assert!(!fired.iter().any(|f| f == quiet), "{quiet} fired on the loss of one replica: {fired:?}");
    }
    run.h.settled(&[0, 1, 2], 3, Duration::from_secs(90)).await.expect("settled after the restart");
    phases.push(("kill -9 follower", t0, now_ms()));

    // Quorum loss: both followers killed; the survivor is the old leader,
    // which keeps its Leader role cut off from the majority.
    let leader = run.h.leader().await.expect("a leader");
    let t0 = now_ms();
    failures.push(t0);
    let mut undos = Vec::new();
    for _ in 0..2 {
        undos.push(faults::inject(&mut run.h, Fault::Kill(Target::Follower), &mut rng, &mut run.events).await.unwrap());
    }
    let survivor = format!("replica-{leader}");
    assert_eq!(run.h.live(), vec![leader], "the leader survives");
    let spod = [("pod", survivor.as_str())];
    let degraded_at = |g: &GaugeWatch| g.first(t0, |r| r.get(&leader).is_some_and(|g| g.degraded == 1.0));
    let degraded = run.fires("HAMetricsServerDegraded", &spod, t0, degraded_at).await;
    let no_leader_at =
        |g: &GaugeWatch| g.first(t0, |r| r.len() == 1 && !r.values().any(|g| g.is_leader == 1.0 && g.degraded == 0.0));
    let no_leader = run.fires("HAMetricsServerNoLeader", &[], t0, no_leader_at).await;
    let mut healed = 0;
    for undo in undos {
        healed = run.heal(undo).await;
    }
    run.resolves(degraded, "HAMetricsServerDegraded", &spod, healed).await;
    run.resolves(no_leader, "HAMetricsServerNoLeader", &[], healed).await;
    run.h.settled(&[0, 1, 2], 3, Duration::from_secs(90)).await.expect("settled after the quorum came back");
    phases.push(("quorum loss", t0, now_ms()));

    // A kubelet stops answering: NodesServedStale and ScrapeErrors for its node.
    let t0 = now_ms();
    let fault = Fault::Kubelet { fault: KubeletFault::Down, nodes: 1 };
    let undo = faults::inject(&mut run.h, fault, &mut rng, &mut run.events).await.unwrap();
    let Undo::KubeletsHealthy(ref broken) = undo else { panic!("{undo:?}") };
    let node = broken[0].clone();
    let kubelet_down = t0;
    let n = [("node", node.as_str())];
    // The failing scrapes start within a resolution; the stale-node ratio
    // needs half its window of them, the error rate a second failure (the
    // first creates the counter).
    let r = resolution.as_millis() as u64;
    let half_window = range_of(&run.groups, "HAMetricsServerNodesServedStale") / 2;
    let stale = run.fires("HAMetricsServerNodesServedStale", &n, t0, |_| Some(t0 + r + half_window)).await;
    let e = [("node", node.as_str()), ("reason", "connect")];
    let errors = run.fires("HAMetricsServerScrapeErrors", &e, t0, |_| Some(t0 + 2 * r)).await;
    let healed = run.heal(undo).await;
    let kubelet_back = healed;
    run.resolves(stale, "HAMetricsServerNodesServedStale", &n, healed).await;
    run.resolves(errors, "HAMetricsServerScrapeErrors", &n, healed).await;
    phases.push(("kubelet down", t0, now_ms()));

    // A planned leave (SIGTERM and restart), so the handover panels have data.
    // Its SLIs are printed, not judged: while points move to a new owner
    // the coverage SLI may miss that the previous owner still serves them.
    let t0 = now_ms();
    run.events.push(Event { at_ms: t0, what: "SIGTERM replica-2".into(), wiped: None });
    faults::terminate(&mut run.h, 2).await.expect("SIGTERM replica-2");
    run.h.spawn(2).expect("restart replica-2");
    run.events.push(Event { at_ms: now_ms(), what: "replica-2 restarted".into(), wiped: None });
    run.h.settled(&[0, 1, 2], 3, Duration::from_secs(90)).await.expect("settled after the planned leave");
    run.h.pass_time(scrape * 3).await;
    phases.push(("planned leave", t0, now_ms()));

    // Every dashboard query has data now.
    let dashboard = prom::dashboard();
    let mut empty = Vec::new();
    let mut nan_only = Vec::new();
    let queries = prom::dashboard_queries();
    for (title, expr) in &queries {
        let q = fill_variables(&dashboard, expr);
        match run.p.client.query(&q, None).await {
            Ok(s) if s.is_empty() => empty.push(format!("{title}: {q}: no series")),
            Ok(s) if s.iter().all(|s| s.value.is_nan()) => nan_only.push(format!("{title}: {q}: only NaN")),
            Ok(_) => {}
            Err(e) => empty.push(format!("{title}: {q}: {e}")),
        }
    }
    assert!(empty.is_empty(), "dashboard queries without data:\n{}", empty.join("\n"));
    assert!(nan_only.is_empty(), "dashboard queries with nothing to draw:\n{}", nan_only.join("\n"));

    // The SLIs Prometheus collected against what the observer saw, per phase.
    let seen = obs.stop().await;
    let mut rec = Recording {
        resolution_ms: resolution.as_millis() as u64,
        nodes: run.h.env.spec.nodes.iter().map(|n| n.name.clone()).collect(),
        pods: run
            .h
            .env
            .spec
            .nodes
            .iter()
            .flat_map(|n| n.pods.iter().map(|p| format!("{}/{}", p.namespace, p.name)))
            .collect(),
        answers: seen.answers,
        views: seen.views,
        events: run.events.clone(),
        ..Recording::default()
    };
    // The broken kubelet's node and pods may vanish while it is down: the
    // coverage SLI counts a kubelet failing on its own as answerable.
    let broken_pods = run.h.env.spec.nodes.iter().filter(|n| n.name == node);
    let broken_pods = broken_pods.flat_map(|n| n.pods.iter().map(|p| format!("{}/{}", p.namespace, p.name)));
    rec.faulted_nodes = std::iter::once(node.clone()).chain(broken_pods).collect();
    rec.may_vanish = rec.faulted_nodes.clone();
    (rec.fault_start_ms, rec.heal_ms) = (kubelet_down, kubelet_back);
    let tol = Tolerance { scrape_interval: scrape, failures, lease: Duration::from_secs(3) };
    let mut agreement: Vec<(&str, u64, Vec<chaos::invariants::Check>)> = Vec::new();
    for (name, from, to) in &phases {
        let slis = chaos::observe_prometheus::read(&run.p.client, *from, *to, scrape).await.expect("SLIs");
        agreement.push((name, to - from, chaos::observe_prometheus::checks(&slis, &rec, &tol)));
    }

    println!(
        "live monitoring test: {:.0} s, scrape interval {scrape:?}, rules {SPEEDUP}x faster",
        started.elapsed().as_secs_f64()
    );
    println!("{:<58} {:>9} {:>9} {:>9} {:>7} {:>9}", "alert", "condition", "pending", "firing", "for", "resolved");
    for t in &run.timings {
        println!(
            "{:<58} {:>7}ms {:>7}ms {:>7}ms {:>5}ms {:>7}ms",
            t.alert, t.condition, t.pending, t.firing, t.for_ms, t.resolved_after_heal
        );
    }
    for (name, _, checks) in &agreement {
        for c in checks {
            println!(
                "{name:<17} {:<24} {} {:?} {:?}",
                c.name,
                if c.pass { "pass" } else { "FAIL" },
                c.figures,
                c.detail
            );
        }
    }
    let killed: std::collections::BTreeMap<&str, usize> =
        [("healthy", 0), ("kill -9 follower", 1), ("quorum loss", 2), ("kubelet down", 0)].into_iter().collect();
    for (name, ms, checks) in agreement.iter().filter(|(name, _, _)| killed.contains_key(name)) {
        let a = checks.iter().find(|c| c.name == "prometheus_agreement").unwrap();
        assert!(a.pass, "{name}: Prometheus' SLIs disagree with the observer: {a:?}");
        // The observer is the only client: both count the same answers,
        // give or take the requests of one scrape interval, and what a
        // killed replica answered after its last scrape.
        let (prom, observed) = (a.figures["answers_prometheus"], a.figures["answers_observer"]);
        let per_scrape = observed / (*ms as f64 / 1000.0) * scrape.as_secs_f64();
        let slack = per_scrape * (1 + killed[name]) as f64;
        assert!(
            (prom - observed).abs() <= slack.max(5.0),
            "{name}: Prometheus counted {prom:.1} answers, the observer {observed} (allowed: {slack:.1})"
        );
    }
    run.alerts.stop().await;
    run.gauges.stop().await;
    run.h.shutdown().await;
}
