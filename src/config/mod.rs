//! Settings, read once from the environment, with defaults that make `isinbeat serve` work with
//! nothing set: a SQLite file in the working directory and the admin on 127.0.0.1:8000.

mod network;

use std::fmt;
use std::net::IpAddr;
use std::path::PathBuf;
use std::str::FromStr;
use std::time::Duration;

use ipnet::IpNet;

use crate::domain::reconciliation::{self, Thresholds};
use crate::domain::{Lei, QueueName};
use crate::sources::outbound::{LocalFiles, OutboundPolicy};
use network::{parse_outbound, parse_proxies};

/// Where the application's database lives, decided by `DATABASE_URL`.
#[derive(Clone, PartialEq, Eq)]
pub enum DatabaseUrl {
    /// A SQLite file (created when missing).
    Sqlite(PathBuf),
    /// A PostgreSQL connection URL (`postgres://…` or `postgresql://…`).
    Postgres(String),
}

impl DatabaseUrl {
    /// The default: `isinbeat.sqlite3` in the working directory.
    pub fn default_sqlite() -> Self {
        Self::Sqlite(PathBuf::from("isinbeat.sqlite3"))
    }

    /// Accepts `postgres://…`, `postgresql://…`, `sqlite://PATH`, `sqlite:PATH` or a plain path.
    pub fn parse(raw: &str) -> Result<Self, ConfigError> {
        let raw = raw.trim();
        let invalid = |reason: &str| ConfigError::Invalid {
            name: "DATABASE_URL",
            value: mask_url(raw),
            reason: reason.to_owned(),
        };
        if raw.is_empty() {
            return Err(invalid("it is empty"));
        }
        if raw.starts_with("postgres://") || raw.starts_with("postgresql://") {
            url::Url::parse(raw).map_err(|e| invalid(&e.to_string()))?;
            return Ok(Self::Postgres(raw.to_owned()));
        }
        let path = raw.strip_prefix("sqlite://").or_else(|| raw.strip_prefix("sqlite:")).unwrap_or(raw);
        if path.contains("://") {
            return Err(invalid("use postgres://…, postgresql://…, sqlite://PATH or a file path"));
        }
        if path.is_empty() {
            return Err(invalid("the SQLite file path is empty"));
        }
        Ok(Self::Sqlite(PathBuf::from(path)))
    }

    /// The URL with any password replaced by `********`, for logs and `isinbeat check`.
    pub fn masked(&self) -> String {
        match self {
            Self::Sqlite(path) => format!("sqlite://{}", path.display()),
            Self::Postgres(url) => mask_url(url),
        }
    }

    /// The backend's name as users know it.
    pub fn backend_name(&self) -> &'static str {
        match self {
            Self::Sqlite(_) => "SQLite",
            Self::Postgres(_) => "PostgreSQL",
        }
    }
}

impl fmt::Debug for DatabaseUrl {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.masked())
    }
}

fn mask_url(raw: &str) -> String {
    match url::Url::parse(raw) {
        Ok(mut url) if url.password().is_some() => {
            // Setting a password only fails for URLs that cannot have one, which this one has.
            let _ = url.set_password(Some("********"));
            url.to_string()
        }
        Ok(url) => url.to_string(),
        // Unparsable (a password with an unescaped `/`, say): hide everything before the host.
        Err(_) => match (raw.split_once("://"), raw.rsplit_once('@')) {
            (Some((scheme, _)), Some((_, host))) => format!("{scheme}://********@{host}"),
            _ => raw.to_owned(),
        },
    }
}

/// Where the job queue lives, decided by `QUEUE_URL`.
#[derive(Clone, PartialEq, Eq)]
pub enum QueueUrl {
    /// Unset: in the application's database (a file beside a SQLite database, schema `apalis`
    /// of a PostgreSQL one).
    Database,
    /// A Redis server: `redis://…` (the Redis client is built without TLS).
    Redis(String),
    /// A RabbitMQ (AMQP 0.9.1) broker: `amqp://…` or `amqps://…` (TLS).
    Amqp(String),
}

