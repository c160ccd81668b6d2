#![allow(clippy::unwrap_used)]

use super::encode::{self, Limits};
use super::*;

/// A field of a hand-built packet.
#[derive(Clone, Copy)]
enum F<'a> {
    U32(u32),
    U64(u64),
    S(&'a [u8]),
}

fn packet(kind: u8, fields: &[F<'_>]) -> Vec<u8> {
    let mut body = vec![kind];
    for field in fields {
        match field {
            F::U32(v) => body.extend_from_slice(&v.to_be_bytes()),
            F::U64(v) => body.extend_from_slice(&v.to_be_bytes()),
            F::S(s) => {
                body.extend_from_slice(&(s.len() as u32).to_be_bytes());
                body.extend_from_slice(s);
            }
        }
    }
    let mut out = (body.len() as u32).to_be_bytes().to_vec();
    out.extend_from_slice(&body);
    out
}

fn decode_all(bytes: &[u8]) -> Vec<Message> {
    let mut decoder = Decoder::new();
    decoder.handle_data(bytes);
    let mut out = Vec::new();
    while let Some(incoming) = decoder.poll_message().unwrap() {
        out.push(incoming.message);
    }
    assert_eq!(decoder.buffered(), 0);
    out
}

fn check(bytes: Vec<u8>, expected: Message) {
    assert_eq!(decode_all(&bytes), vec![expected]);
}

fn request(id: u32, op: Op) -> Message {
    Message::Request { id, op }
}

const H: &[u8] = &[0, 0, 0, 7];

#[test]
fn every_request_decodes() {
    use F::*;
    let no_attrs = U32(0);
    check(packet(1, &[U32(3)]), Message::Init { version: 3 });
    check(
        packet(3, &[U32(1), S(b"/S20261121/R1.wav"), U32(1), no_attrs]),
        request(
            1,
            Op::Open {
                path: b"/S20261121/R1.wav".to_vec(),
                flags: OpenFlags(1),
            },
        ),
    );
    check(
        packet(4, &[U32(2), S(H)]),
        request(2, Op::Close { handle: Handle(7) }),
    );
    check(
        packet(5, &[U32(3), S(H), U64(1 << 40), U32(32768)]),
        request(
            3,
            Op::Read {
                handle: Handle(7),
                offset: 1 << 40,
                len: 32768,
            },
        ),
    );
    check(
        packet(6, &[U32(4), S(H), U64(0), S(b"data")]),
        request(4, Op::Write { handle: Handle(7) }),
    );
    check(
        packet(7, &[U32(5), S(b"a")]),
        request(
            5,
            Op::Lstat {
                path: b"a".to_vec(),
            },
        ),
    );
    check(
        packet(8, &[U32(6), S(b"xx")]),
        request(
            6,
            Op::Fstat {
                handle: Handle::FOREIGN,
            },
        ),
    );
    // Attributes with every field, extended pairs included.
    check(
        packet(
            9,
            &[
                U32(7),
                S(b"a"),
                U32(0x8000_000f),
                U64(1),
                U32(2),
                U32(3),
                U32(0o644),
                U32(4),
                U32(5),
                U32(1),
                S(b"k"),
                S(b"v"),
            ],
        ),
        request(
            7,
            Op::Setstat {
                path: b"a".to_vec(),
            },
        ),
    );
    check(
        packet(10, &[U32(8), S(H), no_attrs]),
        request(8, Op::Fsetstat { handle: Handle(7) }),
    );
    check(
        packet(11, &[U32(9), S(b"/")]),
        request(
            9,
            Op::Opendir {
                path: b"/".to_vec(),
            },
        ),
    );
    check(
        packet(12, &[U32(10), S(H)]),
        request(10, Op::Readdir { handle: Handle(7) }),
    );
    check(
        packet(13, &[U32(11), S(b"f")]),
        request(
            11,
            Op::Remove {
                path: b"f".to_vec(),
            },
        ),
    );
    check(
        packet(14, &[U32(12), S(b"d"), U32(4), U32(0o755)]),
        request(
            12,
            Op::Mkdir {
                path: b"d".to_vec(),
            },
        ),
    );
    check(
        packet(15, &[U32(13), S(b"d")]),
        request(
            13,
            Op::Rmdir {
                path: b"d".to_vec(),
            },
        ),
    );
    check(
        packet(16, &[U32(14), S(b".")]),
        request(
            14,
            Op::Realpath {
                path: b".".to_vec(),
            },
        ),
    );
    check(
        packet(17, &[U32(15), S(b"s")]),
        request(
            15,
            Op::Stat {
                path: b"s".to_vec(),
            },
        ),
    );
    check(
        packet(18, &[U32(16), S(b"a"), S(b"b")]),
        request(
            16,
            Op::Rename {
                from: b"a".to_vec(),
                to: b"b".to_vec(),
            },
        ),
    );
    check(
        packet(19, &[U32(17), S(b"l")]),
        request(
            17,
            Op::Readlink {
                path: b"l".to_vec(),
            },
        ),
    );
    check(
        packet(20, &[U32(18), S(b"/etc"), S(b"l")]),
        request(
            18,
            Op::Symlink {
                target: b"/etc".to_vec(),
                link: b"l".to_vec(),
            },
        ),
    );
}

#[test]
fn openssh_extensions_decode() {
    use F::*;
    let ext = |id: u32, name: &'static [u8], rest: &[F<'_>]| {
        let mut fields = vec![U32(id), S(name)];
        for field in rest {
            fields.push(match field {
                U32(v) => U32(*v),
                U64(v) => U64(*v),
                S(s) => S(s),
            });
        }
        packet(200, &fields)
    };
    let cases = [
        (
            ext(1, b"posix-rename@openssh.com", &[S(b"a"), S(b"b")]),
            Op::PosixRename {
                from: b"a".to_vec(),
                to: b"b".to_vec(),
            },
        ),
        (
            ext(1, b"statvfs@openssh.com", &[S(b"/")]),
            Op::Statvfs {
                path: b"/".to_vec(),
            },
        ),
        (
            ext(1, b"fstatvfs@openssh.com", &[S(H)]),
            Op::Fstatvfs { handle: Handle(7) },
        ),
        (
            ext(1, b"hardlink@openssh.com", &[S(b"a"), S(b"b")]),
            Op::Hardlink {
                target: b"a".to_vec(),
                link: b"b".to_vec(),
            },
        ),
        (
            ext(1, b"fsync@openssh.com", &[S(H)]),
            Op::Fsync { handle: Handle(7) },
        ),
        (
            ext(1, b"lsetstat@openssh.com", &[S(b"a"), U32(0)]),
            Op::Lsetstat {
                path: b"a".to_vec(),
            },
        ),
        (ext(1, b"limits@openssh.com", &[]), Op::Limits),
        (
            ext(1, b"expand-path@openssh.com", &[S(b"~/x")]),
            Op::ExpandPath {
                path: b"~/x".to_vec(),
            },
        ),
        (
            ext(1, b"copy-data", &[S(H), U64(0), U64(0), S(H), U64(0)]),
            Op::CopyData,
        ),
        (
            ext(1, b"home-directory", &[S(b"someone")]),
            Op::HomeDirectory,
        ),
        (
            ext(
                1,
                b"users-groups-by-id@openssh.com",
                &[S(&[0, 0, 0, 1, 0, 0, 0, 2]), S(&[0, 0, 0, 3])],
            ),
            Op::UsersGroupsById {
                uids: vec![1, 2],
                gids: vec![3],
            },
        ),
        (
            ext(1, b"check-file", &[S(b"x")]),
            Op::UnknownExtension {
                name: b"check-file".to_vec(),
            },
        ),
        (
            ext(
                1,
                b"users-groups-by-id@openssh.com",
                &[S(&[0, 0, 1]), S(b"")],
            ),
            Op::Malformed { kind: 200 },
        ),
    ];
    for (bytes, op) in cases {
        check(bytes, request(1, op));
    }
}

