//! The one outbound door: what isinbeat may reach on behalf of the people who configure it.
//!
//! Every request isinbeat makes (source downloads, Test source, alert webhooks, and anything
//! later) is sent by a client from [`OutboundPolicy::client`], and every local file a source names
//! is opened through [`OutboundPolicy::local_file`]. The policy:
//! - speaks `http` and `https` only;
//! - refuses loopback, private, shared, link-local (the cloud metadata service), unspecified,
//!   broadcast, documentation and multicast addresses unless `ISINBEAT_OUTBOUND_ALLOW` names
//!   them. The check is made on the address a connection is actually made to: the client
//!   resolves names through [`PolicyResolver`], which drops refused addresses, so a name that
//!   resolves to 127.0.0.1 is refused and a second, different DNS answer cannot slip in between
//!   a check and the connect. Addresses written in the URL are checked before the request, and
//!   again on every redirect;
//! - reads local files only under the folders of `ISINBEAT_SOURCE_DIRS`, after following every
//!   symbolic link.

use std::collections::HashMap;
use std::fmt;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use ipnet::IpNet;

/// What every refusal of an internal address ends with.
const NOT_INTERNAL: &str =
    "isinbeat does not connect to internal addresses unless ISINBEAT_OUTBOUND_ALLOW names them";

/// The most redirects one request follows.
const MAX_REDIRECTS: usize = 10;

/// One entry of `ISINBEAT_OUTBOUND_ALLOW`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AllowRule {
    /// An address or a range: connections to it are allowed, whatever name led there.
    Net(IpNet),
    /// A host name (lower case): whatever it resolves to may be reached under that name.
    Host(String),
}

impl AllowRule {
    /// Parses a comma-separated list of hosts, IP addresses and CIDR ranges.
    pub fn parse_list(raw: &str) -> Result<Vec<Self>, String> {
        raw.split(',').map(str::trim).filter(|item| !item.is_empty()).map(Self::parse).collect()
    }

    fn parse(item: &str) -> Result<Self, String> {
        if let Ok(net) = item.parse::<IpNet>() {
            return Ok(Self::Net(net.trunc()));
        }
        if let Ok(ip) = item.trim_start_matches('[').trim_end_matches(']').parse::<IpAddr>() {
            return Ok(Self::Net(IpNet::from(ip)));
        }
        let host = item.trim_end_matches('.').to_ascii_lowercase();
        let valid = !host.is_empty()
            && host.len() <= 253
            && host.split('.').all(|label| {
                !label.is_empty()
                    && label.len() <= 63
                    && label.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-')
            });
        if valid {
            Ok(Self::Host(host))
        } else {
            Err(format!("{item:?} is neither a host name, an IP address nor a CIDR range"))
        }
    }
}

impl fmt::Display for AllowRule {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Net(net) if net.prefix_len() == net.max_prefix_len() => write!(f, "{}", net.addr()),
            Self::Net(net) => write!(f, "{net}"),
            Self::Host(host) => f.write_str(host),
        }
    }
}

/// Why an address is not reached, in the words the refusal uses; `None` for a public address.
pub fn internal_kind(ip: IpAddr) -> Option<&'static str> {
    match ip {
        IpAddr::V4(v4) => internal_v4(v4),
        IpAddr::V6(v6) => match v6.to_ipv4_mapped() {
            // ::ffff:127.0.0.1 is 127.0.0.1.
            Some(v4) => internal_v4(v4),
            None => internal_v6(v6),
        },
    }
}

fn internal_v4(ip: Ipv4Addr) -> Option<&'static str> {
    let [a, b, c, _] = ip.octets();
    if ip.is_loopback() {
        Some("a loopback address")
    } else if ip.is_private() {
        Some("a private address")
    } else if ip.is_link_local() {
        Some("a link-local address (the cloud metadata service lives there)")
    } else if ip.is_unspecified() || a == 0 {
        Some("an unspecified address")
    } else if ip.is_multicast() || a >= 240 {
        Some("a multicast, reserved or broadcast address")
    } else if a == 100 && (64..128).contains(&b) {
        Some("a shared (carrier-grade NAT) address")
    } else if (a, b, c) == (192, 0, 0) || ip.is_documentation() || (a == 198 && (b == 18 || b == 19)) {
        Some("a reserved address")
    } else {
        None
    }
}

