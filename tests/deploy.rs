//! The shipped manifests: `kubectl kustomize deploy/` renders with the real
//! kubectl 1.32, keeps metrics-server's object names, and the container's
//! flags are accepted by the server's own flag validation.

use clap::Parser;
use ha_metrics_server::cli::Cli;
use ha_metrics_server::config::Config;

fn render(dir: &str) -> String {
    let kubectl = sim::env::kubectl_132().expect("kubectl.1.32");
    let out = std::process::Command::new(kubectl)
        .args(["kustomize", &format!("{}/{dir}", env!("CARGO_MANIFEST_DIR"))])
        .output()
        .expect("run kubectl kustomize");
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    String::from_utf8_lossy(&out.stdout).into_owned()
}

#[test]
fn manifests_keep_metrics_server_names_and_valid_flags() {
    let text = render("deploy");
    for name in [
        "name: system:aggregated-metrics-reader",
        "name: system:metrics-server",
        "name: metrics-server-auth-reader",
        "name: metrics-server:system:auth-delegator",
        "name: v1beta1.metrics.k8s.io",
        "kind: ServiceAccount",
        "kind: PodDisruptionBudget",
        "path: /readyz",
        "path: /livez",
    ] {
        assert!(text.contains(name), "rendered manifests lack {name:?}");
    }
    let args: Vec<String> =
        text.lines().map(str::trim).filter_map(|l| l.strip_prefix("- --")).map(|a| format!("--{a}")).collect();
    assert!(args.iter().any(|a| a.starts_with("--peers=")), "{args:?}");
    let mut argv = vec!["ha-metrics-server".to_string()];
    argv.extend(args);
    let cli = Cli::try_parse_from(&argv).unwrap_or_else(|e| panic!("manifest flags rejected: {e}"));
    let mut serve = cli.serve;
    serve.cluster.node_name = Some("metrics-server-1".into());
    let config = Config::from_args(&serve).unwrap_or_else(|e| panic!("manifest flags invalid: {e}"));
    let cluster = config.cluster.expect("cluster mode");
    assert_eq!(cluster.peers.len(), 3);
    assert_eq!(cluster.peer_advertise, "metrics-server-1.metrics-server-peers.kube-system.svc:10251");
    assert_eq!(cluster.statefulset.as_ref().map(|s| s.1.as_str()), Some("metrics-server"));
    assert!(render("deploy/overlays/metrics-v1").contains("name: v1.metrics.k8s.io"));
}
