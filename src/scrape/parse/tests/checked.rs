//! The scraper's parse: samples from the future refuse the batch, large
//! bodies are parsed off the runtime threads and give the same batch.

use super::*;
use crate::model::now_nanos;
use crate::selfmetrics::SelfMetrics;
use crate::store::clock::FUTURE_ALLOWANCE_NS;

const MS: i64 = 1_000_000;

#[test]
fn a_batch_with_a_sample_beyond_the_allowance_is_refused_whole() {
    let received = REQUEST_TIME + 200 * MS;
    let at = |offset_ms: i64| render(&synthetic(3, 2, (received / MS) + offset_ms, 7));
    // Within the allowance (the synthetic body's samples are up to 5 s older
    // than its node point): taken.
    let ok = parse_checked(at(FUTURE_ALLOWANCE_NS / MS).as_bytes(), "node-a", REQUEST_TIME, received).unwrap();
    assert_eq!(ok.pods.len(), 3);
    // Beyond it: refused, naming the node, the count and how far ahead.
    let err = parse_checked(at(3_600_000).as_bytes(), "node-a", REQUEST_TIME, received).unwrap_err();
    assert_eq!(err.reason(), "future_timestamp");
    match &err {
        BodyError::Future { node, future } => {
            assert_eq!(node, "node-a");
            assert_eq!(future.samples, 7, "the node point and six containers");
            assert_eq!(future.ahead_ns, 3_600_000 * MS);
        }
        other => panic!("expected a future batch, got {other}"),
    }
    let text = err.to_string();
    assert!(text.contains("node-a") && text.contains("3600000 ms ahead"), "{text}");
    // One series ahead (the node's) is enough to refuse the batch.
    let mut body = FULL_PAYLOAD.replace(" 1735032840177", " 1735036440177");
    let received = 1_735_032_841_000 * MS;
    assert!(matches!(parse_checked(body.as_bytes(), "n", 0, received), Err(BodyError::Future { .. })));
    body = FULL_PAYLOAD.to_string();
    assert!(parse_checked(body.as_bytes(), "n", 0, received).is_ok());
    // A malformed body is still a malformed body.
    assert_eq!(parse_checked(b"x{", "n", 0, received).unwrap_err().reason(), "malformed");
}

#[tokio::test]
async fn large_bodies_are_parsed_off_the_runtime_and_future_samples_are_counted() {
    let metrics = SelfMetrics::new(15.0);
    let now_ms = now_nanos() / MS;
    let large = render(&synthetic(400, 2, now_ms, 3));
    assert!(large.len() > INLINE_PARSE_MAX_BYTES, "{} bytes", large.len());
    let small = render(&synthetic(3, 2, now_ms, 3));
    assert!(small.len() <= INLINE_PARSE_MAX_BYTES);
    for body in [&large, &small] {
        let batch = parse_scrape(body.clone().into(), "node-a", now_nanos(), &metrics).await.unwrap();
        assert_eq!(batch, parse(body.as_bytes(), "node-a", 0).unwrap());
    }
    let ahead = render(&synthetic(400, 2, now_ms + 3_600_000, 3));
    let err = parse_scrape(ahead.into(), "node-b", now_nanos(), &metrics).await.unwrap_err();
    assert_eq!(err.reason(), "future_timestamp");
    let text = metrics.encode();
    assert!(text.contains("ha_metrics_server_future_samples_total{node=\"node-b\"} 801"), "{text}");
    assert!(!text.contains("future_samples_total{node=\"node-a\"}"), "{text}");
}
