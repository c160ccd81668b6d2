use std::os::unix::fs::symlink;
use std::path::PathBuf;

use super::*;
use crate::protocol::OpenFlags;

const NOW: &str = "2026-11-21T15:00:00Z";

/// A recordings tree in a temporary directory, with a file outside it.
struct Tree {
    dir: tempfile::TempDir,
    session: SftpSession,
}

impl Tree {
    fn new() -> Tree {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path().join("recordings");
        std::fs::create_dir_all(root.join("S20261121")).unwrap();
        std::fs::create_dir_all(root.join("Index")).unwrap();
        std::fs::write(root.join("S20261121/R202611211403120001.wav"), wav(100_000)).unwrap();
        std::fs::write(root.join("Index/I20261121.csv"), "CALL TYPE,START TIME\n").unwrap();
        std::fs::write(dir.path().join("secret"), "outside the root").unwrap();
        let jail = Arc::new(Jail::open(&root).unwrap());
        let mut session = SftpSession::new(jail);
        let mut out = Vec::new();
        session.handle_message(
            Message::Init { version: 3 },
            now(),
            &mut out,
            &mut Vec::new(),
        );
        Tree { dir, session }
    }

    fn root(&self) -> PathBuf {
        self.dir.path().join("recordings")
    }

    /// Sends one request; returns its replies and what it reported.
    fn ask(&mut self, id: u32, op: Op) -> (Vec<Reply>, Vec<Activity>) {
        let mut out = Vec::new();
        let mut activity = Vec::new();
        let flow = self.session.handle_message(
            Message::Request { id, op },
            now(),
            &mut out,
            &mut activity,
        );
        assert_eq!(flow, Flow::Continue);
        let replies = replies(&out);
        assert!(replies.iter().all(|r| r.id == id), "{replies:?}");
        (replies, activity)
    }

    fn open(&mut self, path: &str) -> Handle {
        let (replies, _) = self.ask(
            1,
            Op::Open {
                path: path.as_bytes().to_vec(),
                flags: OpenFlags(OpenFlags::READ),
            },
        );
        replies[0].handle()
    }
}

fn now() -> Timestamp {
    NOW.parse().unwrap()
}

fn wav(len: usize) -> Vec<u8> {
    (0..len).map(|n| (n * 7 % 251) as u8).collect()
}

/// A reply packet, split into its type, request id and the rest.
#[derive(Debug)]
struct Reply {
    kind: u8,
    id: u32,
    body: Vec<u8>,
}

impl Reply {
    fn status(&self) -> StatusCode {
        assert_eq!(self.kind, 101, "{self:?}");
        match u32::from_be_bytes(self.body[..4].try_into().unwrap()) {
            0 => StatusCode::Ok,
            1 => StatusCode::Eof,
            2 => StatusCode::NoSuchFile,
            3 => StatusCode::PermissionDenied,
            4 => StatusCode::Failure,
            5 => StatusCode::BadMessage,
            8 => StatusCode::OpUnsupported,
            other => panic!("status {other}"),
        }
    }

    fn handle(&self) -> Handle {
        assert_eq!(self.kind, 102, "{self:?}");
        Handle::from_wire(&self.body[4..])
    }

    fn data(&self) -> &[u8] {
        assert_eq!(self.kind, 103, "{self:?}");
        &self.body[4..]
    }

    /// The file names of a NAME reply.
    fn names(&self) -> Vec<String> {
        assert_eq!(self.kind, 104, "{self:?}");
        let mut rest = &self.body[..];
        let count = take_u32(&mut rest);
        (0..count)
            .map(|_| {
                let name = take_string(&mut rest);
                let _longname = take_string(&mut rest);
                let flags = take_u32(&mut rest);
                let skip = [(1, 8), (2, 8), (4, 4), (8, 8)]
                    .iter()
                    .filter(|(bit, _)| flags & bit != 0)
                    .map(|(_, n)| n)
                    .sum::<usize>();
                rest = &rest[skip..];
                String::from_utf8(name).unwrap()
            })
            .collect()
    }
}

fn take_u32(rest: &mut &[u8]) -> u32 {
    let value = u32::from_be_bytes(rest[..4].try_into().unwrap());
    *rest = &rest[4..];
    value
}

fn take_string(rest: &mut &[u8]) -> Vec<u8> {
    let len = take_u32(rest) as usize;
    let value = rest[..len].to_vec();
    *rest = &rest[len..];
    value
}

