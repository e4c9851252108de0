//! The binary of the release before the replication factor (the commit
//! before that work), for the rolling-upgrade test. Built on first use from
//! this repository's history into `target/previous/` (its own target dir,
//! so the binary the other tests run is never replaced), under a file lock
//! so parallel tests build it once; `.ci/run` builds it the same way before
//! the suite, so the build never competes with the timed tests.

use std::io::Write;
use std::os::fd::AsRawFd;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

/// The last commit before the replication factor (protocol 2: one successor
/// holds a copy, no factor in the replicated state).
pub const COMMIT: &str = "c7c8082377b4f1da575e6387ad44e5bfef09bde2";

fn short() -> &'static str {
    &COMMIT[..7]
}

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// Where the built binary is kept.
pub fn path() -> PathBuf {
    root().join("target").join("previous").join(format!("ha-metrics-server-{}", short()))
}

fn run(what: &str, cmd: &mut Command) -> Result<(), String> {
    let status = cmd.status().map_err(|e| format!("{what}: {e}"))?;
    status.success().then_some(()).ok_or_else(|| format!("{what}: {status}"))
}

/// The previous release's binary, built if it is not there yet.
pub fn binary() -> Result<PathBuf, String> {
    let out = path();
    let dir = out.parent().expect("a parent").to_path_buf();
    std::fs::create_dir_all(&dir).map_err(|e| format!("{}: {e}", dir.display()))?;
    let lock = std::fs::File::create(dir.join(".lock")).map_err(|e| format!("the build lock: {e}"))?;
    // SAFETY: flock on a file descriptor this function owns; released when `lock` drops.
    if unsafe { libc::flock(lock.as_raw_fd(), libc::LOCK_EX) } != 0 {
        return Err(format!("the build lock: {}", std::io::Error::last_os_error()));
    }
    if out.is_file() {
        return Ok(out);
    }
    let root = root();
    let has = Command::new("git")
        .args(["-C", &root.to_string_lossy(), "cat-file", "-e", &format!("{COMMIT}^{{commit}}")])
        .status()
        .is_ok_and(|s| s.success());
    if !has {
        return Err(format!(
            "this checkout does not have commit {COMMIT} (a shallow clone?): the test needs its history"
        ));
    }
    eprintln!(
        "building the previous release ({}) into {} for the rolling-upgrade test (once; several minutes)",
        short(),
        dir.display()
    );
    let src = dir.join(format!("src-{}", short()));
    let _ = std::fs::remove_dir_all(&src);
    std::fs::create_dir_all(&src).map_err(|e| format!("{}: {e}", src.display()))?;
    extract(&root, &src)?;
    let target = dir.join("target");
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
    run(
        "building the previous release",
        Command::new(cargo)
            .args(["build", "--locked", "--bin", "ha-metrics-server", "--manifest-path"])
            .arg(src.join("Cargo.toml"))
            .env("CARGO_TARGET_DIR", &target)
            .env("CARGO_PROFILE_DEV_DEBUG", "0"),
    )?;
    install(&target.join("debug").join("ha-metrics-server"), &out)?;
    Ok(out)
}

/// `git archive COMMIT | tar -x -C src`.
fn extract(root: &Path, src: &Path) -> Result<(), String> {
    let archive = Command::new("git")
        .args(["-C", &root.to_string_lossy(), "archive", "--format=tar", COMMIT])
        .stdout(Stdio::piped())
        .output()
        .map_err(|e| format!("git archive: {e}"))?;
    if !archive.status.success() {
        return Err(format!("git archive {COMMIT}: {}", String::from_utf8_lossy(&archive.stderr)));
    }
    let mut tar = Command::new("tar")
        .arg("-x")
        .arg("-C")
        .arg(src)
        .stdin(Stdio::piped())
        .spawn()
        .map_err(|e| format!("tar: {e}"))?;
    tar.stdin.take().expect("piped").write_all(&archive.stdout).map_err(|e| format!("tar: {e}"))?;
    let status = tar.wait().map_err(|e| format!("tar: {e}"))?;
    status.success().then_some(()).ok_or_else(|| format!("tar: {status}"))
}

fn install(built: &Path, out: &Path) -> Result<(), String> {
    let tmp = out.with_extension("tmp");
    std::fs::copy(built, &tmp).map_err(|e| format!("{}: {e}", built.display()))?;
    std::fs::rename(&tmp, out).map_err(|e| format!("{}: {e}", out.display()))
}
