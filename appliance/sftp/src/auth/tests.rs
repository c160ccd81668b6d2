use russh::keys::ssh_key::private::{Ed25519Keypair, KeypairData};
use tapline_accounts::Role;
use tapline_audit::Actor;

use super::*;

const TENANT: &str = "AcmeJets";
const DELAY: Duration = Duration::from_millis(150);

struct Fixture {
    _dir: tempfile::TempDir,
    gate: Arc<Gate>,
}

impl Fixture {
    fn new() -> Fixture {
        let dir = tempfile::tempdir().unwrap();
        let store = Arc::new(Store::open_in(dir.path()).unwrap());
        login::set_tenant_password(&store, TENANT, "tenant sftp password", &Actor::SYSTEM).unwrap();
        tapline_accounts::upsert(
            &store,
            "audrey",
            Role::Auditor,
            "auditor password",
            false,
            &Actor::SYSTEM,
        )
        .unwrap();
        tapline_accounts::upsert(
            &store,
            "sam",
            Role::Supervisor,
            "supervisor password",
            false,
            &Actor::SYSTEM,
        )
        .unwrap();
        keys::add_key(
            &store,
            "audrey",
            &key(1).to_openssh().unwrap(),
            &Actor::SYSTEM,
        )
        .unwrap();
        let gate = Arc::new(Gate {
            store,
            tenant: TENANT.to_owned(),
            policy: LockoutPolicy {
                failures_before_lockout: 3,
                lockout: Duration::from_secs(900),
            },
            throttle: new_throttle(),
            failure_delay: DELAY,
        });
        Fixture { _dir: dir, gate }
    }

    async fn password(&self, user: &str, password: &str, ip: &str) -> Option<Principal> {
        self.gate
            .login(&attempt(user, ip), Proof::Password(password.to_owned()))
            .await
            .unwrap()
    }

    /// (sub_event, username, comments) of every SFTP row.
    fn audit(&self) -> Vec<(String, String, String)> {
        self.gate
            .store
            .read(|conn| {
                let mut statement = conn.prepare(
                    "SELECT sub_event, username, comments FROM audit_log
                     WHERE event = 'SFTP' ORDER BY id",
                )?;
                statement
                    .query_map([], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)))?
                    .collect::<rusqlite::Result<Vec<_>>>()
            })
            .unwrap()
    }
}

fn key(seed: u8) -> PublicKey {
    let keypair = KeypairData::Ed25519(Ed25519Keypair::from_seed(&[seed; 32]));
    russh::keys::PrivateKey::new(keypair, "test")
        .unwrap()
        .public_key()
        .clone()
}

fn attempt(user: &str, ip: &str) -> Attempt {
    Attempt {
        user: user.to_owned(),
        ip: ip.parse().unwrap(),
        session: "0123456789abcdef".to_owned(),
        client: "SSH-2.0-test".to_owned(),
    }
}

#[tokio::test]
async fn the_tenant_and_sftp_accounts_log_in_by_password() {
    let fixture = Fixture::new();
    let tenant = fixture
        .password("acmejets", "tenant sftp password", "192.0.2.1")
        .await;
    assert_eq!(tenant.unwrap().name(), TENANT, "any case, stored name");
    let audrey = fixture
        .password("Audrey", "auditor password", "192.0.2.1")
        .await;
    assert_eq!(audrey.unwrap().name(), "audrey");
    assert_eq!(
        fixture
            .password("sam", "supervisor password", "192.0.2.1")
            .await,
        None,
        "supervisors do not hold SFTP"
    );
    let rows = fixture.audit();
    assert_eq!(rows[0], ("Login".into(), TENANT.into(), "".into()));
    assert_eq!(rows[1], ("Login".into(), "audrey".into(), "".into()));
    assert_eq!(rows[2].0, "Login failed");
}

#[tokio::test]
async fn every_failure_takes_the_same_fixed_time() {
    let fixture = Fixture::new();
    for (user, password) in [
        ("nobody", "whatever password"),
        ("audrey", "wrong password!"),
        (TENANT, "wrong password!"),
    ] {
        let started = Instant::now();
        assert_eq!(fixture.password(user, password, "192.0.2.2").await, None);
        assert!(started.elapsed() >= DELAY, "{user}");
    }
}

