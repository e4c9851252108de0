//! On-disk framing shared by every file under the data dir: a header with a
//! magic and a format version, then frames of `[len u32][crc32 u32][payload]`
//! (little endian) with a size limit. Also atomic whole-file replacement
//! (write tmp, fsync, rename, fsync dir). Knows nothing of Raft.

use std::fs::{self, File, OpenOptions};
use std::io::{self, Write};
use std::path::Path;

/// Format version written in every file header.
pub const FORMAT_VERSION: u32 = 1;
/// Largest frame payload accepted when reading or writing (16 MiB).
pub const MAX_FRAME: usize = 16 << 20;
/// Header length: 8 bytes magic + 4 bytes version.
pub const HEADER_LEN: usize = 12;

/// Bytes of a file header.
pub fn header(magic: &[u8; 8]) -> [u8; HEADER_LEN] {
    let mut h = [0u8; HEADER_LEN];
    h[..8].copy_from_slice(magic);
    h[8..].copy_from_slice(&FORMAT_VERSION.to_le_bytes());
    h
}

/// Checks a file header; the error names the file and what is wrong.
pub fn check_header(path: &Path, bytes: &[u8], magic: &[u8; 8]) -> io::Result<()> {
    if bytes.len() < HEADER_LEN || &bytes[..8] != magic {
        return Err(io::Error::new(
            io::ErrorKind::InvalidData,
            format!("{} is not a {} file (bad magic)", path.display(), String::from_utf8_lossy(magic)),
        ));
    }
    let version = u32::from_le_bytes([bytes[8], bytes[9], bytes[10], bytes[11]]);
    if version != FORMAT_VERSION {
        return Err(io::Error::new(
            io::ErrorKind::InvalidData,
            format!("{} has format version {version}; this build reads {FORMAT_VERSION}", path.display()),
        ));
    }
    Ok(())
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

/// Replaces `path` atomically with a header and one frame holding `payload`.
pub fn write_atomic(path: &Path, magic: &[u8; 8], payload: &[u8]) -> io::Result<()> {
    let tmp = path.with_extension("tmp");
    {
        let mut f = OpenOptions::new().create(true).write(true).truncate(true).open(&tmp)?;
        f.write_all(&header(magic))?;
        f.write_all(&frame(payload)?)?;
        f.sync_all()?;
    }
    fs::rename(&tmp, path)?;
    sync_dir(path)
}

/// Reads a file written by [`write_atomic`]; `None` when it does not exist.
pub fn read_atomic(path: &Path, magic: &[u8; 8]) -> io::Result<Option<Vec<u8>>> {
    let bytes = match fs::read(path) {
        Ok(b) => b,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(e),
    };
    check_header(path, &bytes, magic)?;
    let (frames, tail) = frames(&bytes, HEADER_LEN);
    match (frames.first(), tail) {
        (Some((_, payload)), Tail::Clean) if frames.len() == 1 => Ok(Some(payload.to_vec())),
        _ => Err(io::Error::new(
            io::ErrorKind::InvalidData,
            format!("{} is damaged (checksum, size or length mismatch)", path.display()),
        )),
    }
}

/// fsyncs the directory holding `path`, so a rename or create is durable.
pub fn sync_dir(path: &Path) -> io::Result<()> {
    match path.parent() {
        Some(dir) if !dir.as_os_str().is_empty() => File::open(dir)?.sync_all(),
        _ => Ok(()),
    }
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
    fn atomic_file_rejects_other_versions() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("f");
        write_atomic(&p, b"TESTFILE", b"x").unwrap();
        assert_eq!(read_atomic(&p, b"TESTFILE").unwrap().unwrap(), b"x");
        let mut bytes = fs::read(&p).unwrap();
        bytes[8] = 9;
        fs::write(&p, bytes).unwrap();
        assert!(read_atomic(&p, b"TESTFILE").is_err());
        assert!(read_atomic(&dir.path().join("none"), b"TESTFILE").unwrap().is_none());
    }
}
