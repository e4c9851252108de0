use std::time::{Duration, SystemTime};

use rcgen::{BasicConstraints, CertificateParams, DistinguishedName, DnType, IsCa, KeyPair, KeyUsagePurpose};

use super::*;

/// A self-signed certificate named `name` with `key`, as rcgen makes it.
fn self_signed(name: &str, key: &KeyPair, ca: bool, usages: Vec<KeyUsagePurpose>, days: (i64, i64)) -> String {
    let mut params = CertificateParams::new(Vec::<String>::new()).unwrap();
    let mut dn = DistinguishedName::new();
    dn.push(DnType::CommonName, name);
    params.distinguished_name = dn;
    params.is_ca = if ca { IsCa::Ca(BasicConstraints::Unconstrained) } else { IsCa::ExplicitNoCa };
    params.key_usages = usages;
    let day = Duration::from_secs(86_400);
    let at = |d: i64| if d >= 0 { SystemTime::now() + day * d as u32 } else { SystemTime::now() - day * (-d) as u32 };
    params.not_before = at(days.0).into();
    params.not_after = at(days.1).into();
    params.self_signed(key).unwrap().pem()
}

fn ca_usages() -> Vec<KeyUsagePurpose> {
    vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign, KeyUsagePurpose::DigitalSignature]
}

fn files(cert: &str, key: &str) -> CaFiles {
    CaFiles { ca_crt: Some(cert.as_bytes().to_vec()), ca_key: Some(key.as_bytes().to_vec()), ..CaFiles::default() }
}

fn of(ca: &Ca) -> CaFiles {
    files(ca.cert_pem(), &ca.key_pem())
}

fn refused(f: &CaFiles) -> CaError {
    check("peer Secret kube-system/peer", f, SystemTime::now()).expect_err("refused")
}

fn rotation(previous: &Ca, switch_in: i64, overlap: i64) -> (Vec<u8>, Vec<u8>) {
    let now = unix(SystemTime::now());
    let s = Schedule { switch_at: now + switch_in, retire_at: now + switch_in + overlap };
    (previous.cert_pem().as_bytes().to_vec(), s.to_json().into_bytes())
}

#[test]
fn a_ca_made_by_certgen_is_one_ca_certificate_with_its_key() {
    let ca = Ca::new("peer CA").unwrap();
    let set = check("peer Secret kube-system/peer", &of(&ca), SystemTime::now()).unwrap();
    assert_eq!(set.cert.name, "CN=peer CA");
    assert!(set.previous.is_none());
    assert_eq!(set.trusted_at(SystemTime::now()).len(), 1);
}

#[test]
fn a_key_that_does_not_match_the_certificate_is_refused_without_showing_it() {
    let (a, b) = (Ca::new("A").unwrap(), Ca::new("B").unwrap());
    let e = refused(&files(a.cert_pem(), &b.key_pem()));
    assert_eq!(e.key, "ca.key");
    assert!(e.cause.contains("is not the key of ca.crt") && e.cause.contains("CN=A"), "{e}");
    assert!(e.to_string().starts_with("peer Secret kube-system/peer: ca.key: "), "{e}");
    assert!(!e.to_string().contains("PRIVATE KEY"), "{e}");
    let e = refused(&files(a.cert_pem(), "-----BEGIN EC PRIVATE KEY-----\nAAAA\n-----END EC PRIVATE KEY-----\n"));
    assert!(e.cause.contains("PKCS#8") && e.cause.contains("privateKey.encoding"), "{e}");
    let e = refused(&files(a.cert_pem(), "not a key"));
    assert_eq!(e.key, "ca.key");
}

