//! Server-to-client frames, encoded once and shared.
//!
//! A room message becomes one WebSocket frame (header and JSON payload in
//! one allocation) that every recipient on every reactor queues by reference
//! count; the same bytes are kept in the room's history, so a replay or a
//! history page never serialises a message again.

use std::sync::Arc;

use serde::Serialize;

use super::request::ReqId;
use super::ErrorCode;
use crate::ws::frame::{encode_header, MAX_HEADER_LEN};
use crate::ws::Opcode;

/// A complete text frame as it goes on the wire, shared between recipients.
pub type Frame = Arc<[u8]>;

/// Serialises `value` as the payload of a text frame and returns the frame.
pub fn text_frame<T: Serialize>(value: &T) -> Vec<u8> {
    owned(framed(|buf| write_json(buf, value)))
}

/// Like [`text_frame`], for a frame many connections will share.
pub fn shared_text_frame<T: Serialize>(value: &T) -> Frame {
    let (buf, start) = framed(|buf| write_json(buf, value));
    Arc::from(buf.get(start..).unwrap_or_default())
}

/// The JSON payload of a frame built here (server frames are unmasked).
pub fn payload(frame: &[u8]) -> &[u8] {
    let header = match frame.get(1).map(|b| b & 0x7f) {
        Some(126) => 4,
        Some(127) => 10,
        _ => 2,
    };
    frame.get(header..).unwrap_or_default()
}

/// Builds a payload after a reserved header gap, then writes the header
/// right-aligned into the gap. The frame is the returned buffer from the
/// returned offset on.
fn framed(build: impl FnOnce(&mut Vec<u8>)) -> (Vec<u8>, usize) {
    let mut buf = Vec::with_capacity(160);
    buf.resize(MAX_HEADER_LEN, 0);
    build(&mut buf);
    let mut header = [0; MAX_HEADER_LEN];
    let len = encode_header(Opcode::Text, buf.len() - MAX_HEADER_LEN, &mut header);
    let start = MAX_HEADER_LEN - len;
    buf[start..MAX_HEADER_LEN].copy_from_slice(&header[..len]);
    (buf, start)
}

fn owned((mut buf, start): (Vec<u8>, usize)) -> Vec<u8> {
    buf.drain(..start);
    buf
}

fn write_json<T: Serialize>(buf: &mut Vec<u8>, value: &T) {
    // Our reply types hold only strings, numbers and booleans, for which
    // serde_json cannot fail.
    serde_json::to_writer(buf, value).expect("reply serialisation is infallible");
}

/// A room message as members receive it and as history stores it.
#[derive(Serialize)]
pub struct MessageOut<'a> {
    #[serde(rename = "type")]
    pub kind: &'static str,
    pub room: &'a str,
    pub seq: u64,
    pub from: &'a str,
    pub text: &'a str,
    pub ts: u64,
    pub cid: &'a str,
}

/// Encodes a room message once, for every recipient and the history.
pub fn message(room: &str, seq: u64, from: &str, text: &str, ts: u64, cid: &str) -> Frame {
    shared_text_frame(&MessageOut {
        kind: "message",
        room,
        seq,
        from,
        text,
        ts,
        cid,
    })
}

#[derive(Serialize)]
struct Joined<'a> {
    #[serde(rename = "type")]
    kind: &'static str,
    room: &'a str,
    seq: u64,
    epoch: &'a str,
    backlog: usize,
    reset: bool,
    online: &'a [std::sync::Arc<str>],
    #[serde(skip_serializing_if = "Option::is_none")]
    id: Option<&'a ReqId>,
}

/// The reply to `join`, sent before the backlog.
pub fn joined(
    room: &str,
    seq: u64,
    epoch: &str,
    backlog: usize,
    reset: bool,
    online: &[std::sync::Arc<str>],
    id: Option<&ReqId>,
) -> Vec<u8> {
    text_frame(&Joined {
        kind: "joined",
        room,
        seq,
        epoch,
        backlog,
        reset,
        online,
        id,
    })
}

