//! Public keys for SFTP logins, kept in OpenSSH's one-line form (`ssh-ed25519 AAAA… comment`)
//! with their SHA-256 fingerprints as `ssh-keygen -l` prints them.
//!
//! Keys are parsed by `ssh-key` as russh re-exports it, the same parser the SFTP server uses to
//! read the keys clients offer, so a key stored here is exactly a key the server compares.
//! Only keys a modern server should trust are taken: Ed25519, ECDSA on the NIST curves, and
//! RSA of at least [`MIN_RSA_BITS`] bits. Every change is audited in its own transaction.
//! Keys belong to local accounts; the tenant login has a password only.

use russh::keys::ssh_key::{self, HashAlg, PublicKey};
use tapline_audit::{Actor, events};
use tapline_store::Store;
use tapline_store::rusqlite::{self, OptionalExtension};

/// RSA keys shorter than this are refused (OpenSSH refuses below 1024; NIST deprecates
/// below 2048).
pub const MIN_RSA_BITS: u32 = 2048;

#[derive(Debug, thiserror::Error)]
pub enum KeyError {
    #[error("no account named \"{0}\" (keys belong to local accounts)")]
    UnknownAccount(String),
    #[error("not a public key in OpenSSH's one-line form (\"ssh-ed25519 AAAA… comment\")")]
    Parse(#[source] ssh_key::Error),
    #[error(
        "{0} keys are not accepted: use Ed25519, ECDSA, or RSA of at least {MIN_RSA_BITS} bits"
    )]
    Unsupported(String),
    #[error("account database error")]
    Store(#[from] rusqlite::Error),
}

/// A key an account may log in with.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AccountKey {
    pub public_key: PublicKey,
    /// `SHA256:…`
    pub fingerprint: String,
    /// UTC, when it was added.
    pub added_at: String,
}

/// Parses one line of an `authorized_keys`-style file or a `.pub` file, refusing key types
/// that are not accepted.
pub fn parse(line: &str) -> Result<PublicKey, KeyError> {
    let key = PublicKey::from_openssh(line.trim()).map_err(KeyError::Parse)?;
    let data = key.key_data();
    let accepted = data.is_ed25519()
        || data.is_ecdsa()
        || data.rsa().is_some_and(|rsa| rsa.key_size() >= MIN_RSA_BITS);
    if accepted {
        Ok(key)
    } else {
        Err(KeyError::Unsupported(key.algorithm().as_str().to_owned()))
    }
}

/// The fingerprint `ssh-keygen -l` prints: `SHA256:` and unpadded base64.
pub fn fingerprint(key: &PublicKey) -> String {
    key.fingerprint(HashAlg::Sha256).to_string()
}

/// Lets `account_name` log in with the key on `openssh_line`; returns its fingerprint. Adding
/// a key the account already has changes nothing.
pub fn add_key(
    store: &Store,
    account_name: &str,
    openssh_line: &str,
    actor: &Actor<'_>,
) -> Result<String, KeyError> {
    let key = parse(openssh_line)?;
    let fingerprint = fingerprint(&key);
    let text = key.to_openssh().map_err(KeyError::Parse)?;
    store.write(|tx| {
        let account: Option<(i64, String)> = tx
            .query_row(
                "SELECT id, name FROM accounts WHERE name = ?1",
                [account_name],
                |row| Ok((row.get(0)?, row.get(1)?)),
            )
            .optional()?;
        let Some((account_id, name)) = account else {
            return Err(KeyError::UnknownAccount(account_name.to_owned()));
        };
        let added = tx.execute(
            "INSERT INTO account_keys (account_id, public_key, fingerprint, added_at)
             VALUES (?1, ?2, ?3, strftime('%Y-%m-%dT%H:%M:%fZ','now'))
             ON CONFLICT (account_id, fingerprint) DO NOTHING",
            (account_id, &text, &fingerprint),
        )?;
        if added > 0 {
            let params = serde_json::json!({
                "fingerprint": fingerprint,
                "algorithm": key.algorithm().as_str(),
                "comment": key.comment().as_str_lossy(),
            });
            let entry = actor.entry(events::ACCOUNT, events::KEY_ADDED, &name, "", params);
            tapline_audit::append(tx, &entry)?;
        }
        Ok(())
    })?;
    Ok(fingerprint)
}

