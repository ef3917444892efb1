//! User names as accounts see them: case-insensitive, so stored and shown
//! in lower case, and for a new account held to one more rule than the
//! chat alphabet in `chat::names`: at least one letter or digit, so that
//! `.`, `..` or `-` never become someone's name (they read as paths or
//! punctuation in logs, URLs and the user list).
//!
//! Sign-up and `parley mint-token` both go through [`for_new_account`],
//! so a script cannot mint a token for a name nobody could sign up with.
//! Log-in uses [`for_login`], which keeps the older, looser rule: a name
//! created before this one stays usable.

use crate::chat::names::is_valid_user;

/// The rule for new names, as the API and the CLI state it.
pub const RULE: &str = "user names are 1-32 of A-Z a-z 0-9 _ - . \
                        with at least one letter or digit";

/// `raw` lower-cased, if it is acceptable as a new account's name.
pub fn for_new_account(raw: &str) -> Option<String> {
    let name = for_login(raw)?;
    name.bytes()
        .any(|b| b.is_ascii_alphanumeric())
        .then_some(name)
}

/// `raw` lower-cased, if it could name an existing account.
pub fn for_login(raw: &str) -> Option<String> {
    let name = raw.to_ascii_lowercase();
    is_valid_user(&name).then_some(name)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn new_names_need_a_letter_or_digit() {
        let cases = [
            ("alice", Some("alice")),
            ("Alice", Some("alice")),
            ("BOB", Some("bob")),
            ("a.b-c_d", Some("a.b-c_d")),
            ("_x", Some("_x")),
            ("7", Some("7")),
            ("...9", Some("...9")),
            (".", None),
            ("..", None),
            ("-", None),
            ("_", None),
            ("._-", None),
            ("", None),
            ("a b", None),
            ("a:b", None),
            ("é", None),
        ];
        for (raw, want) in cases {
            assert_eq!(for_new_account(raw).as_deref(), want, "{raw:?}");
        }
        let long = "x".repeat(33);
        assert_eq!(for_new_account(&long), None);
        assert!(for_new_account(&long[..32]).is_some());
    }

    #[test]
    fn log_in_still_takes_names_made_under_the_older_rule() {
        assert_eq!(for_login("..").as_deref(), Some(".."));
        assert_eq!(for_login("CAROL").as_deref(), Some("carol"));
        assert_eq!(for_login("a b"), None);
    }
}
