use super::*;
use proptest::prelude::*;
use std::str::FromStr;

fn why(s: &str) -> Option<Forbidden> {
    classify(IpAddr::from_str(s).unwrap())
}

#[test]
fn every_listed_range_is_refused_with_its_reason() {
    use Forbidden::*;
    let table = [
        ("127.0.0.1", Loopback),
        ("127.255.255.254", Loopback),
        ("10.0.0.1", Private),
        ("10.255.255.255", Private),
        ("172.16.0.1", Private),
        ("172.31.255.255", Private),
        ("192.168.1.1", Private),
        ("100.64.0.1", SharedNat),
        ("100.127.255.255", SharedNat),
        ("169.254.0.1", LinkLocal),
        ("169.254.169.254", CloudMetadata),
        ("169.254.170.2", CloudMetadata),
        ("100.100.100.200", CloudMetadata),
        ("224.0.0.1", Multicast),
        ("239.255.255.250", Multicast),
        ("0.0.0.0", Unspecified),
        ("0.1.2.3", Reserved),
        ("255.255.255.255", Broadcast),
        ("240.0.0.1", Reserved),
        ("192.0.0.8", Reserved),
        ("192.0.2.1", Documentation),
        ("198.51.100.7", Documentation),
        ("203.0.113.9", Documentation),
        ("198.18.0.1", Reserved),
        ("::", Unspecified),
        ("::1", Loopback),
        ("::ffff:127.0.0.1", Loopback),
        ("::ffff:10.1.2.3", Private),
        ("::ffff:169.254.169.254", CloudMetadata),
        ("::ffff:0.0.0.0", Unspecified),
        ("::127.0.0.1", Reserved),
        ("64:ff9b::a9fe:a9fe", CloudMetadata),
        ("64:ff9b::7f00:1", Loopback),
        ("2002:7f00:1::", Loopback),
        ("2002:a9fe:a9fe::1", CloudMetadata),
        ("fd00:ec2::254", CloudMetadata),
        ("fc00::1", Private),
        ("fdff:ffff::1", Private),
        ("fe80::1", LinkLocal),
        ("febf::1", LinkLocal),
        ("fec0::1", Reserved),
        ("ff02::1", Multicast),
        ("2001:db8::1", Documentation),
        ("2001::1", Reserved),
        ("100::1", Reserved),
        ("4000::1", Reserved),
    ];
    for (ip, expected) in table {
        assert_eq!(why(ip), Some(expected), "{ip}");
    }
}

#[test]
fn public_unicast_addresses_pass() {
    for ip in [
        "8.8.8.8",
        "1.1.1.1",
        "172.15.255.255",
        "172.32.0.1",
        "100.63.255.255",
        "100.128.0.1",
        "169.253.255.255",
        "223.255.255.254",
        "2606:4700:4700::1111",
        "2400:cb00::1",
        "::ffff:8.8.8.8",
        "64:ff9b::808:808",
        "2002:808:808::1",
    ] {
        assert_eq!(why(ip), None, "{ip}");
    }
}

#[test]
fn literal_hosts_and_metadata_names_are_checked_without_dns() {
    let host = |u: &str| check_url(&url::Url::parse(u).unwrap());
    assert_eq!(
        host("http://169.254.169.254/latest/meta-data/"),
        Err(Forbidden::CloudMetadata)
    );
    assert_eq!(host("http://[::1]:22/"), Err(Forbidden::Loopback));
    assert_eq!(
        host("http://[::ffff:127.0.0.1]:8080/admin"),
        Err(Forbidden::Loopback)
    );
    // The URL parser reads the other IPv4 spellings as the address they mean.
    assert_eq!(host("http://2130706433/"), Err(Forbidden::Loopback));
    assert_eq!(host("http://0x7f.1/"), Err(Forbidden::Loopback));
    assert_eq!(
        host("http://METADATA.google.internal./computeMetadata/v1/"),
        Err(Forbidden::CloudMetadata)
    );
    assert_eq!(host("https://shop.example.com/hooks"), Ok(()));
    // A name is judged after resolution, at delivery.
    assert_eq!(host("http://localhost:8080/hook"), Ok(()));
}

#[test]
fn resolution_keeps_only_allowed_addresses() {
    let a = |s: &str| SocketAddr::new(IpAddr::from_str(s).unwrap(), 0);
    let (ok, why) = partition(vec![a("10.0.0.1"), a("8.8.8.8"), a("::1")]);
    assert_eq!((ok, why), (vec![a("8.8.8.8")], Some(Forbidden::Private)));
    let (ok, why) = partition(vec![a("127.0.0.1"), a("::1")]);
    assert_eq!((ok.len(), why), (0, Some(Forbidden::Loopback)));
}

#[tokio::test]
async fn the_resolver_refuses_a_name_that_resolves_to_loopback() {
    use reqwest::dns::Resolve;
    let name = reqwest::dns::Name::from_str("localhost").unwrap();
    let err = match GuardedResolver.resolve(name).await {
        Ok(addrs) => panic!("resolved to {:?}", addrs.collect::<Vec<_>>()),
        Err(e) => e,
    };
    let refused = err
        .downcast_ref::<ForbiddenTarget>()
        .expect("a ForbiddenTarget");
    assert_eq!(refused.0, Forbidden::Loopback);
}

fn v4_in(net: [u8; 4], prefix: u32) -> impl Strategy<Value = Ipv4Addr> {
    any::<u32>().prop_map(move |r| {
        let mask = u32::MAX.checked_shl(32 - prefix).unwrap_or(0);
        Ipv4Addr::from((u32::from(Ipv4Addr::from(net)) & mask) | (r & !mask))
    })
}

proptest! {
    /// Whatever the IPv4 address, its IPv4-mapped IPv6 form gets the same verdict.
    #[test]
    fn mapped_forms_get_the_verdict_of_their_ipv4(a in any::<u32>()) {
        let v4 = Ipv4Addr::from(a);
        prop_assert_eq!(classify(IpAddr::V6(v4.to_ipv6_mapped())), classify(IpAddr::V4(v4)));
    }

    #[test]
    fn whole_private_ranges_are_refused(
        a in prop_oneof![
            v4_in([10, 0, 0, 0], 8),
            v4_in([172, 16, 0, 0], 12),
            v4_in([192, 168, 0, 0], 16),
            v4_in([127, 0, 0, 0], 8),
            v4_in([169, 254, 0, 0], 16),
            v4_in([100, 64, 0, 0], 10),
            v4_in([224, 0, 0, 0], 3),
        ],
        low in any::<u128>(),
    ) {
        prop_assert!(classify(IpAddr::V4(a)).is_some(), "{}", a);
        for net in [0xfc00u128 << 112, 0xfe80 << 112, 0xff00 << 112] {
            let v6 = Ipv6Addr::from(net | (low >> 10));
            prop_assert!(classify(IpAddr::V6(v6)).is_some(), "{}", v6);
        }
    }
}
