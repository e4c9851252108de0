//! The server process: builds every part from the [`Config`], wires them
//! together and runs until SIGTERM or SIGINT. This is the imperative shell:
//! decisions live in the modules it calls, except the `ring` readiness
//! check ([`AnswerableCheck`]), which is wiring of their answers.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use anyhow::Context;
use axum::Router;
use axum::response::IntoResponse;
use axum::routing::get;
use http::{HeaderValue, header};
use tokio_util::sync::CancellationToken;

use crate::config::Config;
use crate::discovery::{Discovery, NodeFilter, ScrapeTarget, TargetError};
use crate::health::{HealthChecks, HealthInputs, TickClock};
use crate::model::{Inventory, Local, MetricsReader, UsageSource};
use crate::ownership::Ownership;
use crate::peer::routes::PeerState;
use crate::query::ClusterSource;
use crate::replica::{Manager, NodeNames, Outbox, PointsIntake, Replicas};
use crate::scrape::client::credentials::{self, ClusterCredentials};
use crate::scrape::client::{KubeletClient, KubeletClientConfig};
use crate::scrape::scheduler::{self, SchedulerSettings, Targets};
use crate::scrape::scraper::{KubeletScraper, ScrapeSink};
use crate::selfmetrics::SelfMetrics;
use crate::store::Store;
use tls::source::{CertSource, DEFAULT_RELOAD_INTERVAL};
use tokio::sync::watch;