impl QueueUrl {
    /// Accepts `redis://…`, `amqp://…` or `amqps://…`.
    pub fn parse(raw: &str) -> Result<Self, ConfigError> {
        let raw = raw.trim();
        let invalid =
            |reason: String| ConfigError::Invalid { name: "QUEUE_URL", value: mask_url(raw), reason };
        let parsed = url::Url::parse(raw).map_err(|e| invalid(e.to_string()))?;
        match parsed.scheme() {
            "redis" => Ok(Self::Redis(raw.to_owned())),
            "rediss" => Err(invalid(
                "Redis over TLS (rediss://) is not built in: use redis:// on a private network or through a TLS \
                 tunnel, or RabbitMQ over amqps://"
                    .to_owned(),
            )),
            "amqp" | "amqps" => Ok(Self::Amqp(raw.to_owned())),
            other => Err(invalid(format!(
                "the scheme {other}:// is not a queue isinbeat knows: use redis://, amqp:// or amqps:// \
                 (or leave QUEUE_URL unset to keep the queue in the database)"
            ))),
        }
    }

    /// The URL with any password replaced by `********`, for logs and `isinbeat check`.
    pub fn masked(&self) -> String {
        match self {
            Self::Database => "(unset: in the database)".to_owned(),
            Self::Redis(url) | Self::Amqp(url) => mask_url(url),
        }
    }
}

impl fmt::Debug for QueueUrl {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.masked())
    }
}

/// A secret from the environment: its `Debug` and `Display` never show it.
#[derive(Clone, PartialEq, Eq)]
pub struct Secret(String);

impl Secret {
    pub fn new(value: String) -> Self {
        Self(value)
    }

    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("********")
    }
}

/// How log lines are written.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LogFormat {
    /// Human-readable lines.
    Text,
    /// One JSON object per line, for log collectors.
    Json,
}

/// Everything isinbeat reads from its environment.
#[derive(Debug, Clone)]
pub struct Settings {
    pub database_url: DatabaseUrl,
    /// Where the job queue lives (`QUEUE_URL`).
    pub queue_url: QueueUrl,
    /// The queue's name in a broker (`ISINBEAT_QUEUE_NAME`); unset, it is made from the
    /// installation's id, so that installations sharing a broker never take each other's jobs.
    pub queue_name: Option<String>,
    /// Connections in the database pool of one process.
    pub database_pool_size: u32,
    /// Address the web server listens on; port 0 picks a free port (tests).
    pub bind: String,
    /// Key that signs and encrypts the session cookie. When unset, one is generated on first
    /// start and kept in the database, so every process of one installation shares it.
    pub secret_key: Option<Secret>,
    /// Password for the `admin` user created on first start; random when unset.
    pub admin_password: Option<Secret>,
    /// The site is served over HTTPS (usually by a proxy in front): cookies get `Secure` and
    /// responses carry HSTS.
    pub https: bool,
    /// Proxies whose `X-Forwarded-For` header is believed.
    pub trusted_proxies: Vec<IpNet>,
    /// How long a login lasts: a session ends this long after it last changed (login, password
    /// change), however active it is.
    pub session_ttl: Duration,
    /// Failed logins for one username from one address before further tries are refused.
    pub login_max_failures: u32,
    /// The window in which failed logins are counted, and how long a lock lasts.
    pub login_window: Duration,
    /// Web worker threads; defaults to the number of cores.
    pub web_workers: Option<usize>,
    /// Exports (CSV, JSON lines) one process streams at once (`ISINBEAT_EXPORTS_MAX`); one more
    /// is refused (429) until one ends.
    pub exports_max: usize,
    /// How long an export waits for its client to take the last piece (32 KiB) it was handed
    /// before it ends the export and its connection (`ISINBEAT_EXPORT_STALL_SECONDS`).
    pub export_stall: Duration,
    /// Days of the past the ISIN list, an ISIN's page, the exports and the API can show
    /// (`as_of=`; `ISINBEAT_AS_OF_DAYS`): record versions superseded longer ago are deleted by
    /// `prune_history`, and an older `as_of` is refused. 0 keeps only the present.
    pub as_of_days: u32,
    /// The bearer token `/metrics` asks for (`ISINBEAT_METRICS_TOKEN`); unset, `/metrics` is open.
    pub metrics_token: Option<Secret>,
    /// Runs one worker executes at once.
    pub worker_concurrency: usize,
    /// The queues a worker takes runs from (`ISINBEAT_WORKER_QUEUES`, or `worker --queues`):
    /// `default` unless set.
    pub worker_queues: Vec<QueueName>,
    /// How often a worker writes the heartbeat of each run it executes; a scheduler rescues a
    /// run silent for six of these (its worker died).
    pub run_heartbeat: Duration,
    /// The most bytes a source download may have (`ISINBEAT_DOWNLOAD_MAX_MB`); a larger one
    /// fails its run before it fills the disk.
    pub download_max_bytes: u64,
    /// The most bytes a downloaded file may have once decompressed
    /// (`ISINBEAT_UNCOMPRESSED_MAX_MB`): a zip bomb stops here.
    pub uncompressed_max_bytes: u64,
    /// What outgoing requests and local sources may reach: `ISINBEAT_OUTBOUND_ALLOW` (internal
    /// hosts, addresses and ranges allowed), `ISINBEAT_OUTBOUND_RESOLVE` (names with fixed
    /// addresses) and `ISINBEAT_SOURCE_DIRS` (folders local sources may be read from).
    pub outbound: OutboundPolicy,
    /// Whether the first start creates the default schedules (`ISINBEAT_SEED=none`: no).
    pub seed: bool,
    /// A tracing filter such as `info` or `isinbeat=debug,actix_web=info`.
    pub log_level: String,
    pub log_format: LogFormat,
    /// How reconciliation across sources is tuned: `ISINBEAT_RECONCILIATION_ALERT_PERCENT`,
    /// `ISINBEAT_RECONCILIATION_VENUE_MIN_ISSUERS` and `ISINBEAT_RECONCILIATION_VENUE_LEIS`.
    pub reconciliation: Thresholds,
}

