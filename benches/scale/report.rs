//! The benchmark's outputs: a table on stdout (and in table.txt), the JSON
//! of every result, and an SVG plot of cost per node against cluster size
//! for every mode, all under target/scale/.

use std::fmt::Write as _;
use std::path::Path;

use plotters::prelude::*;

use crate::run::{Mode, Result};

/// metrics-server's documented cost per node of one replica.
pub const ANCHOR_MCPU_PER_NODE: f64 = 1.0;
pub const ANCHOR_MIB_PER_NODE: f64 = 2.0;

fn worst(r: &Result, pick: impl Fn(&crate::run::ReplicaLatency) -> f64, killed: bool) -> f64 {
    let set = if killed { &r.owner_killed } else { &r.latency };
    set.iter().map(pick).fold(f64::NAN, f64::max)
}

/// `v` with `precision` decimals, or `-` when there is none (NaN).
fn num(v: f64, precision: usize) -> String {
    if v.is_nan() { "-".to_string() } else { format!("{v:.precision$}") }
}

pub fn table(results: &[Result]) -> String {
    let mut t = String::new();
    let _ = writeln!(
        t,
        "{:<14} {:>6} {:>8} {:>8} {:>9} {:>9} {:>8} {:>8} {:>8} {:>9} {:>9} {:>9} {:>9} {:>8} {:>8} {:>8} {:>8} {:>9}",
        "mode",
        "nodes",
        "cpu s/s",
        "mCPU/n",
        "peak MiB",
        "RSS MiB",
        "MiB/n",
        "scr/n/R",
        "served s",
        "top p50ms",
        "top p99ms",
        "kill p99",
        "hpa p50ms",
        "hpa p99",
        "kill hpa",
        "xCPU",
        "xMiB",
        "peer KiB/s"
    );
    for r in results {
        let _ = writeln!(
            t,
            "{:<14} {:>6} {:>8.3} {:>8.4} {:>9.1} {:>9.1} {:>8.4} {:>8.2} {:>8} {:>9} {:>9} {:>9} {:>9} {:>8} {:>8} {:>8.3} {:>8.3} {:>9}",
            r.replication.map_or_else(|| r.mode.name().to_string(), |rf| format!("{} rf{rf}", r.mode.name())),
            r.nodes,
            r.cpu_s_per_s,
            r.mcpu_per_node,
            r.peak_rss_mib,
            r.steady_rss_mib,
            r.mib_per_node,
            r.scrapes_per_node_per_r,
            r.all_served_s.map_or("never".to_string(), |s| format!("{s:.0}")),
            num(worst(r, |l| l.top_pod_all.p50_ms, false), 0),
            num(worst(r, |l| l.top_pod_all.p99_ms, false), 0),
            num(worst(r, |l| l.top_pod_all.p99_ms, true), 1),
            num(worst(r, |l| l.hpa.p50_ms, false), 2),
            num(worst(r, |l| l.hpa.p99_ms, false), 2),
            num(worst(r, |l| l.hpa.p99_ms, true), 1),
            r.mcpu_per_node / ANCHOR_MCPU_PER_NODE,
            r.mib_per_node / ANCHOR_MIB_PER_NODE,
            r.peer_kib_per_s.map_or_else(|| "-".to_string(), |v| format!("{v:.1}")),
        );
    }
    let _ = writeln!(
        t,
        "latencies: worst replica's percentile; kill = replica 2 SIGKILLed (sharded only); \
         xCPU/xMiB = all replicas' cost per node / metrics-server's 1 mCPU and 2 MiB per node per replica; \
         peer KiB/s = body bytes of all replicas' peer calls over the window, both directions; \
         Prometheus = the real Prometheus scraping every kubelet's /metrics/resource at the same interval \
         (served s: until every target was up; it answers no metrics API)"
    );
    restarts(&mut t, results);
    for r in results {
        let _ = writeln!(
            t,
            "simulator at {} nodes during {}: {:.3} CPU s/s, {:.0} MiB RSS",
            r.nodes,
            r.mode.name(),
            r.simulator_cpu_s_per_s,
            r.simulator_rss_mib
        );
    }
    t
}

