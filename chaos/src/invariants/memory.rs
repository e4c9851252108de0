//! No leak: each replica's resident memory, once warm, stays flat. Judged
//! on each replica's longest-lived process (a restarted replica starts
//! cold again): the later half of its life, and never its first [`WARM`],
//! must span at least [`SPAN`] and must not grow by more than [`GROWTH`]
//! from the first minute of it to the last minute (medians, so one sample
//! taken in the middle of a big answer does not decide).
//!
//! Why the later half and not all of it after a fixed warm-up: under a
//! soak's faults a process keeps meeting work it has not done before (its
//! first handover, its first pause, its first peer cut), and its memory
//! rises with each until every kind was met, then stays flat. The first
//! 30-minute soak showed that shape (replica-0: +17 % from minute 5 to 18,
//! +0.04 % over its last 6 minutes). A leak grows for as long as the
//! process lives, so it grows in the later half as well: a steady leak of
//! 25 % over 25 minutes fails (13 % over the later half); one of 20 % over
//! 25 minutes is at the edge (10.3 %). The growth from [`WARM`] on is reported
//! beside it.

use std::collections::BTreeMap;

use super::Check;
use crate::record::MemorySample;

/// Time a process gets to warm up (informers listed, every store filled,
/// the pools of the allocator grown).
pub const WARM: u64 = 5 * 60 * 1000;
/// The least warm span judged.
pub const SPAN: u64 = 10 * 60 * 1000;
/// The most growth allowed from the first warm minute to the last.
pub const GROWTH: f64 = 0.10;
/// Samples in a minute of the ends compared.
const ENDS: u64 = 60 * 1000;

fn median(mut v: Vec<u64>) -> f64 {
    v.sort_unstable();
    match v.len() {
        0 => f64::NAN,
        n if n % 2 == 1 => v[n / 2] as f64,
        n => (v[n / 2 - 1] + v[n / 2]) as f64 / 2.0,
    }
}

