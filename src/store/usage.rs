//! Turning two points into a rate, exactly as metrics-server's
//! `resourceUsage` does (reference §1.8). Pure arithmetic.

use crate::model::Point;
use crate::model::{UnixNanos, Usage};

/// Why a pair of points cannot give a rate; the series is skipped for this read.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum UsageError {
    #[error("unexpected decrease in start time")]
    StartTimeDecreased,
    #[error("unexpected decrease in cumulative CPU usage value")]
    CpuDecreased,
    #[error("samples are not in time order")]
    EmptyWindow,
}

/// A rate with its time information.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Rated {
    pub usage: Usage,
    /// Timestamp of `last`.
    pub timestamp: UnixNanos,
    /// `last.timestamp − prev.timestamp`, in nanoseconds.
    pub window_ns: i64,
}

/// Go's `time.Duration.Seconds()`, bit for bit.
fn go_seconds(ns: i64) -> f64 {
    let sec = ns / 1_000_000_000;
    let nsec = ns % 1_000_000_000;
    sec as f64 + nsec as f64 / 1e9
}

/// CPU nanocores `(Δcpu_ns / Δt_s)` truncated, memory from `last`,
/// timestamp of `last`, window `Δt`. A missing start time counts as older
/// than any (Go's zero `time.Time`).
pub fn resource_usage(last: &Point, prev: &Point) -> Result<Rated, UsageError> {
    if last.start_time < prev.start_time {
        return Err(UsageError::StartTimeDecreased);
    }
    if last.cpu_cumulative_ns < prev.cpu_cumulative_ns {
        return Err(UsageError::CpuDecreased);
    }
    // metrics-server's selection rules never build such a pair; refuse it
    // rather than divide by zero.
    let window_ns = last.timestamp.checked_sub(prev.timestamp).filter(|w| *w > 0).ok_or(UsageError::EmptyWindow)?;
    let cpu = (last.cpu_cumulative_ns - prev.cpu_cumulative_ns) as f64 / go_seconds(window_ns);
    Ok(Rated {
        usage: Usage { cpu_nanocores: cpu as u64, memory_bytes: last.memory_bytes },
        timestamp: last.timestamp,
        window_ns,
    })
}