/// Days of the past `as_of` reads can show, unless `ISINBEAT_AS_OF_DAYS` says otherwise.
pub const DEFAULT_AS_OF_DAYS: u32 = 90;

/// How long an export waits for a client that stopped reading, unless
/// `ISINBEAT_EXPORT_STALL_SECONDS` says otherwise.
pub const DEFAULT_EXPORT_STALL_SECONDS: u64 = 60;

/// Size settings are given in megabytes (MiB).
const MB: u64 = 1 << 20;

/// A setting that could not be read.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("{name}={value:?} is not valid: {reason}")]
    Invalid { name: &'static str, value: String, reason: String },
}

/// One row of the settings table that `isinbeat check` and the README show.
#[derive(Debug, Clone)]
pub struct SettingRow {
    pub name: &'static str,
    pub value: String,
}

impl Settings {
    /// Reads the process environment.
    pub fn from_env() -> Result<Self, ConfigError> {
        Self::from_lookup(|name| std::env::var(name).ok())
    }

    /// Reads settings through `lookup` (the environment, or a map in tests).
    pub fn from_lookup(lookup: impl Fn(&str) -> Option<String>) -> Result<Self, ConfigError> {
        let get = |name: &str| lookup(name).filter(|value| !value.trim().is_empty());
        let database_url = match get("DATABASE_URL") {
            Some(raw) => DatabaseUrl::parse(&raw)?,
            None => DatabaseUrl::default_sqlite(),
        };
        let queue_url = match get("QUEUE_URL") {
            Some(raw) => QueueUrl::parse(&raw)?,
            None => QueueUrl::Database,
        };
        let queue_name = get("ISINBEAT_QUEUE_NAME").map(|raw| raw.trim().to_owned());
        if let Some(name) = &queue_name
            && (name.len() > 100
                || !name.bytes().all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.' | b':')))
        {
            return Err(ConfigError::Invalid {
                name: "ISINBEAT_QUEUE_NAME",
                value: name.clone(),
                reason: "use up to 100 letters, digits and - _ . :".to_owned(),
            });
        }
        let worker_queues = match get("ISINBEAT_WORKER_QUEUES") {
            Some(raw) => QueueName::parse_list(&raw).map_err(|reason| ConfigError::Invalid {
                name: "ISINBEAT_WORKER_QUEUES",
                value: raw.clone(),
                reason,
            })?,
            None => vec![QueueName::default_queue()],
        };
        let trusted_proxies = match get("ISINBEAT_TRUSTED_PROXIES") {
            Some(raw) => parse_proxies(&raw)?,
            None => Vec::new(),
        };
        let log_format = match get("ISINBEAT_LOG_FORMAT").as_deref() {
            None | Some("text") => LogFormat::Text,
            Some("json") => LogFormat::Json,
            Some(other) => {
                return Err(ConfigError::Invalid {
                    name: "ISINBEAT_LOG_FORMAT",
                    value: other.to_owned(),
                    reason: "expected text or json".to_owned(),
                });
            }
        };
        let outbound = parse_outbound(&get)?;
        // A bearer token is compared trimmed; the session key is taken as it is.
        let metrics_token = long_enough(
            get("ISINBEAT_METRICS_TOKEN").map(|raw| raw.trim().to_owned()),
            "ISINBEAT_METRICS_TOKEN",
            16,
            "",
        )?;
        let secret_key = long_enough(
            get("ISINBEAT_SECRET_KEY"),
            "ISINBEAT_SECRET_KEY",
            32,
            " (64 random bytes, hex-encoded, are best)",
        )?;
        let reconciliation = Thresholds {
            alert_percent: parse_number(
                &get,
                "ISINBEAT_RECONCILIATION_ALERT_PERCENT",
                reconciliation::DEFAULT_ALERT_PERCENT,
                0..=100_000,
            )?,
            venue_min_issuers: parse_number(
                &get,
                "ISINBEAT_RECONCILIATION_VENUE_MIN_ISSUERS",
                reconciliation::DEFAULT_VENUE_MIN_ISSUERS,
                2..=100_000_000,
            )?,
            venue_leis: match get("ISINBEAT_RECONCILIATION_VENUE_LEIS") {
                Some(raw) => parse_leis(&raw)?,
                None => Vec::new(),
            },
        };
        Ok(Self {
            database_url,
            queue_url,
            queue_name,
            database_pool_size: parse_number(&get, "ISINBEAT_DATABASE_POOL_SIZE", 10, 1..=1000)?,
            bind: get("ISINBEAT_BIND").unwrap_or_else(|| "127.0.0.1:8000".to_owned()),
            secret_key,
            admin_password: get("ISINBEAT_ADMIN_PASSWORD").map(Secret::new),
            https: parse_bool(&get, "ISINBEAT_HTTPS", false)?,
            trusted_proxies,
            session_ttl: Duration::from_secs(
                60 * parse_number(&get, "ISINBEAT_SESSION_MINUTES", 12 * 60, 1..=525_600)?,
            ),
            login_max_failures: parse_number(&get, "ISINBEAT_LOGIN_MAX_FAILURES", 5, 1..=1000)?,
            login_window: Duration::from_secs(
                60 * parse_number(&get, "ISINBEAT_LOGIN_WINDOW_MINUTES", 15, 1..=1440)?,
            ),
            web_workers: match get("ISINBEAT_WEB_WORKERS") {
                Some(_) => Some(parse_number(&get, "ISINBEAT_WEB_WORKERS", 2, 1..=256)?),
                None => None,
            },
            exports_max: parse_number(&get, "ISINBEAT_EXPORTS_MAX", 4, 1..=1000)?,
            export_stall: Duration::from_secs(parse_number(
                &get,
                "ISINBEAT_EXPORT_STALL_SECONDS",
                DEFAULT_EXPORT_STALL_SECONDS,
                1..=3600,
            )?),
            as_of_days: parse_number(&get, "ISINBEAT_AS_OF_DAYS", DEFAULT_AS_OF_DAYS, 0..=3650)?,
            metrics_token,
            worker_concurrency: parse_number(&get, "ISINBEAT_WORKER_CONCURRENCY", 2, 1..=256)?,
            worker_queues,
            run_heartbeat: Duration::from_secs(parse_number(
                &get,
                "ISINBEAT_RUN_HEARTBEAT_SECONDS",
                10,
                1..=300,
            )?),
            download_max_bytes: MB * parse_number(&get, "ISINBEAT_DOWNLOAD_MAX_MB", 4096, 1..=1 << 20)?,
            uncompressed_max_bytes: MB
                * parse_number(&get, "ISINBEAT_UNCOMPRESSED_MAX_MB", 65_536, 1..=1 << 24)?,
            outbound,
            seed: match get("ISINBEAT_SEED").as_deref().map(str::trim) {
                None | Some("default") => true,
                Some("none") => false,
                Some(other) => {
                    return Err(ConfigError::Invalid {
                        name: "ISINBEAT_SEED",
                        value: other.to_owned(),
                        reason: "expected default or none".to_owned(),
                    });
                }
            },
            log_level: get("ISINBEAT_LOG").unwrap_or_else(|| "info".to_owned()),
            log_format,
            reconciliation,
        })
    }

    /// The effective settings as name/value rows, secrets masked.
    pub fn rows(&self) -> Vec<SettingRow> {
        let secret = |value: &Option<Secret>, unset: &str| match value {
            Some(_) => "******** (set)".to_owned(),
            None => unset.to_owned(),
        };
        let proxies = if self.trusted_proxies.is_empty() {
            "(none: X-Forwarded-For is ignored)".to_owned()
        } else {
            self.trusted_proxies.iter().map(ToString::to_string).collect::<Vec<_>>().join(",")
        };
        let row = |name, value| SettingRow { name, value };
        vec![
            row("DATABASE_URL", self.database_url.masked()),
            row("QUEUE_URL", self.queue_url.masked()),
            row(
                "ISINBEAT_QUEUE_NAME",
                self.queue_name.clone().unwrap_or_else(|| "(unset: from the installation's id)".to_owned()),
            ),
            row("ISINBEAT_DATABASE_POOL_SIZE", self.database_pool_size.to_string()),
            row("ISINBEAT_BIND", self.bind.clone()),
            row("ISINBEAT_SECRET_KEY", secret(&self.secret_key, "(unset: generated, kept in the database)")),
            row("ISINBEAT_ADMIN_PASSWORD", secret(&self.admin_password, "(unset: random on first start)")),
            row("ISINBEAT_HTTPS", self.https.to_string()),
            row("ISINBEAT_TRUSTED_PROXIES", proxies),
            row("ISINBEAT_SESSION_MINUTES", (self.session_ttl.as_secs() / 60).to_string()),
            row("ISINBEAT_LOGIN_MAX_FAILURES", self.login_max_failures.to_string()),
            row("ISINBEAT_LOGIN_WINDOW_MINUTES", (self.login_window.as_secs() / 60).to_string()),
            row(
                "ISINBEAT_WEB_WORKERS",
                self.web_workers.map_or_else(|| "(one per core)".to_owned(), |n| n.to_string()),
            ),
            row("ISINBEAT_EXPORTS_MAX", self.exports_max.to_string()),
            row("ISINBEAT_EXPORT_STALL_SECONDS", self.export_stall.as_secs().to_string()),
            row("ISINBEAT_AS_OF_DAYS", self.as_of_days.to_string()),
            row("ISINBEAT_METRICS_TOKEN", secret(&self.metrics_token, "(unset: /metrics is open)")),
            row("ISINBEAT_WORKER_CONCURRENCY", self.worker_concurrency.to_string()),
            row(
                "ISINBEAT_WORKER_QUEUES",
                self.worker_queues.iter().map(QueueName::as_str).collect::<Vec<_>>().join(","),
            ),
            row("ISINBEAT_RUN_HEARTBEAT_SECONDS", self.run_heartbeat.as_secs().to_string()),
            row("ISINBEAT_DOWNLOAD_MAX_MB", (self.download_max_bytes / MB).to_string()),
            row("ISINBEAT_UNCOMPRESSED_MAX_MB", (self.uncompressed_max_bytes / MB).to_string()),
            row("ISINBEAT_OUTBOUND_ALLOW", {
                let allowed = self.outbound.allowed();
                if allowed.is_empty() {
                    "(none: public addresses only)".to_owned()
                } else {
                    allowed.iter().map(ToString::to_string).collect::<Vec<_>>().join(",")
                }
            }),
            row("ISINBEAT_OUTBOUND_RESOLVE", {
                let fixed = self.outbound.fixed_names();
                if fixed.is_empty() { "(none)".to_owned() } else { fixed.join(",") }
            }),
            row(
                "ISINBEAT_SOURCE_DIRS",
                match self.outbound.local_files() {
                    LocalFiles::Under(dirs) if dirs.is_empty() => {
                        "(none: no local files as sources)".to_owned()
                    }
                    LocalFiles::Under(dirs) => {
                        dirs.iter().map(|d| d.display().to_string()).collect::<Vec<_>>().join(",")
                    }
                    LocalFiles::Anywhere => "(anywhere)".to_owned(),
                },
            ),
            row("ISINBEAT_SEED", if self.seed { "default" } else { "none" }.to_owned()),
            row("ISINBEAT_LOG", self.log_level.clone()),
            row(
                "ISINBEAT_LOG_FORMAT",
                match self.log_format {
                    LogFormat::Text => "text",
                    LogFormat::Json => "json",
                }
                .to_owned(),
            ),
            row("ISINBEAT_RECONCILIATION_ALERT_PERCENT", self.reconciliation.alert_percent.to_string()),
            row(
                "ISINBEAT_RECONCILIATION_VENUE_MIN_ISSUERS",
                self.reconciliation.venue_min_issuers.to_string(),
            ),
            row(
                "ISINBEAT_RECONCILIATION_VENUE_LEIS",
                if self.reconciliation.venue_leis.is_empty() {
                    "(none)".to_owned()
                } else {
                    self.reconciliation
                        .venue_leis
                        .iter()
                        .map(|lei| lei.as_str())
                        .collect::<Vec<_>>()
                        .join(",")
                },
            ),
        ]
    }

    /// Whether a request from `peer` may tell the client's address in `X-Forwarded-For`.
    pub fn is_trusted_proxy(&self, peer: IpAddr) -> bool {
        self.trusted_proxies.iter().any(|net| net.contains(&peer))
    }
}

fn parse_number<T>(
    get: &impl Fn(&str) -> Option<String>,
    name: &'static str,
    default: T,
    range: std::ops::RangeInclusive<T>,
) -> Result<T, ConfigError>
where
    T: FromStr + PartialOrd + fmt::Display + Copy,
{
    let Some(raw) = get(name) else {
        return Ok(default);
    };
    let invalid = || ConfigError::Invalid {
        name,
        value: raw.clone(),
        reason: format!("expected a whole number from {} to {}", range.start(), range.end()),
    };
    let value: T = raw.trim().parse().map_err(|_| invalid())?;
    if range.contains(&value) { Ok(value) } else { Err(invalid()) }
}

/// LEIs separated by commas (or white space).
fn parse_leis(raw: &str) -> Result<Vec<Lei>, ConfigError> {
    raw.split(|c: char| c == ',' || c.is_whitespace())
        .filter(|part| !part.is_empty())
        .map(|part| {
            Lei::parse(part).map_err(|error| ConfigError::Invalid {
                name: "ISINBEAT_RECONCILIATION_VENUE_LEIS",
                value: raw.to_owned(),
                reason: format!("{part}: {error}"),
            })
        })
        .collect()
}

fn parse_bool(
    get: &impl Fn(&str) -> Option<String>,
    name: &'static str,
    default: bool,
) -> Result<bool, ConfigError> {
    match get(name).map(|raw| raw.trim().to_ascii_lowercase()) {
        None => Ok(default),
        Some(raw) => match raw.as_str() {
            "1" | "true" | "yes" | "on" => Ok(true),
            "0" | "false" | "no" | "off" => Ok(false),
            _ => Err(ConfigError::Invalid { name, value: raw, reason: "expected true or false".to_owned() }),
        },
    }
}

/// `value` as a secret, refused (without showing it) when shorter than `min` characters.
fn long_enough(
    value: Option<String>,
    name: &'static str,
    min: usize,
    advice: &str,
) -> Result<Option<Secret>, ConfigError> {
    match value {
        Some(value) if value.len() < min => Err(ConfigError::Invalid {
            name,
            value: "********".to_owned(),
            reason: format!("use at least {min} characters{advice}"),
        }),
        value => Ok(value.map(Secret::new)),
    }
}

#[cfg(test)]
mod tests {
    use std::collections::HashMap;

