//! Value formats of the metrics API, byte-compatible with Go: `resource.Quantity`
//! canonical strings (CPU in DecimalSI from nanocores, memory in BinarySI from
//! bytes), `metav1.Time` (RFC 3339, UTC, whole seconds) and
//! `time.Duration.String()`. Pure functions only; no I/O, no clock.

/// Nanoseconds since the Unix epoch (kubelet samples carry milliseconds;
/// nanoseconds keep rates and windows exact).
pub type UnixNanos = i64;

/// How a quantity is printed, as Go's `resource.Format`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum QuantityFormat {
    /// Powers of ten: `n`, `u`, `m`, ``, `k`, `M`, `G`, ...
    DecimalSi,
    /// Powers of two: `Ki`, `Mi`, `Gi`, ... (falls back to decimal when inexact or < 1024).
    BinarySi,
}

/// An exact quantity `value × 10^scale`, as Go's `int64Amount` (wider, so sums
/// never overflow).
#[derive(Debug, Clone, Copy)]
pub struct Quantity {
    pub value: i128,
    pub scale: i32,
    pub format: QuantityFormat,
}

/// The quantity metrics-server builds for a CPU rate in nanocores
/// (`uint64Quantity(n, DecimalSI, -9)`): above `i64::MAX` one decimal digit is lost.
pub fn cpu_quantity(nanocores: u64) -> Quantity {
    uint64_quantity(nanocores, -9, QuantityFormat::DecimalSi)
}

/// The quantity metrics-server builds for memory in bytes (`uint64Quantity(b, BinarySI, 0)`).
pub fn memory_quantity(bytes: u64) -> Quantity {
    uint64_quantity(bytes, 0, QuantityFormat::BinarySi)
}

fn uint64_quantity(v: u64, scale: i32, format: QuantityFormat) -> Quantity {
    if v > i64::MAX as u64 {
        Quantity { value: i128::from(v / 10), scale: scale + 1, format }
    } else {
        Quantity { value: i128::from(v), scale, format }
    }
}

/// Canonical string of a CPU rate in nanocores: `123456789n`, `5m`, `1500m`, `2`, `0`.
pub fn format_cpu(nanocores: u64) -> String {
    written(|out| write_cpu(out, nanocores))
}

/// Canonical string of a memory size in bytes: `12240Ki`, `1Mi`, `1536`, `1k`.
pub fn format_memory(bytes: u64) -> String {
    written(|out| write_memory(out, bytes))
}

/// [`format_cpu`] appended to `out`. The API writes two quantities per
/// container of every answer, so this works in `u64` without allocating;
/// what it writes is [`Quantity`]'s canonical form (tested against it).
pub fn write_cpu(out: &mut Vec<u8>, nanocores: u64) {
    if nanocores > i64::MAX as u64 {
        out.extend_from_slice(cpu_quantity(nanocores).to_string().as_bytes());
        return;
    }
    write_decimal_si(out, nanocores, -9);
}

/// [`format_memory`] appended to `out` (see [`write_cpu`]).
pub fn write_memory(out: &mut Vec<u8>, bytes: u64) {
    if bytes > i64::MAX as u64 {
        out.extend_from_slice(memory_quantity(bytes).to_string().as_bytes());
        return;
    }
    // BinarySI falls back to decimal below 1024.
    if bytes < 1024 {
        write_decimal_si(out, bytes, 0);
        return;
    }
    let (mut m, mut i) = (bytes, 0);
    while i + 1 < BINARY_SUFFIXES.len() && m % 1024 == 0 {
        m /= 1024;
        i += 1;
    }
    write_u64(out, m);
    out.extend_from_slice(BINARY_SUFFIXES[i].as_bytes());
}

/// `v × 10^scale` in DecimalSI canonical form, `scale` a multiple of three.
fn write_decimal_si(out: &mut Vec<u8>, v: u64, scale: i32) {
    if v == 0 {
        out.push(b'0');
        return;
    }
    let (mut m, mut e) = (v, scale);
    while m % 10 == 0 {
        m /= 10;
        e += 1;
    }
    // Gives back at most the zeros just taken off: no overflow.
    while e.rem_euclid(3) != 0 {
        m *= 10;
        e -= 1;
    }
    write_u64(out, m);
    match DECIMAL_SUFFIXES.iter().find(|(x, _)| *x == e) {
        Some((_, s)) => out.extend_from_slice(s.as_bytes()),
        None => out.extend_from_slice(format!("e{e}").as_bytes()),
    }
}

