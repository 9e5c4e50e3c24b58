//! Walking the spanned TOML tree: typed getters that record every error (with the key path and
//! the line:column of the offending key or value) instead of stopping at the first, and that
//! remember which keys were read so the rest can be reported as unknown.

use std::collections::HashMap;
use std::ops::Range;
use std::path::PathBuf;

use switchyard_routing::{Currency, Price};
use toml::de::{DeTable, DeValue};
use toml::Spanned;

use super::error::{ConfigError, ConfigErrorKind, ConfigErrors, Location};

/// A byte range in the config text.
pub(crate) type Span = Range<usize>;

/// Errors found so far and where each key path was defined; shared by parsing and validation.
#[derive(Debug)]
pub(crate) struct Report<'s> {
    /// The file name used in messages.
    file: String,
    /// The config text, to turn byte offsets into line:column (empty for the embedded default).
    text: &'s str,
    /// Byte offset of the start of each line.
    line_starts: Vec<usize>,
    /// Errors in discovery order.
    errors: Vec<ConfigError>,
    /// Where each key path was read, so checks across keys can point at the right line.
    locations: HashMap<String, Location>,
}

impl<'s> Report<'s> {
    /// A report for `text`, named `file` in messages.
    pub(crate) fn new(file: impl Into<String>, text: &'s str) -> Self {
        let line_starts = std::iter::once(0)
            .chain(text.match_indices('\n').map(|(i, _)| i + 1))
            .collect();
        Self {
            file: file.into(),
            text,
            line_starts,
            errors: Vec::new(),
            locations: HashMap::new(),
        }
    }

    /// Line and column (1-based, in characters) of a byte offset.
    pub(crate) fn locate(&self, offset: usize) -> Option<Location> {
        if self.text.is_empty() {
            return None;
        }
        let line = self.line_starts.partition_point(|&s| s <= offset).max(1);
        let start = *self.line_starts.get(line - 1)?;
        let column = self
            .text
            .get(start..offset.min(self.text.len()))?
            .chars()
            .count()
            + 1;
        Some(Location {
            line: u32::try_from(line).ok()?,
            column: u32::try_from(column).ok(),
        })
    }

    /// Remembers where `path` is defined.
    pub(crate) fn note(&mut self, path: &str, span: &Span) {
        if let Some(loc) = self.locate(span.start) {
            self.locations.entry(path.to_owned()).or_insert(loc);
        }
    }

    /// Where `path` (or, failing that, its closest recorded parent) was defined.
    pub(crate) fn location_of(&self, path: &str) -> Option<Location> {
        let mut p = path;
        loop {
            if let Some(loc) = self.locations.get(p) {
                return Some(*loc);
            }
            let cut = p.rfind(['.', '['])?;
            p = p.get(..cut)?;
        }
    }

    /// True when an error was already reported for `path`, one of its parents or one of its
    /// children; checks across keys stay quiet then, so one mistake yields one message.
    pub(crate) fn has_error(&self, path: &str) -> bool {
        let within = |outer: &str, inner: &str| {
            inner == outer
                || (!outer.is_empty()
                    && inner.starts_with(outer)
                    && matches!(inner.as_bytes().get(outer.len()), Some(b'.' | b'[')))
        };
        self.errors
            .iter()
            .any(|e| within(&e.path, path) || within(path, &e.path))
    }

    /// Records an error at the value's span.
    pub(crate) fn at_span(&mut self, span: &Span, path: &str, kind: ConfigErrorKind) {
        let location = self.locate(span.start);
        self.push(location, path, kind);
    }

    /// Records an error for `path`, located where the path was read (checks across keys). Does
    /// nothing if `path` already has an error.
    pub(crate) fn at_path(&mut self, path: &str, kind: ConfigErrorKind) {
        if self.has_error(path) {
            return;
        }
        let location = self.location_of(path);
        self.push(location, path, kind);
    }

    /// Records an error in another file (a rate deck), with an optional line.
    pub(crate) fn in_file(
        &mut self,
        file: String,
        line: Option<u32>,
        path: &str,
        kind: ConfigErrorKind,
    ) {
        self.errors.push(ConfigError {
            file,
            location: line.map(|line| Location { line, column: None }),
            path: path.to_owned(),
            kind,
        });
    }

