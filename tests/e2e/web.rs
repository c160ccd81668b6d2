//! The web UI's sign-in, sessions and authorization against `tapline run`, driven by curl:
//! every endpoint refuses an anonymous caller, a wrong password is refused after the fixed
//! delay, the session id is renewed at sign-in and flagged, CSRF is refused, roles are denied
//! with 403, idle and absolute timeouts end sessions, a certificate made by openssl replaces
//! the listener's without a restart, and every step leaves its audit row. Settings saved in
//! the UI take effect at once (retention, the tenant's SFTP login name), custom roles and
//! disabled accounts hold for OpenSSH's `sftp` too, a role change reaches open sessions, the
//! home page streams live state as server-sent events, and the agent directory's import form
//! takes a file posted by curl as `multipart/form-data`, as a browser without JavaScript
//! posts it: the CSRF token checked in the form, and a file over the limit refused with 413.

#![allow(clippy::unwrap_used)]

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use tapline_tests::{Appliance, Daemon, peer};
use tapline_web::routes::{Access, Kind};

const PASSWORD: &str = "a long enough password";

/// What curl got back.
struct Answer {
    status: u16,
    headers: String,
    body: String,
}

impl Answer {
    fn header(&self, name: &str) -> Option<String> {
        self.headers.lines().find_map(|line| {
            let (n, v) = line.split_once(':')?;
            n.trim()
                .eq_ignore_ascii_case(name)
                .then(|| v.trim().to_owned())
        })
    }
}

struct Client {
    base: String,
    cacert: PathBuf,
    jar: PathBuf,
}

impl Client {
    fn new(daemon: &mut Daemon, appliance: &Appliance, name: &str) -> Client {
        let base = daemon.web_url().trim_end_matches('/').to_owned();
        Client {
            base,
            cacert: appliance.cert(),
            jar: appliance.path().join(format!("{name}.cookies")),
        }
    }

    fn curl(&self, method: &str, path: &str, extra: &[&str]) -> Answer {
        self.curl_with(&self.cacert, method, path, extra)
    }

    fn curl_with(&self, cacert: &Path, method: &str, path: &str, extra: &[&str]) -> Answer {
        let headers = self.jar.with_extension("headers");
        let out = peer("curl", "curl")
            .args(["--silent", "--show-error", "--max-time", "20", "--cacert"])
            .arg(cacert)
            .arg("--cookie")
            .arg(&self.jar)
            .arg("--cookie-jar")
            .arg(&self.jar)
            .arg("--dump-header")
            .arg(&headers)
            .args(["--request", method, "--write-out", "\n%{http_code}"])
            .args(extra)
            .arg(format!("{}{path}", self.base))
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "curl {method} {path} failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        let text = String::from_utf8(out.stdout).unwrap();
        let (body, code) = text.rsplit_once('\n').unwrap();
        Answer {
            status: code.parse().unwrap(),
            headers: std::fs::read_to_string(&headers).unwrap_or_default(),
            body: body.to_owned(),
        }
    }

    fn sign_in(&self, name: &str, password: &str) -> Answer {
        let body = serde_json::json!({ "username": name, "password": password }).to_string();
        self.curl(
            "POST",
            "/api/v1/session",
            &[
                "--header",
                "content-type: application/json",
                "--data",
                &body,
            ],
        )
    }

    /// Signs in and returns the CSRF token.
    fn signed_in(&self, name: &str) -> String {
        let answer = self.sign_in(name, PASSWORD);
        assert_eq!(answer.status, 201, "{}", answer.body);
        let info: serde_json::Value = serde_json::from_str(&answer.body).unwrap();
        info["csrf_token"].as_str().unwrap().to_owned()
    }

    fn json(&self, method: &str, path: &str, csrf: Option<&str>, body: &str) -> Answer {
        let header = format!("x-csrf-token: {}", csrf.unwrap_or(""));
        let mut extra = vec!["--header", "content-type: application/json", "--data", body];
        if csrf.is_some() {
            extra.extend(["--header", &header]);
        }
        self.curl(method, path, &extra)
    }

