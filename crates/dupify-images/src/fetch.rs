//! Downloading `image_url` without becoming a proxy into the server's own network.
//!
//! - Only http/https URLs with a host and no credentials.
//! - Every address a host name resolves to is checked, and the connection is made to
//!   exactly those checked addresses (our resolver is the only one reqwest uses), so a
//!   DNS answer cannot swap in a private address between check and connect.
//! - Redirects are followed by hand, at most `max_redirects`, each target re-validated.
//! - The body is streamed with the byte cap enforced as it arrives.
//! - Proxies from the environment are ignored: a proxy would resolve names itself.

use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::time::Duration;

use bytes::{Bytes, BytesMut};
use dupify_core::{ApiError, ErrorCode};
use futures::StreamExt;
use reqwest::dns::{Addrs, Name, Resolve, Resolving};
use url::{Host, Url};

use crate::ip::is_refused_ip;

const MAX_URL_LEN: usize = 2048;

#[derive(Debug, Clone)]
pub struct FetchPolicy {
    /// Fetch from private/loopback addresses too. For tests only.
    pub allow_private_hosts: bool,
    /// Exact addresses exempt from the refusal (an internal image host, or a test server).
    pub allowed_private_ips: Vec<IpAddr>,
    pub connect_timeout: Duration,
    /// For the whole download, redirects included.
    pub total_timeout: Duration,
    pub max_redirects: u8,
    pub max_bytes: usize,
    pub user_agent: String,
}

