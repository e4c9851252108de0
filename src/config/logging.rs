//! The validated logging settings: `-v`, `--logging-format`, `--vmodule`,
//! `--log-flush-frequency` and the alpha split-stream options, checked as
//! component-base checks them for metrics-server (whose alpha logging gate
//! cannot be enabled, so those options are refused when set). Setting up
//! the subscriber is `cli`'s job.

use std::time::Duration;

use super::flags::LoggingArgs;
use super::{ConfigError, bad};

/// One `--vmodule` entry: source files matching `pattern` log at `level`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VmoduleRule {
    /// A glob (`*`, `?`) on the file's base name without `.rs`, or on its
    /// path (without `.rs`) when it contains a `/`.
    pub pattern: String,
    /// The klog verbosity for those files.
    pub level: u32,
}

impl VmoduleRule {
    /// Whether `file` (a source path as `tracing` reports it) matches.
    pub fn matches(&self, file: &str) -> bool {
        let stem = file.strip_suffix(".rs").unwrap_or(file);
        if self.pattern.contains('/') {
            glob(&self.pattern, stem) || stem.rsplit_once('/').is_some_and(|_| glob_suffix(&self.pattern, stem))
        } else {
            let base = stem.rsplit('/').next().unwrap_or(stem);
            glob(&self.pattern, base)
        }
    }
}

/// A path pattern also matches the trailing components of a longer path.
fn glob_suffix(pattern: &str, path: &str) -> bool {
    let mut rest = path;
    while let Some((_, tail)) = rest.split_once('/') {
        if glob(pattern, tail) {
            return true;
        }
        rest = tail;
    }
    false
}

/// Shell-style glob with `*` and `?` (klog's `filepath.Match` subset).
fn glob(pattern: &str, text: &str) -> bool {
    let p: Vec<char> = pattern.chars().collect();
    let t: Vec<char> = text.chars().collect();
    let (mut pi, mut ti, mut star, mut mark) = (0, 0, None, 0);
    while ti < t.len() {
        if pi < p.len() && (p[pi] == '?' || p[pi] == t[ti]) {
            pi += 1;
            ti += 1;
        } else if pi < p.len() && p[pi] == '*' {
            star = Some(pi);
            mark = ti;
            pi += 1;
        } else if let Some(s) = star {
            pi = s + 1;
            mark += 1;
            ti = mark;
        } else {
            return false;
        }
    }
    while pi < p.len() && p[pi] == '*' {
        pi += 1;
    }
    pi == p.len()
}

/// How to log.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LoggingSettings {
    /// `-v`.
    pub verbosity: u32,
    /// `--logging-format=json`.
    pub json: bool,
    /// `--vmodule`.
    pub vmodule: Vec<VmoduleRule>,
    /// `--log-flush-frequency` (lines are written unbuffered, so it always holds).
    pub flush_frequency: Duration,
}

/// Parses `--vmodule`: `pattern=N` entries separated by commas.
pub fn parse_vmodule(value: &str) -> Result<Vec<VmoduleRule>, ConfigError> {
    let mut out = Vec::new();
    for item in value.split(',').filter(|i| !i.is_empty()) {
        let (pattern, level) = item
            .split_once('=')
            .ok_or_else(|| bad("--vmodule", format!("{item:?} does not have the pattern=N format")))?;
        if pattern.is_empty() {
            return Err(bad("--vmodule", format!("{item:?}: the pattern is empty")));
        }
        let level: u32 =
            level.parse().map_err(|_| bad("--vmodule", format!("{item:?}: {level:?} is not a verbosity level")))?;
        out.push(VmoduleRule { pattern: pattern.to_string(), level });
    }
    Ok(out)
}

/// A `quantity` flag that must be zero (the alpha buffer sizes).
fn zero_quantity(flag: &'static str, value: &str) -> Result<(), ConfigError> {
    let q = apimachinery::format::parse_quantity(value.trim())
        .map_err(|e| bad(flag, format!("{value:?} is not a quantity: {e}")))?;
    if q.milli_value() != 0 {
        return Err(bad(
            flag,
            format!(
                "{value:?}: the alpha feature LoggingAlphaOptions is not enabled (metrics-server registers no \
                 feature gate that could enable it), so only 0 is accepted, as in metrics-server"
            ),
        ));
    }
    Ok(())
}

impl LoggingSettings {
    /// Checks the logging flags.
    pub fn from_args(a: &LoggingArgs) -> Result<LoggingSettings, ConfigError> {
        let json = match a.logging_format.as_str() {
            "text" => false,
            "json" => true,
            other => return Err(bad("--logging-format", format!("{other:?} is not one of text, json"))),
        };
        if a.verbosity > i32::MAX as u32 {
            return Err(bad("-v", format!("{} is above the largest level, {}", a.verbosity, i32::MAX)));
        }
        if a.log_flush_frequency.0.is_zero() {
            return Err(bad("--log-flush-frequency", "must be greater than 0"));
        }
        let vmodule = parse_vmodule(&a.vmodule)?;
        if json && !vmodule.is_empty() {
            return Err(bad("--vmodule", "is only supported with --logging-format=text, as in metrics-server"));
        }
        zero_quantity("--log-json-info-buffer-size", &a.log_json_info_buffer_size)?;
        zero_quantity("--log-text-info-buffer-size", &a.log_text_info_buffer_size)?;
        for (flag, set) in
            [("--log-json-split-stream", a.log_json_split_stream), ("--log-text-split-stream", a.log_text_split_stream)]
        {
            if set {
                return Err(bad(
                    flag,
                    "the alpha feature LoggingAlphaOptions is not enabled (metrics-server registers no feature \
                     gate that could enable it), so only false is accepted, as in metrics-server",
                ));
            }
        }
        Ok(LoggingSettings { verbosity: a.verbosity, json, vmodule, flush_frequency: a.log_flush_frequency.0 })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn vmodule_entries_and_matching() {
        let r = parse_vmodule("scheduler=4,auth/*=2,te?t=1").unwrap();
        assert_eq!(r.len(), 3);
        assert!(r[0].matches("src/scrape/scheduler.rs"));
        assert!(!r[0].matches("src/scrape/scheduler_x.rs"));
        assert!(r[1].matches("src/auth/token.rs"));
        assert!(!r[1].matches("src/api/token.rs"));
        assert!(r[2].matches("src/x/test.rs"));
        for bad_value in ["x", "=2", "x=y", "x=-1"] {
            assert_eq!(parse_vmodule(bad_value).unwrap_err().flag, "--vmodule", "{bad_value}");
        }
        assert!(parse_vmodule("").unwrap().is_empty());
    }

    #[test]
    fn globs() {
        assert!(glob("*", "anything"));
        assert!(glob("sched*", "scheduler"));
        assert!(glob("*ler", "scheduler"));
        assert!(!glob("sched", "scheduler"));
        assert!(glob("s?heduler", "scheduler"));
    }
}
