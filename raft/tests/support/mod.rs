//! Test support: a loopback address block from the simulator's plan
//! (`sim::addr::Block`, so parallel test processes never collide), a fault
//! layer that cuts chosen peers off, and an in-process cluster of
//! nodes over the real HTTP transport.

#![allow(dead_code)]

pub mod tls;

use std::collections::BTreeSet;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::extract::{Request, State};
use axum::http::StatusCode;
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use raft::network::wire::FROM_HEADER;
use raft::{ClusterState, ClusterView, MemberState, Node, NodeId, PeerClient, RaftConfig, Role};
use sim::addr::Block;
use tokio::task::JoinHandle;
use tokio_util::either::Either;
use tokio_util::sync::CancellationToken;

/// Per-node fault switches, checked on the node's incoming requests.
#[derive(Default)]
pub struct Fault {
    /// Refuse everything (the node is cut off or dead).
    pub isolated: AtomicBool,
    /// Refuse requests from these senders.
    pub blocked: Mutex<BTreeSet<NodeId>>,
}

async fn fault_layer(State(f): State<Arc<Fault>>, req: Request, next: Next) -> Response {
    let from =
        req.headers().get(FROM_HEADER).and_then(|v| v.to_str().ok()).and_then(|s| u64::from_str_radix(s, 16).ok());
    let blocked = f.isolated.load(Ordering::SeqCst) || from.is_some_and(|id| f.blocked.lock().unwrap().contains(&id));
    if blocked {
        return (StatusCode::SERVICE_UNAVAILABLE, "fault injected").into_response();
    }
    next.run(req).await
}

pub fn init_tracing() {
    let _ = tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| "openraft=error,raft=info".into()),
        )
        .with_test_writer()
        .try_init();
}

/// One replica slot of the test cluster.
pub struct Replica {
    pub name: String,
    pub addr: SocketAddr,
    pub dir: PathBuf,
    pub fault: Arc<Fault>,
    /// How the replica's store reaches its files (tests inject storage faults here).
    pub disk: raft::store::Disk,
    pub node: Option<Node>,
    server: Option<JoinHandle<()>>,
}

/// An in-process cluster over the real HTTP transport on loopback.
pub struct Cluster {
    pub block: Block,
    pub tmp: tempfile::TempDir,
    pub replicas: Vec<Replica>,
    pub initial: Vec<(String, String)>,
    pub voters: usize,
    pub tune: fn(&mut RaftConfig),
    /// When set, replicas talk HTTP/2 over mutual TLS with this CA.
    pub pki: Option<tls::Pki>,
}

pub const PORT: u16 = 7400;

impl Cluster {
    /// `slots` replica slots; the first `initial` are the declared initial members.
    pub fn new(slots: usize, initial: usize, voters: usize) -> Cluster {
        init_tracing();
        let block = Block::acquire().expect("a free loopback address block");
        let tmp = tempfile::tempdir().expect("tempdir");
        let replicas: Vec<Replica> = (0..slots)
            .map(|i| Replica {
                name: format!("r{i}"),
                addr: SocketAddr::new(block.replica(i).into(), PORT),
                dir: tmp.path().join(format!("r{i}")),
                fault: Arc::new(Fault::default()),
                disk: raft::store::Disk::default(),
                node: None,
                server: None,
            })
            .collect();
        let initial = replicas.iter().take(initial).map(|r| (r.name.clone(), r.addr.to_string())).collect();
        Cluster { block, tmp, replicas, initial, voters, tune: |_| {}, pki: None }
    }

    pub fn config(&self, i: usize) -> RaftConfig {
        let r = &self.replicas[i];
        let mut c =
            RaftConfig::new("test-cluster", &r.name, r.addr.to_string(), format!("{}:7401", r.addr.ip()), &r.dir)
                .with_initial_members(self.initial.clone());
        c.voters = self.voters;
        (self.tune)(&mut c);
        c
    }

