//! Account operations shared by the users admin, "my account" and the command line. Each one
//! writes its change and its audit entry in one transaction. Passwords arrive hashed
//! ([`HashedPassword`]), so neither a connection nor the SQLite write lock waits on argon2.

use anyhow::Context;
use diesel::result::{DatabaseErrorKind, Error as DieselError};
use serde_json::json;

use crate::auth::password::{self, HashedPassword};
use crate::db::{DbConnection, write_transaction};
use crate::domain::{NewPassword, Role, UserId, Username};
use crate::models::audit::{self, Actor, NewAuditEntry};
use crate::models::user::{self, NewUser, User, UserChanges};
use crate::models::{api_token, login_failure, session};

/// Why an account operation did not happen.
#[derive(Debug, thiserror::Error)]
pub enum AccountError {
    #[error("A user with that username already exists.")]
    DuplicateUsername,
    #[error("There must be at least one active admin: make another user an admin first.")]
    LastAdmin,
    #[error("No such user.")]
    NotFound,
    #[error(transparent)]
    Internal(#[from] anyhow::Error),
}

impl From<DieselError> for AccountError {
    fn from(error: DieselError) -> Self {
        match error {
            DieselError::DatabaseError(DatabaseErrorKind::UniqueViolation, _) => Self::DuplicateUsername,
            DieselError::NotFound => Self::NotFound,
            other => Self::Internal(anyhow::Error::new(other).context("A database query failed")),
        }
    }
}

const OBJECT_USER: &str = "user";
/// The audit field that says how many API tokens a change revoked.
const FIELD_TOKENS: &str = "active API tokens";

/// Creates a user.
pub fn create_user(
    conn: &mut DbConnection,
    actor: &Actor,
    username: &Username,
    hash: &HashedPassword,
    role: Role,
) -> Result<User, AccountError> {
    write_transaction(conn, |conn| {
        if user::find_by_username(conn, username)?.is_some() {
            return Err(AccountError::DuplicateUsername);
        }
        let created = user::insert(conn, &NewUser::new(username, hash.as_str(), role))?;
        audit::insert(
            conn,
            &NewAuditEntry {
                actor,
                action: "create",
                object_type: OBJECT_USER,
                object_id: Some(created.id.to_string()),
                object_repr: &created.username,
                changes: json!({ "role": [null, role.as_str()], "is_active": [null, true] }),
            },
        )?;
        Ok(created)
    })
}

/// A user after [`update_user`], and how many of their API tokens it revoked.
#[derive(Debug)]
pub struct UserUpdated {
    pub user: User,
    pub tokens_revoked: usize,
}

/// Changes a user's role and whether the user is active. Deactivating ends the user's
/// sessions and revokes their API tokens (reactivating does not bring them back). The last
/// active admin can be neither demoted nor deactivated.
pub fn update_user(
    conn: &mut DbConnection,
    actor: &Actor,
    id: UserId,
    role: Role,
    is_active: bool,
) -> Result<UserUpdated, AccountError> {
    write_transaction(conn, |conn| {
        let before = user::find(conn, id)?.ok_or(AccountError::NotFound)?;
        let loses_admin =
            before.is_active && before.role == Role::Admin && (role != Role::Admin || !is_active);
        // Two admins demoting each other at once must not both see the other one still there.
        if loses_admin && user::lock_active_admins(conn)? <= 1 {
            return Err(AccountError::LastAdmin);
        }
        let mut changes = serde_json::Map::new();
        if before.role != role {
            changes.insert("role".into(), json!([before.role.as_str(), role.as_str()]));
        }
        if before.is_active != is_active {
            changes.insert("is_active".into(), json!([before.is_active, is_active]));
        }
        if changes.is_empty() {
            return Ok(UserUpdated { user: before, tokens_revoked: 0 });
        }
        let now = crate::db::now();
        user::update(conn, id, &UserChanges { role: role.as_str(), is_active, updated_at: now })?;
        let mut tokens_revoked = 0;
        if !is_active {
            session::delete_for_user(conn, id, None)?;
            tokens_revoked = api_token::revoke_all_of_user(conn, id, now)?;
            if tokens_revoked > 0 {
                changes.insert(FIELD_TOKENS.into(), json!([tokens_revoked, 0]));
            }
        }
        audit::insert(
            conn,
            &NewAuditEntry {
                actor,
                action: "update",
                object_type: OBJECT_USER,
                object_id: Some(id.to_string()),
                object_repr: &before.username,
                changes: serde_json::Value::Object(changes),
            },
        )?;
        let user = user::find(conn, id)?.ok_or(AccountError::NotFound)?;
        Ok(UserUpdated { user, tokens_revoked })
    })
}

/// What a password change is, for the audit log.
#[derive(Debug, Clone, Copy)]
pub enum PasswordChange {
    /// The user changed their own password.
    Own,
    /// An admin (or the command line) set it.
    Reset,
}

/// Sets a user's password and ends all of that user's sessions (the caller renews its own
/// session when the user changed their own password and stays logged in). Clears the user's
/// login failures so the new password works at once. A reset (by an admin or the command line:
/// the account may be compromised) also revokes the user's API tokens; a user changing their
/// own password keeps theirs. Returns how many tokens were revoked.
pub fn set_password(
    conn: &mut DbConnection,
    actor: &Actor,
    id: UserId,
    hash: &HashedPassword,
    kind: PasswordChange,
) -> Result<usize, AccountError> {
    write_transaction(conn, |conn| {
        let target = user::find(conn, id)?.ok_or(AccountError::NotFound)?;
        user::set_password_hash(conn, id, hash.as_str())?;
        session::delete_for_user(conn, id, None)?;
        login_failure::clear_username(conn, &target.username)?;
        let tokens_revoked = match kind {
            PasswordChange::Own => 0,
            PasswordChange::Reset => api_token::revoke_all_of_user(conn, id, crate::db::now())?,
        };
        let mut changes = json!({ "password": ["********", "********"] });
        if tokens_revoked > 0 {
            changes[FIELD_TOKENS] = json!([tokens_revoked, 0]);
        }
        audit::insert(
            conn,
            &NewAuditEntry {
                actor,
                action: match kind {
                    PasswordChange::Own => "change password",
                    PasswordChange::Reset => "reset password",
                },
                object_type: OBJECT_USER,
                object_id: Some(id.to_string()),
                object_repr: &target.username,
                changes,
            },
        )?;
        Ok(tokens_revoked)
    })
}

/// What the first start did about the `admin` user.
#[derive(Debug)]
pub enum FirstAdmin {
    /// Users exist already; nothing was done.
    Exists,
    /// `admin` was created with this password (given or generated).
    Created { password: String, generated: bool },
}

/// On an installation without any user, creates `admin` with `given` or a random password.
/// Safe when several processes start at once: only one creates it.
pub fn ensure_first_admin(conn: &mut DbConnection, given: Option<&str>) -> anyhow::Result<FirstAdmin> {
    if user::count(conn).context("Failed to count users")? > 0 {
        return Ok(FirstAdmin::Exists);
    }
    let username = Username::parse("admin").context("`admin` is a valid username")?;
    let (raw, generated) = match given {
        Some(given) => (given.to_owned(), false),
        None => (password::random_password(), true),
    };
    let new_password =
        NewPassword::parse(&raw, username.as_str()).context("ISINBEAT_ADMIN_PASSWORD is not accepted")?;
    let hash = HashedPassword::new(&new_password)?;
    match create_user(conn, &Actor::command_line(), &username, &hash, Role::Admin) {
        Ok(_) => Ok(FirstAdmin::Created { password: raw, generated }),
        Err(AccountError::DuplicateUsername) => Ok(FirstAdmin::Exists),
        Err(other) => Err(anyhow::Error::new(other).context("Failed to create the admin user")),
    }
}