fn replies(mut out: &[u8]) -> Vec<Reply> {
    let mut all = Vec::new();
    while !out.is_empty() {
        let len = take_u32(&mut out) as usize;
        let packet = &out[..len];
        out = &out[len..];
        all.push(Reply {
            kind: packet[0],
            id: u32::from_be_bytes(packet[1..5].try_into().unwrap()),
            body: packet[5..].to_vec(),
        });
    }
    all
}

fn p(path: &str) -> Vec<u8> {
    path.as_bytes().to_vec()
}

#[test]
fn init_announces_version_3_and_openssh_extensions() {
    let dir = tempfile::tempdir().unwrap();
    let mut session = SftpSession::new(Arc::new(Jail::open(dir.path()).unwrap()));
    let mut out = Vec::new();
    let request = Message::Request {
        id: 1,
        op: Op::Realpath { path: p(".") },
    };
    session.handle_message(request.clone(), now(), &mut out, &mut Vec::new());
    assert_eq!(replies(&out)[0].status(), StatusCode::Failure, "INIT first");
    out.clear();
    session.handle_message(
        Message::Init { version: 6 },
        now(),
        &mut out,
        &mut Vec::new(),
    );
    let mut expected = Vec::new();
    encode::version(&mut expected, EXTENSIONS);
    assert_eq!(out, expected);
    assert_eq!(&out[5..9], &[0, 0, 0, 3]);
    let flow = session.handle_message(
        Message::Unanswerable { kind: 3 },
        now(),
        &mut out,
        &mut Vec::new(),
    );
    assert_eq!(flow, Flow::End);
}

#[test]
fn a_whole_download_is_read_and_audited_with_its_bytes() {
    let mut tree = Tree::new();
    let handle = tree.open("/S20261121/R202611211403120001.wav");
    let mut got = Vec::new();
    let mut offset = 0;
    loop {
        let (replies, _) = tree.ask(
            2,
            Op::Read {
                handle,
                offset,
                len: 32768,
            },
        );
        if replies[0].kind == 101 {
            assert_eq!(replies[0].status(), StatusCode::Eof);
            break;
        }
        got.extend_from_slice(replies[0].data());
        offset += replies[0].data().len() as u64;
    }
    assert_eq!(got, wav(100_000));
    let (replies, activity) = tree.ask(3, Op::Close { handle });
    assert_eq!(replies[0].status(), StatusCode::Ok);
    assert_eq!(
        activity,
        vec![Activity {
            sub_event: events::DOWNLOAD,
            object: "/S20261121/R202611211403120001.wav".into(),
            params: json!({
                "bytes_sent": 100_000,
                "file_size": 100_000,
                "whole_file": true,
                "ended": "closed",
            }),
        }]
    );
    let (replies, _) = tree.ask(4, Op::Close { handle });
    assert_eq!(replies[0].status(), StatusCode::Failure, "closed already");
}

#[test]
fn reads_are_capped_and_partial_downloads_say_so() {
    let mut tree = Tree::new();
    std::fs::write(tree.root().join("Index/big.csv"), wav(400_000)).unwrap();
    let handle = tree.open("Index/big.csv");
    let (replies, _) = tree.ask(
        2,
        Op::Read {
            handle,
            offset: 10,
            len: 1 << 20,
        },
    );
    assert_eq!(
        replies[0].data(),
        &wav(400_000)[10..10 + MAX_READ_LENGTH as usize]
    );
    let mut activity = Vec::new();
    tree.session.close_all(&mut activity);
    assert_eq!(activity[0].sub_event, events::DOWNLOAD);
    assert_eq!(
        activity[0].params,
        json!({
            "bytes_sent": MAX_READ_LENGTH,
            "file_size": 400_000,
            "whole_file": false,
            "ended": "the session ended",
        })
    );
}

