//! One timeline per scenario, as SVG (plotters, SVG backend only): each
//! replica's Raft role over time, the oldest served sample per answer, and
//! kubelet scrapes per second, with the fault window shaded in every panel.
//! The series are computed by pure functions ([`timeline`]) and only drawn here.

use std::collections::BTreeMap;
use std::path::Path;

use plotters::prelude::*;

use crate::record::{Kind, Recording, Source};

/// The series of one timeline, in seconds since the start of the recording.
#[derive(Debug, Default, PartialEq)]
pub struct Timeline {
    pub seconds: f64,
    pub fault: (f64, f64),
    /// Per replica: (from, to, role).
    pub roles: BTreeMap<usize, Vec<(f64, f64, String)>>,
    /// Per source: runs of (t, oldest served sample in seconds), split where it did not answer.
    pub ages: BTreeMap<String, Vec<Vec<(f64, f64)>>>,
    /// (second, scrapes that reached a kubelet in it).
    pub scrapes: Vec<(f64, f64)>,
    /// Scrapes per second when exactly-once (nodes / R).
    pub expected_rate: f64,
}

/// The series of `rec`.
pub fn timeline(rec: &Recording) -> Timeline {
    let t = |ms: u64| ms.saturating_sub(rec.start_ms) as f64 / 1000.0;
    let mut roles: BTreeMap<usize, Vec<(f64, f64, String)>> = BTreeMap::new();
    for v in &rec.views {
        let spans = roles.entry(v.replica).or_default();
        let at = t(v.at_ms);
        match spans.last_mut() {
            // Views come every 500 ms: a longer silence is a gap.
            Some(last) if last.2 == v.role && at - last.1 <= 1.5 => last.1 = at + 0.5,
            _ => spans.push((at, at + 0.5, v.role.clone())),
        }
    }
    let mut ages: BTreeMap<String, Vec<Vec<(f64, f64)>>> = BTreeMap::new();
    for a in rec.answers.iter().filter(|a| a.status == Some(200) && a.kind == Kind::Nodes) {
        let oldest = a.items.iter().map(|i| a.at_ms.saturating_sub(i.ts_ms)).max();
        if let Some(age) = oldest {
            let name = match a.source {
                Source::Replica(i) => format!("replica-{i}"),
                Source::Proxy => "via apiserver".into(),
            };
            let runs = ages.entry(name).or_default();
            let point = (t(a.at_ms), age as f64 / 1000.0);
            match runs.last_mut() {
                Some(run) if run.last().is_some_and(|p| point.0 - p.0 <= 1.5) => run.push(point),
                _ => runs.push(vec![point]),
            }
        }
    }
    let mut per_second: BTreeMap<u64, f64> = BTreeMap::new();
    for s in rec.scrapes.iter().filter(|s| s.reached && s.at_ms >= rec.start_ms) {
        *per_second.entry((s.at_ms - rec.start_ms) / 1000).or_default() += 1.0;
    }
    let last = rec.end_ms.saturating_sub(rec.start_ms) / 1000;
    Timeline {
        seconds: t(rec.end_ms),
        fault: (t(rec.fault_start_ms), t(rec.heal_ms)),
        roles,
        ages,
        scrapes: (0..last).map(|s| (s as f64, per_second.get(&s).copied().unwrap_or(0.0))).collect(),
        expected_rate: rec.nodes.len() as f64 * 1000.0 / rec.resolution_ms.max(1) as f64,
    }
}

fn role_color(role: &str) -> RGBColor {
    match role {
        "Leader" => RGBColor(0x2b, 0x6c, 0xb0),
        "Follower" => RGBColor(0x6a, 0xb0, 0x4c),
        "Candidate" => RGBColor(0xe0, 0x9b, 0x1a),
        _ => RGBColor(0x99, 0x99, 0x99),
    }
}

const SERIES: [RGBColor; 7] = [
    RGBColor(0x2b, 0x6c, 0xb0),
    RGBColor(0x6a, 0xb0, 0x4c),
    RGBColor(0x8e, 0x44, 0xad),
    RGBColor(0xe0, 0x9b, 0x1a),
    RGBColor(0x16, 0xa0, 0x85),
    RGBColor(0x7f, 0x8c, 0x8d),
    RGBColor(0x00, 0x00, 0x00),
];

