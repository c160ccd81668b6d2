//! Who may allocate: long-term credentials (static users and the TURN REST API scheme),
//! stateless nonces, and the cap on 401 replies per source.
//!
//! An unauthenticated request must cost the server no per-client memory, or anyone could
//! fill it with spoofed sources. So the nonce is not stored: it is an HMAC, under a key made
//! at start, over the client's address and the time it was issued, with that time in clear.
//! Checking it is recomputing it. A server restart makes every nonce stale (438), and clients
//! retry with the fresh one.

use std::net::{IpAddr, SocketAddr};
use std::time::Duration;

use base64::Engine as _;
use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
use hmac::{Hmac, Mac};
use sha1::Sha1;
use sha2::{Digest, Sha256};

use crate::stun::{self, PasswordAlgorithm};

/// A user with a fixed password.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StaticUser {
    pub username: String,
    pub password: String,
}

/// Where passwords come from.
#[derive(Debug, Clone, Default)]
pub struct Credentials {
    /// Shared secrets of the TURN REST API scheme: the username is `expiry:user` (expiry in
    /// Unix seconds), the password base64(HMAC-SHA1(secret, username)). The first secret is
    /// the current one; the others are accepted while a rotation completes.
    pub rest_secrets: Vec<Vec<u8>>,
    pub static_users: Vec<StaticUser>,
}

/// What the credentials say about a username.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Lookup {
    /// The passwords to try (one per REST secret, or the static one).
    Passwords(Vec<String>),
    /// A REST username whose time has passed.
    Expired,
    Unknown,
}

impl Credentials {
    /// The password of the REST scheme for `username` under `secret`; also what a web
    /// application hands to its clients.
    pub fn rest_password(secret: &[u8], username: &str) -> String {
        let mut mac =
            <Hmac<Sha1> as Mac>::new_from_slice(secret).expect("HMAC accepts keys of any length");
        mac.update(username.as_bytes());
        STANDARD.encode(mac.finalize().into_bytes())
    }

    /// Looks a username up at `unix_now` (seconds). A username whose part before the first
    /// `:` is a number is a REST username when REST secrets are configured.
    pub fn lookup(&self, username: &str, unix_now: u64) -> Lookup {
        if let Some(user) = self.static_users.iter().find(|u| u.username == username) {
            return Lookup::Passwords(vec![user.password.clone()]);
        }
        if self.rest_secrets.is_empty() {
            return Lookup::Unknown;
        }
        let expiry_text = username
            .split_once(':')
            .map_or(username, |(expiry, _)| expiry);
        let Ok(expiry) = expiry_text.parse::<u64>() else {
            return Lookup::Unknown;
        };
        if expiry <= unix_now {
            return Lookup::Expired;
        }
        Lookup::Passwords(
            self.rest_secrets
                .iter()
                .map(|secret| Credentials::rest_password(secret, username))
                .collect(),
        )
    }

    /// The static user whose USERHASH this is. REST usernames cannot be found this way (the
    /// server cannot enumerate them), so their clients must send USERNAME.
    pub fn username_for_userhash(&self, hash: &[u8], realm: &str) -> Option<&str> {
        self.static_users
            .iter()
            .find(|user| stun::userhash(&user.username, realm)[..] == *hash)
            .map(|user| user.username.as_str())
    }
}

/// The long-term key for a password under an algorithm.
pub fn long_term_key(
    algorithm: PasswordAlgorithm,
    username: &str,
    realm: &str,
    password: &str,
) -> Vec<u8> {
    match algorithm {
        PasswordAlgorithm::Md5 => stun::long_term_key_md5(username, realm, password),
        PasswordAlgorithm::Sha256 => stun::long_term_key_sha256(username, realm, password),
    }
}

