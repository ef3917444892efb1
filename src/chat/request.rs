//! Client requests: one JSON object per text frame, parsed in one pass into
//! a flat shape and then checked against the rules of its `type`.
//!
//! Parsing is lenient about unknown fields (newer clients) and strict about
//! the fields it uses. Strings borrow from the frame where JSON escapes allow.

use std::borrow::Cow;

use serde::{Deserialize, Serialize};

use super::names::{is_valid_cid, is_valid_identity, is_valid_room};
use super::ErrorCode;

/// A client's request id, echoed in replies: a JSON integer (64-bit) or a
/// short string. Other numbers are refused: they could not be echoed
/// exactly.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(untagged)]
pub enum ReqId {
    Num(serde_json::Number),
    Str(Box<str>),
}

/// Longest string request id, in bytes.
pub const MAX_REQ_ID: usize = 64;

/// A request that passed validation.
#[derive(Debug, PartialEq)]
pub enum Request<'a> {
    Join {
        room: Cow<'a, str>,
        since: Option<u64>,
        epoch: Option<Cow<'a, str>>,
    },
    Leave {
        room: Cow<'a, str>,
    },
    Send {
        room: Cow<'a, str>,
        text: Cow<'a, str>,
        cid: Cow<'a, str>,
    },
    History {
        room: Cow<'a, str>,
        before: Option<u64>,
        limit: Option<u64>,
    },
    /// Create a room explicitly, public or private (members only).
    Create {
        room: Cow<'a, str>,
        private: bool,
    },
    /// Add a user to a private room (its creator only).
    Invite {
        room: Cow<'a, str>,
        user: Cow<'a, str>,
    },
    /// Tell the room's members this user is typing (ephemeral).
    Typing {
        room: Cow<'a, str>,
    },
    /// List the public rooms and the private rooms the user belongs to.
    Rooms,
}

impl Request<'_> {
    /// The room the request is about.
    pub fn room(&self) -> &str {
        match self {
            Request::Join { room, .. }
            | Request::Leave { room }
            | Request::Send { room, .. }
            | Request::History { room, .. }
            | Request::Create { room, .. }
            | Request::Invite { room, .. }
            | Request::Typing { room } => room,
            Request::Rooms => "",
        }
    }
}

/// A request refused before it reached the chat logic. `room` and `cid`
/// are echoed when the request carried valid ones, so a client can tell
/// which of its messages failed.
#[derive(Debug, PartialEq)]
pub struct Rejected {
    pub code: ErrorCode,
    pub id: Option<ReqId>,
    pub room: Option<String>,
    pub cid: Option<String>,
}

#[derive(Deserialize)]
struct Raw<'a> {
    #[serde(rename = "type", borrow)]
    kind: Option<Cow<'a, str>>,
    #[serde(borrow)]
    room: Option<Cow<'a, str>>,
    #[serde(borrow)]
    text: Option<Cow<'a, str>>,
    #[serde(borrow)]
    cid: Option<Cow<'a, str>>,
    #[serde(borrow)]
    epoch: Option<Cow<'a, str>>,
    #[serde(borrow)]
    user: Option<Cow<'a, str>>,
    since: Option<u64>,
    before: Option<u64>,
    limit: Option<u64>,
    private: Option<bool>,
    id: Option<ReqId>,
}

impl ReqId {
    fn is_valid(&self) -> bool {
        match self {
            ReqId::Num(n) => n.is_i64() || n.is_u64(),
            ReqId::Str(s) => s.len() <= MAX_REQ_ID,
        }
    }
}

