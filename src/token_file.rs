//! A bearer token read from a file: trimmed of surrounding whitespace, as
//! client-go trims it (a file written with `echo "$TOKEN" > file` ends in a
//! newline), and re-read when used at most every `recheck`, because bound
//! service-account tokens rotate. A file that cannot be read later keeps the
//! last good token. The kubelet client and the kube-apiserver client both
//! send their token through here.

use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use http::header::HeaderValue;

/// How often, at most, a token file is read again by default.
pub const DEFAULT_RECHECK: Duration = Duration::from_secs(5);

/// A token file that cannot be used at startup.
#[derive(Debug, thiserror::Error)]
pub enum TokenFileError {
    #[error("token file {}: {source}", path.display())]
    Read { path: PathBuf, source: std::io::Error },
    #[error("token file {} holds no usable token (empty, not UTF-8, or not valid in an HTTP header)", path.display())]
    Unusable { path: PathBuf },
}

/// A bearer token file, re-read at most every `recheck` when used.
#[derive(Debug)]
pub struct TokenFile {
    path: PathBuf,
    recheck: Duration,
    state: Mutex<TokenState>,
}

#[derive(Debug)]
struct TokenState {
    header: HeaderValue,
    checked: Instant,
}

impl TokenFile {
    /// Reads the token once; a missing, empty or unusable file is an error.
    pub fn open(path: PathBuf, recheck: Duration) -> Result<TokenFile, TokenFileError> {
        let bytes = std::fs::read(&path).map_err(|source| TokenFileError::Read { path: path.clone(), source })?;
        let header = token_header(&bytes).ok_or_else(|| TokenFileError::Unusable { path: path.clone() })?;
        Ok(TokenFile { path, recheck, state: Mutex::new(TokenState { header, checked: Instant::now() }) })
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    /// The `Authorization` value, refreshed from the file when due. A file
    /// that cannot be read, or holds no usable token, keeps the last good
    /// one. The file is small and read at most every `recheck`, so the read
    /// is synchronous (as client-go's and kube-rs' are).
    pub fn header(&self) -> HeaderValue {
        let mut state = self.state.lock().unwrap_or_else(|p| p.into_inner());
        if state.checked.elapsed() < self.recheck {
            return state.header.clone();
        }
        state.checked = Instant::now();
        match std::fs::read(&self.path) {
            Ok(bytes) => match token_header(&bytes) {
                Some(fresh) if fresh != state.header => {
                    tracing::info!(file = %self.path.display(), "bearer token changed");
                    state.header = fresh;
                }
                Some(_) => {}
                None => {
                    tracing::warn!(file = %self.path.display(), "token file holds no usable token; keeping the last one")
                }
            },
            Err(error) => {
                tracing::warn!(file = %self.path.display(), %error, "cannot re-read token file; keeping the last token");
            }
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn surrounding_whitespace_is_trimmed_as_client_go_does() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("token");
        std::fs::write(&path, "  abc.def\r\n\n").unwrap();
        let token = TokenFile::open(path, Duration::ZERO).unwrap();
        assert_eq!(token.header(), "Bearer abc.def");
        assert!(token.header().is_sensitive());
    }

    #[test]
    fn a_rotated_file_is_read_again_and_a_broken_one_keeps_the_last_token() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("token");
        std::fs::write(&path, "old\n").unwrap();
        let token = TokenFile::open(path.clone(), Duration::ZERO).unwrap();
        assert_eq!(token.header(), "Bearer old");
        std::fs::write(&path, "new\n").unwrap();
        assert_eq!(token.header(), "Bearer new");
        std::fs::write(&path, "\n").unwrap();
        assert_eq!(token.header(), "Bearer new");
        std::fs::remove_file(&path).unwrap();
        assert_eq!(token.header(), "Bearer new");
    }

    #[test]
    fn an_empty_or_missing_file_is_a_startup_error_naming_it() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("token");
        std::fs::write(&path, " \n").unwrap();
        let err = TokenFile::open(path.clone(), Duration::ZERO).unwrap_err();
        assert!(err.to_string().contains(&path.display().to_string()), "{err}");
        let err = TokenFile::open(dir.path().join("absent"), Duration::ZERO).unwrap_err();
        assert!(err.to_string().contains("absent"), "{err}");
    }
}
