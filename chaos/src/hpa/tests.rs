//! The replica calculation against the reference's rules for the HPA
//! (api-and-clients §4.1) and kube-controller-manager's worked cases.

use super::*;

fn pods(n: usize, request: i64) -> Vec<PodInfo> {
    (0..n).map(|i| PodInfo { name: format!("p{i}"), request_milli: request, ready: true }).collect()
}

fn used(values: &[i64]) -> BTreeMap<String, i64> {
    values.iter().enumerate().map(|(i, v)| (format!("p{i}"), *v)).collect()
}

#[test]
fn a_ratio_outside_the_tolerance_scales_to_the_ceiling_of_ratio_times_ready_pods() {
    // 3 pods at 100m request using 80m each against a 50 % target: 160 % → ceil(1.6 × 3) = 5.
    assert_eq!(recommend(3, &pods(3, 100), &used(&[80, 80, 80]), 50, TOLERANCE), Decision::Replicas(5));
    // Using 20m each against 50 %: 0.4 → ceil(1.2) = 2.
    assert_eq!(recommend(3, &pods(3, 100), &used(&[20, 20, 20]), 50, TOLERANCE), Decision::Replicas(2));
}

#[test]
fn a_ratio_within_ten_percent_keeps_the_current_count() {
    // 54 % against 50 %: ratio 1.08, within 0.1.
    assert_eq!(recommend(4, &pods(4, 100), &used(&[54, 54, 54, 54]), 50, TOLERANCE), Decision::Replicas(4));
    // 46 %: 0.92, within.
    assert_eq!(recommend(4, &pods(4, 100), &used(&[46, 46, 46, 46]), 50, TOLERANCE), Decision::Replicas(4));
    // 56 %: 1.12, outside: ceil(1.12 × 4) = 5.
    assert_eq!(recommend(4, &pods(4, 100), &used(&[56, 56, 56, 56]), 50, TOLERANCE), Decision::Replicas(5));
}

#[test]
fn utilisation_is_whole_percent_truncated_as_go_does() {
    // 10 pods each using 1509m of 1000m against 100 %: 150.9 % → 150 → 1.5 → 15 (not ceil(15.09) = 16).
    assert_eq!(recommend(10, &pods(10, 1000), &used(&[1509; 10]), 100, TOLERANCE), Decision::Replicas(15));
    // A ratio of exactly 1.1 in float64 is 0.10000000000000009 from 1: outside, as in Go: ceil(4.4) = 5.
    assert_eq!(recommend(4, &pods(4, 100), &used(&[55; 4]), 50, TOLERANCE), Decision::Replicas(5));
}

#[test]
fn an_empty_list_stops_scaling() {
    let d = recommend(3, &pods(3, 100), &BTreeMap::new(), 50, TOLERANCE);
    assert_eq!(d, Decision::Stopped("no metrics returned from resource metrics API".into()));
    assert_eq!(d.effective(3), 3, "a stopped HPA leaves the count as it is");
}

#[test]
fn missing_pods_count_zero_on_a_scale_up() {
    // Two of three pods at 90 % of a 50 % target (ratio 1.8), one missing:
    // with it at 0 %, (90 + 90 + 0) / 3 = 60 % → 1.2 → ceil(1.2 × 3) = 4;
    assert_eq!(recommend(3, &pods(3, 100), &used(&[90, 90]), 50, TOLERANCE), Decision::Replicas(4));
    // and with all three served, ceil(1.8 × 3) = 6: a missing pod changes the decision.
    assert_eq!(recommend(3, &pods(3, 100), &used(&[90, 90, 90]), 50, TOLERANCE), Decision::Replicas(6));
}

#[test]
fn missing_pods_count_their_full_request_on_a_scale_down() {
    // Two of four pods at 10 % of a 50 % target (0.2), two missing at 100 %:
    // (10 + 10 + 100 + 100) / 4 = 55 % → 1.1: above 1 after the fill, below before it: no change.
    assert_eq!(recommend(4, &pods(4, 100), &used(&[10, 10]), 50, TOLERANCE), Decision::Replicas(4));
    // One missing: (10 + 10 + 10 + 100) / 4 = 32 % → 0.64 → ceil(2.56) = 3 (all four served: ceil(0.8) = 1).
    assert_eq!(recommend(4, &pods(4, 100), &used(&[10, 10, 10]), 50, TOLERANCE), Decision::Replicas(3));
    assert_eq!(recommend(4, &pods(4, 100), &used(&[10, 10, 10, 10]), 50, TOLERANCE), Decision::Replicas(1));
    // A target above 100 % fills missing pods at the target: (30 + 150) / 2 = 90 % of 150 → 0.6 → 2
    // (at 100 % it would be 65 % → 0.43 → 1).
    assert_eq!(recommend(2, &pods(2, 100), &used(&[30]), 150, TOLERANCE), Decision::Replicas(2));
}

