//! Downloading `image_url` without becoming a proxy into the server's own network.
//!
//! - Only http/https URLs with a host and without credentials are accepted.
//! - A host given as an IP literal (in any spelling the URL standard accepts, such as
//!   `2130706433` or `0x7f.1`) is checked before anything is sent.
//! - A host name is resolved by our own resolver, which checks every address in the
//!   answer, and the HTTP client connects only to those checked addresses (it has no
//!   other resolver), so a DNS answer cannot swap in a private address between the
//!   check and the connect (DNS rebinding).
//! - Redirects are followed by hand, at most `max_redirects`, and every target goes
//!   through the same checks as the client's URL.
//! - The body is streamed with the byte cap enforced as it arrives.
//! - Proxies from the environment are ignored: a proxy would resolve names itself.

use std::collections::HashMap;
use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::time::Duration;

use bytes::{Bytes, BytesMut};
use dupify_core::{ApiError, ErrorCode};
use futures::StreamExt;
use reqwest::dns::{Addrs, Name, Resolve, Resolving};
use url::{Host, Url};

use crate::ip::is_refused_ip;

/// Longest URL accepted, in bytes: real image URLs are far shorter, and a cap keeps
/// absurd values out of logs and error messages.
pub const MAX_URL_LEN: usize = 2048;

/// Where and how the server may download images from.
#[derive(Debug, Clone)]
pub struct FetchPolicy {
    /// Fetch from private, loopback and other refused addresses too. Never on a server
    /// that customers can reach: it turns the fetcher into a proxy into the local network.
    pub allow_private_hosts: bool,
    /// Exact addresses exempt from the refusal, on any port, whether the URL names them
    /// literally or a host name resolves to them (an internal image host).
    pub allowed_private_ips: Vec<IpAddr>,
    /// Exact `ip:port` pairs exempt from the refusal, honoured only when the URL names
    /// the IP literally. Meant for tests: lets a test server on 127.0.0.1 be fetched while
    /// every other loopback port and address stays refused.
    pub allowed_test_addrs: Vec<SocketAddr>,
    /// Time allowed for DNS resolution plus the TCP (and TLS) connect, per hop.
    pub connect_timeout: Duration,
    /// Time allowed for the whole download, redirects and body included.
    pub total_timeout: Duration,
    /// Redirects followed before giving up.
    pub max_redirects: u8,
    /// Largest body accepted, in bytes.
    pub max_bytes: usize,
    /// Sent as `User-Agent`, so image hosts can identify (and allow) the fetcher.
    pub user_agent: String,
}

impl Default for FetchPolicy {
    fn default() -> Self {
        FetchPolicy {
            allow_private_hosts: false,
            allowed_private_ips: Vec::new(),
            allowed_test_addrs: Vec::new(),
            connect_timeout: Duration::from_secs(5),
            total_timeout: Duration::from_secs(15),
            max_redirects: 3,
            max_bytes: 10 * 1024 * 1024,
            user_agent: concat!("Dupify/", env!("CARGO_PKG_VERSION"), " (image fetcher)")
                .to_owned(),
        }
    }
}

impl FetchPolicy {
    /// Whether this policy refuses to connect to `ip`. `port` is known when the URL
    /// names the IP literally, and is what [`FetchPolicy::allowed_test_addrs`] matches on.
    pub fn refuses(&self, ip: IpAddr, port: Option<u16>) -> bool {
        if self.allow_private_hosts || !is_refused_ip(ip) {
            return false;
        }
        if self.allowed_private_ips.contains(&ip) {
            return false;
        }
        !port.is_some_and(|p| self.allowed_test_addrs.contains(&SocketAddr::new(ip, p)))
    }
}

/// Whether a URL came from the client or from a redirect: only the wording differs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Hop {
    First,
    Redirect,
}

fn bad_url(parameter: &str, hop: Hop, reason: &str) -> ApiError {
    let message = match hop {
        Hop::First => format!("{parameter} {reason}"),
        Hop::Redirect => format!("{parameter} redirected to a URL that {reason}"),
    };
    ApiError::new(ErrorCode::InvalidImageUrl, message).detail("parameter", parameter)
}

fn refused_host(parameter: &str, hop: Hop, what: &str) -> ApiError {
    bad_url(
        parameter,
        hop,
        &format!("points at a host this server does not fetch from ({what})"),
    )
}

