//! Messages as Redis holds them: stream entries (history) and pub/sub
//! payloads (live), both turned into the same shared frame that the
//! embedded broker would have built.

use std::hash::{DefaultHasher, Hash, Hasher};

use redis::Value;

use crate::chat::wire::{self, Frame};

/// One stored message.
#[derive(Debug, Clone, PartialEq)]
pub struct Entry {
    pub seq: u64,
    pub ts: u64,
    pub from: String,
    pub cid: String,
    pub text: String,
}

impl Entry {
    pub fn frame(&self, room: &str) -> Frame {
        wire::message(room, self.seq, &self.from, &self.text, self.ts, &self.cid)
    }

    /// Tells this message from another stored under the same seq (after
    /// Redis lost data and reused it): a hash of time, sender and cid.
    /// The seq is left out on purpose.
    pub fn tag(&self) -> u64 {
        let mut h = DefaultHasher::new();
        (self.ts, &self.from, &self.cid).hash(&mut h);
        h.finish()
    }
}

/// A live message from the room channel, with the epoch it was stored in.
#[derive(Debug, PartialEq)]
pub struct Published {
    pub epoch: String,
    pub entry: Entry,
}

/// Parses "seq\nepoch\nts\nfrom\ncid\ntext" (see the send script).
pub fn parse_published(payload: &[u8]) -> Option<Published> {
    let text = std::str::from_utf8(payload).ok()?;
    let mut parts = text.splitn(6, '\n');
    let seq = parts.next()?.parse().ok()?;
    let epoch = parts.next()?.to_string();
    let ts = parts.next()?.parse().ok()?;
    let from = parts.next()?.to_string();
    let cid = parts.next()?.to_string();
    let text = parts.next()?.to_string();
    Some(Published {
        epoch,
        entry: Entry {
            seq,
            ts,
            from,
            cid,
            text,
        },
    })
}

/// Parses an XRANGE / XREVRANGE reply. Entries that are not ours are
/// skipped rather than failing the whole read.
pub fn parse_entries(value: Value) -> Vec<Entry> {
    let Value::Array(items) = value else {
        return Vec::new();
    };
    items.into_iter().filter_map(parse_entry).collect()
}

fn parse_entry(item: Value) -> Option<Entry> {
    let Value::Array(mut pair) = item else {
        return None;
    };
    let fields = pair.pop()?;
    let id = string(pair.pop()?)?;
    let seq = id.strip_suffix("-0")?.parse().ok()?;
    let Value::Array(fields) = fields else {
        return None;
    };
    let mut entry = Entry {
        seq,
        ts: 0,
        from: String::new(),
        cid: String::new(),
        text: String::new(),
    };
    let mut fields = fields.into_iter();
    while let (Some(name), Some(value)) = (fields.next(), fields.next()) {
        let value = string(value)?;
        match string(name)?.as_str() {
            "f" => entry.from = value,
            "c" => entry.cid = value,
            "t" => entry.text = value,
            "ts" => entry.ts = value.parse().ok()?,
            _ => {}
        }
    }
    Some(entry)
}

fn string(value: Value) -> Option<String> {
    match value {
        Value::BulkString(bytes) => String::from_utf8(bytes).ok(),
        Value::SimpleString(s) => Some(s),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn bulk(s: &str) -> Value {
        Value::BulkString(s.as_bytes().to_vec())
    }

    #[test]
    fn published_payload_round_trips_text_with_newlines() {
        let p = parse_published(b"7\nab12\n1700\nalice\nc-1\nline one\nline two").unwrap();
        assert_eq!(p.epoch, "ab12");
        assert_eq!(p.entry.seq, 7);
        assert_eq!(p.entry.text, "line one\nline two");
        assert!(parse_published(b"x\ne\n1\na\nc\nt").is_none());
        assert!(parse_published(b"1\ne\n1\na").is_none());
    }

    #[test]
    fn stream_entries_parse_and_strangers_are_skipped() {
        let entry = |id: &str| {
            Value::Array(vec![
                bulk(id),
                Value::Array(vec![
                    bulk("f"),
                    bulk("bob"),
                    bulk("c"),
                    bulk("k"),
                    bulk("t"),
                    bulk("hi"),
                    bulk("ts"),
                    bulk("99"),
                ]),
            ])
        };
        let reply = Value::Array(vec![entry("3-0"), entry("junk"), entry("4-0")]);
        let entries = parse_entries(reply);
        assert_eq!(entries.iter().map(|e| e.seq).collect::<Vec<_>>(), [3, 4]);
        assert_eq!((entries[0].from.as_str(), entries[0].ts), ("bob", 99));
    }

    #[test]
    fn a_tag_tells_messages_apart_but_not_their_seqs() {
        let p = |s: &[u8]| parse_published(s).unwrap().entry;
        let one = p(b"7\ne\n1700\nalice\nc-1\nhi");
        assert_eq!(one.tag(), p(b"8\ne\n1700\nalice\nc-1\nhi").tag());
        for other in [
            p(b"7\ne\n1701\nalice\nc-1\nhi"),
            p(b"7\ne\n1700\nbob\nc-1\nhi"),
            p(b"7\ne\n1700\nalice\nc-2\nhi"),
        ] {
            assert_ne!(one.tag(), other.tag(), "{other:?}");
        }
    }
}
