//! Word-at-a-time searches inside one line: eight bytes a step (SWAR on a
//! `u64`), the last few bytes one at a time. Each function answers exactly
//! what the byte loop it replaces would (the tests compare them on every
//! byte value); none of them allocates or fails.

const ONES: u64 = 0x0101_0101_0101_0101;
const LOW7: u64 = 0x7F7F_7F7F_7F7F_7F7F;
const HIGH: u64 = 0x8080_8080_8080_8080;

/// `b` in every byte.
const fn splat(b: u8) -> u64 {
    ONES * b as u64
}

/// The high bit of every byte of `x` that is zero, and no other bit. Exact:
/// `(x & 0x7f) + 0x7f` never carries into the next byte.
fn zero_bytes(x: u64) -> u64 {
    !(((x & LOW7) + LOW7) | x | LOW7)
}

/// The high bit of the first zero byte of `x` (lowest first), possibly with
/// some bits above it (a borrow can mark a byte after a zero one); 0 when no
/// byte is zero. Cheaper than [`zero_bytes`] where only the first one counts.
fn first_zero_byte(x: u64) -> u64 {
    x.wrapping_sub(ONES) & !x & HIGH
}

/// The eight bytes of `line` from `at`, first byte lowest, if there are eight.
fn word(line: &[u8], at: usize) -> Option<u64> {
    line.get(at..).and_then(<[u8]>::first_chunk::<8>).map(|w| u64::from_le_bytes(*w))
}

/// The position of the first byte marked in `marks` (a high bit per byte).
fn first(at: usize, marks: u64) -> usize {
    at + (marks.trailing_zeros() / 8) as usize
}

/// The position of the first `a` or `b` at or after `pos`, or `line.len()`
/// (`pos` itself when it is past the end).
pub(super) fn find2(line: &[u8], pos: usize, a: u8, b: u8) -> usize {
    let mut at = pos;
    while let Some(w) = word(line, at) {
        let marks = first_zero_byte(w ^ splat(a)) | first_zero_byte(w ^ splat(b));
        if marks != 0 {
            return first(at, marks);
        }
        at += 8;
    }
    while at < line.len() && line[at] != a && line[at] != b {
        at += 1;
    }
    at
}

/// The high bit of every byte of `w` that may continue an identifier:
/// `[a-zA-Z0-9_]`, and `:` when `colon`. Each range test adds to the low
/// seven bits, which cannot carry; bytes ≥ 0x80 are never marked.
fn ident_bytes(w: u64, colon: bool) -> u64 {
    let ascii = !w & HIGH;
    let low = w & LOW7;
    // `| 0x20` folds upper case onto lower case and nothing else onto a–z.
    let folded = (w | splat(0x20)) & LOW7;
    let letter = (folded + splat(0x80 - b'a')) & !(folded + splat(0x7F - b'z'));
    let digit = (low + splat(0x80 - b'0')) & !(low + splat(0x7F - b'9'));
    let mut marks = letter | digit | zero_bytes(w ^ splat(b'_'));
    if colon {
        marks |= zero_bytes(w ^ splat(b':'));
    }
    marks & ascii
}

/// The position of the first byte at or after `pos` that may not continue an
/// identifier (see [`ident_bytes`]), or `line.len()`; `continues` is the same
/// test a byte at a time, for the tail.
pub(super) fn ident_rest_end(line: &[u8], pos: usize, colon: bool, continues: impl Fn(u8) -> bool) -> usize {
    let mut at = pos;
    while let Some(w) = word(line, at) {
        let marks = !ident_bytes(w, colon) & HIGH;
        if marks != 0 {
            return first(at, marks);
        }
        at += 8;
    }
    while at < line.len() && continues(line[at]) {
        at += 1;
    }
    at
}
