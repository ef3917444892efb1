//! The protocol adapter: what a client sends to join and publish, and what
//! it makes of the frames it receives.
//!
//! Parley's own protocol (docs/protocol.md) gives every room message a seq
//! and acknowledges each send with its cid and seq, so the fanout check can
//! be exact. Any other JSON-over-WebSocket chat server is driven through
//! templates (`{room}`, `{text}` are substituted) and recognised by
//! substrings; such a server gives no seq, so the check falls back to the
//! marker this module writes into every message text.

use std::borrow::Cow;

use serde::Deserialize;

/// Prefix of the marker at the start of every published text.
const MARK: &str = "lt:";

#[derive(Debug, Clone)]
pub enum Protocol {
    Parley,
    Custom(Templates),
}

#[derive(Debug, Clone)]
pub struct Templates {
    pub join: String,
    pub send: String,
    /// A substring that marks a frame as "subscribed".
    pub joined: String,
    /// A substring that marks a frame as an ack of the oldest unacked send.
    pub ack: Option<String>,
}

/// Who sent a message, its number and when, as carried in its text.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Marker {
    pub publisher: u32,
    pub n: u64,
    pub sent_ns: u64,
}

impl Marker {
    /// The message text: the marker, then `.` up to `size` bytes.
    pub fn text(&self, size: usize) -> String {
        let mut text = format!("{MARK}{}:{}:{}:", self.publisher, self.n, self.sent_ns);
        while text.len() < size {
            text.push('.');
        }
        text
    }

    /// Finds and parses a marker anywhere in `s`.
    pub fn find(s: &str) -> Option<Marker> {
        let start = s.find(MARK)? + MARK.len();
        let mut parts = s[start..].splitn(4, ':');
        Some(Marker {
            publisher: parts.next()?.parse().ok()?,
            n: parts.next()?.parse().ok()?,
            sent_ns: parts.next()?.parse().ok()?,
        })
    }

    /// The client message id Parley acks with.
    pub fn cid(&self) -> String {
        format!("{}-{}", self.publisher, self.n)
    }
}

/// A received frame, reduced to what the scenarios need.
#[derive(Debug, PartialEq, Eq)]
pub enum Incoming {
    Joined {
        seq: Option<u64>,
        reset: bool,
    },
    Message {
        seq: Option<u64>,
        marker: Option<Marker>,
    },
    /// `cid` and `seq` are known only with Parley's protocol.
    Ack {
        publisher: Option<u32>,
        n: Option<u64>,
        seq: Option<u64>,
    },
    /// `publisher` and `n` come from the echoed cid of a refused send.
    Error {
        code: String,
        publisher: Option<u32>,
        n: Option<u64>,
    },
    Other,
}

#[derive(Deserialize)]
struct Frame<'a> {
    #[serde(rename = "type", borrow)]
    kind: Cow<'a, str>,
    seq: Option<u64>,
    #[serde(default, borrow)]
    text: Option<Cow<'a, str>>,
    #[serde(default, borrow)]
    cid: Option<Cow<'a, str>>,
    #[serde(default, borrow)]
    code: Option<Cow<'a, str>>,
    #[serde(default)]
    reset: bool,
}

