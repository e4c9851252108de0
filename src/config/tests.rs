use super::*;

/// The flags as the binary parses them, validated.
fn parse(flags: &[&str]) -> Result<Config, ConfigError> {
    Config::from_args(&args(flags))
}

fn args(flags: &[&str]) -> ServeArgs {
    let mut argv = vec!["ha-metrics-server"];
    argv.extend_from_slice(flags);
    crate::cli::parse_from(argv).unwrap_or_else(|e| panic!("{flags:?}: {e}")).serve
}

#[test]
fn manifest_flags_are_accepted() {
    let c = parse(&[
        "--cert-dir=/tmp",
        "--secure-port=10250",
        "--kubelet-preferred-address-types=InternalIP,ExternalIP,Hostname",
        "--kubelet-use-node-status-port",
        "--metric-resolution=15s",
    ])
    .unwrap();
    assert_eq!(c.resolution, Duration::from_secs(15));
    assert_eq!(c.max_staleness, Duration::from_secs(30));
    assert!(c.kubelet.use_node_status_port);
    assert_eq!(c.kubelet.address_types[0], AddressType::InternalIp);
}

#[test]
fn resolution_and_timeout_follow_metrics_server_rules() {
    assert!(parse(&["--metric-resolution=10s", "--kubelet-request-timeout=9s"]).is_ok());
    let e = parse(&["--metric-resolution=10s", "--kubelet-request-timeout=10s"]).unwrap_err();
    assert_eq!(e.flag, "--kubelet-request-timeout");
    assert_eq!(parse(&["--metric-resolution=5s"]).unwrap_err().flag, "--metric-resolution");
    assert!(parse(&["--kubelet-request-timeout=0s"]).is_err());
}

#[test]
fn conflicting_kubelet_flags_fail_with_the_flag_named() {
    let e = parse(&["--kubelet-insecure-tls", "--kubelet-certificate-authority=/ca"]).unwrap_err();
    assert_eq!(e.flag, "--kubelet-insecure-tls");
    let e = parse(&["--kubelet-client-certificate=/c"]).unwrap_err();
    assert_eq!(e.flag, "--kubelet-client-key");
    let e = parse(&["--deprecated-kubelet-completely-insecure", "--kubelet-insecure-tls"]).unwrap_err();
    assert_eq!(e.flag, "--deprecated-kubelet-completely-insecure");
    let e = parse(&["--tls-private-key-file=/k"]).unwrap_err();
    assert_eq!(e.flag, "--tls-cert-file");
    let e = parse(&["--tls-cert-file=/c"]).unwrap_err();
    assert_eq!(e.flag, "--tls-private-key-file");
    let c = parse(&["--kubelet-preferred-address-types=InternalIP,Bogus"]).unwrap();
    assert_eq!(
        c.kubelet.address_types,
        [AddressType::InternalIp],
        "an unknown type never matches, as in metrics-server"
    );
    assert!(c.warnings[0].contains("Bogus"), "{:?}", c.warnings);
    assert_eq!(
        parse(&["--kubelet-preferred-address-types=Bogus"]).unwrap_err().flag,
        "--kubelet-preferred-address-types"
    );
    assert_eq!(parse(&["--bind-address=nope"]).unwrap_err().flag, "--bind-address");
    assert_eq!(parse(&["--logging-format=xml"]).unwrap_err().flag, "--logging-format");
}

#[test]
fn bad_values_name_their_flag_before_anything_starts() {
    let c = parse(&["--tls-min-version=VersionTLS11"]).unwrap();
    assert!(c.warnings[0].contains("TLS 1.2 is the lowest version served"), "{:?}", c.warnings);
    assert_eq!(parse(&["--tls-min-version=TLS1.1"]).unwrap_err().flag, "--tls-min-version");
    assert_eq!(parse(&["--tls-cipher-suites=TLS_FOO"]).unwrap_err().flag, "--tls-cipher-suites");
    assert_eq!(
        parse(&["--authorization-always-allow-paths=/a*b"]).unwrap_err().flag,
        "--authorization-always-allow-paths"
    );
    let cluster = |extra: &[&str]| {
        let mut f = vec![
            "--peers=a=127.0.0.1:1,b=127.0.0.2:1,c=127.0.0.3:1",
            "--node-name=a",
            "--peer-ca-file=/ca",
            "--peer-cert-file=/c",
            "--peer-key-file=/k",
        ];
        f.extend_from_slice(extra);
        parse(&f)
    };
    assert!(cluster(&[]).is_ok());
    for voters in ["--voters=2", "--voters=4", "--voters=7"] {
        let e = cluster(&[voters]).unwrap_err();
        assert_eq!(e.flag, "--voters", "{voters}: {e}");
        assert!(e.message.contains("use 3 or 5"), "{e}");
    }
    assert!(cluster(&["--voters=5"]).is_ok());
    assert_eq!(cluster(&["--lease=900ms"]).unwrap_err().flag, "--lease");
    assert_eq!(cluster(&["--peer-advertise-address=127.0.0.9:1"]).unwrap_err().flag, "--peer-advertise-address");
    assert_eq!(
        parse(&[
            "--peers=a=127.0.0.1:1,a=127.0.0.2:1",
            "--node-name=b",
            "--peer-ca-file=/ca",
            "--peer-cert-file=/c",
            "--peer-key-file=/k",
            "--peer-advertise-address=127.0.0.5:1"
        ])
        .unwrap_err()
        .flag,
        "--peers"
    );
}

