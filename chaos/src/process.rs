//! A replica process of the real binary, started with optional extra
//! environment (libfaketime's `LD_PRELOAD` for clock skew), signalled and
//! killed by the pid this harness started, never by name. Dropping it kills
//! and reaps the process.

use std::fs;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};

/// A running (or exited, not yet reaped) replica process.
pub struct Replica {
    child: Child,
    pub log: PathBuf,
    /// Stopped with SIGSTOP and not yet continued.
    pub paused: bool,
    /// Where this process's lines start in the (appended) log.
    pub log_from: u64,
}

impl Replica {
    /// Starts `binary args…` with `env` added; output goes to `log` (appended).
    pub fn spawn(binary: &Path, args: &[String], env: &[(String, String)], log: &Path) -> std::io::Result<Replica> {
        if let Some(parent) = log.parent() {
            fs::create_dir_all(parent)?;
        }
        let log_from = fs::metadata(log).map_or(0, |m| m.len());
        let out = fs::OpenOptions::new().create(true).append(true).open(log)?;
        let err = out.try_clone()?;
        let mut cmd = Command::new(binary);
        cmd.args(args).stdin(Stdio::null()).stdout(out).stderr(err);
        for (k, v) in env {
            cmd.env(k, v);
        }
        Ok(Replica { child: cmd.spawn()?, log: log.to_path_buf(), paused: false, log_from })
    }

    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Sends `signal` to this process only.
    pub fn signal(&mut self, signal: i32) {
        // SAFETY: kill(2) on the pid of a child we own and have not reaped.
        unsafe {
            libc::kill(self.child.id() as i32, signal);
        }
        match signal {
            libc::SIGSTOP => self.paused = true,
            libc::SIGCONT => self.paused = false,
            _ => {}
        }
    }

    /// The exit status, once the process has exited.
    pub fn exited(&mut self) -> Option<std::process::ExitStatus> {
        self.child.try_wait().ok().flatten()
    }

    /// What this process wrote to its log so far.
    pub fn own_log(&self) -> String {
        let text = fs::read(&self.log).unwrap_or_default();
        String::from_utf8_lossy(text.get(self.log_from as usize..).unwrap_or_default()).into_owned()
    }

    /// The last `n` lines of the log.
    pub fn log_tail(&self, n: usize) -> String {
        let text = fs::read_to_string(&self.log).unwrap_or_default();
        let lines: Vec<&str> = text.lines().collect();
        lines[lines.len().saturating_sub(n)..].join("\n")
    }
}

impl Drop for Replica {
    fn drop(&mut self) {
        if self.child.try_wait().ok().flatten().is_none() {
            if self.paused {
                self.signal(libc::SIGCONT);
            }
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}
