//! Which webhook targets may be called: no loopback, private, link-local or otherwise
//! internal address (unless the operator allows private targets), judged on the literal
//! address in the URL and again on every address a name resolves to, at every connection
//! (redirects included), so a name that resolves elsewhere later is still refused.

use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::time::Duration;

use reqwest::Url;
use reqwest::dns::{Addrs, Name, Resolve, Resolving};

/// Most characters in a webhook URL.
pub const MAX_URL_CHARS: usize = 2048;

/// The longest a name may take to resolve.
const RESOLVE_TIMEOUT: Duration = Duration::from_secs(3);

/// Why a target is refused.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum TargetError {
    #[error("the URL does not parse")]
    Invalid,
    #[error("the URL must be http or https")]
    Scheme,
    #[error("the URL is longer than {MAX_URL_CHARS} characters")]
    TooLong,
    #[error("the URL must not carry a user name or password")]
    Credentials,
    #[error("the URL needs a host")]
    NoHost,
    #[error("the host {0} is a loopback, private or link-local address")]
    Private(IpAddr),
    #[error("the host {0} does not resolve")]
    Unresolved(String),
    // The address itself is not shown: an administrator's error must not be a way to look up
    // internal names.
    #[error("the host {host} resolves to a loopback, private or link-local address")]
    ResolvesPrivate { host: String },
}

/// Whether `address` is one a webhook must not reach without `--webhook-allow-private-targets`.
pub fn is_internal(address: IpAddr) -> bool {
    match address {
        IpAddr::V4(v4) => is_internal_v4(v4),
        IpAddr::V6(v6) => {
            if let Some(v4) = v6.to_ipv4_mapped() {
                return is_internal_v4(v4);
            }
            let segments = v6.segments();
            let first = segments[0];
            let embedded_v4 =
                |high: u16, low: u16| Ipv4Addr::from_bits((u32::from(high) << 16) | u32::from(low));
            v6.is_loopback()
                || v6.is_unspecified()
                || v6.is_multicast()
                // ::/96, the deprecated IPv4-compatible form; ::ffff:0:0/96, IPv4-translated
                || segments[..6] == [0; 6]
                || segments[..6] == [0, 0, 0, 0, 0xffff, 0]
                // 2001::/32 Teredo
                || (first == 0x2001 && segments[1] == 0)
                // fc00::/7 unique local, fe80::/10 link-local, fec0::/10 site-local
                || (first & 0xfe00) == 0xfc00
                || (first & 0xffc0) == 0xfe80
                || (first & 0xffc0) == 0xfec0
                // 100::/64 discard
                || segments[..4] == [0x100, 0, 0, 0]
                // 64:ff9b::/96 NAT64 of an internal IPv4 address; 64:ff9b:1::/48 local NAT64
                || (segments[..6] == [0x64, 0xff9b, 0, 0, 0, 0]
                    && is_internal_v4(embedded_v4(segments[6], segments[7])))
                || segments[..3] == [0x64, 0xff9b, 1]
                // 2002::/16 6to4 of an internal IPv4 address
                || (first == 0x2002 && is_internal_v4(embedded_v4(segments[1], segments[2])))
        }
    }
}

fn is_internal_v4(v4: Ipv4Addr) -> bool {
    let [a, b, ..] = v4.octets();
    v4.is_loopback()
        || v4.is_private()
        || v4.is_link_local()
        || v4.is_unspecified()
        || v4.is_broadcast()
        || v4.is_multicast()
        || v4.is_documentation()
        // 0.0.0.0/8, 100.64.0.0/10 (carrier-grade NAT), 192.0.0.0/24 (protocol assignments),
        // 198.18.0.0/15 (benchmarking), 240/4
        || a == 0
        || v4.octets()[..3] == [192, 0, 0]
        || (a == 100 && (64..128).contains(&b))
        || (a == 198 && (b == 18 || b == 19))
        || a >= 240
}

/// Checks a URL's form and, unless `allow_private`, its literal address.
pub fn check_form(url: &str, allow_private: bool) -> Result<Url, TargetError> {
    if url.chars().count() > MAX_URL_CHARS {
        return Err(TargetError::TooLong);
    }
    let parsed = Url::parse(url).map_err(|_| TargetError::Invalid)?;
    if !matches!(parsed.scheme(), "http" | "https") {
        return Err(TargetError::Scheme);
    }
    if !parsed.username().is_empty() || parsed.password().is_some() {
        return Err(TargetError::Credentials);
    }
    let host = parsed.host_str().ok_or(TargetError::NoHost)?;
    if !allow_private
        && let Some(address) = literal_address(host)
        && is_internal(address)
    {
        return Err(TargetError::Private(address));
    }
    Ok(parsed)
}

