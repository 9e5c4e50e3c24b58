//! Dashboard sessions as the store keeps them: shared by every node on the store, so any node
//! serves a session another opened and a logout on one ends it on all.
//!
//! A row holds no secret a browser presents: the session id appears only as its SHA-256 hash
//! (the cookie's value is the id), and the API key only as its SHA-256 hash (the form the
//! configuration stores it in), against which the current keys are checked on every request.
//! The expiry rules are the dashboard's (`crate::ui::session`); the store only keeps
//! `expires_at` and deletes rows past it.

use super::UnixMs;

/// A SHA-256 hash (of a session id, or of an API key).
pub type Sha256Hash = [u8; 32];

/// One open dashboard session.
#[derive(Clone, Copy, PartialEq, Eq)]
pub struct DashboardSession {
    /// SHA-256 of the session id (the cookie's value): the row's key.
    pub id_hash: Sha256Hash,
    /// SHA-256 of the API key it logged in with, as the configuration stores keys.
    pub key_hash: Sha256Hash,
    /// Login time, for the absolute expiry.
    pub created_at: UnixMs,
    /// Last request recorded, for the idle expiry.
    pub seen_at: UnixMs,
    /// When it ends unless seen again (the earlier of its idle and absolute ends).
    pub expires_at: UnixMs,
}

impl std::fmt::Debug for DashboardSession {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // The hashes identify a session and a key: not for logs.
        f.debug_struct("DashboardSession")
            .field("created_at", &self.created_at)
            .field("seen_at", &self.seen_at)
            .field("expires_at", &self.expires_at)
            .finish_non_exhaustive()
    }
}

/// A write to the dashboard's sessions, applied by [`super::Update::Session`]; each answers
/// [`super::Applied::Rows`] with the rows it wrote.
#[derive(Clone, PartialEq, Eq)]
pub enum SessionWrite {
    /// Deletes the sessions expired at `now`, then stores `session` unless `max_open`
    /// sessions are still open (then `Rows(0)`).
    Open {
        /// The new session.
        session: DashboardSession,
        /// Sessions open at once at most, across every node.
        max_open: u64,
        /// The time of the login.
        now: UnixMs,
    },
    /// The session was seen at `seen_at` and now ends at `expires_at`: applied only while it
    /// is open at `seen_at` (an expired session is never revived), and never moving either
    /// time back.
    Seen {
        /// Which session.
        id_hash: Sha256Hash,
        /// The request's time.
        seen_at: UnixMs,
        /// Its new end.
        expires_at: UnixMs,
    },
    /// Logout (or its key stopped authenticating): the row is deleted.
    Close {
        /// Which session.
        id_hash: Sha256Hash,
    },
}

impl std::fmt::Debug for SessionWrite {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            SessionWrite::Open {
                session,
                max_open,
                now,
            } => f
                .debug_struct("Open")
                .field("session", session)
                .field("max_open", max_open)
                .field("now", now)
                .finish(),
            SessionWrite::Seen {
                seen_at,
                expires_at,
                ..
            } => f
                .debug_struct("Seen")
                .field("seen_at", seen_at)
                .field("expires_at", expires_at)
                .finish_non_exhaustive(),
            SessionWrite::Close { .. } => f.debug_struct("Close").finish_non_exhaustive(),
        }
    }
}
