//! The SQLite schema, its migrations and the connection settings.
//!
//! Migrations are an ordered list of SQL scripts; the database remembers how many it has run in
//! `PRAGMA user_version` (0 for a new file). Opening applies the missing ones in one
//! transaction, so a crash mid-migration leaves the previous version intact.
//!
//! # Tables
//! - `messages`: one row per accepted message (`id` is the [`MessageId`], the rowid).
//!   Indexes: `(tenant, id)` for listing, and a partial index over the unfinished ones
//!   (accepted/queued/submitting) for the restart scan, which stays small because messages
//!   leave it once sent.
//! - `segments`: per-segment carrier, carrier id and status, keyed `(message_id, idx)`.
//! - `carrier_ids`: every reading of each segment's carrier id (see
//!   [`switchyard_protocols::dlr::readings`]), scoped by carrier, flagged when the reading is
//!   certain, for receipts (see [`super::receipts`]).
//! - `history`: every status change of a message.
//! - `unmatched_receipts`: receipts that matched no segment, with their id readings so a
//!   receipt that overtook its submit_sm_resp still matches when the segment arrives;
//!   `pending_since` is set on those whose only matches were uncertain.
//! - `carrier_id_formats`: how each carrier writes ids in responses and receipts, as learned.
//! - `inbound`: mobile-originated messages.
//! - (v2) `history` gains `seq`, its event id: the event log. `opt_outs`, `webhook_outbox`
//!   (webhooks waiting for a retry, and dead letters), `webhook_cursor` (how far the webhook
//!   pump has handed events over).
//! - `batches`: one row per batch send (its tenant and recipient counts); its messages carry
//!   `messages.batch_id` (see v25 for how progress is counted).
//! - `idempotency_keys`: the response given to each `(tenant, Idempotency-Key)`, with a hash of
//!   the request body, written in the transaction that stores the request's messages; honoured
//!   for 24 h, deleted by retention ([`super::retention`], like every kind of old row).
//!
//! - (v4) `messages.voice` and `messages.call`: a voice notification call's spec and outcome
//!   (JSON), see [`crate::voice`].
//! - (v7) `mo_parts`: parts of multipart MO messages held until their message completes
//!   (written before the part is acknowledged to the carrier; released in the commit that
//!   stores the message). `inbound.partial`: for a message given up before all its parts
//!   arrived, which parts did (JSON), NULL for whole messages.
//!
//! - (v8) `messages_scheduled`: a partial index over `(scheduled_at, id)` of the scheduled messages
//!   still `accepted`, walked by the scheduler as they come due.
//! - (v11) `messages.email`: an email's subject, HTML part and reply-to (JSON).
//! - (v12) `flows`: flows (modes over several channels) with their steps (JSON), state and
//!   skipped steps; `messages.flow_id`/`flow_step` link each delivery to its flow (indexed).
//! - (v14) `messages_recipient`: `(tenant, to_addr, id)`, a recipient's newest messages from
//!   one tenant (the history a `smart` flow is ordered by).
//! - (v15) `message_rollups` and `call_rollups`: the analytics rollups, one row per
//!   (resolution, bucket, key) with counters and serialized latency histograms, keyed so a
//!   range of buckets is one index range (see [`crate::domain::analytics`] and `rollups`);
//!   `messages.sent_at`, when the message was sent.
//! - (v16) `inbound.channel`: the channel an inbound message came on (`sms` for the rows
//!   before it); `inbound_chat`, a partial index by time over the chat channels' ones (the
//!   messaging windows are rebuilt from the last day's at start).
//! - (v17) `contacts`: a tenant's contacts (see [`crate::domain::Contact`]): one column per
//!   address kind, each indexed by `(tenant, address)` where set; consent per channel and the
//!   tenant's attributes as JSON; `(tenant, external_id)` unique where set.
//! - (v18) `inbound.data_coding` and `inbound.udh`: a binary inbound message's data_coding
//!   (NULL for text) and user data header; `mo_parts.udh`, a held part's IEs other than
//!   concatenation.
//! - (v19) `dashboard_sessions`: the dashboard's sessions
//!   ([`crate::domain::DashboardSession`]), keyed by the SHA-256 of the session id, with the
//!   SHA-256 of the API key, never either secret; `dashboard_sessions_expiry` for deleting the
//!   expired ones. `webhook_outbox_tenant`: `(tenant, url, dead)` (and the rowid, `id`), so a
//!   tenant's webhooks waiting and given up are counted per endpoint from the index alone.
//! - (v20) `webhook_health`: each webhook endpoint's health as the node sending webhooks
//!   reports it ([`crate::domain::EndpointHealth`]), by `(tenant, url)`;
//!   `webhook_health_updated` for dropping those not attempted for a week.
//! - (v21) `inbound.provider_id`: a chat inbound message's id on its platform, unique per
//!   account (`inbound_provider_id` on `(carrier, provider_id)` where set): a webhook sent
//!   again is stored once.
//! - (v22) `messages.withdrawn`: the detail of a withdrawal (a later step of the message's flow
//!   started) that found the message `submitting`: its owner cancels it before its next
//!   attempt, or recalls what the attempt in flight handed over; NULL otherwise.
//! - (v23) `webhook_outbox_tenant_due`: the outbox's live rows by `(tenant, next_at)`, read
//!   per tenant (tenants found by seeking from one to the next) instead of soonest first over
//!   all tenants; `webhook_outbox_due` is dropped.
//! - (v24) `messages_unfinished` names its statuses with `=` and `OR` (no IN list, which SQLite
//!   evaluates through a temporary b-tree at every insert and status change); queries that
//!   walk it repeat that condition word for word ([`UNFINISHED`]).
//! - (v25) `batches.first_id` and `last_id`: the lowest and highest id of the batch's
//!   messages. A batch's progress counts the messages with its `batch_id` in that range of the
//!   table's key; `messages_batch` is dropped (one b-tree fewer written per batch message).
//! - (v9) `history.tenant`: each event's tenant (its message's, NULL for an MO nobody owns),
//!   indexed with `seq`, so a tenant's event-stream replay reads only its own events.
//!
//! Small keyed tables are `WITHOUT ROWID` (the primary key is the only b-tree, so an insert
//! touches one tree instead of two); `messages` keeps its integer rowid, which already is the
//! primary key.
//!
//! [`MessageId`]: crate::domain::MessageId

