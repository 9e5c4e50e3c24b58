//! `POST /v1/contacts/import`: a CSV body (`text/csv`) upserted by `external_id`, read as it
//! arrives.
//!
//! The first row names the columns (any order, case-insensitive): `external_id`, `name`, the
//! address kinds (`phone`, `email`, `whatsapp`, `telegram`, `messenger`, `rcs`), consent per
//! channel (`consent_sms`, `consent_email`, … with `granted`, `denied` or `unset`),
//! `consent_source` (default `import`) and `attributes.<key>` for the tenant's own fields. A
//! row with an external id the tenant already has changes that contact; any other row creates
//! one. An empty cell leaves the stored value as it is.
//!
//! # Memory
//! The body is read chunk by chunk. Complete records (up to the last record end, found as the
//! `csv` crate's reader finds them: [`last_record_end`]) are parsed with that reader and written to the store [`WRITE_ROWS`] at a time (one
//! commit each), so memory holds one chunk, one partial record (at most [`MAX_RECORD_BYTES`])
//! and one write, whatever the file's size. The body is limited to [`MAX_IMPORT_BYTES`]: a
//! larger `Content-Length` is refused before anything is read (413); a body without one that
//! grows past it stops the import there (413 saying how many rows were written, which a retry
//! with a smaller file upserts again harmlessly). The report lists at most [`MAX_REPORTED`]
//! rejected rows and counts them all.

use axum::body::Body;
use axum::extract::State;
use axum::http::{header, HeaderMap, StatusCode};
use axum::Json;
use futures::StreamExt;
use serde::Serialize;

use super::{address, consent_channel, short_text};
use crate::api::problem::Problem;
use crate::api::{AppState, Scope, Tenant};
use crate::domain::{
    now_ms, Applied, AttributesPatch, Consent, ConsentState, ContactApplied, ContactId,
    ContactPatch, ContactWrite, UnixMs, Update, ADDRESS_KINDS,
};

/// Largest import body.
pub(crate) const MAX_IMPORT_BYTES: usize = 32 << 20;
/// Longest record (a row with its line break).
pub(crate) const MAX_RECORD_BYTES: usize = 64 << 10;
/// Rows written to the store in one commit.
const WRITE_ROWS: usize = 500;
/// Most rejected rows listed in the report (all are counted).
pub(crate) const MAX_REPORTED: usize = 1000;

/// What an import did.
#[derive(Debug, Default, Serialize, utoipa::ToSchema)]
pub(crate) struct ImportReport {
    /// Data rows read (the header row not counted).
    pub(crate) rows: usize,
    /// Contacts created.
    pub(crate) created: usize,
    /// Contacts changed (their external id was known).
    pub(crate) updated: usize,
    /// Rows refused, counted.
    pub(crate) rejected_count: usize,
    /// Rows refused (the first 1,000), in order.
    pub(crate) rejected: Vec<RejectedRow>,
}

/// A row refused.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub(crate) struct RejectedRow {
    /// Its row number in the file, the header being row 1 (as a spreadsheet numbers them).
    pub(crate) row: usize,
    /// The column at fault, when one is.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(crate) field: Option<String>,
    /// Stable code (`invalid_number`, `invalid_email`, `wrong_field_count`, …).
    pub(crate) code: &'static str,
    /// Why, for a person.
    pub(crate) reason: String,
}

/// What a column holds.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Column {
    ExternalId,
    Name,
    Address(&'static str),
    Consent(&'static str),
    ConsentSource,
    Attribute(String),
}

impl Column {
    fn parse(name: &str) -> Result<Column, String> {
        let n = name.trim().to_ascii_lowercase();
        if let Some(key) = name.trim().strip_prefix("attributes.") {
            if key.is_empty() {
                return Err("attributes. needs a key (attributes.tier)".into());
            }
            return Ok(Column::Attribute(key.to_owned()));
        }
        if let Some(channel) = n.strip_prefix("consent_") {
            if channel == "source" {
                return Ok(Column::ConsentSource);
            }
            return consent_channel(channel)
                .map(Column::Consent)
                .map_err(|p| p.detail);
        }
        match n.as_str() {
            "external_id" => Ok(Column::ExternalId),
            "name" => Ok(Column::Name),
            other => ADDRESS_KINDS
                .iter()
                .find(|k| **k == other)
                .map(|k| Column::Address(k))
                .ok_or_else(|| {
                    format!(
                        "unknown column {name:?}; use external_id, name, {}, consent_<channel>, \
                         consent_source or attributes.<key>",
                        ADDRESS_KINDS.join(", ")
                    )
                }),
        }
    }
}

/// The import in progress: the header, counts, the rows waiting to be written.
struct Import<'a> {
    state: &'a AppState,
    tenant: &'a str,
    now: UnixMs,
    /// The columns, once the header row was read.
    columns: Option<Vec<Column>>,
    /// The number of the last record read (the header is 1).
    row: usize,
    /// Rows checked, not yet written: their numbers and patches.
    pending: Vec<(usize, ContactPatch)>,
    report: ImportReport,
}

