//! The scrape-log judgments on hand-made logs at R = 2 s.

use super::*;

const R: u64 = 2_000;

/// `node` scraped by `by` at `first`, `first + R`, … below `end`.
fn every_r(node: &'static str, by: usize, first: u64, end: u64) -> Vec<Scrape<'static, usize>> {
    (first..end).step_by(R as usize).map(|at_ms| Scrape { node, at_ms, by }).collect()
}

fn log(parts: &[Vec<Scrape<'static, usize>>]) -> Vec<Scrape<'static, usize>> {
    let mut all: Vec<_> = parts.concat();
    all.sort_by_key(|s| s.at_ms);
    all
}

const W: Window = Window { from_ms: 10_000, to_ms: 30_000, resolution_ms: R };

#[test]
fn one_scraper_per_node_once_per_resolution_is_exactly_once() {
    let scrapes = log(&[every_r("a", 0, 700, 40_000), every_r("b", 1, 1_500, 40_000)]);
    let v = exactly_once(scrapes.iter().copied(), ["a", "b"], W, Count::Exact { edge_ms: 300 });
    assert_eq!(v.violations, Vec::<String>::new());
    assert_eq!(v.scrapers["a"], BTreeSet::from([0]));
    assert_eq!(v.scrapers["b"], BTreeSet::from([1]));
    assert_eq!(W.periods(), 10);
}

#[test]
fn two_scrapers_a_missing_node_and_a_double_scrape_are_violations() {
    let mut scrapes = log(&[every_r("a", 0, 700, 40_000), every_r("a", 2, 1_500, 40_000)]);
    let v = exactly_once(scrapes.iter().copied(), ["a", "c"], W, Count::WithinOne);
    assert!(v.violations.iter().any(|s| s == "a scraped by {0, 2}"), "{:?}", v.violations);
    assert!(v.violations.iter().any(|s| s == "a: 20 scrapes in 10 resolutions"), "{:?}", v.violations);
    assert!(v.violations.iter().any(|s| s == "a scraped twice within 800 ms"), "{:?}", v.violations);
    assert!(v.violations.iter().any(|s| s == "c: 0 scrapes in 10 resolutions"), "{:?}", v.violations);
    assert!(v.scrapers["c"].is_empty());
    scrapes.retain(|s| s.by == 0);
    assert!(exactly_once(scrapes.iter().copied(), ["a"], W, Count::WithinOne).violations.is_empty());
}

#[test]
fn the_exact_rule_allows_one_more_or_less_only_near_the_window_edges() {
    // Phase 100 ms after the window opens: a scrape sits at the edge, so 11 are allowed.
    let at_edge = every_r("a", 0, 100, 40_000);
    let with_extra = log(&[at_edge, vec![Scrape { node: "a", at_ms: 29_950, by: 0 }]]);
    let v = exactly_once(with_extra.iter().copied(), ["a"], W, Count::Exact { edge_ms: 300 });
    assert!(v.violations.iter().all(|s| !s.contains("scrapes in")), "{:?}", v.violations);
    // Phase 1 s: no scrape near an edge, so one missing scrape breaks the exact count …
    let mut gap = every_r("a", 0, 1_000, 40_000);
    gap.retain(|s| s.at_ms != 15_000);
    let exact = exactly_once(gap.iter().copied(), ["a"], W, Count::Exact { edge_ms: 300 });
    assert_eq!(exact.violations, ["a: 9 scrapes in 10 resolutions"]);
    // … which the loose rule lets pass.
    assert!(exactly_once(gap.iter().copied(), ["a"], W, Count::WithinOne).violations.is_empty());
}

#[test]
fn the_first_rescrape_ignores_the_old_owner_and_earlier_scrapes() {
    let scrapes = log(&[every_r("a", 0, 0, 10_000), every_r("a", 1, 7_300, 20_000), every_r("b", 2, 500, 20_000)]);
    let nodes = BTreeSet::from(["a".to_string(), "b".to_string()]);
    let first = first_after(scrapes.iter().copied(), &nodes, 6_000, &0);
    assert_eq!(first, BTreeMap::from([("a".to_string(), 7_300), ("b".to_string(), 6_500)]));
    assert_eq!(last_scraper(scrapes.iter().copied())["a"], 1);
}

#[test]
fn extra_and_too_close_count_what_a_handover_adds() {
    let mut scrapes = log(&[every_r("a", 0, 0, 10_000), every_r("b", 1, 500, 10_000)]);
    scrapes.push(Scrape { node: "a", at_ms: 4_300, by: 1 });
    scrapes.push(Scrape { node: "a", at_ms: 4_600, by: 1 });
    scrapes.sort_by_key(|s| s.at_ms);
    // [0, 10 s) allows 5 + 1 scrapes; "a" has 7.
    assert_eq!(extra(scrapes.iter().copied(), 0, 10_000, R), BTreeMap::from([("a", 1)]));
    let close = too_close(scrapes.iter().copied(), 0, 10_000, R);
    assert_eq!((close["a"], close["b"]), (2, 0));
}
