//! Authentication and accounts: password hashing, the database-backed session store, CSRF
//! tokens, the login throttle, and the account operations that the users admin and the command
//! line share.

pub mod accounts;
pub mod api_tokens;
pub mod csrf;
pub mod login;
pub mod password;
pub mod session_store;

use crate::db::DbConnection;
use crate::domain::{Role, UserId};
use crate::models::user;

/// The logged-in user of a request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CurrentUser {
    pub id: UserId,
    pub username: String,
    pub role: Role,
}

impl CurrentUser {
    /// Whether this user has at least `role`.
    pub fn can(&self, role: Role) -> bool {
        self.role.allows(role)
    }
}

/// The user a session points at, if it still exists and is active. Read on every request, so a
/// role change or deactivation applies at once.
pub fn load_current_user(conn: &mut DbConnection, id: UserId) -> diesel::QueryResult<Option<CurrentUser>> {
    Ok(user::find(conn, id)?.filter(|user| user.is_active).map(|user| CurrentUser {
        id: user.id,
        username: user.username,
        role: user.role,
    }))
}
