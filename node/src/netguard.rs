//! Which addresses a user's word may make this node connect to.
//!
//! A movie request (a magnet link or `.torrent` a viewer gave the tracker) names trackers
//! and peers; unchecked, it could make the node open connections to its own loopback
//! services, its LAN, or its cloud provider's metadata endpoint. [`non_public`] says whether
//! an address is one a request may not name (loopback, private, link-local, CGNAT,
//! benchmark, documentation, unspecified, multicast, reserved, and IPv6 forms that embed
//! such an IPv4 address: IPv4-mapped, IPv4-compatible, NAT64 and 6to4), and
//! [`check_host`] resolves a host name and checks every address it resolves to.
//! [`blocklist`] writes the same ranges in the format of librqbit's peer blocklist, so
//! peers learned later (from a public tracker or the DHT) are filtered too.
//!
//! The node's operator is trusted: `reelnet-node ingest`, the admin API and the peers in
//! the node's own config are not checked here.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::time::Duration;

/// How long resolving one host name may take.
pub const RESOLVE_TIMEOUT: Duration = Duration::from_secs(5);

/// Why a source was refused.
#[derive(Debug, thiserror::Error)]
pub enum SourceRefused {
    /// An address in a range a user's request may not name.
    #[error(
        "{what} is on {addr}, a {reason} address; a movie request may only name public \
         addresses ([ingest] allow_private_sources = true allows others, for private testnets)"
    )]
    Private {
        what: String,
        addr: IpAddr,
        reason: &'static str,
    },
    /// A host name that resolves to such an address.
    #[error(
        "{what} {host} resolves to {addr}, a {reason} address; a movie request may only name \
         public addresses ([ingest] allow_private_sources = true allows others, for private \
         testnets)"
    )]
    Resolves {
        what: String,
        host: String,
        addr: IpAddr,
        reason: &'static str,
    },
    /// Something that cannot be checked (and so is not used).
    #[error("{what}: {problem}")]
    Unusable { what: String, problem: String },
}

