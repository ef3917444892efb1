//! Session tokens: `<payload>.<mac>`, both base64url, where the payload is
//! `v1|<session id>|<user>|<expiry, unix seconds>` and the MAC is
//! HMAC-SHA256 over the payload with the server's signing key.
//!
//! Verification is constant-time (ring's `hmac::verify`) and checks the
//! expiry; revocation (log out) is checked by the caller against the
//! revoked session ids, so a token can be cut off before it expires.

use base64::engine::general_purpose::URL_SAFE_NO_PAD as B64;
use base64::Engine;
use ring::hmac;
use ring::rand::{SecureRandom, SystemRandom};

use crate::chat::names::is_valid_user;

/// Longest token accepted, bytes; refuses oversized input before any work.
const MAX_TOKEN: usize = 512;

/// What a valid token says.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Claims {
    pub sid: String,
    pub user: String,
    /// Unix seconds.
    pub expires: u64,
}

/// Signs and checks tokens with one key.
pub struct Signer {
    key: hmac::Key,
}

impl Signer {
    pub fn new(secret: &[u8]) -> Signer {
        Signer {
            key: hmac::Key::new(hmac::HMAC_SHA256, secret),
        }
    }

    /// A random 256-bit key, for a single node without a configured key.
    pub fn random_secret() -> Vec<u8> {
        let mut secret = vec![0u8; 32];
        let _ = SystemRandom::new().fill(&mut secret);
        secret
    }

    /// A token for `user`, valid until `expires`, with a fresh session id.
    pub fn issue(&self, user: &str, expires: u64) -> (String, Claims) {
        let mut sid = [0u8; 12];
        let _ = SystemRandom::new().fill(&mut sid);
        let claims = Claims {
            sid: B64.encode(sid),
            user: user.to_string(),
            expires,
        };
        let payload = format!("v1|{}|{}|{}", claims.sid, claims.user, claims.expires);
        let mac = hmac::sign(&self.key, payload.as_bytes());
        let token = format!("{}.{}", B64.encode(&payload), B64.encode(mac.as_ref()));
        (token, claims)
    }

    /// The claims of a token with a valid MAC that has not expired at `now`.
    pub fn verify(&self, token: &str, now: u64) -> Option<Claims> {
        if token.len() > MAX_TOKEN {
            return None;
        }
        let (payload, mac) = token.split_once('.')?;
        let payload = B64.decode(payload).ok()?;
        let mac = B64.decode(mac).ok()?;
        hmac::verify(&self.key, &payload, &mac).ok()?;
        let payload = String::from_utf8(payload).ok()?;
        let mut fields = payload.split('|');
        let (Some("v1"), Some(sid), Some(user), Some(expires), None) = (
            fields.next(),
            fields.next(),
            fields.next(),
            fields.next(),
            fields.next(),
        ) else {
            return None;
        };
        let expires: u64 = expires.parse().ok()?;
        if expires <= now || !is_valid_user(user) {
            return None;
        }
        Some(Claims {
            sid: sid.to_string(),
            user: user.to_string(),
            expires,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn issued_tokens_verify_until_they_expire() {
        let s = Signer::new(b"k");
        let (token, claims) = s.issue("alice", 1000);
        assert_eq!(s.verify(&token, 999), Some(claims));
        assert_eq!(s.verify(&token, 1000), None, "expired");
    }

    #[test]
    fn tampered_or_foreign_tokens_fail() {
        let s = Signer::new(b"k");
        let (token, _) = s.issue("alice", 1000);
        assert_eq!(Signer::new(b"other").verify(&token, 1), None);
        let (payload, mac) = token.split_once('.').unwrap();
        let forged = B64.encode(format!("v1|x|mallory|{}", u64::MAX));
        assert_eq!(s.verify(&format!("{forged}.{mac}"), 1), None);
        let mut bytes = B64.decode(payload).unwrap();
        bytes[3] ^= 1;
        assert_eq!(s.verify(&format!("{}.{mac}", B64.encode(bytes)), 1), None);
        for junk in ["", ".", "a.b", "no-dot", &"x".repeat(600)] {
            assert_eq!(s.verify(junk, 1), None, "{junk}");
        }
    }
}
