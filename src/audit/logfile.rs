//! The log backend's file (`--audit-log-path`): events appended as lines,
//! rotated when the next write would pass `--audit-log-maxsize` (the old
//! file renamed `<name>-<UTC time><ext>`, as lumberjack names it for
//! kube-apiserver), backups beyond `--audit-log-maxbackup` or older than
//! `--audit-log-maxage` days removed, and gzipped with
//! `--audit-log-compress`. `-` writes to standard output instead. File work
//! runs on the blocking pool, never on the runtime's threads.

use std::fs::{File, OpenOptions};
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime};

use futures::future::BoxFuture;

use super::backend::Sink;
use super::event::Event;
use crate::config::audit::{LogBackendSettings, LogFormat, LogTarget};

/// Rotation settings.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Rotation {
    pub max_size_bytes: Option<u64>,
    pub max_age: Option<Duration>,
    pub max_backups: Option<usize>,
    pub compress: bool,
}

/// The audit log file (or standard output).
pub struct LogSink {
    format: LogFormat,
    out: Arc<Mutex<Output>>,
}

enum Output {
    Stdout,
    File(RotatingFile),
}

/// A file that rotates by size.
pub struct RotatingFile {
    path: PathBuf,
    rotation: Rotation,
    open: Option<(File, u64)>,
}

impl RotatingFile {
    pub fn new(path: PathBuf, rotation: Rotation) -> RotatingFile {
        RotatingFile { path, rotation, open: None }
    }

    /// Opens (creating the directory 0700 and the file 0600) if needed.
    fn file(&mut self) -> std::io::Result<&mut (File, u64)> {
        if self.open.is_none() {
            use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt};
            if let Some(dir) = self.path.parent().filter(|d| !d.as_os_str().is_empty()) {
                std::fs::DirBuilder::new().recursive(true).mode(0o700).create(dir)?;
            }
            let f = OpenOptions::new().create(true).append(true).mode(0o600).open(&self.path)?;
            let size = f.metadata()?.len();
            self.open = Some((f, size));
        }
        Ok(self.open.as_mut().unwrap_or_else(|| unreachable!("just opened")))
    }

    /// Appends `bytes`, rotating first if they would not fit.
    pub fn write(&mut self, bytes: &[u8]) -> std::io::Result<()> {
        let len = bytes.len() as u64;
        if let Some(max) = self.rotation.max_size_bytes {
            if len > max {
                return Err(std::io::Error::other(format!(
                    "write length {len} exceeds maximum file size {max} (--audit-log-maxsize)"
                )));
            }
            let (_, size) = self.file()?;
            if *size + len > max {
                self.rotate(SystemTime::now())?;
            }
        }
        let (f, size) = self.file()?;
        f.write_all(bytes)?;
        *size += len;
        Ok(())
    }

    /// Moves the current file to a backup and starts a new one.
    pub fn rotate(&mut self, now: SystemTime) -> std::io::Result<()> {
        self.open = None;
        if self.path.exists() {
            std::fs::rename(&self.path, backup_name(&self.path, now))?;
        }
        self.file()?;
        self.clean(now)
    }

    /// Applies max-backups, max-age and compression to the backups.
    fn clean(&self, now: SystemTime) -> std::io::Result<()> {
        let mut backups = list_backups(&self.path)?;
        backups.sort_by_key(|b| std::cmp::Reverse(b.1));
        let mut keep = Vec::new();
        for (i, (path, time)) in backups.into_iter().enumerate() {
            let too_many = self.rotation.max_backups.is_some_and(|n| i >= n);
            let too_old =
                self.rotation.max_age.is_some_and(|age| now.duration_since(time).is_ok_and(|elapsed| elapsed > age));
            if too_many || too_old {
                std::fs::remove_file(&path)?;
            } else {
                keep.push(path);
            }
        }
        if self.rotation.compress {
            for path in keep.iter().filter(|p| p.extension().is_none_or(|e| e != "gz")) {
                gzip(path)?;
            }
        }
        Ok(())
    }
}