/// Runs one replica until a termination signal.
pub async fn run(config: Config) -> anyhow::Result<()> {
    for note in &config.compat_notes {
        tracing::info!(flag = %note.flag, "{}", note.message);
    }
    for warning in &config.warnings {
        tracing::warn!("{warning}");
    }
    let started = std::time::Instant::now();
    let shutdown = CancellationToken::new();
    let kube_config = kube_config(&config).await?;
    let client = crate::kube_client::client(kube_config.clone()).context("building the Kubernetes client")?;
    let node_filter: NodeFilter = {
        let selector = config.node_selector.clone();
        Arc::new(move |labels| selector.matches(labels))
    };
    let discovery = Discovery::start(client.clone(), node_filter, shutdown.child_token());
    let mut self_metrics = SelfMetrics::new(config.resolution.as_secs_f64());
    let raft_gauges = config
        .cluster
        .as_ref()
        .map(|_| crate::member::gauges::RaftMetrics::default().register(self_metrics.registry_mut()));
    let metrics = Arc::new(self_metrics);
    let store = Arc::new(Store::new(config.resolution, config.max_staleness, metrics.clone()));
    let kubelet_client =
        KubeletClient::new(kubelet_client_config(&config, &kube_config)?).context("building the kubelet client")?;
    let (auth, _auth_task) = crate::auth::kube::start(&config.auth, client.clone(), shutdown.child_token())
        .await
        .context("setting up delegated authentication")?;
    let audit_stop = CancellationToken::new();
    let (auditor, audit_tasks) = match &config.audit {
        Some(settings) => {
            let (a, tasks) = crate::audit::Auditor::start(settings, audit_stop.clone()).await?;
            (Some(a), tasks)
        }
        None => (None, Vec::new()),
    };
    let tick = Arc::new(TickClock::default());
    let shutting_down = Arc::new(AtomicBool::new(false));
    let inventory: Arc<dyn Inventory> = Arc::new(discovery.clone());

    // In a cluster: the Raft node, the ownership it commits, the replica
    // manager moving points between holders, and the peer port answering
    // the other replicas; otherwise a single replica that owns every node
    // and answers from its own store.
    let d = discovery.clone();
    let names: NodeNames = Arc::new(move || d.node_names());
    let (catch_up_tx, catch_up) = tokio::sync::mpsc::channel(64);
    let mut manager = None;
    // In a cluster, the control plane's own thread (see member::control);
    // dropped last, after the node has stopped.
    let mut control = None;
    let (raft_node, ownership, usage, sink): (_, _, Arc<dyn UsageSource>, Arc<dyn ScrapeSink>) =
        match (&config.cluster, raft_gauges) {
            (Some(settings), Some(gauges)) => {
                // The peer credentials first: with --peer-ca-dir the replica waits
                // for the mounted CA Secret before Raft.
                let peer_tls =
                    crate::peer::credentials::start(settings, &config.serving.tls_policy, shutdown.child_token())
                        .await
                        .context("setting up the peer port's certificates")?;
                let control = control.insert(
                    crate::member::control::ControlRuntime::start().context("starting the control plane's thread")?,
                );
                let node = crate::member::start_node(settings, &peer_tls, control, shutdown.child_token()).await?;
                let ownership = crate::member::follow_ownership(node.clone(), metrics.clone(), shutdown.child_token());
                let local = crate::query::local::Local {
                    store: store.clone(),
                    inventory: inventory.clone(),
                    ownership: ownership.clone(),
                };
                let (delivered_tx, delivered) = tokio::sync::mpsc::channel(1024);
                let outbox = Outbox::new(
                    node.clone(),
                    metrics.clone(),
                    ownership.clone(),
                    delivered_tx,
                    crate::replica::outbox::QUEUE_CAPACITY,
                    shutdown.child_token(),
                );
                let replicas = Arc::new(Replicas { store: store.clone(), outbox, ownership: ownership.clone() });
                let m = Arc::new(Manager::new(
                    node.clone(),
                    replicas.clone(),
                    names.clone(),
                    catch_up_tx,
                    delivered,
                    config.resolution,
                    metrics.clone(),
                ));
                tokio::spawn(m.clone().run(shutdown.child_token()));
                manager = Some(m);
                let intake =
                    PointsIntake { store: store.clone(), ownership: ownership.clone(), metrics: metrics.clone() };
                let routes = crate::peer::routes::routes(PeerState {
                    node: node.clone(),
                    answers: Arc::new(local.clone()),
                    intake: Arc::new(intake),
                });
                crate::member::serve(
                    settings,
                    &peer_tls,
                    node.clone(),
                    ownership.clone(),
                    names.clone(),
                    routes,
                    gauges,
                    control,
                    shutdown.child_token(),
                )
                .await?;
                spawn_scrape_health(
                    node.clone(),
                    discovery.clone(),
                    tick.clone(),
                    config.resolution,
                    shutdown.child_token(),
                );
                let pause = Arc::new(crate::query::pause::PauseClock::default());
                tokio::spawn(pause.clone().run(shutdown.child_token()));
                let source = ClusterSource::new(
                    node.clone(),
                    local,
                    ownership.clone(),
                    settings.fanout_deadline,
                    config.resolution,
                    metrics.clone(),
                    pause,
                );
                (Some(node), ownership, Arc::new(source), replicas)
            }
            _ => {
                drop(catch_up_tx);
                let fixed = watch::channel(Arc::new(Ownership::single())).1;
                (None, fixed, Arc::new(Local(store.clone())), store.clone())
            }
        };

    let mut scraper = KubeletScraper::new(
        kubelet_client,
        if config.kubelet.completely_insecure { "http" } else { "https" },
        sink,
        metrics.clone(),
        config.resolution,
    );
    if let Some(node) = &raft_node {
        // The kubelets this replica cannot reach go out with its heartbeats;
        // the leader commits them and the next holder scrapes them.
        let (node, m) = (node.clone(), metrics.clone());
        scraper = scraper.reporting(
            crate::scrape::failing::FAILING_AFTER,
            Arc::new(move |unreached: Vec<String>| {
                m.kubelets_unreached.set(unreached.len() as i64);
                node.set_failing(unreached);
            }),
        );
    }
    let failing = scraper.failing();
    let answerable = AnswerableCheck {
        node: raft_node.clone(),
        ownership: ownership.clone(),
        store: store.clone(),
        failing: failing.clone(),
        names: names.clone(),
        metrics: metrics.clone(),
        passed: Arc::new(AtomicBool::new(false)),
    };
    let ring_check = raft_node.as_ref().map(|_| {
        let check = answerable.clone();
        Arc::new(move || check.run()) as Arc<dyn Fn() -> Result<String, String> + Send + Sync>
    });
    let raft_check = raft_node.as_ref().map(|node| {
        let node = node.clone();
        Arc::new(move || node.fault().map(|f| f.to_string())) as crate::health::RaftFault
    });
    tokio::spawn(answerable.publish_slis(config.resolution, shutdown.child_token()));
    // metrics-server 0.9 (its #1818): ready once both node and pod metrics
    // can be served. In a cluster a replica that owns no node answers by
    // fan-out (the `ring` check says whether it can), and the store holds
    // the copies of other owners' nodes beside its own.
    let storage_ready: Arc<dyn Fn() -> bool + Send + Sync> = {
        let (s, m, clustered) = (store.clone(), metrics.clone(), ring_check.is_some());
        Arc::new(move || crate::health::storage_ready(s.ready(), clustered, m.owned_nodes.get(), s.ready()))
    };
    let gate = crate::serving::ShutdownGate::default();
    let chain = crate::serving::Chain {
        requests: config.requests.clone(),
        auth,
        audit: auditor,
        gate: gate.clone(),
        metrics: metrics.clone(),
    };
    let health = HealthParts {
        storage_ready,
        ring: ring_check,
        raft: raft_check,
        tick: tick.clone(),
        shutting_down: shutting_down.clone(),
        started,
    };
    let app = app_router(&config, &discovery, &inventory, usage, health, &metrics, chain);
    // The API stops before this replica leaves Raft (below): a peer refuses
    // the fan-out of a member it no longer knows, so a request answered
    // after the leave would come back without the others' parts.
    let api_stop = shutdown.child_token();
    let serving = serve_api(&config, app, api_stop.clone())?;
    spawn_pruning(store.clone(), config.resolution, shutdown.child_token());
    let scrape =
        spawn_scraping(&config, scraper, discovery, ownership, catch_up, metrics.clone(), tick, shutdown.child_token());

    // A replica whose Raft node failed (its store, see `raft::Fault`) cannot
    // recover in place: once the cluster has committed it Down, it exits
    // non-zero so the kubelet restarts it on its data dir.
    let fault = match &raft_node {
        Some(node) => tokio::select! {
            _ = wait_for_signal() => None,
            fault = node.failed() => Some(fault),
        },
        None => {
            wait_for_signal().await;
            None
        }
    };
    match &fault {
        Some(f) => tracing::error!(fault = %f, "the raft node failed; stopping so this replica restarts"),
        None => tracing::info!("termination signal received; failing readiness and draining"),
    }
    shutting_down.store(true, Ordering::Release);
    // Leave the ring make before break: Draining, the moved nodes' points
    // handed to their new owners, and this replica answering until each new
    // owner has served a fresh sample.
    let leaving = match (&raft_node, &config.cluster, &manager, &fault) {
        (Some(node), Some(settings), Some(manager), None) => {
            let handover = crate::replica::leave(manager, config.shutdown.handover_timeout).await;
            tracing::info!(moved = handover.moved, confirmed = handover.confirmed, "handover done");
            Some((node, settings))
        }
        _ => None,
    };
    if !config.shutdown.delay.is_zero() {
        // An operator-configured grace period, not synchronisation: load
        // balancers keep sending requests until they see /readyz fail.
        tokio::time::sleep(config.shutdown.delay).await;
    }
    if config.shutdown.send_retry_after {
        // --shutdown-send-retry-after: new requests get 429 + Retry-After
        // while those in flight finish (each within --request-timeout).
        gate.close();
        let within = config.requests.request_timeout + Duration::from_secs(1);
        if !gate.drained(within).await {
            tracing::warn!(in_flight = gate.in_flight(), "requests still in flight after --request-timeout");
        }
    }
    // The API stops and drains while this replica is still a member, so the
    // requests in flight still get their fan-out answered.
    api_stop.cancel();
    if let Some(serving) = serving {
        let bound = config.shutdown.in_flight_drain + Duration::from_secs(1);
        match tokio::time::timeout(bound, serving).await {
            Ok(Ok(Err(e))) => tracing::warn!(error = %e, "server stopped with an error"),
            Err(_) => {
                tracing::warn!(drain = ?config.shutdown.in_flight_drain, "in-flight requests did not finish in time")
            }
            _ => {}
        }
    }
    if let Some((node, settings)) = leaving {
        // After a restart the same data dir comes back as the same member;
        // when the replica count was lowered, it leaves Raft too.
        let mode = crate::member::leave::leave_mode(&client, settings).await;
        match tokio::time::timeout(config.shutdown.leave_timeout, node.leave(mode)).await {
            Ok(Ok(())) => tracing::info!(?mode, "left the ring"),
            Ok(Err(e)) => tracing::warn!(error = %e, "could not leave the ring gracefully"),
            Err(_) => tracing::warn!("leaving the ring timed out"),
        }
    }
    shutdown.cancel();
    let _ = scrape.await;
    if let Some(node) = raft_node {
        node.shutdown().await;
    }
    // The audit backends last, so the drained requests' events are written.
    audit_stop.cancel();
    for task in audit_tasks {
        let _ = task.await;
    }
    if let Some(f) = fault {
        return Err(anyhow::Error::new(f).context("the replica's raft node failed"));
    }
    tracing::info!("stopped");
    drop(control);
    Ok(())
}