/// An IPv4 range, inclusive, and what it is.
type V4Range = (Ipv4Addr, u8, &'static str);
/// An IPv6 range by prefix, and what it is.
type V6Range = (Ipv6Addr, u8, &'static str);

/// IPv4 ranges that are not public unicast (RFC 6890 and its updates).
const V4_NON_PUBLIC: &[V4Range] = &[
    (Ipv4Addr::new(0, 0, 0, 0), 8, "unspecified (this-network)"),
    (Ipv4Addr::new(10, 0, 0, 0), 8, "private (RFC 1918)"),
    (Ipv4Addr::new(100, 64, 0, 0), 10, "shared (CGNAT)"),
    (Ipv4Addr::new(127, 0, 0, 0), 8, "loopback"),
    (Ipv4Addr::new(169, 254, 0, 0), 16, "link-local"),
    (Ipv4Addr::new(172, 16, 0, 0), 12, "private (RFC 1918)"),
    (
        Ipv4Addr::new(192, 0, 0, 0),
        24,
        "reserved (IETF protocol assignments)",
    ),
    (Ipv4Addr::new(192, 0, 2, 0), 24, "documentation"),
    (
        Ipv4Addr::new(192, 88, 99, 0),
        24,
        "reserved (6to4 relay anycast)",
    ),
    (Ipv4Addr::new(192, 168, 0, 0), 16, "private (RFC 1918)"),
    (Ipv4Addr::new(198, 18, 0, 0), 15, "benchmark"),
    (Ipv4Addr::new(198, 51, 100, 0), 24, "documentation"),
    (Ipv4Addr::new(203, 0, 113, 0), 24, "documentation"),
    (Ipv4Addr::new(224, 0, 0, 0), 4, "multicast"),
    (Ipv4Addr::new(240, 0, 0, 0), 4, "reserved (or broadcast)"),
];

/// IPv6 ranges that are not public unicast, besides those embedding an IPv4 address.
const V6_NON_PUBLIC: &[V6Range] = &[
    (Ipv6Addr::UNSPECIFIED, 128, "unspecified"),
    (Ipv6Addr::LOCALHOST, 128, "loopback"),
    (
        Ipv6Addr::new(0x64, 0xff9b, 1, 0, 0, 0, 0, 0),
        48,
        "private (local-use NAT64)",
    ),
    (
        Ipv6Addr::new(0x100, 0, 0, 0, 0, 0, 0, 0),
        64,
        "reserved (discard-only)",
    ),
    (
        Ipv6Addr::new(0x2001, 0, 0, 0, 0, 0, 0, 0),
        23,
        "reserved (IETF protocol assignments, Teredo)",
    ),
    (
        Ipv6Addr::new(0x2001, 0xdb8, 0, 0, 0, 0, 0, 0),
        32,
        "documentation",
    ),
    (
        Ipv6Addr::new(0x3fff, 0, 0, 0, 0, 0, 0, 0),
        20,
        "documentation",
    ),
    (
        Ipv6Addr::new(0xfc00, 0, 0, 0, 0, 0, 0, 0),
        7,
        "private (unique local)",
    ),
    (Ipv6Addr::new(0xfe80, 0, 0, 0, 0, 0, 0, 0), 10, "link-local"),
    (
        Ipv6Addr::new(0xfec0, 0, 0, 0, 0, 0, 0, 0),
        10,
        "private (site-local)",
    ),
    (Ipv6Addr::new(0xff00, 0, 0, 0, 0, 0, 0, 0), 8, "multicast"),
];

/// IPv6 prefixes that embed an IPv4 address in their low 32 bits (the address is judged by
/// that IPv4 address): IPv4-mapped, NAT64 (well-known prefix), IPv4-compatible.
const V6_EMBED_LOW: &[(Ipv6Addr, &str)] = &[
    (
        Ipv6Addr::new(0, 0, 0, 0, 0, 0xffff, 0, 0),
        "IPv4-mapped form of a non-public IPv4",
    ),
    (
        Ipv6Addr::new(0x64, 0xff9b, 0, 0, 0, 0, 0, 0),
        "NAT64 form of a non-public IPv4",
    ),
    (
        Ipv6Addr::UNSPECIFIED,
        "IPv4-compatible form of a non-public IPv4",
    ),
];

fn v4_in(ip: Ipv4Addr, net: Ipv4Addr, len: u8) -> bool {
    let mask = u32::MAX.checked_shl(32 - u32::from(len)).unwrap_or(0);
    ip.to_bits() & mask == net.to_bits() & mask
}

fn v6_in(ip: Ipv6Addr, net: Ipv6Addr, len: u8) -> bool {
    let mask = u128::MAX.checked_shl(128 - u32::from(len)).unwrap_or(0);
    ip.to_bits() & mask == net.to_bits() & mask
}

fn v4_reason(ip: Ipv4Addr) -> Option<&'static str> {
    V4_NON_PUBLIC
        .iter()
        .find(|(net, len, _)| v4_in(ip, *net, *len))
        .map(|(_, _, why)| *why)
}

/// `Some(what it is)` when `ip` is not a public unicast address a user's request may make
/// this node connect to; `None` for public addresses.
pub fn non_public(ip: IpAddr) -> Option<&'static str> {
    match ip {
        IpAddr::V4(v4) => v4_reason(v4),
        IpAddr::V6(v6) => {
            if let Some((_, _, why)) = V6_NON_PUBLIC
                .iter()
                .find(|(net, len, _)| v6_in(v6, *net, *len))
            {
                return Some(why);
            }
            for (prefix, why) in V6_EMBED_LOW {
                if v6_in(v6, *prefix, 96) {
                    let embedded = Ipv4Addr::from_bits(v6.to_bits() as u32);
                    return v4_reason(embedded).map(|_| *why);
                }
            }
            // 6to4: 2002:AABB:CCDD::/48 carries IPv4 AA.BB.CC.DD.
            if v6_in(v6, Ipv6Addr::new(0x2002, 0, 0, 0, 0, 0, 0, 0), 16) {
                let embedded = Ipv4Addr::from_bits((v6.to_bits() >> 80) as u32);
                return v4_reason(embedded).map(|_| "6to4 form of a non-public IPv4");
            }
            None
        }
    }
}