/// `<dir>/<stem>-<2006-01-02T15-04-05.000><ext>`, in UTC.
pub fn backup_name(path: &Path, now: SystemTime) -> PathBuf {
    let (stem, ext) = split_name(path);
    path.with_file_name(format!("{stem}-{}{ext}", timestamp(now)))
}

fn split_name(path: &Path) -> (String, String) {
    let name = path.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default();
    match name.rfind('.') {
        Some(i) if i > 0 => (name[..i].to_string(), name[i..].to_string()),
        _ => (name, String::new()),
    }
}

fn timestamp(t: SystemTime) -> String {
    let nanos = t.duration_since(SystemTime::UNIX_EPOCH).map_or(0, |d| d.as_nanos() as i64);
    let secs = apimachinery::format::format_time(nanos);
    // 2006-01-02T15:04:05Z -> 2006-01-02T15-04-05.000
    format!("{}.{:03}", secs.trim_end_matches('Z').replace(':', "-"), nanos.rem_euclid(1_000_000_000) / 1_000_000)
}

/// Parses a backup's time back from its name.
fn parse_timestamp(s: &str) -> Option<SystemTime> {
    let (secs, millis) = s.split_once('.')?;
    let rfc = format!("{}Z", secs.get(..10)?.to_string() + &secs.get(10..)?.replace('-', ":"));
    let nanos = apimachinery::format::parse_time(&rfc)? + millis.parse::<i64>().ok()? * 1_000_000;
    Some(SystemTime::UNIX_EPOCH + Duration::from_nanos(u64::try_from(nanos).ok()?))
}

/// The backups of `path`, with the time in their names.
fn list_backups(path: &Path) -> std::io::Result<Vec<(PathBuf, SystemTime)>> {
    let (stem, ext) = split_name(path);
    let dir = path.parent().filter(|d| !d.as_os_str().is_empty()).unwrap_or(Path::new("."));
    let mut out = Vec::new();
    for entry in std::fs::read_dir(dir)? {
        let entry = entry?;
        let name = entry.file_name().to_string_lossy().into_owned();
        let plain = name.strip_suffix(".gz").unwrap_or(&name);
        let Some(middle) = plain.strip_prefix(&format!("{stem}-")).and_then(|r| r.strip_suffix(ext.as_str())) else {
            continue;
        };
        if let Some(t) = parse_timestamp(middle) {
            out.push((entry.path(), t));
        }
    }
    Ok(out)
}

/// Replaces `path` with `path.gz`.
fn gzip(path: &Path) -> std::io::Result<()> {
    let data = std::fs::read(path)?;
    let target = PathBuf::from(format!("{}.gz", path.display()));
    let mut encoder = flate2::write::GzEncoder::new(File::create(&target)?, flate2::Compression::default());
    encoder.write_all(&data)?;
    encoder.finish()?.sync_all()?;
    std::fs::remove_file(path)
}

impl LogSink {
    /// The sink for the log backend's settings (nothing is opened yet).
    pub fn new(settings: &LogBackendSettings) -> LogSink {
        let out = match &settings.target {
            LogTarget::Stdout => Output::Stdout,
            LogTarget::File(path) => Output::File(RotatingFile::new(
                path.clone(),
                Rotation {
                    max_size_bytes: settings.max_size_bytes,
                    max_age: settings.max_age_days.map(|d| Duration::from_secs(d.saturating_mul(86_400))),
                    max_backups: settings.max_backups,
                    compress: settings.compress,
                },
            )),
        };
        LogSink { format: settings.format, out: Arc::new(Mutex::new(out)) }
    }

    /// Opens the file now, so a path that cannot be written stops the start.
    pub fn open(&self) -> std::io::Result<()> {
        match &mut *self.out.lock().unwrap_or_else(|p| p.into_inner()) {
            Output::Stdout => Ok(()),
            Output::File(f) => f.file().map(|_| ()),
        }
    }
}

