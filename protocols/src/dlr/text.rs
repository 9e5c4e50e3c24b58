//! The text receipt (SMPP 3.4 Appendix B, "not part of the specification" yet universal):
//!
//! ```text
//! id:IIIIIIIIII sub:SSS dlvrd:DDD submit date:YYMMDDhhmm done date:YYMMDDhhmm stat:DDDDDDD err:E text:…
//! ```
//!
//! What the parser tolerates, because carriers send it:
//! - keys in any case, with `_`, `-` or a space inside (`Submit_date`, `done date`, `DoneDate`);
//! - fields in any order, missing fields (only `id` and `stat` are required), unknown fields
//!   (kept in [`Receipt::extra`]), a space after the colon (`err: 000`);
//! - dates with 10 or 12 digits (`YYMMDDhhmm[ss]`), or 14 (`YYYYMMDDhhmmss`); an invalid date
//!   is kept in `extra` under its key instead of failing the receipt;
//! - stat values in any case, abbreviated or full (see [`ReceiptState::parse_stat`]);
//! - `err` as 3 digits, any digits, `0x` hex, or letters (kept raw in [`ErrorCode::raw`]);
//! - `text:` running to the end of the body, whatever it contains (a trailing NUL is dropped).

use super::{id, DlrError, ErrorCode, Receipt, ReceiptDate, ReceiptState};

/// Every field the text form may carry, all optional; [`Fields::into_receipt`] checks the
/// required ones. Shared with the TLV merge in [`super::receipt_from_deliver`].
#[derive(Debug, Default)]
pub(crate) struct Fields {
    pub id: Option<String>,
    pub state: Option<ReceiptState>,
    pub unrecognized_stat: Option<String>,
    pub error_code: Option<ErrorCode>,
    pub submit_date: Option<ReceiptDate>,
    pub done_date: Option<ReceiptDate>,
    pub submitted: Option<u32>,
    pub delivered: Option<u32>,
    pub text: Option<Vec<u8>>,
    pub extra: Vec<(String, String)>,
}

impl Fields {
    /// The receipt, when `id` and `stat` are there.
    pub fn into_receipt(self) -> Result<Receipt, DlrError> {
        let message_id = self.id.ok_or(DlrError::MissingField("id"))?;
        let state = self.state.ok_or(DlrError::MissingField("stat"))?;
        Ok(Receipt {
            message_id,
            state,
            unrecognized_stat: self.unrecognized_stat,
            error_code: self.error_code,
            submit_date: self.submit_date,
            done_date: self.done_date,
            submitted: self.submitted,
            delivered: self.delivered,
            text: self.text,
            extra: self.extra,
        })
    }
}

/// Parses a text receipt (see the module doc for what is tolerated).
pub fn parse_text_receipt(input: &[u8]) -> Result<Receipt, DlrError> {
    if input.iter().all(|b| b.is_ascii_whitespace() || *b == 0) {
        return Err(DlrError::Empty);
    }
    parse_fields(input).into_receipt()
}

/// A byte cursor over the receipt.
struct Cursor<'a> {
    rest: &'a [u8],
}

impl<'a> Cursor<'a> {
    /// Skips whitespace and NULs (C-string terminators): both separate fields.
    fn skip_ws(&mut self) {
        while let [b, tail @ ..] = self.rest {
            if !b.is_ascii_whitespace() && *b != 0 {
                break;
            }
            self.rest = tail;
        }
    }

    /// Bytes up to (not including) the first whitespace, NUL or `stop`.
    fn take_until(&mut self, stop: u8) -> &'a [u8] {
        let end = self
            .rest
            .iter()
            .position(|&b| b.is_ascii_whitespace() || b == 0 || b == stop)
            .unwrap_or(self.rest.len());
        let (head, tail) = self.rest.split_at(end);
        self.rest = tail;
        head
    }

    /// Consumes `c` if it is next.
    fn eat(&mut self, c: u8) -> bool {
        match self.rest {
            [b, tail @ ..] if *b == c => {
                self.rest = tail;
                true
            }
            _ => false,
        }
    }

    /// The next word (up to whitespace or a NUL), without consuming it.
    fn peek_word(&self) -> &'a [u8] {
        let end = self
            .rest
            .iter()
            .position(|b| b.is_ascii_whitespace() || *b == 0)
            .unwrap_or(self.rest.len());
        self.rest.get(..end).unwrap_or_default()
    }
}

/// Lowercases a key and drops `_`, `-` and spaces into `buf`: `Submit_Date` → `submitdate`.
/// Keys longer than the buffer come back empty (no known key is that long).
fn normalize_key<'b>(raw: &[u8], buf: &'b mut [u8; 16]) -> &'b [u8] {
    let mut n = 0;
    for &b in raw
        .iter()
        .filter(|b| !matches!(b, b'_' | b'-' | b' ' | b'\t'))
    {
        match buf.get_mut(n) {
            Some(slot) => *slot = b.to_ascii_lowercase(),
            None => return &[],
        }
        n += 1;
    }
    buf.get(..n).unwrap_or_default()
}