/// The memory check over `samples`; it fails when a judged replica grew too
/// much, or when no replica lived long enough to be judged.
pub fn flat(samples: &[MemorySample]) -> Check {
    let mut by_process: BTreeMap<(usize, u32), Vec<&MemorySample>> = BTreeMap::new();
    for s in samples {
        by_process.entry((s.replica, s.pid)).or_default().push(s);
    }
    // Each replica's longest-lived process.
    let mut longest: BTreeMap<usize, Vec<&MemorySample>> = BTreeMap::new();
    for ((replica, _), mut v) in by_process {
        v.sort_by_key(|s| s.at_ms);
        let span = |v: &[&MemorySample]| v.last().map_or(0, |l| l.at_ms) - v.first().map_or(0, |f| f.at_ms);
        if longest.get(&replica).is_none_or(|held| span(held) < span(&v)) {
            longest.insert(replica, v);
        }
    }
    let mut figures: Vec<(String, f64)> = Vec::new();
    let mut detail = Vec::new();
    let mut judged = 0;
    let mut pass = true;
    for (replica, v) in &longest {
        let Some(first) = v.first().map(|s| s.at_ms) else { continue };
        let last = v.last().map_or(first, |s| s.at_ms);
        let from_warm = |since: u64| -> Vec<&MemorySample> { v.iter().copied().filter(|s| s.at_ms >= since).collect() };
        let after_warm_up = from_warm(first + WARM);
        let warm = from_warm(first + WARM.max((last - first) / 2));
        let (Some(from), Some(to)) = (warm.first().map(|s| s.at_ms), warm.last().map(|s| s.at_ms)) else {
            detail.push(format!("replica-{replica}: no process lived past its warm-up"));
            continue;
        };
        if to - from < SPAN {
            detail.push(format!(
                "replica-{replica}: longest warm span {:.1} min, too short to judge",
                (to - from) as f64 / 60e3
            ));
            continue;
        }
        let start = median(warm.iter().filter(|s| s.at_ms < from + ENDS).map(|s| s.rss_kib).collect());
        let end = median(warm.iter().filter(|s| s.at_ms + ENDS > to).map(|s| s.rss_kib).collect());
        let growth = end / start - 1.0;
        let since_warm_up = after_warm_up.first().map_or(f64::NAN, |f| {
            end / median(after_warm_up.iter().filter(|s| s.at_ms < f.at_ms + ENDS).map(|s| s.rss_kib).collect()) - 1.0
        });
        judged += 1;
        figures.push((format!("replica_{replica}_warm_min"), (to - from) as f64 / 60e3));
        figures.push((format!("replica_{replica}_start_mib"), start / 1024.0));
        figures.push((format!("replica_{replica}_end_mib"), end / 1024.0));
        figures.push((format!("replica_{replica}_growth_pct"), growth * 100.0));
        figures.push((format!("replica_{replica}_growth_after_warm_up_pct"), since_warm_up * 100.0));
        if growth > GROWTH {
            pass = false;
            detail.push(format!(
                "replica-{replica}: resident memory grew {:.1} % over the last {:.1} minutes of its life ({:.1} → {:.1} MiB)",
                growth * 100.0,
                (to - from) as f64 / 60e3,
                start / 1024.0,
                end / 1024.0
            ));
        }
    }
    if judged == 0 {
        pass = false;
        detail.push("no replica process lived long enough to judge its memory".into());
    }
    let figures: Vec<(&str, f64)> = figures.iter().map(|(k, v)| (k.as_str(), *v)).collect();
    Check::new("memory", pass, &figures, detail)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn series(replica: usize, pid: u32, from_min: u64, to_min: u64, rss: impl Fn(u64) -> u64) -> Vec<MemorySample> {
        (from_min * 6..=to_min * 6)
            .map(|k| MemorySample { at_ms: k * 10_000, replica, pid, rss_kib: rss(k * 10_000) })
            .collect()
    }

    #[test]
    fn memory_that_rises_while_warming_then_stays_flat_passes() {
        // +17 % from minute 5 to 18 (each fault a new kind of work), flat after.
        let rising = series(0, 100, 0, 25, |t| {
            let m = t / 60_000;
            if m < 18 { 80_000 + m * 1_000 } else { 98_000 }
        });
        let c = flat(&rising);
        assert!(c.pass, "{c:?}");
        assert!(c.figures["replica_0_growth_after_warm_up_pct"] > 10.0, "{c:?}");
    }

    #[test]
    fn flat_memory_passes_and_a_steady_leak_fails() {
        let flat_one = series(0, 100, 0, 30, |t| if t < WARM { 50_000 + t / 10 } else { 100_000 });
        let c = flat(&flat_one);
        assert!(c.pass, "{c:?}");
        assert_eq!(c.figures["replica_0_growth_pct"], 0.0);
        // 25 % over 25 warm minutes.
        let leaking = series(1, 200, 0, 30, |t| 100_000 + t.saturating_sub(WARM) * 25_000 / (25 * 60_000));
        let c = flat(&leaking);
        assert!(!c.pass, "{c:?}");
        assert!(c.figures["replica_1_growth_pct"] > 12.0, "{c:?}");
        assert!(c.figures["replica_1_growth_after_warm_up_pct"] > 20.0, "{c:?}");
    }

    #[test]
    fn the_longest_lived_process_of_each_replica_is_judged_and_short_lives_are_not() {
        let mut s = series(0, 1, 0, 8, |_| 10_000);
        // Restarted at minute 8 with a fresh, flat process that lives 22 minutes.
        s.extend(series(0, 2, 8, 30, |_| 90_000));
        // Another replica killed for good after 12 minutes: too short to judge.
        s.extend(series(1, 3, 0, 12, |t| 10_000 + t));
        let c = flat(&s);
        assert!(c.pass, "{c:?}");
        assert!(c.figures.contains_key("replica_0_growth_pct"));
        assert!(!c.figures.contains_key("replica_1_growth_pct"));
        assert!(c.detail.iter().any(|d| d.starts_with("replica-1:")), "{:?}", c.detail);
        let none = flat(&series(2, 4, 0, 9, |_| 1));
        assert!(!none.pass, "nothing judged is no pass");
    }
}
