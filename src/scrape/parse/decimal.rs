//! The exact fast path for the values kubelets write (`52.817733`,
//! `1.8313216e+07`): plain decimals whose digits fit in 53 bits and whose
//! power of ten is exact in an `f64`. One multiplication or division then
//! rounds once, so the result is the correctly rounded value, the same bits
//! `str::parse::<f64>` gives (Clinger's fast path). Anything else (signs,
//! `Inf`, `NaN`, long mantissas, large exponents, odd spellings) is left to
//! `str::parse`, which also decides what is invalid.

/// 10^0 ..= 10^22, all exact in an `f64`.
const POW10: [f64; 23] = [
    1e0, 1e1, 1e2, 1e3, 1e4, 1e5, 1e6, 1e7, 1e8, 1e9, 1e10, 1e11, 1e12, 1e13, 1e14, 1e15, 1e16, 1e17, 1e18, 1e19, 1e20,
    1e21, 1e22,
];

/// Most digits read into the mantissa: 10^19 - 1 fits in a `u64`.
const MAX_DIGITS: usize = 19;

/// The value of `token` when it is `digits[.digits][(e|E)(+|-)d[d]]` with
/// the digits' integer at most 2^53 and the resulting power of ten within
/// ±22; `None` for anything else, valid or not.
pub(super) fn fast_f64(token: &[u8]) -> Option<f64> {
    let mut mantissa = 0u64;
    let int = digits(token, &mut mantissa);
    let mut rest = &token[int..];
    let mut fraction = 0;
    if let [b'.', after @ ..] = rest {
        fraction = digits(after, &mut mantissa);
        if fraction == 0 {
            return None;
        }
        rest = &after[fraction..];
    }
    let written = match rest {
        [] => 0,
        [b'e' | b'E', sign @ (b'+' | b'-'), exponent @ ..] => {
            // One or two digits are all a kubelet writes and more than an exact power needs.
            let magnitude = match exponent {
                [a, b] if a.is_ascii_digit() && b.is_ascii_digit() => i32::from(a - b'0') * 10 + i32::from(b - b'0'),
                [a] if a.is_ascii_digit() => i32::from(a - b'0'),
                _ => return None,
            };
            if *sign == b'-' { -magnitude } else { magnitude }
        }
        _ => return None,
    };
    // Past 19 digits the mantissa has wrapped: not ours.
    if int == 0 || int + fraction > MAX_DIGITS || mantissa > 1 << 53 {
        return None;
    }
    let m = mantissa as f64;
    match written - fraction as i32 {
        e @ 0..=22 => Some(m * POW10[e as usize]),
        e @ -22..=-1 => Some(m / POW10[(-e) as usize]),
        _ => None,
    }
}

/// Reads the leading ASCII digits of `bytes` into `mantissa` (wrapping past
/// 19 digits in all); returns how many there were.
fn digits(bytes: &[u8], mantissa: &mut u64) -> usize {
    let mut n = 0;
    while let Some(d) = bytes.get(n).map(|b| b.wrapping_sub(b'0')).filter(|&d| d <= 9) {
        *mantissa = mantissa.wrapping_mul(10).wrapping_add(u64::from(d));
        n += 1;
    }
    n
}