/// The rolling restarts (sharded mode), one line each.
fn restarts(t: &mut String, results: &[Result]) {
    let rows: Vec<_> = results.iter().filter_map(|r| Some((r, r.rolling_restart.as_ref()?))).collect();
    if rows.is_empty() {
        return;
    }
    let _ = writeln!(
        t,
        "\n{:<15} {:>6} {:>9} {:>16} {:>9} {:>9} {:>10} {:>8} {:>8} {:>10} {:>6} {:>7} {:>6} {:>10} {:>6} {:>7}",
        "rolling restart",
        "nodes",
        "restart s",
        "served s (each)",
        "hpa p50ms",
        "hpa p99",
        "steady p99",
        "x steady",
        "answers",
        "incomplete",
        "lacked",
        "errors",
        "lists",
        "incomplete",
        "lacked",
        "errors"
    );
    for (r, rr) in rows {
        let each: Vec<String> =
            rr.steps.iter().map(|s| s.served_s.map_or("never".into(), |v| format!("{v:.1}"))).collect();
        let (h, l) = (&rr.hpa, &rr.node_lists);
        let _ = writeln!(
            t,
            "{:<15} {:>6} {:>9.1} {:>16} {:>9} {:>9} {:>10} {:>8} {:>8} {:>10} {:>6} {:>7} {:>6} {:>10} {:>6} {:>7}",
            r.mode.name(),
            r.nodes,
            rr.total_s,
            each.join("/"),
            num(h.latency.p50_ms, 2),
            num(h.latency.p99_ms, 2),
            num(rr.steady_hpa.latency.p99_ms, 2),
            num(h.latency.p99_ms / rr.steady_hpa.latency.p99_ms, 2),
            h.answers,
            h.incomplete,
            h.most_missing,
            h.latency.errors,
            l.answers,
            l.incomplete,
            l.most_missing,
            l.latency.errors
        );
    }
    let _ = writeln!(
        t,
        "rolling restart: SIGTERM, exit, respawn with the same data folder, one replica at a time, the next when the \
         restarted one serves every node; HPA load routed to all replicas throughout, each answer's item count held \
         to the steady state's (incomplete = a pod missing), and a node list every 500 ms (incomplete = a node \
         missing); lacked = the most items one answer lacked; errors = requests that got an HTTP error; \
         steady p99 = the same load just before"
    );
}

/// What a panel plots of a result.
type Value = fn(&Result) -> f64;

/// Two panels: mCPU per node and MiB per node against nodes, a line per mode.
pub fn plot(results: &[Result], path: &Path) -> anyhow::Result<()> {
    let root = SVGBackend::new(path, (1000, 420)).into_drawing_area();
    root.fill(&WHITE)?;
    let panels = root.split_evenly((1, 2));
    let max_nodes = results.iter().map(|r| r.nodes).max().unwrap_or(1) as f64;
    let modes = [(Mode::Sharded3, BLUE), (Mode::Independent3, RED), (Mode::Single, GREEN), (Mode::Prometheus, MAGENTA)];
    let metrics: [(&str, Value); 2] = [
        ("mCPU per node (all of a mode's processes)", |r| r.mcpu_per_node),
        ("MiB per node (all of a mode's processes)", |r| r.mib_per_node),
    ];
    for (panel, (title, value)) in panels.iter().zip(metrics) {
        let top = results.iter().map(value).fold(0.0, f64::max).max(1e-6) * 1.15;
        let mut chart = ChartBuilder::on(panel)
            .caption(title, ("sans-serif", 18))
            .margin(12)
            .x_label_area_size(36)
            .y_label_area_size(56)
            .build_cartesian_2d(0.0..max_nodes * 1.05, 0.0..top)?;
        chart.configure_mesh().x_desc("nodes (30 pods each)").draw()?;
        for (mode, colour) in modes {
            let mut points: Vec<(f64, f64)> =
                results.iter().filter(|r| r.mode == mode).map(|r| (r.nodes as f64, value(r))).collect();
            points.sort_by(|a, b| a.0.total_cmp(&b.0));
            chart
                .draw_series(LineSeries::new(points.clone(), colour.stroke_width(2)))?
                .label(mode.name())
                .legend(move |(x, y)| PathElement::new(vec![(x, y), (x + 18, y)], colour));
            chart.draw_series(points.into_iter().map(|p| Circle::new(p, 4, colour.filled())))?;
        }
        chart.configure_series_labels().background_style(WHITE).border_style(BLACK).draw()?;
    }
    root.present()?;
    Ok(())
}