fn internal_v6(ip: Ipv6Addr) -> Option<&'static str> {
    let first = ip.segments()[0];
    if ip.is_loopback() {
        Some("a loopback address")
    } else if ip.is_unspecified() {
        Some("an unspecified address")
    } else if ip.is_multicast() {
        Some("a multicast address")
    } else if first & 0xfe00 == 0xfc00 {
        Some("a private (unique local) address")
    } else if first & 0xffc0 == 0xfe80 || first & 0xffc0 == 0xfec0 {
        Some("a link-local address")
    } else if first == 0x2001 && ip.segments()[1] == 0x0db8 {
        Some("a reserved address")
    } else if let Some(v4) = ip.to_ipv4() {
        // The deprecated IPv4-compatible form, ::127.0.0.1.
        internal_v4(v4)
    } else {
        None
    }
}

/// Where local source files may be read from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum LocalFiles {
    /// Only under these folders (canonical paths); none at all when empty.
    Under(Vec<PathBuf>),
    /// Anywhere: the command line's `isinbeat import FILE`, whose user has the machine already.
    Anywhere,
}

/// What isinbeat may reach: built once from the settings and shared by every outgoing request.
#[derive(Debug, Clone)]
pub struct OutboundPolicy {
    allowed: Arc<[AllowRule]>,
    /// Names looked up as fixed addresses (`ISINBEAT_OUTBOUND_RESOLVE`), like curl's
    /// `--resolve`; the addresses are still checked.
    fixed: Arc<HashMap<String, Vec<IpAddr>>>,
    local_files: LocalFiles,
}

impl Default for OutboundPolicy {
    /// Public addresses only, and no local files.
    fn default() -> Self {
        Self { allowed: Arc::from([]), fixed: Arc::default(), local_files: LocalFiles::Under(Vec::new()) }
    }
}

/// A refused request or file, with the reason in words a person can act on.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct Refused(pub String);

impl OutboundPolicy {
    /// The policy of `allowed` addresses and hosts, `fixed` name lookups, and local files under
    /// `source_dirs` (each canonicalised now; a folder that does not exist is an error).
    pub fn new(
        allowed: Vec<AllowRule>,
        fixed: HashMap<String, Vec<IpAddr>>,
        source_dirs: &[PathBuf],
    ) -> Result<Self, String> {
        let dirs = source_dirs
            .iter()
            .map(|dir| {
                std::fs::canonicalize(dir)
                    .map_err(|e| format!("the folder {} cannot be used: {e}", dir.display()))
                    .and_then(|canonical| {
                        if canonical.is_dir() {
                            Ok(canonical)
                        } else {
                            Err(format!("{} is not a folder", dir.display()))
                        }
                    })
            })
            .collect::<Result<Vec<_>, _>>()?;
        let fixed = fixed.into_iter().map(|(name, ips)| (name.to_ascii_lowercase(), ips)).collect();
        Ok(Self { allowed: allowed.into(), fixed: Arc::new(fixed), local_files: LocalFiles::Under(dirs) })
    }

    /// The same policy, reading local files wherever they are (the command line's import).
    #[must_use]
    pub fn with_local_files_anywhere(mut self) -> Self {
        self.local_files = LocalFiles::Anywhere;
        self
    }

    /// The folders local sources may be read from.
    pub fn local_files(&self) -> &LocalFiles {
        &self.local_files
    }

    /// The fixed lookups of `ISINBEAT_OUTBOUND_RESOLVE`, as `name=address`, sorted.
    pub fn fixed_names(&self) -> Vec<String> {
        let mut names: Vec<String> = self
            .fixed
            .iter()
            .flat_map(|(name, ips)| ips.iter().map(move |ip| format!("{name}={ip}")))
            .collect();
        names.sort();
        names
    }

    /// The rules of `ISINBEAT_OUTBOUND_ALLOW`.
    pub fn allowed(&self) -> &[AllowRule] {
        &self.allowed
    }

    fn allows_ip(&self, ip: IpAddr) -> bool {
        let ip = match ip {
            IpAddr::V6(v6) => v6.to_ipv4_mapped().map_or(ip, IpAddr::V4),
            IpAddr::V4(_) => ip,
        };
        internal_kind(ip).is_none()
            || self.allowed.iter().any(|rule| matches!(rule, AllowRule::Net(net) if net.contains(&ip)))
    }

    fn allows_host(&self, host: &str) -> bool {
        let host = host.trim_end_matches('.');
        self.allowed
            .iter()
            .any(|rule| matches!(rule, AllowRule::Host(allowed) if allowed.eq_ignore_ascii_case(host)))
    }

    fn refusal(name: &str, ip: IpAddr, kind: &str) -> Refused {
        let what =
            if name == ip.to_string() { name.to_owned() } else { format!("{name} resolves to {ip}, which") };
        Refused(format!("{what} is {kind}: {NOT_INTERNAL}"))
    }

