//! The web UI in headless Chromium against `tapline run`: signing in and out (the session
//! cookie's flags as the browser holds them), a wrong password, pages a role may not open,
//! a supervisor's scope hiding and refusing another group's agent, searching, playing and
//! downloading a recording made by the real recorder from the bundled capture, and the
//! activity audit log's filters, "Show Params", copy button and CSV export, the home page's
//! live state after htmx swapped it in, and the agent directory's import of a file chosen in
//! the file input.
//!
//! Every page visited is saved as a screenshot under `target/test-artifacts/<test>/`.

// The functions below fail the test on anything unexpected, as its body does.
#![allow(clippy::unwrap_used)]

use std::path::Path;
use std::process::Command;
use std::time::Duration;

use rustix::process::Signal;
use serde_json::{Value, json};
use tapline_tests::browser::Browser;
use tapline_tests::{Appliance, recording_rows, sha256sum, tapline};

const PASSWORD: &str = "a long enough password";
/// The name the session cookie must have: `__Host-` makes the browser insist on Secure,
/// `Path=/` and no `Domain`.
const SESSION_COOKIE: &str = "__Host-tapline_session";
const CALLS_PCAP: &str = concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/../provisioning/demo/calls.pcap"
);
/// The second call of the bundled capture: its Call-ID, the number its agent dialled and its
/// length from answer to BYE (see provisioning/demo/README.md).
const CALL_2: (&str, &str, f64) = ("tapline-demo-2@198.51.100.20", "+1 555 0102", 8.3);
const CALL_1_ID: &str = "tapline-demo-1@198.51.100.20";
const CALL_3_ID: &str = "tapline-demo-3@198.51.100.20";
/// How long a page, a search or a download may take on a loaded build machine.
const WAIT: Duration = Duration::from_secs(20);

#[test]
fn sign_in_wrong_password_sign_out_and_pages_a_role_may_not_open() {
    let appliance = Appliance::new("");
    appliance.add_account("root", "Administrator", PASSWORD);
    appliance.add_account("audrey", "Auditor", PASSWORD);
    appliance.add_account("alex", "Agent", PASSWORD);
    let mut daemon = appliance.start(None, None);
    let web = daemon.web_url();
    let mut browser =
        Browser::options("sign_in_wrong_password_sign_out_and_pages_a_role_may_not_open")
            .trust_certificate(&appliance.cert())
            .wait(WAIT)
            .launch();

    // Anonymous: any page leads to the sign-in form.
    browser.goto(&format!("{web}accounts"));
    assert_eq!(browser.url(), format!("{web}signin?next=%2Faccounts"));
    browser.screenshot("signin");

    // A wrong password: the form again, with the error, and no session.
    browser.sign_in(&format!("{web}signin"), "root", "not the password");
    assert_eq!(browser.url(), format!("{web}signin"));
    let refusal = browser.text("p.error[role=alert]");
    assert!(
        refusal.starts_with("Wrong name or password"),
        "the sign-in form shows why, not {refusal:?}"
    );
    assert_eq!(
        browser.cookie(SESSION_COOKIE),
        None,
        "no session after a refusal"
    );
    browser.screenshot("signin-wrong-password");

    // The right password: the start page, and a session cookie flagged as it must be.
    sign_in(&mut browser, &web, "root");
    assert_eq!(browser.text("main h1"), "Welcome, root");
    let cookie = browser
        .cookie(SESSION_COOKIE)
        .expect("a session cookie after signing in");
    assert!(cookie.secure, "Secure: {cookie:?}");
    assert!(cookie.http_only, "HttpOnly: {cookie:?}");
    assert_eq!(cookie.same_site.as_deref(), Some("Strict"), "{cookie:?}");
    assert_eq!(cookie.path, "/", "{cookie:?}");
    assert_eq!(
        browser.eval("document.cookie"),
        json!(""),
        "scripts cannot read the session"
    );
    let admin_nav = navigation(&mut browser);
    for page in ["Home", "Accounts", "Roles", "Settings"] {
        assert!(
            admin_nav.iter().any(|l| l == page),
            "{page} in {admin_nav:?}"
        );
    }
    browser.screenshot("home-administrator");
    for (path, heading) in [
        ("accounts", "Accounts"),
        ("roles", "Roles"),
        ("settings", "Settings"),
    ] {
        browser.goto(&format!("{web}{path}"));
        assert_eq!(status_of(&mut browser, &format!("/{path}")), 200);
        assert!(
            browser.text("main h1").starts_with(heading),
            "the {path} page opens for an administrator"
        );
        browser.screenshot(&format!("{path}-administrator"));
    }

    // Sign out: back at the sign-in form, the cookie gone, and pages closed again.
    browser.goto(&web);
    browser.click("header form[action='/signout'] button");
    wait_for_path(&mut browser, "/signin");
    browser.wait_for("input[name=username]", WAIT);
    assert_eq!(
        browser.cookie(SESSION_COOKIE),
        None,
        "the cookie is cleared"
    );
    browser.screenshot("signed-out");
    browser.goto(&web);
    assert_eq!(browser.url(), format!("{web}signin?next=%2F"));

    // An auditor and an agent: the administration pages are refused with 403 and are not
    // in their navigation; what their role holds opens.
    for (name, role_pages, refused) in [
        (
            "audrey",
            &["Home", "Whisper/Barge/Listen"][..],
            &["accounts", "settings", "roles"][..],
        ),
        (
            "alex",
            &["Home"][..],
            &["accounts", "settings", "whisper-log"][..],
        ),
    ] {
        sign_in(&mut browser, &web, name);
        let nav = navigation(&mut browser);
        for page in role_pages {
            assert!(nav.iter().any(|l| l == page), "{name}: {page} in {nav:?}");
        }
        for page in ["Accounts", "Roles", "Settings"] {
            assert!(
                !nav.iter().any(|l| l == page),
                "{name}: no {page} in {nav:?}"
            );
        }
        if name == "alex" {
            assert_eq!(nav, ["Home"], "an agent's role holds no page");
        }
        browser.screenshot(&format!("home-{name}"));
        for path in refused {
            assert_eq!(
                status_of(&mut browser, &format!("/{path}")),
                403,
                "{name} /{path}"
            );
            browser.goto(&format!("{web}{path}"));
            assert_eq!(browser.text("main h1"), "403 Forbidden", "{name} /{path}");
            assert_eq!(browser.text("p.error"), "your role does not allow this");
            browser.screenshot(&format!("{path}-403-{name}"));
        }
        sign_out(&mut browser, &web);
    }
    drop(browser);
    daemon.stop(Signal::TERM);
}