/// Binds the API port with the serving flags and serves `app` on it until
/// `stop`; `None` with `--secure-port=0`.
fn serve_api(
    config: &Config,
    app: Router,
    stop: CancellationToken,
) -> anyhow::Result<Option<tokio::task::JoinHandle<std::io::Result<()>>>> {
    let serving = &config.serving;
    if !serving.enabled() {
        tracing::info!("--secure-port=0: not serving the API");
        return Ok(None);
    }
    let policy = serving.tls_policy.clone();
    let sni = tls::sni::SniCertificates::load(
        &serving
            .sni_cert_keys
            .iter()
            .map(|n| tls::sni::SniSpec { cert: n.cert.clone(), key: n.key.clone(), names: n.names.clone() })
            .collect::<Vec<_>>(),
        &policy.provider(),
    )
    .context("--tls-sni-cert-key")?;
    let http1_only = serving.disable_http2;
    let by_ip = Arc::new(std::sync::Mutex::new(std::collections::HashMap::new()));
    let built = by_ip.clone();
    let source = CertSource::new(serving.cert_files.clone(), serving.cert_dir.clone(), serving.bind_address);
    let (tls, _reloader) = source.start(
        move |ck| {
            let (mut config, ip_configs) = tls::config::api_server_config_with_sni(ck.chain, ck.key, &sni, &policy)?;
            if http1_only {
                config.alpn_protocols = vec![b"http/1.1".to_vec()];
            }
            *built.lock().unwrap_or_else(|p| p.into_inner()) = ip_configs;
            Ok(config)
        },
        DEFAULT_RELOAD_INTERVAL,
        stop.child_token(),
    )?;
    let ip_configs = std::mem::take(&mut *by_ip.lock().unwrap_or_else(|p| p.into_inner()));
    tls.set_local_ip_configs(ip_configs);
    let addr = serving.addr();
    let listener = tls::serve::bind(addr, serving.reuse_port).with_context(|| format!("binding {addr}"))?;
    tracing::info!(%addr, "serving metrics.k8s.io");
    let options = tls::ServeOptions {
        http2: !serving.disable_http2,
        http2_max_streams: Some(serving.http2_max_streams),
        // Open to any client: h2's guard against rapid resets as it is.
        http2_max_pending_accept_reset_streams: None,
        goaway_chance: config.requests.goaway_chance,
        limits: tls::ServeLimits::default(),
        drain_timeout: config.shutdown.in_flight_drain,
    };
    Ok(Some(tokio::spawn(tls::serve_with(listener, tls, app, options, stop))))
}

