//! Numbers as Go's `strconv.FormatFloat(v, 'g', -1, 64)` writes them, which
//! is how the kubelet's Prometheus text writes every value. Pure formatting
//! into a caller's buffer; it knows nothing about metrics.

use std::fmt::Write as _;

/// A fixed-size buffer for one `{:e}` rendering, so formatting allocates nothing.
struct StackBuf {
    buf: [u8; 48],
    len: usize,
}

impl std::fmt::Write for StackBuf {
    fn write_str(&mut self, s: &str) -> std::fmt::Result {
        let end = self.len + s.len();
        let dst = self.buf.get_mut(self.len..end).ok_or(std::fmt::Error)?;
        dst.copy_from_slice(s.as_bytes());
        self.len = end;
        Ok(())
    }
}

/// Appends `v` as Go's `strconv.FormatFloat(v, 'g', -1, 64)` does: the
/// shortest digits that round-trip, in exponent form (`4.0628224e+07`, at
/// least two exponent digits) when the decimal exponent is below -4 or at
/// least 6 (Go's rule for shortest `%g`), plain decimals otherwise
/// (`357.35491`, `100000`, `0.0001`).
pub fn write_go_float(out: &mut String, v: f64) {
    if v.is_nan() {
        out.push_str("NaN");
        return;
    }
    if v.is_infinite() {
        out.push_str(if v > 0.0 { "+Inf" } else { "-Inf" });
        return;
    }
    if v == 0.0 {
        out.push_str(if v.is_sign_negative() { "-0" } else { "0" });
        return;
    }
    // Rust's `{:e}` gives the shortest round-trip digits, e.g. "-4.0628224e7".
    let mut sb = StackBuf { buf: [0; 48], len: 0 };
    if write!(sb, "{v:e}").is_err() {
        let _ = write!(out, "{v}");
        return;
    }
    let s = &sb.buf[..sb.len];
    let (negative, s) = match s.split_first() {
        Some((b'-', rest)) => (true, rest),
        _ => (false, s),
    };
    let e_at = s.iter().position(|&b| b == b'e').unwrap_or(s.len());
    let mut digits = [0u8; 24];
    let mut nd = 0;
    for &b in &s[..e_at] {
        if b.is_ascii_digit() && nd < digits.len() {
            digits[nd] = b;
            nd += 1;
        }
    }
    let exp: i32 =
        std::str::from_utf8(s.get(e_at + 1..).unwrap_or(b"0")).ok().and_then(|e| e.parse().ok()).unwrap_or(0);
    let digits = &digits[..nd];
    fn text(d: &[u8]) -> &str {
        std::str::from_utf8(d).unwrap_or("")
    }
    if negative {
        out.push('-');
    }
    if exp < -4 || exp >= 6 {
        out.push_str(text(&digits[..1]));
        if nd > 1 {
            out.push('.');
            out.push_str(text(&digits[1..]));
        }
        let _ = write!(out, "e{}{:02}", if exp < 0 { '-' } else { '+' }, exp.unsigned_abs());
    } else if exp >= 0 {
        let int_len = exp as usize + 1;
        if nd <= int_len {
            out.push_str(text(digits));
            for _ in nd..int_len {
                out.push('0');
            }
        } else {
            out.push_str(text(&digits[..int_len]));
            out.push('.');
            out.push_str(text(&digits[int_len..]));
        }
    } else {
        out.push_str("0.");
        for _ in 0..(-exp - 1) {
            out.push('0');
        }
        out.push_str(text(digits));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn go(v: f64) -> String {
        let mut s = String::new();
        write_go_float(&mut s, v);
        s
    }

    #[test]
    fn floats_match_go_format_float_g_shortest() {
        // Values seen in real kubelet output.
        assert_eq!(go(40_628_224.0), "4.0628224e+07");
        assert_eq!(go(357.35491), "357.35491");
        assert_eq!(go(1.7350300183020916e9), "1.7350300183020916e+09");
        assert_eq!(go(1.6243962483020916e9), "1.6243962483020916e+09");
        assert_eq!(go(1_616_273_408.0), "1.616273408e+09");
        assert_eq!(go(12_533_760.0), "1.253376e+07");
        assert_eq!(go(1.100665), "1.100665");
        assert_eq!(go(4.710169), "4.710169");
        // Go's shortest %g switches to exponent form at exponent 6 and below -4.
        assert_eq!(go(100_000.0), "100000");
        assert_eq!(go(999_999.0), "999999");
        assert_eq!(go(1_000_000.0), "1e+06");
        assert_eq!(go(123_456.7), "123456.7");
        assert_eq!(go(123_456.0), "123456");
        assert_eq!(go(1_234_567.0), "1.234567e+06");
        assert_eq!(go(0.0001), "0.0001");
        assert_eq!(go(0.00001), "1e-05");
        assert_eq!(go(0.00001234), "1.234e-05");
        assert_eq!(go(0.5), "0.5");
        assert_eq!(go(1.0), "1");
        assert_eq!(go(-2.5), "-2.5");
        assert_eq!(go(-2.5e-7), "-2.5e-07");
        assert_eq!(go(1e21), "1e+21");
        assert_eq!(go(1.5e300), "1.5e+300");
        assert_eq!(go(0.0), "0");
        assert_eq!(go(f64::INFINITY), "+Inf");
        assert_eq!(go(f64::NEG_INFINITY), "-Inf");
        assert_eq!(go(f64::NAN), "NaN");
    }

    #[test]
    fn go_floats_round_trip() {
        for v in [1.7350300183020916e9, 0.1 + 0.2, 123.456e-10, 9_007_199_254_740_993.0, 3.0e-5] {
            let s = go(v);
            assert_eq!(s.parse::<f64>().unwrap(), v, "{s}");
        }
    }
}
