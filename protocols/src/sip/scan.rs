//! Byte-level helpers shared by the SIP parsers: trimming, tokens, top-level splitting.
//!
//! Nothing here indexes out of bounds: every access goes through `get` or iterators.

use bytes::Bytes;

/// SP or HTAB.
pub(crate) fn is_ws(b: u8) -> bool {
    b == b' ' || b == b'\t'
}

/// RFC 3261 `token` characters.
pub(crate) fn is_token(b: u8) -> bool {
    matches!(
        b,
        b'a'..=b'z'
            | b'A'..=b'Z'
            | b'0'..=b'9'
            | b'-'
            | b'.'
            | b'!'
            | b'%'
            | b'*'
            | b'_'
            | b'+'
            | b'`'
            | b'\''
            | b'~'
    )
}

/// True if `s` is a non-empty token.
pub(crate) fn is_token_str(s: &[u8]) -> bool {
    !s.is_empty() && s.iter().all(|&b| is_token(b))
}

/// `s` without leading and trailing whitespace (SP, HTAB, CR, LF).
pub(crate) fn trim(s: &[u8]) -> &[u8] {
    let start = s
        .iter()
        .position(|&b| !b.is_ascii_whitespace())
        .unwrap_or(s.len());
    let end = s
        .iter()
        .rposition(|&b| !b.is_ascii_whitespace())
        .map_or(start, |p| p + 1);
    s.get(start..end).unwrap_or(&[])
}

/// The zero-copy sub-slice of `whole` that `part` (a sub-slice of it) designates.
///
/// Falls back to a copy if `part` is not inside `whole` (it always is in this crate).
pub(crate) fn sub(whole: &Bytes, part: &[u8]) -> Bytes {
    if part.is_empty() {
        return Bytes::new();
    }
    let base = whole.as_ptr() as usize;
    let p = part.as_ptr() as usize;
    if p >= base && p + part.len() <= base + whole.len() {
        whole.slice(p - base..p - base + part.len())
    } else {
        Bytes::copy_from_slice(part)
    }
}

/// Zero-copy trimmed sub-slice.
pub(crate) fn sub_trim(whole: &Bytes, part: &[u8]) -> Bytes {
    sub(whole, trim(part))
}

/// The first position of `sep` outside double quotes (with `\` escapes) and outside `<…>`.
pub(crate) fn first_top_level(s: &[u8], sep: u8) -> Option<usize> {
    memchr::memchr(sep, s)?;
    let mut found = None;
    top_level_scan(s, sep, |i| {
        found = Some(i);
        false
    });
    found
}

/// Calls `f` with each position of `sep` outside double quotes (with `\` escapes) and outside
/// `<…>` (where a header value list may be split) until it returns false.
fn top_level_scan(s: &[u8], sep: u8, mut f: impl FnMut(usize) -> bool) {
    let mut in_quote = false;
    let mut escaped = false;
    let mut in_angle = false;
    for (i, &b) in s.iter().enumerate() {
        if in_quote {
            if escaped {
                escaped = false;
            } else if b == b'\\' {
                escaped = true;
            } else if b == b'"' {
                in_quote = false;
            }
            continue;
        }
        if b == sep && !in_angle {
            if !f(i) {
                return;
            }
            continue;
        }
        match b {
            b'"' => in_quote = true,
            b'<' => in_angle = true,
            b'>' => in_angle = false,
            _ => {}
        }
    }
}

/// Splits `s` at top-level `sep` bytes (see [`top_level_scan`]); pieces are not trimmed.
pub(crate) fn split_top_level(s: &[u8], sep: u8) -> Vec<&[u8]> {
    let mut out = Vec::new();
    for_each_top_level(s, sep, |piece| out.push(piece));
    out
}

/// Calls `f` with each piece of `s` split at top-level `sep` bytes, as [`split_top_level`]
/// returns them, without collecting them.
pub(crate) fn for_each_top_level<'a>(s: &'a [u8], sep: u8, mut f: impl FnMut(&'a [u8])) {
    if memchr::memchr(sep, s).is_none() {
        f(s);
        return;
    }
    let mut start = 0;
    top_level_scan(s, sep, |p| {
        f(s.get(start..p).unwrap_or(&[]));
        start = p + 1;
        true
    });
    f(s.get(start..).unwrap_or(&[]));
}

/// Parses an unsigned decimal (digits only, no sign, no spaces) that fits `u64`.
pub(crate) fn parse_u64(s: &[u8]) -> Option<u64> {
    if s.is_empty() || s.len() > 19 {
        return None;
    }
    let mut v: u64 = 0;
    for &b in s {
        if !b.is_ascii_digit() {
            return None;
        }
        v = v * 10 + u64::from(b - b'0');
    }
    Some(v)
}

/// Removes surrounding double quotes and `\` escapes, if `s` is a quoted string.
pub(crate) fn unquote(s: &[u8]) -> Vec<u8> {
    let inner = match (s.first(), s.last()) {
        (Some(b'"'), Some(b'"')) if s.len() >= 2 => s.get(1..s.len() - 1).unwrap_or(&[]),
        _ => return s.to_vec(),
    };
    let mut out = Vec::with_capacity(inner.len());
    let mut escaped = false;
    for &b in inner {
        if escaped {
            out.push(b);
            escaped = false;
        } else if b == b'\\' {
            escaped = true;
        } else {
            out.push(b);
        }
    }
    out
}