/// What the probes look at.
struct HealthParts {
    storage_ready: Arc<dyn Fn() -> bool + Send + Sync>,
    ring: Option<Arc<dyn Fn() -> Result<String, String> + Send + Sync>>,
    raft: Option<crate::health::RaftFault>,
    tick: Arc<TickClock>,
    shutting_down: Arc<AtomicBool>,
    started: std::time::Instant,
}

/// Every route of the API port behind the request-handling chain
/// (`serving`: deadline, authentication, audit, in-flight limits,
/// authorization, ...).
fn app_router(
    config: &Config,
    discovery: &Discovery,
    inventory: &Arc<dyn Inventory>,
    usage: Arc<dyn UsageSource>,
    health: HealthParts,
    metrics: &Arc<SelfMetrics>,
    chain: crate::serving::Chain,
) -> Router {
    let api = crate::api::router(crate::api::ApiState {
        inventory: inventory.clone(),
        metrics: usage,
        self_metrics: metrics.clone(),
        clock: Arc::new(crate::model::now_nanos),
        build_version: format!("v{}", env!("CARGO_PKG_VERSION")),
    });
    let (d, d2) = (discovery.clone(), discovery.clone());
    let health = crate::health::router(Arc::new(HealthChecks::standard(HealthInputs {
        store_ready: health.storage_ready,
        informers_synced: Arc::new(move || d.synced()),
        pods_informer_synced: Arc::new(move || d2.pods_synced()),
        tick: health.tick,
        resolution: config.resolution,
        shutting_down: health.shutting_down,
        ring: health.ring,
        raft: health.raft,
        livez_grace: config.requests.livez_grace_period,
        started: health.started,
    })));
    let m = metrics.clone();
    let routes =
        Router::new().merge(api).merge(health).route("/metrics", get(move || async move { metrics_response(&m) }));
    crate::serving::guard(routes, chain)
}

