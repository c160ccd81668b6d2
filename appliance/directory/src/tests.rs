// A test's helpers fail the test on anything unexpected, like its body does.
#![allow(clippy::unwrap_used)]

use std::collections::BTreeSet;
use std::net::IpAddr;

use tapline_accounts::Role;
use tapline_store::Store;

use crate::csv_file::{self, HEADER, ImportSummary, LineError};
use crate::device_map::{self, CallParty, CallType, CallView, DeviceMap};
use crate::scope::{self, Assignment, Placement, Scope};
use crate::{
    Actor, AgentFields, DeviceFields, DeviceKind, DirectoryError, Grouping, RecordingType, agents,
    devices, groupings,
};

const ADMIN: Actor<'static> = Actor {
    username: "admin",
    user_ip: "192.0.2.10",
    request_uri: "/api/v1/agents",
};

fn store() -> (tempfile::TempDir, Store) {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open_in(dir.path()).unwrap();
    (dir, store)
}

fn account(store: &Store, name: &str, role: Role) {
    tapline_accounts::upsert(
        store,
        name,
        role,
        "a long enough password",
        false,
        &Actor::SYSTEM,
    )
    .unwrap();
}

fn agent(agent_id: &str, name: &str) -> AgentFields {
    AgentFields {
        agent_id: agent_id.into(),
        name: name.into(),
        ..AgentFields::default()
    }
}

fn device(kind: DeviceKind, value: &str, agent_id: &str) -> DeviceFields {
    DeviceFields {
        kind,
        value: value.into(),
        agent_id: agent_id.into(),
        recording_group: None,
        recording_type: None,
    }
}

/// (event, sub event, object) of every audit row after the accounts' own.
fn audit_rows(store: &Store) -> Vec<(String, String, String)> {
    store
        .read(|conn| {
            let mut statement = conn.prepare(
                "SELECT event, sub_event, event_object FROM audit_log
                 WHERE event = 'Agent directory' ORDER BY id",
            )?;
            statement
                .query_map([], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)))?
                .collect::<Result<Vec<_>, _>>()
        })
        .unwrap()
}

#[test]
fn agents_are_created_updated_and_deleted_with_their_audit_rows() {
    let (_dir, store) = store();
    groupings::create(&store, Grouping::Group, "Sales", &ADMIN).unwrap();
    groupings::create(&store, Grouping::Team, "Team A", &ADMIN).unwrap();
    let mut alice = AgentFields {
        email: Some(" alice@example.com ".into()),
        extension: Some("1001".into()),
        group: Some("sales".into()),
        team: Some("Team A".into()),
        recording_percentage: Some(40),
        ..agent("alice", "Alice Smith")
    };
    let id = agents::create(&store, &alice, &ADMIN).unwrap();
    let stored = agents::find(&store, "ALICE").unwrap().unwrap();
    assert_eq!(stored.id, id);
    assert_eq!(stored.fields.email.as_deref(), Some("alice@example.com"));
    assert_eq!(
        stored.fields.group.as_deref(),
        Some("Sales"),
        "the stored name"
    );

    // The same fields again change nothing and write no row.
    agents::update(&store, id, &stored.fields, &ADMIN).unwrap();
    alice.recording_percentage = None;
    agents::update(&store, id, &alice, &ADMIN).unwrap();
    assert_eq!(
        agents::find(&store, "alice")
            .unwrap()
            .unwrap()
            .fields
            .recording_percentage,
        None
    );
    devices::add(
        &store,
        &device(DeviceKind::SipUri, "sip:Alice@PBX", "alice"),
        &ADMIN,
    )
    .unwrap();
    agents::delete(&store, id, &ADMIN).unwrap();
    assert!(agents::find(&store, "alice").unwrap().is_none());
    assert!(
        devices::list(&store, &Scope::everything())
            .unwrap()
            .is_empty(),
        "cascade"
    );

    let rows = audit_rows(&store);
    let sub: Vec<(&str, &str)> = rows.iter().map(|r| (r.1.as_str(), r.2.as_str())).collect();
    assert_eq!(
        sub,
        [
            ("Created", "Group Sales"),
            ("Created", "Team Team A"),
            ("Created", "Agent alice"),
            ("Updated", "Agent alice"),
            ("Created", "Device sip_uri alice@pbx"),
            ("Deleted", "Agent alice"),
        ]
    );
}