/// Draws each replica's resident memory over `rec` (one line per process:
/// a restarted replica starts a new one) to `path`.
pub fn draw_memory(rec: &Recording, title: &str, path: &Path) -> Result<(), String> {
    draw_memory_lines(rec, title, path).map_err(|e| format!("{}: {e}", path.display()))
}

fn draw_memory_lines(rec: &Recording, title: &str, path: &Path) -> Result<(), Box<dyn std::error::Error>> {
    let mut lines: std::collections::BTreeMap<(usize, u32), Vec<(f64, f64)>> = std::collections::BTreeMap::new();
    for s in &rec.memory {
        let minutes = s.at_ms.saturating_sub(rec.start_ms) as f64 / 60e3;
        lines.entry((s.replica, s.pid)).or_default().push((minutes, s.rss_kib as f64 / 1024.0));
    }
    let end = lines.values().flatten().map(|p| p.0).fold(1.0, f64::max);
    let top = lines.values().flatten().map(|p| p.1).fold(1.0, f64::max) * 1.15;
    let root = SVGBackend::new(path, (1000, 420)).into_drawing_area();
    root.fill(&WHITE)?;
    let mut c = ChartBuilder::on(&root)
        .caption(title, ("sans-serif", 18))
        .margin(10)
        .x_label_area_size(36)
        .y_label_area_size(60)
        .build_cartesian_2d(0f64..end, 0f64..top)?;
    c.configure_mesh().x_desc("minutes since the start").y_desc("resident memory, MiB").draw()?;
    for ((replica, pid), points) in lines {
        let color = SERIES[replica % SERIES.len()];
        c.draw_series(LineSeries::new(points, color.stroke_width(2)))?
            .label(format!("replica-{replica} (pid {pid})"))
            .legend(move |(x, y)| PathElement::new(vec![(x, y), (x + 16, y)], color.stroke_width(2)));
    }
    c.configure_series_labels().background_style(WHITE.mix(0.8)).border_style(BLACK).draw()?;
    root.present()?;
    Ok(())
}

/// Draws `rec`'s timeline to `path`.
pub fn draw(rec: &Recording, title: &str, path: &Path) -> Result<(), String> {
    draw_timeline(&timeline(rec), rec.resolution_ms as f64 / 1000.0, title, path)
        .map_err(|e| format!("{}: {e}", path.display()))
}