use std::time::Duration;

use rusqlite::{Connection, TransactionBehavior};

/// The condition of the partial index `messages_unfinished` (v24), which a query repeats word
/// for word for SQLite to walk the index.
pub(super) const UNFINISHED: &str =
    "(status = 'accepted' OR status = 'queued' OR status = 'submitting')";

/// WAL pages after which a commit checkpoints on the writer's thread (see
/// [`configure_writer`]): a fallback only, for when the checkpointer thread falls behind.
pub(super) const WAL_AUTOCHECKPOINT_PAGES: i64 = 32_768;

/// The migrations, in order; migration `i` brings the schema from version `i` to `i + 1`.
/// Never edit one that has shipped: append a new one.
pub(super) const MIGRATIONS: &[&str] = &[
    // v1: the initial schema.
    r#"
CREATE TABLE messages (
    id           INTEGER PRIMARY KEY,
    tenant       TEXT    NOT NULL,
    status       TEXT    NOT NULL,
    to_addr      TEXT    NOT NULL,
    country      TEXT,
    from_addr    TEXT    NOT NULL,
    body         TEXT    NOT NULL,
    encoding     TEXT    NOT NULL,
    segments     INTEGER NOT NULL,
    priority     TEXT    NOT NULL,
    scheduled_at INTEGER,
    expires_at   INTEGER,
    callback_url TEXT,
    tags         TEXT    NOT NULL,
    metadata     TEXT,
    carrier      TEXT,
    price        TEXT,
    currency     TEXT,
    created_at   INTEGER NOT NULL,
    updated_at   INTEGER NOT NULL
);
CREATE INDEX messages_tenant ON messages (tenant, id);
CREATE INDEX messages_unfinished ON messages (id)
    WHERE status IN ('accepted', 'queued', 'submitting');

CREATE TABLE segments (
    message_id         INTEGER NOT NULL,
    idx                INTEGER NOT NULL,
    carrier            TEXT,
    carrier_message_id TEXT,
    status             TEXT    NOT NULL,
    error              TEXT,
    updated_at         INTEGER NOT NULL,
    PRIMARY KEY (message_id, idx)
) WITHOUT ROWID;

CREATE TABLE carrier_ids (
    carrier    TEXT    NOT NULL,
    key        TEXT    NOT NULL,
    message_id INTEGER NOT NULL,
    idx        INTEGER NOT NULL,
    PRIMARY KEY (carrier, key, message_id, idx)
) WITHOUT ROWID;

CREATE TABLE history (
    message_id INTEGER NOT NULL,
    at         INTEGER NOT NULL,
    status     TEXT    NOT NULL,
    detail     TEXT,
    PRIMARY KEY (message_id, at, status)
) WITHOUT ROWID;

CREATE TABLE unmatched_receipts (
    id                 INTEGER PRIMARY KEY,
    carrier            TEXT    NOT NULL,
    carrier_message_id TEXT    NOT NULL,
    key_primary        TEXT    NOT NULL,
    key_alternate      TEXT,
    status             TEXT,
    error              TEXT,
    received_at        INTEGER NOT NULL
);
CREATE INDEX unmatched_primary ON unmatched_receipts (carrier, key_primary);
CREATE INDEX unmatched_alternate ON unmatched_receipts (carrier, key_alternate);

CREATE TABLE inbound (
    id          INTEGER PRIMARY KEY,
    carrier     TEXT    NOT NULL,
    tenant      TEXT,
    from_addr   TEXT    NOT NULL,
    to_addr     TEXT    NOT NULL,
    body        TEXT    NOT NULL,
    received_at INTEGER NOT NULL
);
"#,
    // Events, webhooks and opt-outs: `history` becomes the event log. Its rows get an integer
    // key `seq` in commit order (the event id), inbound messages get a history row too
    // (status 'inbound'), and the old key stays as a unique index so history inserts and
    // per-message reads are unchanged. See `store::sqlite::events`.
    r#"
CREATE TABLE history_log (
    seq        INTEGER PRIMARY KEY,
    message_id INTEGER NOT NULL,
    at         INTEGER NOT NULL,
    status     TEXT    NOT NULL,
    detail     TEXT
);
INSERT INTO history_log (message_id, at, status, detail)
    SELECT message_id, at, status, detail FROM history ORDER BY at, message_id;
INSERT INTO history_log (message_id, at, status, detail)
    SELECT id, received_at, 'inbound', NULL FROM inbound ORDER BY id;
DROP TABLE history;
ALTER TABLE history_log RENAME TO history;
CREATE UNIQUE INDEX history_key ON history (message_id, at, status);
CREATE INDEX inbound_tenant ON inbound (tenant, id);

CREATE TABLE opt_outs (
    tenant     TEXT    NOT NULL,
    recipient  TEXT    NOT NULL,
    sender     TEXT    NOT NULL,
    source     TEXT    NOT NULL,
    created_at INTEGER NOT NULL,
    PRIMARY KEY (tenant, recipient, sender)
) WITHOUT ROWID;

CREATE TABLE webhook_outbox (
    id          INTEGER PRIMARY KEY,
    seq         INTEGER NOT NULL,
    tenant      TEXT    NOT NULL,
    url         TEXT    NOT NULL,
    attempts    INTEGER NOT NULL,
    first_at    INTEGER NOT NULL,
    next_at     INTEGER NOT NULL,
    last_error  TEXT,
    dead        INTEGER NOT NULL DEFAULT 0
);
CREATE INDEX webhook_outbox_due ON webhook_outbox (next_at) WHERE dead = 0;
CREATE INDEX webhook_outbox_dead ON webhook_outbox (tenant, id) WHERE dead = 1;

CREATE TABLE webhook_cursor (
    name TEXT PRIMARY KEY,
    seq  INTEGER NOT NULL
) WITHOUT ROWID;
"#,
    // Tenancy: batch ids on messages, batches, idempotency keys.
    r#"
ALTER TABLE messages ADD COLUMN batch_id TEXT;
CREATE INDEX messages_batch ON messages (batch_id) WHERE batch_id IS NOT NULL;

CREATE TABLE batches (
    id          TEXT    PRIMARY KEY,
    tenant      TEXT    NOT NULL,
    created_at  INTEGER NOT NULL,
    recipients  INTEGER NOT NULL,
    accepted    INTEGER NOT NULL,
    rejected    INTEGER NOT NULL
) WITHOUT ROWID;

CREATE TABLE idempotency_keys (
    tenant     TEXT    NOT NULL,
    key        TEXT    NOT NULL,
    body_hash  TEXT    NOT NULL,
    status     INTEGER NOT NULL,
    response   TEXT    NOT NULL,
    created_at INTEGER NOT NULL,
    PRIMARY KEY (tenant, key)
) WITHOUT ROWID;
CREATE INDEX idempotency_created ON idempotency_keys (created_at);
"#,
    // Voice notification calls: the call's spec (what to play and capture, JSON;
    // NULL for SMS, so the channel is voice exactly when it is set) and its outcome once it
    // ended (answer/ring/talk times, digits, trunks tried; JSON).
    r#"
ALTER TABLE messages ADD COLUMN voice TEXT;
ALTER TABLE messages ADD COLUMN call TEXT;
"#,
    // Call detail records of the SIP proxy.
    r#"
CREATE TABLE calls (
    id           INTEGER PRIMARY KEY,
    tenant       TEXT    NOT NULL,
    sip_call_id  TEXT    NOT NULL,
    caller       TEXT    NOT NULL,
    callee       TEXT    NOT NULL,
    attempts     TEXT    NOT NULL,
    carrier      TEXT,
    disposition  TEXT    NOT NULL,
    code         INTEGER NOT NULL,
    hangup       TEXT,
    setup_at     INTEGER NOT NULL,
    answer_at    INTEGER,
    end_at       INTEGER NOT NULL,
    duration_ms  INTEGER NOT NULL,
    billed_secs  INTEGER NOT NULL,
    cost         TEXT,
    price        TEXT,
    currency     TEXT
);
CREATE INDEX calls_tenant ON calls (tenant, id);
"#,
    // Receipt matching by certain readings: `carrier_ids` keys name their base (`d:` decimal,
    // `h:` hex, `t:` text) and say whether the reading was certain; receipts whose only matches
    // are uncertain wait as pending; each carrier's learned id formats are kept. The rows of
    // the old keys are rebuilt by `receipts::rekey` right after this script.
    r#"
DROP TABLE carrier_ids;
CREATE TABLE carrier_ids (
    carrier    TEXT    NOT NULL,
    key        TEXT    NOT NULL,
    message_id INTEGER NOT NULL,
    idx        INTEGER NOT NULL,
    certain    INTEGER NOT NULL,
    PRIMARY KEY (carrier, key, message_id, idx)
) WITHOUT ROWID;
ALTER TABLE unmatched_receipts ADD COLUMN pending_since INTEGER;
CREATE INDEX unmatched_pending ON unmatched_receipts (pending_since)
    WHERE pending_since IS NOT NULL;
CREATE TABLE carrier_id_formats (
    carrier  TEXT PRIMARY KEY,
    response TEXT,
    receipt  TEXT
) WITHOUT ROWID;
"#,
    // Multipart MO parts held for reassembly, and partial inbound messages.
    r#"
CREATE TABLE mo_parts (
    carrier     TEXT    NOT NULL,
    source      BLOB    NOT NULL,
    dest        BLOB    NOT NULL,
    reference   INTEGER NOT NULL,
    total       INTEGER NOT NULL,
    seq         INTEGER NOT NULL,
    data_coding INTEGER NOT NULL,
    payload     BLOB    NOT NULL,
    source_ton  INTEGER NOT NULL,
    received_at INTEGER NOT NULL,
    PRIMARY KEY (carrier, source, dest, reference, total, seq)
) WITHOUT ROWID;
ALTER TABLE inbound ADD COLUMN partial TEXT;
"#,
    // Scheduled messages by due time: the scheduler loads the next ones as they come due
    // instead of holding every scheduled message in memory. Only `accepted` ones with a time
    // are in it, so it stays as small as what is still scheduled.
    r#"
CREATE INDEX messages_scheduled ON messages (scheduled_at, id)
    WHERE status = 'accepted' AND scheduled_at IS NOT NULL;
"#,
    // The event log by tenant, for event-stream replays (`Last-Event-ID`): without it a
    // replay filters the whole log after the id through joins. Every history row carries its
    // message's tenant (written with the row); existing rows get theirs here.
    r#"
ALTER TABLE history ADD COLUMN tenant TEXT;
UPDATE history SET tenant = CASE WHEN status = 'inbound'
    THEN (SELECT tenant FROM inbound WHERE id = history.message_id)
    ELSE (SELECT tenant FROM messages WHERE id = history.message_id) END;
CREATE INDEX history_tenant ON history (tenant, seq);
"#,
    // Messages submitted over a tenant's SMPP bind remember its system_id and the receipt it
    // asked for (`system_id bits`), which the receipt senders read with the message's events;
    // a part the tenant cut itself keeps its user data header, and a data_coding that says
    // more than the alphabet (message class) is kept to be sent as is.
    r#"
ALTER TABLE messages ADD COLUMN smpp TEXT;
ALTER TABLE messages ADD COLUMN udh BLOB;
ALTER TABLE messages ADD COLUMN data_coding INTEGER;
"#,
    // An email keeps its subject, HTML part and reply-to (JSON); its `encoding` is 'email'.
    r#"
ALTER TABLE messages ADD COLUMN email TEXT;
"#,
    // Flows: one message to a person over several channels. Each delivery is a message that
    // names its flow and step; running flows are read back at start.
    r#"
CREATE TABLE flows (
    id         INTEGER PRIMARY KEY,
    tenant     TEXT    NOT NULL,
    mode       TEXT    NOT NULL,
    steps      TEXT    NOT NULL,
    state      TEXT    NOT NULL,
    skipped    TEXT    NOT NULL,
    created_at INTEGER NOT NULL,
    updated_at INTEGER NOT NULL
);
CREATE INDEX flows_running ON flows (id) WHERE state = 'running';
ALTER TABLE messages ADD COLUMN flow_id INTEGER;
ALTER TABLE messages ADD COLUMN flow_step INTEGER;
CREATE INDEX messages_flow ON messages (flow_id, flow_step) WHERE flow_id IS NOT NULL;
"#,
    // A chat message (RCS, WhatsApp) keeps its channel and template (JSON); its `encoding` is
    // the channel's name.
    r#"
ALTER TABLE messages ADD COLUMN chat TEXT;
"#,
    // A recipient's history with a tenant (what a `smart` flow orders its steps by): the
    // newest messages to an address, walked backwards from the index's end.
    r#"
CREATE INDEX messages_recipient ON messages (tenant, to_addr, id);
"#,
    // Analytics rollups (see `crate::domain::analytics`), and when each message was sent
    // (what sent → delivered latencies are measured from).
    r#"
ALTER TABLE messages ADD COLUMN sent_at INTEGER;
CREATE TABLE message_rollups (
    res             INTEGER NOT NULL,
    bucket          INTEGER NOT NULL,
    tenant          TEXT    NOT NULL,
    channel         TEXT    NOT NULL,
    carrier         TEXT    NOT NULL,
    country         TEXT    NOT NULL,
    sender          TEXT    NOT NULL,
    batch           TEXT    NOT NULL,
    n_accepted      INTEGER NOT NULL DEFAULT 0,
    n_sent          INTEGER NOT NULL DEFAULT 0,
    n_delivered     INTEGER NOT NULL DEFAULT 0,
    n_read          INTEGER NOT NULL DEFAULT 0,
    n_undeliverable INTEGER NOT NULL DEFAULT 0,
    n_expired       INTEGER NOT NULL DEFAULT 0,
    n_rejected      INTEGER NOT NULL DEFAULT 0,
    n_failed        INTEGER NOT NULL DEFAULT 0,
    n_cancelled     INTEGER NOT NULL DEFAULT 0,
    price_nanos     INTEGER NOT NULL DEFAULT 0,
    lat_sent        BLOB,
    lat_delivered   BLOB,
    lat_total       BLOB,
    PRIMARY KEY (res, bucket, tenant, channel, carrier, country, sender, batch)
) WITHOUT ROWID;
CREATE TABLE call_rollups (
    res         INTEGER NOT NULL,
    bucket      INTEGER NOT NULL,
    tenant      TEXT    NOT NULL,
    carrier     TEXT    NOT NULL,
    calls       INTEGER NOT NULL DEFAULT 0,
    n_answered  INTEGER NOT NULL DEFAULT 0,
    n_busy      INTEGER NOT NULL DEFAULT 0,
    n_no_answer INTEGER NOT NULL DEFAULT 0,
    n_cancelled INTEGER NOT NULL DEFAULT 0,
    n_rejected  INTEGER NOT NULL DEFAULT 0,
    n_failed    INTEGER NOT NULL DEFAULT 0,
    duration_ms INTEGER NOT NULL DEFAULT 0,
    billed_secs INTEGER NOT NULL DEFAULT 0,
    cost_nanos  INTEGER NOT NULL DEFAULT 0,
    price_nanos INTEGER NOT NULL DEFAULT 0,
    lat_answer  BLOB,
    PRIMARY KEY (res, bucket, tenant, carrier)
) WITHOUT ROWID;
"#,
    // Inbound messages name their channel ('sms', or a chat channel's name); the chat ones
    // received lately are what the messaging windows are rebuilt from at start.
    r#"
ALTER TABLE inbound ADD COLUMN channel TEXT NOT NULL DEFAULT 'sms';
CREATE INDEX inbound_chat ON inbound (received_at) WHERE channel <> 'sms';
"#,
    // v17: contacts, each with an address per channel and consent per channel.
    r#"
CREATE TABLE contacts (
    id          INTEGER PRIMARY KEY,
    tenant      TEXT    NOT NULL,
    external_id TEXT,
    name        TEXT,
    phone       TEXT,
    email       TEXT,
    whatsapp    TEXT,
    telegram    TEXT,
    messenger   TEXT,
    rcs         TEXT,
    consent     TEXT    NOT NULL DEFAULT '{}',
    attributes  TEXT,
    created_at  INTEGER NOT NULL,
    updated_at  INTEGER NOT NULL
);
CREATE INDEX contacts_tenant ON contacts (tenant, id);
CREATE UNIQUE INDEX contacts_external ON contacts (tenant, external_id)
    WHERE external_id IS NOT NULL;
CREATE INDEX contacts_phone ON contacts (tenant, phone) WHERE phone IS NOT NULL;
CREATE INDEX contacts_email ON contacts (tenant, email) WHERE email IS NOT NULL;
CREATE INDEX contacts_whatsapp ON contacts (tenant, whatsapp) WHERE whatsapp IS NOT NULL;
CREATE INDEX contacts_telegram ON contacts (tenant, telegram) WHERE telegram IS NOT NULL;
CREATE INDEX contacts_messenger ON contacts (tenant, messenger) WHERE messenger IS NOT NULL;
CREATE INDEX contacts_rcs ON contacts (tenant, rcs) WHERE rcs IS NOT NULL;
"#,
    // v18: a binary inbound message keeps its data_coding (set exactly for binary ones) and its
    // user data header; a held MO part its IEs other than concatenation.
    r#"
ALTER TABLE inbound ADD COLUMN data_coding INTEGER;
ALTER TABLE inbound ADD COLUMN udh BLOB;
ALTER TABLE mo_parts ADD COLUMN udh BLOB;
"#,
    // v19: the dashboard's sessions, kept across restarts; the webhook outbox counted per
    // tenant and endpoint from an index.
    r#"
CREATE TABLE dashboard_sessions (
    id_hash    BLOB    PRIMARY KEY,
    key_hash   BLOB    NOT NULL,
    created_at INTEGER NOT NULL,
    seen_at    INTEGER NOT NULL,
    expires_at INTEGER NOT NULL
) WITHOUT ROWID;
CREATE INDEX dashboard_sessions_expiry ON dashboard_sessions (expires_at);
CREATE INDEX webhook_outbox_tenant ON webhook_outbox (tenant, url, dead);
"#,
    // v20: webhook endpoints' health as the node sending webhooks reports it.
    r#"
CREATE TABLE webhook_health (
    tenant       TEXT    NOT NULL,
    url          TEXT    NOT NULL,
    last_success INTEGER,
    last_failure INTEGER,
    last_error   TEXT,
    successes    INTEGER NOT NULL,
    failures     INTEGER NOT NULL,
    latency_us   INTEGER,
    updated_at   INTEGER NOT NULL,
    PRIMARY KEY (tenant, url)
);
CREATE INDEX webhook_health_updated ON webhook_health (updated_at);
"#,
    // v21: a chat inbound message keeps the platform's id for it, unique per account, so a
    // webhook the provider sends again is stored once.
    r#"
ALTER TABLE inbound ADD COLUMN provider_id TEXT;
CREATE UNIQUE INDEX inbound_provider_id ON inbound (carrier, provider_id)
    WHERE provider_id IS NOT NULL;
"#,
    // v22: the withdrawal of a message whose attempt had started when its flow's next step
    // withdrew it, for the node that owns it.
    r#"
ALTER TABLE messages ADD COLUMN withdrawn TEXT;
"#,
    // v23: the webhook outbox's due rows are read per tenant, each tenant's soonest first,
    // only for tenants with free webhook slots.
    r#"
CREATE INDEX webhook_outbox_tenant_due ON webhook_outbox (tenant, next_at) WHERE dead = 0;
DROP INDEX webhook_outbox_due;
"#,
    // v24: `messages_unfinished` with its statuses as equalities joined by OR instead of an
    // IN list. SQLite evaluates an IN list of more than two constants through a temporary
    // b-tree built at each execution, and a partial index's condition is evaluated at every
    // insert into `messages` and, for the old row and the new, at every status change: three
    // temporary b-trees per message, a sixth of the writer's work. The same rows are in it.
    r#"
DROP INDEX messages_unfinished;
CREATE INDEX messages_unfinished ON messages (id)
    WHERE status = 'accepted' OR status = 'queued' OR status = 'submitting';
"#,
    // v25: a batch's progress is counted over the range of its messages' ids, which the batch
    // row keeps (`first_id`, `last_id`; ids are made in order while the request is read), on
    // the table's own key: `messages_batch`, one more b-tree written at every insert of a
    // batch message, is dropped. Existing batches get their range from it first.
    r#"
ALTER TABLE batches ADD COLUMN first_id INTEGER;
ALTER TABLE batches ADD COLUMN last_id INTEGER;
UPDATE batches SET
    first_id = (SELECT min(id) FROM messages WHERE batch_id = batches.id),
    last_id = (SELECT max(id) FROM messages WHERE batch_id = batches.id);
DROP INDEX messages_batch;
"#,
];

