//! Dashboard sessions: a random id in a cookie, the API key it logged in with kept on the
//! server, an expiry, and the CSRF token its forms carry.
//!
//! Sessions live in this process's memory only: a restart (or another node behind the same
//! address) means logging in again. Each request re-authenticates the stored key against the
//! current keys, so a key removed by a reload ends its sessions at their next request. Times
//! are passed in (`now`), so expiry is tested without waiting.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use std::sync::atomic::AtomicUsize;

use parking_lot::Mutex;
use subtle::ConstantTimeEq;

/// A session ends this long after its last request.
pub(crate) const IDLE: Duration = Duration::from_secs(60 * 60);
/// A session ends this long after its login, however active.
pub(crate) const ABSOLUTE: Duration = Duration::from_secs(12 * 60 * 60);
/// Sessions held at once; a login beyond that first drops expired ones, then is refused.
pub(crate) const MAX_SESSIONS: usize = 10_000;
/// Live-update streams one session may hold open at once (a few tabs).
pub(crate) const MAX_STREAMS: usize = 4;

/// One logged-in browser.
#[derive(Clone)]
pub(crate) struct Session {
    /// The API key it logged in with, checked again on every request (never sent back to
    /// the browser).
    pub(crate) key: Arc<str>,
    /// The token every form of this session carries in its `csrf` field.
    pub(crate) csrf: Arc<str>,
    /// Login time, for [`ABSOLUTE`].
    created: Instant,
    /// Last request, for [`IDLE`].
    seen: Instant,
    /// Cancelled when the session ends by logout (or its key stops authenticating), so its
    /// live-update streams close at once.
    pub(crate) ended: tokio_util::sync::CancellationToken,
    /// Live-update streams open now (`/ui/events`), bounded by [`MAX_STREAMS`].
    pub(crate) streams: Arc<AtomicUsize>,
}

impl std::fmt::Debug for Session {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // The key and the token are secrets.
        f.debug_struct("Session")
            .field("created", &self.created)
            .field("seen", &self.seen)
            .finish_non_exhaustive()
    }
}

/// Every open session, by id.
#[derive(Debug, Default)]
pub(crate) struct Sessions {
    /// Id (32 hex digits) → session.
    open: Mutex<HashMap<String, Session>>,
}

/// Why a login could not open a session.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub(crate) enum OpenError {
    /// [`MAX_SESSIONS`] unexpired sessions are open; retrying later can help.
    #[error("too many open sessions")]
    Full,
}

impl Sessions {
    /// Opens a session for `key` (already authenticated). Returns its id, for the cookie.
    pub(crate) fn open(&self, key: &str, now: Instant) -> Result<String, OpenError> {
        let mut open = self.open.lock();
        if open.len() >= MAX_SESSIONS {
            open.retain(|_, s| alive(s, now));
            if open.len() >= MAX_SESSIONS {
                return Err(OpenError::Full);
            }
        }
        let id = random_token();
        let session = Session {
            key: Arc::from(key),
            csrf: Arc::from(random_token()),
            created: now,
            seen: now,
            ended: tokio_util::sync::CancellationToken::new(),
            streams: Arc::new(AtomicUsize::new(0)),
        };
        open.insert(id.clone(), session);
        Ok(id)
    }

    /// The session `id` if it is open and unexpired, marked as seen at `now`; an expired one
    /// is removed.
    pub(crate) fn touch(&self, id: &str, now: Instant) -> Option<Session> {
        let mut open = self.open.lock();
        let session = open.get_mut(id)?;
        if !alive(session, now) {
            open.remove(id);
            return None;
        }
        session.seen = now;
        Some(session.clone())
    }

    /// Whether the session `id` is open and unexpired at `now`, without counting as a
    /// request (a live-update stream asks this; it must not keep an idle session alive).
    pub(crate) fn is_open(&self, id: &str, now: Instant) -> bool {
        self.open.lock().get(id).is_some_and(|s| alive(s, now))
    }

    /// The API key of the open session `id`.
    pub(crate) fn key(&self, id: &str) -> Option<Arc<str>> {
        self.open.lock().get(id).map(|s| s.key.clone())
    }

    /// Ends the session `id` (logout, or its key no longer authenticates), and its streams.
    pub(crate) fn close(&self, id: &str) {
        if let Some(s) = self.open.lock().remove(id) {
            s.ended.cancel();
        }
    }

    /// Sessions held now (expired ones included until they are looked up or swept).
    #[cfg(test)]
    fn len(&self) -> usize {
        self.open.lock().len()
    }
}

fn alive(s: &Session, now: Instant) -> bool {
    now.saturating_duration_since(s.seen) < IDLE
        && now.saturating_duration_since(s.created) < ABSOLUTE
}

