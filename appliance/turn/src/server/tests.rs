//! The server driven as a client and a peer would drive it, on a virtual clock.

use std::net::{IpAddr, SocketAddr};
use std::time::{Duration, Instant};

use super::*;
use crate::allocation::Transport;
use crate::auth::StaticUser;
use crate::entropy::SeededEntropy;
use crate::framing::{self, FrameLen};
use crate::ports::PortPool;
use crate::stun::{self, IntegrityCheck};

const USER: &str = "agent7";
const PASSWORD: &str = "correct horse";
const REALM: &str = "tapline";
const UNIX_START: u64 = 1_800_000_000;

fn addr(text: &str) -> SocketAddr {
    text.parse().expect("test literal")
}

fn config() -> ServerConfig {
    ServerConfig {
        relay_ipv4: Some("198.51.100.1".parse().expect("literal")),
        relay_ipv6: Some("2600::1".parse().expect("literal")),
        policy: PeerPolicy {
            own_addresses: vec![addr("198.51.100.1:3478")],
            ..PeerPolicy::default()
        },
        ..ServerConfig::default()
    }
}

struct Harness {
    server: Server,
    now: Instant,
    tuple: FiveTuple,
    nonce: Option<String>,
    next_tid: u8,
    username: String,
    password: String,
}

fn harness_with(config: ServerConfig, ports: std::ops::RangeInclusive<u16>) -> Harness {
    let now = Instant::now();
    let credentials = Credentials {
        rest_secrets: vec![b"rest secret".to_vec()],
        static_users: vec![
            StaticUser {
                username: USER.to_owned(),
                password: PASSWORD.to_owned(),
            },
            StaticUser {
                username: "other".to_owned(),
                password: "pw".to_owned(),
            },
        ],
    };
    let pool = PortPool::new(ports, &mut SeededEntropy::new(9));
    let server = Server::new(
        config,
        credentials,
        Box::new(pool),
        Box::new(SeededEntropy::new(42)),
        now,
        UNIX_START,
    );
    Harness {
        server,
        now,
        tuple: FiveTuple {
            client: addr("203.0.113.7:40000"),
            server: addr("198.51.100.1:3478"),
            transport: Transport::Udp,
        },
        nonce: None,
        next_tid: 0,
        username: USER.to_owned(),
        password: PASSWORD.to_owned(),
    }
}

fn harness() -> Harness {
    harness_with(config(), 50000..=50099)
}

/// An attribute list entry for building requests.
type Attr = (u16, Vec<u8>);

fn requested_udp() -> Attr {
    (attr::REQUESTED_TRANSPORT, vec![17, 0, 0, 0])
}

impl Harness {
    fn tid(&mut self) -> [u8; 12] {
        self.next_tid += 1;
        [self.next_tid; 12]
    }

    fn advance(&mut self, by: Duration) {
        self.now += by;
        self.server.handle_timeout(self.now);
    }

    fn actions(&mut self) -> Vec<Action> {
        std::iter::from_fn(|| self.server.poll_action()).collect()
    }

    fn events(&mut self) -> Vec<Event> {
        std::iter::from_fn(|| self.server.poll_event()).collect()
    }

    /// Sends bytes from the client; returns the one reply on the listening socket.
    fn exchange(&mut self, bytes: &[u8]) -> Option<Vec<u8>> {
        self.server.handle_client(self.now, self.tuple, bytes);
        self.actions().into_iter().find_map(|action| match action {
            Action::Transmit { bytes, .. } => Some(bytes),
            _ => None,
        })
    }

    /// Builds a request with `attrs`, signed with the harness's user if there is a nonce.
    fn build(&mut self, method: Method, tid: [u8; 12], attrs: &[Attr], signed: bool) -> Vec<u8> {
        let mut builder = MessageBuilder::new(Class::Request, method, &tid);
        for (t, value) in attrs {
            builder.add(*t, value);
        }
        if !signed {
            return builder.finish(None, true);
        }
        let nonce = self.nonce.clone().expect("a nonce from an earlier 401");
        builder.add(attr::USERNAME, self.username.as_bytes());
        builder.add(attr::REALM, REALM.as_bytes());
        builder.add(attr::NONCE, nonce.as_bytes());
        let key = stun::long_term_key_md5(&self.username, REALM, &self.password);
        builder.finish(Some((IntegrityKind::Sha1, &key)), true)
    }

    /// A signed request, fetching a nonce first if needed; returns the reply.
    fn request(&mut self, method: Method, attrs: &[Attr]) -> Vec<u8> {
        self.request_actions(method, attrs)
            .into_iter()
            .find_map(|action| match action {
                Action::Transmit { bytes, .. } => Some(bytes),
                _ => None,
            })
            .expect("a reply")
    }

    /// A signed request, fetching a nonce first if needed; returns every action it caused.
    fn request_actions(&mut self, method: Method, attrs: &[Attr]) -> Vec<Action> {
        if self.nonce.is_none() {
            let tid = self.tid();
            let bytes = self.build(method, tid, attrs, false);
            let reply = self.exchange(&bytes).expect("a 401");
            let reply = Message::decode(&reply).expect("a reply decodes");
            assert_eq!(reply.error_code().map(|e| e.code), Some(401));
            self.nonce = reply.text(attr::NONCE).map(str::to_owned);
        }
        let tid = self.tid();
        let bytes = self.build(method, tid, attrs, true);
        self.server.handle_client(self.now, self.tuple, &bytes);
        self.actions()
    }

    fn allocate(&mut self) -> (AllocationId, SocketAddr) {
        let reply = self.request(Method::Allocate, &[requested_udp()]);
        let message = Message::decode(&reply).expect("decodes");
        assert_eq!(
            message.class,
            Class::SuccessResponse,
            "{:?}",
            message.error_code()
        );
        let relayed = message
            .xor_address(attr::XOR_RELAYED_ADDRESS)
            .expect("XOR-RELAYED-ADDRESS");
        let Some(Event::AllocationStarted { allocation, .. }) = self.events().into_iter().next()
        else {
            panic!("an AllocationStarted event");
        };
        (allocation, relayed)
    }

    fn permit(&mut self, peer: SocketAddr) -> Option<u16> {
        let reply = self.request_with_peer(Method::CreatePermission, peer, &[]);
        code_of(&reply)
    }

    /// A signed request carrying XOR-PEER-ADDRESS `peer` (encoded for its transaction ID).
    fn request_with_peer(&mut self, method: Method, peer: SocketAddr, extra: &[Attr]) -> Vec<u8> {
        assert!(self.nonce.is_some(), "allocate first");
        let tid = self.tid();
        let mut attrs = vec![(attr::XOR_PEER_ADDRESS, stun::encode_xor_address(peer, &tid))];
        attrs.extend_from_slice(extra);
        self.next_tid -= 1;
        let tid = self.tid();
        let bytes = self.build(method, tid, &attrs, true);
        self.exchange(&bytes).expect("a reply")
    }

    fn bind_channel(&mut self, channel: u16, peer: SocketAddr) -> Option<u16> {
        let reply = self.request_with_peer(
            Method::ChannelBind,
            peer,
            &[(
                attr::CHANNEL_NUMBER,
                vec![(channel >> 8) as u8, channel as u8, 0, 0],
            )],
        );
        code_of(&reply)
    }
}

/// The error code of a reply, or None for success.
fn code_of(reply: &[u8]) -> Option<u16> {
    let message = Message::decode(reply).expect("a reply decodes");
    message.error_code().map(|e| e.code)
}

