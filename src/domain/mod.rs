//! Pure domain types: no I/O, no web or database types. A value of one of these types has been
//! parsed and is valid.

pub mod alert_kind;
pub mod as_of;
pub mod calendar;
pub mod cfi;
pub mod country;
pub mod cron_words;
pub mod day_window;
pub mod deadline;
pub mod download_params;
pub mod duration_text;
pub mod feed_cursor;
pub mod field_errors;
pub mod freshness;
pub mod ids;
pub mod isin;
pub mod isin_search;
pub mod lei;
pub mod locator;
pub mod mic;
pub mod named_choices;
pub mod password;
pub mod pause;
pub mod policy;
pub mod pool_name;
pub mod quality_gates;
pub mod queue_name;
pub mod reconciliation;
pub mod role;
pub mod run_status;
pub mod schedule_settings;
pub mod schedule_spec;
pub mod unit_kind;
pub mod url_secrets;
pub mod username;
pub mod venue;

pub use alert_kind::AlertKind;
pub use ids::{
    ApiTokenId, AuditEntryId, DeliveryId, LoginFailureId, ReconciliationBuildId, RunId, ScheduleId, SkipId,
    SourceFileId, SourceId, UserId, WorkerName,
};
pub use isin::{Isin, IsinError};
pub use lei::{Lei, LeiError};
pub use password::{NewPassword, PasswordError};
pub use pool_name::{PoolError, PoolName};
pub use queue_name::{QueueName, QueueNameError};
pub use role::Role;
pub use run_status::{ChangeKind, RunStatus, RunTransition, Trigger};
pub use unit_kind::UnitKind;
pub use url_secrets::{mask_url_secrets, mask_urls_in_text, mask_webhook_url};
pub use username::{Username, UsernameError};
