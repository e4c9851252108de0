//! The validated audit settings: the policy file and the log and webhook
//! backends with their delivery mode, batching, throttling and truncation
//! (the generic apiserver's `--audit-*` flags). As in metrics-server,
//! nothing is audited unless a policy and at least one backend are given.
//! Reading the policy and running the backends is `audit`'s job.

use std::path::PathBuf;
use std::time::Duration;

use super::flags::AuditArgs;
use super::{ConfigError, bad};

/// The only event version encoded here (the one Kubernetes tooling reads).
pub const AUDIT_VERSION: &str = "audit.k8s.io/v1";

/// How a backend delivers events.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    /// Queued and written asynchronously, in batches.
    Batch,
    /// Written before the response is sent; a failure is logged.
    Blocking,
    /// Written before the handler runs and after it; a failure fails the request.
    BlockingStrict,
}

impl Mode {
    /// Go's mapping: `blocking`, `blocking-strict`, anything else batch.
    fn parse(value: &str) -> (Mode, Option<String>) {
        match value {
            "blocking" => (Mode::Blocking, None),
            "blocking-strict" => (Mode::BlockingStrict, None),
            "batch" => (Mode::Batch, None),
            other => (
                Mode::Batch,
                Some(format!(
                    "{other:?} is not batch, blocking or blocking-strict; batch is used, as metrics-server does"
                )),
            ),
        }
    }
}

/// Batching of a backend in [`Mode::Batch`].
#[derive(Debug, Clone, PartialEq)]
pub struct BatchSettings {
    /// Events queued at most; more are dropped (and logged).
    pub buffer_size: usize,
    /// Events per write or call at most.
    pub max_batch_size: usize,
    /// Longest a partial batch waits (zero: write what is queued at once).
    pub max_wait: Duration,
    /// Batches per second and burst when throttled.
    pub throttle: Option<(f64, usize)>,
}

/// Size limits when truncation is on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TruncateSettings {
    pub max_event_bytes: usize,
    pub max_batch_bytes: usize,
}

/// Where the log backend writes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum LogTarget {
    Stdout,
    File(PathBuf),
}

/// `--audit-log-format`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LogFormat {
    Json,
    Legacy,
}

/// The log backend.
#[derive(Debug, Clone, PartialEq)]
pub struct LogBackendSettings {
    pub target: LogTarget,
    pub format: LogFormat,
    pub mode: Mode,
    pub batch: BatchSettings,
    pub truncate: Option<TruncateSettings>,
    /// Rotate at this size (`--audit-log-maxsize`, MB); `None`: never.
    pub max_size_bytes: Option<u64>,
    /// `--audit-log-maxage` (days); `None`: no limit.
    pub max_age_days: Option<u64>,
    /// `--audit-log-maxbackup`; `None`: no limit.
    pub max_backups: Option<usize>,
    /// `--audit-log-compress`.
    pub compress: bool,
}

/// The webhook backend.
#[derive(Debug, Clone, PartialEq)]
pub struct WebhookBackendSettings {
    /// The kubeconfig-format file naming the webhook.
    pub config_file: PathBuf,
    pub mode: Mode,
    pub batch: BatchSettings,
    pub truncate: Option<TruncateSettings>,
    /// Wait before the first retry of a failed call.
    pub initial_backoff: Duration,
}

/// Auditing, when it is on.
#[derive(Debug, Clone, PartialEq)]
pub struct AuditSettings {
    pub policy_file: PathBuf,
    pub log: Option<LogBackendSettings>,
    pub webhook: Option<WebhookBackendSettings>,
}

fn count(flag: &'static str, n: i64) -> Result<usize, ConfigError> {
    usize::try_from(n).map_err(|_| bad(flag, format!("{n} can not be negative")))
}

fn positive(flag: &'static str, n: i64) -> Result<usize, ConfigError> {
    match count(flag, n)? {
        0 => Err(bad(flag, "must be greater than 0")),
        n => Ok(n),
    }
}

fn version(flag: &'static str, value: &str) -> Result<(), ConfigError> {
    if value == AUDIT_VERSION {
        Ok(())
    } else {
        Err(bad(flag, format!("{value:?}: only {AUDIT_VERSION} is encoded (it is the version Kubernetes serves)")))
    }
}

#[allow(clippy::too_many_arguments)] // the flags of one backend
fn batch(
    prefix: &'static [&'static str; 6],
    buffer: i64,
    max_size: i64,
    max_wait: Duration,
    throttle: bool,
    qps: f64,
    burst: i64,
) -> Result<BatchSettings, ConfigError> {
    let throttle = if throttle {
        if !(qps.is_finite() && qps > 0.0) {
            return Err(bad(prefix[4], format!("{qps} must be above 0 when throttling is enabled")));
        }
        Some((qps, positive(prefix[5], burst)?))
    } else {
        None
    };
    Ok(BatchSettings {
        buffer_size: positive(prefix[0], buffer)?,
        max_batch_size: positive(prefix[1], max_size)?,
        max_wait,
        throttle,
    })
}

