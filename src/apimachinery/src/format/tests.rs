use super::*;
use proptest::prelude::*;

#[test]
fn cpu_quantities_match_go_decimal_si_canonical_form() {
    let cases: &[(u64, &str)] = &[
        (0, "0"),
        (1, "1n"),
        (123_456_789, "123456789n"),
        (31_557_470, "31557470n"),
        (5_000_000, "5m"),
        (1_500_000_000, "1500m"),
        (2_000_000_000, "2"),
        (1_234_000, "1234u"),
        (10_000_000, "10m"),
        (100_000_000, "100m"),
        (1_000_000_000_000, "1k"),
        (12_000_000_000_000, "12k"),
        (7_338_891, "7338891n"),
        (500_000_000, "500m"),
        (10, "10n"),
        (1_000, "1u"),
    ];
    for (n, want) in cases {
        assert_eq!(format_cpu(*n), *want, "nanocores {n}");
    }
}

#[test]
fn cpu_above_i64_max_loses_one_digit_like_metrics_server() {
    // uint64Quantity: NewScaledQuantity(v/10, -8).
    let v = u64::MAX; // 18446744073709551615
    assert_eq!(format_cpu(v), "18446744073709551610n");
    assert_eq!(format_cpu(i64::MAX as u64), "9223372036854775807n");
    assert_eq!(format_cpu(10_000_000_000_000_000_000), "10G");
}

#[test]
fn memory_quantities_match_go_binary_si_canonical_form() {
    let cases: &[(u64, &str)] = &[
        (0, "0"),
        (12_533_760, "12240Ki"),
        (1_048_576, "1Mi"),
        (2_147_483_648, "2Gi"),
        (1536, "1536"),
        (1000, "1k"),
        (1023, "1023"),
        (1024, "1Ki"),
        (500, "500"),
        (100, "100"),
        (2000, "2000"),
        (12_533_761, "12533761"),
        (4_730_880, "4620Ki"),
        (14_868_480, "14520Ki"),
        (1_024_000, "1000Ki"),
        (1 << 40, "1Ti"),
        (1 << 60, "1Ei"),
        (1_264_217_088, "1234587Ki"), // 1205 MiB-ish, as kubectl examples
    ];
    for (n, want) in cases {
        assert_eq!(format_memory(*n), *want, "bytes {n}");
    }
}

#[test]
fn quantity_sums_keep_the_format_of_their_terms() {
    let cpu = cpu_quantity(5_000_000).plus(cpu_quantity(5_000_000));
    assert_eq!(cpu.to_string(), "10m");
    let mem = Quantity { value: 0, scale: 0, format: QuantityFormat::DecimalSi }
        .plus(memory_quantity(5 << 20))
        .plus(memory_quantity(10 << 20));
    assert_eq!(mem.to_string(), "15Mi");
}

#[test]
fn parse_quantity_accepts_kubernetes_forms() {
    let nanos = |s: &str| parse_quantity(s).unwrap().scaled_to(-9).unwrap();
    assert_eq!(nanos("123456789n"), 123_456_789);
    assert_eq!(nanos("5m"), 5_000_000);
    assert_eq!(nanos("1.5"), 1_500_000_000);
    assert_eq!(nanos("2"), 2_000_000_000);
    assert_eq!(nanos("1234u"), 1_234_000);
    assert_eq!(nanos("1e3"), 1_000_000_000_000);
    let bytes = |s: &str| parse_quantity(s).unwrap().scaled_to(0).unwrap();
    assert_eq!(bytes("12240Ki"), 12_533_760);
    assert_eq!(bytes("1.5Gi"), 1_610_612_736);
    assert_eq!(bytes("1k"), 1000);
    assert_eq!(bytes("-1Ki"), -1024);
    for bad in ["", "abc", "1.2.3", "5x", "1e", "-", "1Kii"] {
        assert!(parse_quantity(bad).is_err(), "{bad:?} should not parse");
    }
}

