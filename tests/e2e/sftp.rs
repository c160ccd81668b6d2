//! The SFTP server of `tapline run`, through three clients we did not write: OpenSSH's `sftp`,
//! lftp and Python's paramiko. Logins by key and by password; listings and downloads checked
//! against `sha256sum` of the files on disk; every kind of write refused; `..`, absolute paths
//! and symbolic links kept inside the root; wrong passwords locking a name out; a client that
//! drops mid-download, or pipelines without reading, leaving the server healthy and small; and
//! the audit log's row for each of these.

// A test's helpers fail the test on anything unexpected, like its body does.
#![allow(clippy::unwrap_used)]

use std::io::{BufRead, BufReader, Write};
use std::net::SocketAddr;
use std::os::unix::fs::{PermissionsExt, symlink};
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::time::Duration;

use tapline_store::rusqlite;
use tapline_tests::{Appliance, Daemon, TENANT, eventually, peer, sha256sum};

const TENANT_PASSWORD: &str = "tenant sftp password";
const AUDITOR: &str = "audrey";
const AUDITOR_PASSWORD: &str = "auditor password";
const RECORDING: &str = "/S20261121/R202611211403120001.wav";
const RECORDING_SIZE: usize = 5 << 20;
const DAY_INDEX: &str = "/S20261121/I20261121.csv";
const INDEX: &str = "/Index/I20261121.csv";
const INDEX_TEXT: &str = "CALL TYPE,START TIME,STOP TIME,AGENT NAME,FILENAME,DIRECTORY\n\
    Inbound,11/21/2026 06:03:12,11/21/2026 06:09:40,Ada,R202611211403120001.wav,S20261121\n";

/// Paramiko, driven by the tests: `python3 -c PARAMIKO HOST PORT USER PASSWORD COMMAND ARGS…`.
const PARAMIKO: &str = r#"
import hashlib, os, sys, time
import paramiko

host, port, user, password, command = sys.argv[1], int(sys.argv[2]), sys.argv[3], sys.argv[4], sys.argv[5]
args = sys.argv[6:]

def connect(name=user, secret=password):
    transport = paramiko.Transport((host, port))
    transport.connect(username=name, password=secret)
    return transport, paramiko.SFTPClient.from_transport(transport)

def sha256(f):
    digest = hashlib.sha256()
    while True:
        chunk = f.read(1 << 20)
        if not chunk:
            return digest.hexdigest()
        digest.update(chunk)

if command == "list-and-get":
    transport, sftp = connect()
    print("root", " ".join(sorted(sftp.listdir("/"))))
    print("day", " ".join(sorted(sftp.listdir(args[0].rsplit("/", 1)[0]))))
    with sftp.open(args[0], "rb") as f:
        f.prefetch()
        print("sha256", sha256(f))
elif command == "prefetch":
    # Every read of the file asked for at once, and no reply read until told.
    transport, sftp = connect()
    f = sftp.open(args[0], "rb")
    f.prefetch()
    print("prefetching", flush=True)
    sys.stdin.readline()
    print("sha256", sha256(f), flush=True)
elif command == "drop":
    transport, sftp = connect()
    f = sftp.open(args[0], "rb")
    print("read", len(f.read(1 << 20)), flush=True)
    os._exit(0)
elif command == "hold":
    # A download left open until the server goes away.
    transport, sftp = connect()
    f = sftp.open(args[0], "rb")
    print("read", len(f.read(1 << 20)), flush=True)
    try:
        sys.stdin.readline()
        f.read(1 << 20)
        print("still served", flush=True)
    except Exception:
        print("closed by the server", flush=True)
elif command == "attempts":
    for secret in args:
        transport = paramiko.Transport((host, port))
        transport.start_client(timeout=30)
        try:
            transport.auth_password(user, secret)
            print("accepted", flush=True)
        except paramiko.AuthenticationException:
            print("refused", flush=True)
        transport.close()
elif command == "limits":
    first, sftp = connect()
    print("first", sftp.listdir("/") != [], flush=True)
    try:
        connect()
        print("second accepted", flush=True)
    except paramiko.AuthenticationException:
        print("second refused", flush=True)
    tenant, other = connect(args[0], args[1])
    print("other login", other.listdir("/") != [], flush=True)
    time.sleep(float(args[2]))
    try:
        sftp.listdir("/")
        print("idle session still open", flush=True)
    except Exception:
        print("idle session closed", flush=True)