#[derive(Serialize)]
struct Presence<'a> {
    #[serde(rename = "type")]
    kind: &'static str,
    room: &'a str,
    online: &'a [Arc<str>],
    offline: &'a [Arc<str>],
}

/// Users whose first socket entered the room (`online`) or whose last one
/// left it (`offline`) since the previous presence frame of the room.
pub fn presence(room: &str, online: &[Arc<str>], offline: &[Arc<str>]) -> Frame {
    shared_text_frame(&Presence {
        kind: "presence",
        room,
        online,
        offline,
    })
}

#[derive(Serialize)]
struct Typing<'a> {
    #[serde(rename = "type")]
    kind: &'static str,
    room: &'a str,
    user: &'a str,
}

/// Someone in the room is typing; never stored.
pub fn typing(room: &str, user: &str) -> Frame {
    shared_text_frame(&Typing {
        kind: "typing",
        room,
        user,
    })
}

#[derive(Serialize)]
struct Created<'a> {
    #[serde(rename = "type")]
    kind: &'static str,
    room: &'a str,
    private: bool,
    #[serde(skip_serializing_if = "Option::is_none")]
    id: Option<&'a ReqId>,
}

/// The reply to `create`.
pub fn created(room: &str, private: bool, id: Option<&ReqId>) -> Vec<u8> {
    text_frame(&Created {
        kind: "created",
        room,
        private,
        id,
    })
}

#[derive(Serialize)]
struct Invited<'a> {
    #[serde(rename = "type")]
    kind: &'static str,
    room: &'a str,
    user: &'a str,
    #[serde(skip_serializing_if = "Option::is_none")]
    id: Option<&'a ReqId>,
}

/// The reply to `invite`.
pub fn invited(room: &str, user: &str, id: Option<&ReqId>) -> Vec<u8> {
    text_frame(&Invited {
        kind: "invited",
        room,
        user,
        id,
    })
}

/// One entry of a `rooms` reply.
#[derive(Serialize, Debug, Clone, PartialEq)]
pub struct RoomInfo {
    pub room: String,
    pub private: bool,
    /// Users online in the room (across all nodes).
    pub online: usize,
}

#[derive(Serialize)]
struct Rooms<'a> {
    #[serde(rename = "type")]
    kind: &'static str,
    rooms: &'a [RoomInfo],
    #[serde(skip_serializing_if = "Option::is_none")]
    id: Option<&'a ReqId>,
}

/// The reply to `rooms`.
pub fn rooms(rooms: &[RoomInfo], id: Option<&ReqId>) -> Vec<u8> {
    text_frame(&Rooms {
        kind: "rooms",
        rooms,
        id,
    })
}

#[derive(Serialize)]
struct Ack<'a> {
    #[serde(rename = "type")]
    kind: &'static str,
    room: &'a str,
    cid: &'a str,
    seq: u64,
    #[serde(skip_serializing_if = "Option::is_none")]
    id: Option<&'a ReqId>,
}

/// The sender's confirmation that its message is stored as `seq`.
pub fn ack(room: &str, cid: &str, seq: u64, id: Option<&ReqId>) -> Vec<u8> {
    text_frame(&Ack {
        kind: "ack",
        room,
        cid,
        seq,
        id,
    })
}

#[derive(Serialize)]
struct Left<'a> {
    #[serde(rename = "type")]
    kind: &'static str,
    room: &'a str,
    #[serde(skip_serializing_if = "Option::is_none")]
    id: Option<&'a ReqId>,
}

/// The reply to `leave`.
pub fn left(room: &str, id: Option<&ReqId>) -> Vec<u8> {
    text_frame(&Left {
        kind: "left",
        room,
        id,
    })
}

#[derive(Serialize)]
struct ErrorOut<'a> {
    #[serde(rename = "type")]
    kind: &'static str,
    code: &'static str,
    message: &'static str,
    #[serde(skip_serializing_if = "Option::is_none")]
    room: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    cid: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    id: Option<&'a ReqId>,
}