#[test]
fn a_fill_that_would_flip_the_direction_keeps_the_count() {
    // 45 % against a 60 % target: 0.75, down; the missing pod filled at 100 % →
    // (45 + 100) / 2 = 72 % → 1.2, up: a flip, so the count stays.
    assert_eq!(recommend(2, &pods(2, 100), &used(&[45]), 60, TOLERANCE), Decision::Replicas(2));
}

#[test]
fn a_pod_lacking_a_container_or_its_cpu_is_dropped() {
    let served = vec![
        ServedPod { name: "a".into(), containers: vec![] },
        ServedPod {
            name: "b".into(),
            containers: vec![
                ContainerCpu { name: "app".into(), milli: Some(5) },
                ContainerCpu { name: "side".into(), milli: None },
            ],
        },
        ServedPod {
            name: "c".into(),
            containers: vec![
                ContainerCpu { name: "app".into(), milli: Some(5) },
                ContainerCpu { name: "side".into(), milli: Some(7) },
            ],
        },
    ];
    let m = pod_metrics(&served);
    assert_eq!(m.len(), 1, "{m:?}");
    assert_eq!(m["c"], 12, "the containers are summed");
}

#[test]
fn unready_pods_count_zero_on_a_scale_up_only() {
    let mut p = pods(3, 100);
    p[2].ready = false;
    // Ready pods at 100 % of a 50 % target: 2.0; the unready one at 0 → (100 + 100 + 0) / 3 = 66 % → 1.32 → 4.
    assert_eq!(recommend(3, &p, &used(&[100, 100, 100]), 50, TOLERANCE), Decision::Replicas(4));
    // Scaling down, the unready pod is just left out: 20 % → 0.4 → ceil(0.4 × 2) = 1.
    assert_eq!(recommend(3, &p, &used(&[20, 20, 100]), 50, TOLERANCE), Decision::Replicas(1));
}

#[test]
fn metrics_of_pods_outside_the_selector_are_ignored() {
    let mut m = used(&[80, 80]);
    m.insert("stranger".into(), 1_000);
    assert_eq!(recommend(2, &pods(2, 100), &m, 50, TOLERANCE), Decision::Replicas(4));
}

#[test]
fn the_served_list_is_read_in_millicores_rounded_up() {
    let body = r#"{"items":[{"metadata":{"name":"w-0","namespace":"default"},"timestamp":"2026-01-01T00:00:00Z",
        "window":"2s","containers":[{"name":"web","usage":{"cpu":"12000001n","memory":"1Mi"}},
        {"name":"side","usage":{"memory":"1Mi"}}]},
        {"metadata":{"name":"w-1","namespace":"default"},"containers":[{"name":"web","usage":{"cpu":"3m"}}]}]}"#;
    let pods = served_pods(body);
    assert_eq!(pods.len(), 2);
    assert_eq!(pods[0].containers[0].milli, Some(13));
    assert_eq!(pods[0].containers[1].milli, None);
    assert_eq!(pod_metrics(&pods).into_iter().collect::<Vec<_>>(), vec![("w-1".to_string(), 3)]);
    assert!(served_pods("not json").is_empty());
}

#[test]
fn targets_are_picked_clear_of_every_boundary_and_going_the_asked_way() {
    let p = pods(4, 100);
    let truth = used(&[37, 52, 18, 61]);
    for (dir, cmp) in [(Direction::Up, 1), (Direction::Hold, 0), (Direction::Down, -1)] {
        let t = pick_target(&p, &truth, dir).expect("a target");
        let d = recommend(4, &p, &truth, t, TOLERANCE);
        let n = d.effective(4);
        assert_eq!(n.cmp(&4) as i32, cmp, "{dir:?}: target {t}% gives {d:?}");
        for f in [0.97, 1.03] {
            let moved: BTreeMap<String, i64> =
                truth.iter().map(|(k, v)| (k.clone(), (*v as f64 * f).round() as i64)).collect();
            assert_eq!(recommend(4, &p, &moved, t, TOLERANCE), d, "{dir:?} at ×{f}");
        }
    }
}

#[test]
fn the_simulated_cluster_gets_hpas_that_scale_up_hold_and_down() {
    let spec = sim::cluster::generate(
        &sim::addr::Block::dev(),
        &sim::cluster::GenerateOptions { nodes: 12, pods_per_node: 2, ..Default::default() },
    );
    let hpas = simulated(&spec);
    assert!(!hpas.is_empty(), "no Deployment of two pods or more in the simulated cluster");
    let empty = BTreeSet::new();
    for h in &hpas {
        assert!(h.pods.len() >= 2 && h.path().contains("labelSelector=deployment%3D"), "{h:?}");
        assert!(matches!(h.truth_decision(&empty), Decision::Replicas(_)));
    }
    assert!(hpas[0].truth_decision(&empty).effective(hpas[0].current()) > hpas[0].current());
}