#[test]
fn validation_names_the_field_and_the_value() {
    let (_dir, store) = store();
    let check = |fields: AgentFields, expected: &str| {
        let err = agents::create(&store, &fields, &ADMIN).unwrap_err();
        assert_eq!(err.to_string(), expected);
    };
    check(
        agent("al ice", "Alice"),
        "agent_id \"al ice\" is not allowed: use 1 to 64 letters, digits, '.', '_', '-' or '@'",
    );
    check(agent("alice", "  "), "name \"  \" must not be empty");
    check(
        AgentFields {
            email: Some("alice.example.com".into()),
            ..agent("alice", "Alice")
        },
        "email \"alice.example.com\" is not an email address (name@domain)",
    );
    check(
        AgentFields {
            recording_percentage: Some(101),
            ..agent("alice", "Alice")
        },
        "recording_percentage \"101\" must be between 0 and 100",
    );
    check(
        AgentFields {
            extension: Some("10 01".into()),
            ..agent("alice", "Alice")
        },
        "extension \"10 01\" use 1 to 32 digits, letters or * # + . _ -",
    );
    check(
        AgentFields {
            group: Some("Nowhere".into()),
            ..agent("alice", "Alice")
        },
        "group \"Nowhere\" does not exist",
    );
    check(
        AgentFields {
            account: Some("ghost".into()),
            ..agent("alice", "Alice")
        },
        "account \"ghost\" does not exist",
    );
    agents::create(
        &store,
        &AgentFields {
            extension: Some("1001".into()),
            ..agent("alice", "Alice")
        },
        &ADMIN,
    )
    .unwrap();
    check(
        AgentFields {
            extension: Some("1001".into()),
            ..agent("bob", "Bob")
        },
        "extension \"1001\" is already used by agent alice",
    );
    check(
        agent("ALICE", "Alice again"),
        "agent_id \"ALICE\" is already used by agent alice",
    );
    devices::add(
        &store,
        &device(DeviceKind::Mac, "00-1A-2B-3C-4D-5E", "alice"),
        &ADMIN,
    )
    .unwrap();
    agents::create(&store, &agent("bob", "Bob"), &ADMIN).unwrap();
    let err = devices::add(
        &store,
        &device(DeviceKind::Mac, "001a.2b3c.4d5e", "bob"),
        &ADMIN,
    )
    .unwrap_err();
    assert_eq!(
        err.to_string(),
        "mac \"00:1a:2b:3c:4d:5e\" is already used by agent alice"
    );
    let err = devices::add(
        &store,
        &DeviceFields {
            recording_type: Some(RecordingType::Usb),
            ..device(DeviceKind::PhoneIp, "10.0.0.9", "bob")
        },
        &ADMIN,
    )
    .unwrap_err();
    assert_eq!(
        err.to_string(),
        "recording_type \"USB\" cannot record a device by phone_ip"
    );
    let err = devices::add(
        &store,
        &device(DeviceKind::PhoneIp, "10.0.0", "bob"),
        &ADMIN,
    )
    .unwrap_err();
    assert!(
        matches!(
            err,
            DirectoryError::Invalid {
                field: "phone_ip",
                ..
            }
        ),
        "{err}"
    );
    let rows = audit_rows(&store);
    assert_eq!(rows.len(), 3, "refused changes leave no row: {rows:?}");
}

