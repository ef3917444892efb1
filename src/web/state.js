// Parley web client: the state every chat module shares: the joined
// rooms, requests awaiting replies, and which optional server features
// this server has. chat.js, outbox.js and rooms.js change it.
import * as view from "./view.js";

export const RETRYABLE = new Set(["overloaded", "unavailable", "rate_limited"]);
// Requests awaiting a reply; typing requests may never get one.
const PENDING_MAX = 200;

/** null = not known yet, then true or false for the session. */
export const features = { rooms: null, create: null, invite: null, typing: null };

export const st = {
  conn: null, me: "", persist: () => {}, rooms: new Map(), active: "",
  pending: new Map(), publicList: [], lastTyping: 0, listTimer: 0, listAskedAt: 0,
};

export function newRoom(name, isPrivate) {
  return {
    name, private: isPrivate, creating: false, joined: false, resumed: false,
    epoch: null, lastSeq: 0, oldest: Infinity, more: false, loadingOlder: false,
    seen: new Set(), replaying: 0, unread: 0, scroll: null,
    online: null, typing: new Map(), outbox: new Map(),
    list: view.h("ol", { class: "messages" }),
  };
}

export function request(obj, meta) {
  const id = st.conn.send(obj);
  if (id && meta) {
    st.pending.set(id, meta);
    if (st.pending.size > PENDING_MAX) st.pending.delete(st.pending.keys().next().value);
  }
  return id;
}

export function stopTimers(room) {
  for (const out of room.outbox.values()) clearTimeout(out.timer);
  for (const timer of room.typing.values()) clearTimeout(timer);
  room.typing.clear();
}

export function describe(e) {
  return e.message ? `${e.message} (${e.code})` : String(e.code);
}