#[test]
fn scope_search_play_download_and_the_activity_audit_log() {
    let appliance = Appliance::new("");
    appliance.add_account("root", "Administrator", PASSWORD);
    appliance.add_account("sam", "Supervisor", PASSWORD);
    appliance.add_account("audrey", "Auditor", PASSWORD);
    directory(&appliance);
    record_bundled_calls(&appliance);
    let ids = recording_ids(&appliance);
    let mut daemon = appliance.start(None, None);
    let web = daemon.web_url();
    let downloads = tempfile::tempdir().unwrap();
    let mut browser = Browser::options("scope_search_play_download_and_the_activity_audit_log")
        .trust_certificate(&appliance.cert())
        .downloads(downloads.path())
        .wait(WAIT)
        .launch();
    browser.grant_permissions(&["clipboardReadWrite", "clipboardSanitizedWrite"]);

    // Scope: sam supervises the South group, where Omar is; Maria (calls 1 and 2) is North.
    sign_in(&mut browser, &web, "sam");
    browser.goto(&format!("{web}recordings"));
    let rows = result_rows(&mut browser);
    assert_eq!(
        rows.len(),
        1,
        "sam sees only Omar's call, not Maria's two: {rows:#?}"
    );
    assert_eq!(rows[0]["agent"], "Omar Haddad", "{rows:#?}");
    browser.screenshot("recordings-supervisor");
    assert_eq!(
        status_of(&mut browser, "/recordings?agent=1001"),
        403,
        "naming Maria in the search is refused"
    );
    browser.goto(&format!("{web}recordings?agent=1001"));
    assert_eq!(browser.text("main h1"), "403 Forbidden");
    assert_eq!(browser.text("p.error"), "that agent is not in your scope");
    browser.screenshot("recordings-agent-out-of-scope");
    let maria = ids[CALL_1_ID];
    for path in [
        format!("/recordings/{maria}"),
        format!("/recordings/{maria}/audio"),
        format!("/recordings/{maria}/download"),
        format!("/api/v1/recordings/{maria}"),
    ] {
        // Not found rather than forbidden: a call out of scope is not even said to exist.
        assert_eq!(status_of(&mut browser, &path), 404, "sam {path}");
    }
    browser.goto(&format!("{web}recordings/{maria}"));
    assert!(browser.eval("document.querySelector('audio') === null") == json!(true));
    browser.screenshot("recording-out-of-scope");
    let omar = ids[CALL_3_ID];
    assert_eq!(status_of(&mut browser, &format!("/recordings/{omar}")), 200);
    assert_eq!(
        status_of(&mut browser, "/audit-log"),
        403,
        "a supervisor may not read the activity log"
    );
    sign_out(&mut browser, &web);

    // Search and play, as an administrator, who sees every call.
    sign_in(&mut browser, &web, "root");
    browser.goto(&format!("{web}recordings"));
    assert_eq!(result_rows(&mut browser).len(), 3, "every call");
    let (call_id, dialled, seconds) = CALL_2;
    browser.fill("form.filters input[name=customer]", dialled);
    browser.click("form.filters button[type=submit]");
    wait_for_path(&mut browser, "/recordings?");
    browser.wait_until(
        "document.querySelectorAll('#results tbody tr').length === 1",
        "the search to leave one call",
        WAIT,
    );
    let rows = result_rows(&mut browser);
    assert_eq!(rows[0]["agent"], "Maria Lopez", "{rows:#?}");
    assert_eq!(rows[0]["customer"], "+15550102", "{rows:#?}");
    assert_eq!(
        browser.eval("new URL(location.href).searchParams.get('customer')"),
        json!(dialled),
        "the search is in the address bar, to come back to"
    );
    browser.screenshot("recordings-search");
    let id = ids[call_id];
    browser.click(&format!("#results a[href='/recordings/{id}']"));
    wait_for_path(&mut browser, &format!("/recordings/{id}"));
    browser.wait_for("audio", WAIT);
    browser.screenshot("recording");
    let row = recording_rows(&appliance.data_dir())
        .into_iter()
        .find(|r| r.sip_call_id == call_id)
        .unwrap();
    let row_sha256 = row.sha256.clone().unwrap();
    assert_eq!(
        field(&mut browser, "SHA-256"),
        row_sha256,
        "the page shows the row's hash"
    );
    assert_eq!(field(&mut browser, "SIP Call-ID"), call_id);

    browser.eval("document.querySelector('audio').play()");
    let played = browser.wait_until(
        "(() => { const a = document.querySelector('audio');
                  return a.currentTime > 1.0 && !a.paused && a.error === null
                      && {currentTime: a.currentTime, duration: a.duration}; })()",
        "the recording to play for a second",
        WAIT,
    );
    let duration = played["duration"].as_f64().unwrap();
    assert!(
        (duration - seconds).abs() < 0.1,
        "the browser reads {duration} s, the call lasted {seconds} s"
    );
    let media_error = browser.eval("document.querySelector('audio').error");
    assert_eq!(media_error, Value::Null, "no media error");
    browser.screenshot("recording-playing");
    browser.eval("document.querySelector('audio').pause()");

    browser.click(&format!("a[href='/recordings/{id}/download']"));
    let file = browser.wait_for_download(WAIT);
    assert_eq!(
        file.file_name().unwrap(),
        row.path.file_name().unwrap(),
        "saved under the recording's own name"
    );
    assert_eq!(
        sha256sum(&file),
        row_sha256,
        "the downloaded bytes are the recording"
    );
    let object = object_of(&row.path);
    let recorded = audit_rows(&appliance, "root", "Recordings");
    let subs: Vec<&str> = recorded.iter().map(|r| r.sub_event.as_str()).collect();
    assert_eq!(subs, ["Play", "Download"], "one row each: {recorded:#?}");
    for audited in &recorded {
        assert_eq!(audited.event_object, object);
        let params: Value = serde_json::from_str(&audited.params).unwrap();
        assert_eq!(params["id"], json!(id), "{params}");
        assert_eq!(params["bytes"], json!(row.size.unwrap()), "{params}");
    }
    sign_out(&mut browser, &web);

    // The activity audit log, as an auditor: root's recording events only.
    sign_in(&mut browser, &web, "audrey");
    browser.goto(&format!("{web}audit-log"));
    browser.screenshot("audit-log");
    browser.fill("form.filters input[name=users]", "root");
    browser.fill("form.filters select[name=event]", "Recordings");
    browser.click("form.filters button[type=submit]");
    wait_for_path(&mut browser, "/audit-log?");
    browser.wait_until(
        "document.querySelectorAll('#results tbody tr').length === 2",
        "the filter to leave root's two recording events",
        WAIT,
    );
    let url = browser.url();
    assert!(
        url.contains("users=root") && url.contains("event=Recordings"),
        "{url}"
    );
    let shown = browser.eval(
        "[...document.querySelectorAll('#results tbody tr')].map(tr =>
            [...tr.cells].slice(0, 8).map(td => td.innerText.trim()))",
    );
    // Newest first.
    for (shown, audited) in shown.as_array().unwrap().iter().zip(recorded.iter().rev()) {
        assert_eq!(
            shown,
            &json!([
                audited.created,
                "root",
                "127.0.0.1",
                "Recordings",
                audited.sub_event,
                object,
                "",
                audited.request_uri
            ])
        );
    }
    browser.screenshot("audit-log-filtered");

    // Show Params, then copy them.
    let first = "#results tbody tr:first-child";
    browser.click(&format!("{first} summary"));
    browser.wait_for(&format!("{first} pre"), WAIT);
    let params_text = browser.text(&format!("{first} pre"));
    let params: Value = serde_json::from_str(&params_text)
        .unwrap_or_else(|e| panic!("Show Params shows JSON ({e}): {params_text}"));
    let newest = recorded.last().unwrap();
    assert_eq!(
        params,
        serde_json::from_str::<Value>(&newest.params).unwrap()
    );
    assert_eq!(params["id"], json!(id));
    browser.screenshot("audit-log-params");
    browser.click(&format!("{first} button[data-copy]"));
    browser.wait_until(
        &format!("document.querySelector('{first} button[data-copy]').textContent === 'Copied'"),
        "the copy button to say it copied",
        WAIT,
    );
    let copied = browser.eval("navigator.clipboard.readText()");
    assert_eq!(copied, json!(params_text), "the clipboard holds the params");
    browser.screenshot("audit-log-copied");

    // The CSV export: seed 004's columns in order, then the chain, and the filtered rows only.
    browser.click("#results a[href^='/audit-log/export.csv']");
    let csv = browser.wait_for_download(WAIT);
    assert_eq!(csv.file_name().unwrap(), "activity-audit-log.csv");
    let records = read_csv(&csv);
    assert_eq!(
        records[0],
        [
            "Created (UTC)",
            "Username",
            "User IP",
            "Event",
            "Sub Event",
            "Event Object",
            "Comments",
            "Request URI",
            "Params",
            "Previous Row Hash",
            "Row Hash",
        ]
    );
    assert_eq!(
        records.len(),
        1 + recorded.len(),
        "the filtered rows only: {records:#?}"
    );
    for (record, audited) in records[1..].iter().zip(recorded.iter().rev()) {
        assert_eq!(
            record,
            &[
                audited.created.clone(),
                "root".to_owned(),
                "127.0.0.1".to_owned(),
                "Recordings".to_owned(),
                audited.sub_event.clone(),
                object.clone(),
                String::new(),
                audited.request_uri.clone(),
                audited.params.clone(),
                audited.prev_hash.clone(),
                audited.row_hash.clone(),
            ]
        );
        assert_eq!(audited.row_hash.len(), 64);
    }
    let exported = audit_rows(&appliance, "audrey", "Activity audit log");
    assert_eq!(
        exported.last().map(|r| r.sub_event.as_str()),
        Some("Exported"),
        "the export is itself audited: {exported:#?}"
    );
    drop(browser);
    daemon.stop(Signal::TERM);
}