impl Default for FetchPolicy {
    fn default() -> Self {
        FetchPolicy {
            allow_private_hosts: false,
            allowed_private_ips: Vec::new(),
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
    fn refuses(&self, ip: IpAddr) -> bool {
        !self.allow_private_hosts && is_refused_ip(ip) && !self.allowed_private_ips.contains(&ip)
    }
}

fn bad_url(parameter: &str, why: &str) -> ApiError {
    ApiError::new(ErrorCode::InvalidImageUrl, format!("{parameter} {why}"))
        .detail("parameter", parameter)
}

fn refused_host(parameter: &str, host: &str) -> ApiError {
    bad_url(
        parameter,
        &format!("points at a host this server does not fetch from ({host})"),
    )
}

/// Validates a client's URL: syntax, scheme, host, no credentials, and a literal IP
/// address (in any spelling the URL standard accepts) must not be a refused one.
pub fn parse_image_url(raw: &str, parameter: &str, policy: &FetchPolicy) -> Result<Url, ApiError> {
    let raw = raw.trim();
    if raw.len() > MAX_URL_LEN {
        return Err(bad_url(
            parameter,
            &format!("is longer than {MAX_URL_LEN} characters"),
        ));
    }
    let url =
        Url::parse(raw).map_err(|e| bad_url(parameter, &format!("is not a valid URL ({e})")))?;
    check_url(url, parameter, policy)
}

fn check_url(url: Url, parameter: &str, policy: &FetchPolicy) -> Result<Url, ApiError> {
    if !matches!(url.scheme(), "http" | "https") {
        return Err(bad_url(parameter, "must use http or https"));
    }
    if !url.username().is_empty() || url.password().is_some() {
        return Err(bad_url(parameter, "must not contain credentials"));
    }
    match url.host() {
        None => return Err(bad_url(parameter, "has no host")),
        Some(Host::Ipv4(ip)) if policy.refuses(IpAddr::V4(ip)) => {
            return Err(refused_host(parameter, &ip.to_string()))
        }
        Some(Host::Ipv6(ip)) if policy.refuses(IpAddr::V6(ip)) => {
            return Err(refused_host(parameter, &ip.to_string()))
        }
        Some(Host::Domain(d)) if !policy.allow_private_hosts => {
            let d = d.trim_end_matches('.').to_ascii_lowercase();
            if d == "localhost" || d.ends_with(".localhost") {
                return Err(refused_host(parameter, &d));
            }
        }
        _ => {}
    }
    Ok(url)
}

/// Marks a resolution refused by policy, so the error can be told apart from a DNS failure.
#[derive(Debug)]
struct RefusedAddress(String);

impl std::fmt::Display for RefusedAddress {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{} resolves to a refused address", self.0)
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

/// The only resolver the HTTP client uses: system DNS, then the address policy.
struct CheckedResolver {
    policy: Arc<FetchPolicy>,
}

impl Resolve for CheckedResolver {
    fn resolve(&self, name: Name) -> Resolving {
        let policy = self.policy.clone();
        let host = name.as_str().to_owned();
        Box::pin(async move {
            let addrs: Vec<SocketAddr> = tokio::net::lookup_host((host.as_str(), 0))
                .await
                .map_err(|_| DnsFailure(host.clone()))?
                .collect();
            if addrs.is_empty() {
                return Err(DnsFailure(host).into());
            }
            // One refused answer taints the name: a mixed answer is how rebinding tricks work.
            if addrs.iter().any(|a| policy.refuses(a.ip())) {
                return Err(RefusedAddress(host).into());
            }
            let out: Addrs = Box::new(addrs.into_iter());
            Ok(out)
        })
    }
}

/// Downloads images under a [`FetchPolicy`].
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

impl Fetcher {
    pub fn new(policy: FetchPolicy) -> Self {
        let policy = Arc::new(policy);
        let client = reqwest::Client::builder()
            .redirect(reqwest::redirect::Policy::none())
            .no_proxy()
            .dns_resolver(Arc::new(CheckedResolver {
                policy: policy.clone(),
            }))
            .connect_timeout(policy.connect_timeout)
            .timeout(policy.total_timeout)
            .user_agent(policy.user_agent.clone())
            .build()
            .unwrap_or_else(|_| reqwest::Client::new());
        Fetcher { client, policy }
    }

    pub fn policy(&self) -> &FetchPolicy {
        &self.policy
    }

    fn fetch_failed(&self, parameter: &str, why: impl Into<String>) -> ApiError {
        ApiError::new(
            ErrorCode::ImageFetchFailed,
            format!("could not download the image: {}", why.into()),
        )
        .detail("parameter", parameter)
    }

    fn map_send_error(&self, e: &reqwest::Error, parameter: &str, host: &str) -> ApiError {
        if find_cause::<RefusedAddress>(e).is_some() {
            return refused_host(parameter, host);
        }
        if find_cause::<DnsFailure>(e).is_some() {
            return self.fetch_failed(
                parameter,
                format!("the host name {host} could not be resolved"),
            );
        }
        if e.is_timeout() {
            return self.fetch_failed(
                parameter,
                format!("timed out after {:?}", self.policy.total_timeout),
            );
        }
        if e.is_connect() {
            return self.fetch_failed(parameter, format!("could not connect to {host}"));
        }
        self.fetch_failed(parameter, "the connection failed")
    }

    /// Downloads `url` (already validated with [`parse_image_url`]).
    pub async fn fetch(&self, url: &Url, parameter: &str) -> Result<Bytes, ApiError> {
        match tokio::time::timeout(
            self.policy.total_timeout,
            self.fetch_inner(url.clone(), parameter),
        )
        .await
        {
            Ok(r) => r,
            Err(_) => Err(self.fetch_failed(
                parameter,
                format!("timed out after {:?}", self.policy.total_timeout),
            )),
        }
    }

    async fn fetch_inner(&self, mut url: Url, parameter: &str) -> Result<Bytes, ApiError> {
        let mut redirects = 0u8;
        loop {
            url = check_url(url, parameter, &self.policy)?;
            let host = url.host_str().unwrap_or_default().to_owned();
            let res = self
                .client
                .get(url.clone())
                .header(reqwest::header::ACCEPT, "image/*")
                .send()
                .await
                .map_err(|e| self.map_send_error(&e, parameter, &host))?;
            let status = res.status();
            if status.is_redirection() {
                let Some(location) = res
                    .headers()
                    .get(reqwest::header::LOCATION)
                    .and_then(|v| v.to_str().ok())
                else {
                    return Err(self.fetch_failed(
                        parameter,
                        format!("HTTP {} without a Location", status.as_u16()),
                    ));
                };
                if redirects >= self.policy.max_redirects {
                    return Err(self.fetch_failed(
                        parameter,
                        format!("more than {} redirects", self.policy.max_redirects),
                    ));
                }
                redirects += 1;
                url = url.join(location).map_err(|_| {
                    self.fetch_failed(parameter, "a redirect pointed at an invalid URL")
                })?;
                continue;
            }
            if !status.is_success() {
                return Err(self
                    .fetch_failed(
                        parameter,
                        format!("the server answered HTTP {}", status.as_u16()),
                    )
                    .detail("status", status.as_u16()));
            }
            let max = self.policy.max_bytes;
            if res.content_length().is_some_and(|n| n > max as u64) {
                return Err(too_large(parameter, max));
            }
            let mut body = BytesMut::with_capacity(
                res.content_length().unwrap_or(64 * 1024).min(max as u64) as usize,
            );
            let mut stream = res.bytes_stream();
            while let Some(chunk) = stream.next().await {
                let chunk = chunk.map_err(|e| {
                    if e.is_timeout() {
                        self.fetch_failed(
                            parameter,
                            format!("timed out after {:?}", self.policy.total_timeout),
                        )
                    } else {
                        self.fetch_failed(parameter, "the connection broke during the download")
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
                    "the URL returned an empty body",
                )
                .detail("parameter", parameter));
            }
            return Ok(body.freeze());
        }
    }
}

fn too_large(parameter: &str, max: usize) -> ApiError {
    ApiError::new(
        ErrorCode::ImageTooLarge,
        format!("the image is larger than {max} bytes"),
    )
    .detail("parameter", parameter)
    .detail("max_bytes", max)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn url_validation() {
        let p = FetchPolicy::default();
        let ok = parse_image_url("https://cdn.example.com/a.jpg?x=1", "image_url", &p).unwrap();
        assert_eq!(ok.host_str(), Some("cdn.example.com"));
        for bad in [
            "ftp://example.com/a.png",
            "file:///etc/passwd",
            "data:image/png;base64,AAAA",
            "http://user:pw@example.com/a.png",
            "http://",
            "not a url",
            "http://127.0.0.1/a.png",
            "http://2130706433/",
            "http://0x7f.1/",
            "http://[::1]/",
            "http://[::ffff:7f00:1]/",
            "http://169.254.169.254/latest/meta-data/",
            "http://localhost:8080/",
            "http://foo.localhost/",
            "http://LOCALHOST./",
        ] {
            let e = parse_image_url(bad, "image_url", &p).unwrap_err();
            assert_eq!(e.code, ErrorCode::InvalidImageUrl, "{bad}");
            assert_eq!(e.details.as_ref().unwrap()["parameter"], "image_url");
        }
        let e =
            parse_image_url(&format!("https://e.com/{}", "a".repeat(3000)), "u", &p).unwrap_err();
        assert_eq!(e.code, ErrorCode::InvalidImageUrl);
        let open = FetchPolicy {
            allow_private_hosts: true,
            ..FetchPolicy::default()
        };
        assert!(parse_image_url("http://127.0.0.1:9/x", "image_url", &open).is_ok());
        let exempt = FetchPolicy {
            allowed_private_ips: vec!["127.0.0.1".parse().unwrap()],
            ..FetchPolicy::default()
        };
        assert!(parse_image_url("http://127.0.0.1:9/x", "image_url", &exempt).is_ok());
        assert!(parse_image_url("http://127.0.0.2:9/x", "image_url", &exempt).is_err());
    }
}

#[cfg(test)]
mod resolver_tests {
    use super::*;
    use std::str::FromStr;

    #[tokio::test]
    async fn names_resolving_to_refused_addresses_are_refused() {
        let r = CheckedResolver {
            policy: Arc::new(FetchPolicy::default()),
        };
        let err = match r.resolve(Name::from_str("localhost").unwrap()).await {
            Ok(_) => panic!("localhost must be refused"),
            Err(e) => e,
        };
        assert!(err.downcast_ref::<RefusedAddress>().is_some(), "{err}");
        let open = CheckedResolver {
            policy: Arc::new(FetchPolicy {
                allow_private_hosts: true,
                ..FetchPolicy::default()
            }),
        };
        let addrs: Vec<_> = open
            .resolve(Name::from_str("localhost").unwrap())
            .await
            .unwrap()
            .collect();
        assert!(addrs.iter().all(|a| a.ip().is_loopback()));
        let err = match r
            .resolve(Name::from_str("no-such-host.invalid").unwrap())
            .await
        {
            Ok(_) => panic!("must fail"),
            Err(e) => e,
        };
        assert!(err.downcast_ref::<DnsFailure>().is_some(), "{err}");
    }
}
