//! The parser's fast paths answer exactly what the slow ones would: the
//! word-at-a-time scans against byte loops (every byte value, every offset
//! into a word), the decimal fast path against `str::parse::<f64>` bit for
//! bit; and whole lines whose values or labels need the slow path (non-ASCII,
//! invalid UTF-8, escapes across word boundaries, `\r\n`, no final newline)
//! still parse or fail as before.

use super::{REQUEST_TIME, err, ok, pod};
use crate::scrape::parse::{ParseErrorKind, decimal, parse, scan};
use proptest::prelude::*;

fn find2_bytewise(line: &[u8], pos: usize, a: u8, b: u8) -> usize {
    let mut at = pos;
    while at < line.len() && line[at] != a && line[at] != b {
        at += 1;
    }
    at
}

fn continues_ident(b: u8, colon: bool) -> bool {
    b.is_ascii_alphanumeric() || b == b'_' || (colon && b == b':')
}

fn ident_end_bytewise(line: &[u8], pos: usize, colon: bool) -> usize {
    let mut at = pos;
    while at < line.len() && continues_ident(line[at], colon) {
        at += 1;
    }
    at
}

#[test]
fn scans_agree_with_byte_loops_for_every_byte_at_every_offset() {
    for b in 0..=255u8 {
        for len in 1..=20 {
            for at in 0..len {
                let mut line = vec![b'x'; len];
                line[at] = b;
                for pos in 0..=len + 1 {
                    for (x, y) in [(b' ', b'\t'), (b'"', b'\\')] {
                        assert_eq!(scan::find2(&line, pos, x, y), find2_bytewise(&line, pos, x, y), "{line:?} {pos}");
                    }
                    for colon in [false, true] {
                        let got = scan::ident_rest_end(&line, pos, colon, |c| continues_ident(c, colon));
                        assert_eq!(got, ident_end_bytewise(&line, pos, colon), "{line:?} {pos} {colon}");
                    }
                }
            }
        }
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 20_000, failure_persistence: None, ..ProptestConfig::default() })]

    #[test]
    fn scans_agree_with_byte_loops_on_random_lines(
        line in prop::collection::vec(
            prop_oneof![Just(b' '), Just(b'\t'), Just(b'"'), Just(b'\\'), Just(b':'), Just(b'_'), any::<u8>(), b'a'..=b'z'],
            0..40,
        ),
        pos in 0usize..42,
    ) {
        prop_assert_eq!(scan::find2(&line, pos, b' ', b'\t'), find2_bytewise(&line, pos, b' ', b'\t'));
        prop_assert_eq!(scan::find2(&line, pos, b'"', b'\\'), find2_bytewise(&line, pos, b'"', b'\\'));
        for colon in [false, true] {
            let got = scan::ident_rest_end(&line, pos, colon, |c| continues_ident(c, colon));
            prop_assert_eq!(got, ident_end_bytewise(&line, pos, colon));
        }
    }

    #[test]
    fn decimal_fast_path_gives_the_bits_str_parse_gives(
        text in prop_oneof![
            "[0-9]{1,20}(\\.[0-9]{0,20})?([eE][+-]?[0-9]{0,3})?",
            "[0-9]{0,3}\\.?[0-9]{0,3}[eE]?[+-]?[0-9]{0,2}",
            "[-+]?[0-9.eE+-]{0,12}",
        ],
    ) {
        if let Some(fast) = decimal::fast_f64(text.as_bytes()) {
            prop_assert_eq!(Some(fast.to_bits()), text.parse::<f64>().ok().map(f64::to_bits), "{}", text);
        }
    }

    #[test]
    fn decimal_fast_path_is_exact_at_the_edges_of_its_range(
        mantissa in prop_oneof![0u64..1000, (1u64 << 53) - 1000..=(1u64 << 53) + 10, any::<u64>()],
        point in 0usize..20,
        exponent in -40i32..40,
    ) {
        let digits = mantissa.to_string();
        let point = point.min(digits.len() - 1);
        let (int, frac) = digits.split_at(digits.len() - point);
        let mut text = if frac.is_empty() { int.to_string() } else { format!("{int}.{frac}") };
        if exponent != 0 {
            text += &format!("e{exponent:+03}");
        }
        if let Some(fast) = decimal::fast_f64(text.as_bytes()) {
            prop_assert_eq!(Some(fast.to_bits()), text.parse::<f64>().ok().map(f64::to_bits), "{}", text);
        }
    }
}