    fn push(&mut self, location: Option<Location>, path: &str, kind: ConfigErrorKind) {
        self.errors.push(ConfigError {
            file: self.file.clone(),
            location,
            path: path.to_owned(),
            kind,
        });
    }

    /// `Ok(value)` if nothing was reported, else every error, sorted by position.
    pub(crate) fn finish<T>(self, value: T) -> Result<T, ConfigErrors> {
        if self.errors.is_empty() {
            Ok(value)
        } else {
            let mut errors = ConfigErrors(self.errors);
            errors.sort();
            Err(errors)
        }
    }
}

/// `parent.key`, or `key` at the root.
pub(crate) fn join(parent: &str, key: &str) -> String {
    if parent.is_empty() {
        key.to_owned()
    } else {
        format!("{parent}.{key}")
    }
}

/// A table being read: its path, its span and which keys were asked for.
#[derive(Debug)]
pub(crate) struct Table<'a, 'i> {
    /// Key path of the table (`carriers[1].smpp`).
    pub(crate) path: String,
    /// The table's entries.
    table: &'a DeTable<'i>,
    /// Where the table starts (its header, or its first key for implicit tables).
    span: Span,
    /// Keys this version knows, in the order they were asked for.
    known: Vec<&'static str>,
}

impl<'a, 'i> Table<'a, 'i> {
    /// Starts reading `table` at `path`.
    pub(crate) fn new(path: String, table: &'a DeTable<'i>, span: Span) -> Self {
        Self {
            path,
            table,
            span,
            known: Vec::new(),
        }
    }

    /// Path of `key` in this table.
    pub(crate) fn key_path(&self, key: &str) -> String {
        join(&self.path, key)
    }

    /// The raw value of `key`, marking the key as known and recording its location.
    pub(crate) fn raw(
        &mut self,
        report: &mut Report<'_>,
        key: &'static str,
    ) -> Option<&'a Spanned<DeValue<'i>>> {
        if !self.known.contains(&key) {
            self.known.push(key);
        }
        let (k, v) = self.table.get_key_value(key)?;
        report.note(&self.key_path(key), &k.span());
        Some(v)
    }

    /// Whether `key` is present (and marks it known).
    pub(crate) fn has(&mut self, report: &mut Report<'_>, key: &'static str) -> bool {
        self.raw(report, key).is_some()
    }

    /// Reports a required key as missing, at the table's position.
    pub(crate) fn missing(&self, report: &mut Report<'_>, key: &str) {
        report.at_span(&self.span, &self.key_path(key), ConfigErrorKind::Missing);
    }

    /// A string.
    pub(crate) fn string(&mut self, report: &mut Report<'_>, key: &'static str) -> Option<String> {
        let v = self.raw(report, key)?;
        expect_str(report, v, &self.key_path(key)).map(str::to_owned)
    }

    /// A string that must be present.
    pub(crate) fn req_string(
        &mut self,
        report: &mut Report<'_>,
        key: &'static str,
    ) -> Option<String> {
        if self.raw(report, key).is_none() {
            self.missing(report, key);
            return None;
        }
        self.string(report, key)
    }

    /// A boolean, `default` when absent or wrong.
    pub(crate) fn bool(
        &mut self,
        report: &mut Report<'_>,
        key: &'static str,
        default: bool,
    ) -> bool {
        let Some(v) = self.raw(report, key) else {
            return default;
        };
        match v.get_ref() {
            DeValue::Boolean(b) => *b,
            other => {
                wrong_type(report, v, &self.key_path(key), "a boolean", other);
                default
            }
        }
    }

    /// An integer in `min..=max`, converted to `T` (the range must fit `T`).
    pub(crate) fn int<T: TryFrom<i64>>(
        &mut self,
        report: &mut Report<'_>,
        key: &'static str,
        min: i64,
        max: i64,
    ) -> Option<T> {
        let v = self.raw(report, key)?;
        expect_int(report, v, &self.key_path(key), min, max).and_then(|n| T::try_from(n).ok())
    }

