//! The guard against server-side request forgery: which addresses a fetch may reach.
//!
//! It owns the address rules and the DNS resolver that applies them after resolution (so a
//! hostname pointing at 127.0.0.1 is caught, not only literal IPs). It must not fetch anything;
//! `fetch/mod.rs` plugs the resolver and [`check_literal_host`] into the HTTP client.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};

use reqwest::dns::{Addrs, Name, Resolve, Resolving};
use url::{Host, Url};

/// A fetch was refused because its target address is not public.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{host} resolves to {addr}, a non-public address (set allow_private_networks to reach it)")]
pub struct BlockedAddress {
    /// The host as written in the URL.
    pub host: String,
    /// The first refused address.
    pub addr: IpAddr,
}

/// Whether `ip` is outside the public internet: loopback, private, link-local (cloud
/// metadata lives at 169.254.169.254), shared, documentation, multicast or reserved.
pub fn is_non_public(ip: IpAddr) -> bool {
    match ip {
        IpAddr::V4(v4) => is_non_public_v4(v4),
        IpAddr::V6(v6) => is_non_public_v6(v6),
    }
}

fn is_non_public_v4(ip: Ipv4Addr) -> bool {
    let [a, b, c, _] = ip.octets();
    ip.is_unspecified()
        || ip.is_loopback()
        || ip.is_private()
        || ip.is_link_local()
        || ip.is_multicast()
        || ip.is_broadcast()
        || ip.is_documentation()
        || a == 0 // "this network"
        || (a == 100 && (64..128).contains(&b)) // shared address space (CGNAT)
        || (a == 192 && b == 0 && c == 0) // IETF protocol assignments
        || (a == 198 && (b == 18 || b == 19)) // benchmarking
        || a >= 240 // reserved
}

fn is_non_public_v6(ip: Ipv6Addr) -> bool {
    if let Some(v4) = ip.to_ipv4_mapped() {
        return is_non_public_v4(v4);
    }
    let segments = ip.segments();
    let [s0, s1, s2, s3, s4, s5, hi, lo] = segments;
    let low_v4 = Ipv4Addr::new((hi >> 8) as u8, hi as u8, (lo >> 8) as u8, lo as u8);
    // Forms that embed an IPv4 address, which must pass the IPv4 rules: NAT64 (64:ff9b::/96),
    // IPv4-compatible (::a.b.c.d, deprecated but still routed by some stacks) and
    // IPv4-translated (::ffff:0:a.b.c.d).
    if [s0, s1, s2, s3, s4, s5] == [0x64, 0xff9b, 0, 0, 0, 0]
        || ([s0, s1, s2, s3, s4, s5] == [0, 0, 0, 0, 0, 0] && !ip.is_loopback() && !ip.is_unspecified())
        || [s0, s1, s2, s3, s4, s5] == [0, 0, 0, 0, 0xffff, 0]
    {
        return is_non_public_v4(low_v4);
    }
    // 6to4 (2002::/16) carries its IPv4 address in the next 32 bits.
    if s0 == 0x2002 {
        return is_non_public_v4(Ipv4Addr::new((s1 >> 8) as u8, s1 as u8, (s2 >> 8) as u8, s2 as u8));
    }
    // Local-use NAT64 (64:ff9b:1::/48, RFC 8215) translates into the operator's own network.
    if s0 == 0x64 && s1 == 0xff9b && s2 == 1 {
        return true;
    }
    ip.is_unspecified()
        || ip.is_loopback()
        || ip.is_multicast()
        || ip.is_unique_local()
        || ip.is_unicast_link_local()
        || (segments[0] & 0xffc0) == 0xfec0 // deprecated site-local
        || (segments[0] == 0x2001 && segments[1] == 0x0db8) // documentation
}

/// Refuses a URL whose host is a literal non-public IP. Hostnames are checked by
/// [`GuardedResolver`] after DNS, since literal IPs never reach a resolver.
pub fn check_literal_host(url: &Url, allow_private: bool) -> Result<(), BlockedAddress> {
    if allow_private {
        return Ok(());
    }
    let ip = match url.host() {
        Some(Host::Ipv4(v4)) => IpAddr::V4(v4),
        Some(Host::Ipv6(v6)) => IpAddr::V6(v6),
        _ => return Ok(()),
    };
    if is_non_public(ip) {
        return Err(BlockedAddress { host: ip.to_string(), addr: ip });
    }
    Ok(())
}

/// A DNS resolver that drops non-public addresses unless they are allowed, and fails the
/// lookup with [`BlockedAddress`] when nothing public is left.
#[derive(Debug, Clone, Copy)]
pub struct GuardedResolver {
    /// Whether loopback and private addresses may be returned (local tests set this).
    pub allow_private: bool,
}

impl Resolve for GuardedResolver {
    fn resolve(&self, name: Name) -> Resolving {
        let allow_private = self.allow_private;
        Box::pin(async move {
            let host = name.as_str().to_string();
            let resolved: Vec<SocketAddr> = tokio::net::lookup_host((host.as_str(), 0)).await?.collect();
            let first = resolved.first().map(SocketAddr::ip);
            let allowed: Vec<SocketAddr> =
                resolved.into_iter().filter(|addr| allow_private || !is_non_public(addr.ip())).collect();
            match (allowed.is_empty(), first) {
                (true, Some(addr)) => Err(Box::new(BlockedAddress { host, addr }) as _),
                _ => Ok(Box::new(allowed.into_iter()) as Addrs),
            }
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn non_public_addresses_are_recognised() {
        for ip in [
            "127.0.0.1",
            "10.1.2.3",
            "172.16.0.1",
            "192.168.1.1",
            "169.254.169.254",
            "100.64.0.1",
            "0.0.0.0",
            "224.0.0.1",
            "255.255.255.255",
            "::1",
            "fc00::1",
            "fe80::1",
            "::ffff:127.0.0.1",
            "64:ff9b::a9fe:a9fe",
            "::",
            "::127.0.0.1",
            "::10.0.0.1",
            "::ffff:0:127.0.0.1",
            "::ffff:0:a9fe:a9fe",
            "64:ff9b:1::8.8.8.8",
            "2002:7f00:1::",
            "2002:a9fe:a9fe::1",
        ] {
            assert!(is_non_public(ip.parse().unwrap()), "{ip}");
        }
        for ip in ["93.184.216.34", "8.8.8.8", "2606:4700::1111", "::ffff:8.8.8.8", "::8.8.8.8", "2002:808:808::1"] {
            assert!(!is_non_public(ip.parse().unwrap()), "{ip}");
        }
    }

    #[test]
    fn literal_hosts_are_checked_unless_allowed() {
        let metadata = Url::parse("http://169.254.169.254/latest/meta-data/").unwrap();
        assert!(check_literal_host(&metadata, false).is_err());
        assert!(check_literal_host(&metadata, true).is_ok());
        let v6 = Url::parse("http://[::1]:8080/").unwrap();
        assert!(check_literal_host(&v6, false).is_err());
    }

    #[tokio::test]
    async fn localhost_is_refused_after_resolution() {
        let resolver = GuardedResolver { allow_private: false };
        let name: Name = "localhost".parse().unwrap();
        let err = resolver.resolve(name).await.err().unwrap();
        assert!(err.downcast_ref::<BlockedAddress>().is_some(), "{err}");
        let allowed = GuardedResolver { allow_private: true };
        let name: Name = "localhost".parse().unwrap();
        assert!(allowed.resolve(name).await.is_ok());
    }
}
