// Parley web client: the chat protocol's state (docs/protocol.md) and what
// each server frame does to it. One socket carries every joined room.
//
// What it keeps true:
// - a room's messages are shown once each, in seq order (dedupe by seq);
// - own messages stay in the room's outbox, shown as pending, until their
//   ack or their echo (matched by cid); after a reconnect, the outbox is
//   re-sent with the same cids once the `since` backlog has been replayed,
//   so the server stores each message at most once;
// - on every (re)open, every room is joined again with `since` = the last
//   seq seen and the room's epoch, so nothing is missed or shown twice.
//
// Server features that may be missing (the room list, private rooms and
// invites, presence, typing) are marked OPTIONAL below: the client tries
// them, and an `unknown_type` answer switches the feature off for the
// session; presence is on only while `joined` carries `online`.
import * as view from "./view.js";

const { $, h } = view;

const HISTORY_PAGE = 50;
const ACK_TIMEOUT_MS = 10_000;
const RETRYABLE = new Set(["overloaded", "unavailable", "rate_limited"]);
const AUTO_RETRIES = 3;
const TYPING_EVERY_MS = 3_000;
const TYPING_SHOWN_MS = 5_000;
const ROOM_LIST_EVERY_MS = 30_000;
// Requests awaiting a reply; typing requests may never get one.
const PENDING_MAX = 200;

/** null = not known yet, then true or false for the session. */
export const features = { rooms: null, create: null, invite: null, typing: null };

const st = {
  conn: null, me: "", persist: () => {}, rooms: new Map(), active: "",
  pending: new Map(), publicList: [], lastTyping: 0, listTimer: 0,
};

export function init(conn, me, persist) {
  Object.assign(st, { conn, me, persist });
  clearInterval(st.listTimer);
  st.listTimer = setInterval(() => { if (conn.isOpen) requestRooms(); }, ROOM_LIST_EVERY_MS);
}

/** Forgets everything (log out). */
export function reset() {
  clearInterval(st.listTimer);
  for (const room of st.rooms.values()) stopTimers(room);
  st.rooms.clear();
  st.pending.clear();
  Object.assign(st, { active: "", publicList: [], lastTyping: 0 });
  for (const key of Object.keys(features)) features[key] = null;
  delete document.body.dataset.ready;
}

function newRoom(name, isPrivate) {
  return {
    name, private: isPrivate, creating: false, joined: false, resumed: false,
    epoch: null, lastSeq: 0, oldest: Infinity, more: false, loadingOlder: false,
    seen: new Set(), replaying: 0, unread: 0, scroll: null,
    online: null, typing: new Map(), outbox: new Map(),
    list: h("ol", { class: "messages" }),
  };
}

function request(obj, meta) {
  const id = st.conn.send(obj);
  if (id && meta) {
    st.pending.set(id, meta);
    if (st.pending.size > PENDING_MAX) st.pending.delete(st.pending.keys().next().value);
  }
  return id;
}

// ---- the socket's life ------------------------------------------------------

export function onOpen() {
  st.pending.clear();
  for (const room of st.rooms.values()) {
    if (room.creating) create(room);
    else join(room);
  }
  requestRooms();
}

export function onDown() {
  st.pending.clear();
  delete document.body.dataset.ready;
  for (const room of st.rooms.values()) {
    room.joined = false;
    room.replaying = 0;
    room.loadingOlder = false;
    stopTimers(room); // pending messages stay pending, for the rejoin
  }
  const room = st.rooms.get(st.active);
  if (room) view.setTyping(room), view.setLogTop(room);
}

function stopTimers(room) {
  for (const out of room.outbox.values()) clearTimeout(out.timer);
  for (const timer of room.typing.values()) clearTimeout(timer);
  room.typing.clear();
}

function join(room) {
  const resume = room.lastSeq > 0 && room.epoch
    ? { since: room.lastSeq, epoch: room.epoch } : {};
  room.resumed = "since" in resume;
  request({ type: "join", room: room.name, ...resume }, { kind: "join", room: room.name });
}

// ---- frames from the server -------------------------------------------------

export function onFrame(f) {
  const req = f.id !== undefined ? st.pending.get(f.id) : undefined;
  if (req) st.pending.delete(f.id);
  if (f.type === "error") return onError(f, req);
  if (req?.kind === "create" && f.type !== "joined") return created(req);
  if (req?.kind === "invite") return view.showNotice(`Invited ${req.user} to #${req.room}.`);
  switch (f.type) {
    case "joined": return onJoined(f);
    case "message": return onMessage(f);
    case "ack": return settle(st.rooms.get(f.room), f.cid, f.seq);
    case "history": return onHistory(f);
    case "rooms": return onRoomList(f); // OPTIONAL
    case "presence": return onPresence(f); // OPTIONAL
    case "typing": return onTyping(f); // OPTIONAL
    case "invited": return requestRooms(); // OPTIONAL: someone invited us
  }
}

