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
