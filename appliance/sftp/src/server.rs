//! The SSH side: the accept loop with its limits, each connection's lifetime (login grace,
//! idle timeout, shutdown) and the russh [`Handler`] that authenticates and starts the `sftp`
//! subsystem.

use std::borrow::Cow;
use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use russh::keys::{Algorithm, EcdsaCurve, HashAlg, PrivateKey};
use russh::server::{Auth, ChannelOpenHandle, Handler, Msg, PublicKeyOffer, Session};
use russh::server::{VerifiedPublicKey, run_stream};
use russh::{
    Channel, ChannelId, ChannelOpenFailure, Disconnect, MethodKind, MethodSet, Preferred, SshId,
    cipher, compression, kex, mac,
};
use tapline_accounts::login::Principal;
use tapline_audit::events;
use tapline_runtime::CancellationToken;
use tapline_runtime::supervisor::error_chain;
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{OwnedSemaphorePermit, Semaphore};
use tokio::task::JoinSet;
use tokio::time::Instant;

use crate::audit::{AuditLog, Record, Who};
use crate::auth::{Attempt, AuthError, Gate, Proof};
use crate::channel::{ChannelContext, ChannelInput, InputError};
use crate::jail::Jail;
use crate::stream::{ClientIdent, Cut, GuardedStream};

/// A connection that has not logged in by then is closed, as OpenSSH's `LoginGraceTime`.
pub(crate) const LOGIN_GRACE: Duration = Duration::from_secs(60);
/// Authentication requests per connection, as OpenSSH's `MaxAuthTries`.
pub(crate) const MAX_AUTH_ATTEMPTS: usize = 6;
/// Session channels per connection; each has a thread.
pub(crate) const MAX_CHANNELS: usize = 4;
/// How long connections get to finish once the service is stopping.
pub(crate) const DRAIN_TIMEOUT: Duration = Duration::from_secs(10);
/// How long a closing connection's goodbye may take before its socket is cut.
const GOODBYE: Duration = Duration::from_secs(2);
/// How often a connection looks at its idle time.
const IDLE_CHECK: Duration = Duration::from_secs(1);

const KEX: &[kex::Name] = &[
    kex::MLKEM768X25519_SHA256,
    kex::CURVE25519,
    kex::CURVE25519_PRE_RFC_8731,
    kex::ECDH_SHA2_NISTP256,
    kex::ECDH_SHA2_NISTP384,
    kex::ECDH_SHA2_NISTP521,
    kex::EXTENSION_SUPPORT_AS_CLIENT,
    kex::EXTENSION_SUPPORT_AS_SERVER,
    kex::EXTENSION_OPENSSH_STRICT_KEX_AS_CLIENT,
    kex::EXTENSION_OPENSSH_STRICT_KEX_AS_SERVER,
];

/// Host key algorithms, and the signature algorithms announced for user keys: no `ssh-rsa`
/// (SHA-1), no DSA.
const KEYS: &[Algorithm] = &[
    Algorithm::Ed25519,
    Algorithm::Ecdsa {
        curve: EcdsaCurve::NistP256,
    },
    Algorithm::Ecdsa {
        curve: EcdsaCurve::NistP384,
    },
    Algorithm::Ecdsa {
        curve: EcdsaCurve::NistP521,
    },
    Algorithm::Rsa {
        hash: Some(HashAlg::Sha512),
    },
    Algorithm::Rsa {
        hash: Some(HashAlg::Sha256),
    },
];

/// AEAD first; CTR only with encrypt-then-MAC SHA-2; never CBC.
const CIPHERS: &[cipher::Name] = &[
    cipher::CHACHA20_POLY1305,
    cipher::AES_256_GCM,
    cipher::AES_128_GCM,
    cipher::AES_256_CTR,
    cipher::AES_192_CTR,
    cipher::AES_128_CTR,
];

const MACS: &[mac::Name] = &[mac::HMAC_SHA512_ETM, mac::HMAC_SHA256_ETM];

/// Recordings are compressed audio or PCM that barely shrinks; compression would only cost.
const COMPRESSION: &[compression::Name] = &[compression::NONE];