#[test]
fn listings_name_every_entry_then_end() {
    let mut tree = Tree::new();
    for n in 0..150 {
        std::fs::write(tree.root().join(format!("S20261121/R{n:04}.wav")), "").unwrap();
    }
    let (replies, _) = tree.ask(1, Op::Opendir { path: p("/") });
    let handle = replies[0].handle();
    let (replies, _) = tree.ask(2, Op::Readdir { handle });
    let mut names = replies[0].names();
    names.sort();
    assert_eq!(names, ["Index", "S20261121"]);
    let (replies, _) = tree.ask(3, Op::Readdir { handle });
    assert_eq!(replies[0].status(), StatusCode::Eof);
    let (_, activity) = tree.ask(4, Op::Close { handle });
    assert_eq!(activity[0].sub_event, events::LIST_DIRECTORY);
    assert_eq!(activity[0].object, "/");
    assert_eq!(activity[0].params["entries"], 2);

    let (replies, _) = tree.ask(
        5,
        Op::Opendir {
            path: p("S20261121"),
        },
    );
    let handle = replies[0].handle();
    let first = tree.ask(6, Op::Readdir { handle }).0[0].names();
    let second = tree.ask(7, Op::Readdir { handle }).0[0].names();
    assert_eq!((first.len(), second.len()), (100, 51), "100 per reply");
    let (replies, _) = tree.ask(
        8,
        Op::Read {
            handle,
            offset: 0,
            len: 10,
        },
    );
    assert_eq!(
        replies[0].status(),
        StatusCode::Failure,
        "not a file handle"
    );
}

#[test]
fn every_write_is_refused_and_audited() {
    let mut tree = Tree::new();
    let file = "/S20261121/R202611211403120001.wav";
    let handle = tree.open(file);
    let writes = [
        Op::Open {
            path: p("/new.wav"),
            flags: OpenFlags(OpenFlags::WRITE | OpenFlags::CREAT),
        },
        Op::Open {
            path: p(file),
            flags: OpenFlags(OpenFlags::READ | OpenFlags::TRUNC),
        },
        Op::Open {
            path: p(file),
            flags: OpenFlags(OpenFlags::READ | OpenFlags::APPEND),
        },
        Op::Open {
            path: p("/x"),
            flags: OpenFlags(OpenFlags::CREAT | OpenFlags::EXCL),
        },
        Op::Write { handle },
        Op::Remove { path: p(file) },
        Op::Rename {
            from: p(file),
            to: p("/moved.wav"),
        },
        Op::PosixRename {
            from: p(file),
            to: p("/moved.wav"),
        },
        Op::Mkdir {
            path: p("/S20261122"),
        },
        Op::Rmdir { path: p("/Index") },
        Op::Setstat { path: p(file) },
        Op::Fsetstat { handle },
        Op::Lsetstat { path: p(file) },
        Op::Symlink {
            target: p("/etc/passwd"),
            link: p("/link"),
        },
        Op::Hardlink {
            target: p(file),
            link: p("/hard"),
        },
        Op::Fsync { handle },
        Op::CopyData,
    ];
    let count = writes.len();
    let mut audited = Vec::new();
    for (n, op) in writes.into_iter().enumerate() {
        let (replies, activity) = tree.ask(n as u32 + 10, op);
        assert_eq!(
            replies[0].status(),
            StatusCode::PermissionDenied,
            "request {n}"
        );
        assert_eq!(activity.len(), 1);
        assert_eq!(activity[0].sub_event, events::WRITE_REFUSED);
        audited.push((
            activity[0].object.clone(),
            activity[0].params["request"].clone(),
        ));
    }
    assert_eq!(audited.len(), count);
    assert_eq!(audited[0], ("/new.wav".into(), json!("open for writing")));
    assert_eq!(audited[4], (file.into(), json!("write")));
    assert_eq!(audited[6], (file.into(), json!("rename")));
    assert_eq!(audited[13], ("/link".into(), json!("symlink")));
    // Nothing changed on disk.
    let mut names: Vec<_> = std::fs::read_dir(tree.root())
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .collect();
    names.sort();
    assert_eq!(names, ["Index", "S20261121"]);
    assert_eq!(
        std::fs::read(tree.root().join(&file[1..])).unwrap(),
        wav(100_000)
    );
}

#[test]
fn a_flood_of_refusals_is_audited_once_past_the_limit() {
    let mut tree = Tree::new();
    let mut audited = 0;
    for id in 0..REFUSALS_AUDITED + 50 {
        let (_, activity) = tree.ask(id, Op::Remove { path: p("/Index") });
        audited += activity.len();
    }
    assert_eq!(audited, REFUSALS_AUDITED as usize);
    let mut activity = Vec::new();
    tree.session.close_all(&mut activity);
    assert_eq!(activity[0].params, json!({ "further_refusals": 50 }));
}