/// Validates a client's URL string: at most [`MAX_URL_LEN`] bytes, parseable, http or
/// https, with a host, without `user:password@` credentials (they would be sent to
/// whatever host the URL names and end up in logs; image CDNs do not need them), and
/// not naming a refused address literally or `localhost`. Host names are checked
/// again, after resolution, when fetched.
pub fn parse_image_url(raw: &str, parameter: &str, policy: &FetchPolicy) -> Result<Url, ApiError> {
    let raw = raw.trim();
    if raw.is_empty() {
        return Err(bad_url(parameter, Hop::First, "is empty"));
    }
    if raw.len() > MAX_URL_LEN {
        return Err(bad_url(
            parameter,
            Hop::First,
            &format!("is longer than {MAX_URL_LEN} characters"),
        ));
    }
    let url = Url::parse(raw)
        .map_err(|e| bad_url(parameter, Hop::First, &format!("is not a valid URL ({e})")))?;
    check_url(url, parameter, policy, Hop::First)
}

fn check_url(url: Url, parameter: &str, policy: &FetchPolicy, hop: Hop) -> Result<Url, ApiError> {
    if !matches!(url.scheme(), "http" | "https") {
        return Err(bad_url(
            parameter,
            hop,
            &format!(
                "uses the scheme '{}'; only http and https URLs are fetched",
                url.scheme()
            ),
        ));
    }
    if url.as_str().len() > MAX_URL_LEN {
        return Err(bad_url(
            parameter,
            hop,
            &format!("is longer than {MAX_URL_LEN} characters"),
        ));
    }
    if !url.username().is_empty() || url.password().is_some() {
        return Err(bad_url(
            parameter,
            hop,
            "contains a user name or password, which this server does not send",
        ));
    }
    let port = url.port_or_known_default();
    let literal = match url.host() {
        None => return Err(bad_url(parameter, hop, "has no host")),
        Some(Host::Ipv4(ip)) => Some(IpAddr::V4(ip)),
        Some(Host::Ipv6(ip)) => Some(IpAddr::V6(ip)),
        Some(Host::Domain(d)) => {
            // `localhost` never reaches DNS on most systems, so refuse it by name.
            let d = d.trim_end_matches('.').to_ascii_lowercase();
            if !policy.allow_private_hosts && (d == "localhost" || d.ends_with(".localhost")) {
                return Err(refused_host(parameter, hop, &d));
            }
            None
        }
    };
    if let Some(ip) = literal {
        if policy.refuses(ip, port) {
            return Err(refused_host(parameter, hop, &ip.to_string()));
        }
    }
    Ok(url)
}

/// A resolution refused by the policy, told apart from a DNS failure by its type.
#[derive(Debug)]
struct RefusedAddress(String);

impl std::fmt::Display for RefusedAddress {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "{} resolves to an address this server does not fetch from",
            self.0
        )
    }
}
impl std::error::Error for RefusedAddress {}

#[derive(Debug)]
struct DnsFailure(String);

impl std::fmt::Display for DnsFailure {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "could not resolve {}", self.0)
    }
}
impl std::error::Error for DnsFailure {}

/// The only resolver the HTTP client uses: static entries or system DNS, then the
/// address policy over the whole answer.
struct CheckedResolver {
    policy: Arc<FetchPolicy>,
    static_hosts: Arc<HashMap<String, Vec<IpAddr>>>,
}

fn normalize_host(name: &str) -> String {
    name.trim_end_matches('.').to_ascii_lowercase()
}

impl Resolve for CheckedResolver {
    fn resolve(&self, name: Name) -> Resolving {
        let policy = self.policy.clone();
        let static_hosts = self.static_hosts.clone();
        let host = name.as_str().to_owned();
        Box::pin(async move {
            let addrs: Vec<SocketAddr> = match static_hosts.get(&normalize_host(&host)) {
                Some(ips) => ips.iter().map(|ip| SocketAddr::new(*ip, 0)).collect(),
                None => tokio::net::lookup_host((host.as_str(), 0))
                    .await
                    .map_err(|_| DnsFailure(host.clone()))?
                    .collect(),
            };
            if addrs.is_empty() {
                return Err(DnsFailure(host).into());
            }
            // One refused address taints the whole answer: mixing a public and a private
            // address is exactly how rebinding tricks get past a check of the first one.
            if addrs.iter().any(|a| policy.refuses(a.ip(), None)) {
                return Err(RefusedAddress(host).into());
            }
            let out: Addrs = Box::new(addrs.into_iter());
            Ok(out)
        })
    }
}