/// Decimal digits of `v`.
pub fn write_u64(out: &mut Vec<u8>, mut v: u64) {
    let mut buf = [0u8; 20];
    let mut i = buf.len();
    loop {
        i -= 1;
        buf[i] = b'0' + (v % 10) as u8;
        v /= 10;
        if v == 0 {
            break;
        }
    }
    out.extend_from_slice(&buf[i..]);
}

/// `width` decimal digits of `v`, zero-padded on the left (`v < 10^width`).
fn write_padded(out: &mut Vec<u8>, mut v: u64, width: usize) {
    let mut buf = [b'0'; 20];
    for i in (20 - width..20).rev() {
        buf[i] = b'0' + (v % 10) as u8;
        v /= 10;
    }
    out.extend_from_slice(&buf[20 - width..]);
}

/// What a writer appends, as a string (the writers write UTF-8).
fn written(write: impl FnOnce(&mut Vec<u8>)) -> String {
    let mut out = Vec::with_capacity(24);
    write(&mut out);
    String::from_utf8(out).unwrap_or_default()
}

const DECIMAL_SUFFIXES: [(i32, &str); 10] =
    [(-9, "n"), (-6, "u"), (-3, "m"), (0, ""), (3, "k"), (6, "M"), (9, "G"), (12, "T"), (15, "P"), (18, "E")];
const BINARY_SUFFIXES: [&str; 7] = ["", "Ki", "Mi", "Gi", "Ti", "Pi", "Ei"];

impl Quantity {
    /// Exact sum (Go `Quantity.Add`): the format of `self` wins unless `self` is zero.
    pub fn plus(self, other: Quantity) -> Quantity {
        let format = if self.value == 0 { other.format } else { self.format };
        let scale = self.scale.min(other.scale);
        let a = self.value.saturating_mul(pow10(self.scale - scale));
        let b = other.value.saturating_mul(pow10(other.scale - scale));
        Quantity { value: a.saturating_add(b), scale, format }
    }

    /// The value in units of `10^scale`, if exact (e.g. `scale = -9` gives nano units).
    pub fn scaled_to(&self, scale: i32) -> Option<i128> {
        if self.scale >= scale {
            self.value.checked_mul(checked_pow10(self.scale - scale)?)
        } else {
            let d = checked_pow10(scale - self.scale)?;
            (self.value % d == 0).then(|| self.value / d)
        }
    }

    /// Go `MilliValue()`: thousandths, rounded up (what kubectl prints for CPU).
    pub fn milli_value(&self) -> i128 {
        if self.scale >= -3 {
            self.value.saturating_mul(pow10(self.scale + 3))
        } else {
            let d = pow10(-3 - self.scale);
            let q = self.value.div_euclid(d);
            if self.value.rem_euclid(d) == 0 { q } else { q + 1 }
        }
    }

    /// Go `Value()`: units, rounded up.
    pub fn value_units(&self) -> i128 {
        if self.scale >= 0 {
            self.value.saturating_mul(pow10(self.scale))
        } else {
            let d = pow10(-self.scale);
            let q = self.value.div_euclid(d);
            if self.value.rem_euclid(d) == 0 { q } else { q + 1 }
        }
    }

    /// Go `Quantity.CanonicalizeBytes`: mantissa and suffix.
    fn canonical(&self) -> (i128, String) {
        if self.value == 0 {
            return (0, String::new());
        }
        // BinarySI falls back to decimal below 1024 and when not a whole number.
        let units = self.scaled_to(0);
        let format = match (self.format, units) {
            (QuantityFormat::BinarySi, Some(v)) if v <= -1024 || v >= 1024 => QuantityFormat::BinarySi,
            _ => QuantityFormat::DecimalSi,
        };
        match format {
            QuantityFormat::DecimalSi => {
                let (mut m, mut e) = (self.value, self.scale);
                while m % 10 == 0 {
                    m /= 10;
                    e += 1;
                }
                while e.rem_euclid(3) != 0 {
                    m = m.saturating_mul(10);
                    e -= 1;
                }
                match DECIMAL_SUFFIXES.iter().find(|(x, _)| *x == e) {
                    Some((_, s)) => (m, (*s).to_string()),
                    None => (m, format!("e{e}")),
                }
            }
            QuantityFormat::BinarySi => {
                let mut m = units.unwrap_or(self.value);
                let mut i = 0;
                while i + 1 < BINARY_SUFFIXES.len() && m % 1024 == 0 {
                    m /= 1024;
                    i += 1;
                }
                (m, BINARY_SUFFIXES[i].to_string())
            }
        }
    }
}