function onJoined(f) {
  const room = st.rooms.get(f.room);
  if (!room) return st.conn.send({ type: "leave", room: f.room }); // left meanwhile
  room.joined = true;
  room.creating = false;
  if (f.reset) clearRoom(room);
  room.epoch = f.epoch ?? null;
  room.online = Array.isArray(f.online) ? new Set(f.online.map(String)) : null;
  room.replaying = Number(f.backlog) || 0;
  if (room.replaying === 0) afterReplay(room);
  if (room.name === st.active) view.setOnline(room);
}

// After a join's backlog: unstored own messages go out again, same cid.
function afterReplay(room) {
  if (!room.resumed) room.more = room.oldest !== Infinity && room.oldest > 1;
  for (const [cid, out] of room.outbox) if (out.state === "pending") transmit(room, cid);
  if (room.name !== st.active) return;
  view.setLogTop(room);
  document.body.dataset.ready = "true";
}

// The server's history for this room is gone (new epoch, or `since` is
// older than it keeps): start the view again, keeping unsent messages.
function clearRoom(room) {
  for (const li of [...room.list.children]) if (!room.outbox.has(li.dataset.cid)) li.remove();
  room.seen.clear();
  Object.assign(room, { lastSeq: 0, oldest: Infinity, resumed: false, more: false });
}

function onMessage(m) {
  const room = st.rooms.get(m.room);
  if (!room || typeof m.seq !== "number") return;
  const backlog = room.replaying > 0;
  if (backlog && --room.replaying === 0) queueMicrotask(() => afterReplay(room));
  room.lastSeq = Math.max(room.lastSeq, m.seq);
  if (room.seen.has(m.seq)) return;
  addMessage(room, m, true);
  stopTyping(room, m.from);

  // A fresh join's backlog is history; a resumed one is news.
  const counts = !backlog || room.resumed;
  const looking = room.name === st.active && !document.hidden;
  if (counts && !looking && m.from !== st.me) {
    room.unread++;
    renderRooms();
  }
}

function addMessage(room, m, live) {
  const from = String(m.from ?? "");
  const out = from === st.me ? room.outbox.get(m.cid) : undefined;
  room.seen.add(m.seq);
  room.oldest = Math.min(room.oldest, m.seq);
  const li = out ? out.li : view.messageItem(from, String(m.text ?? ""),
    m.cid ? String(m.cid) : "", from === st.me);
  if (out) settle(room, m.cid);
  else if (from === st.me) li.dataset.state = "sent";
  li.dataset.seq = m.seq;
  view.setTime(li, m.ts);
  const follow = live && room.name === st.active && (out || view.atBottom());
  view.place(room.list, li);
  if (follow) view.toBottom();
}

function onHistory(f) {
  const room = st.rooms.get(f.room);
  if (!room) return;
  const messages = Array.isArray(f.messages) ? f.messages : [];
  const log = $("log");
  const fromBottom = log.scrollHeight - log.scrollTop;
  for (const m of messages) {
    if (typeof m.seq === "number" && !room.seen.has(m.seq)) addMessage(room, m, false);
  }
  room.loadingOlder = false;
  room.more = Boolean(f.more) && messages.length > 0;
  if (room.name !== st.active) return;
  log.scrollTop = log.scrollHeight - fromBottom; // older pages grow upwards
  view.setLogTop(room);
}

function onError(e, req) {
  if (e.code === "unknown_type" && req?.feature) return unsupported(req);
  const room = st.rooms.get(e.room ?? req?.room);
  if (room && e.cid && room.outbox.has(e.cid)) return sendRefused(room, e);
  if (req?.kind === "join") return joinRefused(room, e);
  if (req?.kind === "typing") return;
  if (req?.kind === "history" && room) {
    room.loadingOlder = false;
    if (room.name === st.active) view.setLogTop(room);
  }
  view.showError(describe(e));
  if (req?.kind === "create" && room) created(req); // it may exist already
}

// OPTIONAL features: the server does not know this request type.
function unsupported(req) {
  features[req.feature] = false;
  if (req.kind === "create") created(req);
  applyFeatures();
}

function describe(e) {
  return e.message ? `${e.message} (${e.code})` : String(e.code);
}

