//! The front-proxy authenticator: a client certificate signed by the
//! request-header CA, with an allowed CN, makes the identity headers
//! (`X-Remote-User`, `X-Remote-Group`, `X-Remote-Extra-*`, configurable)
//! trustworthy. It must never read those headers without such a
//! certificate; [`strip_identity_headers`] removes them from every request
//! so nothing downstream can read them either.

use std::collections::BTreeMap;

use http::HeaderMap;
use rustls::pki_types::CertificateDer;

use super::UserInfo;
use super::trust::{DEFAULT_EXTRA_PREFIXES, DEFAULT_GROUP_HEADERS, DEFAULT_USERNAME_HEADERS, RequestHeaderConfig};
use super::x509::ChainError;

/// What the front-proxy authenticator made of a request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum FrontProxy {
    /// No front-proxy trust configured, no certificate, or a certificate
    /// the request-header CA did not sign: the next authenticator decides.
    NotApplicable,
    /// A valid front-proxy certificate but no user name header: the next
    /// authenticator decides (as the generic apiserver does).
    NoUser,
    /// A valid front-proxy certificate and the user it vouches for.
    User(UserInfo),
    /// The certificate verified but its CN is not an allowed name: 401.
    Rejected(String),
}

/// Runs the front-proxy authenticator over a peer chain and the headers.
pub fn authenticate(
    cfg: Option<&RequestHeaderConfig>,
    chain: &[CertificateDer<'_>],
    headers: &HeaderMap,
) -> FrontProxy {
    let Some(cfg) = cfg else {
        return FrontProxy::NotApplicable;
    };
    let subject = match cfg.ca.verify(chain) {
        Ok(s) => s,
        Err(ChainError::NoCertificate | ChainError::Rejected { .. }) => {
            return FrontProxy::NotApplicable;
        }
        Err(e @ ChainError::BadSubject { .. }) => return FrontProxy::Rejected(e.to_string()),
    };
    if !cfg.allowed_names.is_empty() && !cfg.allowed_names.contains(&subject.common_name) {
        return FrontProxy::Rejected(format!(
            "front-proxy certificate CN {:?} is not one of the allowed names {:?}",
            subject.common_name, cfg.allowed_names
        ));
    }
    match user_from_headers(cfg, headers) {
        Some(user) => FrontProxy::User(user),
        None => FrontProxy::NoUser,
    }
}

/// Reads the user from the identity headers `cfg` names. Only call this
/// after the front-proxy certificate has been verified.
pub fn user_from_headers(cfg: &RequestHeaderConfig, headers: &HeaderMap) -> Option<UserInfo> {
    let name = first_value(headers, &cfg.username_headers)?;
    let uid = first_value(headers, &cfg.uid_headers).unwrap_or_default();
    let mut groups = Vec::new();
    for header in &cfg.group_headers {
        for value in headers.get_all(header.as_str()) {
            let v = String::from_utf8_lossy(value.as_bytes());
            if !v.is_empty() {
                groups.push(v.into_owned());
            }
        }
    }
    let mut extra: BTreeMap<String, Vec<String>> = BTreeMap::new();
    let prefixes: Vec<String> = cfg.extra_header_prefixes.iter().map(|p| p.to_ascii_lowercase()).collect();
    for (header, value) in headers {
        // HeaderMap names are already lower case.
        let lower = header.as_str();
        let Some(prefix) = prefixes.iter().find(|p| lower.starts_with(p.as_str())) else {
            continue;
        };
        let v = String::from_utf8_lossy(value.as_bytes());
        if v.is_empty() {
            continue;
        }
        let key = unescape_extra_key(&lower[prefix.len()..]);
        extra.entry(key).or_default().push(v.into_owned());
    }
    Some(UserInfo { name, uid, groups, extra })
}

fn first_value(headers: &HeaderMap, names: &[String]) -> Option<String> {
    names.iter().find_map(|name| {
        let v = headers.get(name.as_str())?;
        let s = String::from_utf8_lossy(v.as_bytes());
        (!s.is_empty()).then(|| s.into_owned())
    })
}

/// Percent-decodes an extra key the way Go's `url.PathUnescape` does; a
/// malformed escape leaves the key as it is.
pub fn unescape_extra_key(key: &str) -> String {
    let bytes = key.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%' {
            let hex = bytes.get(i + 1..i + 3).and_then(|h| std::str::from_utf8(h).ok());
            match hex.and_then(|h| u8::from_str_radix(h, 16).ok()) {
                Some(b) if hex.is_some_and(|h| h.bytes().all(|c| c.is_ascii_hexdigit())) => {
                    out.push(b);
                    i += 3;
                }
                _ => return key.to_string(),
            }
        } else {
            out.push(bytes[i]);
            i += 1;
        }
    }
    String::from_utf8(out).unwrap_or_else(|_| key.to_string())
}

/// Removes every identity header from `headers`: the ones `cfg` names and
/// the conventional `X-Remote-*` ones, whether or not they were trusted.
pub fn strip_identity_headers(cfg: Option<&RequestHeaderConfig>, headers: &mut HeaderMap) {
    let mut exact: Vec<String> = DEFAULT_USERNAME_HEADERS
        .iter()
        .chain(DEFAULT_GROUP_HEADERS)
        .map(|s| s.to_string())
        .chain(std::iter::once("x-remote-uid".to_string()))
        .collect();
    let mut prefixes: Vec<String> = DEFAULT_EXTRA_PREFIXES.iter().map(|s| s.to_string()).collect();
    if let Some(cfg) = cfg {
        exact.extend(cfg.username_headers.iter().chain(&cfg.group_headers).chain(&cfg.uid_headers).cloned());
        prefixes.extend(cfg.extra_header_prefixes.iter().cloned());
    }
    let exact: Vec<String> = exact.into_iter().map(|s| s.to_ascii_lowercase()).collect();
    let prefixes: Vec<String> = prefixes.into_iter().map(|s| s.to_ascii_lowercase()).collect();
    let doomed: Vec<http::HeaderName> = headers
        .keys()
        .filter(|k| {
            let k = k.as_str();
            exact.iter().any(|e| e == k) || prefixes.iter().any(|p| !p.is_empty() && k.starts_with(p.as_str()))
        })
        .cloned()
        .collect();
    for name in doomed {
        headers.remove(&name);
    }
}

#[cfg(test)]
mod tests;