#[test]
fn a_certificate_that_is_not_a_ca_or_may_not_sign_is_refused() {
    let ca = Ca::new("issuer").unwrap();
    let spec =
        tls::pki::LeafSpec { common_name: "leaf", organizations: &[], sans: &[], usage: tls::pki::Usage::Server };
    let leaf = ca.issue(&spec).unwrap();
    let e = refused(&files(&leaf.cert_pem, &leaf.key_pem));
    assert_eq!(e.key, "ca.crt");
    assert!(e.cause.contains("is not a CA") && e.cause.contains("CN=leaf"), "{e}");
    let key = KeyPair::generate().unwrap();
    let no_sign = self_signed("no-sign", &key, true, vec![KeyUsagePurpose::DigitalSignature], (-1, 365));
    let e = refused(&files(&no_sign, &key.serialize_pem()));
    assert!(e.cause.contains("keyCertSign"), "{e}");
    let no_usage = self_signed("no-usage", &key, true, vec![], (-1, 365));
    assert!(refused(&files(&no_usage, &key.serialize_pem())).cause.contains("keyCertSign"));
    let expired = self_signed("old", &key, true, ca_usages(), (-30, -2));
    assert!(refused(&files(&expired, &key.serialize_pem())).cause.contains("expired"));
    let future = self_signed("later", &key, true, ca_usages(), (2, 30));
    assert!(refused(&files(&future, &key.serialize_pem())).cause.contains("not valid before"));
}

#[test]
fn an_appended_root_is_refused_and_so_is_garbage_or_a_missing_key() {
    let (a, b) = (Ca::new("A").unwrap(), Ca::new("B").unwrap());
    let bundle = format!("{}\n{}", a.cert_pem(), b.cert_pem());
    let e = refused(&files(&bundle, &a.key_pem()));
    assert_eq!(e.key, "ca.crt");
    assert!(e.cause.contains("holds 2 certificates") && e.cause.contains("--rotate"), "{e}");
    assert_eq!(refused(&files("garbage", &a.key_pem())).key, "ca.crt");
    let e = refused(&CaFiles { ca_crt: Some(a.cert_pem().as_bytes().to_vec()), ..CaFiles::default() });
    assert_eq!((e.key, e.cause.as_str()), ("ca.key", "missing"));
    assert_eq!(refused(&CaFiles::default()).key, "ca.crt");
}

#[test]
fn a_rotation_needs_both_its_files_a_ca_as_previous_and_a_bounded_schedule() {
    let (old, new) = (Ca::new("old").unwrap(), Ca::new("new").unwrap());
    let (prev, schedule) = rotation(&old, 60, 60);
    let good = CaFiles { previous: Some(prev.clone()), rotation: Some(schedule.clone()), ..of(&new) };
    let set = check("s", &good, SystemTime::now()).unwrap();
    assert_eq!(set.previous.as_ref().unwrap().cert.name, "CN=old");
    assert_eq!(refused(&CaFiles { previous: Some(prev.clone()), ..of(&new) }).key, "rotation.json");
    assert_eq!(refused(&CaFiles { rotation: Some(schedule.clone()), ..of(&new) }).key, "previous-ca.crt");
    let two = format!("{}{}", old.cert_pem(), new.cert_pem()).into_bytes();
    let e = refused(&CaFiles { previous: Some(two), rotation: Some(schedule.clone()), ..of(&new) });
    assert_eq!(e.key, "previous-ca.crt");
    let e =
        refused(&CaFiles { previous: Some(new.cert_pem().as_bytes().to_vec()), rotation: Some(schedule), ..of(&new) });
    assert!(e.cause.contains("same CA"), "{e}");
    let day = 86_400;
    for (switch_in, overlap, why) in [(60, 2 * day, "overlap"), (2 * day, 60, "ahead"), (60, 0, "not after")] {
        let (prev, schedule) = rotation(&old, switch_in, overlap);
        let e = refused(&CaFiles { previous: Some(prev), rotation: Some(schedule), ..of(&new) });
        assert_eq!(e.key, "rotation.json", "{why}");
    }
    let e = refused(&CaFiles { previous: Some(prev), rotation: Some(b"{\"switchAt\": 5}".to_vec()), ..of(&new) });
    assert!(e.cause.contains("switchAt"), "{e}");
}

