//! The agent directory against `tapline run`, driven by curl: agents, devices, groups and
//! scope made through the JSON API; a CSV import with a bad line refused whole, its problems
//! named by line and column in the API and on the page; a good import; an export that imports
//! back unchanged; a supervisor who gets 403 on an agent outside their scope and never sees it
//! listed or exported; and the audit rows of every change.

// A test's helpers fail the test on anything unexpected, like its body does.
#![allow(clippy::unwrap_used)]

use std::path::PathBuf;

use tapline_tests::{Appliance, Daemon, peer};

const PASSWORD: &str = "a long enough password";

struct Answer {
    status: u16,
    body: String,
}

impl Answer {
    fn json(&self) -> serde_json::Value {
        serde_json::from_str(&self.body)
            .unwrap_or_else(|err| panic!("not JSON ({err}): {}", self.body))
    }
}

/// One signed-in browser's worth of curl: a cookie jar and the session's CSRF token.
struct Client {
    base: String,
    cacert: PathBuf,
    jar: PathBuf,
    csrf: String,
}

impl Client {
    fn signed_in(daemon: &mut Daemon, appliance: &Appliance, name: &str) -> Client {
        let mut client = Client {
            base: daemon.web_url().trim_end_matches('/').to_owned(),
            cacert: appliance.cert(),
            jar: appliance.path().join(format!("{name}.cookies")),
            csrf: String::new(),
        };
        let body = serde_json::json!({ "username": name, "password": PASSWORD }).to_string();
        let answer = client.send("POST", "/api/v1/session", "application/json", &body);
        assert_eq!(answer.status, 201, "{}", answer.body);
        client.csrf = answer.json()["csrf_token"].as_str().unwrap().to_owned();
        client
    }

    fn curl(&self, method: &str, path: &str, extra: &[&str]) -> Answer {
        let csrf = format!("x-csrf-token: {}", self.csrf);
        let out = peer("curl", "curl")
            .args(["--silent", "--show-error", "--max-time", "20", "--cacert"])
            .arg(&self.cacert)
            .arg("--cookie")
            .arg(&self.jar)
            .arg("--cookie-jar")
            .arg(&self.jar)
            .args(["--header", &csrf])
            .args(["--request", method, "--write-out", "\n%{http_code}"])
            .args(extra)
            .arg(format!("{}{path}", self.base))
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "curl {method} {path}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        let text = String::from_utf8(out.stdout).unwrap();
        let (body, code) = text.rsplit_once('\n').unwrap();
        Answer {
            status: code.parse().unwrap(),
            body: body.to_owned(),
        }
    }

    fn send(&self, method: &str, path: &str, content_type: &str, body: &str) -> Answer {
        let header = format!("content-type: {content_type}");
        self.curl(method, path, &["--header", &header, "--data-binary", body])
    }

    fn json(&self, method: &str, path: &str, body: serde_json::Value) -> Answer {
        self.send(method, path, "application/json", &body.to_string())
    }

    fn get(&self, path: &str) -> Answer {
        self.curl("GET", path, &[])
    }

    /// A plain HTML form post, the token in its field as a browser without JavaScript sends it.
    fn form(&self, path: &str, fields: &[(&str, &str)]) -> Answer {
        let mut args: Vec<String> = vec![
            "--header".into(),
            "x-csrf-token:".into(),
            "--data-urlencode".into(),
            format!("csrf_token={}", self.csrf),
        ];
        for (name, value) in fields {
            args.push("--data-urlencode".into());
            args.push(format!("{name}={value}"));
        }
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        self.curl("POST", path, &args)
    }
}

fn agent_ids(answer: &Answer) -> Vec<String> {
    assert_eq!(answer.status, 200, "{}", answer.body);
    answer
        .json()
        .as_array()
        .unwrap()
        .iter()
        .map(|a| a["agent_id"].as_str().unwrap().to_owned())
        .collect()
}

/// The directory's audit rows: sub event, object and username, oldest first.
fn directory_audit(appliance: &Appliance) -> Vec<(String, String, String)> {
    appliance
        .store()
        .read(|conn| {
            conn.prepare(
                "SELECT sub_event, event_object, username FROM audit_log
                 WHERE event = 'Agent directory' ORDER BY id",
            )?
            .query_map([], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)))?
            .collect::<Result<Vec<_>, _>>()
        })
        .unwrap()
}

const HEADER: &str = "agent_id,name,email,extension,daa_number,group,team,recording_percentage,\
                      account,device_kind,device_value,recording_group,recording_type";

