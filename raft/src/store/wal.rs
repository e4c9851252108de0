//! On-disk framing shared by every file under the data dir: a header with a
//! magic and a format version, then frames of `[len u32][crc32 u32][payload]`
//! (little endian) with a size limit. From format 2 on, every payload starts
//! with the version of its content (`[version u32][value]`), so a reader can
//! tell "written by a newer release" from "damaged" and say which. Also
//! atomic whole-file replacement (write tmp, fsync, rename, fsync dir).
//! Knows nothing of Raft; blocking (see [`super::disk`]).

use std::fs::OpenOptions;
use std::io;
use std::path::Path;

use super::disk::Disk;
use super::error::{StoreError, io_at};

/// Format version written in every file header: frames carry a content version.
pub const FORMAT_VERSION: u32 = 2;
/// The first format: frames carry a bare value (content version 1 implied).
pub const LEGACY_FORMAT: u32 = 1;
/// Largest frame payload accepted when reading or writing (16 MiB).
pub const MAX_FRAME: usize = 16 << 20;
/// Header length: 8 bytes magic + 4 bytes version.
pub const HEADER_LEN: usize = 12;

/// Bytes of a file header (current format).
pub fn header(magic: &[u8; 8]) -> [u8; HEADER_LEN] {
    let mut h = [0u8; HEADER_LEN];
    h[..8].copy_from_slice(magic);
    h[8..].copy_from_slice(&FORMAT_VERSION.to_le_bytes());
    h
}

/// Checks a file header and returns its format version; the error names
/// the file and what is wrong.
pub fn check_header(path: &Path, bytes: &[u8], magic: &[u8; 8]) -> Result<u32, StoreError> {
    if bytes.len() < HEADER_LEN || &bytes[..8] != magic {
        return Err(StoreError::Damaged {
            path: path.to_path_buf(),
            reason: format!("not a {} file: bad magic", String::from_utf8_lossy(magic)),
        });
    }
    let version = u32::from_le_bytes([bytes[8], bytes[9], bytes[10], bytes[11]]);
    if !(LEGACY_FORMAT..=FORMAT_VERSION).contains(&version) {
        return Err(StoreError::Version {
            path: path.to_path_buf(),
            what: "the file format".into(),
            version,
            max: FORMAT_VERSION,
        });
    }
    Ok(version)
}

/// A frame payload of the current format: `[version u32][value]`.
pub fn content(version: u32, value: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(value.len() + 4);
    out.extend_from_slice(&version.to_le_bytes());
    out.extend_from_slice(value);
    out
}

/// Splits a frame payload of a file in `format` into its content version and
/// value; `None` when a current-format payload is too short to carry one.
pub fn split_content(format: u32, payload: &[u8]) -> Option<(u32, &[u8])> {
    if format == LEGACY_FORMAT {
        return Some((1, payload));
    }
    let (v, rest) = payload.split_first_chunk::<4>()?;
    Some((u32::from_le_bytes(*v), rest))
}

/// Encodes one frame.
pub fn frame(payload: &[u8]) -> io::Result<Vec<u8>> {
    if payload.len() > MAX_FRAME {
        return Err(io::Error::new(
            io::ErrorKind::InvalidInput,
            format!("frame of {} bytes exceeds the {MAX_FRAME}-byte limit", payload.len()),
        ));
    }
    let mut out = Vec::with_capacity(payload.len() + 8);
    out.extend_from_slice(&(payload.len() as u32).to_le_bytes());
    out.extend_from_slice(&crc32fast::hash(payload).to_le_bytes());
    out.extend_from_slice(payload);
    Ok(out)
}

/// What reading the frames of a buffer found.
#[derive(Debug, PartialEq, Eq)]
pub enum Tail {
    /// Every byte belongs to a whole, valid frame.
    Clean,
    /// The bytes from `offset` on are an incomplete frame (torn write).
    Torn {
        /// Offset of the first byte that is not part of a valid frame.
        offset: usize,
    },
    /// The frame at `offset` fails its checksum or size limit.
    Corrupt {
        /// Offset of the first byte that is not part of a valid frame.
        offset: usize,
    },
}

/// Splits `buf` (after the header) into valid frames; stops at the first bad one.
pub fn frames(buf: &[u8], start: usize) -> (Vec<(usize, &[u8])>, Tail) {
    let mut out = Vec::new();
    let mut at = start;
    while at < buf.len() {
        if buf.len() - at < 8 {
            return (out, Tail::Torn { offset: at });
        }
        let len = u32::from_le_bytes([buf[at], buf[at + 1], buf[at + 2], buf[at + 3]]) as usize;
        let crc = u32::from_le_bytes([buf[at + 4], buf[at + 5], buf[at + 6], buf[at + 7]]);
        if len > MAX_FRAME {
            return (out, Tail::Corrupt { offset: at });
        }
        if buf.len() - at - 8 < len {
            return (out, Tail::Torn { offset: at });
        }
        let payload = &buf[at + 8..at + 8 + len];
        if crc32fast::hash(payload) != crc {
            return (out, Tail::Corrupt { offset: at });
        }
        out.push((at, payload));
        at += 8 + len;
    }
    (out, Tail::Clean)
}