#[test]
fn groups_and_teams_rename_and_delete_leaving_their_agents() {
    let (_dir, store) = store();
    let sales = groupings::create(&store, Grouping::Group, "Sales", &ADMIN).unwrap();
    let err = groupings::create(&store, Grouping::Group, "SALES", &ADMIN).unwrap_err();
    assert_eq!(
        err.to_string(),
        "group \"SALES\" is already used by another group"
    );
    agents::create(
        &store,
        &AgentFields {
            group: Some("Sales".into()),
            ..agent("alice", "Alice")
        },
        &ADMIN,
    )
    .unwrap();
    groupings::rename(&store, Grouping::Group, sales, "Sales EMEA", &ADMIN).unwrap();
    let alice = agents::find(&store, "alice").unwrap().unwrap();
    assert_eq!(alice.fields.group.as_deref(), Some("Sales EMEA"));
    groupings::delete(&store, Grouping::Group, sales, &ADMIN).unwrap();
    let alice = agents::find(&store, "alice").unwrap().unwrap();
    assert_eq!(alice.fields.group, None);
    assert!(groupings::list(&store, Grouping::Group).unwrap().is_empty());
}

fn placements() -> Vec<Placement> {
    let p = |agent, group, team, account| Placement {
        agent,
        group,
        team,
        account,
    };
    vec![
        p(1, Some(10), Some(20), Some(100)),
        p(2, Some(10), None, None),
        p(3, Some(11), Some(21), None),
        p(4, None, Some(21), Some(101)),
        p(5, None, None, None),
    ]
}

fn reach(scope: &Scope) -> Vec<i64> {
    (1..=5).filter(|&a| scope.allows_agent(a)).collect()
}

#[test]
fn scope_by_role_is_a_function_of_the_rows() {
    let assigned = Assignment {
        groups: BTreeSet::from([10]),
        teams: BTreeSet::from([21]),
    };
    let rows = placements();
    let check = |role, account, assignment: &Assignment, expected: &[i64]| {
        let scope = Scope::resolve(role, account, assignment, &rows);
        assert_eq!(reach(&scope), expected, "{role:?} {account}");
        scope
    };
    let admin = check(
        Some(Role::Administrator),
        7,
        &Assignment::default(),
        &[1, 2, 3, 4, 5],
    );
    assert!(admin.sees_everything() && admin.allows_group(99) && admin.allows_team(99));
    check(
        Some(Role::Auditor),
        7,
        &Assignment::default(),
        &[1, 2, 3, 4, 5],
    );
    let supervisor = check(Some(Role::Supervisor), 7, &assigned, &[1, 2, 3, 4]);
    assert!(!supervisor.sees_everything());
    assert!(supervisor.allows_group(10) && !supervisor.allows_group(11));
    assert!(supervisor.allows_team(21) && !supervisor.allows_team(20));
    check(Some(Role::Supervisor), 7, &Assignment::default(), &[]);
    check(
        Some(Role::Supervisor),
        7,
        &Assignment {
            groups: BTreeSet::new(),
            teams: BTreeSet::from([20]),
        },
        &[1],
    );
    let agent = check(Some(Role::Agent), 100, &assigned, &[1]);
    assert!(!agent.allows_group(10), "an agent's assignment is ignored");
    check(Some(Role::Agent), 101, &Assignment::default(), &[4]);
    check(Some(Role::Agent), 102, &Assignment::default(), &[]);
    let custom = check(None, 7, &assigned, &[1, 2, 3, 4]);
    assert_eq!(
        custom, supervisor,
        "a custom role is scoped like a supervisor"
    );
    check(None, 7, &Assignment::default(), &[]);
    assert_eq!(supervisor.allowed_agents(), Some(vec![1, 2, 3, 4]));
    assert_eq!(admin.allowed_agents(), None);
    assert_eq!(Scope::nothing().sql_param().as_deref(), Some("[]"));
    assert_eq!(admin.sql_param(), None);
    assert_eq!(supervisor.sql_param().as_deref(), Some("[1,2,3,4]"));
}

