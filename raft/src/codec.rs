//! The one binary encoding of this crate (bincode 2, serde path, varint,
//! little endian) with a decode limit, used for files and peer RPC bodies.
//! The `*_off_runtime` forms run a large decode or encode on tokio's
//! blocking pool: bincode runs at a few hundred MB/s, so a body of tens or
//! hundreds of MiB would otherwise hold a runtime thread for a long time.

use std::io;

use serde::Serialize;
use serde::de::DeserializeOwned;

/// Largest value (in bytes) the decoder will allocate for: 16 MiB.
pub const DECODE_LIMIT: usize = 16 << 20;
/// Largest reply to a query fan-out (a replica's share of every pod of a
/// large cluster): 256 MiB.
pub const LARGE_DECODE_LIMIT: usize = 256 << 20;

/// Bodies from this size on are decoded on the blocking pool by the
/// `*_off_runtime` decoders; smaller ones (well under a millisecond of
/// work) in place, where handing over would cost more than it saves.
pub const OFF_RUNTIME_FROM: usize = 256 << 10;

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

/// Runs `work` on tokio's blocking pool; a panic in it is an error, not a
/// panic of the caller's task.
pub async fn off_runtime<R: Send + 'static>(work: impl FnOnce() -> R + Send + 'static) -> io::Result<R> {
    tokio::task::spawn_blocking(work).await.map_err(|e| io::Error::other(format!("blocking codec task: {e}")))
}

/// [`decode`], on the blocking pool when `bytes` is at least [`OFF_RUNTIME_FROM`] long.
pub async fn decode_off_runtime<T: DeserializeOwned + Send + 'static>(bytes: bytes::Bytes) -> io::Result<T> {
    if bytes.len() < OFF_RUNTIME_FROM {
        return decode(&bytes);
    }
    off_runtime(move || decode(&bytes)).await?
}

/// [`decode_large`], on the blocking pool when `bytes` is at least [`OFF_RUNTIME_FROM`] long.
pub async fn decode_large_off_runtime<T: DeserializeOwned + Send + 'static>(bytes: bytes::Bytes) -> io::Result<T> {
    if bytes.len() < OFF_RUNTIME_FROM {
        return decode_large(&bytes);
    }
    off_runtime(move || decode_large(&bytes)).await?
}

/// [`encode`] on the blocking pool, for a value the caller knows is large
/// (a reply with thousands of items).
pub async fn encode_off_runtime<T: Serialize + Send + 'static>(value: T) -> io::Result<Vec<u8>> {
    off_runtime(move || encode(&value)).await?
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn off_runtime_forms_give_what_the_plain_ones_give() {
        let small: Vec<u64> = (0..10).collect();
        let large: Vec<u64> = (0..200_000).map(|i| i * 7919).collect();
        for value in [small, large] {
            let bytes = encode_off_runtime(value.clone()).await.unwrap();
            assert_eq!(bytes, encode(&value).unwrap());
            let bytes = bytes::Bytes::from(bytes);
            assert_eq!(decode_off_runtime::<Vec<u64>>(bytes.clone()).await.unwrap(), value);
            assert_eq!(decode_large_off_runtime::<Vec<u64>>(bytes.clone()).await.unwrap(), value);
            let mut trailing = bytes.to_vec();
            trailing.push(0);
            assert!(decode_off_runtime::<Vec<u64>>(trailing.into()).await.is_err());
        }
    }

    #[tokio::test]
    async fn a_panic_off_the_runtime_is_an_error() {
        let err = off_runtime(|| -> u8 { panic!("boom") }).await.unwrap_err();
        assert!(err.to_string().contains("blocking codec task"), "{err}");
    }
}