/// The migration (0-based) after which [`super::receipts::rekey`] rebuilds the receipt-id keys.
const REKEY_AFTER: usize = 5;

/// Why the schema could not be brought up to date.
#[derive(Debug)]
pub(super) enum MigrateError {
    /// SQLite refused.
    Sqlite(rusqlite::Error),
    /// The file was written by a newer build; running on it could lose data.
    TooNew {
        /// The file's version.
        found: i64,
        /// The newest this build knows.
        known: i64,
    },
}

impl From<rusqlite::Error> for MigrateError {
    fn from(e: rusqlite::Error) -> Self {
        MigrateError::Sqlite(e)
    }
}

/// Settings for the connection that writes. WAL lets readers run while it commits;
/// `synchronous=FULL` (`fsync`) makes each commit durable (the WAL is fsynced before `COMMIT`
/// returns); `NORMAL` leaves the WAL to the OS between checkpoints: a crash of the process
/// loses nothing, a crash of the machine may lose the last commits.
pub(super) fn configure_writer(
    conn: &Connection,
    busy_timeout: Duration,
    fsync: bool,
) -> rusqlite::Result<String> {
    conn.busy_timeout(busy_timeout)?;
    let mode: String =
        conn.pragma_update_and_check(None, "journal_mode", "WAL", |row| row.get(0))?;
    conn.pragma_update(None, "synchronous", if fsync { "FULL" } else { "NORMAL" })?;
    // Temporary b-trees and statement journals (savepoints) stay in memory.
    conn.pragma_update(None, "temp_store", "MEMORY")?;
    // 16 MiB page cache (negative = KiB): enough for the hot index pages.
    conn.pragma_update(None, "cache_size", -16_384)?;
    // Checkpoints run on a thread of their own (`spawn_checkpointer`), five times a second,
    // beside the commits: a checkpoint on this connection would stop every commit behind it
    // while it copies and fsyncs (100–250 ms for 32 MiB of WAL with `synchronous=NORMAL`, where
    // nothing was synced before). Past 8,192 pages the writer copies the little that thread
    // left, so the WAL starts over (see `spawn_checkpointer`). The writer's own automatic
    // checkpoint past 32,768 pages (128 MiB of 4 KiB pages) is a fallback only; that much WAL
    // is what a recovery after a crash may read at most.
    conn.pragma_update(None, "wal_autocheckpoint", WAL_AUTOCHECKPOINT_PAGES)?;
    // Truncate the WAL back to 64 MiB after checkpoints so the file does not stay at its peak.
    conn.pragma_update(None, "journal_size_limit", 64 * 1024 * 1024)?;
    conn.set_prepared_statement_cache_capacity(64);
    plan_once(conn)?;
    Ok(mode)
}