    /// Checks what can be known of `url` before connecting: its scheme, and its host when it is
    /// an address (a name is checked when it is resolved, at connect time).
    pub fn check_url(&self, url: &url::Url) -> Result<(), Refused> {
        match url.scheme() {
            "http" | "https" => {}
            other => {
                return Err(Refused(format!(
                    "the scheme {other}:// is not allowed for outgoing requests: use https or http"
                )));
            }
        }
        let ip = match url.host() {
            None => return Err(Refused("the URL has no host".to_owned())),
            Some(url::Host::Ipv4(v4)) => IpAddr::V4(v4),
            Some(url::Host::Ipv6(v6)) => IpAddr::V6(v6),
            Some(url::Host::Domain(name)) => {
                // Names that are loopback by definition (RFC 6761) are refused before any lookup.
                let lower = name.trim_end_matches('.').to_ascii_lowercase();
                if (lower == "localhost" || lower.ends_with(".localhost")) && !self.allows_host(&lower) {
                    return Err(Refused(format!(
                        "{name} is this machine (a loopback address): {NOT_INTERNAL}"
                    )));
                }
                return Ok(());
            }
        };
        match internal_kind(ip) {
            Some(kind) if !self.allows_ip(ip) => Err(Self::refusal(&ip.to_string(), ip, kind)),
            _ => Ok(()),
        }
    }

    /// The canonical path of a local source file, if it lies in one of the allowed folders.
    pub fn local_file(&self, path: &Path) -> Result<PathBuf, Refused> {
        let dirs = match &self.local_files {
            LocalFiles::Anywhere => return Ok(path.to_owned()),
            LocalFiles::Under(dirs) => dirs,
        };
        if dirs.is_empty() {
            return Err(Refused(
                "local files are not read for sources: ISINBEAT_SOURCE_DIRS names no folder (set it to the \
                 folders sources may be read from, or serve the file over HTTP)"
                    .to_owned(),
            ));
        }
        let outside = || {
            let list = dirs.iter().map(|d| d.display().to_string()).collect::<Vec<_>>().join(", ");
            Refused(format!("local sources are read only from the folders of ISINBEAT_SOURCE_DIRS ({list})"))
        };
        if !path.is_absolute() {
            return Err(Refused(format!("{}; give an absolute path inside one of them", outside().0)));
        }
        // Following every link first: a link inside a folder that points out of it is outside.
        let canonical = std::fs::canonicalize(path)
            .map_err(|e| Refused(format!("cannot read {}: {e}", path.display())))?;
        if dirs.iter().any(|dir| canonical.starts_with(dir)) { Ok(canonical) } else { Err(outside()) }
    }

    /// An HTTP client that keeps to this policy: names resolved through [`PolicyResolver`],
    /// every redirect checked, no proxy from the environment (a proxy would reach internal
    /// addresses on isinbeat's behalf), rustls, and a User-Agent naming isinbeat.
    pub fn client(
        &self,
        connect_timeout: Duration,
        timeout: Option<Duration>,
    ) -> reqwest::Result<OutboundClient> {
        install_tls_provider();
        let redirects = self.clone();
        let mut builder = reqwest::Client::builder()
            .user_agent(concat!("isinbeat/", env!("CARGO_PKG_VERSION"), " (ISIN list downloader)"))
            .connect_timeout(connect_timeout)
            .no_proxy()
            .dns_resolver(Arc::new(PolicyResolver { policy: self.clone() }))
            .redirect(reqwest::redirect::Policy::custom(move |attempt| {
                if attempt.previous().len() >= MAX_REDIRECTS {
                    return attempt.error(Refused(format!("more than {MAX_REDIRECTS} redirects")));
                }
                match redirects.check_url(attempt.url()) {
                    Ok(()) => attempt.follow(),
                    Err(refused) => {
                        let to = crate::domain::mask_url_secrets(attempt.url().as_str()).into_owned();
                        attempt.error(Refused(format!("redirected to {to}: {refused}")))
                    }
                }
            }));
        if let Some(timeout) = timeout {
            builder = builder.timeout(timeout);
        }
        Ok(OutboundClient { inner: builder.build()?, policy: self.clone() })
    }
}

/// An HTTP client that keeps to an [`OutboundPolicy`]: each request's URL is checked before it
/// is sent, its names when they are resolved, and its redirects as they come.
#[derive(Debug, Clone)]
pub struct OutboundClient {
    inner: reqwest::Client,
    policy: OutboundPolicy,
}