/// Downloads images under a [`FetchPolicy`]. Cheap to clone (shares one HTTP client).
#[derive(Clone)]
pub struct Fetcher {
    client: reqwest::Client,
    policy: Arc<FetchPolicy>,
}

fn find_cause<'a, T: std::error::Error + 'static>(
    e: &'a (dyn std::error::Error + 'static),
) -> Option<&'a T> {
    let mut cur: Option<&(dyn std::error::Error + 'static)> = Some(e);
    while let Some(err) = cur {
        if let Some(t) = err.downcast_ref::<T>() {
            return Some(t);
        }
        cur = err.source();
    }
    None
}

/// `15s`, `500ms`, `1.5s`: short and readable in an error message.
fn human_duration(d: Duration) -> String {
    if d.subsec_millis() == 0 {
        format!("{}s", d.as_secs())
    } else if d.as_secs() == 0 {
        format!("{}ms", d.subsec_millis())
    } else {
        format!("{:.1}s", d.as_secs_f64())
    }
}

/// A short, client-safe reason for a failed connection.
fn connect_reason(e: &reqwest::Error) -> &'static str {
    use std::io::ErrorKind;
    match find_cause::<std::io::Error>(e).map(|io| io.kind()) {
        Some(ErrorKind::ConnectionRefused) => "connection refused",
        Some(ErrorKind::ConnectionReset | ErrorKind::ConnectionAborted) => "connection reset",
        Some(ErrorKind::HostUnreachable | ErrorKind::NetworkUnreachable) => "host unreachable",
        Some(ErrorKind::TimedOut) => "timed out",
        // rustls reports handshake and certificate problems as InvalidData.
        Some(ErrorKind::InvalidData) => "TLS handshake failed",
        _ => "connection failed",
    }
}

impl Fetcher {
    /// A fetcher whose host names are resolved by system DNS.
    ///
    /// # Panics
    /// If the HTTP client cannot be built (the TLS backend failed to initialise), which
    /// is a broken installation, not a runtime condition.
    pub fn new(policy: FetchPolicy) -> Self {
        Self::with_static_hosts(policy, Vec::new())
    }

    /// Like [`Fetcher::new`], but the listed host names are answered from this table
    /// instead of DNS (as `curl --resolve` does). The answers still go through the
    /// address policy. For tests, and for pinning an internal image host.
    pub fn with_static_hosts(
        policy: FetchPolicy,
        hosts: impl IntoIterator<Item = (String, Vec<IpAddr>)>,
    ) -> Self {
        let policy = Arc::new(policy);
        let static_hosts: HashMap<String, Vec<IpAddr>> = hosts
            .into_iter()
            .map(|(name, ips)| (normalize_host(&name), ips))
            .collect();
        let client = reqwest::Client::builder()
            // Redirects are followed by hand so that every hop is re-validated.
            .redirect(reqwest::redirect::Policy::none())
            .no_proxy()
            .dns_resolver(Arc::new(CheckedResolver {
                policy: policy.clone(),
                static_hosts: Arc::new(static_hosts),
            }))
            .connect_timeout(policy.connect_timeout)
            .timeout(policy.total_timeout)
            .user_agent(policy.user_agent.clone())
            .build()
            // A fallback client would lack the checked resolver: better to fail loudly.
            .expect("the HTTP client for image fetching could not be built");
        Fetcher { client, policy }
    }

    /// The policy this fetcher enforces (also what [`parse_image_url`] should be given).
    pub fn policy(&self) -> &FetchPolicy {
        &self.policy
    }

    fn failed(&self, parameter: &str, why: impl std::fmt::Display) -> ApiError {
        ApiError::new(
            ErrorCode::ImageFetchFailed,
            format!("could not download the image at {parameter}: {why}"),
        )
        .detail("parameter", parameter)
    }

    fn timed_out(&self, parameter: &str) -> ApiError {
        self.failed(
            parameter,
            format_args!(
                "timed out after {}",
                human_duration(self.policy.total_timeout)
            ),
        )
    }

