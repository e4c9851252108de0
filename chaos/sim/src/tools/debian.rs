//! Prometheus, promtool and libfaketime from Debian's packages, with
//! `apt-get` (which verifies the archive's signatures, so no checksum of
//! ours is needed). A package that ships a service (prometheus) must not
//! leave one running: while it installs, `policy-rc.d` answers 101 ("action
//! forbidden"), the mechanism Debian's maintainer scripts honour, and the
//! processes of the package's binaries are compared before and after.
//! Needs root; without it the error says which command to run once.

use std::path::{Path, PathBuf};

use super::{ToolError, announce, lock, on_path, run};

/// A file that a Debian package installs.
#[derive(Debug)]
pub struct Packaged {
    /// What the tests call it.
    pub tool: &'static str,
    /// The package that installs it.
    pub package: &'static str,
    /// Where to look for it.
    pub locate: fn() -> Option<PathBuf>,
    /// Binaries whose processes the package could start as a service.
    pub services: &'static [&'static str],
}

/// The Prometheus server.
pub const PROMETHEUS: Packaged =
    Packaged { tool: "prometheus", package: "prometheus", locate: || on_path("prometheus"), services: SERVICES };
/// promtool, from the same package.
pub const PROMTOOL: Packaged =
    Packaged { tool: "promtool", package: "prometheus", locate: || on_path("promtool"), services: SERVICES };
/// `libfaketime.so.1`, the `LD_PRELOAD` library (package `faketime`
/// depends on `libfaketime`, which holds it).
pub const LIBFAKETIME: Packaged =
    Packaged { tool: "libfaketime", package: "faketime", locate: locate_libfaketime, services: &[] };

const SERVICES: &[&str] = &["/usr/bin/prometheus", "/usr/bin/prometheus-node-exporter"];

/// Debian puts it under the multiarch folder (`/usr/lib/x86_64-linux-gnu/faketime/`).
fn locate_libfaketime() -> Option<PathBuf> {
    let mut dirs: Vec<PathBuf> = std::fs::read_dir("/usr/lib").ok()?.flatten().map(|e| e.path()).collect();
    dirs.sort();
    dirs.insert(0, PathBuf::from("/usr/lib"));
    dirs.into_iter().map(|d| d.join("faketime/libfaketime.so.1")).find(|p| p.is_file())
}

/// The tool's path, installing its package first if it is missing.
pub fn ensure(p: &Packaged, why: &str) -> Result<PathBuf, ToolError> {
    if let Some(path) = (p.locate)() {
        return Ok(path);
    }
    let _lock = lock(p.tool)?;
    if let Some(path) = (p.locate)() {
        return Ok(path);
    }
    // SAFETY: geteuid has no preconditions.
    if unsafe { libc::geteuid() } != 0 {
        return Err(ToolError::CannotInstall {
            tool: p.tool.into(),
            reason: format!(
                "installing Debian package {0} needs root; run `sudo apt-get install -y --no-install-recommends {0}` once",
                p.package
            ),
        });
    }
    if on_path("apt-get").is_none() {
        return Err(ToolError::CannotInstall {
            tool: p.tool.into(),
            reason: format!("no apt-get here; install package {} (or the tool) by hand", p.package),
        });
    }
    announce(
        p.tool,
        why,
        &format!(
            "`apt-get install -y --no-install-recommends {}` (Debian, signed), services kept from starting",
            p.package
        ),
    );
    install(p)?;
    let path = (p.locate)().ok_or_else(|| ToolError::CannotInstall {
        tool: p.tool.into(),
        reason: format!("package {} installed, but the tool is still not found", p.package),
    })?;
    eprintln!("sim::tools: installed {} ({})", p.tool, path.display());
    Ok(path)
}

fn install(p: &Packaged) -> Result<(), ToolError> {
    let before = processes_of(p.services);
    {
        let _guard = ServiceGuard::hold(Path::new(POLICY_RC_D), p.tool)?;
        let apt = |args: &[&str]| {
            let mut cmd = std::process::Command::new("apt-get");
            cmd.args(["-o", "DPkg::Lock::Timeout=300", "-q"]).args(args).env("DEBIAN_FRONTEND", "noninteractive");
            cmd.stdin(std::process::Stdio::null());
            run(p.tool, &mut cmd)
        };
        let install = ["install", "-y", "--no-install-recommends", p.package];
        if apt(&install).is_err() {
            // A fresh image has no package lists yet.
            apt(&["update"])?;
            apt(&install)?;
        }
    }
    let started: Vec<u32> = processes_of(p.services).into_iter().filter(|pid| !before.contains(pid)).collect();
    if !started.is_empty() {
        return Err(ToolError::StartedService { tool: p.tool.into(), pids: started });
    }
    Ok(())
}

/// Where Debian's `invoke-rc.d` and `deb-systemd-invoke` ask whether a
/// maintainer script may start a service.
pub const POLICY_RC_D: &str = "/usr/sbin/policy-rc.d";

const DENY_ALL: &str =
    "#!/bin/sh\n# Written by ha-metrics-server's test tools while a package installs: start no service.\nexit 101\n";

/// While held, `policy` forbids every service action; the previous file
/// (if any) is put back on drop. A policy that already forbids starting
/// (Docker's images ship one) is left alone.
pub struct ServiceGuard {
    policy: PathBuf,
    saved: Option<PathBuf>,
    wrote: bool,
}

impl ServiceGuard {
    pub fn hold(policy: &Path, tool: &str) -> Result<ServiceGuard, ToolError> {
        let io = |source| ToolError::Io { tool: tool.to_string(), path: policy.to_path_buf(), source };
        let mut guard = ServiceGuard { policy: policy.to_path_buf(), saved: None, wrote: false };
        if policy.is_file() && forbids_start(policy) {
            return Ok(guard);
        }
        if policy.exists() {
            let saved = policy.with_extension("ha-tools-saved");
            std::fs::rename(policy, &saved).map_err(io)?;
            guard.saved = Some(saved);
        }
        std::fs::write(policy, DENY_ALL).map_err(io)?;
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(policy, std::fs::Permissions::from_mode(0o755)).map_err(io)?;
        guard.wrote = true;
        Ok(guard)
    }
}

impl Drop for ServiceGuard {
    fn drop(&mut self) {
        if self.wrote {
            let _ = std::fs::remove_file(&self.policy);
        }
        if let Some(saved) = &self.saved {
            let _ = std::fs::rename(saved, &self.policy);
        }
    }
}

/// Whether `policy-rc.d <service> start` says 101 (forbidden).
fn forbids_start(policy: &Path) -> bool {
    std::process::Command::new(policy)
        .args(["prometheus", "start"])
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .status()
        .is_ok_and(|s| s.code() == Some(101))
}

/// Pids of running processes whose executable is one of `binaries`.
pub fn processes_of(binaries: &[&str]) -> Vec<u32> {
    let Ok(entries) = std::fs::read_dir("/proc") else { return Vec::new() };
    entries
        .flatten()
        .filter_map(|e| {
            let pid: u32 = e.file_name().to_str()?.parse().ok()?;
            let exe = std::fs::read_link(e.path().join("exe")).ok()?;
            binaries.iter().any(|b| exe == Path::new(b)).then_some(pid)
        })
        .collect()
}
