//! What the serving and logging flags of metrics-server 0.9 do to the real
//! binary, as a client or an operator sees it: HTTP/2 off or limited,
//! GOAWAY, TLS curves, versions, suites and SNI certificates, port sharing,
//! CORS and HSTS headers, no API port at all, per-file verbosity and JSON
//! logs. (Requests, shutdown, authentication and audit: `flags_effects_requests.rs`.)

mod common;
mod flagkit;

use std::time::Duration;

use flagkit::{client_config, connect, served_cn, serving};
use rustls::crypto::ring::{cipher_suite as cs, default_provider, kx_group};

/// Starts replica `i` of `c` with `extra` flags.
async fn replica(c: &common::Cluster, i: usize, extra: &[String]) -> flagkit::Started {
    let mut args = c.env.replica_args(i, "2s");
    args.extend(extra.iter().cloned());
    serving(&args, c.env.replica_addr(i), &c.env.work_dir.join(format!("replica-{i}.log"))).await
}

fn flags(list: &[&str]) -> Vec<String> {
    list.iter().map(|s| s.to_string()).collect()
}

/// An HTTP/2 connection to `addr` (ALPN h2) and its driver task.
async fn h2_client(addr: std::net::SocketAddr) -> (h2::client::SendRequest<bytes::Bytes>, tokio::task::JoinHandle<()>) {
    let tls = connect(addr, client_config(&["h2"], None, None), "localhost").await.expect("TLS");
    assert_eq!(tls.get_ref().1.alpn_protocol(), Some(&b"h2"[..]));
    let (send, conn) = h2::client::handshake(tls).await.expect("HTTP/2 handshake");
    let driver = tokio::spawn(async move {
        let _ = conn.await;
    });
    (send, driver)
}

