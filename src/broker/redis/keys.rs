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
//!   value means Redis lost the room's data (the key itself, or, noticed
//!   by a node and rotated by ROTATE_SCRIPT, a tail of the room)
//! - channel `parley:{R}` carries each stored message once

/// The keys of one room, in the order the send script expects them.
pub struct RoomKeys {
    pub seq: String,
    pub log: String,
    pub cids: String,
    pub epoch: String,
    /// Hash: `private` ("1" or "0"), `owner`.
    pub meta: String,
    /// Set: who may enter a private room.
    pub members: String,
    /// Hash: "<node>|<user>" for every user online through some node.
    pub online: String,
}

impl RoomKeys {
    pub fn new(room: &str) -> RoomKeys {
        let key = |part: &str| format!("parley:{{{room}}}:{part}");
        RoomKeys {
            seq: key("seq"),
            log: key("log"),
            cids: key("cids"),
            epoch: key("epoch"),
            meta: key("meta"),
            members: key("members"),
            online: key("online"),
        }
    }
}

/// Set of public room names (for the room list).
pub const PUBLIC_ROOMS: &str = "parley:rooms";
/// Set of live node ids; each has a lease key.
pub const NODES: &str = "parley:nodes";

/// Set of the private rooms `user` belongs to.
pub fn user_rooms(user: &str) -> String {
    format!("parley:user-rooms:{{{user}}}")
}

/// A node's lease: present while the node is alive.
pub fn lease(node: &str) -> String {
    format!("parley:node:{node}")
}