impl std::fmt::Display for Quantity {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let (m, suffix) = self.canonical();
        write!(f, "{m}{suffix}")
    }
}

fn checked_pow10(e: i32) -> Option<i128> {
    10i128.checked_pow(u32::try_from(e).ok()?)
}

fn pow10(e: i32) -> i128 {
    checked_pow10(e).unwrap_or(i128::MAX)
}

/// Why a quantity string could not be parsed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("quantity {input:?} is not valid: {reason}")]
pub struct QuantityError {
    pub input: String,
    pub reason: &'static str,
}

/// Parses a Kubernetes quantity string (`123n`, `1.5Gi`, `2e3`, `-1m`).
pub fn parse_quantity(s: &str) -> Result<Quantity, QuantityError> {
    let err = |reason| QuantityError { input: s.to_string(), reason };
    let (negative, rest) = match s.as_bytes().first() {
        Some(b'-') => (true, &s[1..]),
        Some(b'+') => (false, &s[1..]),
        Some(_) => (false, s),
        None => return Err(err("empty")),
    };
    let num_end = rest.find(|c: char| !(c.is_ascii_digit() || c == '.')).unwrap_or(rest.len());
    let (number, suffix) = rest.split_at(num_end);
    let (int_part, frac_part) = number.split_once('.').unwrap_or((number, ""));
    if int_part.is_empty() && frac_part.is_empty() {
        return Err(err("no digits"));
    }
    if frac_part.contains('.') {
        return Err(err("more than one decimal point"));
    }
    let digits = format!("{int_part}{frac_part}");
    let mut value: i128 = 0;
    for d in digits.bytes() {
        value = value
            .checked_mul(10)
            .and_then(|v| v.checked_add(i128::from(d - b'0')))
            .ok_or_else(|| err("too many digits"))?;
    }
    let mut scale = -i32::try_from(frac_part.len()).map_err(|_| err("too many digits"))?;
    let binary = BINARY_SUFFIXES.iter().position(|b| !b.is_empty() && *b == suffix);
    if let Some(i) = binary {
        let factor = 1024i128.checked_pow(i as u32).ok_or_else(|| err("out of range"))?;
        value = value.checked_mul(factor).ok_or_else(|| err("out of range"))?;
        // A binary value with a fraction is exact in decimal only if it divides out.
    } else if let Some((e, _)) = DECIMAL_SUFFIXES.iter().find(|(_, x)| *x == suffix) {
        scale += e;
    } else if let Some(exp) = suffix.strip_prefix(['e', 'E']) {
        let e: i32 = exp.parse().map_err(|_| err("bad exponent"))?;
        scale = scale.checked_add(e).ok_or_else(|| err("bad exponent"))?;
    } else {
        return Err(err("unknown suffix"));
    }
    if negative {
        value = -value;
    }
    let format = if binary.is_some() { QuantityFormat::BinarySi } else { QuantityFormat::DecimalSi };
    Ok(Quantity { value, scale, format })
}

/// `metav1.Time` JSON text: RFC 3339 in UTC with whole seconds (truncated, as Go does).
pub fn format_time(t: UnixNanos) -> String {
    written(|out| write_time(out, t))
}