#[test]
fn directory_api_import_export_scope_and_audit() {
    let appliance = Appliance::new("");
    appliance.add_account("root", "Administrator", PASSWORD);
    appliance.add_account("sam", "Supervisor", PASSWORD);
    let mut daemon = appliance.start(None, None);
    let root = Client::signed_in(&mut daemon, &appliance, "root");

    // Groups, teams, agents and devices through the API.
    for (kind, name) in [("group", "North"), ("group", "South"), ("team", "Blue")] {
        let answer = root.json(
            "POST",
            "/api/v1/directory/groupings",
            serde_json::json!({ "kind": kind, "name": name }),
        );
        assert_eq!(answer.status, 201, "{}", answer.body);
    }
    let answer = root.json(
        "POST",
        "/api/v1/directory/agents",
        serde_json::json!({ "agent_id": "ann", "name": "Ann Lee", "email": "ann@acme.test",
                            "extension": "201", "group": "North", "team": "Blue",
                            "recording_percentage": 50 }),
    );
    assert_eq!(answer.status, 201, "{}", answer.body);
    assert_eq!(answer.json()["recording_percentage"], 50);
    let answer = root.json(
        "POST",
        "/api/v1/directory/agents",
        serde_json::json!({ "agent_id": "bob", "name": "Bob Ray", "extension": "202",
                            "group": "South" }),
    );
    assert_eq!(answer.status, 201, "{}", answer.body);
    let answer = root.json(
        "POST",
        "/api/v1/directory/agents/ann/devices",
        serde_json::json!({ "kind": "sip_uri", "value": "sip:Ann@PBX.acme.test",
                            "recording_group": "Sales" }),
    );
    assert_eq!(answer.status, 201, "{}", answer.body);
    assert_eq!(answer.json()["value"], "ann@pbx.acme.test");
    assert_eq!(answer.json()["recording_type"], "SPAN");
    let answer = root.json(
        "POST",
        "/api/v1/directory/agents/bob/devices",
        serde_json::json!({ "kind": "mac", "value": "AA-BB-CC-00-11-22" }),
    );
    assert_eq!(answer.status, 201, "{}", answer.body);
    // A device is one agent's: the same MAC for Ann is refused, naming its holder.
    let answer = root.json(
        "POST",
        "/api/v1/directory/agents/ann/devices",
        serde_json::json!({ "kind": "mac", "value": "aa:bb:cc:00:11:22" }),
    );
    assert_eq!(answer.status, 409, "{}", answer.body);
    assert!(answer.body.contains("bob"), "{}", answer.body);
    // Filters and search.
    assert_eq!(
        agent_ids(&root.get("/api/v1/directory/agents?group=North")),
        ["ann"]
    );
    assert_eq!(
        agent_ids(&root.get("/api/v1/directory/agents?q=ray")),
        ["bob"]
    );
    assert_eq!(
        agent_ids(&root.get("/api/v1/directory/agents")),
        ["ann", "bob"]
    );

    // An import with one bad line is refused whole, naming line and column.
    let bad = format!(
        "{HEADER}\n\
         cat,Cat Moe,,203,,North,,,,extension,203,,\n\
         dan,Dan Poe,,204,,North,,250,,,,,\n"
    );
    let answer = root.send("POST", "/api/v1/directory/import", "text/csv", &bad);
    assert_eq!(answer.status, 422, "{}", answer.body);
    let problems = answer.json()["problems"].as_array().unwrap().clone();
    assert!(
        problems
            .iter()
            .any(|p| p["line"] == 3 && p["column"] == "recording_percentage"),
        "{problems:?}"
    );
    assert_eq!(
        agent_ids(&root.get("/api/v1/directory/agents")),
        ["ann", "bob"],
        "nothing of the refused file was imported"
    );
    // The page shows the same problems as a table, for a plain form without JavaScript.
    let page = root.form("/directory/import", &[("csv", &bad)]);
    assert_eq!(page.status, 422, "{}", page.body);
    assert!(
        page.body.contains("id=\"import-problems\""),
        "{}",
        page.body
    );
    assert!(
        page.body
            .contains("<tr><td>3</td><td>recording_percentage</td><td>250</td>"),
        "{}",
        page.body
    );

    // A good import creates Cat and Dan, in the group North.
    let good = bad.replace(",250,", ",25,");
    let answer = root.send("POST", "/api/v1/directory/import", "text/csv", &good);
    assert_eq!(answer.status, 200, "{}", answer.body);
    assert_eq!(answer.json()["agents_created"], 2, "{}", answer.body);
    assert_eq!(
        agent_ids(&root.get("/api/v1/directory/agents?group=North")),
        ["ann", "cat", "dan"]
    );

    // The export imports back with nothing changed, and exports again to the same bytes.
    let exported = root.get("/api/v1/directory/export.csv");
    assert_eq!(exported.status, 200);
    assert!(exported.body.starts_with(HEADER), "{}", exported.body);
    assert!(exported.body.contains(
        "ann,Ann Lee,ann@acme.test,201,,North,Blue,50,,sip_uri,ann@pbx.acme.test,Sales,SPAN"
    ));
    let audit_before = directory_audit(&appliance).len();
    let again = root.send(
        "POST",
        "/api/v1/directory/import",
        "text/csv",
        &exported.body,
    );
    assert_eq!(again.status, 200, "{}", again.body);
    let summary = again.json();
    for key in [
        "agents_created",
        "agents_updated",
        "devices_added",
        "devices_removed",
    ] {
        assert_eq!(summary[key], 0, "{key}: {summary}");
    }
    let re_exported = root.get("/api/v1/directory/export.csv");
    assert_eq!(re_exported.body, exported.body);
    // The unchanged import wrote nothing, the second export its download row.
    assert_eq!(directory_audit(&appliance).len(), audit_before + 1);

    // Sam supervises the group South: Bob, and no one else.
    let answer = root.json(
        "PUT",
        "/api/v1/directory/scopes/sam",
        serde_json::json!({ "groups": ["South"], "teams": [] }),
    );
    assert_eq!(answer.status, 204, "{}", answer.body);
    let sam = Client::signed_in(&mut daemon, &appliance, "sam");
    assert_eq!(agent_ids(&sam.get("/api/v1/directory/agents")), ["bob"]);
    assert_eq!(sam.get("/api/v1/directory/agents/bob").status, 200);
    let refused = sam.get("/api/v1/directory/agents/ann");
    assert_eq!(refused.status, 403, "{}", refused.body);
    assert_eq!(sam.get("/directory/agents/ann").status, 403);
    assert_eq!(sam.get("/api/v1/directory/agents?agent=ann").status, 403);
    assert_eq!(sam.get("/api/v1/directory/devices?agent=201").status, 403);
    assert_eq!(sam.get("/directory?agent=ann").status, 403);
    let page = sam.get("/directory");
    assert_eq!(page.status, 200);
    assert!(page.body.contains("Bob Ray") && !page.body.contains("Ann Lee"));
    let devices = sam.get("/api/v1/directory/devices");
    assert!(
        devices.body.contains("aa:bb:cc:00:11:22"),
        "{}",
        devices.body
    );
    assert!(!devices.body.contains("ann@pbx"), "{}", devices.body);
    let export = sam.get("/api/v1/directory/export.csv");
    assert_eq!(export.status, 200);
    assert!(export.body.contains("\r\nbob,") && !export.body.contains("ann"));
    // Viewing is not changing: a supervisor cannot edit, even in scope.
    // HTTP/1.1: over HTTP/2 the early refusal resets the stream before curl has sent the body.
    let answer = sam.curl(
        "PUT",
        "/api/v1/directory/agents/bob",
        &[
            "--http1.1",
            "--header",
            "content-type: application/json",
            "--data-binary",
            r#"{"agent_id": "bob", "name": "Robert"}"#,
        ],
    );
    assert_eq!(answer.status, 403, "{}", answer.body);
    // A change of scope applies at the next request.
    root.json(
        "PUT",
        "/api/v1/directory/scopes/sam",
        serde_json::json!({ "groups": ["North"] }),
    );
    assert_eq!(
        agent_ids(&sam.get("/api/v1/directory/agents")),
        ["ann", "cat", "dan"]
    );
    assert_eq!(sam.get("/api/v1/directory/agents/bob").status, 403);

    // Edits and deletion through the API and a plain form.
    let answer = root.json(
        "PUT",
        "/api/v1/directory/agents/bob",
        serde_json::json!({ "agent_id": "bob", "name": "Robert Ray", "group": "South" }),
    );
    assert_eq!(answer.status, 200, "{}", answer.body);
    assert_eq!(answer.json()["extension"], serde_json::Value::Null);
    let page = root.form("/directory/agents/dan/delete", &[]);
    assert_eq!(page.status, 200, "{}", page.body);
    assert_eq!(root.get("/api/v1/directory/agents/dan").status, 404);

    // Every change left its row, by whom.
    let audit = directory_audit(&appliance);
    let has = |sub: &str, object: &str| {
        audit
            .iter()
            .any(|(s, o, user)| s == sub && o.contains(object) && user == "root")
    };
    assert!(has("Created", "Group North"), "{audit:?}");
    assert!(has("Created", "ann"), "{audit:?}");
    assert!(has("Imported", ""), "{audit:?}");
    assert!(has("Scope set", "Scope of sam"), "{audit:?}");
    assert!(has("Updated", "bob"), "{audit:?}");
    assert!(has("Deleted", "dan"), "{audit:?}");
    assert!(has("Download", "agents.csv"), "{audit:?}");
    assert_eq!(
        audit.iter().filter(|(s, _, _)| s == "Imported").count(),
        1,
        "the refused import wrote no row: {audit:?}"
    );
    assert!(
        audit
            .iter()
            .any(|(s, o, user)| s == "Download" && o == "agents.csv" && user == "sam"),
        "{audit:?}"
    );
}
