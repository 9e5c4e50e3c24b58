//! Dashboard sessions: a random id in a cookie; the session itself in the store, so every
//! node on the store serves it and a restart keeps it.
//!
//! The store keeps a session under the SHA-256 of its id and knows the API key it logged in
//! with only as the key's SHA-256 (the form the configuration holds keys in), so reading the
//! database yields neither a cookie nor a key. Each request reads the session (one lookup by
//! its key; nothing is cached on the node, so a logout anywhere counts everywhere at once) and
//! authenticates its key hash against the current keys, so a key removed by a reload ends its
//! sessions at their next request. The CSRF token its forms carry is derived from the id (a
//! SHA-256 of the id with a label of its own), so any node computes it and the store holds
//! none.
//!
//! Expiry: a session ends [`IDLE`] after its last request and [`ABSOLUTE`] after its login.
//! The last request is written at most once per [`SEEN_EVERY`], so a busy session costs one
//! write a minute, and an idle one ends between `IDLE - SEEN_EVERY` and `IDLE` after its last
//! request. A login first deletes the sessions that have expired, then refuses if
//! [`MAX_SESSIONS`] are still open across the cluster.
//!
//! Live-update streams (`/ui/events`) are a node's own: each node counts a session's streams
//! ([`MAX_STREAMS`] per session per node) and ends them at once when the session is closed
//! through it; the streams of a session closed elsewhere end at their next check of the store
//! ([`super::live`]). Times are passed in (`now`), so expiry is tested without waiting.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use parking_lot::Mutex;
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;
use switchyard_ops::config::ApiKeyHash;
use tokio_util::sync::CancellationToken;

use crate::domain::{Applied, DashboardSession, SessionWrite, Sha256Hash, UnixMs, Update};
use crate::store::{Store, StoreError};

/// A session ends this long after its last request.
pub(crate) const IDLE: Duration = Duration::from_secs(60 * 60);
/// A session ends this long after its login, however active.
pub(crate) const ABSOLUTE: Duration = Duration::from_secs(12 * 60 * 60);
/// A request is written down as the session's last when the last one written is this old.
pub(crate) const SEEN_EVERY: Duration = Duration::from_secs(60);
/// Sessions open at once across every node on the store; a login beyond that is refused.
pub(crate) const MAX_SESSIONS: u64 = 10_000;
/// Live-update streams one session may hold open at once on one node (a few tabs).
pub(crate) const MAX_STREAMS: usize = 4;

/// What a request learns of its open session.
#[derive(Clone)]
pub(crate) struct Session {
    /// The hash of the API key it logged in with, authenticated again on every request.
    pub(crate) key: ApiKeyHash,
    /// The token every form of this session carries in its `csrf` field.
    pub(crate) csrf: Arc<str>,
}

impl std::fmt::Debug for Session {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // The token is a secret; the key hash says which key.
        f.write_str("Session { .. }")
    }
}

/// The sessions: the store's, and this node's live-update streams of each.
#[derive(Clone)]
pub(crate) struct Sessions {
    /// Where sessions are kept.
    store: Arc<dyn Store>,
    /// Session id hash → its streams open on this node; an entry exists while one is open.
    streams: Arc<Mutex<HashMap<Sha256Hash, Streams>>>,
}

impl std::fmt::Debug for Sessions {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Sessions")
            .field("sessions_streaming", &self.streams.lock().len())
            .finish_non_exhaustive()
    }
}

/// One session's live-update streams on this node.
#[derive(Debug)]
struct Streams {
    /// How many are open.
    open: usize,
    /// Cancelled when the session is closed through this node: they end at once.
    ended: CancellationToken,
}

/// Why a login could not open a session.
#[derive(Debug, thiserror::Error)]
pub(crate) enum OpenError {
    /// [`MAX_SESSIONS`] unexpired sessions are open; retrying later can help.
    #[error("too many open sessions")]
    Full,
    /// The store could not write it.
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// A place among a session's live-update streams on this node; given back when dropped.
#[derive(Debug)]
pub(crate) struct StreamSlot {
    /// The node's streams.
    streams: Arc<Mutex<HashMap<Sha256Hash, Streams>>>,
    /// Whose.
    id_hash: Sha256Hash,
    /// Cancelled when the session is closed through this node.
    pub(crate) ended: CancellationToken,
}

impl Drop for StreamSlot {
    fn drop(&mut self) {
        let mut streams = self.streams.lock();
        if let Some(s) = streams.get_mut(&self.id_hash) {
            s.open = s.open.saturating_sub(1);
            if s.open == 0 {
                streams.remove(&self.id_hash);
            }
        }
    }
}

impl Sessions {
    /// Sessions kept in `store`.
    pub(crate) fn new(store: Arc<dyn Store>) -> Self {
        Sessions {
            store,
            streams: Arc::default(),
        }
    }