#[test]
fn binding_requests_get_the_mapped_address() {
    let mut h = harness();
    let request = MessageBuilder::new(Class::Request, Method::Binding, &[5; 12]).finish(None, true);
    let reply = h.exchange(&request).expect("a reply");
    let message = Message::decode(&reply).expect("decodes");
    assert_eq!(message.class, Class::SuccessResponse);
    assert_eq!(message.transaction_id, [5; 12]);
    assert_eq!(
        message.xor_address(attr::XOR_MAPPED_ADDRESS),
        Some(h.tuple.client)
    );
    assert!(message.has_fingerprint());
    assert_eq!(h.server.stats().binding_requests, 1);
}

#[test]
fn binding_over_tcp_is_framed_by_the_header() {
    let mut h = harness();
    h.tuple.transport = Transport::Tcp;
    let one = MessageBuilder::new(Class::Request, Method::Binding, &[1; 12]).finish(None, false);
    let two = MessageBuilder::new(Class::Request, Method::Binding, &[2; 12]).finish(None, false);
    let mut stream = [one.clone(), two].concat();
    let mut replies = 0;
    while let FrameLen::Complete(len) = framing::frame_len(&stream) {
        let frame: Vec<u8> = stream.drain(..len).collect();
        assert!(h.exchange(&frame).is_some());
        replies += 1;
    }
    assert_eq!(replies, 2);
    assert!(stream.is_empty());
}

#[test]
fn binding_with_an_unknown_required_attribute_gets_420_listing_it() {
    let mut h = harness();
    let mut builder = MessageBuilder::new(Class::Request, Method::Binding, &[3; 12]);
    builder.add(0x0003, &[0, 0, 0, 6]); // CHANGE-REQUEST (RFC 5780), not served
    let reply = h.exchange(&builder.finish(None, false)).expect("a reply");
    let message = Message::decode(&reply).expect("decodes");
    assert_eq!(message.error_code().map(|e| e.code), Some(420));
    assert_eq!(
        message.attribute(attr::UNKNOWN_ATTRIBUTES),
        Some(&[0x00, 0x03][..])
    );
}

#[test]
fn an_unauthenticated_allocate_gets_401_with_realm_nonce_and_algorithms() {
    let mut h = harness();
    let tid = h.tid();
    let bytes = h.build(Method::Allocate, tid, &[requested_udp()], false);
    let reply = h.exchange(&bytes).expect("a reply");
    let message = Message::decode(&reply).expect("decodes");
    assert_eq!(message.error_code().map(|e| e.code), Some(401));
    assert_eq!(message.text(attr::REALM), Some(REALM));
    assert!(
        message
            .text(attr::NONCE)
            .is_some_and(|n| n.starts_with("obMatJos2"))
    );
    assert_eq!(
        message.attribute(attr::PASSWORD_ALGORITHMS),
        Some(&[0, 2, 0, 0, 0, 1, 0, 0][..])
    );
    assert!(!message.has_integrity(), "a 401 cannot be signed");
    assert_eq!(h.server.allocation_count(), 0);
}

#[test]
fn allocate_opens_a_relay_and_signs_the_reply() {
    let mut h = harness();
    let reply = h.request(Method::Allocate, &[requested_udp()]);
    let message = Message::decode(&reply).expect("decodes");
    assert_eq!(message.class, Class::SuccessResponse);
    let key = stun::long_term_key_md5(USER, REALM, PASSWORD);
    assert_eq!(message.check_integrity(&key), IntegrityCheck::Valid);
    assert_eq!(message.u32_value(attr::LIFETIME), Some(600));
    assert_eq!(
        message.xor_address(attr::XOR_MAPPED_ADDRESS),
        Some(h.tuple.client)
    );
    let relayed = message
        .xor_address(attr::XOR_RELAYED_ADDRESS)
        .expect("relayed");
    assert_eq!(
        relayed.ip(),
        "198.51.100.1".parse::<IpAddr>().expect("literal")
    );
    assert!((50000..=50099).contains(&relayed.port()));
    assert!(h.actions().is_empty(), "the OpenRelay came with the reply");
    let events = h.events();
    assert!(matches!(&events[..], [Event::AllocationStarted { username, .. }] if username == USER));
}

#[test]
fn allocate_emits_open_relay_before_anything_is_relayed() {
    let mut h = harness();
    h.nonce = None;
    let actions = h.request_actions(Method::Allocate, &[requested_udp()]);
    assert!(matches!(actions[0], Action::OpenRelay { .. }));
    assert!(matches!(actions[1], Action::Transmit { .. }));
}

#[test]
fn dont_fragment_reaches_the_relayed_socket() {
    let dont_fragment = (attr::DONT_FRAGMENT, vec![]);
    for (attrs, expected) in [
        (vec![requested_udp()], false),
        (vec![requested_udp(), dont_fragment], true),
    ] {
        let mut h = harness();
        h.nonce = None;
        let actions = h.request_actions(Method::Allocate, &attrs);
        assert!(
            matches!(actions[0], Action::OpenRelay { dont_fragment, .. } if dont_fragment == expected),
            "{actions:?}"
        );
    }
}

#[test]
fn a_retransmitted_allocate_gets_the_same_reply_and_a_new_one_437() {
    let mut h = harness();
    let _ = h.request(Method::Allocate, &[]); // fetch a nonce (400: no REQUESTED-TRANSPORT)
    let tid = h.tid();
    let request = h.build(Method::Allocate, tid, &[requested_udp()], true);
    let first = h.exchange(&request).expect("reply");
    let again = h.exchange(&request).expect("reply");
    assert_eq!(first, again);
    assert_eq!(h.server.allocation_count(), 1);
    let reply = h.request(Method::Allocate, &[requested_udp()]);
    assert_eq!(code_of(&reply), Some(437));
}

#[test]
fn a_wrong_password_gets_401_and_a_stale_nonce_438() {
    let mut h = harness();
    let _ = h.allocate();
    h.password = "wrong".to_owned();
    let reply = h.request(Method::Refresh, &[]);
    assert_eq!(code_of(&reply), Some(401));
    h.password = PASSWORD.to_owned();
    h.advance(Duration::from_secs(601));
    let reply = h.request(Method::Refresh, &[]);
    let message = Message::decode(&reply).expect("decodes");
    assert_eq!(message.error_code().map(|e| e.code), Some(438));
    let fresh = message.text(attr::NONCE).expect("a fresh nonce").to_owned();
    assert_ne!(Some(&fresh), h.nonce.as_ref());
}

#[test]
fn rest_api_usernames_work_until_they_expire() {
    let mut h = harness();
    h.username = format!("{}:agent9", UNIX_START + 60);
    h.password = Credentials::rest_password(b"rest secret", &h.username);
    let _ = h.allocate();
    h.now += Duration::from_secs(61);
    let reply = h.request(Method::Refresh, &[]);
    assert_eq!(
        code_of(&reply),
        Some(401),
        "expired REST usernames are refused"
    );
}

#[test]
fn another_user_on_the_same_five_tuple_gets_441() {
    let mut h = harness();
    let _ = h.allocate();
    h.username = "other".to_owned();
    h.password = "pw".to_owned();
    let reply = h.request(Method::Refresh, &[]);
    assert_eq!(code_of(&reply), Some(441));
}