#[test]
fn live_state_after_a_boosted_visit_and_an_import_from_a_chosen_file() {
    let appliance = Appliance::new("");
    appliance.add_account("root", "Administrator", PASSWORD);
    let mut daemon = appliance.start(None, None);
    let web = daemon.web_url();
    let files = tempfile::tempdir().unwrap();
    let mut browser =
        Browser::options("live_state_after_a_boosted_visit_and_an_import_from_a_chosen_file")
            .trust_certificate(&appliance.cert())
            .wait(WAIT)
            .launch();
    sign_in(&mut browser, &web, "root");

    // The home page reached by a boosted link: htmx swaps it into the same document, and the
    // live state still updates.
    browser.goto(&format!("{web}directory"));
    browser.eval("window.__taplineSameDocument = true");
    browser.click("header nav a[href='/']");
    browser.wait_for("#live-updated", WAIT);
    wait_for_path(&mut browser, "/");
    assert_eq!(
        browser.eval("window.__taplineSameDocument === true"),
        json!(true),
        "htmx swapped the page in; no full page load"
    );
    let rendered = browser.text("#live-updated");
    browser.wait_until(
        &format!(
            "document.getElementById('live-updated').textContent !== {}",
            json!(rendered)
        ),
        "a live event to update the swapped-in home page",
        WAIT,
    );
    browser.screenshot("home-live-after-boosted-visit");

    // The import form, with a file chosen in its file input: a spreadsheet's "CSV UTF-8"
    // export, byte order mark and all.
    browser.click("header nav a[href='/directory']");
    wait_for_path(&mut browser, "/directory");
    browser.click("main a[href='/directory/import']");
    wait_for_path(&mut browser, "/directory/import");
    let header = tapline_directory_header(&mut browser);
    let good = files.path().join("agents-from-hr.csv");
    let mut bytes = b"\xEF\xBB\xBF".to_vec();
    bytes.extend_from_slice(
        format!(
            "{header}\r\n3001,Zoë Ødegaard,,3001,,North,,,,extension,3001,,\r\n\
             3002,Ray Chen,,3002,,North,,,,extension,3002,,\r\n"
        )
        .as_bytes(),
    );
    std::fs::write(&good, &bytes).unwrap();
    browser.set_files("form#import input[type=file]", &[&good]);
    browser.screenshot("import-file-chosen");
    browser.click("form#import button[type=submit]");
    browser.wait_for("#import-summary", WAIT);
    let notice = browser.text("p.notice");
    assert!(
        notice.starts_with("Imported 2 line(s): 2 agent(s) created"),
        "{notice}"
    );
    browser.screenshot("import-done");
    let agents: Vec<String> = appliance
        .store()
        .read(|conn| {
            conn.prepare("SELECT name FROM agents ORDER BY agent_id")?
                .query_map([], |r| r.get(0))?
                .collect::<Result<_, _>>()
        })
        .unwrap();
    assert_eq!(agents, ["Zoë Ødegaard", "Ray Chen"]);
    let imported = audit_rows(&appliance, "root", "Agent directory");
    assert_eq!(imported.len(), 1, "{imported:#?}");
    assert_eq!(imported[0].sub_event, "Imported");
    assert_eq!(imported[0].event_object, "agents-from-hr.csv");

    // The same file saved as Windows-1252: refused whole, at the line and byte that are not
    // UTF-8, and the page says so.
    let latin = files.path().join("agents-latin1.csv");
    let text = String::from_utf8(bytes[3..].to_vec())
        .unwrap()
        .replace("Zoë Ødegaard", "Zo\u{0} Odegaard");
    let mut latin_bytes = text.into_bytes();
    let offset = latin_bytes.iter().position(|&b| b == 0).unwrap();
    latin_bytes[offset] = 0xEB;
    std::fs::write(&latin, &latin_bytes).unwrap();
    browser.set_files("form#import input[type=file]", &[&latin]);
    browser.click("form#import button[type=submit]");
    browser.wait_for("#import-problems", WAIT);
    assert_eq!(
        browser.text("p.error[role=alert]"),
        "1 problem(s) in the file: nothing was imported."
    );
    let problem = browser.eval(
        "[...document.querySelectorAll('#import-problems tbody td')].map(td => td.innerText)",
    );
    assert_eq!(problem[0], json!("2"), "{problem}");
    assert_eq!(problem[2], json!("0xEB"), "{problem}");
    let reason = problem[3].as_str().unwrap();
    assert!(
        reason.contains(&format!("byte offset {offset}")),
        "{reason}"
    );
    browser.screenshot("import-not-utf8");
    assert_eq!(
        audit_rows(&appliance, "root", "Agent directory").len(),
        1,
        "the refused file changed nothing"
    );
    drop(browser);
    daemon.stop(Signal::TERM);
}