    fn map_send_error(
        &self,
        e: &reqwest::Error,
        parameter: &str,
        host: &str,
        hop: Hop,
    ) -> ApiError {
        if let Some(r) = find_cause::<RefusedAddress>(e) {
            let what = format!("{} resolves to a private or reserved address", r.0);
            return refused_host(parameter, hop, &what);
        }
        if find_cause::<DnsFailure>(e).is_some() {
            return self.failed(
                parameter,
                format_args!("the host {host} could not be found"),
            );
        }
        if e.is_connect() {
            let reason = if e.is_timeout() {
                format!(
                    "timed out after {}",
                    human_duration(self.policy.connect_timeout)
                )
            } else {
                connect_reason(e).to_owned()
            };
            return self.failed(
                parameter,
                format_args!("could not connect to {host} ({reason})"),
            );
        }
        if e.is_timeout() {
            return self.timed_out(parameter);
        }
        self.failed(
            parameter,
            "the server closed the connection without a valid response",
        )
    }

    /// Downloads `url` (validate it with [`parse_image_url`] first; it is re-checked
    /// here anyway). `parameter` names the request field in errors.
    ///
    /// Errors: a refused host, also after DNS or a redirect, is `invalid_image_url`;
    /// DNS failure, connect failure, timeout, a non-2xx status (in `details.status`) or
    /// too many redirects is `image_fetch_failed`; a body over the cap is
    /// `image_too_large`; an empty body is `unsupported_format`.
    pub async fn fetch(&self, url: &Url, parameter: &str) -> Result<Bytes, ApiError> {
        match tokio::time::timeout(
            self.policy.total_timeout,
            self.fetch_inner(url.clone(), parameter),
        )
        .await
        {
            Ok(r) => r,
            Err(_) => Err(self.timed_out(parameter)),
        }
    }

    async fn fetch_inner(&self, mut url: Url, parameter: &str) -> Result<Bytes, ApiError> {
        let mut redirects = 0u8;
        let mut hop = Hop::First;
        loop {
            url = check_url(url, parameter, &self.policy, hop)?;
            let host = url.host_str().unwrap_or_default().to_owned();
            let res = self
                .client
                .get(url.clone())
                .header(reqwest::header::ACCEPT, "image/*")
                .send()
                .await
                .map_err(|e| self.map_send_error(&e, parameter, &host, hop))?;
            let status = res.status();
            if status.is_redirection() {
                let Some(location) = res.headers().get(reqwest::header::LOCATION) else {
                    return Err(self
                        .failed(
                            parameter,
                            format_args!(
                                "the server answered HTTP {} without a Location header",
                                status.as_u16()
                            ),
                        )
                        .detail("status", status.as_u16()));
                };
                if redirects >= self.policy.max_redirects {
                    return Err(self.failed(
                        parameter,
                        format_args!(
                            "too many redirects (more than {})",
                            self.policy.max_redirects
                        ),
                    ));
                }
                redirects += 1;
                hop = Hop::Redirect;
                url = location
                    .to_str()
                    .ok()
                    .and_then(|l| url.join(l.trim()).ok())
                    .ok_or_else(|| {
                        self.failed(parameter, "the server redirected to an invalid URL")
                    })?;
                continue;
            }
            if !status.is_success() {
                return Err(self
                    .failed(
                        parameter,
                        format_args!("the server answered HTTP {}", status.as_u16()),
                    )
                    .detail("status", status.as_u16()));
            }
            return self.read_body(res, parameter).await;
        }
    }

    async fn read_body(&self, res: reqwest::Response, parameter: &str) -> Result<Bytes, ApiError> {
        let max = self.policy.max_bytes;
        // A declared length over the cap fails before any of the body is read.
        if res.content_length().is_some_and(|n| n > max as u64) {
            return Err(too_large(parameter, max));
        }
        let capacity = res.content_length().unwrap_or(64 * 1024).min(max as u64) as usize;
        let mut body = BytesMut::with_capacity(capacity);
        let mut stream = res.bytes_stream();
        while let Some(chunk) = stream.next().await {
            let chunk = chunk.map_err(|e| {
                if e.is_timeout() {
                    self.timed_out(parameter)
                } else {
                    self.failed(parameter, "the connection broke during the download")
                }
            })?;
            if body.len() + chunk.len() > max {
                return Err(too_large(parameter, max));
            }
            body.extend_from_slice(&chunk);
        }
        if body.is_empty() {
            return Err(ApiError::new(
                ErrorCode::UnsupportedFormat,
                format!("the URL in {parameter} returned an empty body, not an image"),
            )
            .detail("parameter", parameter));
        }
        Ok(body.freeze())
    }