#[test]
fn milli_value_rounds_up_like_kubectl() {
    assert_eq!(parse_quantity("123456789n").unwrap().milli_value(), 124);
    assert_eq!(parse_quantity("5m").unwrap().milli_value(), 5);
    assert_eq!(parse_quantity("2").unwrap().milli_value(), 2000);
    assert_eq!(parse_quantity("1Ki").unwrap().value_units(), 1024);
}

proptest! {
    #[test]
    fn cpu_strings_parse_back_to_the_same_nanocores(n in 0u64..=i64::MAX as u64) {
        let q = parse_quantity(&format_cpu(n)).unwrap();
        prop_assert_eq!(q.scaled_to(-9), Some(i128::from(n)));
    }

    #[test]
    fn memory_strings_parse_back_to_the_same_bytes(n in 0u64..=i64::MAX as u64) {
        let q = parse_quantity(&format_memory(n)).unwrap();
        prop_assert_eq!(q.scaled_to(0), Some(i128::from(n)));
    }

    #[test]
    fn canonical_cpu_has_no_removable_trailing_zeros(n in 1u64..=i64::MAX as u64) {
        let s = format_cpu(n);
        let digits: String = s.chars().take_while(|c| c.is_ascii_digit()).collect();
        // A mantissa ending in 000 could have used the next suffix up.
        prop_assert!(!digits.ends_with("000") || s.ends_with('E'), "{}", s);
    }
}

#[test]
fn times_are_rfc3339_utc_whole_seconds() {
    assert_eq!(format_time(0), "1970-01-01T00:00:00Z");
    assert_eq!(format_time(1_735_787_045_999_999_999), "2025-01-02T03:04:05Z");
    assert_eq!(format_time(1_639_763_881_000_000_000), "2021-12-17T17:58:01Z");
    assert_eq!(format_time(951_782_400_000_000_000), "2000-02-29T00:00:00Z");
    assert_eq!(format_time(4_102_444_799_000_000_000), "2099-12-31T23:59:59Z");
    assert_eq!(format_time(-1), "1969-12-31T23:59:59Z");
    assert_eq!(format_time(i64::MAX), "2262-04-11T23:47:16Z");
}

#[test]
fn civil_dates_agree_with_a_day_by_day_walk() {
    let mut date = (1970i64, 1u32, 1u32);
    let month_len = |y: i64, m: u32| match m {
        4 | 6 | 9 | 11 => 30,
        2 if (y % 4 == 0 && y % 100 != 0) || y % 400 == 0 => 29,
        2 => 28,
        _ => 31,
    };
    for day in 0..200_000i64 {
        assert_eq!(civil_from_days(day), date, "day {day}");
        date.2 += 1;
        if date.2 > month_len(date.0, date.1) {
            date.2 = 1;
            date.1 += 1;
            if date.1 > 12 {
                date.1 = 1;
                date.0 += 1;
            }
        }
    }
}

#[test]
fn durations_match_go_duration_string() {
    let cases: &[(i64, &str)] = &[
        (0, "0s"),
        (1, "1ns"),
        (999, "999ns"),
        (1_000, "1µs"),
        (1_500, "1.5µs"),
        (2_000, "2µs"),
        (500_000_000, "500ms"),
        (1_100_000, "1.1ms"),
        (15_012_000_000, "15.012s"),
        (10_062_000_000, "10.062s"),
        (30_000_000_000, "30s"),
        (60_000_000_000, "1m0s"),
        (90_500_000_000, "1m30.5s"),
        (60_500_000_000, "1m0.5s"),
        (3_600_000_000_000, "1h0m0s"),
        (3_661_000_000_001, "1h1m1.000000001s"),
        (-1_500_000_000, "-1.5s"),
        (i64::MAX, "2562047h47m16.854775807s"),
        (i64::MIN, "-2562047h47m16.854775808s"),
    ];
    for (ns, want) in cases {
        assert_eq!(format_duration(*ns), *want, "ns {ns}");
    }
}

