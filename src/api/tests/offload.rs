//! Large answers are rendered on the blocking pool (issue 18, finding 5)
//! with exactly the bytes the inline path writes, in every answer form.

use http::HeaderMap;
use http_body_util::BodyExt;

use super::super::encode::Style;
use super::super::negotiate::{MetaVersion, Negotiated, Target};
use super::super::render::{INLINE_RENDER_MAX_ITEMS, Served, render, render_off_runtime};
use super::super::request::Req;
use super::super::types::Version;
use super::testkit::{NOW, pod_items as pods};

async fn bytes(resp: axum::response::Response) -> (u16, Vec<u8>) {
    let status = resp.status().as_u16();
    (status, resp.into_body().collect().await.expect("body").to_bytes().to_vec())
}

#[tokio::test]
async fn a_large_list_rendered_off_the_runtime_has_the_inline_bytes() {
    let req = || Req { headers: HeaderMap::new(), query: Some("includeObject=Object".into()) };
    for target in [Target::Object, Target::Table(MetaVersion::V1), Target::PartialObjectMetadataList(MetaVersion::V1)] {
        for n in [INLINE_RENDER_MAX_ITEMS, INLINE_RENDER_MAX_ITEMS + 1, 2_000] {
            for style in [Style::Compact, Style::Pretty] {
                let neg = Negotiated { target, style };
                let inline = bytes(render(&req(), Version::V1, neg, Served::Pods(pods(n)), NOW)).await;
                let off = bytes(render_off_runtime(req(), Version::V1, neg, Served::Pods(pods(n)), NOW).await).await;
                assert_eq!(inline.0, 200, "{target:?}");
                assert!(inline == off, "{target:?} with {n} items differs off the runtime");
            }
        }
    }
}
