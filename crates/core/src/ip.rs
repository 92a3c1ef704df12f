//! Public IPv4 addresses: what an echo service's answer may be before a JIT rule opens a port
//! for it.

use std::net::{IpAddr, Ipv4Addr};

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum IpError {
    #[error("'{0}' is not an IP address")]
    NotAnAddress(String),
    #[error("{0} is an IPv6 address; JIT rules need the IPv4 address you reach the jump box from")]
    Ipv6(String),
    #[error("{0} is {1}, not a public address: JIT would open the port for nobody you can be")]
    Unusable(Ipv4Addr, &'static str),
}

/// Parses an echo service's answer and accepts only a usable public IPv4.
/// `allow_loopback` is for the simulator, whose jump boxes live on loopback.
pub fn parse_public_ipv4(text: &str, allow_loopback: bool) -> Result<Ipv4Addr, IpError> {
    let t = text.trim();
    let ip: IpAddr = t
        .parse()
        .map_err(|_| IpError::NotAnAddress(t.chars().take(64).collect()))?;
    let v4 = match ip {
        IpAddr::V4(v4) => v4,
        IpAddr::V6(v6) => v6
            .to_ipv4_mapped()
            .ok_or_else(|| IpError::Ipv6(t.to_string()))?,
    };
    if let Some(why) = unusable(v4, allow_loopback) {
        return Err(IpError::Unusable(v4, why));
    }
    Ok(v4)
}

fn unusable(ip: Ipv4Addr, allow_loopback: bool) -> Option<&'static str> {
    let o = ip.octets();
    if ip.is_loopback() {
        return (!allow_loopback).then_some("a loopback address");
    }
    if ip.is_unspecified() {
        return Some("the unspecified address");
    }
    if ip.is_private() {
        return Some("a private (RFC 1918) address");
    }
    if ip.is_link_local() {
        return Some("a link-local address");
    }
    if o[0] == 100 && (64..128).contains(&o[1]) {
        return Some("a carrier-grade NAT (shared) address");
    }
    if ip.is_multicast() || ip.is_broadcast() || o[0] >= 240 {
        return Some("a multicast or reserved address");
    }
    if ip.is_documentation() || (o[0] == 198 && (o[1] == 18 || o[1] == 19)) || o[0] == 0 {
        return Some("a documentation, benchmarking or reserved address");
    }
    None
}

/// Whether `ip` is inside a JIT source prefix: `*` (also `Any`, `Internet`), an address, or a
/// CIDR block. Anything else admits nothing.
pub fn prefix_contains(prefix: &str, ip: Ipv4Addr) -> bool {
    let p = prefix.trim();
    if p == "*" || p.eq_ignore_ascii_case("any") || p.eq_ignore_ascii_case("internet") {
        return true;
    }
    let (net, bits) = p.split_once('/').unwrap_or((p, "32"));
    let (Ok(net), Ok(bits)) = (net.parse::<Ipv4Addr>(), bits.parse::<u32>()) else {
        return false;
    };
    if bits > 32 {
        return false;
    }
    let mask = if bits == 0 {
        0
    } else {
        u32::MAX << (32 - bits)
    };
    u32::from(net) & mask == u32::from(ip) & mask
}

/// Whether a JIT rule's source (prefixes, comma-separated) admits `ip`.
pub fn source_admits(source: &str, ip: &str) -> bool {
    let Ok(ip) = ip.trim().parse() else {
        return false;
    };
    source.split(',').any(|s| prefix_contains(s, ip))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn accepts_public_and_refuses_the_rest() {
        assert_eq!(
            parse_public_ipv4("20.50.2.1\n", false),
            Ok(Ipv4Addr::new(20, 50, 2, 1))
        );
        assert_eq!(
            parse_public_ipv4("::ffff:20.50.2.1", false),
            Ok(Ipv4Addr::new(20, 50, 2, 1))
        );
        assert_eq!(
            parse_public_ipv4("127.0.0.1", true),
            Ok(Ipv4Addr::LOCALHOST)
        );
        for bad in [
            "127.0.0.1",
            "10.1.2.3",
            "192.168.1.1",
            "172.16.0.9",
            "169.254.1.1",
            "100.64.0.1",
            "0.0.0.0",
            "255.255.255.255",
            "224.0.0.1",
            "192.0.2.1",
            "198.18.0.1",
            "2001:db8::1",
            "::1",
            "hello",
            "",
            "1.2.3.4.5",
        ] {
            assert!(parse_public_ipv4(bad, false).is_err(), "{bad}");
        }
        assert!(matches!(
            parse_public_ipv4("2001:db8::1", false),
            Err(IpError::Ipv6(_))
        ));
    }

    #[test]
    fn sources_admit_what_they_should() {
        let ip: Ipv4Addr = "203.0.113.7".parse().expect("ip");
        assert!(prefix_contains("*", ip));
        assert!(prefix_contains("203.0.113.7", ip));
        assert!(prefix_contains("203.0.113.0/24", ip));
        assert!(prefix_contains("0.0.0.0/0", ip));
        assert!(!prefix_contains("203.0.114.0/24", ip));
        assert!(!prefix_contains("203.0.113.8", ip));
        assert!(!prefix_contains("not an address", ip));
        assert!(!prefix_contains("203.0.113.0/40", ip));
        assert!(source_admits("203.0.113.7/32", "203.0.113.7"));
        assert!(source_admits("198.51.100.1, 203.0.113.7", "203.0.113.7"));
        assert!(!source_admits("203.0.113.70", "203.0.113.7"));
        assert!(!source_admits("203.0.113.7", "not an address"));
    }

    #[test]
    fn property_every_public_looking_octet_pattern_is_classified_without_panic() {
        for a in (0..=255u16).step_by(3) {
            for b in (0..=255u16).step_by(17) {
                let text = format!("{a}.{b}.{}.{}", (a * 7) % 256, (b * 13) % 256);
                let _ = parse_public_ipv4(&text, false);
            }
        }
    }
}