    /// An integer in `min..=max`, `default` when absent or wrong.
    pub(crate) fn int_or<T: TryFrom<i64>>(
        &mut self,
        report: &mut Report<'_>,
        key: &'static str,
        min: i64,
        max: i64,
        default: T,
    ) -> T {
        self.int(report, key, min, max).unwrap_or(default)
    }

    /// A number (integer or float) in `min..=max`.
    pub(crate) fn float(
        &mut self,
        report: &mut Report<'_>,
        key: &'static str,
        min: f64,
        max: f64,
    ) -> Option<f64> {
        let v = self.raw(report, key)?;
        expect_float(report, v, &self.key_path(key), min, max)
    }

    /// An exact decimal amount (written as a string such as `"0.0065"` or a number, whose
    /// literal text is used, so no binary rounding creeps in).
    pub(crate) fn decimal(&mut self, report: &mut Report<'_>, key: &'static str) -> Option<Price> {
        let v = self.raw(report, key)?;
        expect_decimal(report, v, &self.key_path(key))
    }

    /// One of a fixed set of words.
    pub(crate) fn choice<T: Copy>(
        &mut self,
        report: &mut Report<'_>,
        key: &'static str,
        options: &[(&str, T)],
    ) -> Option<T> {
        let v = self.raw(report, key)?;
        expect_choice(report, v, &self.key_path(key), options)
    }

    /// An array of strings, each with its span.
    pub(crate) fn strings(
        &mut self,
        report: &mut Report<'_>,
        key: &'static str,
    ) -> Option<Vec<(String, Span)>> {
        let v = self.raw(report, key)?;
        let path = self.key_path(key);
        let DeValue::Array(items) = v.get_ref() else {
            wrong_type(report, v, &path, "an array of strings", v.get_ref());
            return None;
        };
        let mut out = Vec::new();
        for (i, item) in items.iter().enumerate() {
            let p = format!("{path}[{i}]");
            report.note(&p, &item.span());
            if let Some(s) = expect_str(report, item, &p) {
                out.push((s.to_owned(), item.span()));
            }
        }
        Some(out)
    }

    /// A sub-table (`[a.b]` or `b = { … }`).
    pub(crate) fn table(
        &mut self,
        report: &mut Report<'_>,
        key: &'static str,
    ) -> Option<Table<'a, 'i>> {
        let v = self.raw(report, key)?;
        let path = self.key_path(key);
        match v.get_ref() {
            DeValue::Table(t) => Some(Table::new(path, t, v.span())),
            other => {
                wrong_type(report, v, &path, "a table", other);
                None
            }
        }
    }

    /// An array of tables (`[[key]]`), each with its indexed path (`key[0]`).
    pub(crate) fn tables(
        &mut self,
        report: &mut Report<'_>,
        key: &'static str,
    ) -> Vec<Table<'a, 'i>> {
        let Some(v) = self.raw(report, key) else {
            return Vec::new();
        };
        let path = self.key_path(key);
        let DeValue::Array(items) = v.get_ref() else {
            wrong_type(report, v, &path, "an array of tables", v.get_ref());
            return Vec::new();
        };
        let mut out = Vec::new();
        for (i, item) in items.iter().enumerate() {
            let p = format!("{path}[{i}]");
            report.note(&p, &item.span());
            match item.get_ref() {
                DeValue::Table(t) => out.push(Table::new(p, t, item.span())),
                other => wrong_type(report, item, &p, "a table", other),
            }
        }
        out
    }

    /// The entries of a table used as a map (`fx = { USD = "0.92" }`): key, key path, value.
    pub(crate) fn entries(
        &self,
        report: &mut Report<'_>,
    ) -> Vec<(&'a str, String, &'a Spanned<DeValue<'i>>)> {
        self.table
            .iter()
            .map(|(k, v)| {
                let p = self.key_path(k.get_ref());
                report.note(&p, &k.span());
                (k.get_ref().as_ref(), p, v)
            })
            .collect()
    }

