//! Which peers are trusted proxies: the `trusted_proxies` setting, a list
//! of addresses and CIDR ranges (`127.0.0.1, 10.0.0.0/8, fd00::/8`).
//!
//! A trusted proxy's X-Forwarded-For names the client for per-IP limits,
//! and its own connections are not counted against them, so a range that
//! is too wide lets anyone inside it pick their address. Parsing is strict
//! for that reason: a range with host bits set (`10.1.0.0/8`) is refused
//! as a likely typo instead of being widened silently.

use std::fmt;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

/// One address range: an address and how many leading bits must match.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct IpRange {
    net: IpAddr,
    prefix: u8,
}

/// Why an entry is not an address or range.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RangeError(String);

impl fmt::Display for RangeError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for RangeError {}

impl IpRange {
    /// `ADDR` (that address alone) or `ADDR/PREFIX` (RFC 4632 §3.1 for
    /// IPv4, RFC 4291 §2.3 for IPv6).
    pub fn parse(text: &str) -> Result<IpRange, RangeError> {
        let bad = |why: &str| RangeError(format!("{text:?} {why}"));
        let (addr, prefix) = match text.split_once('/') {
            Some((addr, prefix)) => (addr, Some(prefix)),
            None => (text, None),
        };
        let net: IpAddr = addr
            .parse()
            .map_err(|_| bad("is not an IP address or CIDR range"))?;
        let bits = max_prefix(net);
        let prefix = match prefix {
            None => bits,
            Some(p) => parse_prefix(p, bits)
                .ok_or_else(|| bad(&format!("needs a prefix length of 0 to {bits}")))?,
        };
        let range = IpRange { net, prefix };
        if range.masked(net) != net {
            return Err(bad("has bits set past its prefix length"));
        }
        Ok(range.canonical())
    }

    /// An IPv4-mapped range (`::ffff:10.0.0.0/104`) as the IPv4 range it
    /// stands for, since peers are compared in their IPv4 form.
    fn canonical(self) -> IpRange {
        match self.net {
            IpAddr::V6(v6) if self.prefix >= 96 => match v6.to_ipv4_mapped() {
                Some(v4) => IpRange {
                    net: IpAddr::V4(v4),
                    prefix: self.prefix - 96,
                },
                None => self,
            },
            _ => self,
        }
    }

    /// Whether `ip` lies in the range. An IPv4 address seen as IPv6
    /// (`::ffff:10.0.0.1`, from a dual-stack socket) counts as IPv4.
    pub fn contains(&self, ip: IpAddr) -> bool {
        let ip = ip.to_canonical();
        ip.is_ipv4() == self.net.is_ipv4() && self.masked(ip) == self.net
    }

    /// `ip` with every bit past the prefix cleared.
    fn masked(&self, ip: IpAddr) -> IpAddr {
        let keep = |bits: u32| u32::from(self.prefix).min(bits);
        match ip {
            IpAddr::V4(v4) => {
                let mask = u32::MAX.checked_shl(32 - keep(32)).unwrap_or(0);
                IpAddr::V4(Ipv4Addr::from(u32::from(v4) & mask))
            }
            IpAddr::V6(v6) => {
                let mask = u128::MAX.checked_shl(128 - keep(128)).unwrap_or(0);
                IpAddr::V6(Ipv6Addr::from(u128::from(v6) & mask))
            }
        }
    }
}

/// A prefix length of plain decimal digits (`8`, not `+8`), at most `bits`.
fn parse_prefix(text: &str, bits: u8) -> Option<u8> {
    let digits = !text.is_empty() && text.bytes().all(|b| b.is_ascii_digit());
    let prefix = text.parse::<u8>().ok().filter(|_| digits)?;
    (prefix <= bits).then_some(prefix)
}

fn max_prefix(ip: IpAddr) -> u8 {
    if ip.is_ipv4() {
        32
    } else {
        128
    }
}

/// The configured proxies; empty trusts nobody.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct TrustedProxies(Vec<IpRange>);

impl TrustedProxies {
    /// A comma-separated list; blanks around entries and empty entries are
    /// ignored.
    pub fn parse(list: &str) -> Result<TrustedProxies, RangeError> {
        list.split(',')
            .map(str::trim)
            .filter(|entry| !entry.is_empty())
            .map(IpRange::parse)
            .collect::<Result<_, _>>()
            .map(TrustedProxies)
    }

    /// Whether `peer` is one of the trusted proxies.
    pub fn contains(&self, peer: &IpAddr) -> bool {
        self.0.iter().any(|range| range.contains(*peer))
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ip(text: &str) -> IpAddr {
        text.parse().unwrap()
    }

    #[test]
    fn ranges_hold_the_addresses_under_their_prefix() {
        let cases: &[(&str, &[&str], &[&str])] = &[
            ("127.0.0.1", &["127.0.0.1"], &["127.0.0.2", "::1"]),
            (
                "10.0.0.0/8",
                &["10.0.0.0", "10.255.255.255", "::ffff:10.1.2.3"],
                &["11.0.0.0", "9.255.255.255", "::a00:1"],
            ),
            (
                "192.168.4.0/22",
                &["192.168.4.1", "192.168.7.255"],
                &["192.168.8.0", "192.168.3.255"],
            ),
            ("0.0.0.0/0", &["1.2.3.4", "255.255.255.255"], &["::1"]),
            (
                "fd00::/8",
                &["fd00::1", "fdff:ffff::1"],
                &["fe00::1", "fc00::1", "10.0.0.1"],
            ),
            ("::1", &["::1"], &["::2", "127.0.0.1"]),
            (
                "::ffff:10.0.0.0/104",
                &["10.1.2.3", "::ffff:10.1.2.3"],
                &["11.0.0.0"],
            ),
            ("::/0", &["::1", "2001:db8::1"], &["1.2.3.4"]),
            (
                "2001:db8::/127",
                &["2001:db8::", "2001:db8::1"],
                &["2001:db8::2"],
            ),
        ];
        for (range, inside, outside) in cases {
            let parsed = IpRange::parse(range).unwrap();
            for addr in *inside {
                assert!(parsed.contains(ip(addr)), "{addr} in {range}");
            }
            for addr in *outside {
                assert!(!parsed.contains(ip(addr)), "{addr} not in {range}");
            }
        }
    }

    #[test]
    fn malformed_entries_are_refused() {
        for bad in [
            "",
            "localhost",
            "10.0.0.0/",
            "10.0.0.0/33",
            "10.0.0.0/+8",
            "10.0.0.0/ 8",
            "10.0.0.0/8/8",
            "10.1.0.0/8",
            "fd00::/129",
            "fd00::1/8",
            "10.0.0/8",
        ] {
            assert!(IpRange::parse(bad).is_err(), "{bad:?}");
        }
        let err = IpRange::parse("10.1.0.0/8").unwrap_err().to_string();
        assert!(err.contains("10.1.0.0/8"), "{err}");
    }

    #[test]
    fn lists_mix_addresses_and_ranges() {
        let proxies = TrustedProxies::parse(" 127.0.0.1, 10.0.0.0/8 ,,fd00::/8").unwrap();
        for trusted in ["127.0.0.1", "10.9.8.7", "fd12::3", "::ffff:127.0.0.1"] {
            assert!(proxies.contains(&ip(trusted)), "{trusted}");
        }
        for other in ["127.0.0.2", "192.0.2.1", "2001:db8::1"] {
            assert!(!proxies.contains(&ip(other)), "{other}");
        }
        assert!(TrustedProxies::parse("").unwrap().is_empty());
        assert!(TrustedProxies::parse("10.0.0.0/8, nope").is_err());
    }
}
