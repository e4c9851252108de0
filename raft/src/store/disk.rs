//! The store's file system calls, behind one seam ([`Disk`]). Production
//! goes straight to `std::fs`; a test can put a [`Injector`] in front of
//! every call to make it fail (ENOSPC, EIO) or stall, so the failure paths
//! (rollback, fault reporting, fsync off the runtime threads) run for real
//! without a broken disk. Blocking: call it from a blocking thread only.

use std::fmt;
use std::fs::{self, File, OpenOptions};
use std::io::{self, Write};
use std::path::Path;
use std::sync::Arc;

/// A file system call of the store.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Call {
    /// Writing bytes to a file.
    Write,
    /// fsync (or fdatasync) of a file or directory.
    Sync,
    /// Changing a file's length.
    SetLen,
    /// Creating or opening a file.
    Open,
    /// Renaming a file over another.
    Rename,
    /// Reading a whole file.
    Read,
}

/// Called before every call with the call and its path: `Err` makes the
/// call fail with that error; blocking in it stalls the call.
pub type Injector = Arc<dyn Fn(Call, &Path) -> io::Result<()> + Send + Sync>;

/// The store's way to the file system.
#[derive(Clone, Default)]
pub struct Disk {
    inject: Option<Injector>,
}

impl fmt::Debug for Disk {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(if self.inject.is_some() { "Disk(with injected faults)" } else { "Disk" })
    }
}

impl Disk {
    /// A disk whose every call first goes through `inject` (tests).
    pub fn with_injector(inject: Injector) -> Disk {
        Disk { inject: Some(inject) }
    }

    fn check(&self, call: Call, path: &Path) -> io::Result<()> {
        match &self.inject {
            Some(f) => f(call, path),
            None => Ok(()),
        }
    }

    /// Writes all of `buf` to `file` (at `path`).
    pub fn write_all(&self, file: &mut File, path: &Path, buf: &[u8]) -> io::Result<()> {
        self.check(Call::Write, path)?;
        file.write_all(buf)
    }

    /// fdatasync.
    pub fn sync_data(&self, file: &File, path: &Path) -> io::Result<()> {
        self.check(Call::Sync, path)?;
        file.sync_data()
    }

    /// fsync.
    pub fn sync_all(&self, file: &File, path: &Path) -> io::Result<()> {
        self.check(Call::Sync, path)?;
        file.sync_all()
    }

    /// Sets the length of `file`.
    pub fn set_len(&self, file: &File, path: &Path, len: u64) -> io::Result<()> {
        self.check(Call::SetLen, path)?;
        file.set_len(len)
    }

    /// Opens `path` with `options`.
    pub fn open(&self, options: &OpenOptions, path: &Path) -> io::Result<File> {
        self.check(Call::Open, path)?;
        options.open(path)
    }

    /// Renames `from` over `to`.
    pub fn rename(&self, from: &Path, to: &Path) -> io::Result<()> {
        self.check(Call::Rename, to)?;
        fs::rename(from, to)
    }

    /// Reads the whole file; `None` when it does not exist.
    pub fn read(&self, path: &Path) -> io::Result<Option<Vec<u8>>> {
        self.check(Call::Read, path)?;
        match fs::read(path) {
            Ok(b) => Ok(Some(b)),
            Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(None),
            Err(e) => Err(e),
        }
    }

    /// fsyncs the directory holding `path`, so a rename or create is durable.
    pub fn sync_dir(&self, path: &Path) -> io::Result<()> {
        match path.parent() {
            Some(dir) if !dir.as_os_str().is_empty() => {
                self.check(Call::Sync, dir)?;
                File::open(dir)?.sync_all()
            }
            _ => Ok(()),
        }
    }
}

/// Runs blocking file I/O on tokio's blocking pool, off the runtime's
/// worker threads; a panic in it comes back as an I/O error.
pub async fn blocking<T: Send + 'static>(f: impl FnOnce() -> io::Result<T> + Send + 'static) -> io::Result<T> {
    match tokio::task::spawn_blocking(f).await {
        Ok(r) => r,
        Err(e) => Err(io::Error::other(format!("the storage thread failed: {e}"))),
    }
}
