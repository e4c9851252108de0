//! TokenReview and SubjectAccessReview as a delegating server sends them.

use serde_json::{Value, json};

use super::Harness;
use crate::apiserver::{KubeconfigUser, Policy, PolicyRule};

async fn post(client: &kube::Client, uri: &str, body: Value) -> Value {
    let req = http::Request::post(uri)
        .header(http::header::CONTENT_TYPE, "application/json")
        .body(body.to_string().into_bytes())
        .expect("request");
    client.request::<Value>(req).await.expect("review answered")
}

async fn sa_client(h: &Harness) -> kube::Client {
    let path = h.dir.path().join("sa-kubeconfig");
    h.server.write_service_account_kubeconfig(&path, "kube-system", "metrics-server").expect("kubeconfig");
    super::client_from(&path).await
}

fn sar(user: &str, groups: &[&str], verb: &str, resource: &str, ns: &str) -> Value {
    json!({
        "kind": "SubjectAccessReview", "apiVersion": "authorization.k8s.io/v1",
        "metadata": {"creationTimestamp": null},
        "spec": {"resourceAttributes": {"namespace": ns, "verb": verb, "group": "metrics.k8s.io",
                 "version": "v1beta1", "resource": resource}, "user": user, "groups": groups, "uid": ""},
    })
}

#[tokio::test]
async fn token_review_answers_from_the_token_table_and_is_counted() {
    let h = Harness::start().await;
    h.server.add_token("alice-token", "alice", &["devs"]);
    let client = sa_client(&h).await;
    let uri = "/apis/authentication.k8s.io/v1/tokenreviews";
    let review =
        |t: &str| json!({"kind": "TokenReview", "apiVersion": "authentication.k8s.io/v1", "spec": {"token": t}});
    let ok = post(&client, uri, review("alice-token")).await;
    assert_eq!(ok["status"]["authenticated"], true);
    assert_eq!(ok["status"]["user"]["username"], "alice");
    assert_eq!(ok["status"]["user"]["groups"], json!(["devs", "system:authenticated"]));
    let bad = post(&client, uri, review("nope")).await;
    assert_eq!(bad["status"]["authenticated"], false);
    assert_eq!(h.server.token_reviews(), 2);
}

#[tokio::test]
async fn subject_access_review_follows_the_policy_and_is_counted() {
    let h = Harness::start().await;
    let client = h.client(KubeconfigUser::ClientCert { user: "metrics-server".into(), groups: vec![] }).await;
    let uri = "/apis/authorization.k8s.io/v1/subjectaccessreviews";
    h.server.set_policy(Policy {
        rules: vec![
            PolicyRule::for_user("alice")
                .verbs(&["list"])
                .api_groups(&["metrics.k8s.io"])
                .resources(&["pods"])
                .namespaces(&["team-a"]),
            PolicyRule::for_user("mallory").verbs(&["*"]).api_groups(&["*"]).resources(&["*"]).deny(),
        ],
    });
    let allowed = post(&client, uri, sar("alice", &["devs"], "list", "pods", "team-a")).await;
    assert_eq!(allowed["status"]["allowed"], true);
    assert_eq!(allowed["spec"]["resourceAttributes"]["namespace"], "team-a");
    let other_ns = post(&client, uri, sar("alice", &["devs"], "list", "pods", "default")).await;
    assert_eq!(other_ns["status"]["allowed"], false);
    assert!(other_ns["status"].get("denied").is_none());
    let denied = post(&client, uri, sar("mallory", &[], "get", "nodes", "")).await;
    assert_eq!((denied["status"]["allowed"].clone(), denied["status"]["denied"].clone()), (json!(false), json!(true)));
    let masters = post(&client, uri, sar("root", &["system:masters"], "delete", "nodes", "")).await;
    assert_eq!(masters["status"]["allowed"], true);
    let non_resource = json!({"kind": "SubjectAccessReview", "apiVersion": "authorization.k8s.io/v1",
        "spec": {"nonResourceAttributes": {"path": "/apis/metrics.k8s.io/v1beta1", "verb": "get"},
                 "user": "x", "groups": ["system:authenticated"]}});
    assert_eq!(post(&client, uri, non_resource.clone()).await["status"]["allowed"], false);
    h.server.set_policy(Policy::standard());
    assert_eq!(post(&client, uri, non_resource).await["status"]["allowed"], true);
    assert_eq!(h.server.subject_access_reviews(), 6);
    assert_eq!(h.server.subject_access_review_specs()[0]["user"], "alice");
}