#[test]
fn requests_without_an_allocation_get_437() {
    let mut h = harness();
    let reply = h.request(Method::Refresh, &[]);
    assert_eq!(code_of(&reply), Some(437));
    let peer = addr("192.0.2.10:5000");
    assert_eq!(h.permit(peer), Some(437));
}

#[test]
fn allocate_refuses_what_it_does_not_serve_with_the_right_codes() {
    let mut h = harness();
    // RFC 6062 §5.1: TCP relaying needs a TCP or TLS control connection (400); protocols
    // other than UDP and TCP are not served (442).
    let tcp = (attr::REQUESTED_TRANSPORT, vec![6, 0, 0, 0]);
    assert_eq!(code_of(&h.request(Method::Allocate, &[tcp])), Some(400));
    let sctp = (attr::REQUESTED_TRANSPORT, vec![132, 0, 0, 0]);
    assert_eq!(code_of(&h.request(Method::Allocate, &[sctp])), Some(442));
    assert_eq!(code_of(&h.request(Method::Allocate, &[])), Some(400));
    let token = (attr::RESERVATION_TOKEN, vec![1; 8]);
    assert_eq!(
        code_of(&h.request(Method::Allocate, &[requested_udp(), token.clone()])),
        Some(508)
    );
    let even = (attr::EVEN_PORT, vec![0x00]);
    assert_eq!(
        code_of(&h.request(Method::Allocate, &[requested_udp(), token, even])),
        Some(400)
    );
    let reserve_dual = [
        requested_udp(),
        (attr::EVEN_PORT, vec![0x80]),
        (attr::ADDITIONAL_ADDRESS_FAMILY, vec![0x02, 0, 0, 0]),
    ];
    assert_eq!(
        code_of(&h.request(Method::Allocate, &reserve_dual)),
        Some(400)
    );
    let short_token = (attr::RESERVATION_TOKEN, vec![1; 4]);
    assert_eq!(
        code_of(&h.request(Method::Allocate, &[requested_udp(), short_token])),
        Some(400)
    );
    let family = (attr::REQUESTED_ADDRESS_FAMILY, vec![0x03, 0, 0, 0]);
    assert_eq!(
        code_of(&h.request(Method::Allocate, &[requested_udp(), family])),
        Some(440)
    );
    let both = [
        requested_udp(),
        (attr::REQUESTED_ADDRESS_FAMILY, vec![0x01, 0, 0, 0]),
        (attr::ADDITIONAL_ADDRESS_FAMILY, vec![0x02, 0, 0, 0]),
    ];
    assert_eq!(code_of(&h.request(Method::Allocate, &both)), Some(400));
    let unknown = (0x7FFF, vec![0; 4]);
    let reply = h.request(Method::Allocate, &[requested_udp(), unknown]);
    let message = Message::decode(&reply).expect("decodes");
    assert_eq!(message.error_code().map(|e| e.code), Some(420));
    assert_eq!(
        message.attribute(attr::UNKNOWN_ATTRIBUTES),
        Some(&[0x7F, 0xFF][..])
    );
    let key = stun::long_term_key_md5(USER, REALM, PASSWORD);
    assert_eq!(message.check_integrity(&key), IntegrityCheck::Valid);
    assert_eq!(h.server.allocation_count(), 0);
}

#[test]
fn even_port_dont_fragment_and_lifetimes_are_honoured() {
    let mut h = harness();
    let attrs = [
        requested_udp(),
        (attr::EVEN_PORT, vec![0x00]),
        (attr::DONT_FRAGMENT, vec![]),
        (attr::LIFETIME, 86_400u32.to_be_bytes().to_vec()),
    ];
    let reply = h.request(Method::Allocate, &attrs);
    let message = Message::decode(&reply).expect("decodes");
    let relayed = message
        .xor_address(attr::XOR_RELAYED_ADDRESS)
        .expect("relayed");
    assert_eq!(relayed.port() % 2, 0);
    assert_eq!(
        message.u32_value(attr::LIFETIME),
        Some(3600),
        "capped at the maximum"
    );
    let short = (attr::LIFETIME, 10u32.to_be_bytes().to_vec());
    let reply = h.request(Method::Refresh, &[short]);
    let message = Message::decode(&reply).expect("decodes");
    assert_eq!(
        message.u32_value(attr::LIFETIME),
        Some(600),
        "raised to the default"
    );
}

#[test]
fn ipv6_and_dual_stack_allocations() {
    let mut h = harness();
    let v6 = (attr::REQUESTED_ADDRESS_FAMILY, vec![0x02, 0, 0, 0]);
    let reply = h.request(Method::Allocate, &[requested_udp(), v6]);
    let message = Message::decode(&reply).expect("decodes");
    let relayed = message
        .xor_address(attr::XOR_RELAYED_ADDRESS)
        .expect("relayed");
    assert!(relayed.is_ipv6());

    let mut h = harness();
    let dual = (attr::ADDITIONAL_ADDRESS_FAMILY, vec![0x02, 0, 0, 0]);
    let reply = h.request(Method::Allocate, &[requested_udp(), dual.clone()]);
    let message = Message::decode(&reply).expect("decodes");
    let relays: Vec<SocketAddr> = message
        .attributes_of(attr::XOR_RELAYED_ADDRESS)
        .filter_map(|v| stun::decode_xor_address(v, &message.transaction_id))
        .collect();
    assert_eq!(relays.len(), 2);
    assert!(relays[0].is_ipv4() && relays[1].is_ipv6());

    let mut v4_only = config();
    v4_only.relay_ipv6 = None;
    let mut h = harness_with(v4_only, 50000..=50099);
    let reply = h.request(Method::Allocate, &[requested_udp(), dual]);
    let message = Message::decode(&reply).expect("decodes");
    assert_eq!(message.class, Class::SuccessResponse);
    let address_error = message
        .attribute(attr::ADDRESS_ERROR_CODE)
        .expect("ADDRESS-ERROR-CODE");
    assert_eq!(&address_error[..4], &[0x02, 0, 4, 40]);
}

#[test]
fn quotas_per_user_in_total_and_ports() {
    let mut per_user = config();
    per_user.max_allocations_per_user = 1;
    let mut h = harness_with(per_user, 50000..=50099);
    let _ = h.allocate();
    h.tuple.client = addr("203.0.113.7:40001");
    h.nonce = None;
    assert_eq!(
        code_of(&h.request(Method::Allocate, &[requested_udp()])),
        Some(486)
    );

    let mut total = config();
    total.max_allocations = 1;
    let mut h = harness_with(total, 50000..=50099);
    let _ = h.allocate();
    h.tuple.client = addr("203.0.113.8:40000");
    h.nonce = None;
    assert_eq!(
        code_of(&h.request(Method::Allocate, &[requested_udp()])),
        Some(508)
    );

    let mut h = harness_with(config(), 50000..=50000);
    let _ = h.allocate();
    h.tuple.client = addr("203.0.113.9:40000");
    h.nonce = None;
    assert_eq!(
        code_of(&h.request(Method::Allocate, &[requested_udp()])),
        Some(508)
    );
}