/// Refuses `addr` unless it is public. `what` names it in the error
/// ("x.pe peer 10.0.0.1:6881").
pub fn check_addr(what: &str, addr: IpAddr) -> Result<(), SourceRefused> {
    match non_public(addr) {
        None => Ok(()),
        Some(reason) => Err(SourceRefused::Private {
            what: what.to_owned(),
            addr,
            reason,
        }),
    }
}

/// Resolves `host` (a name or an address literal) and refuses it if any address it resolves
/// to is not public. A name that does not resolve (within [`RESOLVE_TIMEOUT`]) is returned
/// as `Ok(false)`: nothing can be checked, and nothing reached through it now either.
/// `Ok(true)`: every address it resolved to is public.
pub async fn check_host(what: &str, host: &str, port: u16) -> Result<bool, SourceRefused> {
    let bare = host.trim_start_matches('[').trim_end_matches(']');
    if let Ok(ip) = bare.parse::<IpAddr>() {
        return check_addr(what, ip).map(|()| true);
    }
    let lookup = tokio::time::timeout(RESOLVE_TIMEOUT, tokio::net::lookup_host((bare, port)));
    let addrs: Vec<_> = match lookup.await {
        Ok(Ok(addrs)) => addrs.collect(),
        Ok(Err(err)) => {
            tracing::debug!(%host, %err, "{what} does not resolve");
            return Ok(false);
        }
        Err(_) => {
            tracing::debug!(%host, "{what}: resolving timed out");
            return Ok(false);
        }
    };
    for addr in &addrs {
        if let Some(reason) = non_public(addr.ip()) {
            return Err(SourceRefused::Resolves {
                what: what.to_owned(),
                host: host.to_owned(),
                addr: addr.ip(),
                reason,
            });
        }
    }
    Ok(!addrs.is_empty())
}

/// Every non-public range as librqbit's blocklist text (`name:first-last`, one range a
/// line, IPv4 and IPv6), minus the addresses in `except` (the operator's own peers, which
/// stay reachable).
///
/// librqbit's list is half-open at the top of the address space, so 255.255.255.255 and
/// ffff:…:ffff are not blocked by it (neither can be a peer's unicast address).
pub fn blocklist(except: &[IpAddr]) -> String {
    let mut v4: Vec<(u32, u32)> = V4_NON_PUBLIC
        .iter()
        .map(|(net, len, _)| prefix_range_v4(*net, *len))
        .collect();
    let mut v6: Vec<(u128, u128)> = V6_NON_PUBLIC
        .iter()
        .map(|(net, len, _)| prefix_range_v6(*net, *len))
        .collect();
    for &(first, last) in &v4 {
        let (first, last) = (u128::from(first), u128::from(last));
        for (prefix, _) in V6_EMBED_LOW {
            let p = prefix.to_bits();
            v6.push((p | first, p | last));
        }
        let six_to_four = Ipv6Addr::new(0x2002, 0, 0, 0, 0, 0, 0, 0).to_bits();
        v6.push((
            six_to_four | (first << 80),
            six_to_four | (last << 80) | ((1u128 << 80) - 1),
        ));
    }
    for ip in except {
        match ip {
            IpAddr::V4(a) => {
                v4 = carve(v4, a.to_bits());
                let mapped = a.to_ipv6_mapped().to_bits();
                v6 = carve(v6, mapped);
            }
            IpAddr::V6(a) => {
                v6 = carve(v6, a.to_bits());
                if let Some(m) = a.to_ipv4_mapped() {
                    v4 = carve(v4, m.to_bits());
                }
            }
        }
    }
    let mut out = String::new();
    for (first, last) in v4 {
        let (a, b) = (Ipv4Addr::from_bits(first), Ipv4Addr::from_bits(last));
        out.push_str(&format!("reelnet-non-public:{a}-{b}\n"));
    }
    for (first, last) in v6 {
        let (a, b) = (Ipv6Addr::from_bits(first), Ipv6Addr::from_bits(last));
        out.push_str(&format!("reelnet-non-public:{a}-{b}\n"));
    }
    out
}