/// The `id`, `room` and `cid` of a frame that is refused as a whole (not
/// a valid request, or over the rate limit), read loosely so the error can
/// still name them; each is kept only if it is valid on its own.
pub fn refusal(frame: &str, code: ErrorCode) -> Rejected {
    #[derive(Deserialize)]
    struct Loose {
        id: Option<serde_json::Value>,
        room: Option<serde_json::Value>,
        cid: Option<serde_json::Value>,
    }
    let loose: Option<Loose> = serde_json::from_str(frame).ok();
    let text = |v: Option<serde_json::Value>, valid: fn(&str) -> bool| match v {
        Some(serde_json::Value::String(s)) if valid(&s) => Some(s),
        _ => None,
    };
    let Some(loose) = loose else {
        return Rejected {
            code,
            id: None,
            room: None,
            cid: None,
        };
    };
    Rejected {
        code,
        id: loose
            .id
            .and_then(|v| serde_json::from_value::<ReqId>(v).ok())
            .filter(ReqId::is_valid),
        room: text(loose.room, is_valid_room),
        cid: text(loose.cid, is_valid_cid),
    }
}

/// Parses and validates one text frame.
pub fn parse(frame: &str, max_text_bytes: usize) -> Result<(Request<'_>, Option<ReqId>), Rejected> {
    let mut raw: Raw<'_> =
        serde_json::from_str(frame).map_err(|_| refusal(frame, ErrorCode::BadRequest))?;
    let id = raw.id.take();
    if id.as_ref().is_some_and(|id| !id.is_valid()) {
        return Err(Rejected {
            code: ErrorCode::BadRequest,
            id: None,
            room: None,
            cid: None,
        });
    }
    let room = raw
        .room
        .as_deref()
        .filter(|r| is_valid_room(r))
        .map(String::from);
    let cid = raw
        .cid
        .as_deref()
        .filter(|c| is_valid_cid(c))
        .map(String::from);
    match check(raw, max_text_bytes) {
        Ok(req) => Ok((req, id)),
        Err(code) => Err(Rejected {
            code,
            id,
            room,
            cid,
        }),
    }
}

/// Message text: not empty, within the limit, and free of control
/// characters other than tab and line breaks (NUL and terminal escapes
/// would reach every member's screen).
fn is_valid_text(text: &str, max_bytes: usize) -> bool {
    let allowed = |c: char| !c.is_control() || matches!(c, '\t' | '\n' | '\r');
    !text.is_empty() && text.len() <= max_bytes && text.chars().all(allowed)
}

