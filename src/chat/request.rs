//! Client requests: one JSON object per text frame, parsed in one pass into
//! a flat shape and then checked against the rules of its `type`.
//!
//! Parsing is lenient about unknown fields (newer clients) and strict about
//! the fields it uses. Strings borrow from the frame where JSON escapes allow.

use std::borrow::Cow;

use serde::{Deserialize, Serialize};

use super::names::{is_valid_cid, is_valid_identity, is_valid_room};
use super::ErrorCode;

/// A client's request id, echoed in replies: a JSON number or a short string.
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

/// Parses and validates one text frame.
pub fn parse(frame: &str, max_text_bytes: usize) -> Result<(Request<'_>, Option<ReqId>), Rejected> {
    let bad = || Rejected {
        code: ErrorCode::BadRequest,
        id: None,
        room: None,
        cid: None,
    };
    let mut raw: Raw<'_> = serde_json::from_str(frame).map_err(|_| bad())?;
    let id = raw.id.take();
    if matches!(&id, Some(ReqId::Str(s)) if s.len() > MAX_REQ_ID) {
        return Err(bad());
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
                .ok_or(ErrorCode::InvalidUser)?,
        },
        "history" => Request::History {
            room,
            before: raw.before,
            limit: raw.limit,
        },
        _ => {
            let text = raw
                .text
                .filter(|t| !t.is_empty() && t.len() <= max_text_bytes)
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