#[test]
fn send_needs_a_permission_and_data_comes_back_as_data_indications() {
    let mut h = harness();
    let (allocation, relayed) = h.allocate();
    let peer = addr("192.0.2.10:5000");
    let send = |h: &mut Harness| {
        let tid = h.tid();
        let mut builder = MessageBuilder::new(Class::Indication, Method::Send, &tid);
        builder.add_xor_address(attr::XOR_PEER_ADDRESS, peer);
        builder.add(attr::DATA, b"rtp");
        h.server
            .handle_client(h.now, h.tuple, &builder.finish(None, false));
        h.actions()
    };
    assert!(send(&mut h).is_empty(), "no permission yet");
    assert_eq!(h.permit(peer), None);
    assert_eq!(
        send(&mut h),
        vec![Action::RelayTo {
            allocation,
            relayed,
            peer,
            bytes: b"rtp".to_vec()
        }]
    );

    h.server.handle_peer_data(h.now, allocation, peer, b"back");
    let actions = h.actions();
    let [Action::Transmit { tuple, bytes }] = &actions[..] else {
        panic!("one Data indication");
    };
    assert_eq!(*tuple, h.tuple);
    let data = Message::decode(bytes).expect("decodes");
    assert_eq!((data.class, data.method), (Class::Indication, Method::Data));
    assert_eq!(data.xor_address(attr::XOR_PEER_ADDRESS), Some(peer));
    assert_eq!(data.attribute(attr::DATA), Some(&b"back"[..]));

    h.server
        .handle_peer_data(h.now, allocation, addr("192.0.2.11:5000"), b"stranger");
    assert!(
        h.actions().is_empty(),
        "peers without a permission are dropped"
    );
    h.advance(Duration::from_secs(301));
    h.server.handle_peer_data(h.now, allocation, peer, b"late");
    assert!(h.actions().is_empty(), "permissions expire after 300 s");
}

#[test]
fn channels_carry_data_both_ways_padded_over_tcp() {
    let mut h = harness();
    h.tuple.transport = Transport::Tcp;
    let (allocation, relayed) = h.allocate();
    let peer = addr("192.0.2.10:5000");
    assert_eq!(h.bind_channel(0x4000, peer), None);
    let frame = framing::ChannelData::encode(0x4000, b"hello", true);
    h.server.handle_client(h.now, h.tuple, &frame);
    assert_eq!(
        h.actions(),
        vec![Action::RelayTo {
            allocation,
            relayed,
            peer,
            bytes: b"hello".to_vec()
        }]
    );
    h.server.handle_peer_data(h.now, allocation, peer, b"hi!!x");
    let actions = h.actions();
    let [Action::Transmit { bytes, .. }] = &actions[..] else {
        panic!("one ChannelData");
    };
    assert_eq!(bytes.len(), 12, "padded to 4 bytes over TCP");
    let decoded = framing::ChannelData::decode(bytes).expect("ChannelData");
    assert_eq!((decoded.channel, decoded.data), (0x4000, &b"hi!!x"[..]));
}

/// A shell gives sent buffers back; the next datagrams reuse them, whatever they held.
#[test]
fn recycled_buffers_carry_the_next_datagrams_exactly() {
    let mut h = harness();
    let (allocation, _) = h.allocate();
    let peer = addr("192.0.2.10:5000");
    assert_eq!(h.bind_channel(0x4000, peer), None);
    let _ = h.actions();
    for (to_peer, from_peer) in [
        (&b"a longer message"[..], &b"a long reply"[..]),
        (b"hi", b"yo"),
    ] {
        let frame = framing::ChannelData::encode(0x4000, to_peer, false);
        h.server.handle_client(h.now, h.tuple, &frame);
        h.server
            .handle_peer_data(h.now, allocation, peer, from_peer);
        let actions = h.actions();
        let [
            Action::RelayTo { bytes: relayed, .. },
            Action::Transmit { bytes: back, .. },
        ] = &actions[..]
        else {
            panic!("a relayed datagram and ChannelData back: {actions:?}");
        };
        assert_eq!(relayed.as_slice(), to_peer);
        assert_eq!(
            *back,
            framing::ChannelData::encode(0x4000, from_peer, false)
        );
        for action in actions {
            if let Action::RelayTo { bytes, .. } | Action::Transmit { bytes, .. } = action {
                h.server.recycle(bytes);
            }
        }
    }
}

#[test]
fn channel_bind_keeps_numbers_and_peers_one_to_one() {
    let mut h = harness();
    let _ = h.allocate();
    let peer = addr("192.0.2.10:5000");
    let other = addr("192.0.2.11:5000");
    assert_eq!(h.bind_channel(0x3FFF, peer), Some(400), "below the range");
    assert_eq!(h.bind_channel(0x8000, peer), Some(400), "above the range");
    assert_eq!(h.bind_channel(0xFFFF, peer), Some(400), "above the range");
    assert_eq!(h.bind_channel(0x4FFF, peer), None);
    assert_eq!(
        h.bind_channel(0x4FFF, peer),
        None,
        "rebinding the same pair refreshes"
    );
    assert_eq!(
        h.bind_channel(0x4FFF, other),
        Some(400),
        "number bound to another peer"
    );
    assert_eq!(
        h.bind_channel(0x4001, peer),
        Some(400),
        "peer bound to another number"
    );
    assert_eq!(h.bind_channel(0x4001, other), None);
    let v6_peer = addr("[2600::10]:5000");
    assert_eq!(h.bind_channel(0x4002, v6_peer), Some(443));
    // Keep the allocation alive past the binding's 600 s, then inside the quarantine.
    let long = (attr::LIFETIME, 3600u32.to_be_bytes().to_vec());
    let _ = h.request(Method::Refresh, &[long]);
    h.advance(Duration::from_secs(601));
    h.nonce = None; // the nonce has gone stale too
    let _ = h.request(Method::Refresh, &[]);
    assert_eq!(
        h.bind_channel(0x4FFF, other),
        Some(400),
        "quarantined for 5 minutes"
    );
    assert_eq!(
        h.bind_channel(0x4FFF, peer),
        None,
        "the same pair may come back"
    );
}

#[test]
fn forbidden_peers_get_403_and_are_reported() {
    let mut h = harness();
    let (allocation, _) = h.allocate();
    for peer in [
        "127.0.0.1:22",
        "[::ffff:127.0.0.1]:22",
        "0.0.0.0:22",
        "169.254.169.254:80",
    ] {
        // On this IPv4 allocation an IPv6 spelling is refused as a family mismatch (443);
        // `mapped_loopback_is_refused_on_an_ipv6_allocation` checks the policy's verdict.
        let reply = h.permit(addr(peer));
        assert!(matches!(reply, Some(403 | 443)), "{peer}: {reply:?}");
    }
    let events = h.events();
    assert!(events.iter().any(|e| matches!(
        e,
        Event::PeerRefused { allocation: a, reason: Refusal::Loopback, .. } if *a == allocation
    )));
    assert_eq!(
        h.bind_channel(0x4000, addr("198.51.100.1:3478")),
        Some(403),
        "the server itself"
    );
    h.server
        .handle_peer_data(h.now, allocation, addr("127.0.0.1:9"), b"x");
    assert!(h.actions().is_empty());
}

#[test]
fn mapped_loopback_is_refused_on_an_ipv6_allocation() {
    let mut h = harness();
    let v6 = (attr::REQUESTED_ADDRESS_FAMILY, vec![0x02, 0, 0, 0]);
    let _ = h.request(Method::Allocate, &[requested_udp(), v6]);
    for peer in [
        "[::ffff:127.0.0.1]:22",
        "[::]:22",
        "[::1]:22",
        "[64:ff9b::7f00:1]:22",
    ] {
        assert_eq!(h.permit(addr(peer)), Some(403), "{peer}");
    }
    assert_eq!(h.permit(addr("[2600::10]:5000")), None);
}

