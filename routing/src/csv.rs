//! A small RFC 4180 reader: enough for rate decks, with the line number of every record.
//!
//! Written here rather than taken from the `csv` crate so that every record carries the line it
//! starts on (for `file:line` errors) and the crate keeps its two dependencies. Supports quoted
//! fields with `""` escapes and embedded commas or newlines, `\n` and `\r\n` line ends, blank
//! lines and `#` comment lines (both skipped).

/// One record: its fields and the 1-based line it starts on.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Record {
    /// 1-based line number of the record's first character.
    pub line: u32,
    /// Field values, unquoted, surrounding whitespace of unquoted fields trimmed.
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
/// framed reliably after an unbalanced quote), returning the records before it.
pub(crate) fn records(text: &str) -> (Vec<Record>, Option<SyntaxError>) {
    let mut out = Vec::new();
    let mut chars = text.chars().peekable();
    let mut line: u32 = 1;
    loop {
        // Skip blank and comment lines.
        match chars.peek() {
            None => return (out, None),
            Some('\n') => {
                chars.next();
                line += 1;
                continue;
            }
            Some('\r') => {
                chars.next();
                continue;
            }
            Some('#') => {
                for c in chars.by_ref() {
                    if c == '\n' {
                        break;
                    }
                }
                line += 1;
                continue;
            }
            Some(_) => {}
        }
        let start = line;
        let mut fields = Vec::new();
        let mut field = String::new();
        let mut quoted = false; // inside quotes now
        let mut was_quoted = false; // this field started with a quote
        loop {
            let Some(c) = chars.next() else {
                if quoted {
                    return (
                        out,
                        Some(SyntaxError {
                            line: start,
                            reason: "unterminated quote",
                        }),
                    );
                }
                fields.push(finish(field, was_quoted));
                out.push(Record {
                    line: start,
                    fields,
                });
                return (out, None);
            };
            if quoted {
                match c {
                    '"' if chars.peek() == Some(&'"') => {
                        chars.next();
                        field.push('"');
                    }
                    '"' => quoted = false,
                    '\n' => {
                        line += 1;
                        field.push(c);
                    }
                    _ => field.push(c),
                }
                continue;
            }
            match c {
                ',' => {
                    fields.push(finish(std::mem::take(&mut field), was_quoted));
                    was_quoted = false;
                }
                '"' if field.trim().is_empty() && !was_quoted => {
                    field.clear();
                    quoted = true;
                    was_quoted = true;
                }
                '"' => {
                    return (
                        out,
                        Some(SyntaxError {
                            line,
                            reason: "quote inside an unquoted field",
                        }),
                    );
                }
                '\r' => {}
                '\n' => {
                    line += 1;
                    break;
                }
                _ if was_quoted && c.is_whitespace() => {}
                _ if was_quoted => {
                    return (
                        out,
                        Some(SyntaxError {
                            line,
                            reason: "text after a closing quote",
                        }),
                    );
                }
                _ => field.push(c),
            }
        }
        fields.push(finish(field, was_quoted));
        out.push(Record {
            line: start,
            fields,
        });
    }
}

fn finish(field: String, was_quoted: bool) -> String {
    if was_quoted {
        field
    } else {
        field.trim().to_owned()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn f(r: &Record) -> Vec<&str> {
        r.fields.iter().map(String::as_str).collect()
    }

    #[test]
    fn frames_records_with_lines() {
        let text = "a,b,c\r\n\n# comment\n1, \"x, y\" ,3\n\"multi\nline\",\"q\"\"q\",\nlast";
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
    }
}