/// GET /livez on an HTTP/2 connection; `Err` once the server sent GOAWAY.
async fn h2_livez(
    send: &mut h2::client::SendRequest<bytes::Bytes>,
    addr: std::net::SocketAddr,
) -> Result<u16, h2::Error> {
    let mut ready = send.clone().ready().await?;
    let req = http::Request::get(format!("https://{addr}/livez")).body(()).unwrap();
    let (resp, _) = ready.send_request(req, true)?;
    let resp = resp.await?;
    let status = resp.status().as_u16();
    let mut body = resp.into_body();
    while let Some(chunk) = body.data().await {
        let chunk = chunk?;
        let _ = body.flow_control().release_capacity(chunk.len());
    }
    *send = ready;
    Ok(status)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn http2_can_be_turned_off_limited_and_given_a_goaway_chance() {
    let c = common::Cluster::start_empty(1, 1, "2s").await;
    let default = replica(&c, 0, &[]).await;
    let http1 = replica(&c, 1, &flags(&["--disable-http2-serving"])).await;
    let limited = replica(&c, 2, &flags(&["--http2-max-streams-per-connection=7"])).await;
    let goaway = replica(&c, 3, &flags(&["--goaway-chance=0.02"])).await;

    // ALPN: h2 by default; HTTP/1.1 only with --disable-http2-serving.
    let both = client_config(&["h2", "http/1.1"], None, None);
    let tls = connect(default.addr, both.clone(), "localhost").await.unwrap();
    assert_eq!(tls.get_ref().1.alpn_protocol(), Some(&b"h2"[..]));
    let tls = connect(http1.addr, both, "localhost").await.unwrap();
    assert_eq!(tls.get_ref().1.alpn_protocol(), Some(&b"http/1.1"[..]), "an h2 client falls back to HTTP/1.1");

    // The concurrent-stream limit the server announces: Go's 250 by default.
    for (r, want) in [(&default, 250), (&limited, 7)] {
        let (mut send, _d) = h2_client(r.addr).await;
        assert_eq!(h2_livez(&mut send, r.addr).await.unwrap(), 200);
        assert_eq!(send.current_max_send_streams(), want, "{}", r.addr);
    }

    // Without a chance the connection stays; with 0.02 the server sends a
    // GOAWAY after some request (on average the 50th; 3000 in a row without
    // one would happen with probability 0.98^3000, about 5e-27).
    let (mut send, _d) = h2_client(default.addr).await;
    for _ in 0..300 {
        assert_eq!(h2_livez(&mut send, default.addr).await.unwrap(), 200);
    }
    let (mut send, _d) = h2_client(goaway.addr).await;
    let mut served = 0;
    while let Ok(200) = h2_livez(&mut send, goaway.addr).await {
        served += 1;
        assert!(served < 3000, "no GOAWAY in 3000 requests at --goaway-chance=0.02");
    }
    eprintln!("GOAWAY after {served} requests at --goaway-chance=0.02");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tls_flags_choose_curves_versions_suites_and_sni_certificates() {
    let c = common::Cluster::start_empty(1, 1, "2s").await;
    let fixtures = flagkit::Fixtures::new(&c.env, &c.env.work_dir.join("fixtures"), c.env.block.aux(0).into()).await;
    let f = |k: &str| fixtures.values[k].clone();
    let curves = replica(&c, 0, &flags(&["--tls-curve-preferences=23"])).await;
    let strict = replica(
        &c,
        1,
        &flags(&["--tls-min-version=VersionTLS12", "--tls-cipher-suites=TLS_ECDHE_ECDSA_WITH_AES_256_GCM_SHA384"]),
    )
    .await;
    let tls13 = replica(&c, 2, &flags(&["--tls-min-version=VersionTLS13"])).await;
    let sni = replica(
        &c,
        3,
        &[
            format!("--tls-cert-file={}", f("serving_cert")),
            format!("--tls-private-key-file={}", f("serving_key")),
            format!("--tls-sni-cert-key={},{}:sni.example.com", f("sni_cert"), f("sni_key")),
        ],
    )
    .await;

    let only = |groups: Vec<&'static dyn rustls::crypto::SupportedKxGroup>| {
        let mut p = default_provider();
        p.kx_groups = groups;
        client_config(&[], None, Some(p))
    };
    assert!(connect(curves.addr, only(vec![kx_group::X25519]), "localhost").await.is_err(), "X25519 not offered");
    assert!(connect(curves.addr, only(vec![kx_group::SECP256R1]), "localhost").await.is_ok(), "P-256 is");

    let tls12_with = |suite| {
        let mut p = default_provider();
        p.cipher_suites = vec![suite];
        client_config(&[], Some(&[&rustls::version::TLS12]), Some(p))
    };
    let aes128 = tls12_with(cs::TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256);
    let aes256 = tls12_with(cs::TLS_ECDHE_ECDSA_WITH_AES_256_GCM_SHA384);
    assert!(connect(strict.addr, aes128.clone(), "localhost").await.is_err(), "a suite not listed");
    assert!(connect(strict.addr, aes256.clone(), "localhost").await.is_ok(), "the listed suite");
    assert!(connect(tls13.addr, aes256, "localhost").await.is_err(), "TLS 1.2 below VersionTLS13");
    let tls13_client = client_config(&[], Some(&[&rustls::version::TLS13]), None);
    assert!(connect(tls13.addr, tls13_client, "localhost").await.is_ok());

    let any = client_config(&[], None, None);
    let s = connect(sni.addr, any.clone(), "sni.example.com").await.unwrap();
    assert_eq!(served_cn(&s), "sni.example.com", "the SNI certificate for its name");
    let s = connect(sni.addr, any, "localhost").await.unwrap();
    assert_eq!(served_cn(&s), "metrics-server", "the default certificate otherwise");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_listener_flags_share_the_port_add_headers_or_serve_nothing() {
    let c = common::Cluster::start_empty(1, 1, "2s").await;
    let plain = replica(&c, 0, &[]).await;
    let shared = replica(&c, 1, &flags(&["--permit-port-sharing"])).await;
    let headers = replica(
        &c,
        2,
        &flags(&[
            "--cors-allowed-origins=//console\\.example\\.com(:|$)",
            "--strict-transport-security-directives=max-age=31536000,includeSubDomains",
        ]),
    )
    .await;

    let reuse_port_bind = |addr: std::net::SocketAddr| {
        let s = tokio::net::TcpSocket::new_v4().unwrap();
        s.set_reuseport(true).unwrap();
        s.set_reuseaddr(true).unwrap();
        s.bind(addr).and_then(|()| s.listen(8))
    };
    assert!(reuse_port_bind(plain.addr).is_err(), "without --permit-port-sharing the port is taken");
    let second = reuse_port_bind(shared.addr).expect("--permit-port-sharing lets another listener share the port");
    drop(second);

    let origin = ("Origin", "https://console.example.com");
    let r = sim::client::fetch(headers.addr, "/livez", None, &[origin]).await.unwrap();
    assert_eq!(r.headers["access-control-allow-origin"], "https://console.example.com");
    assert_eq!(r.headers["strict-transport-security"], "max-age=31536000; includeSubDomains");
    let r = sim::client::fetch(headers.addr, "/livez", None, &[("Origin", "https://evil.example")]).await.unwrap();
    assert!(r.headers.get("access-control-allow-origin").is_none());
    let r = sim::client::fetch(plain.addr, "/livez", None, &[origin]).await.unwrap();
    assert!(
        r.headers.get("access-control-allow-origin").is_none() && r.headers.get("strict-transport-security").is_none()
    );

    // --secure-port=0: no API port at all, the rest runs.
    let addr = c.env.replica_addr(3);
    let mut args = c.env.replica_args(3, "2s");
    args.push("--secure-port=0".into());
    let log = c.env.work_dir.join("no-port.log");
    let p = sim::env::ReplicaProcess::spawn(&common::binary(), &args, &log).unwrap();
    sim::wait::expect("the no-port log line", common::STARTUP, async || p.log_text().contains("not serving the API"))
        .await;
    assert!(sim::client::try_get(addr, "/livez", None, &[]).await.is_err());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn verbosity_vmodule_and_json_shape_the_log() {
    let c = common::Cluster::start_empty(1, 1, "2s").await;
    // "serving TLS" is a debug line of the TLS accept loop (serve.rs).
    let plain = replica(&c, 0, &[]).await;
    let vmodule = replica(&c, 1, &flags(&["--vmodule=serve=4"])).await;
    let verbose = replica(&c, 2, &flags(&["-v=4"])).await;
    let json = replica(&c, 3, &flags(&["--logging-format=json"])).await;
    assert!(!plain.process.log_text().contains("serving TLS"));
    assert!(vmodule.process.log_text().contains("serving TLS"), "{}", vmodule.process.log_text());
    assert!(!vmodule.process.log_text().contains("DEBUG ha_metrics_server::"), "only the named file is verbose");
    assert!(verbose.process.log_text().contains("serving TLS"));
    let text = json.process.log_text();
    assert!(text.lines().count() > 2);
    for line in text.lines() {
        let v: serde_json::Value = serde_json::from_str(line).unwrap_or_else(|e| panic!("not JSON ({e}): {line}"));
        assert!(v.get("level").is_some() && v.get("timestamp").is_some(), "{line}");
    }
    let out = std::process::Command::new(common::binary()).arg("--version").output().unwrap();
    assert_eq!(String::from_utf8_lossy(&out.stdout).trim(), format!("v{}", env!("CARGO_PKG_VERSION")));
    let _ = Duration::ZERO;
}