/// The `ring` readiness check of a replica in a cluster: not ready before it
/// can answer for every node it knows — from its own points (or a backup, or
/// a kubelet failing on its own), or from an owner it can reach. Once passed
/// it stays passed, so a node added later does not flap readiness.
#[derive(Clone)]
struct AnswerableCheck {
    node: Option<Arc<raft::Node>>,
    ownership: watch::Receiver<Arc<Ownership>>,
    store: Arc<Store>,
    failing: crate::scrape::scraper::Failing,
    names: NodeNames,
    metrics: Arc<SelfMetrics>,
    passed: Arc<AtomicBool>,
}

impl AnswerableCheck {
    /// Whether member `id` was heard from within the lease.
    fn reachable(&self, id: raft::NodeId) -> bool {
        self.node.as_ref().is_some_and(|node| node.reachable(id))
    }

    /// Nodes known, and those this replica can answer for now: from its
    /// own points (scraped or a copy), as a kubelet failing on its own, or
    /// from another holder it can reach.
    fn count(&self, o: &Ownership) -> (usize, usize) {
        let now = crate::model::now_nanos();
        let failing = self.failing.lock().map(|f| f.clone()).unwrap_or_default();
        let names = (self.names)();
        let answerable = names
            .iter()
            .filter(|n| {
                self.store.node(n, now).is_some()
                    || failing.contains(*n)
                    || o.holders(n).as_slice().iter().any(|h| Some(*h) != o.me && self.reachable(*h))
            })
            .count();
        (names.len(), answerable)
    }

