//! diesel rows and the queries on them. Every function takes `&mut DbConnection`, never the
//! pool, so the caller decides what runs in one transaction.

pub mod alert;
pub mod api_token;
pub mod audit;
pub mod failure_pause;
pub mod id_columns;
pub mod instance_secret;
pub mod isin_browse;
pub mod isin_index;
pub mod isin_record;
pub mod login_failure;
pub mod pool;
pub mod publication;
pub mod quarantine;
pub mod reconciliation;
pub mod run;
pub mod schedule;
pub mod schedule_skip;
pub mod session;
pub mod source;
pub mod source_file;
pub mod source_freshness;
pub mod text_columns;
pub mod user;
pub mod venue_record;
pub mod worker;