impl Import<'_> {
    fn reject(&mut self, row: usize, field: Option<String>, code: &'static str, reason: String) {
        self.report.rejected_count += 1;
        if self.report.rejected.len() < MAX_REPORTED {
            self.report.rejected.push(RejectedRow {
                row,
                field,
                code,
                reason,
            });
        }
    }

    /// Parses complete records and queues their rows (writing every [`WRITE_ROWS`]).
    async fn records(&mut self, bytes: &[u8]) -> Result<(), Problem> {
        let mut reader = csv::ReaderBuilder::new()
            .has_headers(false)
            .flexible(true)
            .from_reader(bytes);
        for record in reader.byte_records() {
            self.row += 1;
            let row = self.row;
            let record = match record {
                Ok(r) => r,
                Err(e) if self.columns.is_none() => {
                    return Err(invalid_csv(format!("the header row cannot be read: {e}")))
                }
                Err(e) => {
                    self.reject(row, None, "invalid_csv", e.to_string());
                    continue;
                }
            };
            let Some(columns) = &self.columns else {
                self.columns = Some(header(&record)?);
                continue;
            };
            self.report.rows += 1;
            match row_patch(columns, &record, self.tenant, self.now) {
                Ok(p) => self.pending.push((row, p)),
                Err((field, code, reason)) => self.reject(row, field, code, reason),
            }
            if self.pending.len() >= WRITE_ROWS {
                self.write().await?;
            }
        }
        Ok(())
    }

    /// Writes the queued rows in one commit.
    async fn write(&mut self) -> Result<(), Problem> {
        if self.pending.is_empty() {
            return Ok(());
        }
        let pending = std::mem::take(&mut self.pending);
        let rows: Vec<usize> = pending.iter().map(|(r, _)| *r).collect();
        let updates = pending
            .into_iter()
            .map(|(_, patch)| {
                Update::Contact(ContactWrite::Upsert {
                    id: ContactId::generate(self.now),
                    patch: Box::new(patch),
                })
            })
            .collect();
        let applied = self.state.store.apply(updates).await?;
        for (row, a) in rows.into_iter().zip(applied) {
            match a {
                Applied::Contact(ContactApplied::Created(_)) => self.report.created += 1,
                Applied::Contact(ContactApplied::Updated(_)) => self.report.updated += 1,
                Applied::Contact(ContactApplied::Conflict(other)) => self.reject(
                    row,
                    Some("external_id".into()),
                    "external_id_taken",
                    format!("another contact ({other}) has this external_id"),
                ),
                other => self.reject(row, None, "internal", format!("{other:?}")),
            }
        }
        Ok(())
    }
}

fn invalid_csv(detail: String) -> Problem {
    Problem::invalid("body", "invalid_csv", detail)
}

/// The header row's columns: each known, none twice.
fn header(record: &csv::ByteRecord) -> Result<Vec<Column>, Problem> {
    let mut columns = Vec::with_capacity(record.len());
    for field in record {
        let name = std::str::from_utf8(field)
            .map_err(|_| invalid_csv("the header row is not UTF-8".into()))?;
        let name = name.trim_start_matches('\u{feff}');
        let column = Column::parse(name).map_err(invalid_csv)?;
        if columns.contains(&column) {
            return Err(invalid_csv(format!("column {name:?} appears twice")));
        }
        columns.push(column);
    }
    if columns.is_empty() {
        return Err(invalid_csv("the header row is empty".into()));
    }
    Ok(columns)
}