    fn session_cookie(&self) -> Option<String> {
        let jar = std::fs::read_to_string(&self.jar).ok()?;
        jar.lines()
            .filter(|l| l.contains("__Host-tapline_session"))
            .find_map(|l| l.split('\t').nth(6).map(str::to_owned))
    }
}

fn appliance() -> Appliance {
    let appliance = Appliance::new("");
    appliance.add_account("root", "Administrator", PASSWORD);
    appliance.add_account("sam", "Supervisor", PASSWORD);
    appliance.add_account("audrey", "Auditor", PASSWORD);
    appliance
}

/// Rows of the audit log, as the daemon wrote them.
fn audit_rows(appliance: &Appliance, event: &str) -> Vec<[String; 5]> {
    let store = appliance.store();
    store
        .read(|conn| {
            let mut statement = conn.prepare(
                "SELECT username, user_ip, sub_event, event_object, request_uri
                 FROM audit_log WHERE event = ?1 ORDER BY id",
            )?;
            statement
                .query_map([event], |r| {
                    Ok([r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?, r.get(4)?])
                })?
                .collect::<Result<Vec<_>, _>>()
        })
        .unwrap()
}

#[test]
fn every_endpoint_refuses_an_anonymous_caller() {
    let appliance = appliance();
    let mut daemon = appliance.start(None, None);
    let client = Client::new(&mut daemon, &appliance, "anonymous");
    let table = tapline_web::routes::table();
    let mut checked = 0;
    for spec in table.iter().filter(|s| s.access != Access::Public) {
        let path = spec.path.replace("{name}", "root");
        let answer = client.curl(spec.method.as_str(), &path, &[]);
        match spec.kind() {
            Kind::Api => assert_eq!(answer.status, 401, "{} {path}", spec.method),
            Kind::Page => {
                assert_eq!(answer.status, 303, "{} {path}", spec.method);
                let location = answer.header("location").unwrap_or_default();
                assert!(location.starts_with("/signin"), "{path}: {location}");
            }
        }
        checked += 1;
    }
    assert!(checked > 30, "{checked} endpoints");
    // The operational endpoints stay open, as monitoring expects.
    assert_eq!(client.curl("GET", "/health", &[]).status, 200);
    assert_eq!(client.curl("GET", "/metrics", &[]).status, 200);
    // A forged cookie is nobody.
    let forged = client.curl(
        "GET",
        "/api/v1/session",
        &["--header", "cookie: __Host-tapline_session=forged"],
    );
    assert_eq!(forged.status, 401);
}