#[test]
fn refresh_with_lifetime_zero_deletes_and_summarises() {
    let mut h = harness();
    let (allocation, relayed) = h.allocate();
    let peer = addr("192.0.2.10:5000");
    assert_eq!(h.permit(peer), None);
    h.server.handle_peer_data(h.now, allocation, peer, b"12345");
    let _ = h.actions();
    let zero = (attr::LIFETIME, vec![0, 0, 0, 0]);
    let reply = h.request(Method::Refresh, std::slice::from_ref(&zero));
    let message = Message::decode(&reply).expect("decodes");
    assert_eq!(message.u32_value(attr::LIFETIME), Some(0));
    assert_eq!(h.server.allocation_count(), 0);
    let events = h.events();
    let [Event::AllocationEnded(summary)] = &events[..] else {
        panic!("one AllocationEnded");
    };
    assert_eq!(summary.allocation, allocation);
    assert_eq!(summary.reason, EndReason::Deleted);
    assert_eq!(summary.relayed, vec![relayed]);
    assert_eq!(summary.peers, vec![peer.ip()]);
    assert_eq!(
        (summary.from_peers.bytes, summary.from_peers.packets),
        (5, 1)
    );
    assert_eq!(summary.username, USER);
    assert_eq!(code_of(&h.request(Method::Refresh, &[zero])), Some(437));
}

#[test]
fn allocations_expire_on_the_clock_passed_in() {
    let mut h = harness();
    let (allocation, relayed) = h.allocate();
    let _ = h.actions();
    let deadline = h.server.poll_timeout().expect("a timer");
    assert_eq!(deadline, h.now + Duration::from_secs(600));
    h.advance(Duration::from_secs(599));
    assert_eq!(h.server.allocation_count(), 1);
    h.advance(Duration::from_secs(1));
    assert_eq!(h.server.allocation_count(), 0);
    assert_eq!(
        h.actions(),
        vec![Action::CloseRelay {
            allocation,
            relayed
        }]
    );
    let events = h.events();
    assert!(matches!(&events[..], [Event::AllocationEnded(s)] if s.reason == EndReason::Expired));
    assert_eq!(h.server.poll_timeout(), None);
}

#[test]
fn relay_failure_and_finish_end_allocations() {
    let mut h = harness();
    let (allocation, _) = h.allocate();
    h.server.handle_relay_failed(h.now, allocation);
    assert_eq!(h.server.allocation_count(), 0);
    let mut h = harness();
    let _ = h.allocate();
    h.server.finish(h.now);
    let events = h.events();
    assert!(matches!(&events[..], [Event::AllocationEnded(s)] if s.reason == EndReason::Shutdown));
}

#[test]
fn bandwidth_over_the_limit_is_dropped() {
    let mut limited = config();
    limited.bandwidth = Some(Bandwidth {
        bytes_per_second: 1000,
        burst_bytes: 1000,
    });
    let mut h = harness_with(limited, 50000..=50099);
    let (allocation, _) = h.allocate();
    let peer = addr("192.0.2.10:5000");
    assert_eq!(h.permit(peer), None);
    let packet = [0u8; 400];
    for _ in 0..3 {
        h.server.handle_peer_data(h.now, allocation, peer, &packet);
    }
    assert_eq!(
        h.actions().len(),
        2,
        "1000 bytes of burst: two packets of 400"
    );
    h.now += Duration::from_millis(400);
    h.server.handle_peer_data(h.now, allocation, peer, &packet);
    assert_eq!(h.actions().len(), 1);
    h.server.finish(h.now);
    let events = h.events();
    let [Event::AllocationEnded(summary)] = &events[..] else {
        panic!("one summary");
    };
    assert_eq!(summary.from_peers.packets, 3);
    assert_eq!(summary.from_peers.dropped_packets, 1);
}

#[test]
fn replies_of_401_per_source_are_capped() {
    let mut few = config();
    few.challenges_per_source = 2;
    let mut h = harness_with(few, 50000..=50099);
    let mut replies = 0;
    for _ in 0..5 {
        let tid = h.tid();
        let bytes = h.build(Method::Allocate, tid, &[requested_udp()], false);
        replies += usize::from(h.exchange(&bytes).is_some());
    }
    assert_eq!(replies, 2);
    assert_eq!(h.server.stats().challenges_suppressed, 3);
    h.advance(Duration::from_secs(10));
    let tid = h.tid();
    let bytes = h.build(Method::Allocate, tid, &[requested_udp()], false);
    assert!(
        h.exchange(&bytes).is_some(),
        "the budget comes back with the window"
    );

    // A stream client cannot have a forged source, and would never retransmit: no budget.
    h.tuple.transport = Transport::Tcp;
    for _ in 0..5 {
        let tid = h.tid();
        let bytes = h.build(Method::Allocate, tid, &[requested_udp()], false);
        assert!(h.exchange(&bytes).is_some(), "every 401 is sent over TCP");
    }
}

#[test]
fn sha256_password_algorithm_and_message_integrity_sha256() {
    let mut h = harness();
    let tid = h.tid();
    let bytes = h.build(Method::Allocate, tid, &[requested_udp()], false);
    let challenge = h.exchange(&bytes).expect("401");
    let nonce = Message::decode(&challenge)
        .expect("decodes")
        .text(attr::NONCE)
        .expect("nonce")
        .to_owned();
    let tid = h.tid();
    let mut builder = MessageBuilder::new(Class::Request, Method::Allocate, &tid);
    builder.add(attr::REQUESTED_TRANSPORT, &[17, 0, 0, 0]);
    builder.add(attr::USERNAME, USER.as_bytes());
    builder.add(attr::REALM, REALM.as_bytes());
    builder.add(attr::NONCE, nonce.as_bytes());
    builder.add(attr::PASSWORD_ALGORITHMS, &[0, 2, 0, 0, 0, 1, 0, 0]);
    builder.add(attr::PASSWORD_ALGORITHM, &[0, 2, 0, 0]);
    let key = stun::long_term_key_sha256(USER, REALM, PASSWORD);
    let request = builder.finish(Some((IntegrityKind::Sha256, &key)), false);
    let reply = h.exchange(&request).expect("reply");
    let message = Message::decode(&reply).expect("decodes");
    assert_eq!(
        message.class,
        Class::SuccessResponse,
        "{:?}",
        message.error_code()
    );
    assert!(message.has_integrity_sha256());
    assert_eq!(message.check_integrity(&key), IntegrityCheck::Valid);
}

#[test]
fn a_bid_down_of_the_password_algorithms_is_refused() {
    let mut h = harness();
    let tid = h.tid();
    let bytes = h.build(Method::Allocate, tid, &[requested_udp()], false);
    let challenge = h.exchange(&bytes).expect("401");
    let nonce = Message::decode(&challenge)
        .expect("decodes")
        .text(attr::NONCE)
        .expect("nonce")
        .to_owned();
    let tid = h.tid();
    let mut builder = MessageBuilder::new(Class::Request, Method::Allocate, &tid);
    builder.add(attr::REQUESTED_TRANSPORT, &[17, 0, 0, 0]);
    builder.add(attr::USERNAME, USER.as_bytes());
    builder.add(attr::REALM, REALM.as_bytes());
    builder.add(attr::NONCE, nonce.as_bytes());
    // An attacker stripped SHA-256 from the list on the way.
    builder.add(attr::PASSWORD_ALGORITHMS, &[0, 1, 0, 0]);
    builder.add(attr::PASSWORD_ALGORITHM, &[0, 1, 0, 0]);
    let key = stun::long_term_key_md5(USER, REALM, PASSWORD);
    let reply = h
        .exchange(&builder.finish(Some((IntegrityKind::Sha1, &key)), false))
        .expect("reply");
    assert_eq!(code_of(&reply), Some(400));
}