    use super::*;

    fn settings(vars: &[(&str, &str)]) -> Result<Settings, ConfigError> {
        let map: HashMap<String, String> =
            vars.iter().map(|(k, v)| ((*k).to_owned(), (*v).to_owned())).collect();
        Settings::from_lookup(|name| map.get(name).cloned())
    }

    #[test]
    fn nothing_set_gives_a_local_sqlite_admin() {
        let s = settings(&[]).unwrap();
        assert_eq!(s.database_url, DatabaseUrl::default_sqlite());
        assert_eq!(s.bind, "127.0.0.1:8000");
        assert!(!s.https);
        assert_eq!(s.login_max_failures, 5);
    }

    #[test]
    fn database_urls_pick_the_backend() {
        assert!(matches!(DatabaseUrl::parse("postgres://u:p@db/isinbeat"), Ok(DatabaseUrl::Postgres(_))));
        assert_eq!(
            DatabaseUrl::parse("sqlite:///var/lib/isinbeat/db.sqlite3").ok(),
            Some(DatabaseUrl::Sqlite(PathBuf::from("/var/lib/isinbeat/db.sqlite3")))
        );
        assert_eq!(
            DatabaseUrl::parse("data.sqlite3").ok(),
            Some(DatabaseUrl::Sqlite(PathBuf::from("data.sqlite3")))
        );
        assert!(DatabaseUrl::parse("mysql://localhost/x").is_err());
    }