#[test]
fn short_and_unknown_packets_are_answerable_when_their_id_is_there() {
    use F::*;
    check(
        packet(3, &[U32(9), S(b"a")]),
        request(9, Op::Malformed { kind: 3 }),
    );
    check(
        packet(5, &[U32(9), S(H), U64(0)]),
        request(9, Op::Malformed { kind: 5 }),
    );
    check(
        packet(99, &[U32(9)]),
        request(9, Op::Unsupported { kind: 99 }),
    );
    check(
        packet(101, &[U32(9)]),
        request(9, Op::Unsupported { kind: 101 }),
    );
    check(packet(3, &[]), Message::Unanswerable { kind: 3 });
    check(vec![0, 0, 0, 3, 1, 0, 0], Message::Unanswerable { kind: 1 });
    // A string whose length runs past the packet, though more bytes follow in the stream.
    let mut bytes = packet(17, &[U32(4), U32(1000)]);
    let next = packet(17, &[U32(5), S(b"x")]);
    bytes.extend_from_slice(&next);
    assert_eq!(
        decode_all(&bytes),
        vec![
            request(4, Op::Malformed { kind: 17 }),
            request(
                5,
                Op::Stat {
                    path: b"x".to_vec()
                }
            )
        ]
    );
    // Bytes after the last field are ignored.
    check(
        packet(16, &[U32(1), S(b"."), U32(1), S(b"extra")]),
        request(
            1,
            Op::Realpath {
                path: b".".to_vec(),
            },
        ),
    );
}