/// Replaces `path` atomically with a header and one frame holding `value`
/// at content `version`.
pub fn write_atomic(disk: &Disk, path: &Path, magic: &[u8; 8], version: u32, value: &[u8]) -> io::Result<()> {
    let tmp = path.with_extension("tmp");
    {
        let mut f = disk.open(OpenOptions::new().create(true).write(true).truncate(true), &tmp)?;
        let mut buf = header(magic).to_vec();
        buf.extend(frame(&content(version, value))?);
        disk.write_all(&mut f, &tmp, &buf)?;
        disk.sync_all(&f, &tmp)?;
    }
    disk.rename(&tmp, path)?;
    disk.sync_dir(path)
}

/// Reads a file written by [`write_atomic`]: its content version and value,
/// `None` when it does not exist. A content version above `max` is refused
/// (written by a newer release), as is a file that is not one whole frame.
pub fn read_atomic(disk: &Disk, path: &Path, magic: &[u8; 8], max: u32) -> Result<Option<(u32, Vec<u8>)>, StoreError> {
    let Some(bytes) = disk.read(path).map_err(io_at(path))? else { return Ok(None) };
    let format = check_header(path, &bytes, magic)?;
    let (frames, tail) = frames(&bytes, HEADER_LEN);
    let payload = match (frames.as_slice(), tail) {
        ([(_, payload)], Tail::Clean) => *payload,
        _ => {
            return Err(StoreError::Damaged {
                path: path.to_path_buf(),
                reason: "checksum, size or length mismatch".into(),
            });
        }
    };
    let Some((version, value)) = split_content(format, payload) else {
        return Err(StoreError::Damaged { path: path.to_path_buf(), reason: "no content version".into() });
    };
    if version > max {
        return Err(StoreError::Version { path: path.to_path_buf(), what: "the content".into(), version, max });
    }
    Ok(Some((version, value.to_vec())))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn frames_round_trip_and_stop_at_a_torn_or_corrupt_tail() {
        let mut buf = header(b"TESTFILE").to_vec();
        buf.extend(frame(b"one").unwrap());
        buf.extend(frame(b"two").unwrap());
        let (f, tail) = frames(&buf, HEADER_LEN);
        assert_eq!(f.iter().map(|(_, p)| *p).collect::<Vec<_>>(), vec![&b"one"[..], b"two"]);
        assert_eq!(tail, Tail::Clean);

        let mut torn = buf.clone();
        torn.extend(&frame(b"three").unwrap()[..6]);
        assert_eq!(frames(&torn, HEADER_LEN).1, Tail::Torn { offset: buf.len() });

        let mut corrupt = buf.clone();
        let last = corrupt.len() - 1;
        corrupt[last] ^= 0xff;
        let (f, tail) = frames(&corrupt, HEADER_LEN);
        assert_eq!(f.len(), 1);
        assert!(matches!(tail, Tail::Corrupt { .. }));
    }

    #[test]
    fn oversized_length_is_corrupt_not_an_allocation() {
        let mut buf = header(b"TESTFILE").to_vec();
        buf.extend(u32::MAX.to_le_bytes());
        buf.extend([0u8; 12]);
        assert_eq!(frames(&buf, HEADER_LEN).1, Tail::Corrupt { offset: HEADER_LEN });
    }

    #[test]
    fn atomic_file_names_a_newer_format_or_content_version_and_reads_the_legacy_format() {
        let dir = tempfile::tempdir().unwrap();
        let disk = Disk::default();
        let p = dir.path().join("f");
        write_atomic(&disk, &p, b"TESTFILE", 3, b"x").unwrap();
        assert_eq!(read_atomic(&disk, &p, b"TESTFILE", 3).unwrap().unwrap(), (3, b"x".to_vec()));
        let err = read_atomic(&disk, &p, b"TESTFILE", 2).unwrap_err();
        assert!(matches!(err, StoreError::Version { version: 3, max: 2, .. }), "{err}");
        assert!(err.to_string().contains(&p.display().to_string()), "{err}");

        let mut bytes = std::fs::read(&p).unwrap();
        bytes[8] = 9;
        std::fs::write(&p, &bytes).unwrap();
        let err = read_atomic(&disk, &p, b"TESTFILE", 3).unwrap_err();
        assert!(matches!(err, StoreError::Version { version: 9, .. }), "{err}");

        // Format 1 (before content versions): the value is the whole frame.
        let mut legacy = b"TESTFILE".to_vec();
        legacy.extend(LEGACY_FORMAT.to_le_bytes());
        legacy.extend(frame(b"old").unwrap());
        std::fs::write(&p, legacy).unwrap();
        assert_eq!(read_atomic(&disk, &p, b"TESTFILE", 1).unwrap().unwrap(), (1, b"old".to_vec()));
        assert!(read_atomic(&disk, &dir.path().join("none"), b"TESTFILE", 1).unwrap().is_none());
    }
}
