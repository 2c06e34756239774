//! Where merchant webhooks may go. A `notify_url` is chosen by whoever holds a merchant API
//! key, and the notifier POSTs to it from inside our network, so without this check any
//! merchant key is a way to reach the cloud metadata service, the admin routes on
//! loopback, or anything else only our hosts can reach (SSRF).
//!
//! Literal addresses are refused when the URL is accepted (order create, config load) and
//! again before each delivery; host names are checked after DNS resolution by
//! [`GuardedResolver`], which hands the HTTP client only the addresses it approved, so a
//! name that answers differently on the next lookup (DNS rebinding) cannot slip through.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};

/// Why a target is refused; `Display` is what operators read in `last_error` and what a
/// merchant reads in the 400.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum Forbidden {
    #[error("loopback address")]
    Loopback,
    #[error("private network address")]
    Private,
    #[error("shared (carrier-grade NAT) address")]
    SharedNat,
    #[error("link-local address")]
    LinkLocal,
    #[error("multicast address")]
    Multicast,
    #[error("unspecified address")]
    Unspecified,
    #[error("broadcast address")]
    Broadcast,
    #[error("documentation address")]
    Documentation,
    #[error("reserved or special-purpose address")]
    Reserved,
    #[error("cloud metadata service")]
    CloudMetadata,
}

/// Host names of metadata services that answer inside a cloud without any address of ours
/// in the URL (GCP, AWS's legacy alias). Their addresses are refused anyway; refusing the
/// names too gives the merchant a clear answer at create time.
const METADATA_NAMES: &[&str] = &[
    "metadata.google.internal",
    "metadata.goog",
    "metadata",
    "instance-data",
    "instance-data.ec2.internal",
];

/// AWS/GCP/Azure/OpenStack (169.254.169.254), AWS ECS task metadata (169.254.170.2),
/// Alibaba Cloud (100.100.100.200).
const METADATA_V4: &[Ipv4Addr] = &[
    Ipv4Addr::new(169, 254, 169, 254),
    Ipv4Addr::new(169, 254, 170, 2),
    Ipv4Addr::new(100, 100, 100, 200),
];
/// AWS's IPv6 instance metadata endpoint.
const METADATA_V6: Ipv6Addr = Ipv6Addr::new(0xfd00, 0x0ec2, 0, 0, 0, 0, 0, 0x0254);

/// `None` when `ip` is an ordinary public unicast address a webhook may go to.
pub fn classify(ip: IpAddr) -> Option<Forbidden> {
    match ip {
        IpAddr::V4(a) => classify_v4(a),
        IpAddr::V6(a) => classify_v6(a),
    }
}

fn in_v4(a: Ipv4Addr, net: [u8; 4], prefix: u32) -> bool {
    let mask = u32::MAX.checked_shl(32 - prefix).unwrap_or(0);
    u32::from(a) & mask == u32::from(Ipv4Addr::from(net)) & mask
}

fn classify_v4(a: Ipv4Addr) -> Option<Forbidden> {
    use Forbidden::*;
    if METADATA_V4.contains(&a) {
        return Some(CloudMetadata);
    }
    let table: &[([u8; 4], u32, Forbidden)] = &[
        ([0, 0, 0, 0], 32, Unspecified),
        ([0, 0, 0, 0], 8, Reserved), // "this network"
        ([10, 0, 0, 0], 8, Private),
        ([100, 64, 0, 0], 10, SharedNat),
        ([127, 0, 0, 0], 8, Loopback),
        ([169, 254, 0, 0], 16, LinkLocal),
        ([172, 16, 0, 0], 12, Private),
        ([192, 0, 0, 0], 24, Reserved), // IETF protocol assignments
        ([192, 0, 2, 0], 24, Documentation),
        ([192, 88, 99, 0], 24, Reserved), // 6to4 relay anycast
        ([192, 168, 0, 0], 16, Private),
        ([198, 18, 0, 0], 15, Reserved), // benchmarking
        ([198, 51, 100, 0], 24, Documentation),
        ([203, 0, 113, 0], 24, Documentation),
        ([224, 0, 0, 0], 4, Multicast),
        ([255, 255, 255, 255], 32, Broadcast),
        ([240, 0, 0, 0], 4, Reserved),
    ];
    table
        .iter()
        .find(|(net, prefix, _)| in_v4(a, *net, *prefix))
        .map(|(_, _, why)| *why)
}

fn in_v6(a: Ipv6Addr, net: u128, prefix: u32) -> bool {
    let mask = u128::MAX.checked_shl(128 - prefix).unwrap_or(0);
    u128::from(a) & mask == net & mask
}