#[test]
fn auth_defaults_match_the_generic_apiserver() {
    let c = parse(&[]).unwrap();
    assert_eq!(c.auth, AuthSettings::default());
    assert_eq!(c.auth.token_cache_ttl, Duration::from_secs(10));
    assert_eq!(c.auth.authorized_ttl, Duration::from_secs(10));
    assert_eq!(c.auth.unauthorized_ttl, Duration::from_secs(10));
    assert!(c.auth.always_allow_paths.matches("/readyz"));
    assert!(!c.auth.always_allow_paths.matches("/metrics"));
    assert_eq!(c.auth.trust, TrustOverrides::default());
}

#[test]
fn auth_list_flags_split_on_commas_and_win() {
    let c = parse(&[
        "--requestheader-allowed-names=front-proxy-client,aggregator",
        "--authorization-always-allow-paths=/healthz,/metrics*",
        "--authentication-token-webhook-cache-ttl=1m30s",
    ])
    .unwrap();
    assert_eq!(c.auth.trust.requestheader_allowed_names, Some(vec!["front-proxy-client".into(), "aggregator".into()]));
    assert!(c.auth.always_allow_paths.matches("/metrics/slis"));
    assert_eq!(c.auth.token_cache_ttl, Duration::from_secs(90));
}

#[test]
fn always_allow_paths_take_exact_paths_and_trailing_star_prefixes() {
    let d = AlwaysAllowPaths::default();
    assert!(d.matches("/healthz") && d.matches("/livez") && d.matches("readyz"));
    assert!(!d.matches("/healthz/etcd"));
    assert!(!d.matches("/metrics"));
    let p = AlwaysAllowPaths::new(&["/healthz/*", "/version"]).unwrap();
    assert!(p.matches("/healthz/ping"));
    assert!(p.matches("/healthz/"));
    assert!(!p.matches("/healthz"));
    assert!(p.matches("/version") && !p.matches("/versions"));
    assert!(AlwaysAllowPaths::new(&["/a*b"]).is_err());
    assert!(AlwaysAllowPaths::new(&["/a**"]).is_err());
}

#[test]
fn zero_max_staleness_is_the_reference_behaviour() {
    assert_eq!(parse(&["--max-staleness=0"]).unwrap().max_staleness, Duration::ZERO);
}

#[test]
fn go_flag_syntax_reaches_the_settings() {
    // Bool forms, repeated scalars (last wins), repeated lists (append),
    // Go integers and durations.
    let c = parse(&[
        "--kubelet-use-node-status-port=t",
        "--kubelet-insecure-tls=1",
        "--kubelet-insecure-tls=false",
        "--metric-resolution=15s",
        "--metric-resolution=1m30s",
        "--kubelet-preferred-address-types=InternalIP,ExternalIP,Hostname",
        "--kubelet-preferred-address-types=Hostname",
        "--kubelet-port=0x2802",
        "--max-requests-inflight=0",
        "-v=4",
    ])
    .unwrap();
    assert!(c.kubelet.use_node_status_port && !c.kubelet.insecure_tls);
    assert_eq!(c.resolution, Duration::from_secs(90));
    assert_eq!(
        c.kubelet.address_types,
        [AddressType::InternalIp, AddressType::ExternalIp, AddressType::Hostname, AddressType::Hostname]
    );
    assert_eq!(c.kubelet.port, 10242);
    assert_eq!(c.requests.max_requests_inflight, None, "0 is no limit");
    assert_eq!(c.logging.verbosity, 4);
    // The first use of a list flag replaces its default.
    let c = parse(&["--authorization-always-allow-paths=/metrics"]).unwrap();
    assert!(c.auth.always_allow_paths.matches("/metrics") && !c.auth.always_allow_paths.matches("/livez"));
    // `--bool false` leaves `false` as an ignored argument, as pflag does.
    let c = parse(&["--kubelet-insecure-tls", "false"]).unwrap();
    assert!(c.kubelet.insecure_tls);
    assert!(c.warnings.iter().any(|w| w.contains("\"false\" is not a flag")), "{:?}", c.warnings);
}

