//! Which addresses the server never fetches from.
//!
//! The rule is a deny-list of everything that is not ordinary, globally routed unicast:
//! a client-supplied URL must not turn the server into a proxy into its own network
//! (loopback, private ranges, cloud metadata endpoints) or into odd corners of the
//! address space. IPv6 forms that merely wrap an IPv4 address are judged by that
//! IPv4 address, so `::ffff:127.0.0.1` is as refused as `127.0.0.1`.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

fn v4_refused(ip: Ipv4Addr) -> bool {
    let [a, b, c, _] = ip.octets();
    ip.is_unspecified()
        || ip.is_loopback() // 127/8
        || ip.is_private() // 10/8, 172.16/12, 192.168/16
        || ip.is_link_local() // 169.254/16, where cloud metadata (169.254.169.254) lives
        || ip.is_broadcast()
        || ip.is_multicast() // 224/4
        || ip.is_documentation() // 192.0.2/24, 198.51.100/24, 203.0.113/24
        || a == 0 // "this network" 0/8
        || (a == 100 && (b & 0xc0) == 64) // carrier-grade NAT 100.64/10 (Alibaba metadata too)
        || (a == 192 && b == 0 && c == 0) // IETF protocol assignments 192.0.0/24
        || (a == 198 && (b & 0xfe) == 18) // benchmarking 198.18/15
        || a >= 240 // reserved 240/4
}

/// The IPv4 address an IPv6 address stands for, when it is one of the forms that embed one.
fn embedded_v4(ip: Ipv6Addr) -> Option<Ipv4Addr> {
    let s = ip.segments();
    let tail = || Ipv4Addr::new((s[6] >> 8) as u8, s[6] as u8, (s[7] >> 8) as u8, s[7] as u8);
    match s {
        // IPv4-mapped ::ffff:a.b.c.d, SIIT ::ffff:0:a.b.c.d and the deprecated
        // IPv4-compatible ::a.b.c.d (`::` and `::1` are caught before this is asked).
        [0, 0, 0, 0, 0, 0xffff, _, _]
        | [0, 0, 0, 0, 0xffff, 0, _, _]
        | [0, 0, 0, 0, 0, 0, _, _] => Some(tail()),
        // NAT64 well-known prefix 64:ff9b::/96: a NAT64 gateway would connect to the tail.
        [0x64, 0xff9b, 0, 0, 0, 0, _, _] => Some(tail()),
        // 6to4 2002:AABB:CCDD::/48 relays to AA.BB.CC.DD.
        [0x2002, hi, lo, ..] => Some(Ipv4Addr::new(
            (hi >> 8) as u8,
            hi as u8,
            (lo >> 8) as u8,
            lo as u8,
        )),
        _ => None,
    }
}

fn v6_refused(ip: Ipv6Addr) -> bool {
    if ip.is_unspecified() || ip.is_loopback() || ip.is_multicast() {
        return true;
    }
    if let Some(v4) = embedded_v4(ip) {
        return v4_refused(v4);
    }
    let s = ip.segments();
    (s[0] & 0xfe00) == 0xfc00 // unique local fc00::/7 (AWS metadata fd00:ec2::254 included)
        || (s[0] & 0xffc0) == 0xfe80 // link-local fe80::/10
        || (s[0] & 0xffc0) == 0xfec0 // deprecated site-local fec0::/10
        || (s[0] == 0x2001 && s[1] == 0x0db8) // documentation 2001:db8::/32
        || (s[0] & 0xfff0) == 0x3ff0 // documentation 3fff::/20
        || (s[0] == 0x2001 && s[1] == 0x0002 && s[2] == 0) // benchmarking 2001:2::/48
        || (s[0] == 0x2001 && s[1] == 0) // Teredo 2001::/32: tunnels to a hidden IPv4 peer
        || (s[0] == 0x0064 && s[1] == 0xff9b && s[2] == 1) // local-use NAT64 64:ff9b:1::/48
        || (s[0] == 0x0100 && s[1] == 0 && s[2] == 0 && s[3] == 0) // discard-only 100::/64
}

/// True when the address must never be fetched from: unspecified, loopback, private,
/// link-local (cloud metadata included), CGNAT, unique-local, multicast, broadcast,
/// reserved, documentation and benchmarking ranges, and every IPv6 form (mapped,
/// compatible, NAT64, 6to4) that embeds such an IPv4 address.
pub fn is_refused_ip(ip: IpAddr) -> bool {
    match ip {
        IpAddr::V4(v4) => v4_refused(v4),
        IpAddr::V6(v6) => v6_refused(v6),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn refused_addresses() {
        for bad in [
            "127.0.0.1",
            "127.8.9.10",
            "0.0.0.0",
            "0.1.2.3",
            "10.0.0.1",
            "10.255.255.255",
            "172.16.5.4",
            "172.31.255.255",
            "192.168.1.1",
            "169.254.169.254",
            "169.254.0.1",
            "100.64.0.1",
            "100.100.100.200",
            "100.127.255.255",
            "224.0.0.1",
            "239.255.255.250",
            "255.255.255.255",
            "192.0.0.170",
            "192.0.2.5",
            "198.51.100.7",
            "203.0.113.9",
            "198.18.0.1",
            "198.19.255.255",
            "240.0.0.1",
            "::1",
            "::",
            "fe80::1",
            "febf::1",
            "fc00::1",
            "fd12:3456::1",
            "fd00:ec2::254",
            "fec0::1",
            "::ffff:127.0.0.1",
            "::ffff:10.0.0.1",
            "::ffff:169.254.169.254",
            "::ffff:0:192.168.0.1",
            "::127.0.0.1",
            "::10.1.2.3",
            "64:ff9b::a9fe:a9fe",
            "64:ff9b::7f00:1",
            "64:ff9b:1::1",
            "2002:7f00:1::1",
            "2002:a00:1::",
            "2001:db8::1",
            "3fff:1::1",
            "2001:2::5",
            "2001:0:4136:e378::1",
            "100::1",
            "ff02::1",
            "ff0e::1",
        ] {
            assert!(
                is_refused_ip(bad.parse().unwrap()),
                "{bad} should be refused"
            );
        }
    }

    #[test]
    fn public_addresses_pass() {
        for good in [
            "93.184.216.34",
            "8.8.8.8",
            "1.1.1.1",
            "172.15.255.255",
            "172.32.0.1",
            "100.63.255.255",
            "100.128.0.1",
            "192.0.1.1",
            "192.169.0.1",
            "198.20.0.1",
            "223.255.255.255",
            "2606:4700::1111",
            "2a00:1450:4001::200e",
            "::ffff:8.8.8.8",
            "64:ff9b::808:808",
            "2002:808:808::1",
            "2001:4860:4860::8888",
        ] {
            assert!(
                !is_refused_ip(good.parse().unwrap()),
                "{good} should be allowed"
            );
        }
    }
}