function joinRefused(room, e) {
  if (!room || e.code === "already_joined") return; // `create` joined us
  if (RETRYABLE.has(e.code)) {
    setTimeout(() => { if (st.rooms.get(room.name) === room && !room.joined) join(room); },
      1000 + Math.random() * 1000);
    return;
  }
  removeRoom(room);
  view.showError(`Could not join #${room.name}: ${describe(e)}`);
}

// ---- own messages -----------------------------------------------------------

/** Sends `text` to the active room; false if there is none. */
export function send(text) {
  const room = st.rooms.get(st.active);
  if (!room) return false;
  const cid = newCid();
  const li = view.messageItem(st.me, text, cid, true);
  view.setTime(li, Date.now());
  room.outbox.set(cid, { text, li, tries: 0, timer: 0, state: "pending" });
  view.setState(li, "pending");
  view.place(room.list, li);
  view.toBottom();
  if (room.joined && room.replaying === 0) transmit(room, cid);
  st.lastTyping = 0;
  return true;
}

function newCid() {
  const bytes = crypto.getRandomValues(new Uint8Array(8));
  return Date.now().toString(36) + "-" + [...bytes].map((b) => b.toString(16).padStart(2, "0")).join("");
}

// Sends (or re-sends, same cid) an outbox message. While the socket is down
// it stays pending and goes out after the rejoin.
function transmit(room, cid) {
  const out = room.outbox.get(cid);
  if (!out) return;
  clearTimeout(out.timer);
  out.state = "pending";
  view.setState(out.li, "pending");
  if (!room.joined) return;
  if (!st.conn.send({ type: "send", room: room.name, text: out.text, cid })) return;
  out.timer = setTimeout(() => fail(room, cid), ACK_TIMEOUT_MS);
}

/** The message is stored (ack or echo): confirmed, with its seq. */
function settle(room, cid, seq) {
  const out = room?.outbox.get(cid);
  if (!out) return;
  clearTimeout(out.timer);
  room.outbox.delete(cid);
  view.setState(out.li, "sent");
  if (typeof seq === "number" && !out.li.dataset.seq) {
    out.li.dataset.seq = seq;
    room.seen.add(seq); // not lastSeq: earlier messages may be in flight
    view.place(room.list, out.li);
  }
}

function sendRefused(room, e) {
  const out = room.outbox.get(e.cid);
  clearTimeout(out.timer);
  if (RETRYABLE.has(e.code) && out.tries < AUTO_RETRIES) {
    out.tries++;
    const wait = 500 * 2 ** out.tries + Math.random() * 250;
    out.timer = setTimeout(() => transmit(room, e.cid), wait);
    return;
  }
  fail(room, e.cid);
  view.showError(describe(e));
}

// Failed messages stay in the outbox (a late ack still confirms them) but
// are not re-sent by themselves: the Retry button sends the same cid.
function fail(room, cid) {
  const out = room.outbox.get(cid);
  if (!out) return;
  clearTimeout(out.timer);
  out.state = "failed";
  view.setState(out.li, "failed", () => {
    out.tries = 0;
    if (room.replaying === 0) transmit(room, cid);
  });
}

// ---- rooms -----------------------------------------------------------------

/** Joins (or, with isPrivate, creates) a room and shows it. */
export function openRoom(name, isPrivate = false) {
  if (!st.rooms.has(name)) {
    const room = newRoom(name, isPrivate);
    st.rooms.set(name, room);
    const make = isPrivate && features.create !== false;
    room.creating = make;
    if (st.conn.isOpen) make ? create(room) : join(room); // else onOpen does
  }
  select(name);
}

// OPTIONAL: private rooms need `create`; its reply (whatever its type) is
// followed by a join, unless the reply is `joined` itself.
function create(room) {
  request({ type: "create", room: room.name, private: true },
    { kind: "create", room: room.name, feature: "create" });
}

function created(req) {
  const room = st.rooms.get(req.room);
  if (!room || room.joined) return;
  room.creating = false;
  join(room);
  requestRooms();
}

export function leave(name) {
  const room = st.rooms.get(name);
  if (!room) return;
  if (room.joined) st.conn.send({ type: "leave", room: name });
  removeRoom(room);
  requestRooms();
}

function removeRoom(room) {
  stopTimers(room);
  st.rooms.delete(room.name);
  room.list.remove();
  if (st.active === room.name) {
    const next = st.rooms.keys().next().value;
    st.active = "";
    if (next) return select(next);
    showNoRoom();
  }
  renderRooms();
}

