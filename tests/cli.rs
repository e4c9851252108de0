//! The binary's command line as an operator meets it: `--help` documents
//! metrics-server's flags, and bad flags stop the process at once with a
//! message that names the flag.

mod common;

use std::process::Command;

fn run(args: &[&str]) -> (bool, String) {
    let out = Command::new(common::binary()).args(args).output().expect("run the binary");
    let text = format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
    (out.status.success(), text)
}

#[test]
fn help_lists_metrics_server_flags() {
    let (ok, help) = run(&["--help"]);
    assert!(ok);
    for flag in [
        "--metric-resolution",
        "--kubeconfig",
        "--kubelet-insecure-tls",
        "--kubelet-use-node-status-port",
        "--kubelet-port",
        "--kubelet-preferred-address-types",
        "--kubelet-certificate-authority",
        "--kubelet-client-certificate",
        "--kubelet-client-key",
        "--kubelet-request-timeout",
        "--node-selector",
        "--deprecated-kubelet-completely-insecure",
        "--bind-address",
        "--secure-port",
        "--cert-dir",
        "--tls-cert-file",
        "--tls-private-key-file",
        "--tls-min-version",
        "--tls-cipher-suites",
        "--requestheader-client-ca-file",
        "--requestheader-allowed-names",
        "--client-ca-file",
        "--authentication-kubeconfig",
        "--authorization-kubeconfig",
        "--authorization-always-allow-paths",
        "--max-staleness",
        "--shutdown-delay-duration",
    ] {
        assert!(help.contains(flag), "--help does not mention {flag}");
    }
}

#[test]
fn bad_flags_fail_at_start_naming_the_flag() {
    for (args, flag) in [
        (vec!["--metric-resolution=5s"], "--metric-resolution"),
        (vec!["--metric-resolution=10s", "--kubelet-request-timeout=10s"], "--kubelet-request-timeout"),
        (vec!["--kubelet-insecure-tls", "--kubelet-certificate-authority=/x"], "--kubelet-insecure-tls"),
        (vec!["--tls-cert-file=/x"], "--tls-private-key-file"),
        (vec!["--kubelet-preferred-address-types=Nope"], "--kubelet-preferred-address-types"),
        (vec!["--metric-resolution=fast"], "--metric-resolution"),
        (vec!["--tls-min-version=TLS1.0"], "--tls-min-version"),
        (vec!["--tls-cipher-suites=TLS_MADE_UP_SUITE"], "--tls-cipher-suites"),
        (vec!["--feature-gates=AllAlpha=true"], "--feature-gates"),
        (vec!["--goaway-chance=0.5"], "--goaway-chance"),
        (vec!["--node-selector=a in"], "--node-selector"),
    ] {
        let (ok, text) = run(&args);
        assert!(!ok, "{args:?} should fail");
        assert!(text.contains(flag), "{args:?}: message does not name {flag}: {text}");
        assert!(!text.contains("panicked"), "{args:?} panicked: {text}");
    }
}