#[test]
fn sign_in_sessions_csrf_roles_and_their_audit_rows() {
    let appliance = appliance();
    let mut daemon = appliance.start(None, None);
    let root = Client::new(&mut daemon, &appliance, "root");

    // A wrong password and an unknown name take the same fixed delay and get the same answer.
    for name in ["root", "nobody"] {
        let started = Instant::now();
        let answer = root.sign_in(name, "not the password");
        assert_eq!(answer.status, 401, "{name}");
        assert!(
            answer.body.contains("wrong name or password"),
            "{}",
            answer.body
        );
        assert!(started.elapsed() >= Duration::from_secs(1), "{name}");
    }

    // A session id planted before sign-in is replaced, never adopted.
    std::fs::write(
        &root.jar,
        format!(
            "{}\tFALSE\t/\tTRUE\t0\t__Host-tapline_session\tplanted\n",
            root.base
                .trim_start_matches("https://")
                .split(':')
                .next()
                .unwrap()
        ),
    )
    .unwrap();
    let answer = root.sign_in("root", PASSWORD);
    assert_eq!(answer.status, 201, "{}", answer.body);
    let set_cookie = answer.header("set-cookie").unwrap();
    assert!(
        set_cookie.starts_with("__Host-tapline_session="),
        "{set_cookie}"
    );
    for flag in ["Path=/", "Secure", "HttpOnly", "SameSite=Strict"] {
        assert!(set_cookie.contains(flag), "{flag} in {set_cookie}");
    }
    let first = root.session_cookie().unwrap();
    assert_ne!(first, "planted");
    let info: serde_json::Value = serde_json::from_str(&answer.body).unwrap();
    let csrf = info["csrf_token"].as_str().unwrap().to_owned();
    assert_eq!(root.signed_in("root").len(), csrf.len());
    assert_ne!(
        root.session_cookie().unwrap(),
        first,
        "renewed at each sign-in"
    );
    let csrf = {
        let me = root.curl("GET", "/api/v1/session", &[]);
        assert_eq!(me.status, 200);
        let me: serde_json::Value = serde_json::from_str(&me.body).unwrap();
        assert_eq!(me["role"], "Administrator");
        me["csrf_token"].as_str().unwrap().to_owned()
    };

    // Pages carry the security headers.
    let home = root.curl("GET", "/", &[]);
    assert_eq!(home.status, 200);
    let csp = home.header("content-security-policy").unwrap();
    assert!(csp.contains("script-src 'self'") && csp.contains("frame-ancestors 'none'"));
    assert_eq!(home.header("x-content-type-options").unwrap(), "nosniff");
    assert!(home.header("strict-transport-security").is_some());

    // CSRF: no token, a wrong token, another site's Origin are refused; ours passes.
    let body = r#"{"permissions": ["Recordings", "show_whisper_log"]}"#;
    assert_eq!(
        root.json("PUT", "/api/v1/roles/Quality", None, body).status,
        403
    );
    assert_eq!(
        root.json("PUT", "/api/v1/roles/Quality", Some("wrong"), body)
            .status,
        403
    );
    let cross_site = root.curl(
        "PUT",
        "/api/v1/roles/Quality",
        &[
            "--header",
            "content-type: application/json",
            "--header",
            &format!("x-csrf-token: {csrf}"),
            "--header",
            "origin: https://evil.example",
            "--data",
            body,
        ],
    );
    assert_eq!(cross_site.status, 403);
    let form_without_token = root.curl("POST", "/roles", &["--data", "name=Forged"]);
    assert_eq!(form_without_token.status, 403);
    assert_eq!(
        root.json("PUT", "/api/v1/roles/Quality", Some(&csrf), body)
            .status,
        204
    );
    let created = root.json(
        "POST",
        "/api/v1/accounts",
        Some(&csrf),
        r#"{"name": "quinn", "role": "quality"}"#,
    );
    assert_eq!(created.status, 201, "{}", created.body);
    let generated: serde_json::Value = serde_json::from_str(&created.body).unwrap();
    assert_eq!(generated["password"].as_str().unwrap().len(), 20);

    // Roles: a supervisor may not administer, an auditor may not see the whisper log... and
    // each may use what their role holds.
    let sam = Client::new(&mut daemon, &appliance, "sam");
    sam.signed_in("sam");
    assert_eq!(sam.curl("GET", "/api/v1/accounts", &[]).status, 403);
    assert_eq!(sam.curl("GET", "/accounts", &[]).status, 403);
    assert_eq!(sam.curl("GET", "/whisper-log", &[]).status, 200);
    let audrey = Client::new(&mut daemon, &appliance, "audrey");
    let audrey_csrf = audrey.signed_in("audrey");
    assert_eq!(audrey.curl("GET", "/api/v1/whisper-log", &[]).status, 200);
    assert_eq!(
        audrey
            .json("PUT", "/api/v1/settings", Some(&audrey_csrf), "{}")
            .status,
        403
    );

    // Idle and absolute timeouts, enforced on the next request.
    let store = appliance.store();
    let age = |column: &str, account: &str, by: &str| {
        let sql = format!(
            "UPDATE web_sessions SET {column} = strftime('%Y-%m-%dT%H:%M:%f000Z', 'now', '{by}')
             WHERE account = ?1"
        );
        store.write(|tx| tx.execute(&sql, [account])).unwrap();
    };
    age("last_seen_at", "sam", "-31 minutes");
    assert_eq!(sam.curl("GET", "/api/v1/session", &[]).status, 401, "idle");
    sam.signed_in("sam");
    age("created_at", "sam", "-13 hours");
    assert_eq!(
        sam.curl("GET", "/api/v1/session", &[]).status,
        401,
        "absolute"
    );

    // Sign out: the cookie is cleared and the session is gone.
    let signed_out = root.curl(
        "DELETE",
        "/api/v1/session",
        &["--header", &format!("x-csrf-token: {csrf}")],
    );
    assert_eq!(signed_out.status, 204);
    assert!(
        signed_out
            .header("set-cookie")
            .unwrap()
            .contains("Max-Age=0")
    );
    assert_eq!(root.curl("GET", "/api/v1/session", &[]).status, 401);

    let web = audit_rows(&appliance, "Web");
    let described: Vec<String> = web
        .iter()
        .map(|[user, ip, sub, _, uri]| format!("{user} {ip} {sub} {uri}"))
        .collect();
    for expected in [
        "root 127.0.0.1 Login failed /api/v1/session",
        "nobody 127.0.0.1 Login failed /api/v1/session",
        "root 127.0.0.1 Login /api/v1/session",
        "sam 127.0.0.1 Login /api/v1/session",
        "root 127.0.0.1 Logout /api/v1/session",
    ] {
        assert!(
            described.iter().any(|d| d == expected),
            "{expected} in {described:#?}"
        );
    }
    let accounts = audit_rows(&appliance, "Account");
    assert!(
        accounts.iter().any(|r| r[0] == "root"
            && r[2] == "Created"
            && r[3] == "quinn"
            && r[4] == "/api/v1/accounts"),
        "{accounts:?}"
    );
    let roles = audit_rows(&appliance, "Role");
    assert_eq!(roles.len(), 1, "only the accepted change: {roles:?}");
    let verify = tapline_tests::tapline(&[
        "audit",
        "verify",
        "--config",
        appliance.config.to_str().unwrap(),
    ]);
    assert!(
        verify.status.success(),
        "{}",
        String::from_utf8_lossy(&verify.stderr)
    );
}