#[test]
fn escapes_stay_inside_the_root() {
    let mut tree = Tree::new();
    let outside = tree.dir.path().join("secret");
    symlink(&outside, tree.root().join("absolute-link")).unwrap();
    symlink("../secret", tree.root().join("Index/relative-link")).unwrap();
    std::fs::write(tree.root().join("secret"), "inside").unwrap();
    // `..` and absolute paths name the root's own `secret`, never the one beside it.
    for path in ["../secret", "/../../secret", "/Index/../../secret"] {
        let handle = tree.open(path);
        let (replies, _) = tree.ask(
            2,
            Op::Read {
                handle,
                offset: 0,
                len: 100,
            },
        );
        assert_eq!(replies[0].data(), b"inside", "{path}");
    }
    std::fs::remove_file(tree.root().join("secret")).unwrap();
    for path in ["/absolute-link", "/Index/relative-link", "../secret"] {
        let (replies, _) = tree.ask(
            3,
            Op::Open {
                path: p(path),
                flags: OpenFlags(OpenFlags::READ),
            },
        );
        assert_eq!(replies[0].status(), StatusCode::NoSuchFile, "{path}");
        let (replies, _) = tree.ask(4, Op::Stat { path: p(path) });
        assert_eq!(replies[0].status(), StatusCode::NoSuchFile, "{path}");
    }
    let (replies, _) = tree.ask(
        5,
        Op::Lstat {
            path: p("/absolute-link"),
        },
    );
    assert_eq!(replies[0].kind, 105, "the link itself is visible");
    let (replies, _) = tree.ask(
        6,
        Op::Realpath {
            path: p("../../etc"),
        },
    );
    assert_eq!(replies[0].names(), ["/etc"]);
    let (replies, _) = tree.ask(
        7,
        Op::Opendir {
            path: p("/absolute-link/.."),
        },
    );
    assert_eq!(replies[0].kind, 102, "lexically the root");
    let (replies, _) = tree.ask(8, Op::Stat { path: p("/a\0b") });
    assert_eq!(replies[0].status(), StatusCode::NoSuchFile);
}

#[test]
fn paths_expand_to_the_root_as_home() {
    let mut tree = Tree::new();
    let (replies, _) = tree.ask(1, Op::Realpath { path: p("") });
    assert_eq!(replies[0].names(), ["/"]);
    let (replies, _) = tree.ask(2, Op::ExpandPath { path: p("~/Index") });
    assert_eq!(replies[0].names(), ["/Index"]);
    let (replies, _) = tree.ask(3, Op::ExpandPath { path: p("~root/x") });
    assert_eq!(replies[0].status(), StatusCode::NoSuchFile);
    let (replies, _) = tree.ask(4, Op::HomeDirectory);
    assert_eq!(replies[0].names(), ["/"]);
}

#[test]
fn limits_statvfs_and_unknown_requests() {
    let mut tree = Tree::new();
    let (replies, _) = tree.ask(1, Op::Limits);
    assert_eq!(replies[0].kind, 201);
    let fields: Vec<u64> = replies[0]
        .body
        .chunks(8)
        .map(|c| u64::from_be_bytes(c.try_into().unwrap()))
        .collect();
    assert_eq!(fields, [262_144, 261_120, 261_120, MAX_OPEN_HANDLES as u64]);
    let (replies, _) = tree.ask(2, Op::Statvfs { path: p("/") });
    let flag = u64::from_be_bytes(replies[0].body[72..80].try_into().unwrap());
    assert_eq!(flag & ST_RDONLY, ST_RDONLY);
    let (replies, _) = tree.ask(
        3,
        Op::UnknownExtension {
            name: p("check-file"),
        },
    );
    assert_eq!(replies[0].status(), StatusCode::OpUnsupported);
    let (replies, _) = tree.ask(4, Op::Malformed { kind: 5 });
    assert_eq!(replies[0].status(), StatusCode::BadMessage);
    let (replies, _) = tree.ask(
        5,
        Op::UsersGroupsById {
            uids: vec![0, 1],
            gids: vec![0],
        },
    );
    assert_eq!(replies[0].kind, 201);
    assert_eq!(
        replies[0].body,
        [0, 0, 0, 8, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 4, 0, 0, 0, 0]
    );
}

#[test]
fn open_handles_are_bounded() {
    let mut tree = Tree::new();
    for _ in 0..MAX_OPEN_HANDLES {
        tree.open("/Index/I20261121.csv");
    }
    let (replies, _) = tree.ask(
        1,
        Op::Open {
            path: p("/Index/I20261121.csv"),
            flags: OpenFlags(OpenFlags::READ),
        },
    );
    assert_eq!(replies[0].status(), StatusCode::Failure);
    let mut activity = Vec::new();
    tree.session.close_all(&mut activity);
    assert_eq!(activity.len(), MAX_OPEN_HANDLES);
}