#[test]
fn metrics_server_refusals_are_kept_with_the_reason() {
    for (flags, flag, why) in [
        (&["--emulated-version=kube=1.31"][..], "--emulated-version", "component not registered: kube"),
        (&["--min-compatibility-version=1.30"][..], "--min-compatibility-version", "component not registered: kube"),
        (&["--feature-gates=AllAlpha=true"][..], "--feature-gates", "component not registered: kube"),
        (&["--log-json-split-stream"][..], "--log-json-split-stream", "LoggingAlphaOptions"),
        (&["--log-text-info-buffer-size=1Mi"][..], "--log-text-info-buffer-size", "LoggingAlphaOptions"),
        (&["--goaway-chance=0.03"][..], "--goaway-chance", "0.02"),
        (&["--max-requests-inflight=-1"][..], "--max-requests-inflight", "negative"),
        (&["--vmodule=x=2", "--logging-format=json"][..], "--vmodule", "text"),
        (
            &["--strict-transport-security-directives=max-age=1,foo"][..],
            "--strict-transport-security-directives",
            "foo",
        ),
        (&["--cors-allowed-origins=example.com"][..], "--cors-allowed-origins", "anchored"),
        (&["--audit-log-path=/a.log", "--audit-log-version=audit.k8s.io/v1beta1"][..], "--audit-log-version", "only"),
    ] {
        let e = parse(flags).unwrap_err();
        assert_eq!(e.flag, flag, "{flags:?}: {e}");
        assert!(e.message.contains(why), "{flags:?}: {e}");
    }
    // Their zero values are accepted.
    assert!(parse(&["--feature-gates=", "--emulated-version=", "--log-json-info-buffer-size=0"]).is_ok());
}

#[test]
fn no_effect_flags_given_are_noted_once_each() {
    let c = parse(&["--profiling=false", "--enable-priority-and-fairness", "--advertise-address=10.0.0.1"]).unwrap();
    let flags: Vec<&str> = c.compat_notes.iter().map(|n| n.flag.as_str()).collect();
    assert_eq!(flags, ["--advertise-address", "--enable-priority-and-fairness", "--profiling"]);
    assert!(c.compat_notes[0].message.starts_with("accepted for compatibility with metrics-server; it has no effect"));
    assert!(parse(&[]).unwrap().compat_notes.is_empty());
}

#[test]
fn request_handling_and_shutdown_flags_reach_the_settings() {
    let c = parse(&[
        "--request-timeout=30s",
        "--max-mutating-requests-inflight=7",
        "--goaway-chance=0.02",
        "--livez-grace-period=10s",
        "--shutdown-send-retry-after",
        "--shutdown-delay-duration=5s",
        "--disable-http2-serving",
        "--http2-max-streams-per-connection=50",
        "--permit-port-sharing",
        "--secure-port=0",
    ])
    .unwrap();
    assert_eq!(c.requests.request_timeout, Duration::from_secs(30));
    assert_eq!(c.requests.max_mutating_requests_inflight, Some(7));
    assert_eq!(c.requests.livez_grace_period, Duration::from_secs(10));
    assert!(c.shutdown.send_retry_after);
    assert_eq!(c.shutdown.delay, Duration::from_secs(5));
    assert_eq!(
        c.shutdown.in_flight_drain,
        Duration::from_secs(2),
        "2s after the retry-after drain, as the generic apiserver"
    );
    assert!(c.serving.disable_http2 && c.serving.reuse_port && !c.serving.enabled());
    assert_eq!(c.serving.http2_max_streams, 50);
    assert_eq!(parse(&[]).unwrap().serving.http2_max_streams, 250, "Go's default");
    let c = parse(&["--request-timeout=3s"]).unwrap();
    assert_eq!(c.shutdown.in_flight_drain, Duration::from_secs(3), "the drain is bounded by --request-timeout");
}

#[test]
fn audit_needs_a_policy_and_a_backend() {
    let c = parse(&["--audit-policy-file=/p.yaml", "--audit-log-path=-", "--audit-log-maxsize=0"]).unwrap();
    let a = c.audit.unwrap();
    assert_eq!(a.log.as_ref().unwrap().target, audit::LogTarget::Stdout);
    assert_eq!(a.log.as_ref().unwrap().mode, audit::Mode::Blocking);
    assert_eq!(a.log.unwrap().max_size_bytes, None);
    let c = parse(&["--audit-log-path=/a.log"]).unwrap();
    assert!(c.audit.is_none());
    assert!(c.warnings[0].contains("no --audit-policy-file"), "{:?}", c.warnings);
    let c = parse(&[
        "--audit-policy-file=/p",
        "--audit-webhook-config-file=/k",
        "--audit-webhook-batch-initial-backoff=2s",
    ])
    .unwrap();
    assert_eq!(c.audit.unwrap().webhook.unwrap().initial_backoff, Duration::from_secs(2));
    assert!(c.warnings.iter().any(|w| w.contains("deprecated")), "{:?}", c.warnings);
}
