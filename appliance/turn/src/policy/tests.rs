//! One test per way of reaching a forbidden peer, including the bypasses in coturn's CVE
//! history, and the networks that must stay reachable.

use super::*;

fn ip(text: &str) -> IpAddr {
    text.parse().expect("test literal")
}

fn refused(policy: &PeerPolicy, text: &str) -> bool {
    policy.check_ip(ip(text)).is_err()
}

fn default_policy() -> PeerPolicy {
    PeerPolicy::default()
}

#[test]
fn cve_2020_26262_unspecified_addresses_are_refused() {
    let policy = default_policy();
    assert!(refused(&policy, "0.0.0.0"));
    assert!(refused(&policy, "::"));
    assert!(refused(&policy, "0.1.2.3"), "all of 0.0.0.0/8");
}

#[test]
fn cve_2026_27624_ipv4_mapped_loopback_is_refused() {
    let policy = default_policy();
    assert_eq!(
        policy.check_ip(ip("::ffff:127.0.0.1")),
        Err(Refusal::EmbeddedIpv4)
    );
    assert!(refused(&policy, "::ffff:0.0.0.0"));
    assert!(refused(&policy, "::ffff:169.254.169.254"));
    assert!(
        refused(&policy, "::ffff:10.0.0.1"),
        "mapped addresses are never peers"
    );
}

#[test]
fn ipv4_compatible_addresses_are_refused() {
    let policy = default_policy();
    assert_eq!(
        policy.check_ip(ip("::127.0.0.1")),
        Err(Refusal::EmbeddedIpv4)
    );
    assert!(refused(&policy, "::10.0.0.1"));
}

#[test]
fn nat64_addresses_are_judged_by_their_ipv4_address() {
    let policy = default_policy();
    assert_eq!(
        policy.check_ip(ip("64:ff9b::7f00:1")),
        Err(Refusal::Loopback)
    );
    assert!(refused(&policy, "64:ff9b::a9fe:a9fe"), "169.254.169.254");
    assert!(refused(&policy, "64:ff9b::0:0"), "0.0.0.0");
    assert!(
        !refused(&policy, "64:ff9b::c633:6401"),
        "198.51.100.1 is a fine peer"
    );
    assert_eq!(
        policy.check_ip(ip("64:ff9b:1::7f00:1")),
        Err(Refusal::Denied(ALWAYS_DENIED[11]))
    );
}

#[test]
fn six_to_four_addresses_are_judged_by_their_ipv4_address() {
    let policy = default_policy();
    assert_eq!(
        policy.check_ip(ip("2002:7f00:1::1")),
        Err(Refusal::Loopback)
    );
    assert!(refused(&policy, "2002:a9fe:a9fe::"));
    assert!(!refused(&policy, "2002:c633:6401::1"));
}

#[test]
fn teredo_addresses_are_judged_by_their_client_address() {
    let policy = default_policy();
    // Client 127.0.0.1 is carried inverted: 0x80ff_fffe.
    assert_eq!(
        policy.check_ip(ip("2001:0:4136:e378:8000:63bf:80ff:fffe")),
        Err(Refusal::Loopback)
    );
}

#[test]
fn loopback_is_refused_unless_the_test_rig_switch_is_on() {
    let mut policy = default_policy();
    assert_eq!(policy.check_ip(ip("127.0.0.1")), Err(Refusal::Loopback));
    assert!(refused(&policy, "127.255.0.9"));
    assert!(refused(&policy, "::1"));
    policy.danger_allow_loopback_peers = true;
    assert!(!refused(&policy, "127.0.0.1"));
    assert!(!refused(&policy, "::1"));
    assert!(
        refused(&policy, "0.0.0.0"),
        "the switch covers loopback only"
    );
    assert!(refused(&policy, "169.254.169.254"));
}

#[test]
fn link_local_multicast_broadcast_and_metadata_are_refused() {
    let policy = default_policy();
    for text in [
        "169.254.1.1",
        "169.254.169.254",
        "fd00:ec2::254",
        "fe80::1",
        "224.0.0.1",
        "239.255.255.250",
        "ff02::1",
        "255.255.255.255",
        "240.0.0.1",
    ] {
        assert!(refused(&policy, text), "{text}");
    }
}

#[test]
fn shared_address_space_is_refused_unless_allowlisted() {
    let mut policy = default_policy();
    assert_eq!(
        policy.check_ip(ip("100.64.0.1")),
        Err(Refusal::SharedAddressSpace)
    );
    policy.allow = vec!["100.64.0.0/10".parse().expect("literal")];
    assert!(!refused(&policy, "100.64.0.1"));
}

#[test]
fn private_and_public_networks_are_allowed_by_default() {
    let policy = default_policy();
    for text in [
        "10.1.2.3",
        "192.168.1.10",
        "172.16.0.5",
        "198.51.100.7",
        "fd12::1",
        "2600::1",
    ] {
        assert!(!refused(&policy, text), "{text}");
    }
}

#[test]
fn an_allowlist_limits_peers_and_never_overrides_the_deny_list() {
    let policy = PeerPolicy {
        allow: vec![
            "10.0.0.0/8".parse().expect("literal"),
            "0.0.0.0/0".parse().expect("literal"),
        ],
        deny: vec!["10.9.0.0/16".parse().expect("literal")],
        ..PeerPolicy::default()
    };
    assert!(!refused(&policy, "10.1.2.3"));
    assert!(refused(&policy, "10.9.1.1"));
    assert!(
        refused(&policy, "127.0.0.1"),
        "0.0.0.0/0 does not open loopback"
    );
    let narrow = PeerPolicy {
        allow: vec!["10.0.0.0/8".parse().expect("literal")],
        ..PeerPolicy::default()
    };
    assert_eq!(narrow.check_ip(ip("192.168.1.1")), Err(Refusal::NotAllowed));
}

#[test]
fn the_servers_own_sockets_are_refused_in_every_spelling() {
    let policy = PeerPolicy {
        own_addresses: vec!["198.51.100.1:3478".parse().expect("literal")],
        ..PeerPolicy::default()
    };
    let peer = |text: &str| text.parse::<SocketAddr>().expect("literal");
    assert_eq!(
        policy.check(peer("198.51.100.1:3478")),
        Err(Refusal::OwnAddress)
    );
    assert!(
        policy.check(peer("198.51.100.1:50000")).is_ok(),
        "another allocation's relayed address is a peer like any other"
    );
    assert_eq!(
        policy.check(peer("[64:ff9b::c633:6401]:3478")),
        Err(Refusal::OwnAddress)
    );
    assert!(policy.check(peer("198.51.100.1:5060")).is_ok());
    assert!(
        policy.check_ip(ip("198.51.100.1")).is_ok(),
        "a permission names no port"
    );
}

#[test]
fn networks_parse_and_refuse_host_bits() {
    assert!("10.0.0.0/8".parse::<Network>().is_ok());
    assert!("2001:db8::/32".parse::<Network>().is_ok());
    assert!(matches!(
        "10.0.0.1/8".parse::<Network>(),
        Err(NetworkError::HostBits(..))
    ));
    assert!(matches!(
        "10.0.0.0/33".parse::<Network>(),
        Err(NetworkError::PrefixLen(_))
    ));
    assert!(matches!(
        "ten/8".parse::<Network>(),
        Err(NetworkError::Address(_))
    ));
    let single: Network = "192.0.2.5".parse().expect("literal");
    assert!(single.contains(ip("192.0.2.5")) && !single.contains(ip("192.0.2.6")));
}