    /// Reports every key that was not asked for as unknown.
    pub(crate) fn finish(self, report: &mut Report<'_>) {
        for (k, _) in self.table.iter() {
            let name: &str = k.get_ref();
            if !self.known.contains(&name) {
                let suggestion = closest(name, &self.known);
                report.at_span(
                    &k.span(),
                    &self.key_path(name),
                    ConfigErrorKind::UnknownKey { suggestion },
                );
            }
        }
    }
}

impl Table<'_, '_> {
    /// `price` (a decimal, required) and `currency` (an ISO 4217 code, optional): what one
    /// message costs on a carrier priced per message.
    pub(crate) fn flat_price(&mut self, report: &mut Report<'_>) -> (Price, Option<Currency>) {
        let price = match self.raw(report, "price") {
            Some(v) => {
                let path = self.key_path("price");
                expect_decimal(report, v, &path).unwrap_or(Price::ZERO)
            }
            None => {
                self.missing(report, "price");
                Price::ZERO
            }
        };
        let currency = self.raw(report, "currency").and_then(|v| {
            let path = self.key_path("currency");
            let s = expect_str(report, v, &path)?;
            Currency::parse(s).ok().or_else(|| {
                report.at_span(
                    &v.span(),
                    &path,
                    ConfigErrorKind::Invalid(format!(
                        "{s:?} is not a three-letter ISO 4217 currency code"
                    )),
                );
                None
            })
        });
        (price, currency)
    }
}

/// The string content of `v`, or a type error.
pub(crate) fn expect_str<'v>(
    report: &mut Report<'_>,
    v: &'v Spanned<DeValue<'_>>,
    path: &str,
) -> Option<&'v str> {
    match v.get_ref() {
        DeValue::String(s) => Some(s.as_ref()),
        other => {
            wrong_type(report, v, path, "a string", other);
            None
        }
    }
}

/// A non-empty path string.
pub(crate) fn non_empty_path(
    report: &mut Report<'_>,
    t: &mut Table<'_, '_>,
    key: &'static str,
) -> Option<PathBuf> {
    let v = t.raw(report, key)?;
    let path = t.key_path(key);
    let s = expect_str(report, v, &path)?;
    if s.is_empty() {
        report.at_span(
            &v.span(),
            &path,
            ConfigErrorKind::Invalid("must not be empty".into()),
        );
        return None;
    }
    Some(PathBuf::from(s))
}

/// An integer in `min..=max`, or an error.
pub(crate) fn expect_int(
    report: &mut Report<'_>,
    v: &Spanned<DeValue<'_>>,
    path: &str,
    min: i64,
    max: i64,
) -> Option<i64> {
    let DeValue::Integer(int) = v.get_ref() else {
        wrong_type(report, v, path, "an integer", v.get_ref());
        return None;
    };
    let n = i128::from_str_radix(int.as_str(), int.radix()).ok();
    match n {
        Some(n) if n >= i128::from(min) && n <= i128::from(max) => i64::try_from(n).ok(),
        _ => {
            let got = n.map_or_else(|| int.as_str().to_owned(), |n| n.to_string());
            out_of_range(report, v, path, min.to_string(), max.to_string(), got);
            None
        }
    }
}

/// A number in `min..=max` (integers accepted), or an error.
pub(crate) fn expect_float(
    report: &mut Report<'_>,
    v: &Spanned<DeValue<'_>>,
    path: &str,
    min: f64,
    max: f64,
) -> Option<f64> {
    let (text, parsed) = match v.get_ref() {
        DeValue::Float(f) => (f.as_str(), f.as_str().parse::<f64>().ok()),
        DeValue::Integer(i) if i.radix() == 10 => (i.as_str(), i.as_str().parse::<f64>().ok()),
        other => {
            wrong_type(report, v, path, "a number", other);
            return None;
        }
    };
    match parsed {
        Some(x) if x >= min && x <= max => Some(x),
        _ => {
            out_of_range(
                report,
                v,
                path,
                min.to_string(),
                max.to_string(),
                text.to_owned(),
            );
            None
        }
    }
}