impl Protocol {
    pub fn join(&self, room: &str, since: Option<u64>) -> String {
        match (self, since) {
            (Protocol::Parley, None) => format!(r#"{{"type":"join","room":"{room}"}}"#),
            (Protocol::Parley, Some(s)) => {
                format!(r#"{{"type":"join","room":"{room}","since":{s}}}"#)
            }
            (Protocol::Custom(t), _) => t.join.replace("{room}", room),
        }
    }

    pub fn send(&self, room: &str, marker: &Marker, size: usize) -> String {
        let text = marker.text(size);
        match self {
            Protocol::Parley => format!(
                r#"{{"type":"send","room":"{room}","text":"{text}","cid":"{}"}}"#,
                marker.cid()
            ),
            Protocol::Custom(t) => t.send.replace("{room}", room).replace("{text}", &text),
        }
    }

    /// Whether the target numbers room messages and acks with seqs.
    pub fn has_seq(&self) -> bool {
        matches!(self, Protocol::Parley)
    }

    pub fn has_ack(&self) -> bool {
        match self {
            Protocol::Parley => true,
            Protocol::Custom(t) => t.ack.is_some(),
        }
    }

    pub fn parse(&self, raw: &str) -> Incoming {
        match self {
            Protocol::Parley => parse_parley(raw),
            Protocol::Custom(t) => parse_custom(t, raw),
        }
    }
}

fn parse_parley(raw: &str) -> Incoming {
    let Ok(f) = serde_json::from_str::<Frame>(raw) else {
        return Incoming::Other;
    };
    match &*f.kind {
        "message" => Incoming::Message {
            seq: f.seq,
            marker: f.text.as_deref().and_then(Marker::find),
        },
        "ack" => {
            let (publisher, n) = split_cid(f.cid.as_deref());
            Incoming::Ack {
                publisher,
                n,
                seq: f.seq,
            }
        }
        "joined" => Incoming::Joined {
            seq: f.seq,
            reset: f.reset,
        },
        "error" => {
            let (publisher, n) = split_cid(f.cid.as_deref());
            Incoming::Error {
                code: f.code.map(Cow::into_owned).unwrap_or_default(),
                publisher,
                n,
            }
        }
        _ => Incoming::Other,
    }
}

/// The publisher and message number of a cid written by [`Marker::cid`].
fn split_cid(cid: Option<&str>) -> (Option<u32>, Option<u64>) {
    let parts = cid.and_then(|c| c.split_once('-'));
    (
        parts.and_then(|(p, _)| p.parse().ok()),
        parts.and_then(|(_, n)| n.parse().ok()),
    )
}

fn parse_custom(t: &Templates, raw: &str) -> Incoming {
    if let Some(marker) = Marker::find(raw) {
        return Incoming::Message {
            seq: None,
            marker: Some(marker),
        };
    }
    if raw.contains(&t.joined) {
        return Incoming::Joined {
            seq: None,
            reset: false,
        };
    }
    match &t.ack {
        Some(ack) if raw.contains(ack.as_str()) => Incoming::Ack {
            publisher: None,
            n: None,
            seq: None,
        },
        _ => Incoming::Other,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn marker_round_trips_through_a_padded_text() {
        let m = Marker {
            publisher: 3,
            n: 17,
            sent_ns: 123_456,
        };
        let text = m.text(64);
        assert_eq!(text.len(), 64);
        assert_eq!(Marker::find(&text), Some(m));
        assert_eq!(Marker::find("hello"), None);
        assert_eq!(m.cid(), "3-17");
    }

    #[test]
    fn parses_parley_frames() {
        let p = Protocol::Parley;
        let m = Marker {
            publisher: 1,
            n: 2,
            sent_ns: 3,
        };
        let msg = format!(
            r#"{{"type":"message","room":"r","seq":9,"from":"a","text":"{}","ts":1,"cid":"1-2"}}"#,
            m.text(0)
        );
        assert_eq!(
            p.parse(&msg),
            Incoming::Message {
                seq: Some(9),
                marker: Some(m)
            }
        );
        let ack = r#"{"type":"ack","room":"r","cid":"1-2","seq":9}"#;
        assert_eq!(
            p.parse(ack),
            Incoming::Ack {
                publisher: Some(1),
                n: Some(2),
                seq: Some(9)
            }
        );
        let joined = r#"{"type":"joined","room":"r","seq":4,"backlog":0,"reset":true}"#;
        assert_eq!(
            p.parse(joined),
            Incoming::Joined {
                seq: Some(4),
                reset: true
            }
        );
        let refused =
            r#"{"type":"error","code":"unavailable","message":"x","room":"r","cid":"1-2"}"#;
        assert_eq!(
            p.parse(refused),
            Incoming::Error {
                code: "unavailable".into(),
                publisher: Some(1),
                n: Some(2)
            }
        );
        assert_eq!(p.parse("not json"), Incoming::Other);
    }

    #[test]
    fn custom_templates_substitute_and_match() {
        let p = Protocol::Custom(Templates {
            join: r#"{"type":"join","room":"{room}"}"#.into(),
            send: r#"{"type":"msg","room":"{room}","text":"{text}"}"#.into(),
            joined: r#""type":"joined""#.into(),
            ack: None,
        });
        assert_eq!(p.join("r1", Some(5)), r#"{"type":"join","room":"r1"}"#);
        let m = Marker {
            publisher: 0,
            n: 1,
            sent_ns: 2,
        };
        let sent = p.send("r1", &m, 0);
        assert_eq!(sent, r#"{"type":"msg","room":"r1","text":"lt:0:1:2:"}"#);
        assert!(matches!(
            p.parse(&sent),
            Incoming::Message { seq: None, .. }
        ));
        let joined = r#"{"type":"joined","room":"r1"}"#;
        assert!(matches!(p.parse(joined), Incoming::Joined { .. }));
        assert!(!p.has_seq() && !p.has_ack());
    }
}
