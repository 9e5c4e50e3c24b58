//! What can be wrong with a configuration, and where.
//!
//! Loading never stops at the first problem: every error is collected into [`ConfigErrors`],
//! which prints one line per error, `file:line:column: key.path: reason`, like a compiler.

use std::fmt;

use switchyard_routing::{BuildProblem, DeckErrorKind};

/// A 1-based position in a file.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Location {
    /// 1-based line.
    pub line: u32,
    /// 1-based column in characters; `None` when only the line is known (rate deck rows).
    pub column: Option<u32>,
}

/// One problem in the configuration. The operator must fix the file: retrying cannot help.
#[derive(Debug)]
#[non_exhaustive]
pub struct ConfigError {
    /// The file the problem is in, as it was named to the loader (the config file, or a rate
    /// deck), or `<embedded default>`.
    pub file: String,
    /// Where in `file`, when known (the TOML parser gives spans for everything it read; checks
    /// across keys point at the key they blame).
    pub location: Option<Location>,
    /// Key path in the configuration, e.g. `carriers[1].smpp.window` (array indices count from
    /// 0). Empty for problems with the whole file.
    pub path: String,
    /// What is wrong.
    pub kind: ConfigErrorKind,
}

/// What is wrong, by category, so programs (and tests) can tell problems apart without matching
/// on text.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ConfigErrorKind {
    /// The file could not be read.
    #[error("cannot read: {0}")]
    Io(String),
    /// The file is not valid TOML.
    #[error("TOML syntax: {0}")]
    Syntax(String),
    /// A key this version does not know (a typo, or a setting from another version).
    #[error("unknown key{}", suggestion.as_ref().map(|s| format!(" (did you mean `{s}`?)")).unwrap_or_default())]
    UnknownKey {
        /// The closest known key, when one is close.
        suggestion: Option<&'static str>,
    },
    /// A value of the wrong TOML type.
    #[error("expected {expected}, found {found}")]
    WrongType {
        /// What the key takes ("an integer", "a string" …).
        expected: &'static str,
        /// The TOML type given.
        found: &'static str,
    },
    /// A required key is absent.
    #[error("required key is missing")]
    Missing,
    /// A number outside its allowed range.
    #[error("must be between {min} and {max} (got {got})")]
    OutOfRange {
        /// Smallest allowed value.
        min: String,
        /// Largest allowed value.
        max: String,
        /// The value given.
        got: String,
    },
    /// A string that is not one of the allowed words.
    #[error("must be one of {allowed} (got {got:?})")]
    NotOneOf {
        /// The allowed values, comma-separated.
        allowed: String,
        /// The value given.
        got: String,
    },
    /// A value of the right type whose content is invalid.
    #[error("{0}")]
    Invalid(String),
    /// A name defined twice where names must be unique.
    #[error("{what} {name:?} is defined twice (first at {first})")]
    Duplicate {
        /// What kind of name ("tenant", "carrier" …).
        what: &'static str,
        /// The repeated name.
        name: String,
        /// Key path of the first definition.
        first: String,
    },
    /// A reference to something the configuration does not define.
    #[error("unknown {what} {name:?}")]
    UnknownReference {
        /// What kind of thing is referred to ("carrier" …).
        what: &'static str,
        /// The name given.
        name: String,
    },
    /// An API key that is not a `sha256:` hash. The value itself is never echoed: it may be a
    /// live secret.
    #[error(
        "API keys are stored as hashes, never in plain text: write \"sha256:\" followed by the \
         64 hex digits of SHA-256 of the key (`printf %s \"$KEY\" | sha256sum`), then keep the \
         key itself out of this file"
    )]
    PlaintextApiKey,
    /// A setting this build accepts in the file but cannot act on yet.
    #[error("{0} is not available yet")]
    NotAvailable(String),
    /// A referenced file (rate deck, CA bundle) does not exist or is not a file.
    #[error("file {path:?} not found ({reason})")]
    MissingFile {
        /// The path as resolved against the config file's folder.
        path: String,
        /// Why it is not usable.
        reason: String,
    },
    /// A problem in a rate deck's content, from the routing crate's deck parser.
    #[error("{0}")]
    Deck(DeckErrorKind),
    /// A problem found when building the routing table from the configuration.
    #[error("{0}")]
    Routing(BuildProblem),
}

impl fmt::Display for ConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.file)?;
        if let Some(loc) = self.location {
            write!(f, ":{}", loc.line)?;
            if let Some(col) = loc.column {
                write!(f, ":{col}")?;
            }
        }
        if !self.path.is_empty() {
            write!(f, ": {}", self.path)?;
        }
        write!(f, ": {}", self.kind)
    }
}

impl std::error::Error for ConfigError {}

/// Every problem found in a configuration, in file order where positions are known. Displays
/// as one error per line.
#[derive(Debug, Default)]
pub struct ConfigErrors(pub Vec<ConfigError>);

impl ConfigErrors {
    /// The errors.
    pub fn iter(&self) -> std::slice::Iter<'_, ConfigError> {
        self.0.iter()
    }

    /// How many errors.
    pub fn len(&self) -> usize {
        self.0.len()
    }

    /// True when there are none (a loader never returns an empty `Err`).
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// The error reported for `path`, if any (handy in tests and tools).
    pub fn at(&self, path: &str) -> Option<&ConfigError> {
        self.0.iter().find(|e| e.path == path)
    }

    /// Sorts errors by position within each file (unpositioned ones last), files in the order
    /// they first appear; ties keep their discovery order.
    pub(crate) fn sort(&mut self) {
        let mut files: Vec<String> = Vec::new();
        for e in &self.0 {
            if !files.contains(&e.file) {
                files.push(e.file.clone());
            }
        }
        self.0.sort_by_key(|e| {
            let rank = files
                .iter()
                .position(|f| *f == e.file)
                .unwrap_or(usize::MAX);
            let pos = e
                .location
                .map_or((u32::MAX, u32::MAX), |l| (l.line, l.column.unwrap_or(0)));
            (rank, pos)
        });
    }
}

impl fmt::Display for ConfigErrors {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, e) in self.0.iter().enumerate() {
            if i > 0 {
                f.write_str("\n")?;
            }
            write!(f, "{e}")?;
        }
        Ok(())
    }
}

impl std::error::Error for ConfigErrors {}

impl IntoIterator for ConfigErrors {
    type Item = ConfigError;
    type IntoIter = std::vec::IntoIter<ConfigError>;

    fn into_iter(self) -> Self::IntoIter {
        self.0.into_iter()
    }
}

impl<'a> IntoIterator for &'a ConfigErrors {
    type Item = &'a ConfigError;
    type IntoIter = std::slice::Iter<'a, ConfigError>;

    fn into_iter(self) -> Self::IntoIter {
        self.0.iter()
    }
}