/// An exact non-negative decimal, or an error.
pub(crate) fn expect_decimal(
    report: &mut Report<'_>,
    v: &Spanned<DeValue<'_>>,
    path: &str,
) -> Option<Price> {
    let text = match v.get_ref() {
        DeValue::String(s) => s.as_ref(),
        DeValue::Float(f) => f.as_str(),
        DeValue::Integer(i) if i.radix() == 10 => i.as_str(),
        other => {
            wrong_type(report, v, path, "a decimal number", other);
            return None;
        }
    };
    match Price::parse(text) {
        Ok(p) => Some(p),
        Err(e) => {
            report.at_span(
                &v.span(),
                path,
                ConfigErrorKind::Invalid(format!("{text:?}: {e}")),
            );
            None
        }
    }
}

/// One of `options` (by exact word), or an error listing them.
pub(crate) fn expect_choice<T: Copy>(
    report: &mut Report<'_>,
    v: &Spanned<DeValue<'_>>,
    path: &str,
    options: &[(&str, T)],
) -> Option<T> {
    let s = expect_str(report, v, path)?;
    if let Some((_, t)) = options.iter().find(|(name, _)| *name == s) {
        return Some(*t);
    }
    let allowed = options
        .iter()
        .map(|(n, _)| format!("{n:?}"))
        .collect::<Vec<_>>()
        .join(", ");
    report.at_span(
        &v.span(),
        path,
        ConfigErrorKind::NotOneOf {
            allowed,
            got: s.to_owned(),
        },
    );
    None
}

/// Records a type error.
pub(crate) fn wrong_type(
    report: &mut Report<'_>,
    v: &Spanned<DeValue<'_>>,
    path: &str,
    expected: &'static str,
    found: &DeValue<'_>,
) {
    report.at_span(
        &v.span(),
        path,
        ConfigErrorKind::WrongType {
            expected,
            found: found.type_str(),
        },
    );
}

/// Records a range error.
fn out_of_range(
    report: &mut Report<'_>,
    v: &Spanned<DeValue<'_>>,
    path: &str,
    min: String,
    max: String,
    got: String,
) {
    report.at_span(
        &v.span(),
        path,
        ConfigErrorKind::OutOfRange { min, max, got },
    );
}

/// The known key closest to a misspelt one (edit distance ≤ 2, or ≤ 1 for short keys).
fn closest(name: &str, known: &[&'static str]) -> Option<&'static str> {
    let limit = if name.len() <= 4 { 1 } else { 2 };
    known
        .iter()
        .map(|k| (edit_distance(name, k), *k))
        .filter(|(d, _)| *d <= limit)
        .min_by_key(|(d, _)| *d)
        .map(|(_, k)| k)
}

/// Levenshtein distance over bytes (keys are ASCII).
fn edit_distance(a: &str, b: &str) -> usize {
    let b = b.as_bytes();
    let mut prev: Vec<usize> = (0..=b.len()).collect();
    for (i, ca) in a.bytes().enumerate() {
        let mut cur = Vec::with_capacity(b.len() + 1);
        cur.push(i + 1);
        for (j, cb) in b.iter().enumerate() {
            let sub = prev.get(j).copied().unwrap_or(usize::MAX / 2) + usize::from(ca != *cb);
            let del = prev.get(j + 1).copied().unwrap_or(usize::MAX / 2) + 1;
            let ins = cur.get(j).copied().unwrap_or(usize::MAX / 2) + 1;
            cur.push(sub.min(del).min(ins));
        }
        prev = cur;
    }
    prev.last().copied().unwrap_or(0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn suggestions() {
        assert_eq!(closest("windw", &["window", "tps"]), Some("window"));
        assert_eq!(closest("xyz", &["window", "tps"]), None);
        assert_eq!(edit_distance("kitten", "sitting"), 3);
    }

    #[test]
    fn locations() {
        let r = Report::new("f", "a = 1\nbé = 2\n");
        assert_eq!(
            r.locate(0),
            Some(Location {
                line: 1,
                column: Some(1)
            })
        );
        // After the two-byte é, the column counts characters.
        assert_eq!(
            r.locate(10),
            Some(Location {
                line: 2,
                column: Some(4)
            })
        );
    }
}
