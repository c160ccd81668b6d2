//! A server driven by fuzzed packets from two clients and a peer, with time passing: no
//! input may panic it. The first byte of each chunk says who sends it and how far the clock
//! moves.

#![no_main]

use std::time::{Duration, Instant};

use libfuzzer_sys::fuzz_target;
use tapline_turn::{
    Action, AllocationId, ConnectionId, Credentials, FiveTuple, PeerPolicy, PortPool,
    SeededEntropy, Server, ServerConfig, StaticUser, Transport,
};

fuzz_target!(|data: &[u8]| {
    let start = Instant::now();
    let mut now = start;
    let config = ServerConfig {
        relay_ipv4: Some("198.51.100.1".parse().expect("literal")),
        relay_ipv6: Some("2600::1".parse().expect("literal")),
        policy: PeerPolicy::default(),
        ..ServerConfig::default()
    };
    let credentials = Credentials {
        rest_secrets: vec![b"secret".to_vec()],
        static_users: vec![StaticUser {
            username: "u".to_owned(),
            password: "p".to_owned(),
        }],
    };
    let ports = PortPool::new(50000..=50009, &mut SeededEntropy::new(1));
    let mut server = Server::new(
        config,
        credentials,
        Box::new(ports),
        Box::new(SeededEntropy::new(2)),
        start,
        1_800_000_000,
    );
    let tuples = [
        FiveTuple {
            client: "203.0.113.7:40000".parse().expect("literal"),
            server: "198.51.100.1:3478".parse().expect("literal"),
            transport: Transport::Udp,
        },
        FiveTuple {
            client: "[2600::7]:40000".parse().expect("literal"),
            server: "198.51.100.1:3478".parse().expect("literal"),
            transport: Transport::Tcp,
        },
    ];
    // Connections the server asked to dial, for the dial outcomes fed back below.
    let mut dialled: Vec<ConnectionId> = Vec::new();
    for chunk in data.split(|b| *b == 0xFF) {
        let Some((&control, bytes)) = chunk.split_first() else {
            continue;
        };
        now += Duration::from_secs(u64::from(control >> 4) * 40);
        server.handle_timeout(now);
        match control & 0x03 {
            0 | 1 => server.handle_client(now, tuples[usize::from(control & 1)], bytes),
            2 => server.handle_peer_data(
                now,
                AllocationId(u64::from(control >> 2 & 0x03)),
                "192.0.2.10:5000".parse().expect("literal"),
                bytes,
            ),
            _ => {
                let connection = bytes
                    .first()
                    .and_then(|pick| dialled.get(usize::from(*pick) % dialled.len().max(1)))
                    .copied()
                    .unwrap_or(ConnectionId(1));
                match control >> 2 & 0x03 {
                    0 => server.handle_relay_failed(now, AllocationId(1)),
                    1 => {
                        let peer = "192.0.2.10:5000".parse().expect("literal");
                        let _ = server.handle_peer_connection(now, AllocationId(1), peer);
                    }
                    2 => {
                        let _ = server.handle_peer_connected(now, connection);
                    }
                    _ => server.handle_peer_connect_failed(now, connection),
                }
            }
        }
        while let Some(action) = server.poll_action() {
            match action {
                Action::ConnectPeer { connection, .. } if dialled.len() < 64 => {
                    dialled.push(connection);
                }
                // As the shell does: sent buffers come back for the next datagrams.
                Action::RelayTo { bytes, .. } | Action::Transmit { bytes, .. } => {
                    server.recycle(bytes);
                }
                _ => {}
            }
        }
        while server.poll_event().is_some() {}
        if let Some(deadline) = server.poll_timeout() {
            assert!(deadline >= start);
        }
    }
    server.finish(now);
});
