//! metrics-server's "Features" and "Logging" sections. Parsing only.

use apimachinery::GoDuration;
use clap::{ArgAction, Args};

use super::values::go_bool;

/// The generic apiserver's feature switches, which metrics-server 0.9
/// registers but never applies.
#[derive(Debug, Clone, Args)]
#[command(next_help_heading = "Features flags")]
pub struct FeaturesArgs {
    /// Block profiling with --profiling (accepted; no profiler here, and
    /// metrics-server ignores it too).
    #[arg(long, num_args = 0..=1, require_equals = true, default_missing_value = "true", default_value = "false",
          value_parser = go_bool, action = ArgAction::Set, value_name = "BOOL")]
    pub contention_profiling: bool,
    /// A unix socket to serve profiling on (accepted; ignored, as in metrics-server).
    #[arg(long, value_name = "PATH")]
    pub debug_socket_path: Option<String>,
    /// API Priority and Fairness instead of the in-flight limits (accepted;
    /// metrics-server ignores it and always uses the in-flight limits, as here).
    #[arg(long, num_args = 0..=1, require_equals = true, default_missing_value = "true", default_value = "true",
          value_parser = go_bool, action = ArgAction::Set, value_name = "BOOL")]
    pub enable_priority_and_fairness: bool,
    /// Profiling at /debug/pprof (accepted; there are no pprof endpoints here).
    #[arg(long, num_args = 0..=1, require_equals = true, default_missing_value = "true", default_value = "true",
          value_parser = go_bool, action = ArgAction::Set, value_name = "BOOL")]
    pub profiling: bool,
}

/// Logging: verbosity, format and per-file verbosity.
#[derive(Debug, Clone, Args)]
#[command(next_help_heading = "Logging flags")]
pub struct LoggingArgs {
    /// Longest time between log flushes. Lines are written at once here, so
    /// any value holds; it must be above zero, as in metrics-server.
    #[arg(long, default_value_t = GoDuration(std::time::Duration::from_secs(5)), value_name = "DURATION")]
    pub log_flush_frequency: GoDuration,
    /// [Alpha] Buffer of the info stream with --log-json-split-stream. Refused
    /// when non-zero, as in metrics-server (its alpha gate cannot be enabled).
    #[arg(long, default_value = "0", value_name = "QUANTITY")]
    pub log_json_info_buffer_size: String,
    /// [Alpha] JSON format: errors to stderr, info to stdout. Refused when
    /// true, as in metrics-server.
    #[arg(long, num_args = 0..=1, require_equals = true, default_missing_value = "true", default_value = "false",
          value_parser = go_bool, action = ArgAction::Set, value_name = "BOOL")]
    pub log_json_split_stream: bool,
    /// [Alpha] Buffer of the info stream with --log-text-split-stream.
    /// Refused when non-zero, as in metrics-server.
    #[arg(long, default_value = "0", value_name = "QUANTITY")]
    pub log_text_info_buffer_size: String,
    /// [Alpha] Text format: errors to stderr, info to stdout. Refused when
    /// true, as in metrics-server.
    #[arg(long, num_args = 0..=1, require_equals = true, default_missing_value = "true", default_value = "false",
          value_parser = go_bool, action = ArgAction::Set, value_name = "BOOL")]
    pub log_text_split_stream: bool,
    /// Log format: text or json.
    #[arg(long, default_value = "text", value_name = "FORMAT")]
    pub logging_format: String,
    /// Log verbosity (klog levels): 0-1 info, 2-3 more info, 4-5 debug, 6+ trace.
    #[arg(short = 'v', long = "v", default_value_t = 0, value_name = "LEVEL")]
    pub verbosity: u32,
    /// Per-file verbosity, `pattern=N,...`: a pattern (glob on the source
    /// file name without `.rs`, or on its path when it has a `/`) logs at level N. Text format only.
    #[arg(long, default_value = "", value_name = "PATTERN=N,...")]
    pub vmodule: String,
}