/// The store as the scope tests need it: five agents, two groups, two teams and the accounts
/// of every role.
fn scoped_store() -> (tempfile::TempDir, Store) {
    let (dir, store) = store();
    for (name, role) in [
        ("root", Role::Administrator),
        ("audrey", Role::Auditor),
        ("sam", Role::Supervisor),
        ("alice.login", Role::Agent),
    ] {
        account(&store, name, role);
    }
    for name in ["Sales", "Support"] {
        groupings::create(&store, Grouping::Group, name, &ADMIN).unwrap();
    }
    for name in ["Day", "Night"] {
        groupings::create(&store, Grouping::Team, name, &ADMIN).unwrap();
    }
    let with =
        |id: &str, group: Option<&str>, team: Option<&str>, account: Option<&str>| AgentFields {
            group: group.map(Into::into),
            team: team.map(Into::into),
            account: account.map(Into::into),
            ..agent(id, id)
        };
    for fields in [
        with("alice", Some("Sales"), Some("Day"), Some("alice.login")),
        with("bob", Some("Sales"), None, None),
        with("carol", Some("Support"), Some("Night"), None),
        with("dave", None, Some("Night"), None),
        with("erin", Some("Support"), Some("Day"), None),
    ] {
        agents::create(&store, &fields, &ADMIN).unwrap();
    }
    scope::set(&store, "sam", &["Sales"], &["Night"], &ADMIN).unwrap();
    (dir, store)
}

#[test]
fn scope_restricts_the_queries_of_every_role() {
    let (_dir, store) = scoped_store();
    let listed = |account: &str| -> Vec<String> {
        let scope = store.read(|conn| Scope::load(conn, account)).unwrap();
        agents::list(&store, &scope)
            .unwrap()
            .into_iter()
            .map(|a| a.fields.agent_id)
            .collect()
    };
    let all = ["alice", "bob", "carol", "dave", "erin"];
    assert_eq!(listed("root"), all);
    assert_eq!(listed("AUDREY"), all);
    assert_eq!(listed("sam"), ["alice", "bob", "carol", "dave"]);
    assert_eq!(listed("alice.login"), ["alice"]);
    assert!(listed("nobody").is_empty());

    // The same condition restricts recordings, by the agent each was made with.
    store
        .write(|tx| {
            for (i, agent) in ["alice", "erin", ""].into_iter().enumerate() {
                tx.execute(
                    "INSERT INTO recordings (file_name, directory, status, source, answered_at,
                         transaction_id, sip_call_id, sample_rate, channels, format, agent_ref)
                     VALUES (?1, 'S20261121', 'complete', 'span', '2026-11-21T10:00:00.000000Z',
                             ?1, ?1, 8000, 2, 'pcm16',
                             (SELECT id FROM agents WHERE agent_id = ?2))",
                    (format!("R{i}.wav"), agent),
                )?;
            }
            Ok::<_, tapline_store::rusqlite::Error>(())
        })
        .unwrap();
    let recordings = |account: &str| -> Vec<String> {
        store
            .read(|conn| {
                let scope = Scope::load(conn, account)?;
                let sql = format!(
                    "SELECT file_name FROM recordings WHERE {} ORDER BY file_name",
                    Scope::sql_condition("agent_ref", 1)
                );
                let mut statement = conn.prepare(&sql)?;
                let names = statement
                    .query_map([scope.sql_param()], |row| row.get(0))?
                    .collect::<Result<Vec<String>, _>>()?;
                Ok::<_, DirectoryError>(names)
            })
            .unwrap()
    };
    assert_eq!(recordings("root"), ["R0.wav", "R1.wav", "R2.wav"]);
    assert_eq!(
        recordings("sam"),
        ["R0.wav"],
        "no out-of-scope or unattributed call"
    );
    assert_eq!(recordings("alice.login"), ["R0.wav"]);
    assert!(recordings("nobody").is_empty());

    // Changing the assignment changes the answer, and is audited once.
    scope::set(&store, "sam", &["Support"], &[], &ADMIN).unwrap();
    scope::set(&store, "sam", &["support"], &[], &ADMIN).unwrap();
    assert_eq!(listed("sam"), ["carol", "erin"]);
    let sets = audit_rows(&store)
        .into_iter()
        .filter(|r| r.1 == "Scope set")
        .count();
    assert_eq!(sets, 2, "the unchanged assignment wrote nothing");
    let err = scope::set(&store, "sam", &["Marketing"], &[], &ADMIN).unwrap_err();
    assert_eq!(err.to_string(), "group \"Marketing\" does not exist");
}

