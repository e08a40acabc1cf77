//! Reading the settings about network addresses: the proxies trusted to name the client
//! (`ISINBEAT_TRUSTED_PROXIES`) and the outbound policy of what isinbeat may reach
//! (`ISINBEAT_OUTBOUND_ALLOW`, `ISINBEAT_OUTBOUND_RESOLVE`, `ISINBEAT_SOURCE_DIRS`).

use std::collections::HashMap;
use std::net::IpAddr;
use std::path::PathBuf;

use ipnet::IpNet;

use super::ConfigError;
use crate::sources::outbound::{AllowRule, OutboundPolicy};

/// The outbound policy from `ISINBEAT_OUTBOUND_ALLOW`, `ISINBEAT_OUTBOUND_RESOLVE` and
/// `ISINBEAT_SOURCE_DIRS`.
pub(super) fn parse_outbound(get: &impl Fn(&str) -> Option<String>) -> Result<OutboundPolicy, ConfigError> {
    let allowed = match get("ISINBEAT_OUTBOUND_ALLOW") {
        Some(raw) => AllowRule::parse_list(&raw).map_err(|reason| ConfigError::Invalid {
            name: "ISINBEAT_OUTBOUND_ALLOW",
            value: raw.clone(),
            reason,
        })?,
        None => Vec::new(),
    };
    let mut fixed: HashMap<String, Vec<IpAddr>> = HashMap::new();
    if let Some(raw) = get("ISINBEAT_OUTBOUND_RESOLVE") {
        for item in raw.split(',').map(str::trim).filter(|item| !item.is_empty()) {
            let parsed = item.split_once('=').and_then(|(name, ip)| {
                let ip = ip.trim().trim_start_matches('[').trim_end_matches(']').parse::<IpAddr>().ok()?;
                let name = name.trim();
                (!name.is_empty()).then(|| (name.to_ascii_lowercase(), ip))
            });
            let Some((name, ip)) = parsed else {
                return Err(ConfigError::Invalid {
                    name: "ISINBEAT_OUTBOUND_RESOLVE",
                    value: raw.clone(),
                    reason: format!("{item:?} is not NAME=IP"),
                });
            };
            fixed.entry(name).or_default().push(ip);
        }
    }
    let dirs: Vec<PathBuf> = get("ISINBEAT_SOURCE_DIRS")
        .map(|raw| raw.split(',').map(str::trim).filter(|d| !d.is_empty()).map(PathBuf::from).collect())
        .unwrap_or_default();
    OutboundPolicy::new(allowed, fixed, &dirs).map_err(|reason| ConfigError::Invalid {
        name: "ISINBEAT_SOURCE_DIRS",
        value: dirs.iter().map(|d| d.display().to_string()).collect::<Vec<_>>().join(","),
        reason,
    })
}

pub(super) fn parse_proxies(raw: &str) -> Result<Vec<IpNet>, ConfigError> {
    raw.split(',')
        .map(str::trim)
        .filter(|item| !item.is_empty())
        .map(|item| {
            item.parse::<IpNet>().or_else(|_| item.parse::<IpAddr>().map(IpNet::from)).map_err(|_| {
                ConfigError::Invalid {
                    name: "ISINBEAT_TRUSTED_PROXIES",
                    value: raw.to_owned(),
                    reason: format!("{item:?} is neither an IP address nor a CIDR range"),
                }
            })
        })
        .collect()
}