"#;

/// An appliance with a day of recordings, the tenant login's password and an Auditor account
/// holding a key, its daemon running.
struct Rig {
    appliance: Appliance,
    daemon: Daemon,
    addr: SocketAddr,
    /// The Auditor's private key.
    key: PathBuf,
    /// The daemon's host key, as OpenSSH's `known_hosts` lists it.
    known_hosts: PathBuf,
    /// Where clients put what they download.
    downloads: PathBuf,
}

impl Rig {
    /// `sftp_settings` are extra lines for the `[sftp]` section.
    fn start(sftp_settings: &str) -> Rig {
        let appliance = Appliance::new("");
        let config = std::fs::read_to_string(&appliance.config).unwrap();
        let config = config.replacen("[sftp]\n", &format!("[sftp]\n{sftp_settings}\n"), 1);
        std::fs::write(&appliance.config, config).unwrap();

        appliance.set_tenant_sftp_password(TENANT_PASSWORD);
        appliance.add_account(AUDITOR, "Auditor", AUDITOR_PASSWORD);
        let key = appliance.path().join("id_ed25519");
        run_ok(
            peer("ssh-keygen", "openssh-client")
                .args([
                    "-q",
                    "-t",
                    "ed25519",
                    "-N",
                    "",
                    "-C",
                    "audrey@example",
                    "-f",
                ])
                .arg(&key),
        );
        let public = std::fs::read_to_string(key.with_extension("pub")).unwrap();
        appliance.add_account_key(AUDITOR, &public);
        make_recordings(&appliance.data_dir().join("recordings"));

        let mut daemon = appliance.start(None, None);
        let addr = daemon.sftp_addr();
        let host_key = appliance.data_dir().join(tapline_sftp::HOST_KEY_FILE);
        let public = run_ok(
            peer("ssh-keygen", "openssh-client")
                .args(["-y", "-f"])
                .arg(&host_key),
        );
        let known_hosts = appliance.path().join("known_hosts");
        std::fs::write(
            &known_hosts,
            format!("[127.0.0.1]:{} {}\n", addr.port(), public.trim()),
        )
        .unwrap();
        let downloads = appliance.path().join("downloads");
        std::fs::create_dir(&downloads).unwrap();
        Rig {
            appliance,
            daemon,
            addr,
            key,
            known_hosts,
            downloads,
        }
    }

    fn root(&self) -> PathBuf {
        self.appliance.data_dir().join("recordings")
    }

    /// The file on disk behind a path clients see.
    fn on_disk(&self, path: &str) -> PathBuf {
        self.root().join(path.trim_start_matches('/'))
    }

    /// Options for every OpenSSH client: no configuration but ours, and the host key checked
    /// strictly against the one the daemon made.
    fn ssh_options(&self) -> Vec<String> {
        [
            "-F",
            "/dev/null",
            "-o",
            "StrictHostKeyChecking=yes",
            "-o",
            &format!("UserKnownHostsFile={}", self.known_hosts.display()),
            "-o",
            "GlobalKnownHostsFile=/dev/null",
            "-o",
            "LogLevel=ERROR",
            "-o",
            "ConnectTimeout=20",
        ]
        .map(str::to_owned)
        .to_vec()
    }

    /// OpenSSH's `sftp -b` as `user`, logged in by the Auditor's key.
    fn openssh_batch(&self, user: &str, commands: &str) -> Output {
        self.openssh_batch_with(user, &[], commands)
    }

    /// [`openssh_batch`](Self::openssh_batch) with more options for the client.
    fn openssh_batch_with(&self, user: &str, options: &[&str], commands: &str) -> Output {
        let batch = self.appliance.path().join("batch");
        std::fs::write(&batch, commands).unwrap();
        // The client takes the first value given for an option: the caller's come first.
        peer("sftp", "openssh-client")
            .args(options)
            .args(self.ssh_options())
            .arg("-i")
            .arg(&self.key)
            .args([
                "-o",
                "IdentitiesOnly=yes",
                "-o",
                "PasswordAuthentication=no",
            ])
            .arg("-b")
            .arg(&batch)
            .arg("-P")
            .arg(self.addr.port().to_string())
            .arg(format!("{user}@127.0.0.1"))
            .current_dir(&self.downloads)
            .output()
            .unwrap()
    }

