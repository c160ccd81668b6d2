//! `tapline account` and `tapline audit` as an administrator uses them at the console: every
//! change lands in the audit log, and `tapline audit verify` finds a tampered row.

// A test's helpers fail the test on anything unexpected, like its body does.
#![allow(clippy::unwrap_used)]

use std::io::Write;
use std::process::{Command, Output, Stdio};

use tapline_store::rusqlite::Connection;
use tapline_tests::{Appliance, tapline_bin};

/// Runs `tapline ARGS --config <appliance>` with `stdin` on standard input.
fn run(appliance: &Appliance, args: &[&str], stdin: &str) -> Output {
    let mut child = Command::new(tapline_bin())
        .args(args)
        .arg("--config")
        .arg(&appliance.config)
        .env_remove("TAPLINE_CONFIG")
        .env("SUDO_USER", "alice")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    // A command that refuses its arguments exits without reading: a broken pipe is fine.
    let _ = child.stdin.take().unwrap().write_all(stdin.as_bytes());
    child.wait_with_output().unwrap()
}

#[track_caller]
fn ok(out: &Output) -> String {
    assert!(
        out.status.success(),
        "exit {:?}: {}",
        out.status.code(),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout.clone()).unwrap()
}

#[track_caller]
fn fails_with(out: &Output, message: &str) {
    assert_eq!(out.status.code(), Some(1));
    assert_eq!(
        String::from_utf8_lossy(&out.stderr),
        format!("tapline: {message}\n")
    );
}

fn database(appliance: &Appliance) -> Connection {
    Connection::open(appliance.data_dir().join("tapline.db")).unwrap()
}

#[test]
fn accounts_are_added_listed_and_audited() {
    let appliance = Appliance::new("");
    let out = run(
        &appliance,
        &[
            "account",
            "add",
            "audrey",
            "--role",
            "AUDITOR",
            "--password-stdin",
        ],
        "a long auditor password\n",
    );
    assert_eq!(ok(&out), "Account \"audrey\" saved with role Auditor.\n");

    let out = run(
        &appliance,
        &["account", "add", "sam", "--role", "supervisor"],
        "",
    );
    let stdout = ok(&out);
    let password = stdout
        .lines()
        .find_map(|l| l.strip_prefix("One-time password (must be changed at first sign-in): "))
        .unwrap();
    assert_eq!(password.len(), 20);

    fails_with(
        &run(&appliance, &["account", "add", "x", "--role", "root"], ""),
        "unknown role \"root\" (roles: Administrator, Supervisor, Auditor, Agent)",
    );
    fails_with(
        &run(
            &appliance,
            &[
                "account",
                "add",
                "zed",
                "--role",
                "agent",
                "--password-stdin",
            ],
            "short\n",
        ),
        "passwords must be at least 12 characters",
    );
    fails_with(
        &run(
            &appliance,
            &[
                "account",
                "add",
                "acmejets",
                "--role",
                "auditor",
                "--password-stdin",
            ],
            "a long enough password\n",
        ),
        "\"acmejets\" is the tenant login's name (the tenant name of Settings, else \
         `tenant.name`); set its password with `tapline account sftp-password --password-stdin`",
    );

    let list = ok(&run(&appliance, &["account", "list"], ""));
    let lines: Vec<&str> = list.lines().collect();
    assert!(lines[0].starts_with("NAME"), "{list}");
    assert!(
        lines[1].starts_with("AcmeJets") && lines[1].contains("(tenant login) no"),
        "{list}"
    );
    assert!(
        lines[2].starts_with("audrey") && lines[2].contains("Auditor        yes"),
        "{list}"
    );
    assert!(
        lines[3].starts_with("sam") && lines[3].contains("Supervisor     no"),
        "{list}"
    );
    assert!(
        list.contains("The tenant login has no SFTP password yet"),
        "{list}"
    );

    let out = run(
        &appliance,
        &["account", "sftp-password", "--password-stdin"],
        "tenant sftp password\r\n",
    );
    assert_eq!(
        ok(&out),
        "SFTP password set for the tenant login \"AcmeJets\".\n"
    );
    let list = ok(&run(&appliance, &["account", "list"], ""));
    assert!(
        list.lines().nth(1).unwrap().contains("(tenant login) yes"),
        "{list}"
    );

    // A tenant renamed in the web UI's Settings is the tenant login from then on.
    database(&appliance)
        .execute(
            "INSERT INTO settings (key, value, updated_at, updated_by)
             VALUES ('tenant.name', 'AcmeAir', '2026-11-21T00:00:00Z', 'alice')",
            [],
        )
        .unwrap();
    let list = ok(&run(&appliance, &["account", "list"], ""));
    assert!(
        list.lines().nth(1).unwrap().starts_with("AcmeAir "),
        "{list}"
    );
    fails_with(
        &run(
            &appliance,
            &["account", "add", "acmeair", "--role", "auditor"],
            "",
        ),
        "\"acmeair\" is the tenant login's name (the tenant name of Settings, else \
         `tenant.name`); set its password with `tapline account sftp-password --password-stdin`",
    );
    database(&appliance)
        .execute("DELETE FROM settings WHERE key = 'tenant.name'", [])
        .unwrap();

    let rows: Vec<(String, String, String, String, String)> = database(&appliance)
        .prepare(
            "SELECT username, event, sub_event, event_object, request_uri FROM audit_log ORDER BY id",
        )
        .unwrap()
        .query_map([], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?, r.get(4)?)))
        .unwrap()
        .collect::<Result<_, _>>()
        .unwrap();
    let summary: Vec<String> = rows
        .iter()
        .map(|(user, event, sub, object, _)| format!("{user}|{event}|{sub}|{object}"))
        .collect();
    assert_eq!(
        summary,
        [
            "alice (console)|Account|Created|audrey",
            "alice (console)|Account|Created|sam",
            "alice (console)|Account|Password set|AcmeJets",
        ]
    );
    assert!(
        rows[0]
            .4
            .starts_with("tapline account add audrey --role AUDITOR"),
        "{rows:?}"
    );
}

