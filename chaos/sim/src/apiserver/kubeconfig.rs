//! Kubeconfig files for the stand-in's clients: kubectl (a client
//! certificate or a token) and the metrics server's own kube client (a
//! service-account token). Writing only; the credentials themselves come
//! from the handle (client CA, token table).

use std::path::Path;

pub use tls::pki::base64;

/// The credentials a kubeconfig carries.
#[derive(Debug, Clone)]
pub enum Credentials {
    ClientCert { cert_pem: String, key_pem: String },
    Token(String),
}

/// Writes a single-context kubeconfig (context namespace `default`).
pub fn write(path: &Path, server: &str, ca_pem: &str, user_name: &str, creds: &Credentials) -> std::io::Result<()> {
    // String values are JSON-quoted: a JSON string is a valid YAML scalar.
    let q = |s: &str| serde_json::Value::String(s.to_string()).to_string();
    let user = match creds {
        Credentials::ClientCert { cert_pem, key_pem } => format!(
            "    client-certificate-data: {}\n    client-key-data: {}\n",
            q(&base64(cert_pem.as_bytes())),
            q(&base64(key_pem.as_bytes()))
        ),
        Credentials::Token(token) => format!("    token: {}\n", q(token)),
    };
    let text = format!(
        "apiVersion: v1\nkind: Config\nclusters:\n- name: stand-in\n  cluster:\n    server: {server}\n    certificate-authority-data: {ca}\n\
         users:\n- name: {user_name}\n  user:\n{user}\
         contexts:\n- name: stand-in\n  context:\n    cluster: stand-in\n    user: {user_name}\n    namespace: default\n\
         current-context: stand-in\npreferences: {{}}\n",
        server = q(server),
        ca = q(&base64(ca_pem.as_bytes())),
        user_name = q(user_name),
    );
    std::fs::write(path, text)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn base64_matches_rfc4648_vectors() {
        for (raw, enc) in [("", ""), ("f", "Zg=="), ("fo", "Zm8="), ("foo", "Zm9v"), ("foobar", "Zm9vYmFy")] {
            assert_eq!(base64(raw.as_bytes()), enc);
        }
    }
}