#[test]
fn decimal_fast_path_takes_what_kubelets_write_and_leaves_the_rest() {
    for text in ["52.817733", "1.8313216e+07", "1.7350301125e+09", "0", "4821.093112", "2.147262464e+09"] {
        assert_eq!(decimal::fast_f64(text.as_bytes()), text.parse().ok(), "{text}");
    }
    for text in ["", ".5", "2.", "+2", "-0", "1e5", "1e+", "1e+123", "NaN", "+Inf", "12345678901234567890", "1e-23"] {
        assert_eq!(decimal::fast_f64(text.as_bytes()), None, "{text}");
    }
}

#[test]
fn non_ascii_label_values_are_kept_and_invalid_utf8_is_refused_on_its_line() {
    let body = "container_cpu_usage_seconds_total{container=\"c\",namespace=\"nä\",pod=\"p€ü-0123456789\"} 1 1000\n\
        container_memory_working_set_bytes{container=\"c\",namespace=\"nä\",pod=\"p€ü-0123456789\"} 5 1000\n";
    assert!(pod(&ok(body), "nä", "p€ü-0123456789").is_some());
    for bad in [&b"\xff"[..], b"abcdefgh\xc3", b"\xe2\x82", b"0123456789abcdef\x80x"] {
        let mut body = b"# c\nother{x=\"ok\"} 1\nother{y=\"".to_vec();
        body.extend_from_slice(bad);
        body.extend_from_slice(b"\"} 1\n");
        let got = parse(&body, "node-a", REQUEST_TIME).map_err(|e| (e.line, e.cause));
        assert_eq!(got, Err((3, ParseErrorKind::LabelNotUtf8)), "{bad:?}");
    }
}

#[test]
fn escapes_at_every_offset_of_a_word_are_decoded() {
    for n in 0..17 {
        let pad = "x".repeat(n);
        let body = format!(
            "container_cpu_usage_seconds_total{{container=\"c\",namespace=\"{pad}\\\"q\\\\\",pod=\"{pad}\\n\"}} 1 1000\n\
             container_memory_working_set_bytes{{namespace=\"{pad}\\\"q\\\\\",container=\"c\",pod=\"{pad}\\n\"}} 5 1000"
        );
        assert!(pod(&ok(&body), &format!("{pad}\"q\\"), &format!("{pad}\n")).is_some(), "{n}");
        let cut = format!("a{{x=\"{pad}\\\"}} 1\n");
        assert_eq!(err(&cut).cause, ParseErrorKind::InvalidLabels("unterminated label value"), "{n}");
    }
}

#[test]
fn crlf_lines_and_a_missing_final_newline_parse_as_before() {
    let body = "node_cpu_usage_seconds_total 4821.093112 1735032840177\r\nnode_memory_working_set_bytes 2.147262464e+09\t1735032840177";
    let node = ok(body).node.expect("node point");
    assert_eq!((node.cpu_cumulative_ns, node.memory_bytes), (4_821_093_112_000, 2_147_262_464));
    assert_eq!(err("node_cpu_usage_seconds_total 1.5e+0x\r\n").cause, ParseErrorKind::InvalidValue("1.5e+0x".into()));
    assert_eq!(err("a_very_long_metric_name_of_many_words\u{e9} 1").cause, ParseErrorKind::InvalidName);
}
