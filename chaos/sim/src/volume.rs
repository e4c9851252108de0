//! Secrets mounted into directories as the kubelet mounts a secret volume:
//! every key a file, written by the kubelet's atomic writer (a new
//! timestamped directory, a `..data` symlink swapped over the previous
//! one, one symlink per key through `..data`), refreshed every interval
//! while the Secret changes (the kubelet's sync period), kept as it was
//! when the Secret goes away, and absent until the Secret exists (the pod
//! would wait for it). Replica processes read these files exactly as they
//! read a real mount. Reads the stand-in's store directly: the kubelet's
//! own access to Secrets is not what the tests are about.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio_util::sync::CancellationToken;

use crate::apiserver::SecretReader;

/// One mounted Secret.
struct Mount {
    namespace: String,
    name: String,
    dir: PathBuf,
    /// What was last written.
    projected: Option<BTreeMap<String, Vec<u8>>>,
}

/// The Secret volumes of a simulated cluster and the loop that refreshes them.
#[derive(Clone)]
pub struct SecretVolumes {
    mounts: Arc<Mutex<Vec<Mount>>>,
    reader: SecretReader,
}

impl SecretVolumes {
    /// Refreshes every mount each `interval` until `shutdown`.
    pub fn start(reader: SecretReader, interval: Duration, shutdown: CancellationToken) -> SecretVolumes {
        let volumes = SecretVolumes { mounts: Arc::default(), reader };
        let v = volumes.clone();
        tokio::spawn(async move {
            let mut tick = tokio::time::interval(interval);
            tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            loop {
                tokio::select! {
                    _ = shutdown.cancelled() => return,
                    _ = tick.tick() => {
                        if let Err(e) = v.sync() {
                            tracing::warn!(error = %e, "projecting a Secret volume");
                        }
                    }
                }
            }
        });
        volumes
    }

    /// Mounts Secret `namespace/name` at `dir` (once; mounting the same
    /// directory again is a no-op) and projects it now if it exists.
    pub fn mount(&self, namespace: &str, name: &str, dir: &Path) -> std::io::Result<()> {
        {
            let mut mounts = self.mounts.lock().unwrap_or_else(|p| p.into_inner());
            if !mounts.iter().any(|m| m.dir == dir) {
                mounts.push(Mount {
                    namespace: namespace.to_string(),
                    name: name.to_string(),
                    dir: dir.to_path_buf(),
                    projected: None,
                });
            }
        }
        self.sync()
    }

    /// Projects every mount whose Secret changed (what one kubelet sync does).
    pub fn sync(&self) -> std::io::Result<()> {
        let mut mounts = self.mounts.lock().unwrap_or_else(|p| p.into_inner());
        for m in mounts.iter_mut() {
            let Some(data) = self.reader.data(&m.namespace, &m.name) else { continue };
            if m.projected.as_ref() != Some(&data) {
                write_atomically(&m.dir, &data)?;
                m.projected = Some(data);
            }
        }
        Ok(())
    }
}

/// Writes `data` into `dir` as the kubelet's atomic writer does.
pub fn write_atomically(dir: &Path, data: &BTreeMap<String, Vec<u8>>) -> std::io::Result<()> {
    std::fs::create_dir_all(dir)?;
    let stamp = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap_or_default().as_nanos();
    let ts = format!("..{stamp}");
    let fresh = dir.join(&ts);
    std::fs::create_dir(&fresh)?;
    for (key, value) in data {
        std::fs::write(fresh.join(key), value)?;
    }
    let old = std::fs::read_link(dir.join("..data")).ok();
    let tmp = dir.join("..data_tmp");
    let _ = std::fs::remove_file(&tmp);
    std::os::unix::fs::symlink(&ts, &tmp)?;
    std::fs::rename(&tmp, dir.join("..data"))?;
    // The user-visible names: one link per key, through ..data; keys that
    // are gone lose theirs.
    for entry in std::fs::read_dir(dir)? {
        let entry = entry?;
        let name = entry.file_name().to_string_lossy().into_owned();
        if !name.starts_with("..") && !data.contains_key(&name) {
            std::fs::remove_file(entry.path())?;
        }
    }
    for key in data.keys() {
        let link = dir.join(key);
        if std::fs::symlink_metadata(&link).is_err() {
            std::os::unix::fs::symlink(format!("..data/{key}"), &link)?;
        }
    }
    if let Some(old) = old {
        std::fs::remove_dir_all(dir.join(old))?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_atomic_writer_swaps_the_data_link_and_drops_keys_that_are_gone() {
        let tmp = tempfile::tempdir().unwrap();
        let dir = tmp.path().join("mount");
        let v1 = BTreeMap::from([("a".to_string(), b"1".to_vec()), ("b".to_string(), b"2".to_vec())]);
        write_atomically(&dir, &v1).unwrap();
        assert_eq!(std::fs::read(dir.join("a")).unwrap(), b"1");
        let first = std::fs::read_link(dir.join("..data")).unwrap();
        let v2 = BTreeMap::from([("a".to_string(), b"3".to_vec())]);
        write_atomically(&dir, &v2).unwrap();
        assert_eq!(std::fs::read(dir.join("a")).unwrap(), b"3");
        assert!(std::fs::symlink_metadata(dir.join("b")).is_err(), "a removed key's file is gone");
        assert_ne!(std::fs::read_link(dir.join("..data")).unwrap(), first);
        assert!(!dir.join(first).exists(), "the old data dir is removed");
    }
}