#[test]
fn hostile_bytes_never_panic_the_server() {
    let mut h = harness();
    let (allocation, _) = h.allocate();
    let peer = addr("192.0.2.10:5000");
    assert_eq!(h.bind_channel(0x4000, peer), None);
    let tid = h.tid();
    let seeds: Vec<Vec<u8>> = vec![
        h.build(Method::Allocate, tid, &[requested_udp()], true),
        h.build(
            Method::CreatePermission,
            tid,
            &[(attr::XOR_PEER_ADDRESS, vec![0, 1, 0, 0, 1, 2, 3, 4])],
            true,
        ),
        framing::ChannelData::encode(0x4000, b"data", false),
        MessageBuilder::new(Class::Indication, Method::Send, &tid).finish(None, false),
    ];
    let mut entropy = SeededEntropy::new(7);
    for seed in &seeds {
        for end in 0..=seed.len() {
            h.server.handle_client(h.now, h.tuple, &seed[..end]);
        }
        for _ in 0..2000 {
            let mut mutated = seed.clone();
            let mut noise = [0u8; 3];
            entropy.fill(&mut noise);
            let index = usize::from(noise[0]) % mutated.len();
            mutated[index] ^= noise[1] | 1;
            h.server.handle_client(h.now, h.tuple, &mutated);
            h.server.handle_peer_data(h.now, allocation, peer, &mutated);
        }
    }
    for _ in 0..2000 {
        let mut random = vec![0u8; 64];
        entropy.fill(&mut random);
        random[0] &= 0x7F;
        h.server.handle_client(h.now, h.tuple, &random);
    }
    let _ = h.actions();
    let _ = h.events();
}

/// The relayed address and RESERVATION-TOKEN of a successful Allocate reply.
fn relayed_and_token(reply: &[u8]) -> (SocketAddr, Option<Vec<u8>>) {
    let message = Message::decode(reply).expect("decodes");
    assert_eq!(
        message.class,
        Class::SuccessResponse,
        "{:?}",
        message.error_code()
    );
    let relayed = message
        .xor_address(attr::XOR_RELAYED_ADDRESS)
        .expect("relayed");
    (
        relayed,
        message
            .attribute(attr::RESERVATION_TOKEN)
            .map(<[u8]>::to_vec),
    )
}

#[test]
fn even_port_with_the_r_bit_keeps_the_next_port_for_its_token() {
    let mut h = harness();
    let reserve = [requested_udp(), (attr::EVEN_PORT, vec![0x80])];
    let (rtp, token) = relayed_and_token(&h.request(Method::Allocate, &reserve));
    let token = token.expect("a RESERVATION-TOKEN");
    assert_eq!(token.len(), 8);
    assert_eq!(rtp.port() % 2, 0);
    assert_eq!(h.server.reservation_count(), 1);

    // A second client (coturn's RTCP socket) claims the kept port with the token.
    h.tuple.client = addr("203.0.113.7:40001");
    h.nonce = None; // nonces are bound to the client's address
    let claim = [requested_udp(), (attr::RESERVATION_TOKEN, token.clone())];
    let (rtcp, none) = relayed_and_token(&h.request(Method::Allocate, &claim));
    assert_eq!(rtcp, SocketAddr::new(rtp.ip(), rtp.port() + 1));
    assert_eq!(none, None);
    assert_eq!(h.server.reservation_count(), 0);
    let started: Vec<Vec<SocketAddr>> = h
        .events()
        .into_iter()
        .filter_map(|event| match event {
            Event::AllocationStarted { relayed, .. } => Some(relayed),
            _ => None,
        })
        .collect();
    assert_eq!(started, vec![vec![rtp], vec![rtcp]]);

    // A token is good once.
    h.tuple.client = addr("203.0.113.7:40002");
    h.nonce = None;
    let again = [requested_udp(), (attr::RESERVATION_TOKEN, token)];
    assert_eq!(code_of(&h.request(Method::Allocate, &again)), Some(508));
}

#[test]
fn an_unclaimed_reservation_expires_and_its_port_returns() {
    // Two ports: the pair, and nothing else.
    let mut h = harness_with(config(), 50000..=50001);
    let reserve = [requested_udp(), (attr::EVEN_PORT, vec![0x80])];
    let (rtp, token) = relayed_and_token(&h.request(Method::Allocate, &reserve));
    assert_eq!(rtp.port(), 50000);
    let token = token.expect("a token");
    assert!(
        h.server
            .poll_timeout()
            .is_some_and(|at| at <= h.now + RESERVATION_LIFETIME)
    );

    h.tuple.client = addr("203.0.113.7:40001");
    h.nonce = None;
    assert_eq!(
        code_of(&h.request(Method::Allocate, &[requested_udp()])),
        Some(508),
        "kept"
    );
    h.advance(RESERVATION_LIFETIME);
    assert_eq!(h.server.reservation_count(), 0);
    let claim = [requested_udp(), (attr::RESERVATION_TOKEN, token)];
    assert_eq!(
        code_of(&h.request(Method::Allocate, &claim)),
        Some(508),
        "expired"
    );
    let (relayed, _) = relayed_and_token(&h.request(Method::Allocate, &[requested_udp()]));
    assert_eq!(relayed.port(), 50001, "given back to the pool");
}

#[test]
fn finishing_gives_reserved_ports_back() {
    let mut h = harness_with(config(), 50000..=50001);
    let reserve = [requested_udp(), (attr::EVEN_PORT, vec![0x80])];
    let _ = relayed_and_token(&h.request(Method::Allocate, &reserve));
    h.server.finish(h.now);
    assert_eq!(h.server.reservation_count(), 0);
}

#[test]
fn channels_above_0x4fff_carry_data_as_rfc_5766_allowed() {
    let mut h = harness();
    let (allocation, _) = h.allocate();
    let peer = addr("192.0.2.10:5000");
    assert_eq!(h.bind_channel(0x7FFF, peer), None);
    let _ = h.actions();
    let frame = framing::ChannelData::encode(0x7FFF, b"media", false);
    h.server.handle_client(h.now, h.tuple, &frame);
    let sent: Vec<Action> = h.actions();
    assert!(
        matches!(&sent[..], [Action::RelayTo { peer: p, bytes, .. }] if *p == peer && bytes == b"media"),
        "{sent:?}"
    );
    h.server.handle_peer_data(h.now, allocation, peer, b"back");
    let [Action::Transmit { bytes, .. }] = &h.actions()[..] else {
        panic!("one ChannelData");
    };
    let decoded = framing::ChannelData::decode(bytes).expect("ChannelData");
    assert_eq!((decoded.channel, decoded.data), (0x7FFF, &b"back"[..]));
}