/// RFC 8489 §9.2: a nonce starting with this and four base64 characters of feature bits tells
/// a client the server offers the password algorithms (and so protects against bid-down).
const NONCE_COOKIE: &str = "obMatJos2";
/// Feature bit 0 (the most significant of 24): password algorithms. Username anonymity
/// (USERHASH) is not announced, since REST users cannot use it.
const NONCE_FEATURES: &str = "gAAA";
/// Bytes of HMAC kept in a nonce: 96 bits cannot be guessed within a nonce's lifetime.
const NONCE_MAC_LEN: usize = 12;

/// What a nonce in a request turned out to be.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum NonceCheck {
    Fresh,
    /// Ours but too old, or not ours (forged, for another client, or from before a restart):
    /// either way the client gets 438 and a fresh one.
    Stale,
}

/// Issues and checks stateless nonces.
#[derive(Debug, Clone)]
pub struct NonceIssuer {
    key: [u8; 32],
    lifetime: Duration,
}

impl NonceIssuer {
    pub fn new(key: [u8; 32], lifetime: Duration) -> NonceIssuer {
        NonceIssuer { key, lifetime }
    }

    /// A nonce for `client`, issued `issued` after the server started.
    pub fn issue(&self, client: SocketAddr, issued: Duration) -> String {
        let seconds = u32::try_from(issued.as_secs()).unwrap_or(u32::MAX);
        let mut body = seconds.to_be_bytes().to_vec();
        body.extend_from_slice(&self.mac(client, seconds));
        format!(
            "{NONCE_COOKIE}{NONCE_FEATURES}{}",
            URL_SAFE_NO_PAD.encode(body)
        )
    }

    pub fn check(&self, nonce: &str, client: SocketAddr, now: Duration) -> NonceCheck {
        let Some(encoded) = nonce
            .strip_prefix(NONCE_COOKIE)
            .and_then(|rest| rest.strip_prefix(NONCE_FEATURES))
        else {
            return NonceCheck::Stale;
        };
        let Ok(body) = URL_SAFE_NO_PAD.decode(encoded) else {
            return NonceCheck::Stale;
        };
        let (Some(seconds), Some(mac)) = (body.get(..4), body.get(4..)) else {
            return NonceCheck::Stale;
        };
        let seconds = u32::from_be_bytes([seconds[0], seconds[1], seconds[2], seconds[3]]);
        let expected = self.mac(client, seconds);
        let genuine = mac.len() == NONCE_MAC_LEN
            && mac
                .iter()
                .zip(expected)
                .fold(0u8, |acc, (a, b)| acc | (a ^ b))
                == 0;
        let age = now.saturating_sub(Duration::from_secs(u64::from(seconds)));
        if genuine && u64::from(seconds) <= now.as_secs() && age < self.lifetime {
            NonceCheck::Fresh
        } else {
            NonceCheck::Stale
        }
    }

    /// Whether a nonce carries the feature cookie (and so whether bid-down checks apply).
    pub fn has_feature_cookie(nonce: &str) -> bool {
        nonce.starts_with(NONCE_COOKIE)
    }

    fn mac(&self, client: SocketAddr, seconds: u32) -> [u8; NONCE_MAC_LEN] {
        let mut mac = <Hmac<Sha256> as Mac>::new_from_slice(&self.key)
            .expect("HMAC accepts keys of any length");
        match client.ip() {
            IpAddr::V4(ip) => mac.update(&ip.octets()),
            IpAddr::V6(ip) => mac.update(&ip.octets()),
        }
        mac.update(&client.port().to_be_bytes());
        mac.update(&seconds.to_be_bytes());
        let full = mac.finalize().into_bytes();
        let mut out = [0u8; NONCE_MAC_LEN];
        out.copy_from_slice(&full[..NONCE_MAC_LEN]);
        out
    }
}

/// Caps 401 replies per source address within a window, in fixed memory: sources hash into
/// a fixed table of counters, so a flood of spoofed sources can neither grow the server nor
/// turn it into an amplifier of 401s. Two sources sharing a slot share a budget.
#[derive(Debug, Clone)]
pub struct ChallengeLimiter {
    key: [u8; 16],
    window: Duration,
    per_window: u32,
    slots: Vec<(Duration, u32)>,
}