/// [`format_time`] appended to `out`.
pub fn write_time(out: &mut Vec<u8>, t: UnixNanos) {
    let secs = t.div_euclid(1_000_000_000);
    let days = secs.div_euclid(86_400);
    let sod = secs.rem_euclid(86_400) as u64;
    let (y, m, d) = civil_from_days(days);
    match u64::try_from(y) {
        Ok(y) if y <= 9999 => write_padded(out, y, 4),
        _ => out.extend_from_slice(format!("{y:04}").as_bytes()),
    }
    out.push(b'-');
    write_padded(out, u64::from(m), 2);
    out.push(b'-');
    write_padded(out, u64::from(d), 2);
    out.push(b'T');
    write_padded(out, sod / 3600, 2);
    out.push(b':');
    write_padded(out, (sod % 3600) / 60, 2);
    out.push(b':');
    write_padded(out, sod % 60, 2);
    out.push(b'Z');
}

/// Parses what [`format_time`] writes (RFC 3339, UTC, whole seconds, `Z`)
/// back into nanoseconds since the Unix epoch.
pub fn parse_time(s: &str) -> Option<UnixNanos> {
    let b = s.as_bytes();
    if b.len() != 20 || b[4] != b'-' || b[7] != b'-' || b[10] != b'T' || b[13] != b':' || b[16] != b':' || b[19] != b'Z'
    {
        return None;
    }
    let num = |r: std::ops::Range<usize>| s.get(r)?.parse::<i64>().ok();
    let (y, m, d) = (num(0..4)?, num(5..7)?, num(8..10)?);
    let (hh, mm, ss) = (num(11..13)?, num(14..16)?, num(17..19)?);
    if !(1..=12).contains(&m) || !(1..=31).contains(&d) || hh > 23 || mm > 59 || ss > 60 {
        return None;
    }
    // Days from civil: the inverse of `civil_from_days`.
    let y = if m <= 2 { y - 1 } else { y };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let mp = if m > 2 { m - 3 } else { m + 9 };
    let doy = (153 * mp + 2) / 5 + d - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    let days = era * 146_097 + doe - 719_468;
    Some((days * 86_400 + hh * 3_600 + mm * 60 + ss) * 1_000_000_000)
}

/// Year, month, day of the proleptic Gregorian calendar for days since 1970-01-01.
fn civil_from_days(z: i64) -> (i64, u32, u32) {
    let z = z + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097); // [0, 146096]
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365; // [0, 399]
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100); // [0, 365]
    let mp = (5 * doy + 2) / 153; // [0, 11], March-based
    let d = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let m = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    let y = yoe + era * 400 + i64::from(m <= 2);
    (y, m, d)
}

/// Go `time.Duration.String()` of a duration in nanoseconds:
/// `0s`, `1µs`, `500ms`, `15.012s`, `1m0s`, `1h0m0s`.
pub fn format_duration(ns: i64) -> String {
    written(|out| write_duration(out, ns))
}

/// [`format_duration`] appended to `out`.
pub fn write_duration(out: &mut Vec<u8>, ns: i64) {
    let u = ns.unsigned_abs();
    if u == 0 {
        out.extend_from_slice(b"0s");
        return;
    }
    if ns < 0 {
        out.push(b'-');
    }
    if u < 1_000_000_000 {
        let (prec, unit) = match u {
            0..1_000 => (0, "ns"),
            1_000..1_000_000 => (3, "µs"),
            _ => (6, "ms"),
        };
        write_int_with_fraction(out, u, prec);
        out.extend_from_slice(unit.as_bytes());
    } else {
        let secs = u / 1_000_000_000;
        let frac = u % 1_000_000_000;
        let (h, m, s) = (secs / 3600, (secs / 60) % 60, secs % 60);
        if h > 0 {
            write_u64(out, h);
            out.push(b'h');
        }
        if h > 0 || m > 0 {
            write_u64(out, m);
            out.push(b'm');
        }
        write_int_with_fraction(out, s * 1_000_000_000 + frac, 9);
        out.push(b's');
    }
}

/// `v / 10^prec` with the fraction printed without trailing zeros.
fn write_int_with_fraction(out: &mut Vec<u8>, v: u64, prec: u32) {
    let div = 10u64.pow(prec);
    let (int, mut frac) = (v / div, v % div);
    write_u64(out, int);
    if frac == 0 {
        return;
    }
    let mut width = prec as usize;
    while frac % 10 == 0 {
        frac /= 10;
        width -= 1;
    }
    out.push(b'.');
    write_padded(out, frac, width);
}

#[cfg(test)]
mod tests;