/// The SSH configuration: modern algorithms only, password and public-key logins.
pub(crate) fn ssh_config(host_key: PrivateKey) -> russh::server::Config {
    russh::server::Config {
        server_id: SshId::Standard(Cow::Borrowed("SSH-2.0-Tapline")),
        methods: MethodSet::from(&[MethodKind::Password, MethodKind::PublicKey][..]),
        // Failed passwords wait FAILURE_DELAY in `auth.rs`; key probes and the initial
        // "none" are no failures and are answered at once.
        auth_rejection_time: Duration::ZERO,
        auth_rejection_time_initial: Some(Duration::ZERO),
        keys: vec![host_key],
        max_auth_attempts: MAX_AUTH_ATTEMPTS,
        // Idle time is measured in SFTP requests, below, not in SSH packets.
        inactivity_timeout: None,
        keepalive_interval: None,
        preferred: Preferred {
            kex: Cow::Borrowed(KEX),
            key: Cow::Borrowed(KEYS),
            host_key_certificates: Cow::Borrowed(&[]),
            cipher: Cow::Borrowed(CIPHERS),
            mac: Cow::Borrowed(MACS),
            compression: Cow::Borrowed(COMPRESSION),
        },
        ..Default::default()
    }
}

/// What every connection shares.
pub(crate) struct Shared {
    pub(crate) ssh: Arc<russh::server::Config>,
    pub(crate) gate: Arc<Gate>,
    pub(crate) jail: Arc<Jail>,
    pub(crate) audit: AuditLog,
    pub(crate) sessions: Arc<AccountSessions>,
    pub(crate) idle_timeout: Duration,
    pub(crate) runtime: tokio::runtime::Handle,
}

/// Accepts connections until `shutdown`, then gives them [`DRAIN_TIMEOUT`] to end.
pub(crate) async fn serve(
    listener: TcpListener,
    shared: Arc<Shared>,
    max_connections: usize,
    shutdown: CancellationToken,
) -> std::io::Result<()> {
    let slots = Arc::new(Semaphore::new(max_connections));
    let mut connections = JoinSet::new();
    loop {
        let (socket, peer) = tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok(accepted) => accepted,
                Err(err) if is_transient(&err) => {
                    tracing::warn!(error = %err, "SFTP accept failed; pausing");
                    tokio::time::sleep(Duration::from_millis(100)).await;
                    continue;
                }
                Err(err) => return Err(err),
            },
            Some(_) = connections.join_next() => continue,
            () = shutdown.cancelled() => break,
        };
        let Ok(slot) = slots.clone().try_acquire_owned() else {
            tracing::warn!(
                limit = max_connections,
                "SFTP connection limit reached; closing a new connection"
            );
            continue;
        };
        connections.spawn(connection(
            socket,
            peer,
            shared.clone(),
            slot,
            shutdown.clone(),
        ));
    }
    drop(listener);
    let drained = tokio::time::timeout(DRAIN_TIMEOUT, async {
        while connections.join_next().await.is_some() {}
    })
    .await;
    if drained.is_err() {
        tracing::warn!("SFTP connections still open after the drain timeout; closing them");
        connections.shutdown().await;
    }
    Ok(())
}

fn is_transient(err: &std::io::Error) -> bool {
    use std::io::ErrorKind::*;
    matches!(
        err.kind(),
        ConnectionAborted | ConnectionReset | Interrupted | WouldBlock
    ) || err.raw_os_error().is_some_and(|code| {
        code == rustix::io::Errno::MFILE.raw_os_error()
            || code == rustix::io::Errno::NFILE.raw_os_error()
    })
}

