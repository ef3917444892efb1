//! Who the clients are, and what they show the server to prove it.
//!
//! - Guests by default: `?name=`, for servers started with
//!   `--allow-guests`.
//! - `--session-key-file`: users whose tokens are minted here, per
//!   connect, with the server's own token code and its signing key, so
//!   no request precedes the upgrade and the server need not allow guests.
//! - `--signup`: users whose tokens come from the server's account API
//!   before the run ([`crate::signup`]); slow (a password hash each), but
//!   it needs no key, only an open sign-up.
//!
//! Client `n` is always `PREFIXn`, so a reconnect or a churn loop comes
//! back as the same user. User names must pass the server's rules; sign-up
//! folds them to lower case, so upper case is refused here rather than
//! minting a name no account could have.

use std::path::Path;
use std::time::Duration;

use parley::auth::token::Signer;
use parley::auth::unix_now;
use parley::chat::names::is_valid_user;
use parley::config::decode_hex_key;

use crate::cli::Common;
use crate::signup;
use crate::target::{Identity, Targets};

/// How long a minted token stays valid: longer than any run, short
/// enough that a token copied out of a capture is soon worthless.
const MINTED_TTL_SECS: u64 = 24 * 3600;

pub enum Credentials {
    Guest {
        prefix: String,
    },
    Minted {
        prefix: String,
        signer: Signer,
    },
    /// Token of client `n` at index `n`.
    SignedUp {
        tokens: Vec<String>,
    },
}

impl Credentials {
    /// The credentials `common` asks for, for clients `0..total`. With
    /// `--signup` this signs every client up before it returns.
    pub fn new(common: &Common, targets: &Targets, total: usize) -> Result<Self, String> {
        let prefix = common.name_prefix.clone();
        if let Some(path) = &common.session_key_file {
            check_names(&prefix, total)?;
            let signer = Signer::new(&read_key(path)?);
            return Ok(Credentials::Minted { prefix, signer });
        }
        if let Some(password) = &common.signup {
            check_names(&prefix, total)?;
            let timeout = Duration::from_secs(common.connect_timeout);
            let threads = common.thread_count();
            let tokens = signup::sessions(targets, &prefix, total, password, threads, timeout)?;
            return Ok(Credentials::SignedUp { tokens });
        }
        Ok(Credentials::Guest { prefix })
    }

    /// How client `n` identifies itself on its next connect.
    pub fn identity(&self, n: usize) -> Identity {
        match self {
            Credentials::Guest { prefix } => Identity::Guest(format!("{prefix}{n}")),
            Credentials::Minted { prefix, signer } => {
                let expires = unix_now().saturating_add(MINTED_TTL_SECS);
                let (token, _) = signer.issue(&format!("{prefix}{n}"), expires);
                Identity::Bearer(token)
            }
            // An empty token is refused (401) like any bad one; it cannot
            // happen, since sign-up fills every slot or fails the run.
            Credentials::SignedUp { tokens } => {
                Identity::Bearer(tokens.get(n).cloned().unwrap_or_default())
            }
        }
    }
}

/// The server's signing key, from a file of hex as the server reads it.
fn read_key(path: &Path) -> Result<Vec<u8>, String> {
    let shown = path.display();
    let text = std::fs::read_to_string(path).map_err(|e| format!("{shown}: {e}"))?;
    decode_hex_key(&text)
        .ok_or_else(|| format!("{shown}: must hold the server's session key, 64+ hex digits"))
}

/// Whether every name `PREFIX0..PREFIX{total-1}` is a user name the
/// server accepts: the longest decides, since digits are always allowed.
fn check_names(prefix: &str, total: usize) -> Result<(), String> {
    let longest = format!("{prefix}{}", total.saturating_sub(1));
    let lower = !prefix.bytes().any(|b| b.is_ascii_uppercase());
    if lower && is_valid_user(&longest) {
        return Ok(());
    }
    Err(format!(
        "--name-prefix {prefix:?}: user names (here up to {longest:?}) must be \
         1-32 of a-z 0-9 _ - ."
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_must_be_lower_case_user_names() {
        assert!(check_names("lt", 1000).is_ok());
        assert!(check_names("lt.user_a-", 10).is_ok());
        assert!(check_names("LT", 10).is_err());
        assert!(check_names("lt:", 10).is_err());
        assert!(check_names(&"x".repeat(30), 101).is_err(), "x…x100: 33");
        assert!(check_names(&"x".repeat(30), 100).is_ok(), "x…x99: 32");
    }

    #[test]
    fn minted_tokens_pass_the_servers_check() {
        let key = [7u8; 32];
        let creds = Credentials::Minted {
            prefix: "lt".into(),
            signer: Signer::new(&key),
        };
        let Identity::Bearer(token) = creds.identity(42) else {
            panic!("minted credentials give a bearer token");
        };
        let claims = Signer::new(&key).verify(&token, unix_now()).unwrap();
        assert_eq!(claims.user, "lt42");
        assert_eq!(Signer::new(&[8u8; 32]).verify(&token, unix_now()), None);
    }

    #[test]
    fn key_files_hold_hex() {
        let dir = std::env::temp_dir();
        let path = dir.join(format!("lt-key-{}", std::process::id()));
        std::fs::write(&path, format!("{}\n", "ab".repeat(32))).unwrap();
        assert_eq!(read_key(&path).unwrap(), vec![0xab; 32]);
        std::fs::write(&path, "not hex").unwrap();
        assert!(read_key(&path).unwrap_err().contains("hex"));
        std::fs::remove_file(&path).unwrap();
        assert!(read_key(&path).is_err());
    }
}