impl OutboundClient {
    /// A request to `url`, or why it may not be made.
    pub fn request(
        &self,
        method: reqwest::Method,
        url: &url::Url,
    ) -> Result<reqwest::RequestBuilder, Refused> {
        self.policy.check_url(url)?;
        Ok(self.inner.request(method, url.clone()))
    }

    /// A GET of `url`.
    pub fn get(&self, url: &url::Url) -> Result<reqwest::RequestBuilder, Refused> {
        self.request(reqwest::Method::GET, url)
    }

    /// A POST to `url` (text that is not a URL is refused as such).
    pub fn post(&self, url: &str) -> Result<reqwest::RequestBuilder, Refused> {
        let parsed = url::Url::parse(url).map_err(|e| Refused(format!("not a valid URL: {e}")))?;
        self.request(reqwest::Method::POST, &parsed)
    }
}

/// The refusal among `error`'s causes, if the outbound policy stopped the request.
pub fn refusal_in<'a>(error: &'a (dyn std::error::Error + 'static)) -> Option<&'a Refused> {
    let mut cause: Option<&'a (dyn std::error::Error + 'static)> = Some(error);
    while let Some(inner) = cause {
        if let Some(refused) = inner.downcast_ref::<Refused>() {
            return Some(refused);
        }
        cause = inner.source();
    }
    None
}

/// The one place outgoing HTTPS gets its crypto: reqwest is built without a default TLS
/// provider, and this installs aws-lc's (the one lapin's rustls is built with), once per
/// process. Call it before building any client.
pub fn install_tls_provider() {
    // An error means a provider is installed already.
    let _ = rustls::crypto::aws_lc_rs::default_provider().install_default();
}

/// The resolver of every outgoing connection: looks a name up (or takes its fixed addresses),
/// then keeps only the addresses the policy allows. The client connects only to what this
/// returns, so the address checked is the address connected to.
#[derive(Debug, Clone)]
pub struct PolicyResolver {
    policy: OutboundPolicy,
}

impl PolicyResolver {
    async fn lookup(policy: OutboundPolicy, name: String) -> Result<Vec<SocketAddr>, Refused> {
        let found: Vec<IpAddr> = match policy.fixed.get(&name.to_ascii_lowercase()) {
            Some(ips) => ips.clone(),
            None => tokio::net::lookup_host((name.as_str(), 0))
                .await
                .map_err(|e| Refused(format!("cannot look up {name}: {e}")))?
                .map(|addr| addr.ip())
                .collect(),
        };
        if policy.allows_host(&name) {
            return Ok(found.into_iter().map(|ip| SocketAddr::new(ip, 0)).collect());
        }
        let (allowed, refused): (Vec<IpAddr>, Vec<IpAddr>) =
            found.into_iter().partition(|ip| policy.allows_ip(*ip));
        match (allowed.is_empty(), refused.first()) {
            (false, _) => Ok(allowed.into_iter().map(|ip| SocketAddr::new(ip, 0)).collect()),
            (true, Some(&ip)) => {
                Err(OutboundPolicy::refusal(&name, ip, internal_kind(ip).unwrap_or("an internal address")))
            }
            (true, None) => Err(Refused(format!("{name} has no address"))),
        }
    }
}

