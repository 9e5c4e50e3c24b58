//! Rate-deck CSV framing: the `csv` crate, plus the line number of every record and a strict
//! check of its quoting.
//!
//! `csv` reads RFC 4180 (quoted fields with `""` escapes and embedded commas or newlines,
//! `\n`, `\r\n` and lone `\r` line ends (old Mac spreadsheets write the last), a UTF-8 BOM); blank lines and `#` comment lines are skipped, and
//! field values are trimmed. Each record keeps the line it starts on
//! ([`csv::Position::line`]) for `file:line` errors.
//!
//! `csv` is lenient about malformed quoting (a stray `"` is kept as text, an unterminated
//! quote runs to the end of the file). A rate deck with broken quoting is a broken export, so
//! each record's raw text is checked and the first problem is reported with its line instead
//! of letting a mangled row through.

/// One record: its fields and the 1-based line it starts on.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Record {
    /// 1-based line number of the record's first character.
    pub line: u32,
    /// Field values, unquoted, surrounding whitespace trimmed.
    pub fields: Vec<String>,
}

/// A CSV syntax error at a line.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct SyntaxError {
    /// 1-based line where the problem was noticed.
    pub line: u32,
    /// What is wrong.
    pub reason: &'static str,
}

/// Splits `text` into records. Stops at the first syntax error (the rest of the file cannot be
/// framed reliably after a quoting error), returning the records before it.
pub(crate) fn records(text: &str) -> (Vec<Record>, Option<SyntaxError>) {
    let mut reader = csv::ReaderBuilder::new()
        .has_headers(false)
        .flexible(true)
        .comment(Some(b'#'))
        .trim(csv::Trim::All)
        .from_reader(text.as_bytes());
    let mut out = Vec::new();
    let mut record = csv::StringRecord::new();
    let mut lines = Lines::new(text.as_bytes());
    loop {
        let start = reader.position().clone();
        match reader.read_record(&mut record) {
            Ok(false) => return (out, None),
            Ok(true) => {}
            Err(e) => {
                // Input is a `&str`, so `csv` cannot hit I/O or UTF-8 errors; report whatever
                // it says at the line it says.
                let byte = e.position().map_or(start.byte(), csv::Position::byte);
                let line = lines.line_at(usize::try_from(byte).unwrap_or(usize::MAX));
                return (out, Some(syntax(line, "unreadable record")));
            }
        }
        // `csv` positions a record where the previous one ended, before the blank and comment
        // lines it skipped; step over those to the record's first line.
        let from = record.position().unwrap_or(&start);
        let begin = skip_to_record(text.as_bytes(), from.byte());
        let line = u32::try_from(lines.line_at(begin)).unwrap_or(u32::MAX);
        let raw = usize::try_from(reader.position().byte())
            .ok()
            .and_then(|end| text.as_bytes().get(begin..end))
            .unwrap_or(&[]);
        if let Err(e) = check_quoting(raw, line) {
            return (out, Some(e));
        }
        out.push(Record {
            line,
            fields: record.iter().map(str::to_owned).collect(),
        });
    }
}

/// True when `text[at]` ends a line: `\n`, or a `\r` not followed by `\n` (the `\r` of a
/// `\r\n` belongs to the `\n` that follows it).
fn ends_line(text: &[u8], at: usize) -> bool {
    match text.get(at) {
        Some(b'\n') => true,
        Some(b'\r') => text.get(at + 1) != Some(&b'\n'),
        _ => false,
    }
}

/// Line numbers of byte offsets, counted as `csv` splits records (see [`ends_line`]); offsets
/// are asked for in increasing order, so the count resumes where it stopped.
struct Lines<'a> {
    text: &'a [u8],
    at: usize,
    line: u64,
}

impl<'a> Lines<'a> {
    fn new(text: &'a [u8]) -> Self {
        Lines {
            text,
            at: 0,
            line: 1,
        }
    }

    /// The 1-based line of the byte at `offset`.
    fn line_at(&mut self, offset: usize) -> u64 {
        let offset = offset.min(self.text.len());
        if offset < self.at {
            self.at = 0;
            self.line = 1;
        }
        while self.at < offset {
            if ends_line(self.text, self.at) {
                self.line += 1;
            }
            self.at += 1;
        }
        self.line
    }
}

/// From `byte`, skips line ends and `#` comment lines: the byte offset of the next record's
/// first character.
fn skip_to_record(text: &[u8], byte: u64) -> usize {
    let mut at = usize::try_from(byte).unwrap_or(usize::MAX);
    loop {
        match text.get(at) {
            Some(b'\n' | b'\r') => {}
            // `csv` ends a comment at `\n` only, even in a file whose lines end in `\r`.
            Some(b'#') => {
                while text.get(at).is_some_and(|&b| b != b'\n') {
                    at += 1;
                }
            }
            _ => return at,
        }
        at += 1;
    }
}

fn syntax(line: u64, reason: &'static str) -> SyntaxError {
    SyntaxError {
        line: u32::try_from(line).unwrap_or(u32::MAX),
        reason,
    }
}