/// Plans each statement once, whatever its parameters. Without this, SQLite plans `LIMIT ?n`
/// with the value bound at preparation and marks the statement to be prepared again whenever
/// `?n` is bound anew — that is, at every execution of a cached statement: re-parsing and
/// re-planning cost 14 % of the gateway's CPU while it sent webhooks. No query here depends on
/// a bound value for its plan (no `LIKE ?`, no `sqlite_stat4`).
fn plan_once(conn: &Connection) -> rusqlite::Result<()> {
    conn.set_db_config(
        rusqlite::config::DbConfig::SQLITE_DBCONFIG_ENABLE_QPSG,
        true,
    )?;
    Ok(())
}

/// Settings for a reading connection: same timeout, and refuses writes by construction.
pub(super) fn configure_reader(conn: &Connection, busy_timeout: Duration) -> rusqlite::Result<()> {
    conn.busy_timeout(busy_timeout)?;
    conn.pragma_update(None, "query_only", true)?;
    conn.pragma_update(None, "temp_store", "MEMORY")?;
    conn.set_prepared_statement_cache_capacity(32);
    plan_once(conn)
}

/// Applies the missing migrations in one transaction. Returns the schema version now in force.
pub(super) fn migrate(conn: &mut Connection) -> Result<i64, MigrateError> {
    let known = MIGRATIONS.len() as i64;
    let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
    let found: i64 = tx.pragma_query_value(None, "user_version", |row| row.get(0))?;
    if found > known {
        return Err(MigrateError::TooNew { found, known });
    }
    for (i, sql) in MIGRATIONS
        .iter()
        .enumerate()
        .skip(usize::try_from(found).unwrap_or(0))
    {
        tx.execute_batch(sql)?;
        if i == REKEY_AFTER {
            super::receipts::rekey(&tx)?;
        }
    }
    if found != known {
        tx.pragma_update(None, "user_version", known)?;
    }
    tx.commit()?;
    Ok(known)
}