/// 128 random bits as 32 lowercase hex digits, from the thread's CSPRNG (ChaCha seeded by
/// the operating system).
pub(crate) fn random_token() -> String {
    hex::encode(rand::random::<[u8; 16]>())
}

/// True when a form's `given` token is the session's `expected` one (constant time).
pub(crate) fn csrf_matches(expected: &str, given: &str) -> bool {
    !expected.is_empty() && bool::from(expected.as_bytes().ct_eq(given.as_bytes()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_session_is_found_by_its_id_and_keeps_its_key_and_token() {
        let sessions = Sessions::default();
        let t0 = Instant::now();
        let id = sessions.open("sk_key", t0).unwrap();
        assert_eq!(id.len(), 32);
        assert!(id.bytes().all(|b| b.is_ascii_hexdigit()));
        let s = sessions.touch(&id, t0).unwrap();
        assert_eq!(&*s.key, "sk_key");
        assert_eq!(s.csrf.len(), 32);
        assert_ne!(&*s.csrf, id, "the CSRF token is not the session id");
        assert!(sessions.touch("0".repeat(32).as_str(), t0).is_none());
    }

    #[test]
    fn logout_ends_the_sessions_streams_and_a_stream_does_not_keep_it_alive() {
        let sessions = Sessions::default();
        let t0 = Instant::now();
        let id = sessions.open("k", t0).unwrap();
        let s = sessions.touch(&id, t0).unwrap();
        assert!(sessions.is_open(&id, t0 + IDLE / 2));
        assert!(
            !sessions.is_open(&id, t0 + IDLE),
            "is_open does not count as a request"
        );
        assert!(!s.ended.is_cancelled());
        sessions.close(&id);
        assert!(s.ended.is_cancelled());
        assert!(!sessions.is_open(&id, t0));
    }

    #[test]
    fn ids_and_tokens_differ_between_sessions() {
        let sessions = Sessions::default();
        let t0 = Instant::now();
        let a = sessions.open("k", t0).unwrap();
        let b = sessions.open("k", t0).unwrap();
        assert_ne!(a, b);
        let (sa, sb) = (
            sessions.touch(&a, t0).unwrap(),
            sessions.touch(&b, t0).unwrap(),
        );
        assert_ne!(sa.csrf, sb.csrf);
    }

    #[test]
    fn a_session_expires_after_an_idle_hour_and_activity_extends_it() {
        let sessions = Sessions::default();
        let t0 = Instant::now();
        let id = sessions.open("k", t0).unwrap();
        let minute = Duration::from_secs(60);
        assert!(sessions.touch(&id, t0 + IDLE - minute).is_some());
        // Seen a minute before the hour was up: good for another hour from then.
        assert!(sessions.touch(&id, t0 + IDLE + IDLE - 2 * minute).is_some());
        let idle = sessions.open("k", t0).unwrap();
        assert!(sessions.touch(&idle, t0 + IDLE).is_none());
        assert!(
            sessions.touch(&idle, t0).is_none(),
            "an expired session is removed, not revived"
        );
    }

    #[test]
    fn a_session_ends_twelve_hours_after_login_however_active() {
        let sessions = Sessions::default();
        let t0 = Instant::now();
        let id = sessions.open("k", t0).unwrap();
        let mut t = t0;
        while t + Duration::from_secs(1800) < t0 + ABSOLUTE {
            t += Duration::from_secs(1800);
            assert!(sessions.touch(&id, t).is_some(), "at {:?}", t - t0);
        }
        assert!(sessions.touch(&id, t0 + ABSOLUTE).is_none());
    }

    #[test]
    fn logout_ends_the_session() {
        let sessions = Sessions::default();
        let t0 = Instant::now();
        let id = sessions.open("k", t0).unwrap();
        sessions.close(&id);
        assert!(sessions.touch(&id, t0).is_none());
        assert_eq!(sessions.len(), 0);
    }

    #[test]
    fn a_full_table_drops_expired_sessions_before_refusing() {
        let sessions = Sessions::default();
        let t0 = Instant::now();
        for _ in 0..MAX_SESSIONS {
            sessions.open("k", t0).unwrap();
        }
        assert_eq!(sessions.open("k", t0), Err(OpenError::Full));
        let later = t0 + IDLE;
        assert!(sessions.open("k", later).is_ok());
        assert_eq!(sessions.len(), 1);
    }

    #[test]
    fn csrf_tokens_must_match_exactly() {
        let token = random_token();
        assert!(csrf_matches(&token, &token));
        assert!(!csrf_matches(&token, ""));
        assert!(!csrf_matches(&token, &token[..31]));
        assert!(!csrf_matches(&token, &format!("{token}0")));
        assert!(!csrf_matches(&token, &random_token()));
        assert!(!csrf_matches("", ""), "an empty token never matches");
    }
}