    /// OpenSSH's `sftp` logged in by password, given through `SSH_ASKPASS`, with `commands`
    /// on its standard input (`-b` would forbid asking for a password).
    fn openssh_password(&self, user: &str, password: &str, commands: &str) -> Output {
        let askpass = self.appliance.path().join("askpass");
        std::fs::write(&askpass, format!("#!/bin/sh\necho '{password}'\n")).unwrap();
        std::fs::set_permissions(&askpass, std::fs::Permissions::from_mode(0o755)).unwrap();
        let mut child = peer("sftp", "openssh-client")
            .args(self.ssh_options())
            .args([
                "-o",
                "PubkeyAuthentication=no",
                "-o",
                "PreferredAuthentications=password",
                "-o",
                "NumberOfPasswordPrompts=1",
            ])
            .arg("-P")
            .arg(self.addr.port().to_string())
            .arg(format!("{user}@127.0.0.1"))
            .env("SSH_ASKPASS", &askpass)
            .env("SSH_ASKPASS_REQUIRE", "force")
            .current_dir(&self.downloads)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        let mut stdin = child.stdin.take().unwrap();
        stdin.write_all(commands.as_bytes()).unwrap();
        stdin.write_all(b"bye\n").unwrap();
        drop(stdin);
        child.wait_with_output().unwrap()
    }

    fn paramiko(&self, user: &str, password: &str, command: &str, args: &[&str]) -> Command {
        let mut python = Command::new("/usr/bin/python3");
        python
            .args(["-c", PARAMIKO, "127.0.0.1"])
            .arg(self.addr.port().to_string())
            .args([user, password, command])
            .args(args);
        python
    }