    fn run(&self) -> Result<String, String> {
        let o = self.ownership.borrow().clone();
        if !self.passed.load(Ordering::Acquire) {
            if let Some(why) = waits_to_be_active(&o, &|id| self.reachable(id)) {
                return Err(why);
            }
            let (known, answerable) = self.count(&o);
            if answerable < known {
                return Err(format!("{} of {known} nodes cannot be answered yet", known - answerable));
            }
            // Every /readyz runs every check, so this one also runs before
            // the node informer has listed: "every node" is then none, and
            // latching on it would pass for good a replica that cannot
            // answer for any node once they are known.
            if known > 0 {
                self.passed.store(true, Ordering::Release);
            }
        }
        ring_readiness(&o, self.metrics.owned_nodes.get())
    }

    /// Sets the coverage and freshness SLIs, every resolution until `stop`.
    async fn publish_slis(self, resolution: Duration, stop: CancellationToken) {
        let mut every = tokio::time::interval(resolution);
        loop {
            tokio::select! {
                _ = stop.cancelled() => return,
                _ = every.tick() => {}
            }
            let o = self.ownership.borrow().clone();
            let (known, answerable) = self.count(&o);
            // Until it could answer for every node once (readiness), no
            // client is sent here: report no coverage (0 of 0, which the
            // coverage SLI skips) rather than a gap at every restart.
            let serving = self.passed.load(Ordering::Acquire) || answerable >= known;
            self.metrics.nodes_known.set(if serving { known as i64 } else { 0 });
            self.metrics.nodes_answerable.set(if serving { answerable as i64 } else { 0 });
            let now = crate::model::now_nanos();
            for n in (self.names)().iter().filter(|n| o.scrapes(n)) {
                if let Some(t) = self.store.newest_sample(n) {
                    self.metrics.node_freshness.observe(now.saturating_sub(t).max(0) as f64 / 1e9);
                }
            }
        }
    }
}

/// Why a replica that has not been ready yet waits before it is: it is a
/// member outside the ring (joining, or back from a restart) while another
/// Active member it can reach serves. A rollout takes the next replica down
/// once this one is ready (a StatefulSet's rolling update, paced by
/// readiness): were a joiner ready before it is Active, three quick
/// restarts would leave no member Active, and no member scraping, until
/// the leader makes the joiners Active. With no other Active member to
/// serve (a cold start, no quorum), readiness is only that it can answer.
fn waits_to_be_active(o: &Ownership, reachable: &dyn Fn(raft::NodeId) -> bool) -> Option<String> {
    let me = o.me?;
    o.ring()?;
    let state = o.members.get(&me).map(|m| m.state);
    if state == Some(raft::MemberState::Active) {
        return None;
    }
    let serving = o.active().filter(|id| *id != me && reachable(*id)).count();
    let state = state.map_or("not a member yet".to_string(), |s| s.to_string());
    (serving > 0)
        .then(|| format!("{state} at epoch {}: waiting to be made Active ({serving} Active members serve)", o.epoch))
}

/// What the `ring` check's verbose line says.
fn ring_readiness(o: &Ownership, owned: i64) -> Result<String, String> {
    let degraded = match o.fallback {
        Some(why) => format!("; degraded ({why}): also scraping for {} unreachable members", o.unreachable.len()),
        None => String::new(),
    };
    Ok(match &o.mode {
        crate::ownership::Mode::Ring(_) => format!("epoch {}, {owned} nodes owned{degraded}", o.epoch),
        crate::ownership::Mode::NoRing(_) if o.joining => "waiting for the ring (joining): scraping nothing yet".into(),
        crate::ownership::Mode::NoRing(why) => format!("epoch {}, no ring ({why}): scraping every node", o.epoch),
        crate::ownership::Mode::Single => "single replica".to_string(),
    })
}

