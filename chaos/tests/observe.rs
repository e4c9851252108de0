//! `chaos observe` against the stand-in kube-apiserver (no harness, no
//! scrape log): a served cluster passes coverage, freshness and API errors;
//! with no replica behind the aggregation proxy it fails them.

mod setup;

use std::time::Duration;

use chaos::observe::ObserveArgs;
use sim::addr::Block;
use sim::env::{DevEnv, EnvOptions, ReplicaProcess};

fn args(env: &DevEnv, dir: &std::path::Path) -> ObserveArgs {
    ObserveArgs {
        kubeconfig: env.files.user_kubeconfig.clone(),
        duration: "6s".into(),
        resolution: "2s".into(),
        out: dir.join("report"),
        prometheus: None,
        scrape_interval: "30s".into(),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn observing_through_the_apiserver_sees_every_node_fresh_and_fails_when_nothing_serves() {
    let (opts, dir) = setup::options();
    let mut env_opts = EnvOptions::new(dir.path().join("env"));
    env_opts.nodes = 4;
    let env = DevEnv::start(Block::acquire().unwrap(), env_opts).await.unwrap();

    // Nothing behind the proxy: every answer is a 503.
    let o = chaos::observe::observe(&args(&env, dir.path())).await.unwrap();
    setup::show(&o);
    assert_eq!(o.verdict, "fail");
    assert!(!setup::check(&o, "api_errors").pass);
    assert!(!setup::check(&o, "coverage").pass);

    let _replica =
        ReplicaProcess::spawn(&opts.binary, &env.replica_args(0, "2s"), &dir.path().join("replica-0.log")).unwrap();
    env.route_metrics_to(&[0]);
    let admin = env.apiserver.issue_client_cert("admin", &["system:masters"]).unwrap();
    sim::wait::expect("the replica to serve every node", Duration::from_secs(90), async || {
        let r = sim::client::fetch(env.replica_addr(0), "/apis/metrics.k8s.io/v1beta1/nodes", Some(&admin), &[]).await;
        r.is_ok_and(|r| {
            serde_json::from_str::<serde_json::Value>(&r.body)
                .is_ok_and(|v| v["items"].as_array().is_some_and(|a| a.len() == 4))
        })
    })
    .await;
    let o = chaos::observe::observe(&args(&env, dir.path())).await.unwrap();
    setup::show(&o);
    assert_eq!(o.verdict, "pass", "{o:?}");
    assert!(setup::check(&o, "coverage").figures["node_answers"] >= 8.0);
    let files = chaos::report::write(&dir.path().join("report"), &[o], 0, "observe").unwrap();
    let md = std::fs::read_to_string(&files[1]).unwrap();
    assert!(md.contains("| observe | pass |"), "{md}");
    env.shutdown().await;
}