/** Shows a joined room. */
export function select(name) {
  const room = st.rooms.get(name);
  if (!room) return;
  const prev = st.rooms.get(st.active);
  if (prev && prev !== room) prev.scroll = view.atBottom() ? null : $("log").scrollTop;
  st.active = name;
  room.unread = 0;
  document.body.dataset.room = name;
  view.showList(room);
  view.setLogTop(room);
  view.setOnline(room);
  view.setTyping(room);
  if (room.scroll === null) view.toBottom();
  else $("log").scrollTop = room.scroll;
  if (room.joined && room.replaying === 0) document.body.dataset.ready = "true";
  else delete document.body.dataset.ready;
  renderRooms();
}

function showNoRoom() {
  delete document.body.dataset.room;
  $("messages")?.remove();
  $("room-title").textContent = "No room";
  $("older").hidden = true;
  $("log-start").hidden = false;
  $("log-start").textContent = "Join or create a room to start talking.";
  $("room-online").hidden = true;
  view.setTyping(null);
}

/** Marks the active room read when the tab comes back into view. */
export function seen() {
  const room = st.rooms.get(st.active);
  if (room && room.unread > 0) { room.unread = 0; renderRooms(); }
}

/** Scroll-back: asks for the page before the oldest message shown. */
export function loadOlder() {
  const room = st.rooms.get(st.active);
  if (!room || !room.more || room.loadingOlder || !room.joined) return;
  const id = request({ type: "history", room: room.name, before: room.oldest, limit: HISTORY_PAGE },
    { kind: "history", room: room.name });
  if (!id) return;
  room.loadingOlder = true;
  view.setLogTop(room);
}

function renderRooms() {
  view.renderMyRooms([...st.rooms.values()], st.active, select);
  const others = st.publicList.filter((r) => !st.rooms.has(r.room));
  view.renderPublicRooms(others, (name) => openRoom(name, false));
  applyFeatures();
  st.persist([...st.rooms.keys()], st.active);
}

function applyFeatures() {
  $("public-section").hidden = features.rooms !== true;
  $("private-row").hidden = !(features.rooms === true && features.create !== false);
  const room = st.rooms.get(st.active);
  const canInvite = Boolean(room?.private) && features.invite !== false;
  $("invite-open").hidden = !canInvite;
  if (!canInvite) $("invite-form").hidden = true;
}

// ---- OPTIONAL: room list, invites, presence, typing -------------------------

function requestRooms() {
  if (features.rooms !== false) request({ type: "rooms" }, { kind: "rooms", feature: "rooms" });
}

function onRoomList(f) {
  features.rooms = true;
  const list = Array.isArray(f.rooms) ? f.rooms : [];
  st.publicList = list
    .filter((r) => r && typeof r.room === "string")
    .sort((a, b) => (Number(b.members) || 0) - (Number(a.members) || 0));
  for (const r of st.publicList) {
    const room = st.rooms.get(r.room);
    if (room) room.private = Boolean(r.private);
  }
  const active = st.rooms.get(st.active);
  if (active) view.showList(active);
  renderRooms();
}

export function invite(user) {
  const id = request({ type: "invite", room: st.active, user },
    { kind: "invite", room: st.active, user, feature: "invite" });
  if (!id) view.showError("Not connected; try again when the connection is back.");
  return id !== 0;
}

function onPresence(f) {
  const room = st.rooms.get(f.room);
  if (!room || typeof f.user !== "string") return;
  room.online ??= new Set();
  if (f.online) room.online.add(f.user);
  else room.online.delete(f.user), stopTyping(room, f.user);
  if (room.name === st.active) view.setOnline(room);
}

function onTyping(f) {
  const room = st.rooms.get(f.room);
  if (!room || typeof f.user !== "string" || f.user === st.me) return;
  clearTimeout(room.typing.get(f.user));
  room.typing.set(f.user, setTimeout(() => stopTyping(room, f.user), TYPING_SHOWN_MS));
  if (room.name === st.active) view.setTyping(room);
}

function stopTyping(room, user) {
  if (!room.typing.has(user)) return;
  clearTimeout(room.typing.get(user));
  room.typing.delete(user);
  if (room.name === st.active) view.setTyping(room);
}

/** The user typed in the composer: tell the room, at most every few s. */
export function typed() {
  const room = st.rooms.get(st.active);
  if (features.typing === false || !room?.joined) return;
  const now = Date.now();
  if (now - st.lastTyping < TYPING_EVERY_MS) return;
  st.lastTyping = now;
  request({ type: "typing", room: room.name }, { kind: "typing", feature: "typing" });
}