fn classify_v6(a: Ipv6Addr) -> Option<Forbidden> {
    use Forbidden::*;
    let bits = u128::from(a);
    if a == METADATA_V6 {
        return Some(CloudMetadata);
    }
    if a.is_unspecified() {
        return Some(Unspecified);
    }
    if a.is_loopback() {
        return Some(Loopback);
    }
    // Forms that carry an IPv4 address: judged by that address, so `::ffff:127.0.0.1`
    // is loopback. NAT64 (64:ff9b::/96) reaches public IPv4 hosts and stays usable.
    if let Some(v4) = a.to_ipv4_mapped() {
        return classify_v4(v4);
    }
    if in_v6(a, 0x0064_ff9b << 96, 96) {
        return classify_v4(Ipv4Addr::from(bits as u32));
    }
    // 6to4: 2002:AABB:CCDD::/48 routes to IPv4 AA.BB.CC.DD.
    if in_v6(a, 0x2002 << 112, 16) {
        return classify_v4(Ipv4Addr::from((bits >> 80) as u32));
    }
    let table: &[(u128, u32, Forbidden)] = &[
        (0, 96, Reserved),                      // IPv4-compatible (deprecated)
        (0x0064_ff9b_0001 << 80, 48, Reserved), // local-use NAT64
        (0x0100 << 112, 64, Reserved),          // discard-only
        (0x2001_0db8 << 96, 32, Documentation),
        (0x2001 << 112, 23, Reserved), // IETF protocol assignments, Teredo
        (0xfc00 << 112, 7, Private),   // unique local
        (0xfe80 << 112, 10, LinkLocal),
        (0xfec0 << 112, 10, Reserved), // site-local (deprecated)
        (0xff00 << 112, 8, Multicast),
    ];
    if let Some((_, _, why)) = table.iter().find(|(n, p, _)| in_v6(a, *n, *p)) {
        return Some(*why);
    }
    // Only 2000::/3 is allocated as global unicast; the rest is reserved by IANA.
    (!in_v6(a, 0x2000 << 112, 3)).then_some(Reserved)
}

/// Checks what can be checked without DNS: a literal address, or a metadata host name.
/// Other names pass here and are judged by [`GuardedResolver`] on each delivery.
pub fn check_host(host: &url::Host<&str>) -> Result<(), Forbidden> {
    let why = match host {
        url::Host::Ipv4(a) => classify_v4(*a),
        url::Host::Ipv6(a) => classify_v6(*a),
        url::Host::Domain(name) => {
            let name = name.trim_end_matches('.').to_ascii_lowercase();
            METADATA_NAMES
                .contains(&name.as_str())
                .then_some(Forbidden::CloudMetadata)
        }
    };
    why.map_or(Ok(()), Err)
}

/// [`check_host`] of a URL (no host: nothing to refuse here; URL checks reject it).
pub fn check_url(u: &url::Url) -> Result<(), Forbidden> {
    u.host().map_or(Ok(()), |h| check_host(&h))
}

/// The error a refused resolution carries through reqwest, found again by downcasting
/// the error's source chain so the attempt is recorded as forbidden, not as a DNS failure.
#[derive(Debug, thiserror::Error)]
#[error("target address forbidden: {0}")]
pub struct ForbiddenTarget(pub Forbidden);

/// A `reqwest` resolver that drops forbidden addresses and fails when none is left. The
/// client connects only to what this returns, so the address checked is the address used.
#[derive(Debug, Default, Clone, Copy)]
pub struct GuardedResolver;

impl reqwest::dns::Resolve for GuardedResolver {
    fn resolve(&self, name: reqwest::dns::Name) -> reqwest::dns::Resolving {
        let host = name.as_str().to_string();
        Box::pin(async move {
            if let Err(why) = check_host(&url::Host::Domain(host.as_str())) {
                return Err(Box::new(ForbiddenTarget(why)) as _);
            }
            let found: Vec<SocketAddr> =
                tokio::net::lookup_host((host.as_str(), 0)).await?.collect();
            let (allowed, refused) = partition(found);
            match (allowed.is_empty(), refused) {
                (false, _) => Ok(Box::new(allowed.into_iter()) as reqwest::dns::Addrs),
                (true, Some(why)) => Err(Box::new(ForbiddenTarget(why)) as _),
                (true, None) => Err(format!("`{host}` has no address").into()),
            }
        })
    }
}

/// The allowed addresses, and the reason the first refused one was refused.
fn partition(addrs: Vec<SocketAddr>) -> (Vec<SocketAddr>, Option<Forbidden>) {
    let mut refused = None;
    let allowed = addrs
        .into_iter()
        .filter(|a| match classify(a.ip()) {
            None => true,
            Some(why) => {
                refused.get_or_insert(why);
                false
            }
        })
        .collect();
    (allowed, refused)
}

#[cfg(test)]
mod tests;
