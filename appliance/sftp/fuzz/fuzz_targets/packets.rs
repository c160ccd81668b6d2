//! Any bytes, in chunks of any size, as a client's channel data: the decoder must frame and
//! decode them without panicking, account for every byte it takes, and give the same
//! messages however the stream was split.

#![no_main]

use libfuzzer_sys::fuzz_target;
use tapline_sftp::path::JailPath;
use tapline_sftp::protocol::{Decoder, Incoming, Message, Op};

fuzz_target!(|data: &[u8]| {
    let Some((&chunk, stream)) = data.split_first() else {
        return;
    };
    let chunk = usize::from(chunk).max(1);

    let whole = decode(stream, stream.len().max(1));
    let pieces = decode(stream, chunk);
    assert_eq!(whole, pieces, "splitting the stream changed what it says");

    let consumed: usize = whole.0.iter().map(|incoming| incoming.wire_len).sum();
    assert!(consumed <= stream.len());
    for incoming in &whole.0 {
        assert!(incoming.wire_len >= 5);
        if let Message::Request { op, .. } = &incoming.message {
            for path in paths(op) {
                let _ = JailPath::parse(path);
            }
        }
    }
});

/// Every message, then whether framing failed.
fn decode(stream: &[u8], chunk: usize) -> (Vec<Incoming>, bool) {
    let mut decoder = Decoder::new();
    let mut messages = Vec::new();
    for piece in stream.chunks(chunk) {
        decoder.handle_data(piece);
        loop {
            match decoder.poll_message() {
                Ok(Some(incoming)) => messages.push(incoming),
                Ok(None) => break,
                Err(_) => return (messages, true),
            }
        }
    }
    (messages, false)
}

fn paths(op: &Op) -> Vec<&[u8]> {
    match op {
        Op::Open { path, .. }
        | Op::Lstat { path }
        | Op::Setstat { path }
        | Op::Opendir { path }
        | Op::Remove { path }
        | Op::Mkdir { path }
        | Op::Rmdir { path }
        | Op::Realpath { path }
        | Op::Stat { path }
        | Op::Readlink { path }
        | Op::Statvfs { path }
        | Op::Lsetstat { path }
        | Op::ExpandPath { path } => vec![path],
        Op::Rename { from, to } | Op::PosixRename { from, to } => vec![from, to],
        Op::Symlink { target, link } | Op::Hardlink { target, link } => vec![target, link],
        _ => Vec::new(),
    }
}
