//! Content negotiation as the generic apiserver does it: the `Accept` clauses
//! are ordered by quality (goautoneg), each is tried against the media types
//! we serve (JSON only), and `as=`/`g=`/`v=` parameters request a conversion
//! (Table, PartialObjectMetadata, aggregated discovery) that the endpoint must
//! allow. Protobuf and YAML clauses are skipped, so the usual
//! `application/vnd.kubernetes.protobuf, */*` gets JSON. Pure functions.

use http::HeaderMap;
use http::header::{ACCEPT, USER_AGENT};

use super::encode::Style;
use apimachinery::status::Status;

/// `meta.k8s.io` version of a Table or PartialObjectMetadata answer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MetaVersion {
    V1,
    V1beta1,
}

impl MetaVersion {
    pub fn api_version(self) -> &'static str {
        match self {
            MetaVersion::V1 => "meta.k8s.io/v1",
            MetaVersion::V1beta1 => "meta.k8s.io/v1beta1",
        }
    }
}

/// `apidiscovery.k8s.io` version of an aggregated discovery answer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DiscoveryVersion {
    V2,
    V2beta1,
}

impl DiscoveryVersion {
    pub fn as_str(self) -> &'static str {
        match self {
            DiscoveryVersion::V2 => "v2",
            DiscoveryVersion::V2beta1 => "v2beta1",
        }
    }
}

/// What the client asked to receive.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Target {
    /// The object itself.
    Object,
    Table(MetaVersion),
    PartialObjectMetadata(MetaVersion),
    PartialObjectMetadataList(MetaVersion),
    AggregatedDiscovery(DiscoveryVersion),
}

/// Which conversions an endpoint allows.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Endpoint {
    /// Metrics resources: Table and PartialObjectMetadata(List).
    Resource,
    /// `/apis`: aggregated discovery.
    RootDiscovery,
    /// Everything else (discovery documents, OpenAPI, errors): no conversion.
    Plain,
}

/// The outcome of negotiation for one request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Negotiated {
    pub target: Target,
    pub style: Style,
}

/// The media types we can write, for the 406 message.
pub const SUPPORTED: &str = "application/json";

struct Clause<'a> {
    typ: &'a str,
    subtype: &'a str,
    q: f64,
    params: Vec<(&'a str, &'a str)>,
}

/// goautoneg's `ParseAccept`, including its ordering (quality first, then
/// concrete types before wildcards; an insertion sort like Go's for short lists).
fn parse_accept(header: &str) -> Vec<Clause<'_>> {
    let mut out: Vec<Clause<'_>> = Vec::new();
    for part in header.split(',') {
        let part = part.trim_matches(' ');
        let mut pieces = part.split(';');
        let range = pieces.next().unwrap_or("");
        let mut sp = range.split('/');
        let typ = sp.next().unwrap_or("").trim_matches(' ');
        let subtype = match (sp.next(), sp.next()) {
            (None, None) if typ == "*" => "*",
            (Some(s), None) => s.trim_matches(' '),
            _ => continue,
        };
        let mut clause = Clause { typ, subtype, q: 1.0, params: Vec::new() };
        for param in pieces {
            let Some((k, v)) = param.split_once('=') else {
                continue;
            };
            let k = k.trim_matches(' ');
            if k == "q" {
                clause.q = v.trim().parse().unwrap_or(0.0);
            } else {
                clause.params.push((k, v.trim_matches(' ')));
            }
        }
        out.push(clause);
    }
    let less = |a: &Clause<'_>, b: &Clause<'_>| {
        a.q > b.q || (a.typ != "*" && b.typ == "*") || (a.subtype != "*" && b.subtype == "*")
    };
    for i in 1..out.len() {
        let mut j = i;
        while j > 0 && less(&out[j], &out[j - 1]) {
            out.swap(j, j - 1);
            j -= 1;
        }
    }
    out
}