    pub async fn start(&mut self, i: usize) {
        let config = self.config(i);
        let (client, acceptor) = match &self.pki {
            Some(pki) => {
                let leaf = pki.leaf(&self.replicas[i].name, self.replicas[i].addr.ip());
                let server = Arc::new(pki.server_config(&leaf));
                let client = PeerClient::tls(pki.client_config(Some(&leaf)));
                (client, Some(tokio_rustls::TlsAcceptor::from(server)))
            }
            None => (PeerClient::plain(), None),
        };
        let disk = self.replicas[i].disk.clone();
        let node = Node::start_with(config, client, CancellationToken::new(), disk).await.expect("node starts");
        let r = &mut self.replicas[i];
        r.fault.isolated.store(false, Ordering::SeqCst);
        let router = node.routes().layer(axum::middleware::from_fn_with_state(r.fault.clone(), fault_layer));
        let listener = bind_retry(r.addr).await;
        r.server = Some(tokio::spawn(serve(listener, router, acceptor)));
        r.node = Some(node);
    }

    /// Starts several replicas at the same moment.
    pub async fn start_all(&mut self, which: &[usize]) {
        for &i in which {
            self.start(i).await;
        }
    }

    /// Abrupt stop: no leave; the replica stops answering at once.
    pub async fn kill(&mut self, i: usize) {
        let r = &mut self.replicas[i];
        r.fault.isolated.store(true, Ordering::SeqCst);
        if let Some(s) = r.server.take() {
            s.abort();
            let _ = s.await;
        }
        if let Some(n) = r.node.take() {
            n.shutdown().await;
        }
    }

    pub fn wipe(&self, i: usize) {
        let _ = std::fs::remove_dir_all(&self.replicas[i].dir);
    }

    pub fn node(&self, i: usize) -> &Node {
        self.replicas[i].node.as_ref().expect("replica is running")
    }

    pub fn running(&self) -> impl Iterator<Item = (usize, &Node)> {
        self.replicas.iter().enumerate().filter_map(|(i, r)| r.node.as_ref().map(|n| (i, n)))
    }

    pub fn statuses(&self) -> Vec<(usize, ClusterView)> {
        self.running().map(|(i, n)| (i, n.view())).collect()
    }

    /// The slot of the leader every running replica agrees on.
    pub fn agreed_leader(&self) -> Option<usize> {
        let all: Vec<usize> = self.running().map(|(i, _)| i).collect();
        self.leader_among(&all)
    }

    /// The slot of the leader the running replicas among `slots` agree on:
    /// every one names it, and it alone is in the Leader role.
    pub fn leader_among(&self, slots: &[usize]) -> Option<usize> {
        let st: Vec<(usize, ClusterView)> = self.statuses().into_iter().filter(|(i, _)| slots.contains(i)).collect();
        let id = sim::leader::agreed(st.iter().map(|(_, s)| s.leader.as_ref().map(|l| l.0)))?;
        match st.iter().filter(|(_, s)| s.role == Role::Leader).collect::<Vec<_>>().as_slice() {
            [(i, l)] if l.id == id => Some(*i),
            _ => None,
        }
    }

    pub fn state(&self, i: usize) -> ClusterState {
        self.node(i).state().borrow().clone()
    }

    pub fn member_state(&self, viewer: usize, name: &str) -> Option<MemberState> {
        self.state(viewer).by_name(name).map(|(_, m)| m.state)
    }

    /// Blocks traffic between slot `p` and every other slot, both ways.
    pub fn partition(&self, p: usize) {
        let pid = self.node(p).id();
        self.replicas[p].fault.isolated.store(true, Ordering::SeqCst);
        for (i, r) in self.replicas.iter().enumerate() {
            if i != p {
                r.fault.blocked.lock().unwrap().insert(pid);
            }
        }
    }

    pub fn heal(&self, p: usize) {
        self.replicas[p].fault.isolated.store(false, Ordering::SeqCst);
        for r in &self.replicas {
            r.fault.blocked.lock().unwrap().clear();
        }
    }