/// The header the import page asks for, as it shows it.
fn tapline_directory_header(browser: &mut Browser) -> String {
    let header = browser.text("main p code");
    assert!(header.starts_with("agent_id,name,"), "{header}");
    header
}

/// Two groups and an agent in each, and sam's scope, as an administrator would set them up
/// before the calls: Maria (extension 1001, North) is the phone that placed every call, Omar
/// (South) has the number call 3 dialled as his extension, which makes call 3 his.
fn directory(appliance: &Appliance) {
    let store = appliance.store();
    store
        .write(|tx| {
            tx.execute_batch(
                "INSERT INTO agent_groups (name, created_at, updated_at)
                     VALUES ('North', '2026-01-05T09:00:00Z', '2026-01-05T09:00:00Z'),
                            ('South', '2026-01-05T09:00:00Z', '2026-01-05T09:00:00Z');
                 INSERT INTO agents (agent_id, name, extension, group_id, created_at, updated_at)
                     VALUES ('1001', 'Maria Lopez', '1001',
                             (SELECT id FROM agent_groups WHERE name = 'North'),
                             '2026-01-05T09:00:00Z', '2026-01-05T09:00:00Z'),
                            ('2002', 'Omar Haddad', '+15550103',
                             (SELECT id FROM agent_groups WHERE name = 'South'),
                             '2026-01-05T09:00:00Z', '2026-01-05T09:00:00Z');
                 INSERT INTO scope_groups (account_id, group_id)
                     VALUES ((SELECT id FROM accounts WHERE name = 'sam'),
                             (SELECT id FROM agent_groups WHERE name = 'South'));",
            )
        })
        .unwrap();
}

