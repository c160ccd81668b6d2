//! A TCP client's byte stream, cut into reads of fuzzed sizes, through the `FrameBuffer` a
//! connection uses and into the server, as the shell does: no input may panic either, a
//! frame handed out is always whole, and a closed connection ends what it allocated.

#![no_main]

use std::time::{Duration, Instant};

use libfuzzer_sys::fuzz_target;
use tapline_turn::framing::{self, FrameBuffer, FrameLen};
use tapline_turn::{
    Credentials, FiveTuple, PeerPolicy, PortPool, SeededEntropy, Server, ServerConfig, StaticUser,
    Transport,
};

fuzz_target!(|data: &[u8]| {
    let Some((&read_size, stream)) = data.split_first() else {
        return;
    };
    let start = Instant::now();
    let config = ServerConfig {
        relay_ipv4: Some("198.51.100.1".parse().expect("literal")),
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
    let tuple = FiveTuple {
        client: "203.0.113.7:40000".parse().expect("literal"),
        server: "198.51.100.1:3478".parse().expect("literal"),
        transport: Transport::Tcp,
    };
    let mut buffer = FrameBuffer::new();
    let mut now = start;
    for read in stream.chunks(usize::from(read_size).max(1)) {
        let room = buffer.unfilled();
        assert!(
            !room.is_empty(),
            "a buffer never fills without a whole frame"
        );
        let n = read.len().min(room.len());
        room[..n].copy_from_slice(&read[..n]);
        buffer.filled(n);
        let Ok(frames) = buffer.take_frames() else {
            break;
        };
        for frame in framing::frames(frames) {
            assert_eq!(framing::frame_len(frame), FrameLen::Complete(frame.len()));
            server.handle_client(now, tuple, frame);
        }
        now += Duration::from_millis(10);
        server.handle_timeout(now);
        while server.poll_action().is_some() {}
        while server.poll_event().is_some() {}
    }
    server.handle_connection_closed(now, tuple);
    while server.poll_action().is_some() {}
    while server.poll_event().is_some() {}
    assert_eq!(server.allocation_count(), 0);
});
