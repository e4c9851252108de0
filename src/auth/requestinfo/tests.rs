use super::*;

struct Case {
    method: Method,
    path: &'static str,
    query: Option<&'static str>,
    resource_request: bool,
    verb: &'static str,
    group: &'static str,
    version: &'static str,
    namespace: &'static str,
    resource: &'static str,
    name: &'static str,
    subresource: &'static str,
}

fn case(method: Method, path: &'static str, query: Option<&'static str>) -> Case {
    Case {
        method,
        path,
        query,
        resource_request: true,
        verb: "",
        group: "",
        version: "",
        namespace: "",
        resource: "",
        name: "",
        subresource: "",
    }
}

#[test]
fn request_info_table_matches_generic_apiserver_resolution() {
    let m = "metrics.k8s.io";
    let v = "v1beta1";
    let cases = vec![
        Case {
            verb: "list",
            group: m,
            version: v,
            resource: "nodes",
            ..case(Method::GET, "/apis/metrics.k8s.io/v1beta1/nodes", None)
        },
        Case {
            verb: "get",
            group: m,
            version: v,
            resource: "nodes",
            name: "node-a",
            ..case(Method::GET, "/apis/metrics.k8s.io/v1beta1/nodes/node-a", None)
        },
        Case {
            verb: "list",
            group: m,
            version: v,
            resource: "pods",
            ..case(Method::GET, "/apis/metrics.k8s.io/v1beta1/pods", Some("labelSelector=app%3Dx"))
        },
        Case {
            verb: "list",
            group: m,
            version: v,
            namespace: "default",
            resource: "pods",
            ..case(Method::GET, "/apis/metrics.k8s.io/v1beta1/namespaces/default/pods", None)
        },
        Case {
            verb: "get",
            group: m,
            version: v,
            namespace: "default",
            resource: "pods",
            name: "web-1",
            ..case(Method::GET, "/apis/metrics.k8s.io/v1beta1/namespaces/default/pods/web-1", None)
        },
        Case {
            verb: "watch",
            group: m,
            version: v,
            namespace: "kube-system",
            resource: "pods",
            ..case(
                Method::GET,
                "/apis/metrics.k8s.io/v1beta1/namespaces/kube-system/pods",
                Some("watch=true&resourceVersion=0"),
            )
        },
        Case {
            verb: "watch",
            group: m,
            version: v,
            resource: "nodes",
            ..case(Method::GET, "/apis/metrics.k8s.io/v1beta1/watch/nodes", None)
        },
        Case {
            verb: "list",
            group: m,
            version: v,
            resource: "nodes",
            ..case(Method::GET, "/apis/metrics.k8s.io/v1beta1/nodes", Some("watch=false"))
        },
        Case {
            verb: "get",
            group: m,
            version: v,
            resource: "nodes",
            name: "n",
            ..case(Method::GET, "/apis/metrics.k8s.io/v1beta1/nodes/n", Some("watch=true"))
        },
        Case {
            verb: "get",
            version: "v1",
            resource: "namespaces",
            namespace: "default",
            name: "default",
            ..case(Method::GET, "/api/v1/namespaces/default", None)
        },
        Case {
            verb: "get",
            version: "v1",
            resource: "pods",
            namespace: "ns",
            name: "p",
            subresource: "log",
            ..case(Method::GET, "/api/v1/namespaces/ns/pods/p/log", None)
        },
        Case {
            verb: "create",
            group: "authorization.k8s.io",
            version: "v1",
            resource: "subjectaccessreviews",
            ..case(Method::POST, "/apis/authorization.k8s.io/v1/subjectaccessreviews", None)
        },
        Case {
            verb: "deletecollection",
            group: m,
            version: v,
            resource: "pods",
            namespace: "a",
            ..case(Method::DELETE, "/apis/metrics.k8s.io/v1beta1/namespaces/a/pods", None)
        },
        Case { resource_request: false, verb: "get", ..case(Method::GET, "/apis/metrics.k8s.io/v1beta1", None) },
        Case { resource_request: false, verb: "get", ..case(Method::GET, "/apis/metrics.k8s.io", None) },
        Case { resource_request: false, verb: "get", ..case(Method::GET, "/apis", None) },
        Case { resource_request: false, verb: "get", ..case(Method::GET, "/api", None) },
        Case { resource_request: false, verb: "get", ..case(Method::GET, "/metrics", None) },
        Case { resource_request: false, verb: "get", ..case(Method::GET, "/openapi/v2", None) },
        Case { resource_request: false, verb: "get", ..case(Method::GET, "/", None) },
        Case { resource_request: false, verb: "head", ..case(Method::HEAD, "/healthz", None) },
        Case { resource_request: false, verb: "post", ..case(Method::POST, "/livez", None) },
    ];
    for c in cases {
        let info = parse(&c.method, c.path, c.query);
        let what = format!("{} {} {:?}", c.method, c.path, c.query);
        assert_eq!(info.is_resource_request, c.resource_request, "{what}");
        assert_eq!(info.path, c.path, "{what}");
        assert_eq!(info.verb, c.verb, "{what}");
        assert_eq!(info.api_group, c.group, "{what}");
        assert_eq!(info.api_version, c.version, "{what}");
        assert_eq!(info.namespace, c.namespace, "{what}");
        assert_eq!(info.resource, c.resource, "{what}");
        assert_eq!(info.name, c.name, "{what}");
        assert_eq!(info.subresource, c.subresource, "{what}");
    }
}

#[test]
fn watch_query_is_read_as_the_api_reads_it() {
    assert!(query_says_watch("watch=1"));
    assert!(query_says_watch("a=b&watch=True"));
    // `?watch=yes` is a watch to the API (rejected there with 405), so
    // authorization checks the watch verb, not list.
    assert!(query_says_watch("watch=yes"));
    assert!(query_says_watch("watch"));
    assert!(!query_says_watch("watching=true"));
    assert!(!query_says_watch("watch=false&watch=true"));
}