/// Set of the rooms where a node has users online.
pub fn node_rooms(node: &str) -> String {
    format!("parley:node-rooms:{node}")
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
/// Refuses (seq -1) a sender who is not a member of a private room.
///
/// KEYS: seq, log, cids, epoch, meta, members.
/// ARGV: from, cid, text, ts, history length, fresh epoch, channel.
/// Returns {seq, epoch, 1 if this was a retry of a stored message}.
/// The published payload is "seq\nepoch\nts\nfrom\ncid\ntext": every field
/// but the last is free of newlines (names and cids are validated).
pub const SEND_SCRIPT: &str = r"
if redis.call('HGET', KEYS[5], 'private') == '1'
    and redis.call('SISMEMBER', KEYS[6], ARGV[1]) == 0 then
  return {-1, '', 0}
end
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

/// Gives a room a new epoch, but only if it still has the one the caller
/// knew, so nodes that notice the same loss rotate it once.
/// KEYS: epoch. ARGV: the epoch known ('' for none), a fresh one.
/// Returns the room's epoch now (nil if it has none).
pub const ROTATE_SCRIPT: &str = r"
local now = redis.call('GET', KEYS[1])
if (now or '') == ARGV[1] then
  redis.call('SET', KEYS[1], ARGV[2])
  return ARGV[2]
end
return now
";

/// Whether `user` may enter a room, registering a public one in the room
/// list on the way. KEYS: meta, members, public rooms. ARGV: user, room.
/// Returns 1 or 0.
pub const ACCESS_SCRIPT: &str = r"
if redis.call('HGET', KEYS[1], 'private') == '1' then
  return redis.call('SISMEMBER', KEYS[2], ARGV[1])
end
redis.call('SADD', KEYS[3], ARGV[2])
return 1
";

/// A page of history for a member. KEYS: meta, members, log.
/// ARGV: user, end id, count. Returns -1 for a non-member, else entries.
pub const HISTORY_SCRIPT: &str = r"
if redis.call('HGET', KEYS[1], 'private') == '1'
    and redis.call('SISMEMBER', KEYS[2], ARGV[1]) == 0 then
  return -1
end
return redis.call('XREVRANGE', KEYS[3], ARGV[2], '-', 'COUNT', ARGV[3])
";

/// Creates a room. KEYS: meta, members, seq, public rooms, owner's rooms.
/// ARGV: owner, private ("1"/"0"), room. Returns 1, or 0 if it exists.
pub const CREATE_SCRIPT: &str = r"
if redis.call('EXISTS', KEYS[1]) == 1 or redis.call('EXISTS', KEYS[3]) == 1
    or redis.call('SISMEMBER', KEYS[4], ARGV[3]) == 1 then
  return 0
end
redis.call('HSET', KEYS[1], 'private', ARGV[2], 'owner', ARGV[1])
if ARGV[2] == '1' then
  redis.call('SADD', KEYS[2], ARGV[1])
  redis.call('SADD', KEYS[5], ARGV[3])
else
  redis.call('SADD', KEYS[4], ARGV[3])
end
return 1
";

/// Adds a member to a private room, for its owner only, up to a number of
/// members. KEYS: meta, members, invitee's rooms. ARGV: by, user, room,
/// max members. Returns 1 (added), 0 (not the owner of a private room),
/// -1 (full).
pub const INVITE_SCRIPT: &str = r"
if redis.call('HGET', KEYS[1], 'private') ~= '1'
    or redis.call('HGET', KEYS[1], 'owner') ~= ARGV[1] then
  return 0
end
if redis.call('SCARD', KEYS[2]) >= tonumber(ARGV[4])
    and redis.call('SISMEMBER', KEYS[2], ARGV[2]) == 0 then
  return -1
end
redis.call('SADD', KEYS[2], ARGV[2])
redis.call('SADD', KEYS[3], ARGV[3])
return 1
";

/// Marks `user` online in a room through `node`; announces them if no
/// other node had them. KEYS: online, node rooms. ARGV: node, user, room,
/// channel. Returns the field names (node|user) now online.
pub const ENTER_SCRIPT: &str = r"
local fields = redis.call('HKEYS', KEYS[1])
local seen = false
local suffix = '|' .. ARGV[2]
for _, f in ipairs(fields) do
  if string.sub(f, -#suffix) == suffix then seen = true end
end
if redis.call('HSET', KEYS[1], ARGV[1] .. suffix, 1) == 1 then
  table.insert(fields, ARGV[1] .. suffix)
end
redis.call('SADD', KEYS[2], ARGV[3])
if not seen then
  redis.call('PUBLISH', ARGV[4], 'P\n1\n' .. ARGV[2])
end
return fields
";

/// A join, in one call: checks that `user` may enter (registering a public
/// room in the list) and marks them online through `node` as ENTER does.
/// KEYS: meta, members, public rooms, online, node rooms.
/// ARGV: user, room, node, channel. Returns {0} if refused, else {1}
/// followed by the online fields (node|user).
pub const JOIN_SCRIPT: &str = r"
if redis.call('HGET', KEYS[1], 'private') == '1' then
  if redis.call('SISMEMBER', KEYS[2], ARGV[1]) == 0 then return {0} end
else
  redis.call('SADD', KEYS[3], ARGV[2])
end
local fields = redis.call('HKEYS', KEYS[4])
local seen = false
local suffix = '|' .. ARGV[1]
for _, f in ipairs(fields) do
  if string.sub(f, -#suffix) == suffix then seen = true end
end
if redis.call('HSET', KEYS[4], ARGV[3] .. suffix, 1) == 1 then
  table.insert(fields, ARGV[3] .. suffix)
end
redis.call('SADD', KEYS[5], ARGV[2])
if not seen then
  redis.call('PUBLISH', ARGV[4], 'P\n1\n' .. ARGV[1])
end
table.insert(fields, 1, 1)
return fields
";

/// Takes `user` offline through `node`; announces them if no other node
/// has them. KEYS: online. ARGV: node, user, channel.
pub const EXIT_SCRIPT: &str = r"
local suffix = '|' .. ARGV[2]
redis.call('HDEL', KEYS[1], ARGV[1] .. suffix)
for _, f in ipairs(redis.call('HKEYS', KEYS[1])) do
  if string.sub(f, -#suffix) == suffix then return 0 end
end
redis.call('PUBLISH', ARGV[3], 'P\n0\n' .. ARGV[2])
return 1
";

/// Removes every presence entry of a dead node (its lease expired) and
/// announces the users nobody else has. KEYS: nodes set, the node's rooms.
/// ARGV: node. Touches room keys it finds through the node's room set, so
/// it is for a single Redis, not a cluster.
pub const REAP_SCRIPT: &str = r"
local prefix = ARGV[1] .. '|'
for _, room in ipairs(redis.call('SMEMBERS', KEYS[2])) do
  local online = 'parley:{' .. room .. '}:online'
  local fields = redis.call('HKEYS', online)
  local gone = {}
  for _, f in ipairs(fields) do
    if string.sub(f, 1, #prefix) == prefix then
      redis.call('HDEL', online, f)
      gone[string.sub(f, #prefix + 1)] = true
    end
  end
  for user, _ in pairs(gone) do
    local suffix = '|' .. user
    local still = false
    for _, f in ipairs(redis.call('HKEYS', online)) do
      if string.sub(f, -#suffix) == suffix then still = true end
    end
    if not still then
      redis.call('PUBLISH', 'parley:{' .. room .. '}', 'P\n0\n' .. user)
    end
  end
end
redis.call('DEL', KEYS[2])
redis.call('SREM', KEYS[1], ARGV[1])
return 1
";

/// The distinct users among "node|user" presence fields, sorted.
pub fn users_of(fields: &[String]) -> Vec<String> {
    let mut users: Vec<String> = fields
        .iter()
        .filter_map(|f| f.split_once('|').map(|(_, u)| u.to_string()))
        .collect();
    users.sort();
    users.dedup();
    users
}

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
