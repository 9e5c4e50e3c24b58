//! The store suite: one set of tests every store backend passes, written against the
//! [`Store`] and [`EventStore`] traits and the `domain` types only.
//!
//! # Layout
//! - [`fixtures`]: the messages, updates and helpers the tests share.
//! - One file per area: [`messages`] (insert, get, list, tenants, restarts, failed requests),
//!   [`updates`] (statuses, segments, voice call outcomes, replacements), [`receipts`] (matching
//!   receipts to segments, reads), [`recovery`] (unfinished and scheduled messages),
//!   [`inbound`] (MO messages, held parts, keywords), [`events`] (the event log, the webhook
//!   outbox, cursors, opt-outs), [`calls`] (the SIP proxy's call records), [`contacts`]
//!   (contacts, their upserts by external id), [`tenancy`] (idempotency keys, batches,
//!   quotas), [`flows`] (flows and a recipient's history), [`sessions`] (the dashboard's
//!   sessions),
//!   [`rollups`] (the analytics rollups written with the changes they count).
//!
//! # Running it against a backend
//! A backend provides a [`Harness`] (a fresh, empty store of its own, which it can close and open
//! again) and an `async fn` that makes one, then adds one line at the end of this file:
//! ```text
//! store_suite!(sqlite, crate::store::sqlite::harness::SqliteHarness::open);
//! ```
//! [`store_suite!`] turns every test into a `#[tokio::test]` in a module named for the backend
//! (`store::suite::sqlite::receipts::…`), each with a store of its own.
//!
//! A test is an `async fn(&mut dyn Harness)` in its area's file, listed in [`store_suite!`]. One
//! left out of the list is used nowhere, which the `dead_code` lint reports.
//!
//! The suite is `#[cfg(test)]`: every backend lives in this crate, so its unit tests can run it.
//! A backend in another crate would need it behind a feature instead.
//!
//! What only one backend has (SQLite's migrations, query plans, group commit counters,
//! retention, which its options configure) is tested next to that backend.

pub(crate) mod calls;
pub(crate) mod contacts;
pub(crate) mod events;
pub(crate) mod fixtures;
pub(crate) mod flows;
pub(crate) mod inbound;
pub(crate) mod messages;
pub(crate) mod receipts;
pub(crate) mod recovery;
pub(crate) mod rollups;
pub(crate) mod sessions;
pub(crate) mod tenancy;
pub(crate) mod updates;

use std::sync::Arc;

use futures::future::BoxFuture;

use super::events::EventStore;
use super::Store;

/// A store under test: both traits on one object, as every backend implements them.
pub(crate) trait Backend: Store + EventStore {}

impl<T: Store + EventStore> Backend for T {}

/// One test's store, and how to restart it.
pub(crate) trait Harness: Send {
    /// The store as it is now (a new one after [`Harness::reopen`]).
    fn store(&self) -> Arc<dyn Backend>;

    /// Closes the store, waiting until what it acknowledged is durable, and opens the same
    /// database again, as a restart of the gateway does. Stores handed out before are closed.
    fn reopen(&mut self) -> BoxFuture<'_, ()>;
}