    #[test]
    fn queue_urls_pick_the_broker_and_hide_passwords() {
        assert_eq!(settings(&[]).unwrap().queue_url, QueueUrl::Database);
        let redis = settings(&[("QUEUE_URL", "redis://:hunter2@cache:6379/2")]).unwrap().queue_url;
        assert!(matches!(redis, QueueUrl::Redis(_)));
        assert_eq!(redis.masked(), "redis://:********@cache:6379/2");
        let tls = QueueUrl::parse("rediss://:hunter2@cache:6380").unwrap_err().to_string();
        assert!(tls.contains("not built in") && !tls.contains("hunter2"), "{tls}");
        let amqp = QueueUrl::parse("amqp://guest:guest@127.0.0.1:5672/%2f").unwrap();
        assert!(matches!(amqp, QueueUrl::Amqp(_)) && !format!("{amqp:?}").contains("guest@"));
        let refused = QueueUrl::parse("kafka://broker:9092").unwrap_err().to_string();
        assert!(refused.contains("QUEUE_URL") && refused.contains("redis://"), "{refused}");
        assert!(settings(&[("ISINBEAT_QUEUE_NAME", "runs of team a")]).is_err());
        assert_eq!(
            settings(&[("ISINBEAT_QUEUE_NAME", "team-a:runs")]).unwrap().queue_name.as_deref(),
            Some("team-a:runs")
        );
    }