#[test]
fn during_a_rotation_both_cas_are_trusted_and_the_switch_and_retirement_follow_the_schedule() {
    let (old, new) = (Ca::new("old").unwrap(), Ca::new("new").unwrap());
    let (prev, schedule) = rotation(&old, 100, 100);
    let set =
        check("s", &CaFiles { previous: Some(prev), rotation: Some(schedule), ..of(&new) }, SystemTime::now()).unwrap();
    let old_id = set.previous.as_ref().unwrap().cert.id.clone();
    let at = |s: u64| SystemTime::now() + Duration::from_secs(s);
    let names = |t| set.trusted_at(t).iter().map(|c| c.name.clone()).collect::<Vec<_>>();
    assert_eq!(names(at(0)), ["CN=new", "CN=old"]);
    assert_eq!(names(at(150)), ["CN=new", "CN=old"]);
    assert_eq!(names(at(250)), ["CN=new"], "retired after the overlap");
    // A replica presenting from the old CA keeps doing so until the switch;
    // one that never had it (started during the rotation) presents the new one.
    assert_eq!(set.present_from(Some(&old_id), at(0)).name, "CN=old");
    assert_eq!(set.present_from(Some(&old_id), at(150)).name, "CN=new");
    assert_eq!(set.present_from(None, at(0)).name, "CN=new");
}

#[test]
fn a_running_replica_takes_the_same_ca_renewed_or_a_deliberate_rotation_and_nothing_else() {
    let key = KeyPair::generate().unwrap();
    let first = self_signed("cluster", &key, true, ca_usages(), (-1, 365));
    let renewed = self_signed("cluster", &key, true, ca_usages(), (-1, 730));
    assert_ne!(first, renewed);
    let set = check("s", &files(&first, &key.serialize_pem()), SystemTime::now()).unwrap();
    let in_use = InUse { active: set.cert.id.clone(), trusted: vec![set.cert.id.clone()] };
    let next = check("s", &files(&renewed, &key.serialize_pem()), SystemTime::now()).unwrap();
    assert_eq!(classify("s", &in_use, "CN=cluster", &next), Ok(Change::Same), "same subject and key: a renewal");

    let other = Ca::new("other").unwrap();
    let swapped = check("s", &of(&other), SystemTime::now()).unwrap();
    let e = classify("dir /etc/peer-ca", &in_use, "CN=cluster", &swapped).unwrap_err();
    assert_eq!(e.key, "ca.crt");
    assert!(e.cause.contains("CN=other") && e.cause.contains("CN=cluster") && e.cause.contains("--rotate"), "{e}");

    let now = unix(SystemTime::now());
    let schedule = Schedule { switch_at: now + 60, retire_at: now + 120 }.to_json().into_bytes();
    let rotated = CaFiles { previous: Some(first.as_bytes().to_vec()), rotation: Some(schedule.clone()), ..of(&other) };
    let rotated = check("s", &rotated, SystemTime::now()).unwrap();
    assert_eq!(classify("s", &in_use, "CN=cluster", &rotated), Ok(Change::Rotation));

    // A rotation from a CA this replica does not use is not one.
    let stranger = Ca::new("stranger").unwrap();
    let wrong = CaFiles {
        previous: Some(stranger.cert_pem().as_bytes().to_vec()),
        rotation: Some(schedule.clone()),
        ..of(&other)
    };
    let e = classify("s", &in_use, "CN=cluster", &check("s", &wrong, SystemTime::now()).unwrap()).unwrap_err();
    assert_eq!(e.key, "previous-ca.crt");
    // Nor can the CA in use come back with an extra root as "previous".
    let sneaky = CaFiles {
        previous: Some(stranger.cert_pem().as_bytes().to_vec()),
        rotation: Some(schedule),
        ..files(&first, &key.serialize_pem())
    };
    let e = classify("s", &in_use, "CN=cluster", &check("s", &sneaky, SystemTime::now()).unwrap()).unwrap_err();
    assert!(e.cause.contains("does not trust"), "{e}");
}

#[test]
fn a_ca_made_with_the_openssl_command_of_deploy_readme_is_accepted_and_one_without_key_usage_is_not() {
    // deploy/README.md: openssl req -x509 ... -addext basicConstraints=critical,CA:TRUE
    //   -addext keyUsage=critical,keyCertSign,cRLSign (valid 100 years).
    let ok = files(include_str!("testdata/openssl-ca.crt"), include_str!("testdata/openssl-ca.key"));
    let set = check("s", &ok, SystemTime::now()).unwrap();
    assert_eq!(set.cert.name, "CN=ha-metrics-server-cluster-ca");
    // The same command without -addext: OpenSSL 3's defaults set no keyUsage.
    let plain =
        files(include_str!("testdata/openssl-no-key-usage.crt"), include_str!("testdata/openssl-no-key-usage.key"));
    assert!(refused(&plain).cause.contains("keyCertSign"));
}