#[test]
fn an_uploaded_certificate_is_used_without_a_restart() {
    let appliance = appliance();
    let mut daemon = appliance.start(None, None);
    let root = Client::new(&mut daemon, &appliance, "root");
    let csrf = root.signed_in("root");
    let dir = appliance.path();
    let status = Command::new("openssl")
        .args([
            "req",
            "-x509",
            "-newkey",
            "ec",
            "-pkeyopt",
            "ec_paramgen_curve:P-256",
        ])
        .args(["-nodes", "-days", "30", "-subj", "/CN=tapline.test"])
        .args(["-addext", "subjectAltName=IP:127.0.0.1,DNS:localhost"])
        .arg("-keyout")
        .arg(dir.join("new-key.pem"))
        .arg("-out")
        .arg(dir.join("new-cert.pem"))
        .output()
        .expect("openssl (Debian package openssl) is needed");
    assert!(
        status.status.success(),
        "{}",
        String::from_utf8_lossy(&status.stderr)
    );
    let certificate = std::fs::read_to_string(dir.join("new-cert.pem")).unwrap();
    let key = std::fs::read_to_string(dir.join("new-key.pem")).unwrap();
    let wrong = serde_json::json!({ "certificate": certificate, "key": "not a key" }).to_string();
    let refused = root.json("PUT", "/api/v1/settings/certificate", Some(&csrf), &wrong);
    assert_eq!(refused.status, 400, "{}", refused.body);
    let upload = serde_json::json!({ "certificate": certificate, "key": key }).to_string();
    let answer = root.json("PUT", "/api/v1/settings/certificate", Some(&csrf), &upload);
    assert_eq!(answer.status, 204, "{}", answer.body);
    // The next connection is served with the new certificate, trusted on its own.
    let fresh = root.curl_with(&dir.join("new-cert.pem"), "GET", "/api/v1/session", &[]);
    assert_eq!(fresh.status, 200);
    assert_eq!(
        std::fs::read_to_string(appliance.cert()).unwrap(),
        certificate
    );
    let rows = audit_rows(&appliance, "Settings");
    assert_eq!(rows.len(), 1);
    assert_eq!(rows[0][2], "Certificate replaced");
}