fn export(store: &Store) -> String {
    let mut out = Vec::new();
    csv_file::export(store, &Scope::everything(), &mut out).unwrap();
    String::from_utf8(out).unwrap()
}

const FILE: &str = "\
agent_id,name,email,extension,daa_number,group,team,recording_percentage,account,device_kind,device_value,recording_group,recording_type
alice,Alice Smith,alice@example.com,1001,5551001,Sales,Day,50,alice.login,extension,1001,Floor 1,SPAN
alice,Alice Smith,alice@example.com,1001,5551001,Sales,Day,50,alice.login,sip_uri,alice@pbx.example.com,Floor 1,SPAN
alice,Alice Smith,alice@example.com,1001,5551001,Sales,Day,50,alice.login,usb_port,1-1.2,,USB
bob,\"Bob, Jr.\",,1002,,Sales,,,,phone_ip,10.0.0.12,,SPAN
carol,Carol,,,,,Night,0,,,,,
";

#[test]
fn csv_round_trips_exactly_and_reimporting_changes_nothing() {
    let (_dir, store) = store();
    account(&store, "alice.login", Role::Agent);
    let summary = csv_file::import(
        &store,
        FILE.as_bytes(),
        "agents.csv",
        &Scope::everything(),
        &ADMIN,
    )
    .unwrap();
    assert_eq!(
        summary,
        ImportSummary {
            lines: 5,
            agents_created: 3,
            devices_added: 4,
            groups_created: 1,
            teams_created: 2,
            ..ImportSummary::default()
        }
    );
    assert_eq!(export(&store), FILE.replace('\n', "\r\n"));
    let rows_before = audit_rows(&store);
    assert_eq!(
        rows_before.len(),
        1,
        "one row for the whole file: {rows_before:?}"
    );
    assert_eq!(rows_before[0].1, "Imported");
    assert_eq!(rows_before[0].2, "agents.csv");
    let version = store.read(device_map::version).unwrap();

    let again = csv_file::import(
        &store,
        FILE.as_bytes(),
        "agents.csv",
        &Scope::everything(),
        &ADMIN,
    )
    .unwrap();
    assert!(!again.changed_anything(), "{again:?}");
    assert_eq!(
        audit_rows(&store),
        rows_before,
        "no audit row for no change"
    );
    assert_eq!(store.read(device_map::version).unwrap(), version);

    // A fresh appliance given the export exports the same bytes.
    let (_dir2, other) = self::store();
    account(&other, "alice.login", Role::Agent);
    csv_file::import(
        &other,
        export(&store).as_bytes(),
        "x.csv",
        &Scope::everything(),
        &ADMIN,
    )
    .unwrap();
    assert_eq!(export(&other), export(&store));
}