impl Sink for LogSink {
    fn write<'a>(&'a self, events: &'a [Event]) -> BoxFuture<'a, Result<(), String>> {
        let text: String = events
            .iter()
            .map(|e| match self.format {
                LogFormat::Json => e.to_json_line(),
                LogFormat::Legacy => e.to_legacy_line(),
            })
            .collect();
        let out = self.out.clone();
        Box::pin(async move {
            tokio::task::spawn_blocking(move || match &mut *out.lock().unwrap_or_else(|p| p.into_inner()) {
                Output::Stdout => {
                    let mut stdout = std::io::stdout().lock();
                    stdout.write_all(text.as_bytes()).and_then(|()| stdout.flush())
                }
                Output::File(f) => f.write(text.as_bytes()),
            })
            .await
            .map_err(|e| format!("audit writer task failed: {e}"))?
            .map_err(|e| e.to_string())
        })
    }

    fn name(&self) -> &'static str {
        "log"
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rotation(max: u64) -> Rotation {
        Rotation { max_size_bytes: Some(max), max_age: None, max_backups: None, compress: false }
    }

    #[test]
    fn backup_names_are_lumberjacks_and_parse_back() {
        let t = SystemTime::UNIX_EPOCH + Duration::from_millis(1_700_000_000_123);
        let name = backup_name(Path::new("/var/log/audit.log"), t);
        assert_eq!(name, Path::new("/var/log/audit-2023-11-14T22-13-20.123.log"));
        assert_eq!(parse_timestamp("2023-11-14T22-13-20.123"), Some(t));
    }

    #[test]
    fn files_rotate_by_size_and_keep_max_backups() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("sub/audit.log");
        let mut f = RotatingFile::new(path.clone(), Rotation { max_backups: Some(2), ..rotation(10) });
        let mut t = SystemTime::now();
        for i in 0..5 {
            f.write(b"12345678\n").unwrap();
            t += Duration::from_secs(1);
            if i < 4 {
                f.rotate(t).unwrap();
            }
        }
        assert!(f.write(b"this is longer than ten").is_err());
        let backups = list_backups(&path).unwrap();
        assert_eq!(backups.len(), 2, "{backups:?}");
        assert_eq!(std::fs::read_to_string(&path).unwrap(), "12345678\n");
        use std::os::unix::fs::PermissionsExt;
        assert_eq!(std::fs::metadata(&path).unwrap().permissions().mode() & 0o777, 0o600);
        assert_eq!(std::fs::metadata(path.parent().unwrap()).unwrap().permissions().mode() & 0o777, 0o700);
    }

    #[test]
    fn writes_past_the_size_rotate_and_backups_are_compressed_and_aged_out() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("audit.log");
        let mut f = RotatingFile::new(
            path.clone(),
            Rotation { compress: true, max_age: Some(Duration::from_secs(86_400)), ..rotation(20) },
        );
        f.write(b"0123456789\n").unwrap();
        f.write(b"0123456789\n").unwrap(); // 22 > 20: rotates first
        let backups = list_backups(&path).unwrap();
        assert_eq!(backups.len(), 1);
        assert!(backups[0].0.to_string_lossy().ends_with(".log.gz"), "{backups:?}");
        let mut text = String::new();
        use std::io::Read;
        flate2::read::GzDecoder::new(File::open(&backups[0].0).unwrap()).read_to_string(&mut text).unwrap();
        assert_eq!(text, "0123456789\n");
        // Two days later the backup is past --audit-log-maxage.
        f.rotate(SystemTime::now() + Duration::from_secs(2 * 86_400)).unwrap();
        let left = list_backups(&path).unwrap();
        assert_eq!(left.len(), 1, "only the newest backup is young enough: {left:?}");
    }
}