fn draw_timeline(tl: &Timeline, r: f64, title: &str, path: &Path) -> Result<(), Box<dyn std::error::Error>> {
    let root = SVGBackend::new(path, (1000, 760)).into_drawing_area();
    root.fill(&WHITE)?;
    let root = root.titled(title, ("sans-serif", 20))?;
    let panels = root.split_evenly((3, 1));
    let x = 0f64..tl.seconds.max(1.0);
    let shade = RGBColor(0xe7, 0x4c, 0x3c).mix(0.15).filled();

    let replicas = tl.roles.keys().copied().max().map_or(1, |m| m + 1);
    let mut c = ChartBuilder::on(&panels[0])
        .caption(
            "Raft role per replica (blue leader, green follower, orange candidate; blank: no answer)",
            ("sans-serif", 14),
        )
        .margin(8)
        .x_label_area_size(24)
        .y_label_area_size(70)
        .build_cartesian_2d(x.clone(), -0.5f64..replicas as f64 - 0.5)?;
    // Row i is centred on y = i; only whole values are labelled.
    let row_name = |y: &f64| {
        if (y - y.round()).abs() < 0.01 && *y > -0.1 {
            format!("replica-{}", y.round() as usize)
        } else {
            String::new()
        }
    };
    c.configure_mesh().y_labels(replicas * 2 + 1).y_label_formatter(&row_name).disable_y_mesh().draw()?;
    let (low, high) = (-0.5, replicas as f64 - 0.5);
    c.draw_series(std::iter::once(Rectangle::new([(tl.fault.0, low), (tl.fault.1, high)], shade)))?;
    for (i, spans) in &tl.roles {
        let y = *i as f64;
        let bar = |(a, b, role): &(f64, f64, String)| {
            Rectangle::new([(*a, y - 0.35), (*b, y + 0.35)], role_color(role).filled())
        };
        c.draw_series(spans.iter().map(bar))?;
    }

    let top = tl.ages.values().flatten().flatten().map(|p| p.1).fold(r + 6.0, f64::max);
    let mut c = ChartBuilder::on(&panels[1])
        .caption("Oldest served sample per node answer (s); dashed: bound R + 5 s", ("sans-serif", 14))
        .margin(8)
        .x_label_area_size(24)
        .y_label_area_size(70)
        .build_cartesian_2d(x.clone(), 0f64..top)?;
    c.configure_mesh().draw()?;
    c.draw_series(std::iter::once(Rectangle::new([(tl.fault.0, 0.0), (tl.fault.1, top)], shade)))?;
    c.draw_series(DashedLineSeries::new(vec![(0.0, r + 5.0), (tl.seconds, r + 5.0)], 6, 4, RED.stroke_width(1)))?;
    for (k, (name, runs)) in tl.ages.iter().enumerate() {
        let color = SERIES[k % SERIES.len()];
        for (n, run) in runs.iter().enumerate() {
            let drawn = c.draw_series(LineSeries::new(run.iter().copied(), color.stroke_width(1)))?;
            if n == 0 {
                drawn.label(name.clone()).legend(move |(x, y)| PathElement::new(vec![(x, y), (x + 16, y)], color));
            }
        }
    }
    c.configure_series_labels()
        .background_style(WHITE.mix(0.8))
        .border_style(BLACK)
        .position(SeriesLabelPosition::UpperRight)
        .draw()?;

    let top = tl.scrapes.iter().map(|p| p.1).fold(tl.expected_rate * 2.0, f64::max) + 1.0;
    let mut c = ChartBuilder::on(&panels[2])
        .caption("Kubelet scrapes per second (all nodes); dashed: exactly-once rate", ("sans-serif", 14))
        .margin(8)
        .x_label_area_size(30)
        .y_label_area_size(70)
        .build_cartesian_2d(x, 0f64..top)?;
    c.configure_mesh().x_desc("seconds since the observer started").draw()?;
    c.draw_series(std::iter::once(Rectangle::new([(tl.fault.0, 0.0), (tl.fault.1, top)], shade)))?;
    c.draw_series(DashedLineSeries::new(
        vec![(0.0, tl.expected_rate), (tl.seconds, tl.expected_rate)],
        6,
        4,
        BLACK.stroke_width(1),
    ))?;
    c.draw_series(LineSeries::new(tl.scrapes.iter().copied(), SERIES[0].stroke_width(2)))?;
    root.present()?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::invariants::fixture::healthy;

    #[test]
    fn the_timeline_has_each_replicas_role_spans_ages_and_scrape_rate() {
        let rec = healthy();
        let tl = timeline(&rec);
        assert_eq!(tl.roles[&0].len(), 1, "one unbroken Leader span: {:?}", tl.roles[&0]);
        assert_eq!(tl.roles[&0][0].2, "Leader");
        assert_eq!(tl.fault, (16.0, 20.0));
        assert_eq!(tl.expected_rate, 1.0);
        let total: f64 = tl.scrapes.iter().map(|p| p.1).sum();
        assert_eq!(total, 40.0);
        assert_eq!(tl.ages["replica-1"].len(), 1, "one unbroken run");
        assert!(tl.ages["replica-1"][0].iter().all(|(_, a)| *a < 2.0));
    }

    #[test]
    fn a_timeline_is_drawn_as_svg() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("t.svg");
        draw(&healthy(), "healthy", &path).unwrap();
        let svg = std::fs::read_to_string(&path).unwrap();
        assert!(svg.starts_with("<svg") && svg.contains("replica-0") && svg.contains("<rect"));
    }

    #[test]
    fn memory_is_drawn_as_one_line_per_replica_process() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("m.svg");
        let mut rec = healthy();
        for k in 0..30u64 {
            for (replica, pid) in [(0, 11u32), (1, 12), (2, if k < 15 { 13 } else { 14 })] {
                let at_ms = rec.start_ms + k * 10_000;
                rec.memory.push(crate::record::MemorySample { at_ms, replica, pid, rss_kib: 40_000 + k });
            }
        }
        draw_memory(&rec, "soak", &path).unwrap();
        let svg = std::fs::read_to_string(&path).unwrap();
        assert!(svg.starts_with("<svg"));
        for label in ["replica-0 (pid 11)", "replica-2 (pid 13)", "replica-2 (pid 14)"] {
            assert!(svg.contains(label), "{label}");
        }
    }
}
