// Parley web client: the chat protocol (docs/protocol.md): what each server
// frame does to the shared state (state.js). One socket carries every
// joined room.
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
import { RETRYABLE, describe, features, request, st, stopTimers } from "./state.js";
import { sendRefused, settle, transmit } from "./outbox.js";
import {
  applyFeatures, create, created, onRoomList, removeRoom, renderRooms, requestRooms,
} from "./rooms.js";

const { $ } = view;

const HISTORY_PAGE = 50;
const TYPING_EVERY_MS = 3_000;
const TYPING_SHOWN_MS = 5_000;

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

export function join(room) {
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
  if (req?.kind === "create") {
    // A room that exists already may still be joinable; if not, the
    // join's own error says why.
    if (e.code !== "room_exists") view.showError(describe(e));
    return created(req);
  }
  view.showError(describe(e));
}

// OPTIONAL features: the server does not know this request type.
function unsupported(req) {
  features[req.feature] = false;
  if (req.kind === "create") created(req);
  applyFeatures();
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

// ---- OPTIONAL: presence and typing ------------------------------------------

// One frame lists who came online and who went offline in a room since
// the previous one; each entry is a state, so applying it twice is harmless.
function onPresence(f) {
  const room = st.rooms.get(f.room);
  if (!room) return;
  const names = (list) => (Array.isArray(list) ? list : []).filter((u) => typeof u === "string");
  room.online ??= new Set();
  for (const user of names(f.online)) room.online.add(user);
  for (const user of names(f.offline)) room.online.delete(user), stopTyping(room, user);
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
