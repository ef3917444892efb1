//! Naming rules for rooms and users. Both end up in JSON, in log lines and
//! (later) in Redis keys, so they are kept to a small, unambiguous alphabet.

/// Longest room name, in bytes (all allowed characters are ASCII).
pub const MAX_ROOM_NAME: usize = 64;
/// Longest user name, in bytes.
pub const MAX_USER_NAME: usize = 32;
/// Longest client message id, in bytes.
pub const MAX_CID: usize = 64;

fn all_in(s: &str, max: usize, extra: &[u8]) -> bool {
    !s.is_empty()
        && s.len() <= max
        && s.bytes()
            .all(|b| b.is_ascii_alphanumeric() || extra.contains(&b))
}

/// Room names: 1-64 of `A-Z a-z 0-9 _ - . :`, not starting with `_`:
/// those are reserved for the server's own rooms (the canary's `_canary`),
/// which clients must neither read nor write.
pub fn is_valid_room(s: &str) -> bool {
    all_in(s, MAX_ROOM_NAME, b"_-.:") && !s.starts_with('_')
}

/// User names: 1-32 of `A-Z a-z 0-9 _ - .`.
pub fn is_valid_user(s: &str) -> bool {
    all_in(s, MAX_USER_NAME, b"_-.")
}

/// A name messages can carry: a user, or `guest:<user>` for guests.
pub fn is_valid_identity(s: &str) -> bool {
    is_valid_user(s.strip_prefix("guest:").unwrap_or(s))
}

/// Client message ids: 1-64 bytes of anything but control characters.
pub fn is_valid_cid(s: &str) -> bool {
    !s.is_empty() && s.len() <= MAX_CID && !s.chars().any(char::is_control)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rooms() {
        let long = "r".repeat(MAX_ROOM_NAME);
        for ok in ["lobby", "a", "team:dev-1.x_y", "a_", long.as_str()] {
            assert!(is_valid_room(ok), "{ok}");
        }
        let too_long = "r".repeat(MAX_ROOM_NAME + 1);
        for bad in [
            "",
            "a b",
            "é",
            "a/b",
            "a\"",
            too_long.as_str(),
            "_canary",
            "_",
        ] {
            assert!(!is_valid_room(bad), "{bad}");
        }
    }

    #[test]
    fn users() {
        assert!(is_valid_user("alice_01.x-y"));
        assert!(!is_valid_user("alice:x"));
        assert!(!is_valid_user(&"u".repeat(MAX_USER_NAME + 1)));
    }

    #[test]
    fn identities() {
        assert!(is_valid_identity("alice") && is_valid_identity("guest:alice"));
        assert!(!is_valid_identity("guest:") && !is_valid_identity("x:alice"));
    }

    #[test]
    fn cids() {
        assert!(is_valid_cid("k3h1-7 é"));
        assert!(!is_valid_cid(""));
        assert!(!is_valid_cid("a\nb"));
        assert!(!is_valid_cid(&"c".repeat(MAX_CID + 1)));
    }
}
