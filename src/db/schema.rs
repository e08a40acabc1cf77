// @generated automatically by Diesel CLI.

pub mod sql_types {
    #[derive(diesel::query_builder::QueryId, Clone, diesel::sql_types::SqlType)]
    #[diesel(postgres_type(name = "tsvector", schema = "pg_catalog"))]
    pub struct Tsvector;
}

diesel::table! {
    alert_deliveries (id) {
        id -> Int8,
        schedule_id -> Int8,
        run_id -> Nullable<Int8>,
        kind -> Text,
        url -> Text,
        message -> Text,
        status -> Text,
        attempts -> Int4,
        response_status -> Nullable<Int4>,
        error -> Nullable<Text>,
        created_at -> Timestamp,
        sent_at -> Nullable<Timestamp>,
        details -> Nullable<Text>,
    }
}

diesel::table! {
    api_tokens (id) {
        id -> Int8,
        user_id -> Int8,
        name -> Text,
        prefix -> Text,
        token_hash -> Text,
        created_at -> Timestamp,
        last_used_at -> Nullable<Timestamp>,
        revoked_at -> Nullable<Timestamp>,
        expires_at -> Nullable<Timestamp>,
    }
}

diesel::table! {
    audit_log (id) {
        id -> Int8,
        created_at -> Timestamp,
        actor_id -> Nullable<Int8>,
        actor -> Text,
        action -> Text,
        object_type -> Text,
        object_id -> Nullable<Text>,
        object_repr -> Text,
        changes -> Text,
        ip -> Nullable<Text>,
    }
}

diesel::table! {
    instance_secrets (name) {
        name -> Text,
        value -> Text,
        created_at -> Timestamp,
    }
}

diesel::table! {
    isin_changes (run_id, isin, generation) {
        run_id -> Int8,
        isin -> Text,
        source_id -> Int8,
        kind -> Text,
        old_values -> Nullable<Text>,
        new_values -> Nullable<Text>,
        generation -> Int8,
    }
}

diesel::table! {
    isin_codes (code, isin) {
        code -> Text,
        isin -> Text,
    }
}

diesel::table! {
    isin_leis (lei, isin) {
        lei -> Text,
        isin -> Text,
    }
}

diesel::table! {
    isin_name_words (word) {
        word -> Text,
    }
}

diesel::table! {
    use diesel::sql_types::*;
    use super::sql_types::Tsvector;

    isin_names (isin) {
        isin -> Text,
        names -> Text,
        words -> Nullable<Tsvector>,
    }
}

diesel::table! {
    isin_records (source_id, isin, since_gen) {
        source_id -> Int8,
        isin -> Text,
        since_gen -> Int8,
        until_gen -> Nullable<Int8>,
        active -> Bool,
        lei -> Nullable<Text>,
        name -> Nullable<Text>,
        cfi -> Nullable<Text>,
        currency -> Nullable<Text>,
        listings -> Nullable<Text>,
        first_seen_run_id -> Nullable<Int8>,
        first_seen_at -> Timestamp,
        last_seen_at -> Nullable<Timestamp>,
    }
}

diesel::table! {
    isin_stats (source_id, country) {
        source_id -> Int8,
        country -> Text,
        active -> Int8,
        inactive -> Int8,
    }
}

diesel::table! {
    isins (isin) {
        isin -> Text,
        first_seen_at -> Timestamp,
        first_seen_run_id -> Nullable<Int8>,
    }
}

diesel::table! {
    login_failures (id) {
        id -> Int8,
        username -> Text,
        ip -> Text,
        failed_at -> Timestamp,
    }
}

diesel::table! {
    occurrence_day_changes (id) {
        id -> Int8,
        day -> Date,
        schedule_id -> Int8,
        occurrences -> Int8,
    }
}

diesel::table! {
    occurrence_day_counts (day, schedule_id) {
        day -> Date,
        schedule_id -> Int8,
        occurrences -> Int8,
    }
}

diesel::table! {
    pools (name) {
        name -> Text,
        slots -> Int4,
        description -> Text,
        created_at -> Timestamp,
        updated_at -> Timestamp,
    }
}

diesel::table! {
    publications (seq) {
        seq -> Int8,
        source_id -> Int8,
        run_id -> Int8,
        generation -> Int8,
        published_at -> Timestamp,
        added -> Int8,
        removed -> Int8,
        changed -> Int8,
    }
}