    #[test]
    fn workers_listen_on_the_default_queue_unless_told() {
        let names = |s: Settings| s.worker_queues.iter().map(|q| q.as_str().to_owned()).collect::<Vec<_>>();
        assert_eq!(names(settings(&[]).unwrap()), ["default"]);
        assert_eq!(
            names(settings(&[("ISINBEAT_WORKER_QUEUES", "reports, default")]).unwrap()),
            ["reports", "default"]
        );
        let refused = settings(&[("ISINBEAT_WORKER_QUEUES", "default,Reports")]).unwrap_err().to_string();
        assert!(refused.contains("ISINBEAT_WORKER_QUEUES") && refused.contains("lower-case"), "{refused}");
    }

    #[test]
    fn passwords_in_database_urls_are_masked() {
        let url = DatabaseUrl::parse("postgres://isinbeat:hunter2@db:5432/isinbeat").unwrap();
        assert_eq!(url.masked(), "postgres://isinbeat:********@db:5432/isinbeat");
        assert!(!format!("{url:?}").contains("hunter2"));
    }

    #[test]
    fn passwords_in_unparsable_database_urls_are_masked_too() {
        let err = DatabaseUrl::parse("postgres://isinbeat:pa/ss@wo:rd@db/isinbeat").unwrap_err();
        assert!(!err.to_string().contains("pa/ss"), "{err}");
        assert!(err.to_string().contains("********@db/isinbeat"), "{err}");
    }