/// An error reply; `room` and `cid` are echoed when the request had them.
pub fn error(
    code: ErrorCode,
    id: Option<&ReqId>,
    room: Option<&str>,
    cid: Option<&str>,
) -> Vec<u8> {
    text_frame(&ErrorOut {
        kind: "error",
        code: code.as_str(),
        message: code.message(),
        room,
        cid,
        id,
    })
}

#[derive(Serialize)]
struct HistoryHead<'a> {
    #[serde(rename = "type")]
    kind: &'static str,
    room: &'a str,
    more: bool,
    #[serde(skip_serializing_if = "Option::is_none")]
    id: Option<&'a ReqId>,
}

/// A history page: the stored message payloads spliced into one array,
/// oldest first, without parsing or re-serialising them.
pub fn history(room: &str, messages: &[Frame], more: bool, id: Option<&ReqId>) -> Vec<u8> {
    let head = HistoryHead {
        kind: "history",
        room,
        more,
        id,
    };
    owned(framed(|buf| {
        write_json(buf, &head);
        buf.pop(); // the closing brace; the array goes inside
        buf.extend_from_slice(b",\"messages\":[");
        for (i, frame) in messages.iter().enumerate() {
            if i > 0 {
                buf.push(b',');
            }
            buf.extend_from_slice(payload(frame));
        }
        buf.extend_from_slice(b"]}");
    }))
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::Value;

    fn json(frame: &[u8]) -> Value {
        assert_eq!(frame[0], 0x81, "FIN text frame");
        serde_json::from_slice(payload(frame)).unwrap()
    }

    #[test]
    fn message_is_one_frame_with_every_field() {
        let f = message(
            "lobby",
            42,
            "alice",
            "<b>hi</b> \"q\"",
            1764790000123,
            "c-1",
        );
        let v = json(&f);
        assert_eq!(v["type"], "message");
        assert_eq!(v["seq"], 42);
        assert_eq!(v["text"], "<b>hi</b> \"q\"");
        assert_eq!(v["ts"], 1764790000123u64);
        assert_eq!(usize::from(f[1]), payload(&f).len());
    }

    #[test]
    fn long_payloads_use_extended_lengths() {
        let text = "x".repeat(70_000);
        let f = message("r", 1, "u", &text, 0, "c");
        assert_eq!(f[1], 127);
        assert_eq!(json(&f)["text"].as_str().unwrap().len(), 70_000);
        let text = "x".repeat(300);
        let f = message("r", 1, "u", &text, 0, "c");
        assert_eq!(f[1], 126);
        assert_eq!(json(&f)["text"].as_str().unwrap().len(), 300);
    }

    #[test]
    fn history_splices_stored_messages() {
        let a = message("r", 1, "u", "one", 5, "c1");
        let b = message("r", 2, "u", "two", 6, "c2");
        let id = ReqId::Num(3.into());
        let v = json(&history("r", &[a, b], true, Some(&id)));
        assert_eq!(v["type"], "history");
        assert_eq!(v["more"], true);
        assert_eq!(v["id"], 3);
        assert_eq!(v["messages"][1]["text"], "two");
        let empty = json(&history("r", &[], false, None));
        assert_eq!(empty["messages"], Value::Array(vec![]));
    }

    #[test]
    fn replies_echo_ids() {
        let id = ReqId::Str("q".into());
        assert_eq!(json(&ack("r", "c", 9, Some(&id)))["id"], "q");
        assert_eq!(json(&left("r", None)).get("id"), None);
        let e = json(&error(ErrorCode::NotJoined, Some(&id), Some("r"), None));
        assert_eq!(e["code"], "not_joined");
        assert_eq!(e["room"], "r");
        let j = json(&joined("r", 5, "ep", 2, false, &["bob".into()], None));
        assert_eq!(
            (j["seq"].as_u64(), j["backlog"].as_u64()),
            (Some(5), Some(2))
        );
    }
}