#[test]
fn csv_import_applies_changes_and_swaps() {
    let (_dir, store) = store();
    account(&store, "alice.login", Role::Agent);
    csv_file::import(
        &store,
        FILE.as_bytes(),
        "a.csv",
        &Scope::everything(),
        &ADMIN,
    )
    .unwrap();
    // Alice and Bob swap extensions, Alice's USB port moves to Bob, Carol is not in the file.
    let changed = format!(
        "{}\n\
         alice,Alice Smith,alice@example.com,1002,5551001,Sales,Day,50,alice.login,sip_uri,alice@pbx.example.com,Floor 2,SPAN\n\
         bob,\"Bob, Jr.\",,1001,,Sales,,,,usb_port,1-1.2,,USB\n",
        HEADER.join(",")
    );
    let summary = csv_file::import(
        &store,
        changed.as_bytes(),
        "b.csv",
        &Scope::everything(),
        &ADMIN,
    )
    .unwrap();
    assert_eq!(
        summary,
        ImportSummary {
            lines: 2,
            agents_updated: 2,
            devices_added: 1,
            devices_updated: 1,
            devices_removed: 3,
            ..ImportSummary::default()
        }
    );
    let expected = format!(
        "{}\n\
         alice,Alice Smith,alice@example.com,1002,5551001,Sales,Day,50,alice.login,sip_uri,alice@pbx.example.com,Floor 2,SPAN\n\
         bob,\"Bob, Jr.\",,1001,,Sales,,,,usb_port,1-1.2,,USB\n\
         carol,Carol,,,,,Night,0,,,,,\n",
        HEADER.join(",")
    );
    assert_eq!(export(&store), expected.replace('\n', "\r\n"));
}

fn import_errors(store: &Store, text: &str) -> Vec<LineError> {
    match csv_file::import(
        store,
        text.as_bytes(),
        "bad.csv",
        &Scope::everything(),
        &ADMIN,
    ) {
        Err(DirectoryError::Import(errors)) => errors,
        other => panic!("expected line errors, got {other:?}"),
    }
}

#[test]
fn csv_import_reports_every_problem_and_changes_nothing() {
    let (_dir, store) = store();
    agents::create(
        &store,
        &AgentFields {
            extension: Some("2000".into()),
            ..agent("zoe", "Zoe")
        },
        &ADMIN,
    )
    .unwrap();
    let header = HEADER.join(",");
    let text = format!(
        "{header}\n\
         alice,Alice,alice-at-example,1001,,Sales,,,,,,,\n\
         bob,Bob,,1002,,,,150,,,,,\n\
         carol,Carol,,,,,,,,phone,10.0.0.1,,\n\
         dave,Dave,,,,,,,,phone_ip,10.0.0.300,,\n\
         erin,Erin,,2000,,,,,,,,,\n\
         fred,Fred,,,,,,,ghost,,,,\n\
         gina,Gina,,,,,,,,sip_uri,sip:g@pbx,,\n\
         gina,Gina B,,,,,,,,mac,001122334455,,\n\
         hank,Hank,,,,,,,,sip_uri,G@PBX,,\n\
         ivan,Ivan,,,\n"
    );
    let errors = import_errors(&store, &text);
    let got: Vec<String> = errors.iter().map(LineError::to_string).collect();
    assert_eq!(
        got,
        [
            "line 2, column email, value \"alice-at-example\": is not an email address (name@domain)",
            "line 3, column recording_percentage, value \"150\": must be a whole number between 0 and 100",
            "line 4, column device_kind, value \"phone\": must be one of extension, sip_uri, phone_ip, mac, usb_port",
            "line 5, column device_value, value \"10.0.0.300\": is not an IPv4 or IPv6 address",
            "line 9, column name, value \"Gina B\": agent gina is described differently on line 8",
            "line 10, column device_value, value \"G@PBX\": the same device is on line 8",
            "line 11, value \"ivan,Ivan,,,\": has 5 columns, not 13",
        ]
    );
    // The same file with CRLF line ends, as the export writes it and browsers send it.
    let crlf: Vec<String> = import_errors(&store, &text.replace('\n', "\r\n"))
        .iter()
        .map(LineError::to_string)
        .collect();
    assert_eq!(crlf, got, "line numbers do not depend on the line ends");
    // Lines that are fine on their own but not against the database are found next.
    let text = format!(
        "{header}\n\
         erin,Erin,,2000,,,,,,,,,\n\
         fred,Fred,,,,,,,ghost,,,,\n"
    );
    let got: Vec<String> = import_errors(&store, &text)
        .iter()
        .map(LineError::to_string)
        .collect();
    assert_eq!(
        got,
        [
            "line 2, column extension, value \"2000\": is already used by agent zoe, who is not in the file",
            "line 3, column account, value \"ghost\": no such account",
        ]
    );
    let errors = import_errors(&store, "id,name\nalice,Alice\n");
    assert_eq!(errors.len(), 1);
    assert_eq!(errors[0].line, 1);
    assert!(
        errors[0]
            .reason
            .starts_with("the header must be agent_id,name,")
    );
    assert_eq!(
        agents::list(&store, &Scope::everything()).unwrap().len(),
        1,
        "nothing imported"
    );
    assert_eq!(audit_rows(&store).len(), 1, "only zoe's creation");
    let supervisor = Scope::resolve(Some(Role::Supervisor), 1, &Assignment::default(), &[]);
    let err = csv_file::import(&store, FILE.as_bytes(), "a.csv", &supervisor, &ADMIN).unwrap_err();
    assert_eq!(
        err.to_string(),
        "only an account that sees every agent may import agents"
    );
}