#[test]
fn times_parse_back_to_what_was_formatted() {
    for secs in [0i64, 951_782_400, 1_709_251_199, 1_735_032_838, 4_102_444_800] {
        let ns = secs * 1_000_000_000;
        assert_eq!(parse_time(&format_time(ns)), Some(ns));
    }
    for bad in ["", "2024-02-29 23:59:59Z", "2024-13-01T00:00:00Z", "2024-02-29T23:59:59", "x024-02-29T23:59:59Z"] {
        assert_eq!(parse_time(bad), None, "{bad}");
    }
}

/// The `format!` forms the writers replaced, kept as the reference they must match.
fn reference_time(t: UnixNanos) -> String {
    let secs = t.div_euclid(1_000_000_000);
    let (y, m, d) = civil_from_days(secs.div_euclid(86_400));
    let sod = secs.rem_euclid(86_400);
    format!("{y:04}-{m:02}-{d:02}T{:02}:{:02}:{:02}Z", sod / 3600, (sod % 3600) / 60, sod % 60)
}

fn reference_duration(ns: i64) -> String {
    fn int_with_fraction(v: u64, prec: u32) -> String {
        let div = 10u64.pow(prec);
        let (int, frac) = (v / div, v % div);
        if frac == 0 {
            return int.to_string();
        }
        let digits = format!("{frac:0width$}", width = prec as usize);
        format!("{int}.{}", digits.trim_end_matches('0'))
    }
    let u = ns.unsigned_abs();
    if u == 0 {
        return "0s".to_string();
    }
    let sign = if ns < 0 { "-" } else { "" };
    if u < 1_000_000_000 {
        let (prec, unit) = match u {
            0..1_000 => (0, "ns"),
            1_000..1_000_000 => (3, "µs"),
            _ => (6, "ms"),
        };
        return format!("{sign}{}{unit}", int_with_fraction(u, prec));
    }
    let (secs, frac) = (u / 1_000_000_000, u % 1_000_000_000);
    let (h, m, s) = (secs / 3600, (secs / 60) % 60, secs % 60);
    let mut out = sign.to_string();
    if h > 0 {
        out.push_str(&format!("{h}h"));
    }
    if h > 0 || m > 0 {
        out.push_str(&format!("{m}m"));
    }
    out + &int_with_fraction(s * 1_000_000_000 + frac, 9) + "s"
}

#[test]
fn writers_match_their_references_at_the_edges() {
    for n in [0, 1, 9, 10, 999, 1_000, 1_024, 1_000_000, 1 << 20, i64::MAX as u64, i64::MAX as u64 + 1, u64::MAX] {
        assert_eq!(format_cpu(n), cpu_quantity(n).to_string(), "cpu {n}");
        assert_eq!(format_memory(n), memory_quantity(n).to_string(), "memory {n}");
    }
    for t in [0, -1, i64::MIN, i64::MAX, 1_735_032_838_999_999_999] {
        assert_eq!(format_time(t), reference_time(t), "time {t}");
    }
    for d in [0, 1, -1, 999, 1_000, 999_999_999, 1_000_000_000, 59_999_999_999, i64::MAX, i64::MIN] {
        assert_eq!(format_duration(d), reference_duration(d), "duration {d}");
    }
}

proptest! {
    #[test]
    fn cpu_writer_matches_the_canonical_quantity(n in any::<u64>()) {
        prop_assert_eq!(format_cpu(n), cpu_quantity(n).to_string());
    }

    #[test]
    fn memory_writer_matches_the_canonical_quantity(n in any::<u64>(), shift in 0u32..60) {
        // Multiples of powers of two reach every binary suffix.
        let n = n >> shift << shift;
        prop_assert_eq!(format_memory(n), memory_quantity(n).to_string());
    }

    #[test]
    fn time_writer_matches_the_format_it_replaced(t in any::<i64>()) {
        prop_assert_eq!(format_time(t), reference_time(t));
    }

    #[test]
    fn duration_writer_matches_the_format_it_replaced(d in any::<i64>(), scale in 0u32..19) {
        // Round values (whole units, few digits) as often as arbitrary ones.
        let d = d / 10i64.pow(scale) * 10i64.pow(scale);
        prop_assert_eq!(format_duration(d), reference_duration(d));
    }
}