/// Liveness heartbeats carry whether this replica can scrape: its
/// informers are synced and its scrape loop is not stuck.
fn spawn_scrape_health(
    node: Arc<raft::Node>,
    discovery: Discovery,
    tick: Arc<TickClock>,
    resolution: Duration,
    stop: CancellationToken,
) {
    tokio::spawn(async move {
        let mut every = tokio::time::interval(Duration::from_millis(500));
        loop {
            tokio::select! {
                _ = stop.cancelled() => break,
                _ = every.tick() => {
                    let timely = crate::health::collection_timely(&tick, resolution, crate::model::now_nanos()).is_ok();
                    node.set_scrape_healthy(discovery.synced() && timely);
                }
            }
        }
    });
}

/// Starts the scrape loop once the informers have synced, as metrics-server
/// does before its first scrape.
#[allow(clippy::too_many_arguments)] // the shell wires every part once
fn spawn_scraping(
    config: &Config,
    scraper: KubeletScraper,
    discovery: Discovery,
    ownership: watch::Receiver<Arc<Ownership>>,
    catch_up: tokio::sync::mpsc::Receiver<Vec<String>>,
    metrics: Arc<SelfMetrics>,
    tick: Arc<TickClock>,
    stop: CancellationToken,
) -> tokio::task::JoinHandle<()> {
    let settings = SchedulerSettings { resolution: config.resolution, concurrency: config.kubelet.concurrency };
    let kubelet = config.kubelet.clone();
    tokio::spawn(async move {
        tokio::select! {
            _ = stop.cancelled() => return,
            _ = discovery.wait_synced() => {}
        }
        tracing::info!("informers synced; scraping");
        let targets = Arc::new(DiscoveryTargets { discovery, kubelet });
        scheduler::run(settings, targets, Arc::new(scraper), ownership, catch_up, tick, metrics, stop).await;
    })
}

/// Drops, every resolution, the points no longer refreshed (nodes moved
/// away, copies whose owner stopped sending) once past the staleness bound.
fn spawn_pruning(store: Arc<Store>, resolution: Duration, stop: CancellationToken) {
    tokio::spawn(async move {
        let mut every = tokio::time::interval(resolution);
        loop {
            tokio::select! {
                _ = stop.cancelled() => return,
                _ = every.tick() => {
                    store.prune(crate::model::now_nanos());
                }
            }
        }
    });
}

struct DiscoveryTargets {
    discovery: Discovery,
    kubelet: crate::config::KubeletSettings,
}

impl Targets for DiscoveryTargets {
    fn current(&self) -> Vec<Result<ScrapeTarget, TargetError>> {
        self.discovery.targets(&self.kubelet)
    }
}

fn metrics_response(metrics: &SelfMetrics) -> axum::response::Response {
    let mut r = metrics.encode().into_response();
    r.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/openmetrics-text; version=1.0.0; charset=utf-8"),
    );
    r
}

/// Resolves on SIGTERM or SIGINT.
pub async fn wait_for_signal() {
    use tokio::signal::unix::{SignalKind, signal};
    let mut term = signal(SignalKind::terminate()).ok();
    let term = async {
        match term.as_mut() {
            Some(s) => {
                s.recv().await;
            }
            None => std::future::pending::<()>().await,
        }
    };
    tokio::select! {
        _ = term => {}
        _ = tokio::signal::ctrl_c() => {}
    }
}

/// The kube client configuration: `--kubeconfig`, else in-cluster, else `$KUBECONFIG`.
async fn kube_config(config: &Config) -> anyhow::Result<kube::Config> {
    match &config.kubeconfig {
        Some(path) => {
            let kc = kube::config::Kubeconfig::read_from(path)
                .with_context(|| format!("--kubeconfig {}: cannot read it", path.display()))?;
            kube::Config::from_custom_kubeconfig(kc, &kube::config::KubeConfigOptions::default())
                .await
                .with_context(|| format!("--kubeconfig {}: not a usable kubeconfig", path.display()))
        }
        None => kube::Config::infer()
            .await
            .context("no --kubeconfig given and neither in-cluster credentials nor $KUBECONFIG were usable"),
    }
}