fn lossy(b: &[u8]) -> String {
    String::from_utf8_lossy(b).into_owned()
}

fn number(b: &[u8]) -> Option<u32> {
    if b.is_empty() || !b.iter().all(u8::is_ascii_digit) {
        return None;
    }
    std::str::from_utf8(b).ok()?.parse().ok()
}

/// Reads every field it can; never fails.
pub(crate) fn parse_fields(input: &[u8]) -> Fields {
    let mut f = Fields::default();
    let mut cur = Cursor { rest: input };
    let mut buf = [0u8; 16];
    loop {
        cur.skip_ws();
        if cur.rest.is_empty() {
            break;
        }
        let key_start = cur.rest;
        let word = cur.take_until(b':');
        let key_raw: &[u8] = if cur.eat(b':') {
            word
        } else {
            // A bare word: the first half of `submit date:` / `done date:`, or noise.
            cur.skip_ws();
            let next = cur.peek_word();
            let joins = is_date_key_start(word)
                && next
                    .get(..5)
                    .is_some_and(|p| p.eq_ignore_ascii_case(b"date:"));
            if !joins {
                continue;
            }
            cur.rest = cur.rest.get(5..).unwrap_or_default();
            // From the start of `submit` to the end of `date`, as received.
            let len = key_start.len() - cur.rest.len() - 1;
            key_start.get(..len).unwrap_or_default()
        };
        let key = normalize_key(key_raw, &mut buf);
        if key == b"text" {
            let mut text = cur.rest;
            while let [head @ .., 0] = text {
                text = head;
            }
            f.text = Some(text.to_vec());
            break;
        }
        let mut value = cur.take_until(b'\0');
        if value.is_empty() {
            // `err: 000`: a space after the colon; take the next word unless it is a field.
            cur.skip_ws();
            let next = cur.peek_word();
            if !next.is_empty() && !next.contains(&b':') && !is_date_key_start(next) {
                value = cur.take_until(b'\0');
            }
        }
        // Skip stray NULs (C-string terminators inside the body).
        while cur.eat(0) {}
        match key {
            b"id" | b"msgid" | b"messageid" => {
                let v = id::trim(value);
                if f.id.is_none() && !v.is_empty() {
                    f.id = Some(lossy(v));
                }
            }
            b"sub" => f.submitted = number(value),
            b"dlvrd" | b"dlvd" => f.delivered = number(value),
            b"submitdate" | b"donedate" => match ReceiptDate::parse(value) {
                Some(d) if key == b"submitdate" => f.submit_date = Some(d),
                Some(d) => f.done_date = Some(d),
                None => f.extra.push((lossy(key_raw), lossy(value))),
            },
            b"stat" | b"status" | b"state" => {
                let state = ReceiptState::parse_stat(value);
                f.unrecognized_stat = (state == ReceiptState::Unrecognized).then(|| lossy(value));
                f.state = Some(state);
            }
            b"err" | b"error" | b"errorcode" => {
                f.error_code = Some(ErrorCode::from_text(&String::from_utf8_lossy(value)))
            }
            _ => f.extra.push((lossy(key_raw), lossy(value))),
        }
    }
    f
}

fn is_date_key_start(word: &[u8]) -> bool {
    word.eq_ignore_ascii_case(b"submit") || word.eq_ignore_ascii_case(b"done")
}

/// Writes a receipt in the text form, fields in the conventional order, absent ones left out;
/// `sub`/`dlvrd` as at least 3 digits. What [`parse_text_receipt`] reads back unchanged as long
/// as the id and extra values have no whitespace.
pub fn format_text_receipt(r: &Receipt) -> Vec<u8> {
    use std::io::Write;
    let mut out = Vec::with_capacity(160);
    // Writing to a Vec cannot fail.
    let _ = write!(out, "id:{}", r.message_id);
    if let Some(n) = r.submitted {
        let _ = write!(out, " sub:{n:03}");
    }
    if let Some(n) = r.delivered {
        let _ = write!(out, " dlvrd:{n:03}");
    }
    if let Some(d) = r.submit_date {
        let _ = write!(out, " submit date:{d}");
    }
    if let Some(d) = r.done_date {
        let _ = write!(out, " done date:{d}");
    }
    let stat = match (&r.unrecognized_stat, r.state) {
        (Some(raw), ReceiptState::Unrecognized) => raw.as_str(),
        (_, state) => state.stat(),
    };
    let _ = write!(out, " stat:{stat}");
    if let Some(e) = &r.error_code {
        let _ = write!(out, " err:{}", e.raw);
    }
    for (k, v) in &r.extra {
        let _ = write!(out, " {k}:{v}");
    }
    if let Some(t) = &r.text {
        out.extend_from_slice(b" text:");
        out.extend_from_slice(t);
    }
    out
}