/// The conversion a clause asks for, if the endpoint allows it; `None` means skip the clause.
fn accept_clause(params: &[(&str, &str)], endpoint: Endpoint) -> Option<(Target, bool)> {
    let (mut kind, mut group, mut version) = (None, "", "");
    let mut pretty = false;
    for (k, v) in params {
        match *k {
            "as" => kind = Some(*v),
            "g" => group = v,
            "v" => version = v,
            // Only the watch stream schema exists (the request itself decides on watching).
            "stream" if !v.is_empty() && *v != "watch" => return None,
            // No server-version conversion is offered.
            "sv" if !v.is_empty() => return None,
            "pretty" => pretty = *v == "1",
            _ => {}
        }
    }
    let converting = params.iter().any(|(k, _)| matches!(*k, "as" | "g" | "v"));
    if !converting {
        return Some((Target::Object, pretty));
    }
    let kind = kind.unwrap_or("");
    let target = match endpoint {
        Endpoint::Resource if group == "meta.k8s.io" => {
            let mv = match version {
                "v1" => MetaVersion::V1,
                "v1beta1" => MetaVersion::V1beta1,
                _ => return None,
            };
            match kind {
                "Table" => Target::Table(mv),
                "PartialObjectMetadata" => Target::PartialObjectMetadata(mv),
                "PartialObjectMetadataList" => Target::PartialObjectMetadataList(mv),
                _ => return None,
            }
        }
        Endpoint::RootDiscovery if group == "apidiscovery.k8s.io" && kind == "APIGroupDiscoveryList" => match version {
            "v2" => Target::AggregatedDiscovery(DiscoveryVersion::V2),
            "v2beta1" => Target::AggregatedDiscovery(DiscoveryVersion::V2beta1),
            _ => return None,
        },
        _ => return None,
    };
    Some((target, pretty))
}

/// Negotiates the answer for a request; `Err` is the 406 Status.
pub fn negotiate(headers: &HeaderMap, query: Option<&str>, endpoint: Endpoint) -> Result<Negotiated, Status> {
    let hint = pretty_hint(headers, query);
    let style = |pretty: bool| {
        if pretty || hint { Style::Pretty } else { Style::Compact }
    };
    let accept = headers.get(ACCEPT).and_then(|v| v.to_str().ok()).unwrap_or("");
    if accept.is_empty() {
        return Ok(Negotiated { target: Target::Object, style: style(false) });
    }
    for clause in parse_accept(accept) {
        let json = matches!((clause.typ, clause.subtype), ("application", "json" | "*") | ("*", "*"));
        if !json {
            continue;
        }
        if let Some((target, pretty)) = accept_clause(&clause.params, endpoint) {
            return Ok(Negotiated { target, style: style(pretty) });
        }
    }
    Err(Status::not_acceptable(format!("only the following media types are accepted: {SUPPORTED}")))
}

/// apiserver's `isPrettyPrint`: `?pretty=<bool>`, or a curl/wget/browser User-Agent.
fn pretty_hint(headers: &HeaderMap, query: Option<&str>) -> bool {
    if let Some(q) = query.filter(|q| q.contains("pretty")) {
        let value = q.split('&').find_map(|kv| {
            let (k, v) = kv.split_once('=').unwrap_or((kv, ""));
            (k == "pretty").then_some(v)
        });
        if let Some(v) = value.filter(|v| !v.is_empty()) {
            return matches!(v, "1" | "t" | "T" | "true" | "TRUE" | "True");
        }
    }
    let ua = headers.get(USER_AGENT).and_then(|v| v.to_str().ok()).unwrap_or("");
    ua.starts_with("curl") || ua.starts_with("Wget") || ua.starts_with("Mozilla/5.0")
}

/// The style an error body is written in: negotiated without conversions;
/// `None` when even that fails (the caller then writes raw JSON).
pub fn error_style(headers: &HeaderMap, query: Option<&str>) -> Option<Style> {
    negotiate(headers, query, Endpoint::Plain).ok().map(|n| n.style)
}

#[cfg(test)]
mod tests {
    use super::*;
    use http::HeaderValue;

    fn with_accept(accept: &str) -> HeaderMap {
        let mut h = HeaderMap::new();
        h.insert(ACCEPT, HeaderValue::from_str(accept).unwrap());
        h
    }

    fn target(accept: &str, endpoint: Endpoint) -> Result<Target, u16> {
        negotiate(&with_accept(accept), None, endpoint).map(|n| n.target).map_err(|s| s.code)
    }

    #[test]
    fn clients_that_prefer_protobuf_get_json() {
        for accept in [
            "application/vnd.kubernetes.protobuf, */*",
            "application/vnd.kubernetes.protobuf,application/json",
            "application/json",
            "application/json, */*",
            "*/*",
            "application/*",
            "*",
            "application/json;charset=utf-8",
        ] {
            assert_eq!(target(accept, Endpoint::Resource), Ok(Target::Object), "{accept}");
        }
        assert_eq!(negotiate(&HeaderMap::new(), None, Endpoint::Resource).unwrap().target, Target::Object);
    }