    /// Opens a session for the key whose hash is `key` (already authenticated). Returns its
    /// id, for the cookie.
    pub(crate) async fn open(&self, key: &ApiKeyHash, now: UnixMs) -> Result<String, OpenError> {
        let id = random_token();
        let session = DashboardSession {
            id_hash: id_hash(&id),
            key_hash: *key.as_bytes(),
            created_at: now,
            seen_at: now,
            expires_at: ends(now, now),
        };
        let applied = self
            .store
            .apply(vec![Update::Session(SessionWrite::Open {
                session,
                max_open: MAX_SESSIONS,
                now,
            })])
            .await?;
        match applied.first() {
            Some(Applied::Rows(1)) => Ok(id),
            _ => Err(OpenError::Full),
        }
    }

    /// The session `id` if it is open at `now`, its request written down as its last when
    /// the last one written is [`SEEN_EVERY`] old.
    pub(crate) async fn touch(&self, id: &str, now: UnixMs) -> Result<Option<Session>, StoreError> {
        let Some(s) = self.find(id, now).await? else {
            return Ok(None);
        };
        if now.saturating_sub(s.seen_at) >= ms(SEEN_EVERY) {
            self.store
                .apply(vec![Update::Session(SessionWrite::Seen {
                    id_hash: s.id_hash,
                    seen_at: now,
                    expires_at: ends(s.created_at, now),
                })])
                .await?;
        }
        Ok(Some(Session {
            key: ApiKeyHash::from_bytes(s.key_hash),
            csrf: Arc::from(csrf_token(id)),
        }))
    }

    /// The key hash of the session `id` if it is open at `now`, without counting as a request
    /// (a live-update stream asks this; it must not keep an idle session alive).
    pub(crate) async fn check(
        &self,
        id: &str,
        now: UnixMs,
    ) -> Result<Option<ApiKeyHash>, StoreError> {
        Ok(self
            .find(id, now)
            .await?
            .map(|s| ApiKeyHash::from_bytes(s.key_hash)))
    }

    /// Ends the session `id` (logout, or its key no longer authenticates) on every node, and
    /// its live-update streams on this one at once.
    pub(crate) async fn close(&self, id: &str) -> Result<(), StoreError> {
        let id_hash = id_hash(id);
        self.store
            .apply(vec![Update::Session(SessionWrite::Close { id_hash })])
            .await?;
        if let Some(s) = self.streams.lock().remove(&id_hash) {
            s.ended.cancel();
        }
        Ok(())
    }

    /// A place for one more live-update stream of the session `id` on this node, unless it
    /// has [`MAX_STREAMS`] open here.
    pub(crate) fn stream(&self, id: &str) -> Option<StreamSlot> {
        let id_hash = id_hash(id);
        let mut streams = self.streams.lock();
        let s = streams.entry(id_hash).or_insert_with(|| Streams {
            open: 0,
            ended: CancellationToken::new(),
        });
        if s.open >= MAX_STREAMS {
            return None;
        }
        s.open += 1;
        Some(StreamSlot {
            streams: self.streams.clone(),
            id_hash,
            ended: s.ended.clone(),
        })
    }