#[test]
fn a_closed_stream_connection_ends_its_allocation() {
    let mut h = harness();
    h.tuple.transport = Transport::Tcp;
    let (allocation, _) = h.allocate();
    let other = FiveTuple {
        client: addr("203.0.113.8:40000"),
        ..h.tuple
    };
    h.server.handle_connection_closed(h.now, other);
    assert_eq!(h.server.allocation_count(), 1, "another connection's close");
    h.server.handle_connection_closed(h.now, h.tuple);
    assert_eq!(h.server.allocation_count(), 0);
    let ended: Vec<Event> = h.events();
    assert!(
        matches!(
            &ended[..],
            [Event::AllocationEnded(summary)]
                if summary.allocation == allocation && summary.reason == EndReason::ConnectionClosed
        ),
        "{ended:?}"
    );
}

fn requested_tcp() -> Attr {
    (attr::REQUESTED_TRANSPORT, vec![6, 0, 0, 0])
}

fn connection_id_attr(id: u32) -> Attr {
    (attr::CONNECTION_ID, id.to_be_bytes().to_vec())
}

/// The CONNECTION-ID a message carries.
fn connection_id_of(bytes: &[u8]) -> Option<ConnectionId> {
    let message = Message::decode(bytes).expect("decodes");
    let value: [u8; 4] = message.attribute(attr::CONNECTION_ID)?.try_into().ok()?;
    Some(ConnectionId(u32::from_be_bytes(value)))
}

impl Harness {
    /// A TCP allocation (RFC 6062) over a TCP control connection.
    fn allocate_tcp(&mut self) -> (AllocationId, SocketAddr) {
        self.tuple.transport = Transport::Tcp;
        let nonce_probe = self.tid();
        let probe = self.build(Method::Allocate, nonce_probe, &[requested_tcp()], false);
        let reply = self.exchange(&probe).expect("a 401");
        self.nonce = Message::decode(&reply)
            .expect("decodes")
            .text(attr::NONCE)
            .map(str::to_owned);
        let tid = self.tid();
        let bytes = self.build(Method::Allocate, tid, &[requested_tcp()], true);
        self.server.handle_client(self.now, self.tuple, &bytes);
        let actions = self.actions();
        let [
            Action::OpenTcpRelay {
                allocation,
                relayed,
            },
            Action::Transmit { bytes: reply, .. },
        ] = &actions[..]
        else {
            panic!("a TCP listener and the reply: {actions:?}");
        };
        assert_eq!(code_of(reply), None);
        let (allocation, relayed) = (*allocation, *relayed);
        self.events();
        (allocation, relayed)
    }

    /// Sends Connect for `peer`; the actions that follow.
    fn connect(&mut self, peer: SocketAddr) -> Vec<Action> {
        let tid = self.tid();
        let attrs = [(attr::XOR_PEER_ADDRESS, stun::encode_xor_address(peer, &tid))];
        let bytes = self.build(Method::Connect, tid, &attrs, true);
        self.server.handle_client(self.now, self.tuple, &bytes);
        self.actions()
    }

    /// Sends ConnectionBind for `id` from `data` (a fresh connection); the actions that follow.
    fn connection_bind(&mut self, data: FiveTuple, id: u32) -> Vec<Action> {
        let control = self.tuple;
        self.tuple = data;
        // The nonce is bound to the client address; the data connection gets its own.
        let nonce = self.nonce.take();
        let probe = self.tid();
        let bytes = self.build(
            Method::ConnectionBind,
            probe,
            &[connection_id_attr(id)],
            false,
        );
        let reply = self.exchange(&bytes).expect("a 401");
        self.nonce = Message::decode(&reply)
            .expect("decodes")
            .text(attr::NONCE)
            .map(str::to_owned);
        let tid = self.tid();
        let bytes = self.build(Method::ConnectionBind, tid, &[connection_id_attr(id)], true);
        self.server.handle_client(self.now, self.tuple, &bytes);
        self.tuple = control;
        self.nonce = nonce;
        self.actions()
    }
}

fn reply_code(actions: &[Action]) -> Option<Option<u16>> {
    actions.iter().find_map(|action| match action {
        Action::Transmit { bytes, .. } => Some(code_of(bytes)),
        _ => None,
    })
}

fn data_tuple(port: u16) -> FiveTuple {
    FiveTuple {
        client: SocketAddr::new("203.0.113.7".parse().expect("literal"), port),
        server: addr("198.51.100.1:3478"),
        transport: Transport::Tcp,
    }
}

#[test]
fn tcp_allocations_need_a_stream_and_no_udp_only_attributes() {
    let mut h = harness();
    h.tuple.transport = Transport::Tcp;
    let even = (attr::EVEN_PORT, vec![0x00]);
    assert_eq!(
        code_of(&h.request(Method::Allocate, &[requested_tcp(), even])),
        Some(400)
    );
    let dont_fragment = (attr::DONT_FRAGMENT, vec![]);
    assert_eq!(
        code_of(&h.request(Method::Allocate, &[requested_tcp(), dont_fragment])),
        Some(400)
    );
    assert_eq!(h.server.allocation_count(), 0);
    let mut h = harness();
    let (_, relayed) = h.allocate_tcp();
    assert_eq!(
        relayed.ip(),
        "198.51.100.1".parse::<IpAddr>().expect("literal")
    );
}

#[test]
fn connect_needs_policy_and_permission_and_answers_after_the_dial() {
    let mut h = harness();
    let (allocation, relayed) = h.allocate_tcp();
    let denied = addr("127.0.0.1:22");
    assert_eq!(reply_code(&h.connect(denied)), Some(Some(403)));
    assert!(matches!(
        h.events()[..],
        [Event::PeerRefused {
            reason: Refusal::Loopback,
            ..
        }]
    ));
    let own = addr("198.51.100.1:3478");
    assert_eq!(reply_code(&h.connect(own)), Some(Some(403)));

    let peer = addr("10.0.0.9:7000");
    assert_eq!(
        reply_code(&h.connect(peer)),
        Some(Some(403)),
        "no permission"
    );
    assert_eq!(h.permit(peer), None);
    let actions = h.connect(peer);
    let [
        Action::ConnectPeer {
            allocation: dial_for,
            connection,
            relayed: from,
            peer: to,
        },
    ] = actions[..]
    else {
        panic!("one dial and no reply yet: {actions:?}");
    };
    assert_eq!((dial_for, from, to), (allocation, relayed, peer));
    assert_eq!(
        reply_code(&h.connect(peer)),
        Some(Some(446)),
        "one connection per peer"
    );

    assert!(h.server.handle_peer_connected(h.now, connection));
    let actions = h.actions();
    let [Action::Transmit { tuple, bytes }] = &actions[..] else {
        panic!("the Connect reply: {actions:?}");
    };
    assert_eq!(*tuple, h.tuple);
    assert_eq!(code_of(bytes), None);
    assert_eq!(connection_id_of(bytes), Some(connection));
    let key = stun::long_term_key_md5(USER, REALM, PASSWORD);
    let message = Message::decode(bytes).expect("decodes");
    assert_eq!(message.check_integrity(&key), IntegrityCheck::Valid);

    let unreachable = addr("10.0.0.10:7000");
    assert_eq!(h.permit(unreachable), None);
    let [Action::ConnectPeer { connection, .. }] = h.connect(unreachable)[..] else {
        panic!("a dial");
    };
    h.server.handle_peer_connect_failed(h.now, connection);
    assert_eq!(reply_code(&h.actions()), Some(Some(447)));
    assert_eq!(h.server.connection_count(), 1);
}

