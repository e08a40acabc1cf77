//! The client's address, for the login throttle and the audit log: the socket's peer, or — only
//! when that peer is a trusted proxy — the nearest untrusted address in `X-Forwarded-For`.

use std::net::IpAddr;

use actix_web::HttpRequest;

use crate::config::Settings;

pub fn client_ip(req: &HttpRequest, settings: &Settings) -> String {
    let Some(peer) = req.peer_addr().map(|addr| addr.ip()) else {
        return "unknown".to_owned();
    };
    if !settings.is_trusted_proxy(peer) {
        return peer.to_string();
    }
    let forwarded: Vec<IpAddr> = req
        .headers()
        .get_all("x-forwarded-for")
        .filter_map(|value| value.to_str().ok())
        .flat_map(|value| value.split(','))
        .filter_map(|item| item.trim().parse().ok())
        .collect();
    // Walk from the proxy nearest to us outwards; the first address no trusted proxy vouches
    // for is the client. Anything further left could have been written by the client itself.
    forwarded
        .iter()
        .rev()
        .find(|ip| !settings.is_trusted_proxy(**ip))
        .or(forwarded.first())
        .unwrap_or(&peer)
        .to_string()
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