    /// The stored session `id` if it is open at `now`. An id that is not 32 hex digits is
    /// not looked up.
    async fn find(&self, id: &str, now: UnixMs) -> Result<Option<DashboardSession>, StoreError> {
        if id.len() != 32 || !id.bytes().all(|b| b.is_ascii_hexdigit()) {
            return Ok(None);
        }
        Ok(self
            .store
            .dashboard_session(id_hash(id))
            .await?
            .filter(|s| now < s.expires_at))
    }
}

/// When a session logged in at `created` and last seen at `seen` ends: the earlier of its
/// idle and absolute ends.
fn ends(created: UnixMs, seen: UnixMs) -> UnixMs {
    (seen + ms(IDLE)).min(created + ms(ABSOLUTE))
}

fn ms(d: Duration) -> UnixMs {
    // The durations here are hours: they fit.
    i64::try_from(d.as_millis()).unwrap_or(i64::MAX)
}

/// The key a session is stored under: the SHA-256 of its id.
fn id_hash(id: &str) -> Sha256Hash {
    Sha256::digest(id.as_bytes()).into()
}

/// The CSRF token of the session `id`: 32 hex digits of the SHA-256 of a label and the id
/// (never the stored hash, which has no label).
fn csrf_token(id: &str) -> String {
    let mut h = Sha256::new();
    h.update(b"switchyard dashboard csrf\0");
    h.update(id.as_bytes());
    hex::encode(&h.finalize()[..16])
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
    use crate::store::sqlite::harness::TempDir;
    use crate::store::sqlite::{SqliteOptions, SqliteStore};

    /// Login time in the tests.
    const T0: UnixMs = 1_700_000_000_000;
    const MINUTE: UnixMs = 60_000;

    fn key(n: u8) -> ApiKeyHash {
        ApiKeyHash::of_key(&format!("sk_key_{n}"))
    }

    /// Sessions in a SQLite store of their own (the store suite runs the table's reads and
    /// writes on every backend).
    fn sessions(dir: &TempDir) -> (Sessions, Arc<SqliteStore>) {
        let store = Arc::new(SqliteStore::open(&dir.db(), SqliteOptions::default()).unwrap());
        (Sessions::new(store.clone()), store)
    }

    #[tokio::test]
    async fn a_session_is_found_by_its_id_and_keeps_its_key_and_token() {
        let dir = TempDir::new();
        let (sessions, _) = sessions(&dir);
        let id = sessions.open(&key(1), T0).await.unwrap();
        assert_eq!(id.len(), 32);
        assert!(id.bytes().all(|b| b.is_ascii_hexdigit()));
        let s = sessions.touch(&id, T0).await.unwrap().unwrap();
        assert_eq!(s.key, key(1));
        assert_eq!(s.csrf.len(), 32);
        assert_ne!(&*s.csrf, id, "the CSRF token is not the session id");
        assert_ne!(
            &*s.csrf,
            &hex::encode(id_hash(&id))[..32],
            "nor the start of its stored hash"
        );
        assert!(sessions.touch(&"0".repeat(32), T0).await.unwrap().is_none());
        assert!(sessions.touch("not an id", T0).await.unwrap().is_none());
    }

    #[tokio::test]
    async fn the_store_holds_neither_the_id_nor_the_key() {
        let dir = TempDir::new();
        let (sessions, store) = sessions(&dir);
        let id = sessions.open(&key(1), T0).await.unwrap();
        let csrf = sessions.touch(&id, T0).await.unwrap().unwrap().csrf;
        store.close().await.unwrap();
        let bytes = std::fs::read(dir.db()).unwrap();
        let wal = std::fs::read(dir.0.join("store.db-wal")).unwrap_or_default();
        for file in [&bytes, &wal] {
            let text = String::from_utf8_lossy(file);
            for secret in [id.as_str(), &csrf, "sk_key_1"] {
                assert!(!text.contains(secret));
            }
        }
    }

    #[tokio::test]
    async fn another_node_on_the_store_serves_the_session_and_a_logout_there_ends_it() {
        let dir = TempDir::new();
        let (here, store) = sessions(&dir);
        let there = Sessions::new(store);
        let id = here.open(&key(1), T0).await.unwrap();
        let a = here.touch(&id, T0).await.unwrap().unwrap();
        let b = there.touch(&id, T0 + MINUTE).await.unwrap().unwrap();
        assert_eq!((a.key, &a.csrf), (b.key, &b.csrf));
        let slot = here.stream(&id).unwrap();
        there.close(&id).await.unwrap();
        assert!(here.touch(&id, T0 + MINUTE).await.unwrap().is_none());
        assert!(here.check(&id, T0 + MINUTE).await.unwrap().is_none());
        assert!(
            !slot.ended.is_cancelled(),
            "a stream on another node ends at its next check"
        );
        here.close(&id).await.unwrap();
        assert!(slot.ended.is_cancelled());
    }

    #[tokio::test]
    async fn logout_ends_the_sessions_streams_and_a_stream_does_not_keep_it_alive() {
        let dir = TempDir::new();
        let (sessions, _) = sessions(&dir);
        let id = sessions.open(&key(1), T0).await.unwrap();
        let slot = sessions.stream(&id).unwrap();
        let idle = ms(IDLE);
        assert_eq!(
            sessions.check(&id, T0 + idle / 2).await.unwrap(),
            Some(key(1))
        );
        assert!(
            sessions.check(&id, T0 + idle).await.unwrap().is_none(),
            "check does not count as a request"
        );
        assert!(!slot.ended.is_cancelled());
        sessions.close(&id).await.unwrap();
        assert!(slot.ended.is_cancelled());
        assert!(sessions.check(&id, T0).await.unwrap().is_none());
    }

    #[tokio::test]
    async fn ids_and_tokens_differ_between_sessions() {
        let dir = TempDir::new();
        let (sessions, _) = sessions(&dir);
        let a = sessions.open(&key(1), T0).await.unwrap();
        let b = sessions.open(&key(1), T0).await.unwrap();
        assert_ne!(a, b);
        let (sa, sb) = (
            sessions.touch(&a, T0).await.unwrap().unwrap(),
            sessions.touch(&b, T0).await.unwrap().unwrap(),
        );
        assert_ne!(sa.csrf, sb.csrf);
    }

    #[tokio::test]
    async fn a_session_expires_after_an_idle_hour_and_activity_extends_it() {
        let dir = TempDir::new();
        let (sessions, _) = sessions(&dir);
        let idle = ms(IDLE);
        let id = sessions.open(&key(1), T0).await.unwrap();
        assert!(sessions
            .touch(&id, T0 + idle - MINUTE)
            .await
            .unwrap()
            .is_some());
        // Seen a minute before the hour was up: good for another hour from then.
        let later = T0 + idle + idle - 2 * MINUTE;
        assert!(sessions.touch(&id, later).await.unwrap().is_some());
        // A request less than SEEN_EVERY after the last written one is not written: the
        // session ends an hour after the written one.
        assert!(sessions.touch(&id, later + 1000).await.unwrap().is_some());
        assert!(sessions.touch(&id, later + idle).await.unwrap().is_none());
        let idle_one = sessions.open(&key(1), T0).await.unwrap();
        assert!(sessions
            .touch(&idle_one, T0 + idle)
            .await
            .unwrap()
            .is_none());
        assert!(
            sessions.touch(&idle_one, T0).await.unwrap().is_some(),
            "expiry is decided by the time of the request"
        );
    }

    #[tokio::test]
    async fn an_expired_session_is_not_revived_by_a_late_write() {
        let dir = TempDir::new();
        let (sessions, store) = sessions(&dir);
        let id = sessions.open(&key(1), T0).await.unwrap();
        let late = T0 + ms(IDLE) + MINUTE;
        store
            .apply(vec![Update::Session(SessionWrite::Seen {
                id_hash: id_hash(&id),
                seen_at: late,
                expires_at: ends(T0, late),
            })])
            .await
            .unwrap();
        assert!(sessions.touch(&id, late).await.unwrap().is_none());
    }

    #[tokio::test]
    async fn a_session_ends_twelve_hours_after_login_however_active() {
        let dir = TempDir::new();
        let (sessions, _) = sessions(&dir);
        let id = sessions.open(&key(1), T0).await.unwrap();
        let absolute = ms(ABSOLUTE);
        let mut t = T0;
        while t + 30 * MINUTE < T0 + absolute {
            t += 30 * MINUTE;
            assert!(
                sessions.touch(&id, t).await.unwrap().is_some(),
                "at {}",
                t - T0
            );
        }
        assert!(sessions.touch(&id, T0 + absolute).await.unwrap().is_none());
    }

    #[tokio::test]
    async fn a_session_survives_a_restart_of_the_store() {
        let dir = TempDir::new();
        let (sessions, store) = sessions(&dir);
        let id = sessions.open(&key(2), T0).await.unwrap();
        store.close().await.unwrap();
        let (after, _) = self::sessions(&dir);
        assert_eq!(
            after.touch(&id, T0 + MINUTE).await.unwrap().unwrap().key,
            key(2)
        );
    }

    #[tokio::test]
    async fn a_session_holds_a_bounded_number_of_streams_per_node() {
        let dir = TempDir::new();
        let (sessions, _) = sessions(&dir);
        let id = sessions.open(&key(1), T0).await.unwrap();
        let slots: Vec<_> = (0..MAX_STREAMS)
            .map(|_| sessions.stream(&id).unwrap())
            .collect();
        assert!(sessions.stream(&id).is_none());
        drop(slots);
        assert_eq!(
            sessions.streams.lock().len(),
            0,
            "no entry without a stream"
        );
        assert!(sessions.stream(&id).is_some());
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
