//! The one binary encoding of this crate (bincode 2, serde path, varint,
//! little endian) with a decode limit, used for files and peer RPC bodies.

use std::io;

use serde::Serialize;
use serde::de::DeserializeOwned;

/// Largest value (in bytes) the decoder will allocate for: 16 MiB.
pub const DECODE_LIMIT: usize = 16 << 20;
/// Largest reply to a query fan-out (a replica's share of every pod of a
/// large cluster): 256 MiB.
pub const LARGE_DECODE_LIMIT: usize = 256 << 20;

fn config() -> impl bincode::config::Config {
    bincode::config::standard().with_limit::<DECODE_LIMIT>()
}

fn large_config() -> impl bincode::config::Config {
    bincode::config::standard().with_limit::<LARGE_DECODE_LIMIT>()
}

/// Decodes a value of up to [`LARGE_DECODE_LIMIT`] bytes; otherwise as [`decode`].
pub fn decode_large<T: DeserializeOwned>(bytes: &[u8]) -> io::Result<T> {
    decode_whole(bytes, large_config())
}

/// Encodes a value.
pub fn encode<T: Serialize>(value: &T) -> io::Result<Vec<u8>> {
    bincode::serde::encode_to_vec(value, config()).map_err(|e| io::Error::new(io::ErrorKind::InvalidInput, e))
}

/// Decodes a value; trailing bytes, oversize lengths and bad data are errors.
pub fn decode<T: DeserializeOwned>(bytes: &[u8]) -> io::Result<T> {
    decode_whole(bytes, config())
}

fn decode_whole<T: DeserializeOwned>(bytes: &[u8], config: impl bincode::config::Config) -> io::Result<T> {
    let (value, used) =
        bincode::serde::decode_from_slice(bytes, config).map_err(|e| io::Error::new(io::ErrorKind::InvalidData, e))?;
    if used != bytes.len() {
        return Err(io::Error::new(
            io::ErrorKind::InvalidData,
            format!("{} trailing bytes after a value", bytes.len() - used),
        ));
    }
    Ok(value)
}

/// Decodes a value from the front of `bytes`, ignoring what follows (used to
/// read an envelope's header before its body).
pub fn decode_prefix<T: DeserializeOwned>(bytes: &[u8]) -> io::Result<T> {
    bincode::serde::decode_from_slice(bytes, config())
        .map(|(v, _)| v)
        .map_err(|e| io::Error::new(io::ErrorKind::InvalidData, e))
}
