//! The last and previous point of one series and the rules that pick them
//! when a new point arrives (reference §1.7): plain functions of the old
//! series and the new point, so every rule is testable on its own; and the
//! same for a pod's list of container series when the pod is reported again.

use crate::model::UnixNanos;
use crate::model::{ContainerPoint, Point};

/// Containers younger than this are not given a synthetic previous point
/// (metrics-server's `freshContainerMinMetricsResolution`).
pub const FRESH_CONTAINER_MIN_NS: i64 = 10_000_000_000;

/// The two points a rate is computed from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Series {
    pub last: Point,
    /// `None` until a second usable point exists: the series cannot be served.
    pub prev: Option<Point>,
}

impl Series {
    /// A series seen for the first time.
    pub fn first(point: Point) -> Series {
        Series { last: point, prev: None }
    }
}

/// `new` is newer than the stored last: it becomes last and the old last
/// becomes prev. Otherwise the old prev stays if it is older than `new`;
/// else there is no prev.
fn shift(old: &Series, new: Point) -> Series {
    let prev = if new.timestamp > old.last.timestamp {
        Some(old.last)
    } else {
        old.prev.filter(|p| p.timestamp < new.timestamp)
    };
    Series { last: new, prev }
}

/// Node rule: last/prev selection only (nodes have no start time).
pub fn next_node(old: Option<&Series>, new: Point) -> Series {
    match old {
        Some(old) => shift(old, new),
        None => Series::first(new),
    }
}

/// Whether a container's start time lies before `ts` (a missing start
/// time is Go's zero time, before everything).
fn started_before(start: Option<UnixNanos>, ts: UnixNanos) -> bool {
    start.is_none_or(|s| s < ts)
}

/// Container rule: the fresh-container shortcut first (10 s ≤ ts − start <
/// resolution gives a synthetic zero point at the start time), then the
/// node rule, but only when the container has not restarted since the
/// stored last point (start time before that point).
///
/// One deliberate difference: when a stored pod had a previous point for
/// some containers but not for this one, metrics-server's map lookup yields
/// a zero point (Go's zero time) as prev and later serves a near-zero rate
/// over a centuries-long window; here such a container simply has no prev.
pub fn next_container(old: Option<&Series>, new: Point, resolution_ns: i64) -> Series {
    if let Some(start) = new.start_time {
        let age = new.timestamp.saturating_sub(start);
        if start < new.timestamp && age < resolution_ns && age >= FRESH_CONTAINER_MIN_NS {
            let synthetic = Point { timestamp: start, cpu_cumulative_ns: 0, ..new };
            return Series { last: new, prev: Some(synthetic) };
        }
    }
    match old {
        Some(old) if started_before(new.start_time, old.last.timestamp) => shift(old, new),
        _ => Series::first(new),
    }
}

/// Pod rule: the containers of `report` (one pod's containers in a scrape,
/// sorted by name) replace the `held` ones, each series moving on from the
/// held series of the same name ([`next_container`]); a held container the
/// report lacks is dropped. When the report names the held containers in the
/// same order (the common case) the series are updated where they are, with
/// their names; otherwise the list is rebuilt in the report's order. Returns
/// the newest timestamp in the report.
pub fn next_containers(
    held: &mut Vec<(String, Series)>,
    report: Vec<ContainerPoint>,
    resolution_ns: i64,
) -> Option<UnixNanos> {
    let newest = report.iter().map(|c| c.point.timestamp).max();
    if same_containers(held, &report) {
        for ((_, series), c) in held.iter_mut().zip(report) {
            *series = next_container(Some(series), c.point, resolution_ns);
        }
    } else {
        let rebuilt = report
            .into_iter()
            .map(|c| {
                let old = held.binary_search_by(|(n, _)| n.as_str().cmp(&c.name)).ok().map(|i| &held[i].1);
                let series = next_container(old, c.point, resolution_ns);
                (c.name, series)
            })
            .collect();
        *held = rebuilt;
    }
    newest
}

/// Whether `report` names the `held` containers one for one, in order, and
/// those are strictly sorted: then the by-name search of the rebuild would
/// find each held series at its own position, so updating in place gives
/// the same list. (A report that breaks the sorting, such as a peer's,
/// takes the rebuild and gets what the search gives.)
fn same_containers(held: &[(String, Series)], report: &[ContainerPoint]) -> bool {
    held.len() == report.len()
        && held.iter().zip(report).all(|((h, _), r)| *h == r.name)
        && held.windows(2).all(|w| w[0].0 < w[1].0)
}