/// The kubelet client settings: the flags, with the CA and token defaulted
/// from the cluster credentials as metrics-server does.
fn kubelet_client_config(config: &Config, kube: &kube::Config) -> anyhow::Result<KubeletClientConfig> {
    let found = ClusterCredentials {
        kube_ca_pem: kube.root_cert.as_ref().map(|roots| tls::pki::certs_to_pem(roots).into_bytes()),
        kube_token_file: kube.auth_info.token_file.as_ref().map(PathBuf::from),
        ..ClusterCredentials::default()
    }
    .with_service_account(Path::new(credentials::SA_DIR));
    let mut c = credentials::client_config(&config.kubelet, &found)?;
    c.local_address = Some(config.serving.bind_address).filter(|ip| !ip.is_unspecified());
    if c.token_file.is_none() && c.client_cert.is_none() && !config.kubelet.completely_insecure {
        tracing::warn!(
            "no kubelet credentials: neither --kubelet-token-file, a token file in the kubeconfig, \
             a service-account token nor --kubelet-client-certificate; kubelets will answer 401"
        );
    }
    Ok(c)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Mutex;

    #[test]
    fn the_ring_check_does_not_latch_before_any_node_is_known() {
        let known: Arc<Mutex<Vec<String>>> = Arc::default();
        let k = known.clone();
        let metrics = Arc::new(SelfMetrics::new(15.0));
        let (_tx, ownership) = watch::channel(Arc::new(Ownership::single()));
        let store = Arc::new(Store::new(Duration::from_secs(15), Duration::from_secs(30), metrics.clone()));
        let check = AnswerableCheck {
            node: None,
            ownership,
            store,
            failing: Arc::default(),
            names: Arc::new(move || k.lock().unwrap().clone()),
            metrics,
            passed: Arc::new(AtomicBool::new(false)),
        };
        assert!(check.run().is_ok(), "no node known: nothing to answer for");
        known.lock().unwrap().push("node-1".into());
        let err = check.run().unwrap_err();
        assert!(err.contains("1 of 1 nodes"), "{err}");
    }

    /// Member 1 of three, in `state`, with members 2 and 3 Active.
    fn member_one(state: raft::MemberState) -> Ownership {
        let mut s = raft::fixture::replicated(3, raft::state::RingParams::CURRENT, 2);
        if state != raft::MemberState::Active {
            assert_eq!(s.apply(&raft::Command::SetStates(vec![(1, state)])).refused, None);
        }
        Ownership::from_state(1, &s)
    }

    #[test]
    fn a_member_outside_the_ring_is_not_ready_while_an_active_member_it_reaches_serves() {
        use raft::MemberState::*;
        for state in [Joining, Down, Draining] {
            let o = member_one(state);
            let why = waits_to_be_active(&o, &|_| true).unwrap_or_else(|| panic!("{state}: ready"));
            assert!(why.contains("waiting to be made Active (2 Active members serve)"), "{why}");
            assert_eq!(waits_to_be_active(&o, &|id| id == 3).map(|w| w.contains("(1 Active")), Some(true));
            assert_eq!(waits_to_be_active(&o, &|_| false), None, "{state}: nobody else serves, so it may");
        }
        assert_eq!(waits_to_be_active(&member_one(Active), &|_| true), None);
        let mut no_ring = member_one(Joining);
        no_ring.mode = crate::ownership::Mode::NoRing(crate::ownership::RingError::NotCommitted);
        assert_eq!(waits_to_be_active(&no_ring, &|_| true), None, "no ring: nothing to wait for");
        assert_eq!(waits_to_be_active(&Ownership::single(), &|_| true), None);
    }
}
