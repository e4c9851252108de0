use super::*;
use std::collections::BTreeMap;

fn labels(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
    pairs.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect()
}

fn sel(s: &str) -> LabelSelector {
    LabelSelector::parse(s).unwrap_or_else(|e| panic!("{s:?} should parse: {e}"))
}

#[test]
fn equality_and_inequality_selectors_match_like_kubernetes() {
    let l = labels(&[("app", "web"), ("tier", "front")]);
    assert!(sel("app=web").matches(&l));
    assert!(sel("app==web").matches(&l));
    assert!(!sel("app=db").matches(&l));
    assert!(sel("app!=db").matches(&l));
    assert!(!sel("app!=web").matches(&l));
    // != also matches objects without the key.
    assert!(sel("missing!=x").matches(&l));
    assert!(sel("app=web,tier=front").matches(&l));
    assert!(!sel("app=web,tier=back").matches(&l));
    assert!(sel("").matches(&l));
    assert!(sel("  ").matches(&l));
}

#[test]
fn set_and_existence_selectors_match_like_kubernetes() {
    let l = labels(&[("env", "prod"), ("n", "5")]);
    assert!(sel("env in (prod,dev)").matches(&l));
    assert!(sel("env in(prod)").matches(&l));
    assert!(!sel("env in (dev)").matches(&l));
    assert!(sel("env notin (dev)").matches(&l));
    assert!(!sel("env notin (prod, dev)").matches(&l));
    assert!(sel("other notin (x)").matches(&l));
    assert!(sel("env").matches(&l));
    assert!(!sel("!env").matches(&l));
    assert!(sel("!other").matches(&l));
    assert!(sel("n>4").matches(&l));
    assert!(!sel("n>5").matches(&l));
    assert!(sel("n<6").matches(&l));
    assert!(!sel("env>1").matches(&l), "non-integer label never compares");
    assert!(sel(" env = prod , n in ( 5 ) ").matches(&l));
}

#[test]
fn keywords_are_values_inside_sets_and_empty_values_are_allowed() {
    assert!(sel("x in (in,notin)").matches(&labels(&[("x", "in")])));
    assert!(sel("x=").matches(&labels(&[("x", "")])));
    assert!(sel("x in ()").matches(&labels(&[("x", "")])));
    assert!(sel("x in (a,,b)").matches(&labels(&[("x", "")])));
    assert!(sel("example.com/app=x").matches(&labels(&[("example.com/app", "x")])));
}

#[test]
fn requirements_are_sorted_by_key_and_print_canonically() {
    let s = sel("b=1,a in (y,x),!c,d");
    assert_eq!(s.to_string(), "a in (x,y),b=1,!c,d");
    assert_eq!(s.requirements().len(), 4);
    let both = sel("a=1").and(&sel("skip!=true"));
    assert!(both.matches(&labels(&[("a", "1")])));
    assert!(!both.matches(&labels(&[("a", "1"), ("skip", "true")])));
}

#[test]
fn malformed_label_selectors_are_rejected_with_a_reason() {
    for bad in [
        "a b",
        "a=b c",
        "a in b",
        "a in (b",
        "a=(b)",
        ",a",
        "a,",
        "=b",
        "a=b=c",
        "!a=b",
        "Bad Key=x",
        "-a=b",
        "a=-b",
        "a=b!",
        "a>x",
        "UPPER.example.com/a=b",
        "/a=b",
        "a/=b",
        &format!("a={}", "v".repeat(64)),
        &format!("{}=v", "k".repeat(64)),
    ] {
        let err = LabelSelector::parse(bad).expect_err(bad);
        let status = err.to_status();
        assert_eq!(status.code, 400, "{bad}");
        assert_eq!(status.reason, "BadRequest");
        assert!(!status.message.is_empty());
    }
    let err = LabelSelector::parse("a=b c").unwrap_err();
    assert_eq!(err.to_string(), "found 'c', expected: ',' or 'end of string'");
    let err = LabelSelector::parse("a=-b").unwrap_err();
    assert!(err.to_string().starts_with("unable to parse requirement: values[a]: Invalid value: \"-b\""), "{err}");
}

#[test]
fn field_selectors_accept_name_and_namespace_only() {
    let f = FieldSelector::parse("metadata.name=web-1").unwrap();
    assert!(f.matches("web-1", Some("default")));
    assert!(!f.matches("web-2", Some("default")));
    let f = FieldSelector::parse("metadata.namespace==kube-system,metadata.name!=a").unwrap();
    assert!(f.matches("b", Some("kube-system")));
    assert!(!f.matches("a", Some("kube-system")));
    assert!(!f.matches("b", Some("default")));
    // Nodes have no namespace field: it compares as "".
    let f = FieldSelector::parse("metadata.namespace=x").unwrap();
    assert!(!f.matches("node-a", None));
    assert!(FieldSelector::parse("metadata.namespace=").unwrap().matches("node-a", None));
    assert!(FieldSelector::parse("").unwrap().is_empty());
    assert!(FieldSelector::parse("metadata.name=a\\,b").unwrap().matches("a,b", None));
}

#[test]
fn unknown_field_selector_gets_the_apiserver_message() {
    let err = FieldSelector::parse("spec.nodeName=node-a").unwrap_err();
    assert_eq!(
        err.to_string(),
        r#""spec.nodeName" is not a known field selector: only "metadata.name", "metadata.namespace""#
    );
    assert_eq!(err.to_status().code, 400);
    for bad in ["metadata.name", "metadata.name=a=b", "metadata.name=a\\x", "metadata.name=a\\"] {
        assert!(FieldSelector::parse(bad).is_err(), "{bad}");
    }
    assert_eq!(FieldSelector::parse("foo").unwrap_err().to_string(), "invalid selector: 'foo'; can't understand 'foo'");
}