fn ip(text: &str) -> IpAddr {
    text.parse().unwrap()
}

fn map(store: &Store) -> DeviceMap {
    store.read(DeviceMap::load).unwrap()
}

#[test]
fn the_device_map_finds_agents_and_call_types() {
    let (_dir, store) = store();
    account(&store, "alice.login", Role::Agent);
    csv_file::import(
        &store,
        FILE.as_bytes(),
        "a.csv",
        &Scope::everything(),
        &ADMIN,
    )
    .unwrap();
    let map = map(&store);
    assert_eq!(map.agents(), 3);
    let customer = CallParty {
        uri: Some("sip:+442071234567@trunk.example.net"),
        user: Some("+442071234567"),
        addresses: &[],
        mac: None,
    };
    let bob_phone = [ip("::ffff:10.0.0.12")];

    // A customer's call reaching Alice's extension through a queue number: Inbound.
    let inbound = CallView {
        caller: customer,
        callee: CallParty {
            uri: Some("sip:8000@pbx.example.com"),
            user: Some("8000"),
            addresses: &[],
            mac: None,
        },
        dialled: Some("1001"),
    };
    let found = map.attribute(&inbound).unwrap();
    assert_eq!(found.matched.agent.agent_id, "alice");
    assert_eq!(found.matched.agent.recording_percentage, Some(50));
    assert_eq!(found.matched.recording_group, Some("Floor 1"));
    assert_eq!(found.matched.extension(), Some("1001"));
    assert_eq!(found.call_type, CallType::Inbound);
    assert_eq!(found.customer_number.as_deref(), Some("+442071234567"));

    // The same, addressed to Alice's DAA number: Direct Agent Access.
    let direct = CallView {
        callee: CallParty {
            uri: Some("sip:5551001@pbx.example.com"),
            user: Some("5551001"),
            addresses: &[],
            mac: None,
        },
        ..inbound
    };
    let found = map.attribute(&direct).unwrap();
    assert_eq!(found.call_type, CallType::DirectAgentAccess);
    assert_eq!(found.matched.agent.agent_id, "alice");

    // Bob's phone, found by its IP address, calls out: Outbound, the customer is dialled.
    let outbound = CallView {
        caller: CallParty {
            uri: Some("sip:anonymous@10.0.0.12"),
            user: Some("anonymous"),
            addresses: &bob_phone,
            mac: None,
        },
        callee: customer,
        dialled: Some("+442071234567"),
    };
    let found = map.attribute(&outbound).unwrap();
    assert_eq!(found.matched.agent.agent_id, "bob");
    assert_eq!(
        found.matched.device,
        Some((DeviceKind::PhoneIp, "10.0.0.12".into()))
    );
    assert_eq!(found.matched.extension(), Some("1002"), "the agent's own");
    assert_eq!(found.call_type, CallType::Outbound);
    assert_eq!(found.customer_number.as_deref(), Some("+442071234567"));

    // Alice's SIP URI, spelled otherwise, calls Bob's extension: agent to agent.
    let internal = CallView {
        caller: CallParty {
            uri: Some("\"Alice\" <sip:ALICE@pbx.example.com:5060;transport=tcp>"),
            user: Some("ALICE"),
            addresses: &[],
            mac: None,
        },
        callee: CallParty {
            uri: Some("sip:1002@pbx.example.com"),
            user: Some("1002"),
            addresses: &[],
            mac: None,
        },
        dialled: Some("1002"),
    };
    let found = map.attribute(&internal).unwrap();
    assert_eq!(found.matched.agent.agent_id, "bob");
    assert_eq!(found.call_type, CallType::DirectAgentAccess);
    assert_eq!(found.customer_number.as_deref(), Some("ALICE"));

    // Carol's desk phone, known only by its MAC, answers a customer: Inbound, for Carol.
    devices::add(
        &store,
        &device(DeviceKind::Mac, "00-1A-2B-3C-4D-5E", "carol"),
        &ADMIN,
    )
    .unwrap();
    let map = self::map(&store);
    let answered_by_mac = CallView {
        caller: customer,
        callee: CallParty {
            uri: Some("sip:7000@pbx.example.com"),
            user: Some("7000"),
            addresses: &[ip("10.0.0.40")],
            mac: Some([0x00, 0x1a, 0x2b, 0x3c, 0x4d, 0x5e]),
        },
        dialled: Some("7000"),
    };
    let found = map.attribute(&answered_by_mac).unwrap();
    assert_eq!(found.matched.agent.agent_id, "carol");
    assert_eq!(
        found.matched.device,
        Some((DeviceKind::Mac, "00:1a:2b:3c:4d:5e".into()))
    );
    assert_eq!(found.call_type, CallType::Inbound);

    // Nobody's devices: no agent.
    let unknown = CallView {
        caller: customer,
        callee: CallParty {
            uri: Some("sip:9999@pbx.example.com"),
            user: Some("9999"),
            addresses: &[ip("10.9.9.9")],
            mac: None,
        },
        dialled: Some("9999"),
    };
    assert!(map.attribute(&unknown).is_none());
    assert_eq!(
        map.device(DeviceKind::UsbPort, "1-1.2")
            .unwrap()
            .recording_type,
        Some(RecordingType::Usb)
    );
}

#[test]
fn the_directory_version_moves_with_agents_and_devices_only() {
    let (_dir, store) = store();
    let version = || store.read(device_map::version).unwrap();
    let v0 = version();
    let id = agents::create(&store, &agent("alice", "Alice"), &ADMIN).unwrap();
    let v1 = version();
    assert!(v1 > v0);
    devices::add(
        &store,
        &device(DeviceKind::Extension, "1001", "alice"),
        &ADMIN,
    )
    .unwrap();
    let v2 = version();
    assert!(v2 > v1);
    groupings::create(&store, Grouping::Team, "Day", &ADMIN).unwrap();
    assert_eq!(version(), v2, "the map holds no team");
    agents::delete(&store, id, &ADMIN).unwrap();
    assert!(version() > v2);
    assert_eq!(map(&store).agents(), 0);
    let next = agents::create(&store, &agent("bob", "Bob"), &ADMIN).unwrap();
    assert!(
        next > id,
        "a deleted agent's row, which recordings keep, is never reused"
    );
}
