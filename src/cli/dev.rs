//! `dev` (feature `dev`): a local cluster of replicas on the simulated
//! Kubernetes for the real kubectl. Not in production builds.

use std::path::PathBuf;
use std::time::Duration;

use clap::Args;
use sim::addr::Block;
use sim::env::{DevEnv, EnvOptions, ReplicaProcess, kubectl_132};

/// Options of `dev`.
#[derive(Debug, Args)]
pub struct DevArgs {
    /// Simulated nodes.
    #[arg(long, default_value_t = 4)]
    pub nodes: usize,
    /// Pods per node.
    #[arg(long, default_value_t = 6)]
    pub pods_per_node: usize,
    /// The server's --metric-resolution.
    #[arg(long, default_value = "15s")]
    pub metric_resolution: String,
    /// Replicas. More than one form a Raft cluster over their peer ports and
    /// split the kubelets between them; 1 runs metrics-server's shape.
    #[arg(long, default_value_t = 3)]
    pub replicas: usize,
    /// Folder for kubeconfigs, certificates and logs.
    #[arg(long, default_value = ".dev")]
    pub work_dir: PathBuf,
}

pub async fn dev(args: DevArgs) -> anyhow::Result<()> {
    let kubectl = kubectl_132().ok_or_else(|| anyhow::anyhow!("kubectl.1.32 not found beside the kubectl on PATH"))?;
    let work_dir = std::path::absolute(&args.work_dir)?;
    anyhow::ensure!((1..=9).contains(&args.replicas), "--replicas must be between 1 and 9");
    let binary = std::env::current_exe()?;
    let mut opts = EnvOptions::new(&work_dir);
    opts.nodes = args.nodes;
    opts.pods_per_node = args.pods_per_node;
    // The certgen Job makes the peer CA Secret, as `kubectl apply -k deploy/` does.
    opts.binary = Some(binary.clone());
    let env = DevEnv::start(Block::dev(), opts).await?;
    let mut replicas = Vec::new();
    for i in 0..args.replicas {
        let mut flags = env.replica_args(i, &args.metric_resolution);
        if args.replicas > 1 {
            flags.extend(env.cluster_args(i, args.replicas)?);
        }
        let log = work_dir.join(format!("replica-{i}.log"));
        replicas.push((ReplicaProcess::spawn(&binary, &flags, &log)?, log));
    }
    env.route_metrics_to(&(0..args.replicas).collect::<Vec<_>>());
    env.set_replica_count(args.replicas);
    let pods: usize = env.spec.nodes.iter().map(|n| n.pods.len()).sum();
    println!(
        "Simulated cluster: {} nodes, {pods} pods; stand-in kube-apiserver {}",
        env.spec.nodes.len(),
        env.apiserver.url()
    );
    for (i, (r, log)) in replicas.iter().enumerate() {
        println!(
            "ha-metrics-server replica-{i}: https://{} (pid {}, log {})",
            env.replica_addr(i),
            r.pid(),
            log.display()
        );
    }
    println!("Metrics are served after two scrapes (up to 2 × {}). Then try:", args.metric_resolution);
    let kc = env.files.user_kubeconfig.display();
    println!("  {} --kubeconfig {kc} top nodes", kubectl.display());
    println!("  {} --kubeconfig {kc} top pods -A --containers", kubectl.display());
    println!("  {} --kubeconfig {kc} get nodes.metrics.k8s.io", kubectl.display());
    if args.replicas > 1 {
        let observer = env.peer_observer()?;
        println!(
            "  {} cluster --peer {} --peer-ca-file {} --peer-cert-file {} --peer-key-file {}",
            binary.display(),
            env.peer_addr(0),
            observer.ca.display(),
            observer.cert.display(),
            observer.key.display()
        );
    }
    println!("Ctrl-C stops everything.");
    crate::server::wait_for_signal().await;
    println!("stopping");
    for (r, _) in replicas {
        stop_replica(r).await;
    }
    env.shutdown().await;
    Ok(())
}

async fn stop_replica(mut replica: ReplicaProcess) {
    replica.signal(libc::SIGTERM);
    let deadline = tokio::time::Instant::now() + Duration::from_secs(5);
    let mut poll = tokio::time::interval(Duration::from_millis(50));
    while replica.try_wait().is_none() && tokio::time::Instant::now() < deadline {
        poll.tick().await;
    }
    drop(replica);
}