/// A finished recording answered `days_ago` days ago, its row and a file; the file's path.
fn old_recording(appliance: &Appliance, days_ago: u32) -> PathBuf {
    let store = appliance.store();
    let ago = format!("-{days_ago} days");
    let (directory, file_name): (String, String) = store
        .write(|tx| {
            tx.execute(
                "INSERT INTO recordings (file_name, directory, status, source, answered_at,
                     ended_at, duration_ms, transaction_id, sip_call_id, sample_rate, channels,
                     format)
                 VALUES (strftime('R%Y%m%d%H%M%S', 'now', ?1) || '0000.wav',
                         strftime('S%Y%m%d', 'now', ?1), 'complete', 'span',
                         strftime('%Y-%m-%dT%H:%M:%f000Z', 'now', ?1),
                         strftime('%Y-%m-%dT%H:%M:%f000Z', 'now', ?1, '+1 minute'), 60000,
                         ?2, ?2, 8000, 2, 'pcm16')",
                (&ago, format!("call-{days_ago}@example.com")),
            )?;
            tx.query_row(
                "SELECT directory, file_name FROM recordings WHERE id = last_insert_rowid()",
                [],
                |r| Ok((r.get(0)?, r.get(1)?)),
            )
        })
        .unwrap();
    let dir = appliance.data_dir().join("recordings").join(directory);
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join(file_name);
    std::fs::write(&path, b"RIFF, as far as this test cares").unwrap();
    path
}