diesel::table! {
    reconciliation_builds (id) {
        id -> Int8,
        seq -> Int8,
        run_id -> Nullable<Int8>,
        started_at -> Timestamp,
        finished_at -> Nullable<Timestamp>,
    }
}

diesel::table! {
    reconciliation_counts (build_id, rule) {
        build_id -> Int8,
        rule -> Text,
        isins -> Int8,
    }
}

diesel::table! {
    reconciliation_coverage (build_id, country) {
        build_id -> Int8,
        country -> Text,
        isins -> Int8,
        with_lei -> Int8,
    }
}

diesel::table! {
    reconciliation_items (build_id, rule, isin, position) {
        build_id -> Int8,
        rule -> Text,
        isin -> Text,
        position -> Int4,
        left_source_id -> Int8,
        left_value -> Nullable<Text>,
        left_run_id -> Nullable<Int8>,
        right_source_id -> Nullable<Int8>,
        right_value -> Nullable<Text>,
        right_run_id -> Nullable<Int8>,
    }
}

diesel::table! {
    reconciliation_state (id) {
        id -> Int4,
        build_id -> Nullable<Int8>,
        seq -> Int8,
    }
}

diesel::table! {
    run_day_changes (id) {
        id -> Int8,
        day -> Date,
        status -> Text,
        task_kind -> Text,
        runs -> Int8,
    }
}

diesel::table! {
    run_day_counts (day, status, task_kind) {
        day -> Date,
        status -> Text,
        task_kind -> Text,
        runs -> Int8,
    }
}

diesel::table! {
    runs (id) {
        id -> Int8,
        schedule_id -> Nullable<Int8>,
        schedule_name -> Text,
        task_kind -> Text,
        params -> Text,
        scheduled_for -> Nullable<Timestamp>,
        trigger -> Text,
        triggered_by -> Nullable<Int8>,
        status -> Text,
        attempt -> Int4,
        not_before -> Timestamp,
        cancel_requested -> Bool,
        worker -> Nullable<Text>,
        heartbeat_at -> Nullable<Timestamp>,
        started_at -> Nullable<Timestamp>,
        finished_at -> Nullable<Timestamp>,
        error -> Nullable<Text>,
        log -> Nullable<Text>,
        stats -> Nullable<Text>,
        created_at -> Timestamp,
        queue -> Text,
        note -> Nullable<Text>,
        duration_alert_minutes -> Nullable<Int4>,
        duration_alerted_at -> Nullable<Timestamp>,
    }
}

diesel::table! {
    schedule_alerts (schedule_id) {
        schedule_id -> Int8,
        webhook_url -> Nullable<Text>,
        no_success_seconds -> Nullable<Int8>,
        max_run_minutes -> Nullable<Int4>,
        deadline -> Nullable<Time>,
        isins_changed -> Bool,
    }
}

diesel::table! {
    schedule_skips (id) {
        id -> Int8,
        schedule_id -> Int8,
        occurs_at -> Timestamp,
        note -> Text,
        created_by -> Text,
        created_at -> Timestamp,
    }
}

diesel::table! {
    schedule_state (schedule_id) {
        schedule_id -> Int8,
        next_fire_at -> Nullable<Timestamp>,
        spec_fingerprint -> Text,
        last_fire_at -> Nullable<Timestamp>,
        version -> Int8,
        no_success_alerted_at -> Nullable<Timestamp>,
        paused_by -> Nullable<Text>,
        paused_at -> Nullable<Timestamp>,
        paused_reason -> Nullable<Text>,
        resume_at -> Nullable<Timestamp>,
        deadline_missed_on -> Nullable<Date>,
        deadline_alerted_at -> Nullable<Timestamp>,
    }
}

diesel::table! {
    schedules (id) {
        id -> Int8,
        name -> Text,
        description -> Text,
        task_kind -> Text,
        params -> Text,
        spec_kind -> Text,
        cron_expr -> Nullable<Text>,
        timezone -> Text,
        interval_seconds -> Nullable<Int8>,
        once_at -> Nullable<Timestamp>,
        start_at -> Nullable<Timestamp>,
        end_at -> Nullable<Timestamp>,
        enabled -> Bool,
        misfire_policy -> Text,
        misfire_grace_seconds -> Int8,
        overlap_policy -> Text,
        jitter_seconds -> Int8,
        max_attempts -> Int4,
        retry_backoff_seconds -> Int8,
        retry_backoff_max_seconds -> Int8,
        timeout_seconds -> Nullable<Int8>,
        expires_seconds -> Nullable<Int8>,
        keep_succeeded -> Int4,
        keep_failed -> Int4,
        created_by -> Nullable<Int8>,
        created_at -> Timestamp,
        updated_at -> Timestamp,
        queue -> Text,
        pause_after_failures -> Nullable<Int4>,
        pool -> Nullable<Text>,
    }
}