/// Why a row was refused: the column, a code, the reason.
type RowError = (Option<String>, &'static str, String);

/// One data row as a change to the contact it names.
fn row_patch(
    columns: &[Column],
    record: &csv::ByteRecord,
    tenant: &str,
    now: UnixMs,
) -> Result<ContactPatch, RowError> {
    if record.len() != columns.len() {
        return Err((
            None,
            "wrong_field_count",
            format!(
                "the row has {} fields; the header has {}",
                record.len(),
                columns.len()
            ),
        ));
    }
    let mut patch = ContactPatch {
        tenant: tenant.to_owned(),
        at: now,
        ..ContactPatch::default()
    };
    let mut source = "import".to_owned();
    let mut consent: Vec<(&'static str, ConsentState)> = Vec::new();
    let mut attributes = serde_json::Map::new();
    let problem = |p: Problem| (p.field.map(str::to_owned), p.code, p.detail);
    for (column, raw) in columns.iter().zip(record.iter()) {
        let text = std::str::from_utf8(raw)
            .map_err(|_| (None, "invalid_text", "the row is not UTF-8 text".to_owned()))?;
        let text = text.trim();
        if text.is_empty() {
            continue;
        }
        match column {
            Column::ExternalId => {
                patch.external_id = Some(Some(short_text("external_id", text).map_err(problem)?))
            }
            Column::Name => patch.name = Some(Some(short_text("name", text).map_err(problem)?)),
            Column::Address(kind) => {
                let a = address(kind, text).map_err(problem)?;
                patch.addresses.insert((*kind).to_owned(), Some(a));
            }
            Column::Consent(channel) => {
                let state = text
                    .parse::<ConsentState>()
                    .map_err(|e| (Some(format!("consent_{channel}")), "invalid_consent", e))?;
                consent.push((channel, state));
            }
            Column::ConsentSource => {
                source = short_text("consent_source", text).map_err(problem)?
            }
            Column::Attribute(key) => {
                if text.contains('\0') {
                    return Err((
                        Some(format!("attributes.{key}")),
                        "invalid_text",
                        "text must not contain NUL".into(),
                    ));
                }
                attributes.insert(key.clone(), serde_json::Value::String(text.to_owned()));
            }
        }
    }
    for (channel, state) in consent {
        patch.consent.insert(
            channel.to_owned(),
            Consent {
                state,
                at: now,
                source: source.clone(),
            },
        );
    }
    if !attributes.is_empty() {
        patch.attributes = Some(AttributesPatch::Merge(attributes));
    }
    if patch.external_id.is_none() && patch.addresses.is_empty() {
        return Err((
            None,
            "no_address",
            "a row needs an external_id or at least one address".into(),
        ));
    }
    Ok(patch)
}

/// Where the `csv` crate's reader (its defaults: `,`, `"` doubled to escape it, any of `\r`,
/// `\n`, `\r\n` ending a record) stands within a record, as far as finding record ends needs.
/// A quote opens a quoted field only at the field's start; in one, a doubled quote is a quote
/// and a single one closes it; anywhere else quotes are text. Record ends split the body the
/// way that reader would: the pieces then parse to the same records as the whole body.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
enum Scan {
    /// At a field's start (and a record's).
    #[default]
    FieldStart,
    /// In a field that is not quoted.
    Unquoted,
    /// In a quoted field.
    Quoted,
    /// Just after a quote in a quoted field: it closed the field, or a second one follows.
    QuoteInQuoted,
}

/// Where the last complete record ends in `buf` (the index after its terminator), scanning
/// from `from` with `state` the reader's state there; returns the end found (if any) and the
/// state at the end of `buf`. A line break inside a quoted field does not end a record.
fn last_record_end(buf: &[u8], from: usize, mut state: Scan) -> (Option<usize>, Scan) {
    let mut end = None;
    for (i, &b) in buf.iter().enumerate().skip(from) {
        state = match (state, b) {
            (Scan::Quoted, b'"') => Scan::QuoteInQuoted,
            (Scan::Quoted, _) => Scan::Quoted,
            (Scan::QuoteInQuoted, b'"') | (Scan::FieldStart, b'"') => Scan::Quoted,
            (_, b'\n' | b'\r') => {
                end = Some(i + 1);
                Scan::FieldStart
            }
            (_, b',') => Scan::FieldStart,
            _ => Scan::Unquoted,
        };
    }
    (end, state)
}

/// The records of `body` as the `csv` reader reads them whole, or none when it cannot.
fn csv_records(body: &[u8]) -> Option<Vec<csv::ByteRecord>> {
    csv::ReaderBuilder::new()
        .has_headers(false)
        .flexible(true)
        .from_reader(body)
        .byte_records()
        .collect::<Result<_, _>>()
        .ok()
}

/// The property the `contacts_csv` fuzz target checks (`fuzz/fuzz_targets/contacts_csv.rs`),
/// and the corpus replay test: a CSV body cut at the record ends [`last_record_end`] finds as
/// it arrives in chunks of any size (`data[0]` picks the size, the rest is the body) parses,
/// piece by piece, to exactly the records of the whole body, and what is left at its end is
/// either a record or a quoted field never closed. So an import reads every row of the file
/// as one read of the whole file would, wherever the network splits it.
#[doc(hidden)]
#[allow(clippy::expect_used)]
pub fn check_csv_cut_bytes(data: &[u8]) {
    let Some((&size, body)) = data.split_first() else {
        return;
    };
    let Some(whole) = csv_records(body) else {
        return;
    };
    let size = usize::from(size % 64) + 1;
    let mut pieces = Vec::new();
    let (mut buf, mut scanned, mut state) = (Vec::new(), 0, Scan::default());
    for chunk in body.chunks(size) {
        buf.extend_from_slice(chunk);
        let (end, now) = last_record_end(&buf, scanned, state);
        state = now;
        scanned = buf.len();
        if let Some(end) = end {
            pieces.extend(csv_records(&buf[..end]).expect("a piece of a readable body"));
            buf.drain(..end);
            scanned = buf.len();
        }
    }
    if state != Scan::Quoted {
        pieces.extend(csv_records(&buf).expect("the rest of a readable body"));
    } else {
        let rest = csv_records(&buf).expect("the rest of a readable body");
        assert!(
            rest.len() <= 1,
            "an unclosed quoted field is the last record"
        );
        pieces.extend(rest);
    }
    assert_eq!(pieces, whole, "cut every {size} bytes");
}

/// `POST /v1/contacts/import`.
#[utoipa::path(post, path = "/v1/contacts/import", tag = "contacts",
    request_body(content = String, content_type = "text/csv",
        description = "A header row (external_id, name, phone, email, whatsapp, telegram, messenger, rcs, consent_<channel>, consent_source, attributes.<key>), then one contact per row"),
    responses(
        (status = 200, description = "Rows created, updated and rejected (with row numbers and reasons)", body = ImportReport),
        (status = 403, description = "The key lacks the `admin` scope", body = Problem),
        (status = 413, description = "The body is larger than 32 MiB", body = Problem),
        (status = 415, description = "Not sent as text/csv", body = Problem),
        (status = 422, description = "The header row is missing or names an unknown column, or a record is too long", body = Problem),
    ),
    security(("bearer" = [])))]
