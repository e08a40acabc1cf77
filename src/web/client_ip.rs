//! The client's address, for the login throttle and the audit log: the socket's peer, or — only
//! when that peer is a trusted proxy — the nearest untrusted address in `X-Forwarded-For`.

use std::net::{IpAddr, SocketAddr};

use actix_web::HttpRequest;

use crate::config::Settings;

pub fn client_ip(req: &HttpRequest, settings: &Settings) -> String {
    let Some(peer) = req.peer_addr().map(|addr| addr.ip().to_canonical()) else {
        return "unknown".to_owned();
    };
    if !settings.is_trusted_proxy(peer) {
        return peer.to_string();
    }
    let entries: Vec<&str> = req
        .headers()
        .get_all("x-forwarded-for")
        .filter_map(|value| value.to_str().ok())
        .flat_map(|value| value.split(','))
        .map(str::trim)
        .collect();
    // Walk from the proxy nearest to us outwards; the first address no trusted proxy vouches
    // for is the client. Anything further left could have been written by the client itself,
    // so an entry that cannot be read ends the walk at the last address we could trust.
    let mut client = peer;
    for entry in entries.iter().rev() {
        match parse_forwarded(entry) {
            Some(ip) if settings.is_trusted_proxy(ip) => client = ip,
            Some(ip) => return ip.to_string(),
            None => break,
        }
    }
    client.to_string()
}

/// An `X-Forwarded-For` entry: `1.2.3.4`, `2001:db8::1`, or with a port (`1.2.3.4:5678`,
/// `[2001:db8::1]:5678`), as some proxies write them.
fn parse_forwarded(entry: &str) -> Option<IpAddr> {
    entry
        .parse::<IpAddr>()
        .or_else(|_| entry.parse::<SocketAddr>().map(|addr| addr.ip()))
        .or_else(|_| entry.trim_start_matches('[').trim_end_matches(']').parse::<IpAddr>())
        .ok()
        .map(|ip| ip.to_canonical())
}

/// The audit actor for a change made by `user` in this request.
pub fn actor(
    req: &HttpRequest,
    settings: &Settings,
    user: &crate::auth::CurrentUser,
) -> crate::models::audit::Actor {
    crate::models::audit::Actor {
        id: Some(user.id),
        name: user.username.clone(),
        ip: Some(client_ip(req, settings)),
    }
}

#[cfg(test)]
mod tests {
    use super::parse_forwarded;

    #[test]
    fn forwarded_entries_are_read_with_or_without_ports() {
        for (entry, ip) in [
            ("203.0.113.9", "203.0.113.9"),
            ("203.0.113.9:5678", "203.0.113.9"),
            ("2001:db8::1", "2001:db8::1"),
            ("[2001:db8::1]:5678", "2001:db8::1"),
            ("[2001:db8::1]", "2001:db8::1"),
            ("::ffff:203.0.113.9", "203.0.113.9"),
        ] {
            assert_eq!(parse_forwarded(entry).map(|ip| ip.to_string()).as_deref(), Some(ip), "{entry}");
        }
        assert_eq!(parse_forwarded("unknown"), None);
        assert_eq!(parse_forwarded(""), None);
    }
}