#[test]
fn packets_split_anywhere_decode_the_same() {
    use F::*;
    let mut stream = packet(1, &[U32(3)]);
    for id in 0..20 {
        stream.extend(packet(
            5,
            &[U32(id), S(H), U64(u64::from(id) * 32768), U32(32768)],
        ));
        stream.extend(packet(16, &[U32(id), S(b"/S20261121")]));
    }
    let whole = decode_all(&stream);
    assert_eq!(whole.len(), 41);
    for chunk in [1, 2, 3, 7, 13, 64] {
        let mut decoder = Decoder::new();
        let mut got = Vec::new();
        for piece in stream.chunks(chunk) {
            decoder.handle_data(piece);
            while let Some(incoming) = decoder.poll_message().unwrap() {
                got.push(incoming.message);
            }
            assert!(decoder.buffered() < 64, "holds only the packet in progress");
        }
        assert_eq!(got, whole, "chunks of {chunk}");
    }
}

#[test]
fn framing_refuses_huge_and_empty_packets_for_good() {
    let mut decoder = Decoder::new();
    decoder.handle_data(&(MAX_PACKET_LENGTH + 1).to_be_bytes());
    assert_eq!(
        decoder.poll_message(),
        Err(FramingError::TooLong(MAX_PACKET_LENGTH + 1))
    );
    decoder.handle_data(&packet(1, &[F::U32(3)]));
    assert!(decoder.poll_message().is_err(), "no resynchronising");
    assert_eq!(decoder.buffered(), 0, "nothing kept");

    let mut decoder = Decoder::new();
    decoder.handle_data(&[0, 0, 0, 0]);
    assert_eq!(decoder.poll_message(), Err(FramingError::Empty));

    // The longest packet allowed is waited for, not refused.
    let mut decoder = Decoder::new();
    decoder.handle_data(&MAX_PACKET_LENGTH.to_be_bytes());
    assert_eq!(decoder.poll_message(), Ok(None));
}

#[test]
fn wire_lengths_are_reported() {
    let bytes = packet(16, &[F::U32(1), F::S(b"/")]);
    let mut decoder = Decoder::new();
    decoder.handle_data(&bytes);
    assert_eq!(
        decoder.poll_message().unwrap().unwrap().wire_len,
        bytes.len()
    );
}

/// A small deterministic generator, so failures reproduce.
struct XorShift(u64);

impl XorShift {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }
}

#[test]
fn hostile_bytes_never_panic() {
    use F::*;
    let samples = [
        packet(
            3,
            &[
                U32(1),
                S(b"/a"),
                U32(0x3f),
                U32(0x8000_0000),
                U32(0xffff_ffff),
            ],
        ),
        packet(
            200,
            &[U32(1), S(b"users-groups-by-id@openssh.com"), S(&[1; 9])],
        ),
        packet(5, &[U32(1), S(H), U64(u64::MAX), U32(u32::MAX)]),
        packet(20, &[U32(1), S(b"x"), U32(u32::MAX)]),
    ];
    for sample in &samples {
        for cut in 0..=sample.len() {
            let mut decoder = Decoder::new();
            decoder.handle_data(&sample[..cut]);
            while let Ok(Some(_)) = decoder.poll_message() {}
        }
    }
    let mut rng = XorShift(0x5eed_cafe_f00d_d00d);
    for round in 0..20_000 {
        let len = (rng.next() % 96) as usize;
        let mut bytes: Vec<u8> = (0..len).map(|_| rng.next() as u8).collect();
        // Mostly plausible lengths and types, so the decoding behind framing is reached.
        if round % 2 == 0 && bytes.len() >= 5 {
            let body = (bytes.len() - 4) as u32;
            bytes[..4].copy_from_slice(&body.to_be_bytes());
            bytes[4] = [1, 3, 5, 6, 9, 16, 20, 200][(rng.next() % 8) as usize];
        }
        let mut decoder = Decoder::new();
        decoder.handle_data(&bytes);
        let mut seen = 0;
        while let Ok(Some(incoming)) = decoder.poll_message() {
            assert!(incoming.wire_len >= 5);
            seen += 1;
            assert!(seen <= bytes.len(), "every packet consumes bytes");
        }
    }
}

