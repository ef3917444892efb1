//! Redis key names and the send script.
//!
//! Every key of a room carries the room name as a hash tag (`{room}`), so
//! all of a room's keys map to one Redis Cluster slot and one script can
//! touch them atomically; spreading rooms over several Redis instances later
//! is a matter of routing by that tag. Room names never contain braces
//! (see `chat::names`).
//!
//! Per room:
//! - `parley:{R}:seq`   last sequence number (INCR)
//! - `parley:{R}:log`   history stream, entry id `<seq>-0`, fields f c t ts
//! - `parley:{R}:cids`  hash "<from>\n<cid>" -> seq, for retries; trimmed
//!   together with the stream, so the dedup window is the history window
//! - `parley:{R}:epoch` random id set at the room's first message; a new
//!   value means Redis lost the room's data
//! - channel `parley:{R}` carries each stored message once

/// The keys of one room, in the order the send script expects them.
pub struct RoomKeys {
    pub seq: String,
    pub log: String,
    pub cids: String,
    pub epoch: String,
}

impl RoomKeys {
    pub fn new(room: &str) -> RoomKeys {
        RoomKeys {
            seq: format!("parley:{{{room}}}:seq"),
            log: format!("parley:{{{room}}}:log"),
            cids: format!("parley:{{{room}}}:cids"),
            epoch: format!("parley:{{{room}}}:epoch"),
        }
    }
}

/// The pub/sub channel of a room.
pub fn channel(room: &str) -> String {
    format!("parley:{{{room}}}")
}

/// The room a channel name belongs to, if it is one of ours.
pub fn room_of(channel: &str) -> Option<&str> {
    channel.strip_prefix("parley:{")?.strip_suffix('}')
}

/// Stores and publishes one message atomically, or recognises a retry.
///
/// KEYS: seq, log, cids, epoch.
/// ARGV: from, cid, text, ts, history length, fresh epoch, channel.
/// Returns {seq, epoch, 1 if this was a retry of a stored message}.
/// The published payload is "seq\nepoch\nts\nfrom\ncid\ntext": every field
/// but the last is free of newlines (names and cids are validated).
pub const SEND_SCRIPT: &str = r"
local tag = ARGV[1] .. '\n' .. ARGV[2]
local epoch = redis.call('GET', KEYS[4])
if not epoch then
  epoch = ARGV[6]
  redis.call('SET', KEYS[4], epoch)
end
local old = redis.call('HGET', KEYS[3], tag)
if old then
  return {tonumber(old), epoch, 1}
end
local seq = redis.call('INCR', KEYS[1])
redis.call('XADD', KEYS[2], seq .. '-0',
  'f', ARGV[1], 'c', ARGV[2], 't', ARGV[3], 'ts', ARGV[4])
redis.call('HSET', KEYS[3], tag, seq)
local excess = redis.call('XLEN', KEYS[2]) - tonumber(ARGV[5])
if excess > 0 then
  local gone = redis.call('XRANGE', KEYS[2], '-', '+', 'COUNT', excess)
  for _, entry in ipairs(gone) do
    local f = entry[2]
    redis.call('HDEL', KEYS[3], f[2] .. '\n' .. f[4])
  end
  redis.call('XTRIM', KEYS[2], 'MAXLEN', ARGV[5])
end
redis.call('PUBLISH', ARGV[7], seq .. '\n' .. epoch .. '\n' .. ARGV[4] ..
  '\n' .. ARGV[1] .. '\n' .. ARGV[2] .. '\n' .. ARGV[3])
return {seq, epoch, 0}
";

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_share_one_hash_tag() {
        let k = RoomKeys::new("team:dev");
        for key in [&k.seq, &k.log, &k.cids, &k.epoch] {
            assert!(key.contains("{team:dev}"), "{key}");
        }
        assert_eq!(room_of(&channel("team:dev")), Some("team:dev"));
        assert_eq!(room_of("other"), None);
    }
}