diesel::table! {
    sessions (key_hash) {
        key_hash -> Text,
        user_id -> Nullable<Int8>,
        state -> Text,
        created_at -> Timestamp,
        expires_at -> Timestamp,
    }
}

diesel::table! {
    source_files (id) {
        id -> Int8,
        source_id -> Int8,
        run_id -> Int8,
        name -> Text,
        kind -> Text,
        publication_date -> Date,
        bytes -> Int8,
        md5 -> Nullable<Text>,
        sha256 -> Text,
        url -> Text,
        applied_at -> Timestamp,
    }
}

diesel::table! {
    sources (id) {
        id -> Int8,
        name -> Text,
        url -> Text,
        format -> Text,
        options -> Text,
        enabled -> Bool,
        max_shrink_percent -> Int4,
        generation -> Int8,
        active_isins -> Int8,
        inactive_isins -> Int8,
        etag -> Nullable<Text>,
        last_modified -> Nullable<Text>,
        content_sha256 -> Nullable<Text>,
        last_import_run_id -> Nullable<Int8>,
        last_imported_at -> Nullable<Timestamp>,
        import_run_id -> Nullable<Int8>,
        created_by -> Nullable<Int8>,
        created_at -> Timestamp,
        updated_at -> Timestamp,
        locator -> Text,
        freshness -> Text,
        published_at -> Nullable<Timestamp>,
        stale_since -> Nullable<Timestamp>,
        stale_alerted_at -> Nullable<Timestamp>,
        quality_gates -> Text,
        quarantined_run_id -> Nullable<Int8>,
    }
}

diesel::table! {
    users (id) {
        id -> Int8,
        username -> Text,
        password_hash -> Text,
        role -> Text,
        is_active -> Bool,
        created_at -> Timestamp,
        updated_at -> Timestamp,
        last_login_at -> Nullable<Timestamp>,
        password_changed_at -> Timestamp,
    }
}

diesel::table! {
    workers (name) {
        name -> Text,
        hostname -> Text,
        pid -> Int8,
        queue -> Text,
        concurrency -> Int4,
        version -> Text,
        started_at -> Timestamp,
        heartbeat_at -> Timestamp,
        stopped_at -> Nullable<Timestamp>,
    }
}

diesel::joinable!(alert_deliveries -> runs (run_id));
diesel::joinable!(alert_deliveries -> schedules (schedule_id));
diesel::joinable!(api_tokens -> users (user_id));
diesel::joinable!(audit_log -> users (actor_id));
diesel::joinable!(runs -> schedules (schedule_id));
diesel::joinable!(runs -> users (triggered_by));
diesel::joinable!(schedule_alerts -> schedules (schedule_id));
diesel::joinable!(schedule_skips -> schedules (schedule_id));
diesel::joinable!(schedule_state -> schedules (schedule_id));
diesel::joinable!(schedules -> pools (pool));
diesel::joinable!(schedules -> users (created_by));
diesel::joinable!(sessions -> users (user_id));
diesel::joinable!(source_files -> sources (source_id));
diesel::joinable!(sources -> users (created_by));

diesel::allow_tables_to_appear_in_same_query!(
    alert_deliveries,
    api_tokens,
    audit_log,
    instance_secrets,
    isin_changes,
    isin_codes,
    isin_leis,
    isin_name_words,
    isin_names,
    isin_records,
    isin_stats,
    isins,
    login_failures,
    occurrence_day_changes,
    occurrence_day_counts,
    pools,
    publications,
    reconciliation_builds,
    reconciliation_counts,
    reconciliation_coverage,
    reconciliation_items,
    reconciliation_state,
    run_day_changes,
    run_day_counts,
    runs,
    schedule_alerts,
    schedule_skips,
    schedule_state,
    schedules,
    sessions,
    source_files,
    sources,
    users,
    workers,
);