pub(crate) async fn import(
    State(state): State<AppState>,
    caller: Tenant,
    headers: HeaderMap,
    body: Body,
) -> Result<Json<ImportReport>, Problem> {
    caller.require(Scope::Admin)?;
    let is_csv = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.split(';').next())
        .is_some_and(|m| {
            let m = m.trim();
            m.eq_ignore_ascii_case("text/csv") || m.eq_ignore_ascii_case("application/csv")
        });
    if !is_csv {
        return Err(Problem::new(
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            "content_type",
            "send the contacts as text/csv",
        ));
    }
    let too_large = |written: usize| {
        Problem::new(
            StatusCode::PAYLOAD_TOO_LARGE,
            "body_too_large",
            format!(
                "an import is at most {} MiB; {written} rows before that point were written",
                MAX_IMPORT_BYTES >> 20
            ),
        )
    };
    let declared = headers
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<usize>().ok());
    if declared.is_some_and(|n| n > MAX_IMPORT_BYTES) {
        return Err(too_large(0));
    }
    let tenant = caller.0.clone();
    let mut import = Import {
        state: &state,
        tenant: &tenant,
        now: now_ms(),
        columns: None,
        row: 0,
        pending: Vec::new(),
        report: ImportReport::default(),
    };
    let mut stream = body.into_data_stream();
    let mut buf: Vec<u8> = Vec::new();
    let (mut scanned, mut state, mut total) = (0usize, Scan::default(), 0usize);
    while let Some(chunk) = stream.next().await {
        let chunk = chunk.map_err(|e| {
            Problem::bad_request(
                "body_unreadable",
                format!("the body could not be read: {e}"),
            )
        })?;
        total += chunk.len();
        if total > MAX_IMPORT_BYTES {
            import.write().await?;
            return Err(too_large(import.report.created + import.report.updated));
        }
        buf.extend_from_slice(&chunk);
        let (end, now) = last_record_end(&buf, scanned, state);
        state = now;
        scanned = buf.len();
        if let Some(end) = end {
            import.records(&buf[..end]).await?;
            buf.drain(..end);
            scanned = buf.len();
        }
        if buf.len() > MAX_RECORD_BYTES {
            import.write().await?;
            return Err(invalid_csv(format!(
                "row {} is longer than {} KiB (or opens a quote it never closes); rows before \
                 it were written",
                import.row + 1,
                MAX_RECORD_BYTES >> 10
            )));
        }
    }
    if state == Scan::Quoted {
        import.row += 1;
        let row = import.row;
        import.reject(
            row,
            None,
            "invalid_csv",
            "the row opens a quoted field it never closes".into(),
        );
    } else if !buf.is_empty() {
        import.records(&buf).await?;
    }
    import.write().await?;
    if import.columns.is_none() {
        return Err(invalid_csv(
            "the body is empty: the first row names the columns".into(),
        ));
    }
    Ok(Json(import.report))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn records_end_at_line_breaks_outside_quotes() {
        let buf = b"a,b\n\"x\ny\",\"he said \"\"hi\"\"\"\nc,";
        let (end, state) = last_record_end(buf, 0, Scan::default());
        assert_eq!(end, Some(buf.len() - 2));
        assert_eq!(state, Scan::FieldStart);
        let (end, state) = last_record_end(b"1,\"open\nstill", 0, Scan::default());
        assert_eq!((end, state), (None, Scan::Quoted));
        // `\r` ends a record too (`\r\n` ends one, the `\n` after it an empty line).
        let (end, _) = last_record_end(b"a,b\rc,d\r\ne", 0, Scan::default());
        assert_eq!(end, Some(9));
    }

    #[test]
    fn quotes_inside_a_field_are_text_as_the_reader_reads_them() {
        // A quote opens a quoted field only at the field's start: in `ab"c` or after a
        // closed quote (`"ab"c"`) it is text, and the line break after it ends the record.
        for buf in [&b"x,ab\"c\nnext,row\n"[..], b"\"ab\"c\"\nnext,row\n"] {
            let (end, state) = last_record_end(buf, 0, Scan::default());
            assert_eq!(end, Some(buf.len()), "{:?}", String::from_utf8_lossy(buf));
            assert_eq!(state, Scan::FieldStart);
            check_csv_cut_bytes(&[&[0u8][..], buf].concat());
        }
    }

    #[test]
    fn a_body_cut_anywhere_reads_as_the_whole_body() {
        let body = b"external_id,name,phone\r\nc-1,\"Smith, J\",+447911123456\r\n\
                     c-2,\"two\nlines \"\"quoted\"\"\",\r\nc-3,a\"b\"c,\n\nc-4,\"open";
        for size in 0..64u8 {
            check_csv_cut_bytes(&[&[size][..], body].concat());
        }
    }

    #[test]
    fn fuzz_corpus_replays_cleanly() {
        crate::replay_fuzz_corpus("contacts_csv", check_csv_cut_bytes);
    }

    #[test]
    fn columns_are_known_or_refused() {
        assert_eq!(Column::parse(" Phone "), Ok(Column::Address("phone")));
        assert_eq!(Column::parse("consent_sms"), Ok(Column::Consent("sms")));
        assert_eq!(Column::parse("consent_source"), Ok(Column::ConsentSource));
        assert_eq!(
            Column::parse("attributes.Tier"),
            Ok(Column::Attribute("Tier".into()))
        );
        assert!(Column::parse("consent_fax").is_err());
        assert!(Column::parse("nickname").is_err());
    }

    #[test]
    fn a_row_becomes_a_patch_or_a_reason() {
        let columns = [
            Column::ExternalId,
            Column::Address("phone"),
            Column::Consent("sms"),
        ];
        let ok = row_patch(
            &columns,
            &csv::ByteRecord::from(vec!["c-1", "+447911123456", "denied"]),
            "acme",
            5,
        )
        .unwrap();
        assert_eq!(
            ok.addresses.get("phone"),
            Some(&Some("+447911123456".to_owned()))
        );
        assert_eq!(ok.consent["sms"].state, ConsentState::Denied);
        assert_eq!(ok.consent["sms"].source, "import");
        let bad = row_patch(
            &columns,
            &csv::ByteRecord::from(vec!["c-2", "07700900123", ""]),
            "acme",
            5,
        )
        .unwrap_err();
        assert_eq!((bad.0.as_deref(), bad.1), (Some("phone"), "invalid_number"));
        let short = row_patch(&columns, &csv::ByteRecord::from(vec!["c-3"]), "acme", 5);
        assert_eq!(short.unwrap_err().1, "wrong_field_count");
    }
}