    #[test]
    fn bad_values_name_the_variable() {
        let err = settings(&[("ISINBEAT_LOGIN_MAX_FAILURES", "many")]).unwrap_err();
        assert!(err.to_string().contains("ISINBEAT_LOGIN_MAX_FAILURES"));
        assert!(settings(&[("ISINBEAT_HTTPS", "maybe")]).is_err());
        assert!(settings(&[("ISINBEAT_TRUSTED_PROXIES", "10.0.0.0/8,nonsense")]).is_err());
        assert!(settings(&[("ISINBEAT_SECRET_KEY", "short")]).is_err());
    }

    #[test]
    fn reconciliation_thresholds_and_venue_leis_are_read_and_checked() {
        let s = settings(&[]).unwrap();
        assert_eq!(s.reconciliation, Thresholds::default());
        let lei = "529900T8BM49AURSDO55";
        let s = settings(&[
            ("ISINBEAT_RECONCILIATION_ALERT_PERCENT", "25"),
            ("ISINBEAT_RECONCILIATION_VENUE_MIN_ISSUERS", "50"),
            ("ISINBEAT_RECONCILIATION_VENUE_LEIS", &format!("{lei}, {lei}")),
        ])
        .unwrap();
        assert_eq!((s.reconciliation.alert_percent, s.reconciliation.venue_min_issuers), (25, 50));
        assert_eq!(s.reconciliation.venue_leis.len(), 2);
        let row = s.rows().into_iter().find(|row| row.name == "ISINBEAT_RECONCILIATION_VENUE_LEIS").unwrap();
        assert_eq!(row.value, format!("{lei},{lei}"));
        let err = settings(&[("ISINBEAT_RECONCILIATION_VENUE_LEIS", "529900T8BM49AURSDO56")]).unwrap_err();
        assert!(err.to_string().contains("ISINBEAT_RECONCILIATION_VENUE_LEIS"), "{err}");
        assert!(settings(&[("ISINBEAT_RECONCILIATION_VENUE_MIN_ISSUERS", "1")]).is_err());
    }