/// Checks a URL fully: its form, then (unless `allow_private`) every address its host resolves
/// to right now.
pub async fn check(url: &str, allow_private: bool) -> Result<Url, TargetError> {
    let parsed = check_form(url, allow_private)?;
    if allow_private {
        return Ok(parsed);
    }
    let host = parsed.host_str().ok_or(TargetError::NoHost)?.to_owned();
    if literal_address(&host).is_some() {
        return Ok(parsed);
    }
    let port = parsed.port_or_known_default().unwrap_or(443);
    let addresses: Vec<SocketAddr> = tokio::time::timeout(
        RESOLVE_TIMEOUT,
        tokio::net::lookup_host((host.as_str(), port)),
    )
    .await
    .map_err(|_| TargetError::Unresolved(host.clone()))?
    .map_err(|_| TargetError::Unresolved(host.clone()))?
    .collect();
    if addresses.is_empty() {
        return Err(TargetError::Unresolved(host));
    }
    if let Some(address) = addresses.iter().find(|address| is_internal(address.ip())) {
        tracing::info!(%host, address = %address.ip(), "webhook target refused: resolves to an internal address");
        return Err(TargetError::ResolvesPrivate { host });
    }
    Ok(parsed)
}

/// The address a URL host names literally (`[::1]` included), if it is one.
pub fn literal_address(host: &str) -> Option<IpAddr> {
    host.trim_start_matches('[')
        .trim_end_matches(']')
        .parse()
        .ok()
}

/// The resolver every webhook request uses: it drops internal addresses (unless allowed), and
/// fails when none is left, so no connection is ever opened to one.
#[derive(Clone, Copy, Debug)]
pub struct GuardedResolver {
    pub allow_private: bool,
}

impl Resolve for GuardedResolver {
    fn resolve(&self, name: Name) -> Resolving {
        let allow_private = self.allow_private;
        Box::pin(async move {
            let host = name.as_str().to_owned();
            let found: Vec<SocketAddr> =
                tokio::time::timeout(RESOLVE_TIMEOUT, tokio::net::lookup_host((host.as_str(), 0)))
                    .await
                    .map_err(|_| format!("{host} did not resolve in time"))??
                    .filter(|address| allow_private || !is_internal(address.ip()))
                    .collect();
            if found.is_empty() {
                return Err(format!("{host} resolves to no address a webhook may reach").into());
            }
            Ok(Box::new(found.into_iter()) as Addrs)
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn internal_addresses_are_refused_and_public_ones_pass() {
        for url in [
            "http://127.0.0.1/hook",
            "http://10.0.0.1/",
            "http://[::1]:8080/",
            "http://169.254.169.254/latest/meta-data",
            "http://192.168.1.1/",
            "http://[::ffff:127.0.0.1]/",
            "http://[fd00::1]/",
            "http://0.0.0.0/",
            "http://100.64.0.1/",
            "http://[::127.0.0.1]/",
            "http://[fec0::1]/",
            "http://[2002:7f00:1::]/",
            "http://192.0.0.1/",
            "http://[100::1]/",
            "http://[64:ff9b:1::1]/",
            "http://[::ffff:0:7f00:1]/",
            "http://[2001:0:4136:e378::1]/",
        ] {
            assert!(
                matches!(check_form(url, false), Err(TargetError::Private(_))),
                "{url}"
            );
            assert!(check_form(url, true).is_ok(), "{url}");
        }
        assert!(check_form("https://93.184.215.14/hook", false).is_ok());
    }

    #[test]
    fn only_plain_http_urls_without_credentials_are_taken() {
        assert_eq!(
            check_form("ftp://example.com/", false),
            Err(TargetError::Scheme)
        );
        assert_eq!(
            check_form("https://user:pw@example.com/", false),
            Err(TargetError::Credentials)
        );
        assert_eq!(check_form("not a url", false), Err(TargetError::Invalid));
    }

    #[tokio::test]
    async fn a_name_that_resolves_to_loopback_is_refused() {
        assert!(matches!(
            check("http://localhost:9/hook", false).await,
            Err(TargetError::ResolvesPrivate { .. })
        ));
        assert!(check("http://localhost:9/hook", true).await.is_ok());
    }
}
