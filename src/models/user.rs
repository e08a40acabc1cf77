//! `users`: who may log in, with which role.

use chrono::NaiveDateTime;
use diesel::prelude::*;

use crate::db::DbConnection;
use crate::db::schema::users;
use crate::domain::{Role, UserId, Username};

/// A row of `users`.
#[derive(Debug, Clone, Queryable, Selectable)]
#[diesel(table_name = users)]
pub struct User {
    pub id: UserId,
    pub username: String,
    pub password_hash: String,
    #[diesel(deserialize_as = String)]
    pub role: Role,
    pub is_active: bool,
    pub created_at: NaiveDateTime,
    pub updated_at: NaiveDateTime,
    pub last_login_at: Option<NaiveDateTime>,
    pub password_changed_at: NaiveDateTime,
}

/// A user to create. The password is already hashed.
#[derive(Debug, Insertable)]
#[diesel(table_name = users)]
pub struct NewUser<'a> {
    pub username: &'a str,
    pub password_hash: &'a str,
    pub role: &'a str,
    pub is_active: bool,
    pub created_at: NaiveDateTime,
    pub updated_at: NaiveDateTime,
    pub password_changed_at: NaiveDateTime,
}

impl<'a> NewUser<'a> {
    /// An active user created now.
    pub fn new(username: &'a Username, password_hash: &'a str, role: Role) -> Self {
        let now = crate::db::now();
        Self {
            username: username.as_str(),
            password_hash,
            role: role.as_str(),
            is_active: true,
            created_at: now,
            updated_at: now,
            password_changed_at: now,
        }
    }
}

/// What the users admin may change on a user besides the password.
#[derive(Debug, AsChangeset)]
#[diesel(table_name = users)]
pub struct UserChanges<'a> {
    pub role: &'a str,
    pub is_active: bool,
    pub updated_at: NaiveDateTime,
}

pub fn find(conn: &mut DbConnection, id: UserId) -> QueryResult<Option<User>> {
    users::table.find(id.0).select(User::as_select()).first(conn).optional()
}

pub fn find_by_username(conn: &mut DbConnection, username: &Username) -> QueryResult<Option<User>> {
    users::table
        .filter(users::username.eq(username.as_str()))
        .select(User::as_select())
        .first(conn)
        .optional()
}

/// All users, by username. An installation has tens of users, not thousands.
pub fn list(conn: &mut DbConnection) -> QueryResult<Vec<User>> {
    users::table.order(users::username.asc()).select(User::as_select()).load(conn)
}

/// Creates a user and returns it. Fails with a unique violation when the username is taken.
pub fn insert(conn: &mut DbConnection, new: &NewUser<'_>) -> QueryResult<User> {
    diesel::insert_into(users::table).values(new).execute(conn)?;
    users::table.filter(users::username.eq(new.username)).select(User::as_select()).first(conn)
}

pub fn count(conn: &mut DbConnection) -> QueryResult<i64> {
    users::table.count().get_result(conn)
}

/// Users per role, active ones only.
pub fn count_active_by_role(conn: &mut DbConnection) -> QueryResult<Vec<(Role, i64)>> {
    let rows: Vec<(String, i64)> = users::table
        .filter(users::is_active.eq(true))
        .group_by(users::role)
        .select((users::role, diesel::dsl::count_star()))
        .load(conn)?;
    Ok(rows.into_iter().filter_map(|(role, n)| role.parse().ok().map(|role| (role, n))).collect())
}

pub fn count_active_admins(conn: &mut DbConnection) -> QueryResult<i64> {
    users::table
        .filter(users::is_active.eq(true))
        .filter(users::role.eq(Role::Admin.as_str()))
        .count()
        .get_result(conn)
}

/// Counts the active admins, locking their rows until the transaction ends so that no other
/// transaction can demote one of them meanwhile. Call inside `write_transaction`: on SQLite the
/// transaction's write lock already serialises writers; on PostgreSQL the rows are locked.
pub fn lock_active_admins(conn: &mut DbConnection) -> QueryResult<i64> {
    if let DbConnection::Postgresql(pg) = conn {
        diesel::sql_query("SELECT id FROM users WHERE role = 'admin' AND is_active FOR UPDATE")
            .execute(pg)?;
    }
    // After waiting for another transaction's locks, this statement sees what it committed.
    count_active_admins(conn)
}

pub fn update(conn: &mut DbConnection, id: UserId, changes: &UserChanges<'_>) -> QueryResult<usize> {
    diesel::update(users::table.find(id.0)).set(changes).execute(conn)
}

pub fn set_password_hash(conn: &mut DbConnection, id: UserId, hash: &str) -> QueryResult<usize> {
    let now = crate::db::now();
    diesel::update(users::table.find(id.0))
        .set((users::password_hash.eq(hash), users::password_changed_at.eq(now), users::updated_at.eq(now)))
        .execute(conn)
}

pub fn record_login(conn: &mut DbConnection, id: UserId) -> QueryResult<usize> {
    diesel::update(users::table.find(id.0)).set(users::last_login_at.eq(crate::db::now())).execute(conn)
}
