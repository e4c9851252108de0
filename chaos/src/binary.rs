//! Finding the `ha-metrics-server` binary to test: the one beside the
//! running executable in `target/<profile>/`, built with cargo in the same
//! profile when it is missing (said on stderr).

use std::path::{Path, PathBuf};

/// Why no binary could be found or built.
#[derive(Debug, thiserror::Error)]
pub enum BinaryError {
    #[error("{0} has no target/<profile>/ folder above it; pass --binary PATH")]
    NoTarget(PathBuf),
    #[error("building ha-metrics-server failed ({0}); pass --binary PATH")]
    Build(String),
}

/// `ha-metrics-server` in the profile folder of `exe` (an executable in
/// `target/<profile>/` or `target/<profile>/deps/`), built if missing.
pub fn beside(exe: &Path) -> Result<PathBuf, BinaryError> {
    let mut dir = exe.parent().ok_or_else(|| BinaryError::NoTarget(exe.to_path_buf()))?;
    if dir.file_name().is_some_and(|n| n == "deps") {
        dir = dir.parent().ok_or_else(|| BinaryError::NoTarget(exe.to_path_buf()))?;
    }
    let binary = dir.join("ha-metrics-server");
    if binary.is_file() {
        return Ok(binary);
    }
    let profile = dir.file_name().and_then(|n| n.to_str()).unwrap_or("debug").to_string();
    let target = dir.parent().ok_or_else(|| BinaryError::NoTarget(exe.to_path_buf()))?;
    let manifest = Path::new(env!("CARGO_MANIFEST_DIR")).join("../Cargo.toml");
    eprintln!("{} is missing: building it (cargo build --bin ha-metrics-server, profile {profile})", binary.display());
    let mut cmd = std::process::Command::new(std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into()));
    cmd.args(["build", "--bin", "ha-metrics-server", "--manifest-path"]).arg(&manifest).arg("--target-dir").arg(target);
    match profile.as_str() {
        "debug" => {}
        "release" => {
            cmd.arg("--release");
        }
        other => {
            cmd.args(["--profile", other]);
        }
    }
    let status = cmd.status().map_err(|e| BinaryError::Build(format!("running cargo: {e}")))?;
    if !status.success() || !binary.is_file() {
        return Err(BinaryError::Build(status.to_string()));
    }
    Ok(binary)
}
