use super::*;

fn store() -> (tempfile::TempDir, Store) {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open_in(dir.path()).unwrap();
    (dir, store)
}

fn entry(n: u32) -> Entry<'static> {
    Entry {
        username: "auditor",
        user_ip: "192.0.2.7",
        event: events::SFTP,
        sub_event: events::DOWNLOAD,
        event_object: "S20261121/R202611211200000000.wav",
        comments: "",
        request_uri: "sftp://tapline/S20261121/R202611211200000000.wav",
        params: serde_json::json!({ "bytes": n, "client": "OpenSSH_9.2" }),
    }
}

fn fill(store: &Store, rows: u32) {
    for n in 0..rows {
        record(store, &entry(n)).unwrap();
    }
}

fn verify_all(store: &Store) -> Verification {
    store.read(|conn| verify(conn, None)).unwrap()
}

/// Edits the file behind the triggers' back, as an attacker with the database would.
fn tamper(store: &Store, sql: &str) {
    store
        .write(|tx| {
            tx.execute_batch(&format!(
                "DROP TRIGGER IF EXISTS audit_log_no_update; DROP TRIGGER IF EXISTS audit_log_no_delete; {sql}"
            ))
        })
        .unwrap();
}

#[test]
fn rows_chain_from_genesis_and_verify() {
    let (_dir, store) = store();
    assert_eq!(
        verify_all(&store),
        Verification {
            rows: 0,
            head: None,
            broken: None
        }
    );
    fill(&store, 5);
    let result = verify_all(&store);
    assert_eq!(result.rows, 5);
    assert_eq!(result.broken, None);
    let head = result.head.unwrap();
    assert_eq!(head.id, 5);
    assert_eq!(store.read(super::head).unwrap(), Some(head));

    let first = store
        .read(|conn| {
            conn.query_row(
                &format!("SELECT {COLUMNS} FROM audit_log WHERE id = 1"),
                [],
                read_row,
            )
        })
        .unwrap();
    assert_eq!(first.prev_hash, GENESIS_HASH);
    assert_eq!(first.params, r#"{"bytes":0,"client":"OpenSSH_9.2"}"#);
    assert!(first.created_at.ends_with('Z') && first.created_at.len() == 27);
}

#[test]
fn updates_and_deletes_are_refused_by_the_database() {
    let (_dir, store) = store();
    fill(&store, 2);
    for sql in [
        "UPDATE audit_log SET username = 'someone else' WHERE id = 1",
        "DELETE FROM audit_log WHERE id = 2",
    ] {
        let err = store.write(|tx| tx.execute(sql, [])).unwrap_err();
        assert!(
            err.to_string().contains("the audit log is append-only"),
            "{err}"
        );
    }
    assert_eq!(verify_all(&store).rows, 2);
}

#[test]
fn an_edited_row_is_named() {
    let (_dir, store) = store();
    fill(&store, 4);
    tamper(
        &store,
        "UPDATE audit_log SET user_ip = '203.0.113.9' WHERE id = 3",
    );
    let broken = verify_all(&store).broken.unwrap();
    assert_eq!(broken.id, 3);
    assert!(
        broken.reason.contains("content does not match"),
        "{broken:?}"
    );
}

#[test]
fn a_rehashed_row_breaks_the_next_link() {
    let (_dir, store) = store();
    fill(&store, 4);
    // Fix up row 2's own hash after editing it: row 3 still points at the old hash.
    let mut row = store
        .read(|conn| {
            conn.query_row(
                &format!("SELECT {COLUMNS} FROM audit_log WHERE id = 2"),
                [],
                read_row,
            )
        })
        .unwrap();
    row.comments = "nothing to see".into();
    let rehashed = row_hash(&row);
    tamper(
        &store,
        &format!(
            "UPDATE audit_log SET comments = 'nothing to see', row_hash = '{rehashed}' WHERE id = 2"
        ),
    );
    let broken = verify_all(&store).broken.unwrap();
    assert_eq!(broken.id, 3);
    assert!(broken.reason.contains("previous-row hash"), "{broken:?}");
}

#[test]
fn removed_rows_are_found_in_the_middle_and_at_the_end() {
    let (_dir, store) = store();
    fill(&store, 6);
    let recorded_head = store.read(super::head).unwrap().unwrap();

    tamper(&store, "DELETE FROM audit_log WHERE id = 6");
    assert_eq!(
        verify_all(&store).broken,
        None,
        "the chain alone cannot see this"
    );
    let broken = store
        .read(|conn| verify(conn, Some(&recorded_head)))
        .unwrap()
        .broken
        .unwrap();
    assert_eq!(broken.id, 6);
    assert!(broken.reason.contains("missing"), "{broken:?}");

    tamper(&store, "DELETE FROM audit_log WHERE id = 3");
    let broken = verify_all(&store).broken.unwrap();
    assert_eq!(broken.id, 4);
    assert!(broken.reason.contains("rows are missing"), "{broken:?}");
}

#[test]
fn the_row_goes_with_the_change_or_not_at_all() {
    let (_dir, store) = store();
    let result: Result<(), rusqlite::Error> = store.write(|tx| {
        append(tx, &entry(1))?;
        Err(rusqlite::Error::QueryReturnedNoRows)
    });
    assert!(result.is_err());
    assert_eq!(verify_all(&store).rows, 0, "rolled back with the change");
}

#[test]
fn field_boundaries_are_part_of_the_hash() {
    let a = Row {
        id: 1,
        created_at: "t".into(),
        username: "ab".into(),
        user_ip: "c".into(),
        event: String::new(),
        sub_event: String::new(),
        event_object: String::new(),
        comments: String::new(),
        request_uri: String::new(),
        params: "{}".into(),
        prev_hash: GENESIS_HASH.into(),
        row_hash: String::new(),
    };
    let b = Row {
        username: "a".into(),
        user_ip: "bc".into(),
        ..a.clone()
    };
    assert_ne!(row_hash(&a), row_hash(&b));
    assert_eq!(row_hash(&a).len(), 64);
}

#[test]
fn non_object_params_are_wrapped() {
    assert_eq!(canonical_params(&serde_json::json!(null)), "{}");
    assert_eq!(
        canonical_params(&serde_json::json!([1, 2])),
        r#"{"value":[1,2]}"#
    );
    assert_eq!(
        canonical_params(&serde_json::json!({"b": 1, "a": 2})),
        r#"{"a":2,"b":1}"#
    );
}

/// Rows in the varied log.
pub(crate) const VARIED_ROWS: u32 = 12_000;

/// A log of many shapes, for checking the filters against [`reference`]: five users, four
/// events, objects under two months' recording directories (one prefix matching most rows,
/// one day's few), agents and accounts; comments rare and common, with LIKE's wildcards, a
/// quote and letters outside ASCII. Times are a permutation of the ids, three rows to an
/// instant, so neither the id order nor the trigram index's order is the page order.
pub(crate) fn fill_varied(store: &Store) {
    const USERS: [&str; 5] = ["admin", "auditor1", "auditor2", "maria.garcia", "Émile"];
    store
        .write(|tx| {
            for n in 0..VARIED_ROWS {
                let month = if n % 20 < 11 { 10 } else { 11 };
                let recording = format!("S2026{month}{:02}/R2026{month}{n:010}.wav", n % 28 + 1);
                let username = USERS[(n * 7 % 5) as usize];
                let (event, sub_event, object) = match n % 10 {
                    0..=2 => (events::RECORDINGS, "Play", recording),
                    3..=5 => (events::RECORDINGS, events::DOWNLOAD, recording),
                    6 | 7 => (events::SFTP, events::DOWNLOAD, recording),
                    8 => ("Web", events::LOGIN, String::new()),
                    _ => (
                        events::DIRECTORY,
                        events::UPDATED,
                        format!("agent{:03}", n % 40),
                    ),
                };
                let comments = match n % 50 {
                    0 => format!("litigation hold, matter {}", 1000 + n % 300),
                    1..=20 => "wrong password".to_owned(),
                    21 => "Ärger: Kunde sagt \"100%_sicher\"".to_owned(),
                    22 => "ÄRGER groß".to_owned(),
                    23 => "ärger klein".to_owned(),
                    _ => String::new(),
                };
                let at = jiff::Timestamp::from_second(
                    1_790_000_000 + i64::from(n * 7_919 % VARIED_ROWS / 3),
                )
                .unwrap();
                let entry = Entry {
                    username,
                    user_ip: "192.0.2.7",
                    event,
                    sub_event,
                    event_object: &object,
                    comments: &comments,
                    request_uri: "/api/v1",
                    params: serde_json::json!({ "n": n }),
                };
                append_at(tx, &entry, at)?;
            }
            Ok::<_, rusqlite::Error>(())
        })
        .unwrap();
}

/// The ids `filter` matches, newest first, found by reading every row and checking each
/// condition in Rust: the meaning of each filter, written independently of the SQL.
/// Comments match as SQLite's `LIKE` does: ASCII letters in either case, everything else
/// exactly.
pub(crate) fn reference(store: &Store, filter: &query::Filter) -> Vec<i64> {
    let mut rows: Vec<Row> = store
        .read(|conn| {
            conn.prepare(&format!("SELECT {COLUMNS} FROM audit_log"))?
                .query_map([], read_row)?
                .collect::<rusqlite::Result<Vec<_>>>()
        })
        .unwrap();
    let from = filter.from.map(tapline_store::utc_text);
    let to = filter.to.map(tapline_store::utc_text);
    rows.retain(|row| {
        from.as_ref().is_none_or(|from| &row.created_at >= from)
            && to.as_ref().is_none_or(|to| &row.created_at < to)
            && (filter.usernames.is_empty() || filter.usernames.contains(&row.username))
            && filter.event.as_ref().is_none_or(|e| &row.event == e)
            && filter
                .sub_event
                .as_ref()
                .is_none_or(|s| &row.sub_event == s)
            && filter
                .event_object
                .as_ref()
                .is_none_or(|object| match object {
                    query::Match::Exact(value) => &row.event_object == value,
                    query::Match::Prefix(prefix) => row.event_object.starts_with(prefix.as_str()),
                })
            && filter.comments.as_ref().is_none_or(|text| {
                row.comments
                    .to_ascii_lowercase()
                    .contains(&text.to_ascii_lowercase())
            })
    });
    rows.sort_by(|a, b| (&b.created_at, b.id).cmp(&(&a.created_at, a.id)));
    rows.into_iter().map(|row| row.id).collect()
}

/// The filter shapes [`fill_varied`] makes interesting, each with the fewest ids it must
/// find (so that no shape passes by finding nothing), or `Some(0)` for none.
pub(crate) fn varied_shapes() -> Vec<(query::Filter, usize)> {
    use query::{Filter, Match};
    let at = |text: &str| Some(text.parse::<jiff::Timestamp>().unwrap());
    let comments = |text: &str| Filter {
        comments: Some(text.to_owned()),
        ..Filter::default()
    };
    vec![
        // An object prefix most rows match: read in time order, checked in the index.
        (
            Filter {
                event_object: Match::parse("S202610*"),
                ..Filter::default()
            },
            5_000,
        ),
        (
            Filter {
                event_object: Match::parse("S202610*"),
                from: at("2026-09-21T14:30:00Z"),
                to: at("2026-09-21T14:50:00Z"),
                ..Filter::default()
            },
            100,
        ),
        (
            Filter {
                event_object: Match::parse("S202611*"),
                usernames: vec!["Émile".to_owned()],
                ..Filter::default()
            },
            500,
        ),
        // A prefix matching more rows than counted at first, fewer than the choice counts.
        (
            Filter {
                event_object: Match::parse("S202611*"),
                ..Filter::default()
            },
            3_000,
        ),
        // Two filters of a few thousand rows each: the narrower is read, in order.
        (
            Filter {
                usernames: vec!["Émile".to_owned()],
                event: Some(events::RECORDINGS.to_owned()),
                ..Filter::default()
            },
            1_000,
        ),
        // A prefix few rows match: read through the object index and sorted.
        (
            Filter {
                event_object: Match::parse("S20261105/*"),
                ..Filter::default()
            },
            100,
        ),
        (
            Filter {
                event_object: Match::parse("agent009"),
                ..Filter::default()
            },
            10,
        ),
        // Rare text: the trigram index names the rows.
        (comments("matter 1050"), 30),
        (comments("MATTER 10"), 80),
        (
            Filter {
                comments: Some("Matter 1100".to_owned()),
                usernames: vec!["admin".to_owned(), "auditor2".to_owned()],
                from: at("2026-09-21T14:30:00Z"),
                ..Filter::default()
            },
            1,
        ),
        // LIKE folds ASCII case only: the trigram index folds more, and is only a sieve.
        (comments("ärger"), 200),
        (comments("ÄRGER"), 400),
        (comments("Ärger"), 200),
        (comments("GROß"), 200),
        // Wildcards and a quote are literal text.
        (comments("\"100%_sicher\""), 200),
        (comments("100%x"), 0),
        (comments("a\"b"), 0),
        // Shorter than a trigram: the rows with comments, checked one by one.
        (comments("%_"), 200),
        (comments("ß"), 200),
        (comments("er"), 900),
        // Common text: more than the trigram index may name.
        (comments("wrong password"), 4_000),
        (
            Filter {
                comments: Some("PASSWORD".to_owned()),
                event: Some(events::SFTP.to_owned()),
                ..Filter::default()
            },
            900,
        ),
        (comments("no such text"), 0),
    ]
}

/// Every id `filter` finds, walking pages of `size` through the public search.
fn searched_ids(store: &Store, filter: &query::Filter, size: usize) -> Vec<i64> {
    let mut ids = Vec::new();
    let mut after = None;
    loop {
        let page = query::search(store, filter, after, size).unwrap();
        if ids.is_empty() {
            // A total, when given, is the number of matches, or a bound below it.
            let expected = reference(store, filter).len() as u64;
            match page.total {
                Some(query::Total::Exact(n)) => assert_eq!(n, expected, "{filter:?}"),
                Some(query::Total::MoreThan(n)) => assert!(expected >= n, "{filter:?}"),
                None => {}
            }
        }
        ids.extend(page.rows.iter().map(|row| row.id));
        match page.next {
            Some(next) => after = Some(next.to_string().parse().unwrap()),
            None => return ids,
        }
    }
}

#[test]
fn object_and_text_filters_find_what_reading_every_row_finds() {
    let (_dir, store) = store();
    fill_varied(&store);
    for (filter, at_least) in varied_shapes() {
        let expected = reference(&store, &filter);
        if at_least == 0 {
            assert!(expected.is_empty(), "{filter:?}");
        } else {
            assert!(expected.len() >= at_least, "{filter:?}: {}", expected.len());
        }
        assert_eq!(searched_ids(&store, &filter, 200), expected, "{filter:?}");
    }
    // Case: LIKE's, not Unicode's.
    let count = |text: &str| {
        reference(
            &store,
            &query::Filter {
                comments: Some(text.to_owned()),
                ..query::Filter::default()
            },
        )
        .len()
    };
    assert_eq!(count("ärger"), count("ärger klein"));
    assert_eq!(count("ÄRGER"), count("Ärger: Kunde") + count("ÄRGER groß"));
    assert_eq!(count("Ärger"), count("ÄRGER"));
    // The trigram index holds exactly what the comments hold (SQLite checks it against
    // audit_log, and fails with an error otherwise), and the chain still verifies.
    store
        .write(|tx| {
            tx.execute(
                "INSERT INTO audit_log_comments (audit_log_comments, rank)
                 VALUES ('integrity-check', 1)",
                [],
            )
        })
        .unwrap();
    let result = verify_all(&store);
    assert_eq!(result.rows, u64::from(VARIED_ROWS));
    assert_eq!(result.broken, None);
}

#[test]
fn rows_from_before_the_trigram_index_are_found_through_it() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("tapline.db");
    {
        // The database as the release before the trigram index left it, with rows.
        let mut conn = rusqlite::Connection::open(&path).unwrap();
        let before = tapline_store::MIGRATIONS
            .iter()
            .position(|m| m.name == "audit_text_search")
            .unwrap();
        for migration in &tapline_store::MIGRATIONS[..before] {
            conn.execute_batch(migration.sql).unwrap();
        }
        conn.pragma_update(None, "application_id", tapline_store::APPLICATION_ID)
            .unwrap();
        conn.pragma_update(None, "user_version", before as u32)
            .unwrap();
        let tx = conn.transaction().unwrap();
        for n in 0..20 {
            let comments = format!("litigation hold, matter {}", 1000 + n % 4);
            let entry = Entry {
                comments: &comments,
                ..entry(n)
            };
            append_at(
                &tx,
                &entry,
                jiff::Timestamp::from_second(1_790_000_000).unwrap(),
            )
            .unwrap();
        }
        tx.commit().unwrap();
    }
    let store = Store::open(&path).unwrap();
    record(
        &store,
        &Entry {
            comments: "legal hold, Matter 1002",
            ..entry(20)
        },
    )
    .unwrap();
    let filter = query::Filter {
        comments: Some("matter 1002".to_owned()),
        ..query::Filter::default()
    };
    let expected = reference(&store, &filter);
    assert_eq!(expected, vec![21, 19, 15, 11, 7, 3]);
    assert_eq!(searched_ids(&store, &filter, 2), expected);
    assert_eq!(verify_all(&store).broken, None);
}