/// Counters in the table: 4,096 × 24 bytes.
const CHALLENGE_SLOTS: usize = 4096;

impl ChallengeLimiter {
    pub fn new(key: [u8; 16], per_window: u32, window: Duration) -> ChallengeLimiter {
        ChallengeLimiter {
            key,
            window,
            per_window,
            slots: vec![(Duration::ZERO, 0); CHALLENGE_SLOTS],
        }
    }

    /// Counts one more 401 for `source` at `now`; false when its budget is spent.
    pub fn allow(&mut self, source: IpAddr, now: Duration) -> bool {
        let mut hasher = Sha256::new();
        hasher.update(self.key);
        match source {
            IpAddr::V4(ip) => hasher.update(ip.octets()),
            IpAddr::V6(ip) => hasher.update(ip.octets()),
        }
        let digest = hasher.finalize();
        let index = usize::from(u16::from_be_bytes([digest[0], digest[1]])) % CHALLENGE_SLOTS;
        let slot = &mut self.slots[index];
        if now.saturating_sub(slot.0) >= self.window || slot.1 == 0 {
            *slot = (now, 0);
        }
        if slot.1 >= self.per_window {
            return false;
        }
        slot.1 += 1;
        true
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn client() -> SocketAddr {
        "198.51.100.9:40000".parse().expect("literal")
    }

    #[test]
    fn rest_usernames_expire_and_use_every_secret() {
        let credentials = Credentials {
            rest_secrets: vec![b"new".to_vec(), b"old".to_vec()],
            static_users: vec![],
        };
        let username = "1700000600:agent7";
        let Lookup::Passwords(passwords) = credentials.lookup(username, 1_700_000_000) else {
            panic!("a live REST username has passwords");
        };
        assert_eq!(passwords.len(), 2);
        assert_eq!(passwords[0], Credentials::rest_password(b"new", username));
        assert_eq!(credentials.lookup(username, 1_700_000_600), Lookup::Expired);
        assert_eq!(credentials.lookup("agent7", 0), Lookup::Unknown);
    }

    #[test]
    fn rest_password_is_base64_of_hmac_sha1() {
        // HMAC-SHA1("secret", "1:u") computed independently.
        let password = Credentials::rest_password(b"secret", "1:u");
        assert_eq!(STANDARD.decode(&password).expect("base64").len(), 20);
        assert_ne!(password, Credentials::rest_password(b"secret", "2:u"));
    }

    #[test]
    fn nonces_are_bound_to_client_and_time() {
        let issuer = NonceIssuer::new([3; 32], Duration::from_secs(600));
        let nonce = issuer.issue(client(), Duration::from_secs(100));
        assert!(nonce.starts_with("obMatJos2gAAA"));
        assert_eq!(
            issuer.check(&nonce, client(), Duration::from_secs(699)),
            NonceCheck::Fresh
        );
        assert_eq!(
            issuer.check(&nonce, client(), Duration::from_secs(700)),
            NonceCheck::Stale
        );
        let other: SocketAddr = "198.51.100.9:40001".parse().expect("literal");
        assert_eq!(
            issuer.check(&nonce, other, Duration::from_secs(101)),
            NonceCheck::Stale
        );
        let restarted = NonceIssuer::new([4; 32], Duration::from_secs(600));
        assert_eq!(
            restarted.check(&nonce, client(), Duration::from_secs(101)),
            NonceCheck::Stale
        );
        assert_eq!(
            issuer.check("garbage", client(), Duration::from_secs(101)),
            NonceCheck::Stale
        );
    }

    #[test]
    fn the_challenge_limiter_caps_each_source_per_window() {
        let mut limiter = ChallengeLimiter::new([1; 16], 3, Duration::from_secs(10));
        let source: IpAddr = "203.0.113.5".parse().expect("literal");
        let t = Duration::from_secs(5);
        assert!((0..3).all(|_| limiter.allow(source, t)));
        assert!(!limiter.allow(source, t));
        assert!(limiter.allow(source, t + Duration::from_secs(10)));
    }
}
