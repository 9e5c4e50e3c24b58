//! Rate-deck CSV framing: the `csv` crate, plus the line number of every record and a strict
//! check of its quoting.
//!
//! `csv` reads RFC 4180 (quoted fields with `""` escapes and embedded commas or newlines,
//! `\n` and `\r\n` line ends, a UTF-8 BOM); blank lines and `#` comment lines are skipped, and
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
    loop {
        let start = reader.position().clone();
        match reader.read_record(&mut record) {
            Ok(false) => return (out, None),
            Ok(true) => {}
            Err(e) => {
                // Input is a `&str`, so `csv` cannot hit I/O or UTF-8 errors; report whatever
                // it says at the line it says.
                let line = e.position().map_or(start.line(), csv::Position::line);
                return (out, Some(syntax(line, "unreadable record")));
            }
        }
        // `csv` positions a record where the previous one ended, before the blank and comment
        // lines it skipped; step over those to the record's first line.
        let from = record.position().unwrap_or(&start);
        let (begin, line) = skip_to_record(text.as_bytes(), from.byte(), from.line());
        let line = u32::try_from(line).unwrap_or(u32::MAX);
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

/// From `byte` (on `line`), skips line ends and `#` comment lines: the byte offset and line
/// of the next record's first character.
fn skip_to_record(text: &[u8], byte: u64, mut line: u64) -> (usize, u64) {
    let mut at = usize::try_from(byte).unwrap_or(usize::MAX);
    loop {
        match text.get(at) {
            Some(b'\n') => line += 1,
            Some(b'\r') => {}
            Some(b'#') => {
                while let Some(&b) = text.get(at) {
                    if b == b'\n' {
                        line += 1;
                        break;
                    }
                    at += 1;
                }
            }
            _ => return (at, line),
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
    for &b in raw {
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
        if b == b'\n' {
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