    pub fn status_table(&self) -> String {
        self.statuses().iter().map(|(_, s)| s.to_string()).collect::<Vec<_>>().join("\n")
    }
}

impl Drop for Cluster {
    fn drop(&mut self) {
        for r in &mut self.replicas {
            r.fault.isolated.store(true, Ordering::SeqCst);
            if let Some(s) = r.server.take() {
                s.abort();
            }
            r.node.take();
        }
    }
}

/// Serves `router` on `listener`; aborting this task also drops every
/// connection it accepted (as a killed process would).
async fn serve(listener: tokio::net::TcpListener, router: axum::Router, tls: Option<tokio_rustls::TlsAcceptor>) {
    let mut conns = tokio::task::JoinSet::new();
    loop {
        let Ok((stream, _)) = listener.accept().await else {
            continue;
        };
        let (router, tls) = (router.clone(), tls.clone());
        conns.spawn(async move {
            let builder = hyper_util::server::conn::auto::Builder::new(hyper_util::rt::TokioExecutor::new());
            let (io, router) = match tls {
                Some(acceptor) => match acceptor.accept(stream).await {
                    Ok(s) => {
                        // As the server's accept loop does: the client's chain on every request.
                        let chain = s.get_ref().1.peer_certificates().map(|c| c.to_vec()).unwrap_or_default();
                        let router = match chain.is_empty() {
                            true => router,
                            false => router.layer(axum::Extension(::tls::PeerCertificates(Arc::new(chain)))),
                        };
                        (Either::Left(s), router)
                    }
                    Err(_) => return,
                },
                None => (Either::Right(stream), router),
            };
            let svc = hyper_util::service::TowerToHyperService::new(router);
            let _ = builder.serve_connection(hyper_util::rt::TokioIo::new(io), svc).await;
        });
        while conns.try_join_next().is_some() {}
    }
}

/// Binds `addr`, waiting up to 10 s for a previous incarnation's listener
/// (just killed) to let go of it.
async fn bind_retry(addr: SocketAddr) -> tokio::net::TcpListener {
    let mut last = None;
    let bound =
        sim::wait::until_some(Duration::from_secs(10), async || match tokio::net::TcpListener::bind(addr).await {
            Ok(l) => Some(l),
            Err(e) => {
                tracing::debug!(%addr, error = %e, "bind retry");
                last = Some(e);
                None
            }
        })
        .await;
    bound.unwrap_or_else(|| panic!("bind {addr}: {last:?}"))
}

/// Waits until `cond` holds (see `sim::wait`); returns how long it took, or
/// panics with `what` and the cluster's status table.
pub async fn wait_cluster(
    c: &Cluster,
    what: &str,
    limit: Duration,
    mut cond: impl FnMut(&Cluster) -> bool,
) -> Duration {
    match sim::wait::until(limit, async || cond(c)).await {
        Some(took) => took,
        None => panic!("timed out after {limit:?} waiting for {what}\n{}", c.status_table()),
    }
}

/// All running replicas agree on a leader and on one state with the ring
/// parameters and the replication factor committed and exactly `names` Active.
pub fn settled(c: &Cluster, names: &[&str]) -> bool {
    let Some(_) = c.agreed_leader() else {
        return false;
    };
    let want: BTreeSet<String> = names.iter().map(|s| s.to_string()).collect();
    let states: Vec<ClusterState> = c.running().map(|(_, n)| n.state().borrow().clone()).collect();
    states.windows(2).all(|w| w[0] == w[1])
        && states.first().is_some_and(|s| {
            s.ring.is_some()
                && s.replication.is_some()
                && s.active().map(|(_, m)| m.info.name.clone()).collect::<BTreeSet<_>>() == want
        })
}

/// Test timing bound: the design bound times a generous slack for a loaded 2-core machine.
pub fn slack(d: Duration) -> Duration {
    d * 4
}