/// Account names are case-insensitive (sign-up and log-in lower-case
/// them), so `Alice` names the account `alice`; guest names keep their case.
fn account_case(user: Cow<'_, str>) -> Cow<'_, str> {
    let is_guest = user.starts_with("guest:");
    if is_guest || !user.bytes().any(|b| b.is_ascii_uppercase()) {
        return user;
    }
    Cow::Owned(user.to_ascii_lowercase())
}

fn check(raw: Raw<'_>, max_text_bytes: usize) -> Result<Request<'_>, ErrorCode> {
    let kind = raw.kind.ok_or(ErrorCode::BadRequest)?;
    let known = [
        "join", "leave", "send", "history", "create", "invite", "typing", "rooms",
    ];
    if !known.contains(&&*kind) {
        return Err(ErrorCode::UnknownType);
    }
    if kind == "rooms" {
        return Ok(Request::Rooms);
    }
    let room = raw
        .room
        .filter(|r| is_valid_room(r))
        .ok_or(ErrorCode::InvalidRoom)?;
    Ok(match &*kind {
        "join" => Request::Join {
            room,
            since: raw.since,
            // A room with no message yet has no epoch; "" means none.
            epoch: raw.epoch.filter(|e| !e.is_empty()),
        },
        "leave" => Request::Leave { room },
        "typing" => Request::Typing { room },
        "create" => Request::Create {
            room,
            private: raw.private.unwrap_or(false),
        },
        "invite" => Request::Invite {
            room,
            user: raw
                .user
                .filter(|u| is_valid_identity(u))
                .map(account_case)
                .ok_or(ErrorCode::InvalidUser)?,
        },
        "history" => Request::History {
            room,
            before: raw.before,
            limit: match raw.limit {
                Some(0) => return Err(ErrorCode::BadRequest),
                limit => limit,
            },
        },
        _ => {
            let text = raw
                .text
                .filter(|t| is_valid_text(t, max_text_bytes))
                .ok_or(ErrorCode::InvalidText)?;
            let cid = raw
                .cid
                .filter(|c| is_valid_cid(c))
                .ok_or(ErrorCode::InvalidCid)?;
            Request::Send { room, text, cid }
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn code(frame: &str) -> ErrorCode {
        parse(frame, 10).unwrap_err().code
    }

    #[test]
    fn valid_requests() {
        let (req, id) = parse(r#"{"type":"join","room":"lobby","since":4,"id":7}"#, 10).unwrap();
        assert_eq!(
            req,
            Request::Join {
                room: "lobby".into(),
                since: Some(4),
                epoch: None
            }
        );
        assert_eq!(id, Some(ReqId::Num(7.into())));

        let (req, id) = parse(
            r#"{"type":"send","room":"a","text":"hi \u00e9","cid":"c1","id":"x","extra":[1]}"#,
            10,
        )
        .unwrap();
        assert_eq!(
            req,
            Request::Send {
                room: "a".into(),
                text: "hi é".into(),
                cid: "c1".into()
            }
        );
        assert_eq!(id, Some(ReqId::Str("x".into())));

        let (req, _) = parse(r#"{"type":"history","room":"a","before":9,"limit":2}"#, 10).unwrap();
        assert_eq!(
            req,
            Request::History {
                room: "a".into(),
                before: Some(9),
                limit: Some(2)
            }
        );
    }

    #[test]
    fn a_frame_with_wrong_types_still_names_its_id_room_and_cid() {
        for frame in [
            r#"{"type":"join","room":"lobby","since":-1,"id":"neg"}"#,
            r#"{"type":"join","room":"lobby","since":1.5,"id":"neg"}"#,
            r#"{"type":"send","room":"lobby","text":5,"cid":"c9","id":"neg"}"#,
            r#"{"type":"create","room":"lobby","private":"yes","id":"neg"}"#,
        ] {
            let r = parse(frame, 100).unwrap_err();
            assert_eq!(r.code, ErrorCode::BadRequest, "{frame}");
            assert_eq!(r.id, Some(ReqId::Str("neg".into())), "{frame}");
            assert_eq!(r.room.as_deref(), Some("lobby"), "{frame}");
        }
        let r = parse(r#"{"type":"send","room":"lobby","text":5,"cid":"c9"}"#, 100);
        assert_eq!(r.unwrap_err().cid.as_deref(), Some("c9"));
        // Not JSON, or invalid fields: nothing to echo.
        let r = refusal("not json", ErrorCode::RateLimited);
        assert_eq!((r.id, r.room, r.cid), (None, None, None));
        let r = refusal(
            r#"{"room":"bad room!","cid":7,"id":[1]}"#,
            ErrorCode::RateLimited,
        );
        assert_eq!((r.id, r.room, r.cid), (None, None, None));
    }

    #[test]
    fn request_ids_are_64_bit_integers_or_short_strings() {
        let id = |frame: &str| parse(frame, 10).map(|(_, id)| id);
        assert!(id(r#"{"type":"rooms","id":-9223372036854775808}"#).is_ok());
        assert!(id(r#"{"type":"rooms","id":18446744073709551615}"#).is_ok());
        let huge = format!(r#"{{"type":"rooms","id":{}}}"#, "1".repeat(69));
        assert_eq!(code(&huge), ErrorCode::BadRequest);
        assert_eq!(code(r#"{"type":"rooms","id":1.5}"#), ErrorCode::BadRequest);
        let long = format!(r#"{{"type":"rooms","id":"{}"}}"#, "x".repeat(65));
        assert_eq!(code(&long), ErrorCode::BadRequest);
    }

    #[test]
    fn text_may_not_hold_control_characters_but_tab_and_newlines() {
        let send = |text: &str| {
            let frame = serde_json::json!({"type":"send","room":"a","text":text,"cid":"c"});
            parse(&frame.to_string(), 100)
                .map(|_| ())
                .map_err(|r| r.code)
        };
        assert_eq!(send("line one\n\tline two\r\n"), Ok(()));
        for bad in ["\u{0}", "red \u{1b}[31m", "\u{7f}", "\u{85}"] {
            assert_eq!(send(bad), Err(ErrorCode::InvalidText), "{bad:?}");
        }
    }

    #[test]
    fn invites_name_accounts_in_any_case_and_guests_exactly() {
        let user = |name: &str| {
            let frame = serde_json::json!({"type":"invite","room":"a","user":name});
            match parse(&frame.to_string(), 10).unwrap().0 {
                Request::Invite { user, .. } => user.into_owned(),
                other => panic!("{other:?}"),
            }
        };
        assert_eq!(user("ABC"), "abc");
        assert_eq!(user("abc"), "abc");
        assert_eq!(user("guest:Bob"), "guest:Bob");
    }

    #[test]
    fn a_history_page_of_nothing_is_refused() {
        assert_eq!(
            code(r#"{"type":"history","room":"a","limit":0}"#),
            ErrorCode::BadRequest
        );
    }

    #[test]
    fn an_empty_epoch_means_none() {
        let (req, _) = parse(r#"{"type":"join","room":"r","since":3,"epoch":""}"#, 10).unwrap();
        assert_eq!(
            req,
            Request::Join {
                room: "r".into(),
                since: Some(3),
                epoch: None
            }
        );
    }

    #[test]
    fn rejections_carry_stable_codes() {
        let cases = [
            ("not json", ErrorCode::BadRequest),
            ("[1,2]", ErrorCode::BadRequest),
            (r#"{"room":"a"}"#, ErrorCode::BadRequest),
            (
                r#"{"type":"join","room":"a","since":-1}"#,
                ErrorCode::BadRequest,
            ),
            (r#"{"type":"dance","room":"a"}"#, ErrorCode::UnknownType),
            (r#"{"type":"join"}"#, ErrorCode::InvalidRoom),
            (r#"{"type":"join","room":"a b"}"#, ErrorCode::InvalidRoom),
            (
                r#"{"type":"send","room":"a","cid":"c"}"#,
                ErrorCode::InvalidText,
            ),
            (
                r#"{"type":"send","room":"a","text":"","cid":"c"}"#,
                ErrorCode::InvalidText,
            ),
            (
                r#"{"type":"send","room":"a","text":"12345678901","cid":"c"}"#,
                ErrorCode::InvalidText,
            ),
            (
                r#"{"type":"send","room":"a","text":"t"}"#,
                ErrorCode::InvalidCid,
            ),
        ];
        for (frame, want) in cases {
            assert_eq!(code(frame), want, "{frame}");
        }
    }

    #[test]
    fn rejection_echoes_the_request_id() {
        let err = parse(r#"{"type":"dance","id":"q1"}"#, 10).unwrap_err();
        assert_eq!(err.id, Some(ReqId::Str("q1".into())));
    }

    #[test]
    fn rejection_echoes_valid_room_and_cid() {
        let frame = r#"{"type":"send","room":"r","cid":"c9","text":"far too long"}"#;
        let err = parse(frame, 5).unwrap_err();
        assert_eq!(
            (err.room.as_deref(), err.cid.as_deref()),
            (Some("r"), Some("c9"))
        );
        let err = parse(r#"{"type":"send","room":"a b","cid":""}"#, 5).unwrap_err();
        assert_eq!((err.room, err.cid), (None, None));
    }

    #[test]
    fn overlong_string_id_is_refused() {
        let frame = format!(
            r#"{{"type":"join","room":"a","id":"{}"}}"#,
            "i".repeat(MAX_REQ_ID + 1)
        );
        assert_eq!(code(&frame), ErrorCode::BadRequest);
    }
}