fn prefix_range_v4(net: Ipv4Addr, len: u8) -> (u32, u32) {
    let host = u32::MAX.checked_shr(u32::from(len)).unwrap_or(0);
    let first = net.to_bits() & !host;
    (first, first | host)
}

fn prefix_range_v6(net: Ipv6Addr, len: u8) -> (u128, u128) {
    let host = u128::MAX.checked_shr(u32::from(len)).unwrap_or(0);
    let first = net.to_bits() & !host;
    (first, first | host)
}

/// `ranges` (inclusive) without the single address `x`.
fn carve<T>(ranges: Vec<(T, T)>, x: T) -> Vec<(T, T)>
where
    T: Copy + Ord + std::ops::Add<Output = T> + std::ops::Sub<Output = T> + From<u8>,
{
    let one = T::from(1);
    let mut out = Vec::with_capacity(ranges.len() + 1);
    for (first, last) in ranges {
        if x < first || x > last {
            out.push((first, last));
            continue;
        }
        if x > first {
            out.push((first, x - one));
        }
        if x < last {
            out.push((x + one, last));
        }
    }
    out
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap_or_else(|e| panic!("{s}: {e}"))
    }

    #[test]
    fn ipv4_ranges() {
        for (addr, reason) in [
            ("0.0.0.0", "unspecified"),
            ("0.1.2.3", "unspecified"),
            ("10.0.0.1", "private"),
            ("10.255.255.255", "private"),
            ("100.64.0.1", "CGNAT"),
            ("100.127.255.254", "CGNAT"),
            ("127.0.0.1", "loopback"),
            ("127.9.9.9", "loopback"),
            ("169.254.169.254", "link-local"),
            ("172.16.0.1", "private"),
            ("172.31.255.255", "private"),
            ("192.0.0.8", "reserved"),
            ("192.0.2.1", "documentation"),
            ("192.168.1.1", "private"),
            ("198.18.0.1", "benchmark"),
            ("198.19.255.255", "benchmark"),
            ("198.51.100.7", "documentation"),
            ("203.0.113.9", "documentation"),
            ("224.0.0.1", "multicast"),
            ("239.255.255.250", "multicast"),
            ("240.0.0.1", "reserved"),
            ("255.255.255.255", "broadcast"),
        ] {
            let got = non_public(ip(addr));
            assert!(
                got.is_some_and(|r| r.contains(reason)),
                "{addr}: {got:?}, wanted {reason}"
            );
        }
        for public in [
            "1.1.1.1",
            "8.8.8.8",
            "9.255.255.255",
            "11.0.0.0",
            "100.63.255.255",
            "100.128.0.0",
            "126.255.255.255",
            "128.0.0.0",
            "169.253.255.255",
            "172.15.255.255",
            "172.32.0.0",
            "192.0.1.255",
            "192.167.255.255",
            "192.169.0.0",
            "198.17.255.255",
            "198.20.0.0",
            "223.255.255.255",
        ] {
            assert_eq!(non_public(ip(public)), None, "{public}");
        }
    }

    #[test]
    fn ipv6_ranges() {
        for (addr, reason) in [
            ("::", "unspecified"),
            ("::1", "loopback"),
            ("fc00::1", "unique local"),
            ("fd12:3456::1", "unique local"),
            ("fe80::1", "link-local"),
            ("febf:ffff::1", "link-local"),
            ("fec0::1", "site-local"),
            ("ff02::1", "multicast"),
            ("2001:db8::1", "documentation"),
            ("2001::1", "Teredo"),
            ("100::1", "discard"),
            ("64:ff9b:1::1", "NAT64"),
            ("3fff::1", "documentation"),
        ] {
            let got = non_public(ip(addr));
            assert!(
                got.is_some_and(|r| r.contains(reason)),
                "{addr}: {got:?}, wanted {reason}"
            );
        }
        for public in [
            "2606:4700:4700::1111",
            "2a00:1450:4001:80b::200e",
            "2001:4860:4860::8888",
            "fbff:ffff::1",
            "fe7f::1",
        ] {
            assert_eq!(non_public(ip(public)), None, "{public}");
        }
    }

    #[test]
    fn ipv6_forms_of_ipv4_are_judged_by_their_ipv4() {
        for (addr, reason) in [
            ("::ffff:127.0.0.1", "IPv4-mapped"),
            ("::ffff:10.1.2.3", "IPv4-mapped"),
            ("::ffff:169.254.169.254", "IPv4-mapped"),
            ("::ffff:0.0.0.0", "IPv4-mapped"),
            ("::ffff:198.18.0.1", "IPv4-mapped"),
            ("64:ff9b::7f00:1", "NAT64"),
            ("64:ff9b::a00:1", "NAT64"),
            ("::127.0.0.1", "IPv4-compatible"),
            ("::10.0.0.1", "IPv4-compatible"),
            ("2002:7f00:1::1", "6to4"),
            ("2002:c0a8:101::", "6to4"),
        ] {
            let got = non_public(ip(addr));
            assert!(
                got.is_some_and(|r| r.contains(reason)),
                "{addr}: {got:?}, wanted {reason}"
            );
        }
        for public in ["::ffff:8.8.8.8", "64:ff9b::808:808", "2002:808:808::1"] {
            assert_eq!(non_public(ip(public)), None, "{public}");
        }
    }

    /// Reads the blocklist back the way librqbit does (`name:first-last`) and checks
    /// membership.
    fn blocked(list: &str, addr: IpAddr) -> bool {
        list.lines().any(|line| {
            let ips = if line.matches(':').count() > 2 {
                line.split_once(':').map(|(_, r)| r)
            } else {
                line.rsplit_once(':').map(|(_, r)| r)
            };
            let Some((a, b)) = ips.and_then(|r| r.split_once('-')) else {
                panic!("unparsable line {line:?}");
            };
            match (a.parse::<IpAddr>(), b.parse::<IpAddr>()) {
                (Ok(a), Ok(b)) => a <= addr && addr <= b && a.is_ipv4() == addr.is_ipv4(),
                _ => panic!("unparsable line {line:?}"),
            }
        })
    }

    #[test]
    fn blocklist_matches_the_classifier_and_spares_the_operators_peers() {
        let list = blocklist(&[ip("127.0.0.1"), ip("fd00::5")]);
        for addr in [
            "10.0.0.1",
            "127.0.0.2",
            "169.254.169.254",
            "100.64.1.1",
            "198.18.3.4",
            "::1",
            "fd00::6",
            "fe80::1",
            "::ffff:10.0.0.1",
            "::ffff:127.0.0.2",
            "64:ff9b::a00:1",
            "2002:a00:1::1",
        ] {
            assert!(blocked(&list, ip(addr)), "{addr} not blocked");
            assert!(non_public(ip(addr)).is_some(), "{addr}");
        }
        for addr in [
            "127.0.0.1",
            "::ffff:127.0.0.1",
            "fd00::5",
            "8.8.8.8",
            "::ffff:8.8.8.8",
            "2606:4700::1",
        ] {
            assert!(!blocked(&list, ip(addr)), "{addr} blocked");
        }
        let none = blocklist(&[]);
        assert!(blocked(&none, ip("127.0.0.1")));
        assert!(blocked(&none, ip("::ffff:127.0.0.1")));
    }

    #[tokio::test]
    async fn host_names_are_resolved_and_every_address_checked() {
        let err = check_host("tracker", "localhost", 80).await.unwrap_err();
        assert!(err.to_string().contains("loopback"), "{err}");
        assert!(matches!(
            check_host("tracker", "127.0.0.1", 80).await,
            Err(SourceRefused::Private { .. })
        ));
        assert!(matches!(
            check_host("tracker", "[::1]", 80).await,
            Err(SourceRefused::Private { .. })
        ));
        assert!(matches!(
            check_host("tracker", "8.8.8.8", 80).await,
            Ok(true)
        ));
        // getaddrinfo's numeric forms are resolved like librqbit would resolve them.
        let err = check_host("tracker", "2130706433", 80).await.unwrap_err();
        assert!(err.to_string().contains("loopback"), "{err}");
        assert!(matches!(
            check_host("tracker", "no-such-host.invalid", 80).await,
            Ok(false)
        ));
    }
}