impl reqwest::dns::Resolve for PolicyResolver {
    fn resolve(&self, name: reqwest::dns::Name) -> reqwest::dns::Resolving {
        let (policy, name) = (self.policy.clone(), name.as_str().to_owned());
        Box::pin(async move {
            let addrs = Self::lookup(policy, name).await?;
            Ok(Box::new(addrs.into_iter()) as reqwest::dns::Addrs)
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ip(text: &str) -> IpAddr {
        text.parse().unwrap()
    }

    #[test]
    fn internal_addresses_of_both_families_are_recognised() {
        for internal in [
            "127.0.0.1",
            "127.8.9.10",
            "10.1.2.3",
            "172.16.0.1",
            "192.168.1.1",
            "169.254.169.254",
            "0.0.0.0",
            "100.64.0.1",
            "224.0.0.1",
            "255.255.255.255",
            "::1",
            "::",
            "fc00::1",
            "fd12:3456::1",
            "fe80::1",
            "ff02::1",
            "::ffff:127.0.0.1",
            "::ffff:169.254.169.254",
        ] {
            assert!(internal_kind(ip(internal)).is_some(), "{internal} should be internal");
        }
        for public in ["93.184.216.34", "8.8.8.8", "172.32.0.1", "2606:4700::1111", "100.128.0.1"] {
            assert_eq!(internal_kind(ip(public)), None, "{public} should be public");
        }
    }

    #[test]
    fn allow_lists_take_hosts_addresses_and_ranges() {
        let rules = AllowRule::parse_list("127.0.0.1, 10.0.0.0/8, mirror.corp.example, [::1]").unwrap();
        assert_eq!(
            rules.iter().map(ToString::to_string).collect::<Vec<_>>(),
            ["127.0.0.1", "10.0.0.0/8", "mirror.corp.example", "::1"]
        );
        assert!(AllowRule::parse_list("http://x/").is_err_and(|e| e.contains("http://x/")));
        let policy = OutboundPolicy::new(rules, HashMap::new(), &[]).unwrap();
        assert!(policy.allows_ip(ip("127.0.0.1")) && policy.allows_ip(ip("10.9.9.9")));
        assert!(policy.allows_ip(ip("::ffff:127.0.0.1")));
        assert!(!policy.allows_ip(ip("127.0.0.2")) && !policy.allows_ip(ip("169.254.169.254")));
        assert!(policy.allows_host("MIRROR.corp.example."));
    }

    #[test]
    fn urls_are_checked_for_scheme_and_literal_addresses() {
        let policy = OutboundPolicy::default();
        let check = |raw: &str| policy.check_url(&url::Url::parse(raw).unwrap());
        assert!(check("https://example.org/a.zip").is_ok());
        assert!(check("http://127.0.0.1:8000/").is_err_and(|e| e.0.contains("loopback")));
        assert!(check("http://[::ffff:7f00:1]/").is_err_and(|e| e.0.contains("loopback")));
        assert!(check("http://169.254.169.254/latest/").is_err_and(|e| e.0.contains("metadata")));
        assert!(check("http://2130706433/").is_err(), "a decimal IPv4 is still 127.0.0.1");
        assert!(check("http://localhost:9/").is_err_and(|e| e.0.contains("loopback")));
        assert!(check("ftp://example.org/").is_err_and(|e| e.0.contains("ftp")));
        assert!(check("file:///etc/passwd").is_err());
    }

    #[tokio::test]
    async fn a_name_is_refused_when_it_resolves_to_an_internal_address() {
        let fixed = HashMap::from([
            ("isins.example.com".to_owned(), vec![ip("127.0.0.1")]),
            ("mixed.example.com".to_owned(), vec![ip("10.0.0.1"), ip("93.184.216.34")]),
        ]);
        let policy = OutboundPolicy::new(Vec::new(), fixed.clone(), &[]).unwrap();
        let refused =
            PolicyResolver::lookup(policy.clone(), "isins.example.com".to_owned()).await.unwrap_err();
        assert!(refused.0.contains("isins.example.com resolves to 127.0.0.1"), "{refused}");
        // Only the public address of a name with both is connected to.
        let kept = PolicyResolver::lookup(policy, "mixed.example.com".to_owned()).await.unwrap();
        assert_eq!(kept, [SocketAddr::new(ip("93.184.216.34"), 0)]);
        let by_name =
            OutboundPolicy::new(AllowRule::parse_list("isins.example.com").unwrap(), fixed, &[]).unwrap();
        assert!(PolicyResolver::lookup(by_name, "isins.example.com".to_owned()).await.is_ok());
    }

    #[test]
    fn local_files_are_read_only_under_the_allowed_folders() {
        let allowed = tempfile::tempdir().unwrap();
        let elsewhere = tempfile::tempdir().unwrap();
        let inside = allowed.path().join("isins.csv");
        std::fs::write(&inside, "LEI,ISIN\n").unwrap();
        let secret = elsewhere.path().join("secret.txt");
        std::fs::write(&secret, "hunter2").unwrap();
        let link = allowed.path().join("link.csv");
        std::os::unix::fs::symlink(&secret, &link).unwrap();

        let none = OutboundPolicy::default();
        assert!(none.local_file(&inside).is_err_and(|e| e.0.contains("ISINBEAT_SOURCE_DIRS")));
        let policy = OutboundPolicy::new(Vec::new(), HashMap::new(), &[allowed.path().to_owned()]).unwrap();
        assert!(policy.local_file(&inside).is_ok());
        assert!(policy.local_file(&link).is_err(), "a link out of the folder is outside it");
        assert!(
            policy
                .local_file(
                    &allowed
                        .path()
                        .join("../")
                        .join(elsewhere.path().file_name().unwrap())
                        .join("secret.txt")
                )
                .is_err()
        );
        assert!(policy.local_file(Path::new("relative.csv")).is_err());
        assert!(policy.clone().with_local_files_anywhere().local_file(&secret).is_ok());
        assert!(
            OutboundPolicy::new(Vec::new(), HashMap::new(), &[PathBuf::from("/no/such/folder")]).is_err()
        );
    }
}