fn truncate(
    on: bool,
    flags: [&'static str; 2],
    event: i64,
    batch: i64,
) -> Result<Option<TruncateSettings>, ConfigError> {
    if !on {
        return Ok(None);
    }
    let t =
        TruncateSettings { max_event_bytes: positive(flags[0], event)?, max_batch_bytes: positive(flags[1], batch)? };
    if t.max_event_bytes > t.max_batch_bytes {
        return Err(bad(flags[0], "must not be larger than the batch limit"));
    }
    Ok(Some(t))
}

const LOG_BATCH: [&str; 6] = [
    "--audit-log-batch-buffer-size",
    "--audit-log-batch-max-size",
    "--audit-log-batch-max-wait",
    "--audit-log-batch-throttle-enable",
    "--audit-log-batch-throttle-qps",
    "--audit-log-batch-throttle-burst",
];
const WEBHOOK_BATCH: [&str; 6] = [
    "--audit-webhook-batch-buffer-size",
    "--audit-webhook-batch-max-size",
    "--audit-webhook-batch-max-wait",
    "--audit-webhook-batch-throttle-enable",
    "--audit-webhook-batch-throttle-qps",
    "--audit-webhook-batch-throttle-burst",
];

impl AuditSettings {
    /// Checks the audit flags; `None` when nothing is audited (no policy or
    /// no backend), with the reason in `notes` when only half was given.
    pub fn from_args(a: &AuditArgs, notes: &mut Vec<String>) -> Result<Option<AuditSettings>, ConfigError> {
        version("--audit-log-version", &a.audit_log_version)?;
        version("--audit-webhook-version", &a.audit_webhook_version)?;
        let log = match a.audit_log_path.as_ref().filter(|p| !p.as_os_str().is_empty()) {
            None => None,
            Some(path) => {
                let (mode, note) = Mode::parse(&a.audit_log_mode);
                notes.extend(note.map(|n| format!("--audit-log-mode: {n}")));
                let format = match a.audit_log_format.as_str() {
                    "json" => LogFormat::Json,
                    "legacy" => LogFormat::Legacy,
                    other => return Err(bad("--audit-log-format", format!("{other:?} is not json or legacy"))),
                };
                let target = if path.as_os_str() == "-" { LogTarget::Stdout } else { LogTarget::File(path.clone()) };
                let max_size = count("--audit-log-maxsize", a.audit_log_maxsize)? as u64;
                let max_age = count("--audit-log-maxage", a.audit_log_maxage)? as u64;
                let max_backups = count("--audit-log-maxbackup", a.audit_log_maxbackup)?;
                Some(LogBackendSettings {
                    target,
                    format,
                    mode,
                    batch: batch(
                        &LOG_BATCH,
                        a.audit_log_batch_buffer_size,
                        a.audit_log_batch_max_size,
                        a.audit_log_batch_max_wait.0,
                        a.audit_log_batch_throttle_enable,
                        a.audit_log_batch_throttle_qps,
                        a.audit_log_batch_throttle_burst,
                    )?,
                    truncate: truncate(
                        a.audit_log_truncate_enabled,
                        ["--audit-log-truncate-max-event-size", "--audit-log-truncate-max-batch-size"],
                        a.audit_log_truncate_max_event_size,
                        a.audit_log_truncate_max_batch_size,
                    )?,
                    max_size_bytes: (max_size > 0).then(|| max_size.saturating_mul(1024 * 1024)),
                    max_age_days: (max_age > 0).then_some(max_age),
                    max_backups: (max_backups > 0).then_some(max_backups),
                    compress: a.audit_log_compress,
                })
            }
        };
        let webhook = match a.audit_webhook_config_file.as_ref().filter(|p| !p.as_os_str().is_empty()) {
            None => None,
            Some(path) => {
                let (mode, note) = Mode::parse(&a.audit_webhook_mode);
                notes.extend(note.map(|n| format!("--audit-webhook-mode: {n}")));
                let initial_backoff =
                    a.audit_webhook_batch_initial_backoff.map_or(a.audit_webhook_initial_backoff.0, |d| d.0);
                Some(WebhookBackendSettings {
                    config_file: path.clone(),
                    mode,
                    batch: batch(
                        &WEBHOOK_BATCH,
                        a.audit_webhook_batch_buffer_size,
                        a.audit_webhook_batch_max_size,
                        a.audit_webhook_batch_max_wait.0,
                        a.audit_webhook_batch_throttle_enable,
                        a.audit_webhook_batch_throttle_qps,
                        a.audit_webhook_batch_throttle_burst,
                    )?,
                    truncate: truncate(
                        a.audit_webhook_truncate_enabled,
                        ["--audit-webhook-truncate-max-event-size", "--audit-webhook-truncate-max-batch-size"],
                        a.audit_webhook_truncate_max_event_size,
                        a.audit_webhook_truncate_max_batch_size,
                    )?,
                    initial_backoff,
                })
            }
        };
        if a.audit_webhook_batch_initial_backoff.is_some() {
            notes.push(
                "--audit-webhook-batch-initial-backoff is deprecated, as in metrics-server; use \
                 --audit-webhook-initial-backoff"
                    .to_string(),
            );
        }
        match (&a.audit_policy_file, log.is_some() || webhook.is_some()) {
            (Some(policy_file), true) => Ok(Some(AuditSettings { policy_file: policy_file.clone(), log, webhook })),
            (Some(_), false) => {
                notes.push(
                    "--audit-policy-file is set but neither --audit-log-path nor --audit-webhook-config-file: \
                     nothing is audited, as in metrics-server"
                        .to_string(),
                );
                Ok(None)
            }
            (None, true) => {
                notes.push(
                    "an audit backend is set but no --audit-policy-file: nothing is audited, as in metrics-server"
                        .to_string(),
                );
                Ok(None)
            }
            (None, false) => Ok(None),
        }
    }
}
