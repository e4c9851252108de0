//! The binding rules on certificates from the project's own PKI: a known
//! sender must be the member its certificate names, a stranger gets in only
//! where strangers are admitted, and a joiner must name itself.

use std::sync::Arc;

use tls::PeerCertificates;
use tls::pki::{Ca, LeafSpec, Usage};

use super::*;

/// A replica's certificate as the server issues it: CN = its name, SAN = its peer host.
fn cert(ca: &Ca, name: &str, host: &str) -> PeerCertificates {
    let sans = vec![host.to_string()];
    let pair = ca
        .issue(&LeafSpec { common_name: name, organizations: &[], sans: &sans, usage: Usage::ServerAndClient })
        .unwrap();
    PeerCertificates(Arc::new(tls::pem::certs_from_pem(pair.cert_pem.as_bytes(), "test").unwrap()))
}

fn member(name: &str, host: &str) -> MemberInfo {
    MemberInfo { name: name.into(), api_addr: format!("{host}:10250"), peer_addr: format!("{host}:10251") }
}

#[test]
fn a_known_sender_must_present_its_own_certificate() {
    let ca = Ca::new("cluster").unwrap();
    let (r0, r1) = (member("replica-0", "127.0.3.10"), member("replica-1", "127.0.3.11"));
    let c1 = cert(&ca, "replica-1", "127.0.3.11");
    assert_eq!(sender(Presented::Tls(Some(&c1)), 0x11, Some(&r1), Admit::Members), Ok(()));
    let forged = sender(Presented::Tls(Some(&c1)), 0x10, Some(&r0), Admit::Members).unwrap_err();
    assert_eq!(forged.reason, Refusal::NotTheSender);
    assert!(
        forged.message.contains("replica-0@127.0.3.10:10251") && forged.message.contains("CN=replica-1"),
        "the refusal names both the claimed member and the certificate: {}",
        forged.message
    );
    // Routes open to strangers still bind a known sender.
    let on_hello = sender(Presented::Tls(Some(&c1)), 0x10, Some(&r0), Admit::Strangers).unwrap_err();
    assert_eq!(on_hello.reason, Refusal::NotTheSender);
}

#[test]
fn an_unknown_sender_is_refused_except_where_strangers_are_admitted() {
    let ca = Ca::new("cluster").unwrap();
    let c1 = cert(&ca, "replica-1", "127.0.3.11");
    let unknown = sender(Presented::Tls(Some(&c1)), 0xdead, None, Admit::Members).unwrap_err();
    assert_eq!(unknown.reason, Refusal::UnknownSender);
    assert!(unknown.message.contains("000000000000dead") && unknown.message.contains("CN=replica-1"), "{unknown:?}");
    assert_eq!(sender(Presented::Tls(Some(&c1)), 0xdead, None, Admit::Strangers), Ok(()));
}

#[test]
fn a_request_without_a_certificate_on_tls_is_refused() {
    let r1 = member("replica-1", "127.0.3.11");
    let none = sender(Presented::Tls(None), 0x11, Some(&r1), Admit::Strangers).unwrap_err();
    assert_eq!(none.reason, Refusal::NoCertificate);
    assert_eq!(sender(Presented::PlainTransport, 0x11, None, Admit::Members), Ok(()));
}

#[test]
fn a_joiner_must_name_itself_by_name_and_address() {
    let ca = Ca::new("cluster").unwrap();
    let c1 = cert(&ca, "replica-1", "127.0.3.11");
    assert_eq!(joiner(Presented::Tls(Some(&c1)), 7, &member("replica-1", "127.0.3.11")), Ok(()));
    // Another member's name at its own address, or its name at another address.
    for info in
        [member("replica-0", "127.0.3.11"), member("replica-1", "127.0.3.10"), member("replica-0", "127.0.3.10")]
    {
        let d = joiner(Presented::Tls(Some(&c1)), 7, &info).unwrap_err();
        assert_eq!(d.reason, Refusal::JoinNotSelf, "{info}");
        assert!(d.message.contains(&info.to_string()) && d.message.contains("CN=replica-1"), "{}", d.message);
    }
}

#[test]
fn refusals_are_counted_by_reason_and_logged_at_most_once_per_interval() {
    let r = Refusals::default();
    assert!(r.count(Refusal::NotTheSender), "the first refusal of a reason is logged");
    assert!(!r.count(Refusal::NotTheSender), "the next within LOG_EVERY is only counted");
    assert!(r.count(Refusal::UnknownSender));
    let snap = r.snapshot();
    assert_eq!(snap, vec![("no_certificate", 0), ("unknown_sender", 1), ("not_the_sender", 2), ("join_not_self", 0)]);
}
