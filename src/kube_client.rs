//! The kube-apiserver client, built from a `kube::Config` (a kubeconfig or
//! the in-cluster service account) as kube-rs builds it, with one change: a
//! token file (a kubeconfig's `tokenFile`, the service-account token) is
//! sent through [`TokenFile`], trimmed as client-go trims it and re-read
//! when rotated. kube-rs 5 sends the file's bytes verbatim, so a token
//! written with `echo "$TOKEN" > file` ends in a newline and every request
//! fails with "invalid bearer token: failed to parse header value".

use std::path::PathBuf;
use std::sync::Arc;

use http::header::AUTHORIZATION;
use tower::util::MapRequestLayer;

use crate::token_file::{DEFAULT_RECHECK, TokenFile, TokenFileError};

/// The client cannot be built from its configuration.
#[derive(Debug, thiserror::Error)]
pub enum KubeClientError {
    #[error("{0}")]
    Token(#[from] TokenFileError),
    #[error("{0}")]
    Kube(#[from] kube::Error),
}

/// A client for `config`; see the module comment for its token file.
pub fn client(mut config: kube::Config) -> Result<kube::Client, KubeClientError> {
    let token = take_token_file(&mut config)?;
    let builder = kube::client::ClientBuilder::try_from(config)?;
    Ok(match token {
        None => builder.build(),
        Some(token) => {
            let token = Arc::new(token);
            let layer = MapRequestLayer::new(move |mut req: http::Request<kube::client::Body>| {
                req.headers_mut().insert(AUTHORIZATION, token.header());
                req
            });
            builder.with_layer(&layer).build()
        }
    })
}

/// Takes the token file out of `config` when kube-rs would send it: an auth
/// provider, basic auth and an inline token come first (kube-rs' and
/// client-go's order), and an exec plugin is not run when a token file is
/// used, so it goes too.
fn take_token_file(config: &mut kube::Config) -> Result<Option<TokenFile>, TokenFileError> {
    let auth = &mut config.auth_info;
    let first = auth.auth_provider.is_some() || (auth.username.is_some() && auth.password.is_some());
    if first || auth.token.is_some() {
        return Ok(None);
    }
    let Some(path) = auth.token_file.take() else { return Ok(None) };
    auth.exec = None;
    TokenFile::open(PathBuf::from(path), DEFAULT_RECHECK).map(Some)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn config(token: Option<&str>, token_file: Option<&std::path::Path>) -> kube::Config {
        let mut c = kube::Config::new("https://127.0.0.1:6443".parse().unwrap());
        c.auth_info.token = token.map(|t| t.to_string().into());
        c.auth_info.token_file = token_file.map(|p| p.display().to_string());
        c
    }

    #[test]
    fn a_token_file_is_taken_over_and_an_inline_token_still_wins() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("token");
        std::fs::write(&path, "abc\n").unwrap();
        let mut c = config(None, Some(&path));
        let token = take_token_file(&mut c).unwrap().expect("token file taken");
        assert_eq!(token.header(), "Bearer abc");
        assert!(c.auth_info.token_file.is_none());
        let mut c = config(Some("inline"), Some(&path));
        assert!(take_token_file(&mut c).unwrap().is_none());
        assert!(c.auth_info.token_file.is_some(), "left for kube-rs, which sends the inline token");
    }

    #[test]
    fn a_missing_token_file_is_an_error_naming_it() {
        let mut c = config(None, Some(std::path::Path::new("/nonexistent/sa-token")));
        let err = take_token_file(&mut c).unwrap_err();
        assert!(err.to_string().contains("/nonexistent/sa-token"), "{err}");
    }
}
