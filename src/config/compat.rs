//! How each flag of metrics-server 0.9 is honoured here, in one table:
//! implemented with metrics-server's meaning, accepted with no effect
//! (nothing here corresponds; the reason is logged once at start when the
//! flag is given), or refused when set, as metrics-server 0.9 refuses it.
//! The compatibility test checks this table against the flag list kept in
//! `tests/data/metrics-server-0.9-flags.tsv`, and the README's differences
//! against the no-effect rows. Nothing here parses or validates values.

use std::collections::BTreeSet;

/// How a metrics-server flag is honoured.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Support {
    /// Implemented with metrics-server's meaning.
    Implemented,
    /// Accepted (and validated) but nothing here corresponds; the reason.
    NoEffect(&'static str),
    /// Accepted at its zero value; any other value is refused at start, as
    /// metrics-server 0.9 refuses it; the reason.
    RefusedWhenSet(&'static str),
}

use Support::{Implemented as I, NoEffect, RefusedWhenSet};

const NO_PROFILING: &str = "this server has no profiling endpoints, and metrics-server never applies its Features \
                            section either";
const NO_EMULATION: &str = "there is no version emulation (metrics-server registers no component to emulate)";
const NOT_ADVERTISED: &str = "the generic apiserver only puts it in URLs it advertises about itself, and this server \
                              advertises none (peers use --peer-advertise-address)";
const NO_COMPONENT: &str = "metrics-server registers no component, so metrics-server 0.9 refuses any value too";
const ALPHA_LOGGING: &str = "its alpha gate LoggingAlphaOptions cannot be enabled (metrics-server registers no \
                             feature gate), so metrics-server 0.9 refuses any other value too";

/// Every flag metrics-server 0.9 accepts (long names; `help` is cobra's),
/// with how it is honoured here.
pub const FLAGS: &[(&str, Support)] = &[
    // Metrics server
    ("kubeconfig", I),
    ("metric-resolution", I),
    ("version", I),
    // Generic
    ("advertise-address", NoEffect(NOT_ADVERTISED)),
    ("cors-allowed-origins", I),
    ("emulated-version", RefusedWhenSet(NO_COMPONENT)),
    ("emulation-forward-compatible", NoEffect(NO_EMULATION)),
    ("external-hostname", NoEffect(NOT_ADVERTISED)),
    ("feature-gates", RefusedWhenSet(NO_COMPONENT)),
    ("goaway-chance", I),
    ("livez-grace-period", I),
    ("max-mutating-requests-inflight", I),
    ("max-requests-inflight", I),
    ("min-compatibility-version", RefusedWhenSet(NO_COMPONENT)),
    (
        "min-request-timeout",
        NoEffect(
            "it bounds the timeouts of watches, and watch=true is refused at once here (metrics-server serves none either)",
        ),
    ),
    ("request-timeout", I),
    ("runtime-config-emulation-forward-compatible", NoEffect(NO_EMULATION)),
    ("shutdown-delay-duration", I),
    ("shutdown-send-retry-after", I),
    (
        "shutdown-watch-termination-grace-period",
        NoEffect(
            "it is how long shutdown waits for open watches, and no watch is ever open here (watch=true is refused at once)",
        ),
    ),
    ("storage-initialization-timeout", NoEffect("there is no storage backend to wait for (nor in metrics-server)")),
    ("strict-transport-security-directives", I),
    // Kubelet client
    ("deprecated-kubelet-completely-insecure", I),
    ("kubelet-certificate-authority", I),
    ("kubelet-client-certificate", I),
    ("kubelet-client-key", I),
    ("kubelet-insecure-tls", I),
    ("kubelet-port", I),
    ("kubelet-preferred-address-types", I),
    ("kubelet-request-timeout", I),
    ("kubelet-use-node-status-port", I),
    ("node-selector", I),
    // Apiserver secure serving
    ("bind-address", I),
    ("cert-dir", I),
    ("disable-http2-serving", I),
    ("http2-max-streams-per-connection", I),
    (
        "permit-address-sharing",
        NoEffect(
            "SO_REUSEADDR is always set on the listener, as Go sets it for metrics-server on Linux whatever the flag says",
        ),
    ),
    ("permit-port-sharing", I),
    ("secure-port", I),
    ("tls-cert-file", I),
    ("tls-cipher-suites", I),
    ("tls-curve-preferences", I),
    ("tls-min-version", I),
    ("tls-private-key-file", I),
    ("tls-sni-cert-key", I),
    // Apiserver authentication
    ("authentication-kubeconfig", I),
    ("authentication-skip-lookup", I),
    ("authentication-token-webhook-cache-ttl", I),
    ("authentication-tolerate-lookup-failure", I),
    ("client-ca-file", I),
    ("requestheader-allowed-names", I),
    ("requestheader-client-ca-file", I),
    ("requestheader-extra-headers-prefix", I),
    ("requestheader-group-headers", I),
    ("requestheader-uid-headers", I),
    ("requestheader-username-headers", I),
    // Apiserver authorization
    ("authorization-always-allow-paths", I),
    ("authorization-kubeconfig", I),
    ("authorization-webhook-cache-authorized-ttl", I),
    ("authorization-webhook-cache-unauthorized-ttl", I),
    // Apiserver audit log
    ("audit-log-batch-buffer-size", I),
    ("audit-log-batch-max-size", I),
    ("audit-log-batch-max-wait", I),
    ("audit-log-batch-throttle-burst", I),
    ("audit-log-batch-throttle-enable", I),
    ("audit-log-batch-throttle-qps", I),
    ("audit-log-compress", I),
    ("audit-log-format", I),
    ("audit-log-maxage", I),
    ("audit-log-maxbackup", I),
    ("audit-log-maxsize", I),
    ("audit-log-mode", I),
    ("audit-log-path", I),
    ("audit-log-truncate-enabled", I),
    ("audit-log-truncate-max-batch-size", I),
    ("audit-log-truncate-max-event-size", I),
    ("audit-log-version", I),
    ("audit-policy-file", I),
    ("audit-webhook-batch-buffer-size", I),
    ("audit-webhook-batch-max-size", I),
    ("audit-webhook-batch-max-wait", I),
    ("audit-webhook-batch-throttle-burst", I),
    ("audit-webhook-batch-throttle-enable", I),
    ("audit-webhook-batch-throttle-qps", I),
    ("audit-webhook-config-file", I),
    ("audit-webhook-initial-backoff", I),
    ("audit-webhook-mode", I),
    ("audit-webhook-truncate-enabled", I),
    ("audit-webhook-truncate-max-batch-size", I),
    ("audit-webhook-truncate-max-event-size", I),
    ("audit-webhook-version", I),
    ("audit-webhook-batch-initial-backoff", I),
    // Features
    ("contention-profiling", NoEffect(NO_PROFILING)),
    ("debug-socket-path", NoEffect(NO_PROFILING)),
    (
        "enable-priority-and-fairness",
        NoEffect("the in-flight limits are always used, as in metrics-server, which never applies this flag"),
    ),
    ("profiling", NoEffect(NO_PROFILING)),
    // Logging
    (
        "log-flush-frequency",
        NoEffect("every log line is written at once, so none ever waits for a flush (the value is still checked)"),
    ),
    ("log-json-info-buffer-size", RefusedWhenSet(ALPHA_LOGGING)),
    ("log-json-split-stream", RefusedWhenSet(ALPHA_LOGGING)),
    ("log-text-info-buffer-size", RefusedWhenSet(ALPHA_LOGGING)),
    ("log-text-split-stream", RefusedWhenSet(ALPHA_LOGGING)),
    ("logging-format", I),
    ("v", I),
    ("vmodule", I),
    // cobra
    ("help", I),
];

/// How `flag` (a long name) is honoured, if metrics-server 0.9 has it.
pub fn support(flag: &str) -> Option<Support> {
    FLAGS.iter().find(|(name, _)| *name == flag).map(|(_, s)| *s)
}

/// One line for the start-up log.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CompatNote {
    pub flag: String,
    pub message: String,
}

/// The notes for the no-effect flags among `given` (long names given on
/// the command line), one per flag, in table order.
pub fn no_effect_notes(given: &BTreeSet<String>) -> Vec<CompatNote> {
    FLAGS
        .iter()
        .filter(|(name, _)| given.contains(*name))
        .filter_map(|(name, support)| match support {
            NoEffect(why) => Some(CompatNote {
                flag: format!("--{name}"),
                message: format!("accepted for compatibility with metrics-server; it has no effect here: {why}"),
            }),
            _ => None,
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_table_has_every_flag_once() {
        let names: BTreeSet<&str> = FLAGS.iter().map(|(n, _)| *n).collect();
        assert_eq!(names.len(), FLAGS.len(), "a flag is listed twice");
        assert_eq!(FLAGS.len(), 105);
    }

    #[test]
    fn notes_name_only_given_no_effect_flags() {
        let given: BTreeSet<String> = ["profiling", "metric-resolution", "feature-gates"].map(String::from).into();
        let notes = no_effect_notes(&given);
        assert_eq!(notes.len(), 1);
        assert_eq!(notes[0].flag, "--profiling");
        assert!(notes[0].message.contains("accepted for compatibility"));
    }
}