/// Records the bundled capture's three calls with `tapline record --pcap`, and checks that the
/// directory gave each its agent.
fn record_bundled_calls(appliance: &Appliance) {
    let out = tapline(&[
        "record",
        "--pcap",
        CALLS_PCAP,
        "--config",
        appliance.config.to_str().unwrap(),
    ]);
    assert!(
        out.status.success(),
        "tapline record: {}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    let agents: Vec<(String, Option<String>)> = appliance
        .store()
        .read(|conn| {
            conn.prepare("SELECT sip_call_id, agent_id FROM recordings ORDER BY sip_call_id")?
                .query_map([], |r| Ok((r.get(0)?, r.get(1)?)))?
                .collect::<Result<_, _>>()
        })
        .unwrap();
    let expected = [(CALL_1_ID, "1001"), (CALL_2.0, "1001"), (CALL_3_ID, "2002")]
        .map(|(call, agent)| (call.to_owned(), Some(agent.to_owned())));
    assert_eq!(agents, expected, "the recorder attributes each call");
}

/// Each recording's row id, by SIP Call-ID.
fn recording_ids(appliance: &Appliance) -> std::collections::HashMap<String, i64> {
    appliance
        .store()
        .read(|conn| {
            conn.prepare("SELECT sip_call_id, id FROM recordings")?
                .query_map([], |r| Ok((r.get(0)?, r.get(1)?)))?
                .collect::<Result<_, _>>()
        })
        .unwrap()
}

/// The audit log's name for a recording: `<day directory>/<file>`.
fn object_of(path: &Path) -> String {
    let directory = path
        .parent()
        .unwrap()
        .file_name()
        .unwrap()
        .to_str()
        .unwrap();
    let file = path.file_name().unwrap().to_str().unwrap();
    format!("{directory}/{file}")
}

/// An audit row as the daemon stored it.
#[derive(Debug)]
struct AuditRow {
    created: String,
    sub_event: String,
    event_object: String,
    request_uri: String,
    params: String,
    prev_hash: String,
    row_hash: String,
}

/// `username`'s rows of `event`, oldest first.
fn audit_rows(appliance: &Appliance, username: &str, event: &str) -> Vec<AuditRow> {
    appliance
        .store()
        .read(|conn| {
            conn.prepare(
                "SELECT created_at, sub_event, event_object, request_uri, params, prev_hash,
                        row_hash
                 FROM audit_log WHERE username = ?1 AND event = ?2 ORDER BY id",
            )?
            .query_map([username, event], |r| {
                Ok(AuditRow {
                    created: r.get(0)?,
                    sub_event: r.get(1)?,
                    event_object: r.get(2)?,
                    request_uri: r.get(3)?,
                    params: r.get(4)?,
                    prev_hash: r.get(5)?,
                    row_hash: r.get(6)?,
                })
            })?
            .collect::<Result<_, _>>()
        })
        .unwrap()
}

/// A CSV file's records, as Python's `csv` module reads them.
fn read_csv(path: &Path) -> Vec<Vec<String>> {
    let out = Command::new("/usr/bin/python3")
        .args([
            "-c",
            "import csv, json, sys; print(json.dumps(list(csv.reader(open(sys.argv[1], newline='')))))",
        ])
        .arg(path)
        .output()
        .expect("/usr/bin/python3 is missing: apt-get install python3");
    assert!(
        out.status.success(),
        "Python could not read {}: {}",
        path.display(),
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).unwrap()
}

/// The labels of the page's main navigation.
fn navigation(browser: &mut Browser) -> Vec<String> {
    browser.wait_for("header nav", WAIT);
    serde_json::from_value(
        browser
            .eval("[...document.querySelectorAll('header nav a')].map(a => a.textContent.trim())"),
    )
    .unwrap()
}

/// The status the server answers `path` with, fetched from the page with its cookies.
fn status_of(browser: &mut Browser, path: &str) -> u16 {
    let status = browser.call(
        "async (path) => (await fetch(path, {redirect: 'manual'})).status",
        &[json!(path)],
    );
    u16::try_from(status.as_u64().unwrap()).unwrap()
}

/// Waits until the page's path and query start with `prefix` and no htmx request is in
/// flight: links and forms are boosted, so the document stays and its content is swapped.
fn wait_for_path(browser: &mut Browser, prefix: &str) {
    let condition = format!(
        "(location.pathname + location.search).startsWith({}) \
         && document.readyState === 'complete' \
         && document.querySelector('.htmx-request') === null",
        json!(prefix)
    );
    browser.wait_until(&condition, &format!("the page at {prefix}"), WAIT);
}

/// Signs `name` in through the form at `web`, and checks that it lands on the start page.
fn sign_in(browser: &mut Browser, web: &str, name: &str) {
    browser.sign_in(&format!("{web}signin"), name, PASSWORD);
    let url = browser.url();
    if url != web {
        let page = browser.text("body");
        panic!("signing {name} in should lead to the start page; it led to {url}:\n{page}");
    }
}

/// Signs out with the header's button, from the start page at `web`.
fn sign_out(browser: &mut Browser, web: &str) {
    browser.goto(web);
    browser.click("header form[action='/signout'] button");
    wait_for_path(browser, "/signin");
    browser.wait_for("input[name=username]", WAIT);
}

/// The search results' rows: agent and customer number, by the column headings.
fn result_rows(browser: &mut Browser) -> Vec<Value> {
    browser.wait_for("#results", WAIT);
    let rows = browser.eval(
        "(() => {
            const head = [...document.querySelectorAll('#results thead th')]
                .map(th => th.innerText.trim());
            const column = (tr, name) => tr.cells[head.indexOf(name)].innerText.trim();
            return [...document.querySelectorAll('#results tbody tr')].map(tr => ({
                agent: column(tr, 'Agent'),
                customer: column(tr, 'Customer number'),
            }));
        })()",
    );
    serde_json::from_value(rows).unwrap()
}

/// The value of the detail page's row labelled `label`.
fn field(browser: &mut Browser, label: &str) -> String {
    let value = browser.call(
        "(label) => {
            const th = [...document.querySelectorAll('main th[scope=row]')]
                .find(th => th.innerText.trim() === label);
            return th ? th.nextElementSibling.innerText.trim() : null;
        }",
        &[json!(label)],
    );
    value
        .as_str()
        .unwrap_or_else(|| panic!("no {label:?} on the recording's page"))
        .to_owned()
}