    /// POSTs a JSON body to `url` under the same address policy as downloads (checked
    /// DNS, no redirects followed, no proxies): webhook deliveries. Answers the HTTP
    /// status, or a short client-safe reason when there was no answer.
    pub async fn post_json(
        &self,
        url: &Url,
        headers: &[(&str, String)],
        body: Vec<u8>,
        timeout: Duration,
    ) -> Result<u16, String> {
        // IP-literal hosts never reach the resolver: the policy is applied here too,
        // so an address refused since the URL was registered is refused now.
        let url = check_url(url.clone(), "url", &self.policy, Hop::First)
            .map_err(|_| "the URL's host is refused by this server's address policy".to_owned())?;
        let mut req = self
            .client
            .post(url)
            .timeout(timeout)
            .header(reqwest::header::CONTENT_TYPE, "application/json")
            .body(body);
        for (k, v) in headers {
            req = req.header(*k, v.as_str());
        }
        match req.send().await {
            Ok(res) => Ok(res.status().as_u16()),
            Err(e) if find_cause::<RefusedAddress>(&e).is_some() => {
                Err("the host resolves to an address this server does not send to".into())
            }
            Err(e) if find_cause::<DnsFailure>(&e).is_some() => {
                Err("the host name could not be resolved".into())
            }
            Err(e) if e.is_timeout() => {
                Err(format!("no answer within {}", human_duration(timeout)))
            }
            Err(e) if e.is_connect() => Err(connect_reason(&e).into()),
            Err(_) => Err("the connection broke before an answer".into()),
        }
    }
}

fn too_large(parameter: &str, max: usize) -> ApiError {
    ApiError::new(
        ErrorCode::ImageTooLarge,
        format!("the image at {parameter} is larger than the limit of {max} bytes"),
    )
    .detail("parameter", parameter)
    .detail("max_bytes", max)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn code_and_message(raw: &str, policy: &FetchPolicy) -> (ErrorCode, String) {
        let e = parse_image_url(raw, "image_url", policy).unwrap_err();
        assert_eq!(e.details.as_ref().unwrap()["parameter"], "image_url");
        (e.code, e.message)
    }

    #[test]
    fn url_validation() {
        let p = FetchPolicy::default();
        let ok = parse_image_url(" https://cdn.example.com/a.jpg?x=1 ", "image_url", &p).unwrap();
        assert_eq!(ok.host_str(), Some("cdn.example.com"));
        assert!(parse_image_url("http://93.184.216.34:8080/a.png", "image_url", &p).is_ok());
        assert!(parse_image_url("http://[2606:4700::1111]/a.png", "image_url", &p).is_ok());
        for bad in [
            "",
            "   ",
            "ftp://example.com/a.png",
            "file:///etc/passwd",
            "data:image/png;base64,AAAA",
            "javascript:alert(1)",
            "http://user:pw@example.com/a.png",
            "http://user@example.com/a.png",
            "http://",
            "not a url",
            "/relative/path.png",
            "http://127.0.0.1/a.png",
            "http://127.1/",
            "http://2130706433/",
            "http://0x7f.1/",
            "http://0177.0.0.1/",
            "http://127.0.0.1./",
            "http://0/",
            "http://[::1]/",
            "http://[::]/",
            "http://[::ffff:7f00:1]/",
            "http://[::ffff:169.254.169.254]/",
            "http://[64:ff9b::a9fe:a9fe]/",
            "http://169.254.169.254/latest/meta-data/",
            "http://[fd00:ec2::254]/",
            "http://10.0.0.1/",
            "http://192.168.0.1/",
            "http://100.64.0.1/",
            "http://localhost:8080/",
            "http://foo.localhost/",
            "http://LOCALHOST./",
        ] {
            let (code, _) = code_and_message(bad, &p);
            assert_eq!(code, ErrorCode::InvalidImageUrl, "{bad}");
        }
        let long = format!("https://e.com/{}", "a".repeat(3000));
        let (code, msg) = code_and_message(&long, &p);
        assert_eq!(code, ErrorCode::InvalidImageUrl);
        assert!(msg.contains("2048"), "{msg}");
        let (_, msg) = code_and_message("ftp://example.com/a.png", &p);
        assert!(msg.contains("http"), "{msg}");
        let (_, msg) = code_and_message("http://0x7f.1/", &p);
        assert!(msg.contains("127.0.0.1"), "{msg}");
    }

    #[test]
    fn policy_exemptions() {
        let open = FetchPolicy {
            allow_private_hosts: true,
            ..FetchPolicy::default()
        };
        assert!(parse_image_url("http://127.0.0.1:9/x", "image_url", &open).is_ok());
        assert!(parse_image_url("http://localhost:9/x", "image_url", &open).is_ok());

        let by_ip = FetchPolicy {
            allowed_private_ips: vec!["127.0.0.1".parse().unwrap()],
            ..FetchPolicy::default()
        };
        assert!(parse_image_url("http://127.0.0.1:9/x", "image_url", &by_ip).is_ok());
        assert!(parse_image_url("http://127.0.0.1:10/x", "image_url", &by_ip).is_ok());
        assert!(parse_image_url("http://127.0.0.2:9/x", "image_url", &by_ip).is_err());
        assert!(!by_ip.refuses("127.0.0.1".parse().unwrap(), None));

        let by_addr = FetchPolicy {
            allowed_test_addrs: vec!["127.0.0.1:9".parse().unwrap()],
            ..FetchPolicy::default()
        };
        assert!(parse_image_url("http://127.0.0.1:9/x", "image_url", &by_addr).is_ok());
        assert!(parse_image_url("http://127.0.0.1:10/x", "image_url", &by_addr).is_err());
        assert!(parse_image_url("http://127.0.0.1/x", "image_url", &by_addr).is_err());
        // Names resolving to the address are not covered: the resolver has no port.
        assert!(by_addr.refuses("127.0.0.1".parse().unwrap(), None));
    }

    #[test]
    fn durations_read_well() {
        assert_eq!(human_duration(Duration::from_secs(15)), "15s");
        assert_eq!(human_duration(Duration::from_millis(500)), "500ms");
        assert_eq!(human_duration(Duration::from_millis(1500)), "1.5s");
    }
}

