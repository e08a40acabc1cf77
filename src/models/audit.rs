//! `audit_log`: who changed what, when. A row is written in the same transaction as the change
//! it describes, so the log and the data cannot disagree.

use chrono::NaiveDateTime;
use diesel::prelude::*;

use crate::db::DbConnection;
use crate::db::schema::audit_log;
use crate::domain::{AuditEntryId, UserId};

/// A row of `audit_log`.
#[derive(Debug, Clone, Queryable, Selectable)]
#[diesel(table_name = audit_log)]
pub struct AuditEntry {
    pub id: AuditEntryId,
    pub created_at: NaiveDateTime,
    pub actor_id: Option<UserId>,
    pub actor: String,
    pub action: String,
    pub object_type: String,
    pub object_id: Option<String>,
    pub object_repr: String,
    /// A JSON object `{"field": [old, new], …}`, or `{}`.
    pub changes: String,
    pub ip: Option<String>,
}

/// Who made a change: a logged-in user, or a command run on the server.
#[derive(Debug, Clone)]
pub struct Actor {
    pub id: Option<UserId>,
    pub name: String,
    pub ip: Option<String>,
}

impl Actor {
    /// A change made from the command line (`createsuperuser`, `changepassword`, first start).
    pub fn command_line() -> Self {
        Self { id: None, name: "command line".to_owned(), ip: None }
    }

    /// A change the scheduler made by itself: a resume at the time an operator set, a pause
    /// after failures in a row.
    pub fn scheduler() -> Self {
        Self { id: None, name: "scheduler".to_owned(), ip: None }
    }
}

/// An entry to write.
#[derive(Debug, Clone)]
pub struct NewAuditEntry<'a> {
    pub actor: &'a Actor,
    pub action: &'a str,
    pub object_type: &'a str,
    pub object_id: Option<String>,
    pub object_repr: &'a str,
    pub changes: serde_json::Value,
}

pub fn insert(conn: &mut DbConnection, entry: &NewAuditEntry<'_>) -> QueryResult<usize> {
    diesel::insert_into(audit_log::table)
        .values((
            audit_log::created_at.eq(crate::db::now()),
            audit_log::actor_id.eq(entry.actor.id),
            audit_log::actor.eq(&entry.actor.name),
            audit_log::action.eq(entry.action),
            audit_log::object_type.eq(entry.object_type),
            audit_log::object_id.eq(entry.object_id.as_deref()),
            audit_log::object_repr.eq(entry.object_repr),
            audit_log::changes.eq(entry.changes.to_string()),
            audit_log::ip.eq(entry.actor.ip.as_deref()),
        ))
        .execute(conn)
}

/// What the audit page can narrow the log to.
#[derive(Debug, Clone, Default)]
pub struct AuditFilter {
    pub actor: Option<String>,
    pub object_type: Option<String>,
    pub object_id: Option<String>,
}

/// Newest first, `limit` entries older than the entry `before` (keyset paging: stable while new
/// entries arrive, and as fast on the last page as on the first).
pub fn page(
    conn: &mut DbConnection,
    filter: &AuditFilter,
    before: Option<AuditEntryId>,
    limit: i64,
) -> QueryResult<Vec<AuditEntry>> {
    let mut query = audit_log::table.select(AuditEntry::as_select()).into_boxed();
    if let Some(actor) = &filter.actor {
        query = query.filter(audit_log::actor.eq(actor.clone()));
    }
    if let Some(object_type) = &filter.object_type {
        query = query.filter(audit_log::object_type.eq(object_type.clone()));
    }
    if let Some(object_id) = &filter.object_id {
        query = query.filter(audit_log::object_id.eq(object_id.clone()));
    }
    if let Some(before) = before {
        query = query.filter(audit_log::id.lt(before));
    }
    query.order(audit_log::id.desc()).limit(limit).load(conn)
}

/// One changed field of an audit entry, for display.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FieldChange {
    pub field: String,
    pub old: String,
    pub new: String,
}

impl AuditEntry {
    /// The changed fields, in the order stored. Values are shown as plain text; a missing old
    /// value (a creation) shows as `—`.
    pub fn change_list(&self) -> Vec<FieldChange> {
        let Ok(serde_json::Value::Object(map)) = serde_json::from_str(&self.changes) else {
            return Vec::new();
        };
        let show = |value: Option<&serde_json::Value>| match value {
            None | Some(serde_json::Value::Null) => "—".to_owned(),
            Some(serde_json::Value::String(text)) => text.clone(),
            Some(other) => other.to_string(),
        };
        map.iter()
            .map(|(field, pair)| FieldChange {
                field: field.clone(),
                old: show(pair.get(0)),
                new: show(pair.get(1)),
            })
            .collect()
    }
}