#[test]
fn audit_verify_names_the_tampered_row() {
    let appliance = Appliance::new("");
    for name in ["a1", "a2", "a3"] {
        ok(&run(
            &appliance,
            &[
                "account",
                "add",
                name,
                "--role",
                "agent",
                "--password-stdin",
            ],
            "a long agent password\n",
        ));
    }
    let head = ok(&run(&appliance, &["audit", "head"], ""));
    let head = head.trim();
    assert!(head.starts_with("3:") && head.len() == 66, "{head}");
    let verified = ok(&run(&appliance, &["audit", "verify", "--head", head], ""));
    assert_eq!(verified, format!("audit log intact: 3 rows, head {head}\n"));

    // The triggers refuse an edit through SQL …
    let db = database(&appliance);
    let err = db
        .execute("UPDATE audit_log SET username = 'mallory' WHERE id = 2", [])
        .unwrap_err();
    assert!(err.to_string().contains("append-only"), "{err}");
    // … so an attacker drops them first; the chain still tells.
    db.execute_batch(
        "DROP TRIGGER audit_log_no_update;
         UPDATE audit_log SET username = 'mallory' WHERE id = 2;",
    )
    .unwrap();
    drop(db);
    let out = run(&appliance, &["audit", "verify"], "");
    assert_eq!(out.status.code(), Some(1));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.starts_with("tapline: the audit log is broken at row 2: its content does not match"),
        "{stderr}"
    );

    // Rows cut from the end are found against a head recorded earlier.
    let appliance = Appliance::new("");
    for name in ["b1", "b2"] {
        ok(&run(
            &appliance,
            &[
                "account",
                "add",
                name,
                "--role",
                "agent",
                "--password-stdin",
            ],
            "a long agent password\n",
        ));
    }
    let head = ok(&run(&appliance, &["audit", "head"], ""));
    database(&appliance)
        .execute_batch("DROP TRIGGER audit_log_no_delete; DELETE FROM audit_log WHERE id = 2;")
        .unwrap();
    ok(&run(&appliance, &["audit", "verify"], ""));
    let out = run(&appliance, &["audit", "verify", "--head", head.trim()], "");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(
        stderr,
        "tapline: the audit log is broken at row 2: the recorded head row 2 is missing: the \
         log ends at 1 (1 rows checked)\n"
    );
}

