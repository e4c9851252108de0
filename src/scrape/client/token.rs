//! The kubelet bearer token, read from a file and re-read when used at most
//! every `recheck`, because bound service-account tokens rotate. A file that
//! cannot be read later keeps the last good token.

use std::path::PathBuf;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use http::header::HeaderValue;

use super::ClientError;
use tls::pem::read_file;

/// A bearer token file, re-read at most every `recheck` when used.
pub(super) struct TokenFile {
    path: PathBuf,
    recheck: Duration,
    state: Mutex<TokenState>,
}

struct TokenState {
    header: Option<HeaderValue>,
    checked: Instant,
}

impl TokenFile {
    pub(super) fn open(path: PathBuf, recheck: Duration) -> Result<TokenFile, ClientError> {
        let header = token_header(&read_file(&path)?)
            .ok_or_else(|| ClientError::Invalid(format!("token file {} holds no usable token", path.display())))?;
        Ok(TokenFile { path, recheck, state: Mutex::new(TokenState { header: Some(header), checked: Instant::now() }) })
    }

    /// The `Authorization` value, refreshed from the file when due. A file
    /// that cannot be read keeps the last good token.
    pub(super) async fn header(&self) -> Option<HeaderValue> {
        let previous = {
            let state = self.state.lock().unwrap_or_else(|p| p.into_inner());
            if state.checked.elapsed() < self.recheck {
                return state.header.clone();
            }
            state.header.clone()
        };
        let fresh = match tokio::fs::read(&self.path).await {
            Ok(bytes) => token_header(&bytes),
            Err(error) => {
                tracing::warn!(file = %self.path.display(), %error, "cannot re-read kubelet token; keeping the last one");
                None
            }
        };
        let mut state = self.state.lock().unwrap_or_else(|p| p.into_inner());
        state.checked = Instant::now();
        if fresh.is_some() && fresh != previous {
            tracing::info!(file = %self.path.display(), "kubelet token changed");
            state.header = fresh;
        }
        state.header.clone()
    }
}

fn token_header(bytes: &[u8]) -> Option<HeaderValue> {
    let token = std::str::from_utf8(bytes).ok()?.trim();
    if token.is_empty() {
        return None;
    }
    let mut value = HeaderValue::from_str(&format!("Bearer {token}")).ok()?;
    value.set_sensitive(true);
    Some(value)
}