/// OpenSSH's `sftp` as `user` with `password` (through `SSH_ASKPASS`), listing `/`.
fn sftp_ls(appliance: &Appliance, addr: std::net::SocketAddr, user: &str, password: &str) -> bool {
    use std::io::Write;
    use std::os::unix::fs::PermissionsExt;
    let askpass = appliance.path().join("askpass");
    std::fs::write(&askpass, format!("#!/bin/sh\necho '{password}'\n")).unwrap();
    std::fs::set_permissions(&askpass, std::fs::Permissions::from_mode(0o755)).unwrap();
    let known_hosts = appliance.path().join("known_hosts");
    let mut child = peer("sftp", "openssh-client")
        .args(["-o", "StrictHostKeyChecking=accept-new", "-o"])
        .arg(format!("UserKnownHostsFile={}", known_hosts.display()))
        .args([
            "-o",
            "GlobalKnownHostsFile=/dev/null",
            "-o",
            "LogLevel=ERROR",
        ])
        .args([
            "-o",
            "PubkeyAuthentication=no",
            "-o",
            "NumberOfPasswordPrompts=1",
        ])
        .args([
            "-o",
            "PreferredAuthentications=password",
            "-o",
            "ConnectTimeout=20",
        ])
        .arg("-P")
        .arg(addr.port().to_string())
        .arg(format!("{user}@127.0.0.1"))
        .env("SSH_ASKPASS", &askpass)
        .env("SSH_ASKPASS_REQUIRE", "force")
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let mut stdin = child.stdin.take().unwrap();
    stdin.write_all(b"ls /\nbye\n").unwrap();
    drop(stdin);
    let out = child.wait_with_output().unwrap();
    eprintln!(
        "sftp as {user}: {}\n{}",
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
    out.status.success()
}

#[test]
fn settings_saved_in_the_web_ui_take_effect_without_a_restart() {
    const TENANT_PASSWORD: &str = "the tenant sftp password";
    let appliance = appliance();
    appliance.set_tenant_sftp_password(TENANT_PASSWORD);
    let expired = old_recording(&appliance, 40);
    let recent = old_recording(&appliance, 5);
    let mut daemon = appliance.start(None, None);
    let sftp = daemon.sftp_addr();
    let root = Client::new(&mut daemon, &appliance, "root");
    let csrf = root.signed_in("root");
    // The file keeps recordings for ever: retention at start-up removes nothing.
    assert!(sftp_ls(&appliance, sftp, "AcmeJets", TENANT_PASSWORD));
    assert!(expired.exists());

    let saved = root.json(
        "PUT",
        "/api/v1/settings",
        Some(&csrf),
        r#"{"storage.retention_days": "30", "tenant.name": "AcmeAir"}"#,
    );
    assert_eq!(saved.status, 204, "{}", saved.body);

    // The index service sees the new retention within seconds, not at the next midnight.
    let started = Instant::now();
    tapline_tests::eventually(
        Duration::from_secs(30),
        "the expired recording removed",
        || (!expired.exists()).then_some(()),
    );
    eprintln!("retention applied {:?} after the save", started.elapsed());
    assert!(recent.exists(), "within 30 days: kept");
    let removed = audit_rows(&appliance, "Recordings");
    assert!(
        removed.iter().any(|r| r[2] == "Removed by retention"),
        "{removed:?}"
    );

    // The tenant login follows the tenant name in force.
    assert!(sftp_ls(&appliance, sftp, "acmeair", TENANT_PASSWORD));
    assert!(!sftp_ls(&appliance, sftp, "AcmeJets", TENANT_PASSWORD));
    let logins: Vec<String> = audit_rows(&appliance, "SFTP")
        .into_iter()
        .filter(|r| r[2] == "Login")
        .map(|r| r[0].clone())
        .collect();
    assert_eq!(logins, ["AcmeJets", "AcmeAir"]);
    // An account may not take the tenant's name, nor the tenant an account's.
    let clash = root.json(
        "POST",
        "/api/v1/accounts",
        Some(&csrf),
        r#"{"name": "acmeair", "role": "Auditor"}"#,
    );
    assert_eq!(clash.status, 400, "{}", clash.body);
    let clash = root.json(
        "PUT",
        "/api/v1/settings",
        Some(&csrf),
        r#"{"tenant.name": "sam"}"#,
    );
    assert_eq!(clash.status, 400, "{}", clash.body);
}

#[test]
fn custom_roles_and_disabled_accounts_hold_for_sftp_too() {
    let appliance = appliance();
    let mut daemon = appliance.start(None, None);
    let sftp = daemon.sftp_addr();
    let root = Client::new(&mut daemon, &appliance, "root");
    let csrf = root.signed_in("root");
    let role = root.json(
        "PUT",
        "/api/v1/roles/Exporters",
        Some(&csrf),
        r#"{"permissions": ["SFTP"]}"#,
    );
    assert_eq!(role.status, 204, "{}", role.body);
    let body = serde_json::json!({ "name": "erin", "role": "exporters", "password": PASSWORD });
    let created = root.json("POST", "/api/v1/accounts", Some(&csrf), &body.to_string());
    assert_eq!(created.status, 201, "{}", created.body);
    assert!(sftp_ls(&appliance, sftp, "erin", PASSWORD), "custom role");
    assert!(!sftp_ls(&appliance, sftp, "sam", PASSWORD), "no SFTP");

    let disabled = root.json(
        "PUT",
        "/api/v1/accounts/erin/disabled",
        Some(&csrf),
        r#"{"disabled": true}"#,
    );
    assert_eq!(disabled.status, 204, "{}", disabled.body);
    assert!(!sftp_ls(&appliance, sftp, "erin", PASSWORD), "disabled");
    let erin = Client::new(&mut daemon, &appliance, "erin");
    assert_eq!(erin.sign_in("erin", PASSWORD).status, 401, "nor on the web");
    let failed: Vec<String> = audit_rows(&appliance, "SFTP")
        .into_iter()
        .filter(|r| r[0] == "erin" && r[2].starts_with("Login"))
        .map(|r| r[2].clone())
        .collect();
    assert_eq!(failed, ["Login", "Login failed"]);
}

#[test]
fn an_accounts_role_changes_and_its_sessions_follow_at_the_next_request() {
    let appliance = appliance();
    let mut daemon = appliance.start(None, None);
    let root = Client::new(&mut daemon, &appliance, "root");
    let csrf = root.signed_in("root");
    let sam = Client::new(&mut daemon, &appliance, "sam");
    sam.signed_in("sam");
    assert_eq!(sam.curl("GET", "/api/v1/accounts", &[]).status, 403);

    let changed = root.json(
        "PUT",
        "/api/v1/accounts/sam/role",
        Some(&csrf),
        r#"{"role": "administrator"}"#,
    );
    assert_eq!(changed.status, 200, "{}", changed.body);
    assert!(
        changed.body.contains(r#""role":"Administrator""#),
        "{}",
        changed.body
    );
    // The same session, now answered with the new role's permissions.
    assert_eq!(sam.curl("GET", "/api/v1/accounts", &[]).status, 200);

    // By the page's form, back to Auditor: the page says so and the session follows.
    let page = root.curl(
        "POST",
        "/accounts/sam/role",
        &["--data", &format!("csrf_token={csrf}&role=Auditor")],
    );
    assert_eq!(page.status, 200, "{}", page.body);
    assert!(
        page.body.contains("sam now has the role Auditor"),
        "{}",
        page.body
    );
    assert_eq!(sam.curl("GET", "/api/v1/accounts", &[]).status, 403);
    assert_eq!(sam.curl("GET", "/api/v1/audit-log", &[]).status, 200);

    for (path, body, status) in [
        ("/api/v1/accounts/sam/role", r#"{"role": "Pilot"}"#, 400),
        ("/api/v1/accounts/nobody/role", r#"{"role": "Agent"}"#, 404),
        ("/api/v1/accounts/root/role", r#"{"role": "Agent"}"#, 400),
    ] {
        let refused = root.json("PUT", path, Some(&csrf), body);
        assert_eq!(refused.status, status, "{path}: {}", refused.body);
    }
    let rows: Vec<[String; 5]> = audit_rows(&appliance, "Account")
        .into_iter()
        .filter(|r| r[2] == "Role changed")
        .collect();
    assert_eq!(rows.len(), 2, "{rows:?}");
    assert!(rows.iter().all(|r| r[0] == "root" && r[3] == "sam"));
    assert_eq!(rows[1][4], "/accounts/sam/role");
}

#[test]
fn the_home_page_streams_live_state() {
    let appliance = appliance();
    let mut daemon = appliance.start(None, None);
    let root = Client::new(&mut daemon, &appliance, "root");
    root.signed_in("root");
    let home = root.curl("GET", "/", &[]);
    assert_eq!(home.status, 200);
    assert!(
        home.body.contains(r#"data-source="/live""#),
        "{}",
        home.body
    );
    // Every signed-in page loads the script, under its content hash, since htmx swaps pages
    // in without running their scripts.
    let script_src = |body: &str| {
        body.split(r#"<script src=""#)
            .filter_map(|rest| rest.split('"').next())
            .find(|src| src.starts_with("/assets/live-") && src.ends_with(".js"))
            .map(str::to_owned)
    };
    let src = script_src(&home.body).expect("the home page loads the live script");
    let password = root.curl("GET", "/account/password", &[]);
    assert_eq!(script_src(&password.body).as_deref(), Some(src.as_str()));
    let boosted = root.curl("GET", "/", &["--header", "HX-Boosted: true"]);
    assert_eq!(boosted.status, 200, "a boosted visit gets the page itself");
    assert!(boosted.body.contains(r#"data-source="/live""#));
    let script = root.curl("GET", &src, &[]);
    assert_eq!(script.status, 200);
    assert!(
        script
            .header("content-type")
            .unwrap()
            .starts_with("text/javascript")
    );
    assert!(
        script
            .header("cache-control")
            .unwrap()
            .contains("immutable")
    );
    assert!(script.body.contains("new EventSource"));

    // curl reads the stream for a while: the first event at once, then one every few seconds.
    let headers = appliance.path().join("live.headers");
    let out = peer("curl", "curl")
        .args(["--silent", "--no-buffer", "--max-time", "7", "--cacert"])
        .arg(appliance.cert())
        .arg("--cookie")
        .arg(&root.jar)
        .arg("--dump-header")
        .arg(&headers)
        .arg(format!("{}/live", root.base))
        .output()
        .unwrap();
    assert_eq!(
        out.status.code(),
        Some(28),
        "cut off by --max-time, not ended"
    );
    let headers = std::fs::read_to_string(headers).unwrap();
    assert!(
        headers
            .to_ascii_lowercase()
            .contains("content-type: text/event-stream"),
        "{headers}"
    );
    let text = String::from_utf8(out.stdout).unwrap();
    assert!(text.starts_with("retry: 3000\n\n"), "{text}");
    let events: Vec<serde_json::Value> = text
        .split("\n\n")
        .filter_map(|event| event.strip_prefix("event: live\ndata: "))
        .map(|data| serde_json::from_str(data).unwrap())
        .collect();
    assert!((2..=4).contains(&events.len()), "{text}");
    let first = &events[0];
    assert_eq!(first["recording"], 0);
    let services = first["services"].as_array().unwrap();
    let web = services.iter().find(|s| s["name"] == "web").unwrap();
    assert_eq!(web["state"], "running");
    assert!(services.len() >= 3, "{services:?}");
    assert_ne!(events[0]["at"], events[1]["at"], "fresh each time");

    // Nobody signed in gets no stream.
    let anonymous = Client::new(&mut daemon, &appliance, "anonymous");
    assert_eq!(anonymous.curl("GET", "/live", &[]).status, 303);
}

#[test]
fn the_import_form_takes_a_file_posted_as_multipart() {
    let appliance = appliance();
    let mut daemon = appliance.start(None, None);
    let root = Client::new(&mut daemon, &appliance, "root");
    let csrf = root.signed_in("root");
    let header = "agent_id,name,email,extension,daa_number,group,team,recording_percentage,\
                  account,device_kind,device_value,recording_group,recording_type";
    let good = appliance.path().join("agents from HR.csv");
    let mut bytes = b"\xEF\xBB\xBF".to_vec();
    bytes.extend_from_slice(
        format!("{header}\r\n4001,Jürgen Roß,,4001,,East,,,,extension,4001,,\r\n").as_bytes(),
    );
    std::fs::write(&good, &bytes).unwrap();
    let file_field = |path: &Path| format!("file=@{};type=text/csv", path.display());
    let token_field = |token: &str| format!("csrf_token={token}");

    // Without the token, or with a wrong one, nothing is read past the form's first field.
    for token in [None, Some("wrong")] {
        let mut extra = Vec::new();
        let token = token.map(token_field);
        if let Some(token) = &token {
            extra.extend(["--form", token.as_str()]);
        }
        let field = file_field(&good);
        extra.extend(["--form", field.as_str()]);
        let refused = root.curl("POST", "/directory/import", &extra);
        assert_eq!(refused.status, 403, "{}", refused.body);
        assert!(refused.body.contains("missing or wrong CSRF token"));
    }
    assert!(audit_rows(&appliance, "Agent directory").is_empty());

    // The token first, then the file: imported, and audited under the file's name.
    let (token, field) = (token_field(&csrf), file_field(&good));
    let page = root.curl(
        "POST",
        "/directory/import",
        &["--form", &token, "--form", &field],
    );
    assert_eq!(page.status, 200, "{}", page.body);
    assert!(
        page.body.contains("Imported 1 line(s): 1 agent(s) created"),
        "{}",
        page.body
    );
    let rows = audit_rows(&appliance, "Agent directory");
    assert_eq!(rows.len(), 1, "{rows:?}");
    assert_eq!(rows[0][2], "Imported");
    assert_eq!(rows[0][3], "agents from HR.csv");
    let name: String = appliance
        .store()
        .read(|c| {
            c.query_row("SELECT name FROM agents WHERE agent_id = '4001'", [], |r| {
                r.get(0)
            })
        })
        .unwrap();
    assert_eq!(name, "Jürgen Roß");

    // Over 8 MiB: 413, with the reason on the page, and nothing imported.
    let big = appliance.path().join("big.csv");
    let mut padded = bytes.clone();
    padded.resize((8 << 20) + 1, b' ');
    std::fs::write(&big, &padded).unwrap();
    let field = file_field(&big);
    let page = root.curl(
        "POST",
        "/directory/import",
        &["--form", &token, "--form", &field],
    );
    assert_eq!(page.status, 413, "{}", page.body);
    assert!(
        page.body
            .contains("the file is larger than 8 MiB: nothing was imported"),
        "{}",
        page.body
    );
    std::fs::remove_file(&big).unwrap();
    assert_eq!(audit_rows(&appliance, "Agent directory").len(), 1);
}