#[test]
fn a_lockout_is_lifted_by_an_administrator() {
    let appliance = Appliance::new("");
    ok(&run(
        &appliance,
        &[
            "account",
            "add",
            "audrey",
            "--role",
            "auditor",
            "--password-stdin",
        ],
        "a long auditor password\n",
    ));
    database(&appliance)
        .execute(
            "INSERT INTO login_lockouts (name, failures, last_failure, locked_until)
             VALUES ('audrey', 5, '2026-11-21T10:00:00.000000Z', '2999-01-01T00:00:00.000000Z')",
            [],
        )
        .unwrap();
    let list = ok(&run(&appliance, &["account", "list"], ""));
    assert!(list.contains("2999-01-01T00:00:00Z"), "{list}");
    assert_eq!(
        ok(&run(&appliance, &["account", "unlock", "AUDREY"], "")),
        "Lockout on \"AUDREY\" lifted.\n"
    );
    assert_eq!(
        ok(&run(&appliance, &["account", "unlock", "audrey"], "")),
        "\"audrey\" is not locked out.\n"
    );
    let last: String = database(&appliance)
        .query_row(
            "SELECT sub_event FROM audit_log ORDER BY id DESC LIMIT 1",
            [],
            |r| r.get(0),
        )
        .unwrap();
    assert_eq!(last, "Lockout lifted");
}

#[test]
fn public_keys_are_added_with_the_fingerprint_ssh_keygen_prints() {
    let appliance = Appliance::new("");
    ok(&run(
        &appliance,
        &[
            "account",
            "add",
            "audrey",
            "--role",
            "auditor",
            "--password-stdin",
        ],
        "a long auditor password\n",
    ));
    let key = appliance.path().join("id_ed25519");
    let made = tapline_tests::peer("ssh-keygen", "openssh-client")
        .args(["-q", "-t", "ed25519", "-N", "", "-C", "audrey@laptop", "-f"])
        .arg(&key)
        .status()
        .unwrap();
    assert!(made.success());
    let listed = tapline_tests::peer("ssh-keygen", "openssh-client")
        .arg("-lf")
        .arg(key.with_extension("pub"))
        .output()
        .unwrap();
    let expected = String::from_utf8(listed.stdout).unwrap();
    let expected = expected.split(' ').nth(1).unwrap();

    let public = key.with_extension("pub");
    let out = run(
        &appliance,
        &[
            "account",
            "add-key",
            "audrey",
            "--public-key",
            public.to_str().unwrap(),
        ],
        "",
    );
    assert_eq!(
        ok(&out),
        format!("Key {expected} may now log in as \"audrey\".\n")
    );
    let list = ok(&run(&appliance, &["account", "list"], ""));
    let line = list.lines().find(|l| l.starts_with("audrey")).unwrap();
    assert!(line.contains("yes   1"), "{list}");
    assert!(list.contains("SSH host key: not made yet"), "{list}");

    let weak = appliance.path().join("id_rsa_1024");
    tapline_tests::peer("ssh-keygen", "openssh-client")
        .args(["-q", "-t", "rsa", "-b", "1024", "-N", "", "-f"])
        .arg(&weak)
        .status()
        .unwrap();
    let out = run(
        &appliance,
        &["account", "add-key", "audrey", "--public-key", "-"],
        &std::fs::read_to_string(weak.with_extension("pub")).unwrap(),
    );
    fails_with(
        &out,
        "ssh-rsa keys are not accepted: use Ed25519, ECDSA, or RSA of at least 2048 bits",
    );

    let out = run(
        &appliance,
        &["account", "remove-key", "audrey", "--fingerprint", expected],
        "",
    );
    assert_eq!(
        ok(&out),
        format!("Key {expected} removed from \"audrey\".\n")
    );
    let subs: Vec<String> = database(&appliance)
        .prepare("SELECT sub_event FROM audit_log ORDER BY id")
        .unwrap()
        .query_map([], |r| r.get(0))
        .unwrap()
        .collect::<Result<_, _>>()
        .unwrap();
    assert_eq!(subs[1], "Key added");
    assert_eq!(subs.len(), 3, "{subs:?}");
}