#[cfg(test)]
mod resolver_tests {
    use super::*;
    use std::str::FromStr;

    fn resolver(policy: FetchPolicy, hosts: &[(&str, &[&str])]) -> CheckedResolver {
        CheckedResolver {
            policy: Arc::new(policy),
            static_hosts: Arc::new(
                hosts
                    .iter()
                    .map(|(n, ips)| {
                        (
                            normalize_host(n),
                            ips.iter().map(|i| i.parse().unwrap()).collect(),
                        )
                    })
                    .collect(),
            ),
        }
    }

    async fn resolve(r: &CheckedResolver, name: &str) -> Result<Vec<SocketAddr>, String> {
        match r.resolve(Name::from_str(name).unwrap()).await {
            Ok(a) => Ok(a.collect()),
            Err(e) if e.downcast_ref::<RefusedAddress>().is_some() => Err("refused".into()),
            Err(e) if e.downcast_ref::<DnsFailure>().is_some() => Err("dns".into()),
            Err(e) => Err(e.to_string()),
        }
    }

    #[tokio::test]
    async fn names_resolving_to_refused_addresses_are_refused() {
        let hosts: &[(&str, &[&str])] = &[
            ("public.test", &["93.184.216.34"]),
            ("mixed.test", &["93.184.216.34", "10.0.0.7"]),
            ("mapped.test", &["::ffff:127.0.0.1"]),
            ("Internal.Test.", &["10.1.2.3"]),
        ];
        let strict = resolver(FetchPolicy::default(), hosts);
        assert_eq!(resolve(&strict, "localhost").await, Err("refused".into()));
        assert_eq!(resolve(&strict, "mixed.test").await, Err("refused".into()));
        assert_eq!(resolve(&strict, "mapped.test").await, Err("refused".into()));
        assert_eq!(
            resolve(&strict, "internal.test").await,
            Err("refused".into())
        );
        assert_eq!(
            resolve(&strict, "public.test").await.unwrap(),
            vec!["93.184.216.34:0".parse().unwrap()]
        );
        assert_eq!(
            resolve(&strict, "no-such-host.invalid").await,
            Err("dns".into())
        );

        let open = resolver(
            FetchPolicy {
                allow_private_hosts: true,
                ..FetchPolicy::default()
            },
            hosts,
        );
        let addrs = resolve(&open, "localhost").await.unwrap();
        assert!(!addrs.is_empty() && addrs.iter().all(|a| a.ip().is_loopback()));
        assert_eq!(resolve(&open, "mixed.test").await.unwrap().len(), 2);

        let exempt = resolver(
            FetchPolicy {
                allowed_private_ips: vec!["10.1.2.3".parse().unwrap()],
                ..FetchPolicy::default()
            },
            hosts,
        );
        assert!(resolve(&exempt, "internal.test").await.is_ok());
        assert_eq!(resolve(&exempt, "mixed.test").await, Err("refused".into()));
    }
}