/// Checks one record's raw bytes (as `csv` framed them) for RFC 4180 quoting: a quote only
/// opens a field, a closing quote is followed only by whitespace and a comma or the end, and
/// every opened quote is closed. `line` is the record's first line.
fn check_quoting(raw: &[u8], line: u32) -> Result<(), SyntaxError> {
    #[derive(Clone, Copy, PartialEq)]
    enum State {
        /// At the start of a field.
        Start,
        /// Inside an unquoted field.
        Unquoted,
        /// Inside quotes.
        Quoted,
        /// Just read a quote inside quotes: an escape (`""`) or the closing quote.
        QuoteInQuoted,
        /// After the closing quote.
        Closed,
    }
    let mut state = State::Start;
    let mut at = line;
    for (i, &b) in raw.iter().enumerate() {
        let error = |reason| Err(syntax(u64::from(at), reason));
        state = match (state, b) {
            (State::Quoted, b'"') => State::QuoteInQuoted,
            (State::Quoted, _) => State::Quoted,
            (State::QuoteInQuoted, b'"') => State::Quoted,
            (State::Start, b'"') => State::Quoted,
            (_, b',') => State::Start,
            (State::Start | State::Unquoted, b'\r' | b'\n') => state,
            (State::Unquoted, b'"') => return error("quote inside an unquoted field"),
            (State::Start | State::Unquoted, _) => State::Unquoted,
            (State::QuoteInQuoted | State::Closed, b) if b.is_ascii_whitespace() => State::Closed,
            (State::QuoteInQuoted | State::Closed, _) => {
                return error("text after a closing quote")
            }
        };
        if ends_line(raw, i) {
            at = at.saturating_add(1);
        }
    }
    if state == State::Quoted {
        return Err(syntax(u64::from(line), "unterminated quote"));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn f(r: &Record) -> Vec<&str> {
        r.fields.iter().map(String::as_str).collect()
    }

    #[test]
    fn frames_records_with_lines() {
        let text = "a,b,c\r\n\n# comment\n1,\"x, y\" ,3\n\"multi\nline\",\"q\"\"q\",\nlast";
        let (recs, err) = records(text);
        assert_eq!(err, None);
        assert_eq!(recs.len(), 4);
        assert_eq!((recs[0].line, f(&recs[0])), (1, vec!["a", "b", "c"]));
        assert_eq!((recs[1].line, f(&recs[1])), (4, vec!["1", "x, y", "3"]));
        assert_eq!(
            (recs[2].line, f(&recs[2])),
            (5, vec!["multi\nline", "q\"q", ""])
        );
        assert_eq!((recs[3].line, f(&recs[3])), (7, vec!["last"]));
    }

    #[test]
    fn lone_carriage_returns_end_lines() {
        // Old Mac spreadsheets end lines with a lone CR; mixed with the others here. A comment
        // runs to the next `\n` (as `csv` reads it).
        let text = "prefix,rate\r44,0.01\r33,0.02\r\n# note\n\"49\",\"x\ry\"\n1,2";
        let (recs, err) = records(text);
        assert_eq!(err, None);
        let lines: Vec<u32> = recs.iter().map(|r| r.line).collect();
        assert_eq!(lines, [1, 2, 3, 5, 7]);
        assert_eq!(f(&recs[1]), ["44", "0.01"]);
        assert_eq!(f(&recs[3]), ["49", "x\ry"]);
        let (_, err) = records("a\r\"open,b\rc");
        assert_eq!(err.map(|e| e.line), Some(2));
    }

    #[test]
    fn reports_syntax_errors() {
        let (recs, err) = records("a\n\"open,b\nc");
        assert_eq!(recs.len(), 1);
        assert_eq!(
            err,
            Some(SyntaxError {
                line: 2,
                reason: "unterminated quote"
            })
        );
        let (_, err) = records("a\nb\"c\n");
        assert_eq!(err.map(|e| e.line), Some(2));
        // RFC 4180: a quote opens a field only as its first character, so a space before it
        // makes the quote stray (a lenient reader accepts this; `csv` alone would split the
        // field).
        let (recs, err) = records("a\n1, \"x, y\",3\n");
        assert_eq!(recs.len(), 1);
        assert_eq!(
            err,
            Some(SyntaxError {
                line: 2,
                reason: "quote inside an unquoted field"
            })
        );
        let (_, err) = records("a\n\"multi\nline\"x,1\n");
        assert_eq!(
            err,
            Some(SyntaxError {
                line: 3,
                reason: "text after a closing quote"
            })
        );
    }

    #[test]
    fn comment_lines_with_quotes_are_ignored() {
        let (recs, err) = records("# say \"hi\n\na,b\n# \"\n1,2\n");
        assert_eq!(err, None);
        assert_eq!(
            recs.iter().map(|r| (r.line, f(r))).collect::<Vec<_>>(),
            vec![(3, vec!["a", "b"]), (5, vec!["1", "2"])]
        );
    }
}