/// One connection, from the first byte to the last.
async fn connection(
    socket: TcpStream,
    peer: SocketAddr,
    shared: Arc<Shared>,
    _slot: OwnedSemaphorePermit,
    shutdown: CancellationToken,
) {
    // Requests and replies are small and answered one by one; Nagle would delay them.
    let _ = socket.set_nodelay(true);
    let started = Instant::now();
    let cut = Cut::new();
    // However this task ends, even aborted, the session under it ends with it.
    let _cut_on_exit = cut.clone().drop_guard();
    let ident = ClientIdent::default();
    let state = Arc::new(ConnectionState::new());
    let handler = Connection::new(shared.clone(), peer, ident.clone(), state.clone());
    let stream = GuardedStream::new(socket, &cut, ident);
    let starting = run_stream(shared.ssh.clone(), stream, handler);
    let session = tokio::select! {
        running = tokio::time::timeout(LOGIN_GRACE, starting) => match running {
            Ok(Ok(session)) => session,
            Ok(Err(err)) => {
                tracing::debug!(
                    error = %error_chain(&err),
                    "SSH connection failed before its key exchange"
                );
                return;
            }
            Err(_) => return,
        },
        () = shutdown.cancelled() => return,
    };
    let handle = session.handle();
    let mut session = session;
    let login_deadline = tokio::time::sleep_until(started + LOGIN_GRACE);
    tokio::pin!(login_deadline);
    let mut grace_over = false;
    let mut ticks = tokio::time::interval(IDLE_CHECK);
    let goodbye = loop {
        tokio::select! {
            ended = &mut session => {
                if let Err(err) = ended {
                    tracing::debug!(error = %error_chain(&err), "SSH connection ended");
                }
                return;
            }
            () = shutdown.cancelled() => break "Tapline is shutting down",
            () = &mut login_deadline, if !grace_over && !state.authenticated() => {
                tracing::debug!("no login within the grace time; closing");
                grace_over = true;
                cut.cancel();
            }
            _ = ticks.tick() => {
                if state.authenticated() && state.idle_for() >= shared.idle_timeout {
                    tracing::info!("closing an idle SFTP session");
                    break "idle timeout";
                }
            }
        }
    };
    let farewell = handle.disconnect(Disconnect::ByApplication, goodbye.to_owned(), String::new());
    let _ = tokio::time::timeout(GOODBYE, farewell).await;
    if tokio::time::timeout(GOODBYE, &mut session).await.is_err() {
        // Whatever it was waiting for (a client that reads nothing), the session ends now.
        cut.cancel();
        let _ = session.await;
    }
}

/// What a connection's task watches: set by its handler.
#[derive(Debug)]
struct ConnectionState {
    authenticated: AtomicBool,
    last_request: Mutex<Instant>,
}

impl ConnectionState {
    fn new() -> ConnectionState {
        ConnectionState {
            authenticated: AtomicBool::new(false),
            last_request: Mutex::new(Instant::now()),
        }
    }

    fn authenticated(&self) -> bool {
        self.authenticated.load(Ordering::Acquire)
    }

    fn touch(&self) {
        // A timestamp, whole after any panic.
        *self
            .last_request
            .lock()
            .unwrap_or_else(PoisonError::into_inner) = Instant::now();
    }

    fn idle_for(&self) -> Duration {
        self.last_request
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .elapsed()
    }
}

/// Sessions open per login name (names ignore case), bounded by
/// `max_connections_per_account`.
#[derive(Debug)]
pub(crate) struct AccountSessions {
    max: u32,
    open: Mutex<HashMap<String, u32>>,
}

impl AccountSessions {
    pub(crate) fn new(max: u32) -> AccountSessions {
        AccountSessions {
            max,
            open: Mutex::new(HashMap::new()),
        }
    }

    /// A slot for one more session of `name`, if it has fewer than the maximum.
    fn try_acquire(self: &Arc<Self>, name: &str) -> Option<AccountSlot> {
        let key = name.to_ascii_lowercase();
        let mut open = self.open.lock().unwrap_or_else(PoisonError::into_inner);
        let count = open.entry(key.clone()).or_insert(0);
        if *count >= self.max {
            if *count == 0 {
                open.remove(&key);
            }
            return None;
        }
        *count += 1;
        Some(AccountSlot {
            sessions: self.clone(),
            key,
        })
    }
}

/// One session's place in [`AccountSessions`], given back when dropped.
#[derive(Debug)]
struct AccountSlot {
    sessions: Arc<AccountSessions>,
    key: String,
}