#[test]
fn replies_encode_as_openssh_sends_them() {
    let mut out = Vec::new();
    encode::version(&mut out, &[("limits@openssh.com", "1")]);
    assert_eq!(
        out,
        [
            &[0, 0, 0, 32, 2, 0, 0, 0, 3, 0, 0, 0, 18][..],
            b"limits@openssh.com",
            &[0, 0, 0, 1, b'1']
        ]
        .concat()
    );

    let mut out = Vec::new();
    encode::status(&mut out, 5, StatusCode::PermissionDenied, "read-only");
    assert_eq!(
        out,
        [
            &[0, 0, 0, 26, 101, 0, 0, 0, 5, 0, 0, 0, 3, 0, 0, 0, 9][..],
            b"read-only",
            &[0, 0, 0, 0]
        ]
        .concat()
    );

    let mut out = vec![0xaa];
    encode::handle(&mut out, 1, Handle(2));
    assert_eq!(
        out,
        [0xaa, 0, 0, 0, 13, 102, 0, 0, 0, 1, 0, 0, 0, 4, 0, 0, 0, 2]
    );

    let mut out = Vec::new();
    let attrs = Attrs {
        size: Some(1),
        owner: Some((2, 3)),
        permissions: Some(0o100640),
        times: Some((4, 5)),
    };
    encode::attrs(&mut out, 9, &attrs);
    let mut expected = vec![0, 0, 0, 37, 105, 0, 0, 0, 9, 0, 0, 0, 0x0f];
    expected.extend_from_slice(&1u64.to_be_bytes());
    for v in [2u32, 3, 0o100640, 4, 5] {
        expected.extend_from_slice(&v.to_be_bytes());
    }
    assert_eq!(out, expected);

    let mut out = Vec::new();
    encode::limits(
        &mut out,
        1,
        &Limits {
            max_packet_length: 1,
            max_read_length: 2,
            max_write_length: 3,
            max_open_handles: 4,
        },
    );
    assert_eq!(out.len(), 4 + 1 + 4 + 32);
    assert_eq!(out[4], 201);
}

#[test]
fn data_is_filled_in_place_and_empty_reads_leave_nothing() {
    let mut out = vec![7];
    let n = encode::data(&mut out, 3, 10, |buf| {
        buf[..4].copy_from_slice(b"wave");
        Ok::<_, ()>(4)
    })
    .unwrap();
    assert_eq!(n, 4);
    assert_eq!(
        out,
        [&[7, 0, 0, 0, 13, 103, 0, 0, 0, 3, 0, 0, 0, 4][..], b"wave"].concat()
    );

    let mut out = vec![7];
    assert_eq!(encode::data(&mut out, 3, 10, |_| Ok::<_, ()>(0)), Ok(0));
    assert_eq!(out, [7]);
    assert_eq!(
        encode::data(&mut out, 3, 10, |_| Err::<usize, _>("io")),
        Err("io")
    );
    assert_eq!(out, [7]);
}

#[test]
fn names_carry_entries_and_their_attributes() {
    let mut out = Vec::new();
    let entry = NameEntry {
        filename: b"R1.wav".to_vec(),
        longname: b"-rw-r----- 1 0 0 4 Jan  1 00:00 R1.wav".to_vec(),
        attrs: Attrs {
            size: Some(4),
            ..Attrs::default()
        },
    };
    encode::name(&mut out, 2, &[entry.clone(), entry]);
    let per_entry = 4 + 6 + 4 + 38 + 4 + 8;
    assert_eq!(out.len(), 4 + 1 + 4 + 4 + 2 * per_entry);
    assert_eq!(&out[9..13], &[0, 0, 0, 2]);
}