    /// Runs a paramiko command to its end; its standard output.
    fn paramiko_ok(&self, user: &str, password: &str, command: &str, args: &[&str]) -> String {
        let out = self
            .paramiko(user, password, command, args)
            .output()
            .expect("/usr/bin/python3 is missing: apt-get install python3 python3-paramiko");
        assert!(
            out.status.success(),
            "paramiko {command} failed (apt-get install python3-paramiko if it is missing):\n{}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8(out.stdout).unwrap()
    }

    /// The audit log's SFTP rows, oldest first.
    fn audit(&self) -> Vec<AuditRow> {
        let conn =
            rusqlite::Connection::open(self.appliance.data_dir().join("tapline.db")).unwrap();
        let mut statement = conn
            .prepare(
                "SELECT sub_event, username, user_ip, event_object, comments, params
                 FROM audit_log WHERE event = 'SFTP' ORDER BY id",
            )
            .unwrap();
        statement
            .query_map([], |r| {
                Ok(AuditRow {
                    sub_event: r.get(0)?,
                    username: r.get(1)?,
                    ip: r.get(2)?,
                    object: r.get(3)?,
                    comments: r.get(4)?,
                    params: r.get(5)?,
                })
            })
            .unwrap()
            .collect::<Result<_, _>>()
            .unwrap()
    }

    /// Waits until the audit log has `count` SFTP rows of `sub_event`; returns them.
    fn wait_for_audit(&self, sub_event: &str, count: usize) -> Vec<AuditRow> {
        eventually(
            Duration::from_secs(15),
            &format!("{count} audit rows \"{sub_event}\""),
            || {
                let rows: Vec<AuditRow> = self
                    .audit()
                    .into_iter()
                    .filter(|r| r.sub_event == sub_event)
                    .collect();
                (rows.len() >= count).then_some(rows)
            },
        )
    }
}

#[derive(Debug, Clone)]
struct AuditRow {
    sub_event: String,
    username: String,
    ip: String,
    object: String,
    comments: String,
    /// Compact JSON with sorted keys.
    params: String,
}

/// A day of recordings as the recorder and the index job lay them out, with content that is
/// not all zeros so a wrong byte shows.
fn make_recordings(root: &Path) {
    std::fs::create_dir_all(root.join("S20261121")).unwrap();
    std::fs::create_dir_all(root.join("Index")).unwrap();
    std::fs::write(
        root.join(RECORDING.trim_start_matches('/')),
        pseudo_random(RECORDING_SIZE, 1),
    )
    .unwrap();
    std::fs::write(root.join(DAY_INDEX.trim_start_matches('/')), INDEX_TEXT).unwrap();
    std::fs::write(root.join(INDEX.trim_start_matches('/')), INDEX_TEXT).unwrap();
}

fn pseudo_random(len: usize, seed: u64) -> Vec<u8> {
    let mut state = seed.wrapping_mul(0x9e37_79b9_7f4a_7c15) | 1;
    (0..len)
        .map(|_| {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            (state >> 24) as u8
        })
        .collect()
}

/// Runs a command that must succeed; its standard output.
fn run_ok(command: &mut Command) -> String {
    let out = command.output().unwrap();
    assert!(
        out.status.success(),
        "{command:?} failed:\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap()
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

/// A file's or directory's content digest (files), size, mode and modification time: what a
/// write would change.
fn state_of(path: &Path) -> (Option<String>, u64, u32, std::time::SystemTime) {
    let metadata = std::fs::symlink_metadata(path).unwrap();
    let digest = metadata.is_file().then(|| sha256sum(path));
    (
        digest,
        metadata.len(),
        metadata.permissions().mode(),
        metadata.modified().unwrap(),
    )
}

#[test]
fn openssh_sftp_logs_in_by_key_lists_and_downloads() {
    let rig = Rig::start("");
    let out = rig.openssh_batch(
        AUDITOR,
        &format!("pwd\nls -1 /\nls -1 /S20261121\nls -1 Index\nget {RECORDING}\nget {INDEX}\n"),
    );
    assert!(out.status.success(), "sftp failed:\n{}", text(&out.stderr));
    let listing = text(&out.stdout);
    assert!(
        listing.contains("Remote working directory: /\n"),
        "{listing}"
    );
    for name in [
        "Index",
        "S20261121",
        "R202611211403120001.wav",
        "I20261121.csv",
    ] {
        assert!(listing.contains(name), "no {name} in:\n{listing}");
    }
    assert_eq!(
        sha256sum(&rig.downloads.join("R202611211403120001.wav")),
        sha256sum(&rig.on_disk(RECORDING))
    );
    assert_eq!(
        sha256sum(&rig.downloads.join("I20261121.csv")),
        sha256sum(&rig.on_disk(INDEX))
    );

    // The fingerprint an administrator is shown is the key clients were given.
    let fingerprint = tapline_sftp::host_key_fingerprint(&rig.appliance.data_dir())
        .unwrap()
        .unwrap();
    let keygen = run_ok(
        peer("ssh-keygen", "openssh-client")
            .arg("-lf")
            .arg(&rig.known_hosts),
    );
    assert!(
        keygen.contains(&fingerprint),
        "{fingerprint} not in {keygen}"
    );

    let downloads = rig.wait_for_audit("Download", 2);
    let recording = downloads.iter().find(|r| r.object == RECORDING).unwrap();
    assert!(
        recording
            .params
            .contains(&format!("\"bytes_sent\":{RECORDING_SIZE}")),
        "{recording:?}"
    );
    assert!(
        recording.params.contains("\"whole_file\":true"),
        "{recording:?}"
    );
    assert_eq!(
        (recording.username.as_str(), recording.ip.as_str()),
        (AUDITOR, "127.0.0.1")
    );
    let index = downloads.iter().find(|r| r.object == INDEX).unwrap();
    assert!(
        index
            .params
            .contains(&format!("\"bytes_sent\":{}", INDEX_TEXT.len()))
    );

    let login = &rig.wait_for_audit("Login", 1)[0];
    assert_eq!(login.username, AUDITOR);
    assert!(
        login.params.contains("\"method\":\"publickey\""),
        "{login:?}"
    );
    assert!(
        login.params.contains("\"client\":\"SSH-2.0-OpenSSH_"),
        "{login:?}"
    );
    let listed: Vec<String> = rig
        .wait_for_audit("List directory", 3)
        .into_iter()
        .map(|r| r.object)
        .collect();
    for dir in ["/", "/S20261121", "/Index"] {
        assert!(listed.iter().any(|o| o == dir), "{dir} not in {listed:?}");
    }
    // One session: every row carries the same session id.
    let session = |params: &str| {
        let start = params.find("\"session\":\"").unwrap() + 11;
        params[start..start + 16].to_owned()
    };
    assert_eq!(session(&login.params), session(&recording.params));
}

#[test]
fn openssh_sftp_logs_in_as_the_tenant_by_password() {
    let rig = Rig::start("");
    let out = rig.openssh_password("acmejets", TENANT_PASSWORD, &format!("get {DAY_INDEX}\n"));
    assert!(
        out.status.success(),
        "sftp failed:\n{}{}",
        text(&out.stdout),
        text(&out.stderr)
    );
    assert_eq!(
        sha256sum(&rig.downloads.join("I20261121.csv")),
        sha256sum(&rig.on_disk(DAY_INDEX))
    );
    let login = &rig.wait_for_audit("Login", 1)[0];
    assert_eq!(
        login.username, TENANT,
        "the name as configured, whatever case was typed"
    );
    assert!(login.params.contains("\"method\":\"password\""));

    let refused = rig.openssh_password(TENANT, "not the password", "ls\n");
    assert!(!refused.status.success());
    assert!(
        text(&refused.stderr).contains("Permission denied"),
        "{}",
        text(&refused.stderr)
    );
}

#[test]
fn every_kind_of_write_is_refused_and_audited() {
    let rig = Rig::start("");
    let upload = rig.appliance.path().join("upload.wav");
    std::fs::write(&upload, b"RIFF").unwrap();
    let targets = [RECORDING, INDEX, "/Index"].map(|p| rig.on_disk(p));
    let before: Vec<_> = targets.iter().map(|p| state_of(p)).collect();
    let commands = format!(
        "-put {upload} /upload.wav\n\
         -rm {RECORDING}\n\
         -rename {RECORDING} /moved.wav\n\
         -mkdir /S20261122\n\
         -rmdir /Index\n\
         -chmod 666 {INDEX}\n\
         -ln -s {RECORDING} /symlink.wav\n\
         -ln {RECORDING} /hardlink.wav\n",
        upload = upload.display()
    );
    let out = rig.openssh_batch(AUDITOR, &commands);
    let stderr = text(&out.stderr);
    let denied = stderr
        .lines()
        .filter(|l| l.contains("Permission denied"))
        .count();
    assert_eq!(denied, 8, "one refusal per write:\n{stderr}");
    let after: Vec<_> = targets.iter().map(|p| state_of(p)).collect();
    assert_eq!(after, before, "what the writes aimed at is unchanged");
    for made in [
        "/upload.wav",
        "/moved.wav",
        "/S20261122",
        "/symlink.wav",
        "/hardlink.wav",
    ] {
        assert!(
            std::fs::symlink_metadata(rig.on_disk(made)).is_err(),
            "{made} was made"
        );
    }

    let refused = rig.wait_for_audit("Write refused", 8);
    let requests: Vec<String> = refused
        .iter()
        .map(|r| {
            let start = r.params.find("\"request\":\"").unwrap() + 11;
            let end = r.params[start..].find('"').unwrap();
            format!("{} {}", &r.params[start..start + end], r.object)
        })
        .collect();
    assert_eq!(
        requests,
        [
            "open for writing /upload.wav".to_owned(),
            format!("remove {RECORDING}"),
            format!("posix-rename {RECORDING}"),
            "mkdir /S20261122".to_owned(),
            "rmdir /Index".to_owned(),
            format!("setstat {INDEX}"),
            "symlink /symlink.wav".to_owned(),
            "hardlink /hardlink.wav".to_owned(),
        ]
    );
}

#[test]
fn dot_dot_absolute_paths_and_symbolic_links_stay_inside_the_root() {
    let rig = Rig::start("");
    let data = rig.appliance.data_dir();
    // Files beside the root, and links inside it that point at them or at the host's /etc.
    std::fs::write(data.join("secret.txt"), "outside the root").unwrap();
    std::fs::write(rig.appliance.path().join("secret.txt"), "outside the root").unwrap();
    symlink(
        rig.appliance.path().join("secret.txt"),
        rig.on_disk("/S20261121/absolute.wav"),
    )
    .unwrap();
    symlink("../../secret.txt", rig.on_disk("/Index/relative.csv")).unwrap();
    symlink("/etc", rig.on_disk("/Index/etc")).unwrap();

    let commands = "-get ../secret.txt got1\n\
                    -get /../../secret.txt got2\n\
                    -get /S20261121/absolute.wav got3\n\
                    -get /Index/relative.csv got4\n\
                    -get /Index/etc/passwd got5\n\
                    -get ../../etc/passwd got6\n\
                    -ls /Index/etc/ssh\n\
                    cd ../../..\n\
                    pwd\n\
                    ls -1\n";
    let out = rig.openssh_batch(AUDITOR, commands);
    assert!(out.status.success(), "{}", text(&out.stderr));
    let stdout = text(&out.stdout);
    assert!(stdout.contains("Remote working directory: /\n"), "{stdout}");
    assert!(
        stdout.contains("S20261121"),
        "`..` of the root is the root:\n{stdout}"
    );
    let stderr = text(&out.stderr);
    let failed = stderr
        .lines()
        .filter(|l| l.contains("not found") || l.contains("No such file"))
        .count();
    assert_eq!(failed, 7, "every escape fails:\n{stderr}");
    assert!(!stdout.contains("sshd_config"), "{stdout}");
    for n in 1..=6 {
        assert!(
            !rig.downloads.join(format!("got{n}")).exists(),
            "got{n} was downloaded:\n{stderr}"
        );
    }

    // Paramiko sees the same: the links exist as links, and lead nowhere.
    let script = r#"
import sys, stat, paramiko
t = paramiko.Transport(("127.0.0.1", int(sys.argv[1])))
t.connect(username=sys.argv[2], password=sys.argv[3])
s = paramiko.SFTPClient.from_transport(t)
print(s.normalize("/../../.."))
print(stat.S_ISLNK(s.lstat("/Index/etc").st_mode), s.readlink("/Index/etc"))
for path in ("/Index/etc/passwd", "/S20261121/absolute.wav", "/Index/relative.csv"):
    try:
        s.open(path).read()
        print("read", path)
    except IOError as e:
        print("refused", path)
"#;
    let out = Command::new("/usr/bin/python3")
        .args(["-c", script])
        .arg(rig.addr.port().to_string())
        .args([AUDITOR, AUDITOR_PASSWORD])
        .output()
        .expect("/usr/bin/python3 is missing: apt-get install python3 python3-paramiko");
    assert!(
        out.status.success(),
        "paramiko failed (apt-get install python3-paramiko if it is missing):\n{}",
        text(&out.stderr)
    );
    assert_eq!(
        text(&out.stdout),
        "/\nTrue /etc\nrefused /Index/etc/passwd\nrefused /S20261121/absolute.wav\n\
         refused /Index/relative.csv\n"
    );
}

#[test]
fn lftp_lists_and_downloads_with_a_password() {
    let rig = Rig::start("");
    let ssh = format!(
        "ssh -a -x -F /dev/null -o StrictHostKeyChecking=yes -o UserKnownHostsFile={} \
         -o GlobalKnownHostsFile=/dev/null -o PubkeyAuthentication=no",
        rig.known_hosts.display()
    );
    let script = format!(
        "set sftp:connect-program \"{ssh}\"; set cmd:fail-exit yes; set net:max-retries 1; \
         set net:timeout 20; open -u \"{TENANT},{TENANT_PASSWORD}\" -p {port} sftp://127.0.0.1; \
         cls -1 /; cls -1 /S20261121/; get {RECORDING} -o {dir}/lftp.wav; \
         get {INDEX} -o {dir}/lftp.csv; bye",
        port = rig.addr.port(),
        dir = rig.downloads.display(),
    );
    let out = peer("lftp", "lftp").args(["-c", &script]).output().unwrap();
    assert!(
        out.status.success(),
        "lftp failed:\n{}{}",
        text(&out.stdout),
        text(&out.stderr)
    );
    let listing = text(&out.stdout);
    for name in [
        "Index",
        "S20261121",
        "R202611211403120001.wav",
        "I20261121.csv",
    ] {
        assert!(listing.contains(name), "no {name} in:\n{listing}");
    }
    assert_eq!(
        sha256sum(&rig.downloads.join("lftp.wav")),
        sha256sum(&rig.on_disk(RECORDING))
    );
    assert_eq!(
        sha256sum(&rig.downloads.join("lftp.csv")),
        sha256sum(&rig.on_disk(INDEX))
    );
    let downloads = rig.wait_for_audit("Download", 2);
    assert!(
        downloads
            .iter()
            .all(|r| r.username == TENANT && r.params.contains("\"whole_file\":true"))
    );
}

#[test]
fn paramiko_prefetching_everything_keeps_the_server_small() {
    let rig = Rig::start("");
    let big = "/S20261121/R202611211500000001.wav";
    let size = 128 << 20;
    std::fs::write(rig.on_disk(big), pseudo_random(size, 2)).unwrap();

    // An ordinary download first.
    let out = rig.paramiko_ok(AUDITOR, AUDITOR_PASSWORD, "list-and-get", &[RECORDING]);
    let root = out.lines().find_map(|l| l.strip_prefix("root ")).unwrap();
    assert!(root.split(' ').any(|n| n == "Index"), "{out}");
    assert!(root.split(' ').any(|n| n == "S20261121"), "{out}");
    assert!(out.contains("R202611211403120001.wav"), "{out}");
    assert!(
        out.contains(&format!("sha256 {}\n", sha256sum(&rig.on_disk(RECORDING)))),
        "{out}"
    );

    let baseline = rig.daemon.rss_kib();
    let mut child = rig
        .paramiko(AUDITOR, AUDITOR_PASSWORD, "prefetch", &[big])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
    assert_eq!(lines.next().unwrap().unwrap(), "prefetching");
    // Paramiko asks for all 4,096 pieces and reads none of the replies: the server may send
    // only what paramiko's window allows and must hold the rest as requests, not as data.
    let mut peak = 0;
    for _ in 0..30 {
        std::thread::sleep(Duration::from_millis(100));
        peak = peak.max(rig.daemon.rss_kib());
    }
    let grown_mib = peak.saturating_sub(baseline) / 1024;
    eprintln!("server memory: {baseline} KiB before, {peak} KiB at most while prefetching");
    assert!(
        grown_mib < 32,
        "the server grew by {grown_mib} MiB for a client that reads nothing (file: {} MiB)",
        size >> 20
    );
    writeln!(child.stdin.take().unwrap(), "go").unwrap();
    let digest = lines.next().unwrap().unwrap();
    let status = child.wait().unwrap();
    assert!(status.success());
    assert_eq!(digest, format!("sha256 {}", sha256sum(&rig.on_disk(big))));
    let downloads = rig.wait_for_audit("Download", 2);
    assert!(downloads.iter().any(|r| r.object == big
        && r.params.contains(&format!("\"bytes_sent\":{size}"))
        && r.params.contains("\"whole_file\":true")));
}

#[test]
fn a_client_dropped_mid_download_leaves_the_server_serving() {
    let rig = Rig::start("");
    let out = rig.paramiko_ok(AUDITOR, AUDITOR_PASSWORD, "drop", &[RECORDING]);
    assert_eq!(out, "read 1048576\n");
    let partial = &rig.wait_for_audit("Download", 1)[0];
    assert_eq!(partial.object, RECORDING);
    assert!(
        partial.params.contains("\"whole_file\":false"),
        "{partial:?}"
    );
    assert!(
        partial.params.contains("\"ended\":\"the session ended\""),
        "{partial:?}"
    );
    // The open was recorded on its own as well, as it happened.
    let started = &rig.wait_for_audit("Download started", 1)[0];
    assert_eq!(
        (started.object.as_str(), started.username.as_str()),
        (RECORDING, AUDITOR)
    );

    let out = rig.openssh_batch(AUDITOR, &format!("get {RECORDING}\n"));
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert_eq!(
        sha256sum(&rig.downloads.join("R202611211403120001.wav")),
        sha256sum(&rig.on_disk(RECORDING))
    );
}

#[test]
fn wrong_passwords_lock_the_name_out_until_an_administrator_lifts_it() {
    let rig = Rig::start("failures_before_lockout = 3");
    let wrong = "wrong password!";
    let out = rig.paramiko_ok(
        AUDITOR,
        "",
        "attempts",
        &[wrong, wrong, wrong, AUDITOR_PASSWORD],
    );
    assert_eq!(
        out, "refused\nrefused\nrefused\nrefused\n",
        "locked after three"
    );
    let lockout = &rig.wait_for_audit("Lockout", 1)[0];
    assert_eq!(lockout.username, AUDITOR);
    assert!(
        lockout.comments.starts_with("locked out until "),
        "{lockout:?}"
    );
    let failed = rig.wait_for_audit("Login failed", 4);
    assert!(
        failed[3].comments.contains("locked out until"),
        "{:?}",
        failed[3]
    );

    // Keys are no way round it.
    let out = rig.openssh_batch(AUDITOR, "pwd\n");
    assert!(!out.status.success(), "a locked name logged in by key");

    let store = tapline_store::Store::open_in(&rig.appliance.data_dir()).unwrap();
    let lifted = store
        .write(|tx| tapline_accounts::lockout::lift(tx, AUDITOR))
        .unwrap();
    assert!(lifted);
    let out = rig.paramiko_ok(AUDITOR, "", "attempts", &[AUDITOR_PASSWORD]);
    assert_eq!(out, "accepted\n");
}

#[test]
fn sessions_per_login_are_bounded_and_idle_ones_closed() {
    let rig = Rig::start("max_connections_per_account = 1\nidle_timeout_seconds = 10");
    let out = rig.paramiko_ok(
        AUDITOR,
        AUDITOR_PASSWORD,
        "limits",
        &[TENANT, TENANT_PASSWORD, "13"],
    );
    assert_eq!(
        out,
        "first True\nsecond refused\nother login True\nidle session closed\n"
    );
    let refused = rig.wait_for_audit("Login failed", 1);
    assert!(
        refused[0].params.contains("already 1 sessions open"),
        "{refused:?}"
    );
}

#[test]
fn only_modern_algorithms_are_negotiated() {
    let rig = Rig::start("");
    let weak: [(&[&str], &str); 6] = [
        (
            &["-o", "KexAlgorithms=diffie-hellman-group14-sha1"],
            "no matching key exchange method",
        ),
        (
            &["-o", "KexAlgorithms=diffie-hellman-group-exchange-sha1"],
            "no matching key exchange method",
        ),
        (&["-c", "aes128-cbc"], "no matching cipher"),
        (&["-c", "3des-cbc"], "no matching cipher"),
        (
            &["-c", "aes128-ctr", "-o", "MACs=hmac-sha1,hmac-sha2-256"],
            "no matching MAC",
        ),
        (
            &["-o", "HostKeyAlgorithms=ssh-rsa"],
            "no matching host key type",
        ),
    ];
    for (options, refusal) in weak {
        // The refusal is reported at the INFO level.
        let options = [&["-o", "LogLevel=INFO"], options].concat();
        let out = rig.openssh_batch_with(AUDITOR, &options, "pwd\n");
        assert!(!out.status.success(), "{options:?} was accepted");
        let stderr = text(&out.stderr);
        assert!(stderr.contains(refusal), "{options:?}: {stderr}");
    }
    for (kex, cipher) in [
        ("curve25519-sha256", "chacha20-poly1305@openssh.com"),
        ("curve25519-sha256@libssh.org", "aes256-gcm@openssh.com"),
        ("ecdh-sha2-nistp256", "aes128-ctr"),
        ("ecdh-sha2-nistp521", "aes256-ctr"),
    ] {
        let options = [
            "-o",
            &format!("KexAlgorithms={kex}"),
            "-c",
            cipher,
            "-o",
            "MACs=hmac-sha2-256-etm@openssh.com",
        ];
        let out = rig.openssh_batch_with(AUDITOR, &options, "pwd\n");
        assert!(
            out.status.success(),
            "{kex} {cipher}: {}",
            text(&out.stderr)
        );
    }
}

#[test]
fn stopping_the_daemon_ends_sessions_and_audits_their_downloads() {
    let mut rig = Rig::start("");
    let mut client = rig
        .paramiko(AUDITOR, AUDITOR_PASSWORD, "hold", &[RECORDING])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut lines = BufReader::new(client.stdout.take().unwrap()).lines();
    assert_eq!(lines.next().unwrap().unwrap(), "read 1048576");
    rig.daemon.stop(rustix::process::Signal::TERM);
    writeln!(client.stdin.take().unwrap(), "go on").unwrap();
    assert_eq!(lines.next().unwrap().unwrap(), "closed by the server");
    client.wait().unwrap();

    let download = &rig.wait_for_audit("Download", 1)[0];
    assert_eq!(download.object, RECORDING);
    assert!(
        download.params.contains("\"bytes_sent\":1048576"),
        "{download:?}"
    );
    assert!(
        download.params.contains("\"whole_file\":false"),
        "{download:?}"
    );
    let log = rig.daemon.stderr();
    assert!(log.contains("service stopped service=\"sftp\""), "{log}");
}
