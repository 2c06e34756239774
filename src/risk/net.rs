//! IP addresses and CIDR ranges for block lists (a handful of entries; a linear scan).

use std::net::IpAddr;

#[derive(Debug, Clone, Default)]
pub struct IpMatcher {
    ranges: Vec<(IpAddr, u8)>,
}

fn bits(ip: IpAddr) -> (u128, u8) {
    match ip {
        IpAddr::V4(a) => (u32::from(a) as u128, 32),
        IpAddr::V6(a) => (u128::from(a), 128),
    }
}

impl IpMatcher {
    /// Parses addresses and `addr/prefix` ranges; the error names the bad entry.
    pub fn parse(entries: &[String]) -> Result<IpMatcher, String> {
        let mut ranges = Vec::new();
        for e in entries {
            let (addr, prefix) = match e.split_once('/') {
                Some((a, p)) => (a, Some(p)),
                None => (e.as_str(), None),
            };
            let ip: IpAddr = addr
                .trim()
                .parse()
                .map_err(|_| format!("`{e}` is not an IP address or CIDR range"))?;
            let width = bits(ip).1;
            let prefix = match prefix {
                None => width,
                Some(p) => p
                    .trim()
                    .parse::<u8>()
                    .ok()
                    .filter(|p| *p <= width)
                    .ok_or_else(|| format!("`{e}`: prefix must be 0-{width}"))?,
            };
            ranges.push((ip, prefix));
        }
        Ok(IpMatcher { ranges })
    }

    pub fn contains(&self, ip: IpAddr) -> bool {
        let ip = match ip {
            IpAddr::V6(v6) => v6.to_ipv4_mapped().map(IpAddr::V4).unwrap_or(ip),
            v4 => v4,
        };
        let (x, xw) = bits(ip);
        self.ranges.iter().any(|(net, prefix)| {
            let (n, nw) = bits(*net);
            if nw != xw {
                return false;
            }
            let shift = nw - prefix;
            shift >= nw || (x >> shift) == (n >> shift)
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn m(v: &[&str]) -> IpMatcher {
        IpMatcher::parse(&v.iter().map(|s| s.to_string()).collect::<Vec<_>>()).unwrap()
    }

    #[test]
    fn addresses_and_ranges() {
        let b = m(&["203.0.113.7", "198.51.100.0/24", "2001:db8::/32"]);
        let yes = [
            "203.0.113.7",
            "198.51.100.1",
            "198.51.100.255",
            "2001:db8::1",
            "::ffff:198.51.100.9",
        ];
        let no = ["203.0.113.8", "198.51.101.0", "2001:db9::1", "10.0.0.1"];
        for ip in yes {
            assert!(b.contains(ip.parse().unwrap()), "{ip}");
        }
        for ip in no {
            assert!(!b.contains(ip.parse().unwrap()), "{ip}");
        }
        assert!(m(&["0.0.0.0/0"]).contains("8.8.8.8".parse().unwrap()));
        assert!(IpMatcher::parse(&["10.0.0.0/33".into()]).is_err());
        assert!(IpMatcher::parse(&["nope".into()]).is_err());
    }
}