#[test]
fn connect_and_connection_bind_need_a_tcp_allocation() {
    let mut h = harness();
    h.allocate();
    let peer = addr("10.0.0.9:7000");
    assert_eq!(h.permit(peer), None);
    assert_eq!(reply_code(&h.connect(peer)), Some(Some(400)));
    let actions = h.connection_bind(data_tuple(40001), 1);
    assert_eq!(reply_code(&actions), Some(Some(400)), "not over UDP");
}

#[test]
fn connection_bind_pipes_a_known_connection_once_and_not_after_30_s() {
    let mut h = harness();
    let (allocation, _) = h.allocate_tcp();
    let peer = addr("10.0.0.9:7000");
    assert_eq!(h.permit(peer), None);

    let actions = h.connection_bind(data_tuple(40001), 12345);
    assert_eq!(
        reply_code(&actions),
        Some(Some(400)),
        "unknown CONNECTION-ID"
    );

    let [Action::ConnectPeer { connection, .. }] = h.connect(peer)[..] else {
        panic!("a dial");
    };
    assert!(h.server.handle_peer_connected(h.now, connection));
    h.actions();
    let data = data_tuple(40002);
    let actions = h.connection_bind(data, connection.0);
    let [
        Action::Transmit { tuple, bytes },
        Action::BindData {
            connection: bound,
            tuple: bound_tuple,
        },
    ] = &actions[..]
    else {
        panic!("the reply, then the pipe: {actions:?}");
    };
    assert_eq!((*tuple, code_of(bytes)), (data, None));
    assert_eq!((*bound, *bound_tuple), (connection, data));
    let again = h.connection_bind(data_tuple(40003), connection.0);
    assert_eq!(reply_code(&again), Some(Some(400)), "bound already");

    // Bytes the pipe carried count in the summary.
    h.server.handle_connection_bytes(connection, 100, 250);

    let other = addr("10.0.0.11:7000");
    assert_eq!(h.permit(other), None);
    let [
        Action::ConnectPeer {
            connection: late, ..
        },
    ] = h.connect(other)[..]
    else {
        panic!("a dial");
    };
    assert!(h.server.handle_peer_connected(h.now, late));
    h.actions();
    h.advance(CONNECTION_BIND_WITHIN + Duration::from_secs(1));
    assert_eq!(
        h.actions(),
        vec![Action::CloseConnection { connection: late }],
        "unbound for 30 s"
    );
    let actions = h.connection_bind(data_tuple(40004), late.0);
    assert_eq!(
        reply_code(&actions),
        Some(Some(400)),
        "expired CONNECTION-ID"
    );

    // The data connection closing closes its peer connection.
    h.server.handle_connection_closed(h.now, data);
    assert_eq!(h.actions(), vec![Action::CloseConnection { connection }]);
    assert_eq!(h.server.connection_count(), 0);

    h.server.finish(h.now);
    let summary = h
        .events()
        .into_iter()
        .find_map(|event| match event {
            Event::AllocationEnded(summary) if summary.allocation == allocation => Some(summary),
            _ => None,
        })
        .expect("a summary");
    assert_eq!(
        (summary.to_peers.bytes, summary.from_peers.bytes),
        (100, 250)
    );
}

#[test]
fn incoming_peer_connections_need_policy_and_permission() {
    let mut h = harness();
    let (allocation, _) = h.allocate_tcp();
    let peer = addr("10.0.0.9:50123");
    assert_eq!(
        h.server.handle_peer_connection(h.now, allocation, peer),
        None
    );
    let loopback = addr("127.0.0.1:50123");
    assert_eq!(
        h.server.handle_peer_connection(h.now, allocation, loopback),
        None
    );
    assert!(matches!(
        h.events()[..],
        [Event::PeerRefused {
            reason: Refusal::Loopback,
            ..
        }]
    ));
    assert!(h.actions().is_empty());

    assert_eq!(h.permit(peer), None);
    let connection = h
        .server
        .handle_peer_connection(h.now, allocation, peer)
        .expect("a permitted peer");
    let actions = h.actions();
    let [Action::Transmit { tuple, bytes }] = &actions[..] else {
        panic!("a ConnectionAttempt: {actions:?}");
    };
    assert_eq!(*tuple, h.tuple);
    let message = Message::decode(bytes).expect("decodes");
    assert_eq!(
        (message.class, message.method),
        (Class::Indication, Method::ConnectionAttempt)
    );
    assert_eq!(message.xor_address(attr::XOR_PEER_ADDRESS), Some(peer));
    assert_eq!(connection_id_of(bytes), Some(connection));

    let data = data_tuple(40002);
    let actions = h.connection_bind(data, connection.0);
    assert!(matches!(
        actions[..],
        [Action::Transmit { .. }, Action::BindData { .. }]
    ));
}

#[test]
fn a_tcp_allocation_ending_closes_its_connections_and_refuses_send_and_channels() {
    let mut h = harness();
    let (allocation, relayed) = h.allocate_tcp();
    let peer = addr("10.0.0.9:7000");
    assert_eq!(h.permit(peer), None);
    assert_eq!(h.bind_channel(0x4001, peer), Some(400));
    let tid = h.tid();
    let mut builder = MessageBuilder::new(Class::Indication, Method::Send, &tid);
    builder.add_xor_address(attr::XOR_PEER_ADDRESS, peer);
    builder.add(attr::DATA, b"rtp");
    h.server
        .handle_client(h.now, h.tuple, &builder.finish(None, false));
    assert!(h.actions().is_empty(), "no Send on a TCP allocation");

    let [Action::ConnectPeer { connection, .. }] = h.connect(peer)[..] else {
        panic!("a dial");
    };
    h.server.handle_connection_closed(h.now, h.tuple);
    assert_eq!(
        h.actions(),
        vec![
            Action::CloseConnection { connection },
            Action::CloseRelay {
                allocation,
                relayed
            }
        ]
    );
    assert!(
        !h.server.handle_peer_connected(h.now, connection),
        "a dial finishing late is closed"
    );
    assert!(h.actions().is_empty());
}

#[test]
fn connection_bind_may_use_the_control_connections_nonce_from_the_same_host() {
    let mut h = harness();
    h.allocate_tcp();
    let peer = addr("10.0.0.9:7000");
    assert_eq!(h.permit(peer), None);
    let [Action::ConnectPeer { connection, .. }] = h.connect(peer)[..] else {
        panic!("a dial");
    };
    assert!(h.server.handle_peer_connected(h.now, connection));
    h.actions();
    let control = h.tuple;

    // Another host with the control connection's nonce: 438.
    h.tuple = FiveTuple {
        client: addr("203.0.113.99:40001"),
        ..data_tuple(40001)
    };
    let tid = h.tid();
    let bytes = h.build(
        Method::ConnectionBind,
        tid,
        &[connection_id_attr(connection.0)],
        true,
    );
    assert_eq!(code_of(&h.exchange(&bytes).expect("a reply")), Some(438));

    // The same host, as coturn's clients do it: bound.
    h.tuple = data_tuple(40002);
    let tid = h.tid();
    let bytes = h.build(
        Method::ConnectionBind,
        tid,
        &[connection_id_attr(connection.0)],
        true,
    );
    h.server.handle_client(h.now, h.tuple, &bytes);
    let actions = h.actions();
    assert_eq!(reply_code(&actions), Some(None), "{actions:?}");
    assert!(matches!(actions[..], [_, Action::BindData { .. }]));
    h.tuple = control;
}
