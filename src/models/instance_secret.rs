//! `instance_secrets`: secrets one installation generates once and every process shares (the
//! session cookie key when `ISINBEAT_SECRET_KEY` is not set).

use diesel::prelude::*;
use diesel::result::{DatabaseErrorKind, Error};

use crate::db::DbConnection;
use crate::db::schema::instance_secrets;

/// Returns the secret called `name`, storing `generate()` first if there is none. When two
/// processes start at once, both read the value the first one stored.
pub fn get_or_create(
    conn: &mut DbConnection,
    name: &str,
    generate: impl FnOnce() -> String,
) -> QueryResult<String> {
    if let Some(value) = find(conn, name)? {
        return Ok(value);
    }
    let inserted = diesel::insert_into(instance_secrets::table)
        .values((
            instance_secrets::name.eq(name),
            instance_secrets::value.eq(generate()),
            instance_secrets::created_at.eq(crate::db::now()),
        ))
        .execute(conn);
    match inserted {
        Ok(_) | Err(Error::DatabaseError(DatabaseErrorKind::UniqueViolation, _)) => {
            find(conn, name)?.ok_or(Error::NotFound)
        }
        Err(other) => Err(other),
    }
}

fn find(conn: &mut DbConnection, name: &str) -> QueryResult<Option<String>> {
    instance_secrets::table.find(name).select(instance_secrets::value).first(conn).optional()
}
