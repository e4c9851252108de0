//! What the chaos integration tests share: the binary under test, run
//! options in a fresh temp folder, and running one scenario with its
//! verdict and failing checks printed (`--no-capture` shows them).

#![allow(dead_code)]

use chaos::progress::Progress;
use chaos::runner::{Outcome, RunOptions};

/// Short-form options over a temp folder (kept alive by the returned guard).
pub fn options() -> (RunOptions, tempfile::TempDir) {
    let _ = rustls::crypto::ring::default_provider().install_default();
    let dir = tempfile::tempdir().expect("temp dir");
    let exe = std::env::current_exe().expect("test executable");
    let binary = chaos::binary::beside(&exe).expect("the ha-metrics-server binary");
    let mut opts = RunOptions::short(binary, dir.path().to_path_buf());
    opts.nodes = 8;
    (opts, dir)
}

/// Prints what an outcome says, for the test log.
pub fn show(o: &Outcome) {
    println!("{}: {} in {:.0} s", o.name, o.verdict, o.seconds);
    for c in &o.checks {
        println!("  {:<13} {} {:?}", c.name, if c.pass { "pass" } else { "FAIL" }, c.figures);
        for d in &c.detail {
            println!("      {d}");
        }
    }
}

/// Runs catalogue scenario `name` in its short form.
pub async fn run(name: &str, opts: &RunOptions) -> Outcome {
    let mut p = Progress::new(1);
    let o = chaos::runner::run(name, opts, &mut p).await;
    show(&o);
    o
}

/// Runs `steps` (none: only the healthy stretch) under `name`, seed 1.
pub async fn run_steps(name: &str, what: &str, steps: &[chaos::scenarios::Scenario], opts: &RunOptions) -> Outcome {
    let mut rng = chaos::rng::Rng::new(1);
    let o = chaos::runner::run_steps(name, what, steps, opts, &mut rng, &mut Progress::new(1)).await;
    show(&o);
    o
}

/// The check called `name`.
pub fn check<'a>(o: &'a Outcome, name: &str) -> &'a chaos::invariants::Check {
    o.checks.iter().find(|c| c.name == name).unwrap_or_else(|| panic!("{}: no {name} check ({})", o.name, o.verdict))
}