/// Runs every test of the suite against one backend: `store_suite!(name, open)` makes a module
/// `name` with one `#[tokio::test]` per test, each calling `open().await` (a path from the crate
/// root to an `async fn() -> impl Harness`) for a fresh store.
macro_rules! store_suite {
    ($backend:ident, $open:path) => {
        $crate::store::suite::store_suite!(@tests $backend, $open,
            messages {
                insert_and_get_round_trip,
                many_messages_in_one_insert_keep_every_field,
                tenants_never_see_each_other,
                list_filters_and_pages_newest_first,
                acknowledged_writes_survive_a_restart,
                a_failing_request_fails_alone,
                concurrent_inserts_all_commit,
                an_email_keeps_its_subject_html_and_reply_to,
                a_chat_message_keeps_its_channel_template_and_tag,
                a_binary_sms_keeps_every_octet,
                a_batch_is_stored_as_its_messages_whole,
            }
            updates {
                statuses_never_move_backwards,
                multi_segment_message_is_delivered_when_every_segment_is,
                one_undeliverable_segment_makes_the_message_undeliverable,
                rejected_segment_rejects_the_message,
                a_voice_call_keeps_its_spec_and_outcome,
                replace_changes_a_scheduled_message_while_it_is_accepted,
                a_withdrawal_and_the_owners_claims_are_decided_in_the_store,
            }
            receipts {
                receipt_ids_match_across_bases_case_and_zeros,
                a_read_receipt_follows_delivered_and_nothing_moves_it_back,
                receipt_right_after_its_segment_in_one_batch_matches,
                unmatched_receipts_are_kept_counted_and_matched_late,
                intermediate_receipts_change_nothing,
                sequential_decimal_ids_never_take_each_others_receipts,
                learned_decimal_matches_at_once_and_survives_a_restart,
                a_pending_receipt_is_decided_after_a_restart,
                hex_responses_and_decimal_receipts_are_learned,
            }
            recovery {
                unfinished_lists_only_messages_still_to_hand_over,
                unfinished_pages_stop_at_the_last_id_of_the_previous_run,
                unfinished_carries_segment_states_for_resubmission,
                scheduled_lists_accepted_scheduled_sms_by_due_time,
            }
            inbound {
                inbound_messages_are_stored_and_share_the_id_space,
                mo_parts_are_held_until_the_commit_that_stores_their_message,
                inbound_messages_page_newest_first_per_tenant,
                keywords_edit_the_opt_out_list_in_the_same_commit,
                chat_inbound_keeps_its_channel_and_opts_out_of_that_channel_only,
                a_chat_message_sent_again_is_stored_once_per_account,
            }
            events {
                the_history_is_an_ordered_per_tenant_event_log,
                final_events_skip_the_rest_and_say_how_far_they_read,
                outbox_rows_retry_die_and_replay,
                outbox_rows_are_retried_deferred_and_done,
                outbox_rows_are_counted_per_tenant_and_endpoint,
                outbox_rows_are_read_within_each_tenants_room,
                named_cursors_only_move_forward_each_on_its_own,
                opt_outs_are_added_removed_and_paged_per_tenant,
                endpoint_health_reports_add_up_per_endpoint,
                opt_outs_list_by_kind_of_sender,
            }
            calls {
                call_records_are_listed_newest_first_per_tenant,
            }
            contacts {
                contacts_are_created_changed_deleted_and_kept_per_tenant,
                contacts_list_newest_first_by_address_and_external_id,
            }
            flows {
                a_flow_commits_with_its_first_delivery_and_follows_its_steps,
                a_later_step_is_a_delivery_of_the_same_flow,
                a_recipients_history_is_per_tenant_and_address_newest_first,
            }
            rollups {
                rollups_count_each_status_reached_once,
                an_answer_of_too_many_groups_is_refused,
                a_failed_request_adds_nothing_to_the_rollups,
                call_rollups_sum_the_detail_records,
            }
            sessions {
                sessions_are_opened_seen_closed_and_survive_a_restart,
                a_login_deletes_expired_sessions_and_is_refused_when_too_many_are_open,
            }
            tenancy {
                request_records_commit_with_their_messages,
                an_idempotency_key_past_24_hours_can_be_used_again_even_if_kept,
            }
        );
    };
    (@tests $backend:ident, $open:path, $($area:ident { $($test:ident),* $(,)? })*) => {
        mod $backend {
            $(
                mod $area {
                    $(
                        #[tokio::test]
                        async fn $test() {
                            let mut harness = $open().await;
                            $crate::store::suite::$area::$test(&mut harness).await;
                        }
                    )*
                }
            )*
        }
    };
}

pub(crate) use store_suite;

// The backends.
store_suite!(sqlite, crate::store::sqlite::harness::SqliteHarness::open);
store_suite!(
    postgres,
    crate::store::postgres::harness::PostgresHarness::open
);
