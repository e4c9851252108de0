//! metrics-server's "Apiserver audit log" section: the audit policy, the
//! log file backend (with rotation) and the webhook backend, each with its
//! batching and truncation options. Parsing only.

use std::path::PathBuf;

use apimachinery::GoDuration;
use clap::{ArgAction, Args};

use super::values::{go_bool, go_float, go_int64};

const BUFFER: i64 = 10_000;
const MAX_BATCH_BYTES: i64 = 10 * 1024 * 1024;
const MAX_EVENT_BYTES: i64 = 100 * 1024;

/// The audit flags.
#[derive(Debug, Clone, Args)]
#[command(next_help_heading = "Apiserver audit log flags")]
pub struct AuditArgs {
    /// Events the log backend queues in batch mode before it drops some.
    #[arg(long, default_value_t = BUFFER, value_parser = go_int64, value_name = "N")]
    pub audit_log_batch_buffer_size: i64,
    /// Most events per write of the log backend in batch mode.
    #[arg(long, default_value_t = 1, value_parser = go_int64, value_name = "N")]
    pub audit_log_batch_max_size: i64,
    /// Longest a partial batch of the log backend waits before it is written.
    #[arg(long, default_value_t = GoDuration(std::time::Duration::ZERO), value_name = "DURATION")]
    pub audit_log_batch_max_wait: GoDuration,
    /// Batches the log backend may write at once above the QPS when throttled.
    #[arg(long, default_value_t = 0, value_parser = go_int64, value_name = "N")]
    pub audit_log_batch_throttle_burst: i64,
    /// Throttle the log backend's batches.
    #[arg(long, num_args = 0..=1, require_equals = true, default_missing_value = "true", default_value = "false",
          value_parser = go_bool, action = ArgAction::Set, value_name = "BOOL")]
    pub audit_log_batch_throttle_enable: bool,
    /// Batches per second of the log backend when throttled.
    #[arg(long, default_value_t = 0.0, value_parser = go_float, value_name = "QPS")]
    pub audit_log_batch_throttle_qps: f64,
    /// gzip rotated audit files.
    #[arg(long, num_args = 0..=1, require_equals = true, default_missing_value = "true", default_value = "false",
          value_parser = go_bool, action = ArgAction::Set, value_name = "BOOL")]
    pub audit_log_compress: bool,
    /// Format of the audit file: json (one Event per line) or legacy (one line of text per event).
    #[arg(long, default_value = "json", value_name = "FORMAT")]
    pub audit_log_format: String,
    /// Days to keep rotated audit files (by the time in their name). 0: no limit.
    #[arg(long, default_value_t = 366, value_parser = go_int64, value_name = "DAYS")]
    pub audit_log_maxage: i64,
    /// Rotated audit files to keep. 0: no limit.
    #[arg(long, default_value_t = 100, value_parser = go_int64, value_name = "N")]
    pub audit_log_maxbackup: i64,
    /// Size in megabytes at which the audit file is rotated. 0: never.
    #[arg(long, default_value_t = 100, value_parser = go_int64, value_name = "MB")]
    pub audit_log_maxsize: i64,
    /// How the log backend delivers: batch (queued, asynchronous), blocking
    /// (written before the response; errors ignored) or blocking-strict
    /// (a failed write fails the request).
    #[arg(long, default_value = "blocking", value_name = "MODE")]
    pub audit_log_mode: String,
    /// The audit file; `-` is standard output. Empty: no log backend.
    #[arg(long, value_name = "PATH")]
    pub audit_log_path: Option<PathBuf>,
    /// Drop request and response bodies from events (and then events) larger
    /// than the event limit, and split batches larger than the batch limit.
    #[arg(long, num_args = 0..=1, require_equals = true, default_missing_value = "true", default_value = "false",
          value_parser = go_bool, action = ArgAction::Set, value_name = "BOOL")]
    pub audit_log_truncate_enabled: bool,
    /// Largest batch in bytes, with truncation on.
    #[arg(long, default_value_t = MAX_BATCH_BYTES, value_parser = go_int64, value_name = "BYTES")]
    pub audit_log_truncate_max_batch_size: i64,
    /// Largest event in bytes, with truncation on.
    #[arg(long, default_value_t = MAX_EVENT_BYTES, value_parser = go_int64, value_name = "BYTES")]
    pub audit_log_truncate_max_event_size: i64,
    /// API group and version of the events written to the file.
    #[arg(long, default_value = "audit.k8s.io/v1", value_name = "GROUP/VERSION")]
    pub audit_log_version: String,
    /// The audit policy (audit.k8s.io/v1 Policy, YAML or JSON). Without it nothing is audited.
    #[arg(long, value_name = "PATH")]
    pub audit_policy_file: Option<PathBuf>,
    /// Events the webhook backend queues in batch mode before it drops some.
    #[arg(long, default_value_t = BUFFER, value_parser = go_int64, value_name = "N")]
    pub audit_webhook_batch_buffer_size: i64,
    /// Most events per webhook call in batch mode.
    #[arg(long, default_value_t = 400, value_parser = go_int64, value_name = "N")]
    pub audit_webhook_batch_max_size: i64,
    /// Longest a partial batch waits before it is sent to the webhook.
    #[arg(long, default_value_t = GoDuration(std::time::Duration::from_secs(30)), value_name = "DURATION")]
    pub audit_webhook_batch_max_wait: GoDuration,
    /// Webhook calls allowed at once above the QPS when throttled.
    #[arg(long, default_value_t = 15, value_parser = go_int64, value_name = "N")]
    pub audit_webhook_batch_throttle_burst: i64,
    /// Throttle the webhook calls.
    #[arg(long, num_args = 0..=1, require_equals = true, default_missing_value = "true", default_value = "true",
          value_parser = go_bool, action = ArgAction::Set, value_name = "BOOL")]
    pub audit_webhook_batch_throttle_enable: bool,
    /// Webhook calls per second when throttled.
    #[arg(long, default_value_t = 10.0, value_parser = go_float, value_name = "QPS")]
    pub audit_webhook_batch_throttle_qps: f64,
    /// kubeconfig-format file naming the audit webhook (server, CA, client
    /// certificate or token). Empty: no webhook backend.
    #[arg(long, value_name = "PATH")]
    pub audit_webhook_config_file: Option<PathBuf>,
    /// Wait before the first retry of a failed webhook call (then growing).
    #[arg(long, default_value_t = GoDuration(std::time::Duration::from_secs(10)), value_name = "DURATION")]
    pub audit_webhook_initial_backoff: GoDuration,
    /// Deprecated alias of --audit-webhook-initial-backoff [default: 10s].
    #[arg(long, hide = true, value_name = "DURATION")]
    pub audit_webhook_batch_initial_backoff: Option<GoDuration>,
    /// How the webhook backend delivers: batch, blocking or blocking-strict.
    #[arg(long, default_value = "batch", value_name = "MODE")]
    pub audit_webhook_mode: String,
    /// Truncate oversized events and split oversized batches for the webhook.
    #[arg(long, num_args = 0..=1, require_equals = true, default_missing_value = "true", default_value = "false",
          value_parser = go_bool, action = ArgAction::Set, value_name = "BOOL")]
    pub audit_webhook_truncate_enabled: bool,
    /// Largest webhook batch in bytes, with truncation on.
    #[arg(long, default_value_t = MAX_BATCH_BYTES, value_parser = go_int64, value_name = "BYTES")]
    pub audit_webhook_truncate_max_batch_size: i64,
    /// Largest webhook event in bytes, with truncation on.
    #[arg(long, default_value_t = MAX_EVENT_BYTES, value_parser = go_int64, value_name = "BYTES")]
    pub audit_webhook_truncate_max_event_size: i64,
    /// API group and version of the events sent to the webhook.
    #[arg(long, default_value = "audit.k8s.io/v1", value_name = "GROUP/VERSION")]
    pub audit_webhook_version: String,
}