    #[test]
    fn exports_are_capped_and_metrics_open_unless_told() {
        let s = settings(&[]).unwrap();
        assert_eq!(s.exports_max, 4);
        assert_eq!(s.as_of_days, DEFAULT_AS_OF_DAYS);
        assert_eq!(s.export_stall, Duration::from_secs(DEFAULT_EXPORT_STALL_SECONDS));
        assert!(s.metrics_token.is_none());
        let s = settings(&[
            ("ISINBEAT_EXPORTS_MAX", "10"),
            ("ISINBEAT_EXPORT_STALL_SECONDS", "5"),
            ("ISINBEAT_METRICS_TOKEN", " 0123456789abcdef \n"),
        ])
        .unwrap();
        assert_eq!((s.exports_max, s.export_stall), (10, Duration::from_secs(5)));
        assert_eq!(s.metrics_token.as_ref().map(Secret::expose), Some("0123456789abcdef"));
        assert!(settings(&[("ISINBEAT_EXPORTS_MAX", "0")]).is_err());
        assert_eq!(settings(&[("ISINBEAT_AS_OF_DAYS", "0")]).unwrap().as_of_days, 0);
        assert!(settings(&[("ISINBEAT_AS_OF_DAYS", "many")]).is_err());
        assert!(settings(&[("ISINBEAT_EXPORT_STALL_SECONDS", "0")]).is_err());
        let short = settings(&[("ISINBEAT_METRICS_TOKEN", "secret")]).unwrap_err().to_string();
        assert!(short.contains("ISINBEAT_METRICS_TOKEN") && !short.contains("secret\""), "{short}");
    }

    #[test]
    fn trusted_proxies_accept_addresses_and_ranges() {
        let s = settings(&[("ISINBEAT_TRUSTED_PROXIES", "10.0.0.0/8, 127.0.0.1")]).unwrap();
        assert!(s.is_trusted_proxy("10.1.2.3".parse().unwrap()));
        assert!(s.is_trusted_proxy("127.0.0.1".parse().unwrap()));
        assert!(!s.is_trusted_proxy("192.168.1.1".parse().unwrap()));
    }

    #[test]
    fn secrets_never_show_in_debug_or_rows() {
        let s = settings(&[
            ("ISINBEAT_SECRET_KEY", "0123456789abcdef0123456789abcdef-very-secret"),
            ("ISINBEAT_ADMIN_PASSWORD", "correct horse battery"),
            ("ISINBEAT_METRICS_TOKEN", "prometheus-scrapes-with-this"),
        ])
        .unwrap();
        let shown = format!("{s:?} {:?}", s.rows());
        assert!(!shown.contains("very-secret"));
        assert!(!shown.contains("prometheus-scrapes"));
        assert!(!shown.contains("correct horse"));
    }
}
