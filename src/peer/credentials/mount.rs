//! Reading the mounted peer CA Secret (`--peer-ca-dir`): the files as one
//! consistent snapshot. The kubelet updates a Secret volume by writing a
//! new timestamped directory and swapping the `..data` symlink, which
//! file-change notifications miss, so the files are polled; a snapshot is
//! read from behind `..data` where it exists, and read twice, so a set that
//! straddles a swap is never taken. Waiting at start for a Secret that is
//! not mounted yet lives here too. Nothing here judges the contents
//! (that is `authority`'s).

use std::io::ErrorKind;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use super::authority::{CA_CERT, CA_KEY, CaFiles, PREVIOUS_CA_CERT, ROTATION};

/// How often start-up looks for a Secret that is not mounted yet.
const WAIT_POLL: Duration = Duration::from_millis(500);
/// How often start-up says again that it is still waiting.
const WAIT_REPEAT: Duration = Duration::from_secs(60);

/// Reading the directory failed for another reason than a missing file.
#[derive(Debug, thiserror::Error)]
#[error("--peer-ca-dir {}: {what}: {source}", dir.display())]
pub struct MountError {
    pub dir: PathBuf,
    pub what: String,
    pub source: std::io::Error,
}

/// What the directory holds now.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Snapshot {
    /// `ca.crt` or `ca.key` is absent: the Secret is not mounted (yet).
    Absent,
    /// The files changed while they were read; read again later.
    Changing,
    Files(CaFiles),
}

/// The directory the files are read from: behind `..data` when the
/// kubelet's atomic writer made the mount.
fn data_dir(dir: &Path) -> Result<PathBuf, std::io::Error> {
    let data = dir.join("..data");
    match std::fs::canonicalize(&data) {
        Ok(resolved) => Ok(resolved),
        Err(e) if e.kind() == ErrorKind::NotFound => Ok(dir.to_path_buf()),
        Err(e) => Err(e),
    }
}

fn read_once(dir: &Path) -> Result<Option<CaFiles>, MountError> {
    let err = |what: String| move |source| MountError { dir: dir.to_path_buf(), what, source };
    let base = match data_dir(dir) {
        Ok(b) => b,
        // The directory itself is not there yet.
        Err(e) if e.kind() == ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(err("..data".into())(e)),
    };
    let read = |key: &str| match std::fs::read(base.join(key)) {
        Ok(bytes) => Ok(Some(bytes)),
        Err(e) if e.kind() == ErrorKind::NotFound => Ok(None),
        Err(e) => Err(err(key.to_string())(e)),
    };
    let files = CaFiles {
        ca_crt: read(CA_CERT)?,
        ca_key: read(CA_KEY)?,
        previous: read(PREVIOUS_CA_CERT)?,
        rotation: read(ROTATION)?,
    };
    Ok(Some(files))
}

/// One consistent snapshot of the directory.
pub fn read(dir: &Path) -> Result<Snapshot, MountError> {
    // A timestamped directory vanishes after the next swap: a read that
    // lands in one being removed sees missing files, which the second read
    // then contradicts.
    let first = read_once(dir)?;
    let second = read_once(dir)?;
    Ok(match (first, second) {
        (a, b) if a != b => Snapshot::Changing,
        (Some(f), _) if f.ca_crt.is_some() && f.ca_key.is_some() => Snapshot::Files(f),
        _ => Snapshot::Absent,
    })
}

/// Waits until the directory holds a CA (the Secret is mounted), saying so
/// in the log while it waits, and returns the files.
pub async fn wait_for(dir: &Path) -> Result<CaFiles, MountError> {
    let mut said: Option<Instant> = None;
    loop {
        match read(dir)? {
            Snapshot::Files(files) => {
                if said.is_some() {
                    tracing::info!(dir = %dir.display(), "the peer CA is mounted");
                }
                return Ok(files);
            }
            Snapshot::Changing => {}
            Snapshot::Absent => {
                if said.is_none_or(|t| t.elapsed() >= WAIT_REPEAT) {
                    tracing::info!(
                        dir = %dir.display(),
                        "waiting for the peer CA: {CA_CERT} and {CA_KEY} appear there once the Secret that \
                         `ha-metrics-server certgen` (the certgen Job) makes is mounted"
                    );
                    said = Some(Instant::now());
                }
            }
        }
        tokio::time::sleep(WAIT_POLL).await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn kubelet_write(dir: &Path, generation: u32, files: &[(&str, &str)]) {
        // What the kubelet's atomic writer does: a new data dir, a `..data`
        // symlink swapped over the old one, and one symlink per key.
        std::fs::create_dir_all(dir).unwrap();
        let ts = format!("..2025_01_01_00_00_{generation:02}.0001");
        std::fs::create_dir(dir.join(&ts)).unwrap();
        for (k, v) in files {
            std::fs::write(dir.join(&ts).join(k), v).unwrap();
        }
        let tmp = dir.join("..data_tmp");
        std::os::unix::fs::symlink(&ts, &tmp).unwrap();
        std::fs::rename(&tmp, dir.join("..data")).unwrap();
        for (k, _) in files {
            let link = dir.join(k);
            if std::fs::symlink_metadata(&link).is_err() {
                std::os::unix::fs::symlink(format!("..data/{k}"), &link).unwrap();
            }
        }
    }

    #[test]
    fn an_absent_mount_then_a_kubelet_volume_and_its_update_are_read_whole() {
        let tmp = tempfile::tempdir().unwrap();
        let dir = tmp.path().join("peer-ca");
        assert_eq!(read(&dir).unwrap(), Snapshot::Absent, "no directory yet");
        kubelet_write(&dir, 1, &[("ca.crt", "one")]);
        assert_eq!(read(&dir).unwrap(), Snapshot::Absent, "no key yet");
        kubelet_write(&dir, 2, &[("ca.crt", "two"), ("ca.key", "k2")]);
        let Snapshot::Files(f) = read(&dir).unwrap() else { panic!("files") };
        assert_eq!((f.ca_crt.as_deref(), f.ca_key.as_deref()), (Some(&b"two"[..]), Some(&b"k2"[..])));
        assert_eq!(f.previous, None);
        kubelet_write(&dir, 3, &[("ca.crt", "three"), ("ca.key", "k3"), ("previous-ca.crt", "two")]);
        let Snapshot::Files(f) = read(&dir).unwrap() else { panic!("files") };
        assert_eq!(f.ca_crt.as_deref(), Some(&b"three"[..]));
        assert_eq!(f.previous.as_deref(), Some(&b"two"[..]));
    }

    #[test]
    fn plain_files_without_a_data_link_are_read_too() {
        let tmp = tempfile::tempdir().unwrap();
        std::fs::write(tmp.path().join("ca.crt"), "c").unwrap();
        std::fs::write(tmp.path().join("ca.key"), "k").unwrap();
        assert!(matches!(read(tmp.path()).unwrap(), Snapshot::Files(_)));
    }
}