    #[test]
    fn kubectl_get_table_accept_header_selects_table_v1() {
        let a = "application/json;as=Table;v=v1;g=meta.k8s.io,application/json;as=Table;v=v1beta1;g=meta.k8s.io,application/json";
        assert_eq!(target(a, Endpoint::Resource), Ok(Target::Table(MetaVersion::V1)));
        let b = "application/json;as=Table;v=v1beta1;g=meta.k8s.io";
        assert_eq!(target(b, Endpoint::Resource), Ok(Target::Table(MetaVersion::V1beta1)));
        // Discovery endpoints skip the Table clause and fall back to plain JSON.
        assert_eq!(target(a, Endpoint::Plain), Ok(Target::Object));
        assert_eq!(target(b, Endpoint::Plain), Err(406));
        let pom = "application/json;as=PartialObjectMetadataList;g=meta.k8s.io;v=v1";
        assert_eq!(target(pom, Endpoint::Resource), Ok(Target::PartialObjectMetadataList(MetaVersion::V1)));
        // Incomplete conversions are skipped.
        assert_eq!(target("application/json;as=Table", Endpoint::Resource), Err(406));
        assert_eq!(target("application/json;as=Table;g=meta.k8s.io;v=v2", Endpoint::Resource), Err(406));
    }

    #[test]
    fn aggregated_discovery_is_chosen_only_on_the_root() {
        let a = "application/json;g=apidiscovery.k8s.io;v=v2;as=APIGroupDiscoveryList,application/json;g=apidiscovery.k8s.io;v=v2beta1;as=APIGroupDiscoveryList,application/json";
        assert_eq!(target(a, Endpoint::RootDiscovery), Ok(Target::AggregatedDiscovery(DiscoveryVersion::V2)));
        assert_eq!(target(a, Endpoint::Resource), Ok(Target::Object));
        let b = "application/json;g=apidiscovery.k8s.io;v=v2beta1;as=APIGroupDiscoveryList";
        assert_eq!(target(b, Endpoint::RootDiscovery), Ok(Target::AggregatedDiscovery(DiscoveryVersion::V2beta1)));
    }

    #[test]
    fn only_unservable_types_are_not_acceptable() {
        assert_eq!(target("application/yaml", Endpoint::Resource), Err(406));
        assert_eq!(target("application/vnd.kubernetes.protobuf", Endpoint::Resource), Err(406));
        assert_eq!(target("text/html", Endpoint::Plain), Err(406));
        assert_eq!(target("application/json;stream=other", Endpoint::Resource), Err(406));
        assert_eq!(target("application/json;stream=watch", Endpoint::Resource), Ok(Target::Object));
        let s = negotiate(&with_accept("application/yaml"), None, Endpoint::Resource).unwrap_err();
        assert_eq!(s.message, "only the following media types are accepted: application/json");
        assert_eq!(s.reason, "NotAcceptable");
    }

    #[test]
    fn quality_orders_clauses() {
        let a = "application/json;as=Table;v=v1;g=meta.k8s.io;q=0.5,application/json;q=0.9";
        assert_eq!(target(a, Endpoint::Resource), Ok(Target::Object));
    }

    #[test]
    fn pretty_output_follows_query_parameter_and_user_agent() {
        let h = HeaderMap::new();
        assert_eq!(negotiate(&h, Some("pretty=true"), Endpoint::Plain).unwrap().style, Style::Pretty);
        assert_eq!(negotiate(&h, Some("pretty=0"), Endpoint::Plain).unwrap().style, Style::Compact);
        assert_eq!(negotiate(&h, Some("limit=500"), Endpoint::Plain).unwrap().style, Style::Compact);
        let mut curl = HeaderMap::new();
        curl.insert(USER_AGENT, HeaderValue::from_static("curl/8.5.0"));
        assert_eq!(negotiate(&curl, None, Endpoint::Plain).unwrap().style, Style::Pretty);
        assert_eq!(negotiate(&curl, Some("pretty=false"), Endpoint::Plain).unwrap().style, Style::Compact);
        let kubectl = with_accept("application/json;pretty=1");
        assert_eq!(negotiate(&kubectl, None, Endpoint::Plain).unwrap().style, Style::Pretty);
    }
}