#[tokio::test]
async fn repeated_failures_lock_the_name_for_every_method_until_lifted() {
    let fixture = Fixture::new();
    for n in 0..3 {
        assert_eq!(
            fixture
                .password("audrey", "wrong password!", &format!("192.0.2.{n}"))
                .await,
            None
        );
    }
    assert_eq!(
        fixture
            .password("audrey", "auditor password", "198.51.100.1")
            .await,
        None,
        "locked, even with the right password from elsewhere"
    );
    assert!(
        !fixture
            .gate
            .accepts_key("audrey", &key(1), &Algorithm::Ed25519)
            .await
            .unwrap()
    );
    let subs: Vec<String> = fixture.audit().into_iter().map(|r| r.0).collect();
    assert_eq!(
        subs,
        [
            "Login failed",
            "Login failed",
            "Login failed",
            "Lockout",
            "Login failed"
        ]
    );
    let lockout = &fixture.audit()[3];
    assert!(lockout.2.starts_with("locked out until "), "{lockout:?}");
    assert!(fixture.audit()[4].2.contains("locked out until"));

    fixture
        .gate
        .store
        .write(|tx| lockout::lift(tx, "audrey"))
        .unwrap();
    assert!(
        fixture
            .password("audrey", "auditor password", "198.51.100.1")
            .await
            .is_some()
    );
}

#[tokio::test]
async fn unknown_names_lock_out_like_real_ones() {
    let fixture = Fixture::new();
    for _ in 0..3 {
        fixture.password("ghost", "guess", "192.0.2.9").await;
    }
    let subs: Vec<String> = fixture.audit().into_iter().map(|r| r.0).collect();
    assert_eq!(
        subs,
        ["Login failed", "Login failed", "Login failed", "Lockout"]
    );
}

#[tokio::test]
async fn a_source_that_keeps_failing_is_refused_whatever_it_tries() {
    let fixture = Fixture::new();
    for n in 0..SOURCE_MAX_FAILURES {
        fixture
            .password(&format!("user{n}"), "guess", "203.0.113.5")
            .await;
    }
    assert_eq!(
        fixture
            .password(TENANT, "tenant sftp password", "203.0.113.5")
            .await,
        None
    );
    let last = fixture.audit().pop().unwrap();
    assert!(
        last.2
            .starts_with("too many failed logins from this address"),
        "{last:?}"
    );
    assert!(
        fixture
            .password(TENANT, "tenant sftp password", "203.0.113.6")
            .await
            .is_some(),
        "other addresses are not held up"
    );
}

#[tokio::test]
async fn keys_the_account_holds_log_in_and_nothing_else() {
    let fixture = Fixture::new();
    let gate = &fixture.gate;
    assert!(
        gate.accepts_key("AUDREY", &key(1), &Algorithm::Ed25519)
            .await
            .unwrap()
    );
    assert!(
        !gate
            .accepts_key("audrey", &key(2), &Algorithm::Ed25519)
            .await
            .unwrap()
    );
    assert!(
        !gate
            .accepts_key("sam", &key(1), &Algorithm::Ed25519)
            .await
            .unwrap()
    );
    assert!(
        !gate
            .accepts_key(TENANT, &key(1), &Algorithm::Ed25519)
            .await
            .unwrap()
    );
    assert!(
        !gate
            .accepts_key("audrey", &key(1), &Algorithm::Rsa { hash: None })
            .await
            .unwrap(),
        "SHA-1 signatures are refused"
    );
    let principal = gate
        .login(&attempt("audrey", "192.0.2.1"), Proof::Key(key(1)))
        .await
        .unwrap();
    assert_eq!(principal.unwrap().name(), "audrey");
    let refused = gate
        .login(&attempt("audrey", "192.0.2.1"), Proof::Key(key(2)))
        .await
        .unwrap();
    assert_eq!(refused, None);
    let params: String = gate
        .store
        .read(|conn| {
            conn.query_row(
                "SELECT params FROM audit_log WHERE sub_event = 'Login' ORDER BY id DESC",
                [],
                |r| r.get(0),
            )
        })
        .unwrap();
    assert!(
        params.contains(&format!("\"key\":\"{}\"", keys::fingerprint(&key(1)))),
        "{params}"
    );
    assert!(params.contains("\"method\":\"publickey\""), "{params}");
}