impl Drop for AccountSlot {
    fn drop(&mut self) {
        // Counts are plain numbers, consistent after any panic.
        let mut open = self
            .sessions
            .open
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        if let Some(count) = open.get_mut(&self.key) {
            *count = count.saturating_sub(1);
            if *count == 0 {
                open.remove(&self.key);
            }
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub(crate) enum ConnectionError {
    #[error(transparent)]
    Ssh(#[from] russh::Error),
    #[error("login check failed")]
    Auth(#[from] AuthError),
    #[error("SFTP input refused")]
    Input(#[from] InputError),
    #[error("cannot start an SFTP channel")]
    Thread(#[source] std::io::Error),
}

/// One SSH connection, as russh sees it.
struct Connection {
    shared: Arc<Shared>,
    peer: SocketAddr,
    session_id: String,
    ident: ClientIdent,
    state: Arc<ConnectionState>,
    login: Option<LoggedIn>,
    /// Open session channels, with their SFTP input once the subsystem started.
    channels: HashMap<ChannelId, Option<ChannelInput>>,
}

struct LoggedIn {
    who: Arc<Who>,
    _slot: AccountSlot,
}

impl Connection {
    fn new(
        shared: Arc<Shared>,
        peer: SocketAddr,
        ident: ClientIdent,
        state: Arc<ConnectionState>,
    ) -> Connection {
        Connection {
            shared,
            peer,
            session_id: session_id(),
            ident,
            state,
            login: None,
            channels: HashMap::new(),
        }
    }

    fn attempt(&self, user: &str) -> Attempt {
        Attempt {
            user: user.to_owned(),
            ip: self.peer.ip().to_canonical(),
            session: self.session_id.clone(),
            client: self.ident.get().cloned().unwrap_or_default(),
        }
    }

    /// Logs in by `proof`, within the per-login session limit.
    async fn log_in(&mut self, user: &str, proof: Proof) -> Result<Auth, ConnectionError> {
        let attempt = self.attempt(user);
        let Some(slot) = self.shared.sessions.try_acquire(user) else {
            // Refused as slowly as a wrong password, so that the answer tells nothing.
            let delay = tokio::time::sleep(self.shared.gate.failure_delay);
            self.refuse_busy(&attempt).await;
            delay.await;
            return Ok(Auth::reject());
        };
        match self.shared.gate.login(&attempt, proof).await? {
            Some(principal) => {
                self.admit(&attempt, &principal, slot);
                Ok(Auth::Accept)
            }
            None => Ok(Auth::reject()),
        }
    }

    fn admit(&mut self, attempt: &Attempt, principal: &Principal, slot: AccountSlot) {
        // Who and from where is the audit log's business; the journal gets the session id
        // to find the rows by.
        tracing::info!(session = %self.session_id, "SFTP login");
        self.login = Some(LoggedIn {
            who: Arc::new(Who {
                username: principal.name().to_owned(),
                ip: attempt.ip.to_string(),
                session: attempt.session.clone(),
                client: attempt.client.clone(),
            }),
            _slot: slot,
        });
        self.state.authenticated.store(true, Ordering::Release);
        self.state.touch();
    }

    async fn refuse_busy(&self, attempt: &Attempt) {
        let max = self.shared.sessions.max;
        let who = Who {
            username: attempt.user.chars().take(256).collect(),
            ip: attempt.ip.to_string(),
            session: attempt.session.clone(),
            client: attempt.client.clone(),
        };
        let object = who.username.clone();
        self.shared
            .audit
            .record(Record {
                who: Arc::new(who),
                sub_event: events::LOGIN_FAILED,
                object,
                params: serde_json::json!({
                    "reason": format!("already {max} sessions open for this login"),
                }),
            })
            .await;
    }
}

impl Handler for Connection {
    type Error = ConnectionError;

    async fn auth_none(&mut self, _user: &str) -> Result<Auth, Self::Error> {
        Ok(Auth::reject())
    }

    async fn auth_password(&mut self, user: &str, password: &str) -> Result<Auth, Self::Error> {
        self.log_in(user, Proof::Password(password.to_owned()))
            .await
    }

    async fn auth_publickey_offered(
        &mut self,
        user: &str,
        offer: PublicKeyOffer<'_>,
    ) -> Result<Auth, Self::Error> {
        let accepted = self
            .shared
            .gate
            .accepts_key(user, offer.public_key, offer.algorithm)
            .await?;
        Ok(if accepted {
            Auth::Accept
        } else {
            Auth::reject()
        })
    }

    async fn auth_publickey(
        &mut self,
        user: &str,
        key: VerifiedPublicKey<'_>,
    ) -> Result<Auth, Self::Error> {
        if matches!(key.algorithm, Algorithm::Rsa { hash: None }) {
            return Ok(Auth::reject());
        }
        self.log_in(user, Proof::Key(key.public_key.clone())).await
    }

    async fn channel_open_session(
        &mut self,
        channel: Channel<Msg>,
        reply: ChannelOpenHandle,
        _session: &mut Session,
    ) -> Result<(), Self::Error> {
        if self.login.is_none() || self.channels.len() >= MAX_CHANNELS {
            reply.reject(ChannelOpenFailure::ResourceShortage).await;
            return Ok(());
        }
        // Data is taken in `data` below, never through `channel`, so that the session loop
        // never waits on a full per-channel queue.
        self.channels.insert(channel.id(), None);
        reply.accept().await;
        Ok(())
    }

    async fn subsystem_request(
        &mut self,
        channel: ChannelId,
        name: &str,
        session: &mut Session,
    ) -> Result<(), Self::Error> {
        let (Some(login), Some(slot @ None)) = (&self.login, self.channels.get_mut(&channel))
        else {
            session.channel_failure(channel)?;
            return Ok(());
        };
        if name != "sftp" {
            session.channel_failure(channel)?;
            return Ok(());
        }
        let input = ChannelInput::start(ChannelContext {
            jail: self.shared.jail.clone(),
            handle: session.handle(),
            channel,
            runtime: self.shared.runtime.clone(),
            audit: self.shared.audit.clone(),
            who: login.who.clone(),
        })
        .map_err(ConnectionError::Thread)?;
        *slot = Some(input);
        session.channel_success(channel)?;
        Ok(())
    }

    async fn data(
        &mut self,
        channel: ChannelId,
        data: &[u8],
        _session: &mut Session,
    ) -> Result<(), Self::Error> {
        self.state.touch();
        if let Some(Some(input)) = self.channels.get_mut(&channel)
            && let Err(err) = input.handle_data(data)
        {
            tracing::warn!(
                session = %self.session_id,
                error = %error_chain(&err),
                "closing an SFTP connection"
            );
            return Err(err.into());
        }
        Ok(())
    }

    async fn channel_eof(
        &mut self,
        channel: ChannelId,
        _session: &mut Session,
    ) -> Result<(), Self::Error> {
        if let Some(Some(input)) = self.channels.get(&channel) {
            input.finish();
        }
        Ok(())
    }

    async fn channel_close(
        &mut self,
        channel: ChannelId,
        _session: &mut Session,
    ) -> Result<(), Self::Error> {
        self.channels.remove(&channel);
        Ok(())
    }

    async fn shell_request(
        &mut self,
        channel: ChannelId,
        session: &mut Session,
    ) -> Result<(), Self::Error> {
        session.channel_failure(channel)?;
        Ok(())
    }

    async fn exec_request(
        &mut self,
        channel: ChannelId,
        _data: &[u8],
        session: &mut Session,
    ) -> Result<(), Self::Error> {
        session.channel_failure(channel)?;
        Ok(())
    }

    async fn pty_request(
        &mut self,
        channel: ChannelId,
        _term: &str,
        _col_width: u32,
        _row_height: u32,
        _pix_width: u32,
        _pix_height: u32,
        _modes: &[(russh::Pty, u32)],
        session: &mut Session,
    ) -> Result<(), Self::Error> {
        session.channel_failure(channel)?;
        Ok(())
    }

    async fn env_request(
        &mut self,
        channel: ChannelId,
        _variable_name: &str,
        _variable_value: &str,
        session: &mut Session,
    ) -> Result<(), Self::Error> {
        session.channel_failure(channel)?;
        Ok(())
    }
}

/// 64 random bits, in hex: ties one connection's audit rows together.
fn session_id() -> String {
    let mut bytes = [0u8; 8];
    // Without randomness the id is still unique enough per process: a counter stands in.
    if getrandom::fill(&mut bytes).is_err() {
        static COUNTER: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(1);
        bytes = COUNTER.fetch_add(1, Ordering::Relaxed).to_be_bytes();
    }
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}