/// The keys `name` may log in with (no keys for an unknown name). Names ignore case.
pub fn keys_for(store: &Store, name: &str) -> Result<Vec<AccountKey>, KeyError> {
    let rows: Vec<(String, String, String)> = store.read(|conn| {
        let mut statement = conn.prepare(
            "SELECT k.public_key, k.fingerprint, k.added_at
             FROM account_keys k JOIN accounts a ON a.id = k.account_id
             WHERE a.name = ?1 ORDER BY k.id",
        )?;
        statement
            .query_map([name], |row| Ok((row.get(0)?, row.get(1)?, row.get(2)?)))?
            .collect::<rusqlite::Result<_>>()
    })?;
    // A stored key that no longer parses (written by a newer release) grants nothing.
    Ok(rows
        .into_iter()
        .filter_map(|(text, fingerprint, added_at)| {
            let public_key = PublicKey::from_openssh(&text).ok()?;
            Some(AccountKey {
                public_key,
                fingerprint,
                added_at,
            })
        })
        .collect())
}

/// Removes the key with `fingerprint` from `name`; returns whether it was there.
pub fn remove_key(
    store: &Store,
    name: &str,
    fingerprint: &str,
    actor: &Actor<'_>,
) -> Result<bool, KeyError> {
    store.write(|tx| {
        let removed = tx.execute(
            "DELETE FROM account_keys
             WHERE fingerprint = ?2
               AND account_id = (SELECT id FROM accounts WHERE name = ?1)",
            (name, fingerprint),
        )?;
        if removed > 0 {
            let params = serde_json::json!({ "fingerprint": fingerprint, "key_removed": true });
            let entry = actor.entry(events::ACCOUNT, events::UPDATED, name, "", params);
            tapline_audit::append(tx, &entry)?;
        }
        Ok(removed > 0)
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::Role;

    // Made with `ssh-keygen -t ed25519 -C alice@example` and `-t rsa -b 1024`.
    const ED25519: &str = "ssh-ed25519 \
        AAAAC3NzaC1lZDI1NTE5AAAAIMW/b1AcafK9h1ClMhFEPGxnY/IDhpAbw1/hM47GCTfK alice@example";
    /// Its fingerprint, as `ssh-keygen -l` printed it.
    const ED25519_FINGERPRINT: &str = "SHA256:m4mM6eFno3qh1gup/lBPXpLLcPzsapaCVNuZvwozsHU";

    fn store() -> (tempfile::TempDir, Store) {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open_in(dir.path()).unwrap();
        crate::upsert(
            &store,
            "audrey",
            Role::Auditor,
            "auditor password",
            false,
            &Actor::SYSTEM,
        )
        .unwrap();
        (dir, store)
    }

    #[test]
    fn keys_are_added_once_listed_and_removed() {
        let (_dir, store) = store();
        let fingerprint = add_key(&store, "Audrey", ED25519, &Actor::SYSTEM).unwrap();
        assert_eq!(fingerprint, ED25519_FINGERPRINT);
        assert_eq!(
            add_key(&store, "audrey", &format!("  {ED25519}\n"), &Actor::SYSTEM).unwrap(),
            fingerprint
        );
        let keys = keys_for(&store, "AUDREY").unwrap();
        assert_eq!(keys.len(), 1, "the same key twice is one key");
        assert_eq!(keys[0].fingerprint, fingerprint);
        assert_eq!(keys[0].public_key.comment().as_str_lossy(), "alice@example");
        let audited: u32 = store
            .read(|conn| {
                conn.query_row(
                    "SELECT count(*) FROM audit_log WHERE sub_event = 'Key added'",
                    [],
                    |r| r.get(0),
                )
            })
            .unwrap();
        assert_eq!(audited, 1);
        assert!(remove_key(&store, "audrey", &fingerprint, &Actor::SYSTEM).unwrap());
        assert!(!remove_key(&store, "audrey", &fingerprint, &Actor::SYSTEM).unwrap());
        assert!(keys_for(&store, "audrey").unwrap().is_empty());
        assert!(keys_for(&store, "nobody").unwrap().is_empty());
    }

    #[test]
    fn bad_lines_weak_keys_and_unknown_accounts_are_refused() {
        let (_dir, store) = store();
        assert!(matches!(
            add_key(&store, "audrey", "ssh-ed25519 not-base64", &Actor::SYSTEM),
            Err(KeyError::Parse(_))
        ));
        assert!(matches!(
            add_key(&store, "nobody", ED25519, &Actor::SYSTEM),
            Err(KeyError::UnknownAccount(_))
        ));
        let rsa_1024 = "ssh-rsa AAAAB3NzaC1yc2EAAAADAQABAAAAgQDDRLxklKj8baAsiD3A3fN410vNydo84ccp\
            aQN9gbCPT5BZRStj1gi1frv744PPEY8VtVYd2/QDK9ygbpZl4ztZYKvyLtXp+0RGQxAvGtVtdFiiHtfWvgN4vRd\
            eFVEVDYEC3ynrfONVRG/mbcVITuwmp33TKo3Cw2OoXn6DNLFakQ== weak";
        match parse(rsa_1024) {
            Err(KeyError::Unsupported(algorithm)) => assert_eq!(algorithm, "ssh-rsa"),
            other => panic!("{other:?}"),
        }
    }
}
