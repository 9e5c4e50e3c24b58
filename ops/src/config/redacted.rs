//! What `Debug` writes in place of a secret, for every section whose settings hold one (SMPP
//! passwords in [`super::model`] and [`super::smpp_server`], webhook signing secrets in
//! [`super::events`]).

/// What `Debug` writes in place of a password or secret.
pub const REDACTED: Redacted = Redacted;

/// Written by `Debug` in place of a secret: `<redacted>`.
#[derive(Clone, Copy, PartialEq, Eq)]
pub struct Redacted;

impl std::fmt::Debug for Redacted {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("<redacted>")
    }
}
