// Parley web client: the rooms this user is in (one socket carries them
// all), which one is shown, unread counts, and the OPTIONAL server room
// list, private rooms and invites: tried, and switched off for the session
// when the server answers `unknown_type` (see chat.js).
import * as view from "./view.js";
import { features, newRoom, request, st, stopTimers } from "./state.js";
import { join } from "./chat.js";

const { $ } = view;
const ROOM_LIST_EVERY_MS = 30_000;
// Least time between refreshes the user causes (focus, opening the list).
const ROOM_LIST_SOON_MS = 5_000;

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
export function create(room) {
  request({ type: "create", room: room.name, private: true },
    { kind: "create", room: room.name, feature: "create" });
}

export function created(req) {
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

export function removeRoom(room) {
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

export function renderRooms() {
  view.renderMyRooms([...st.rooms.values()], st.active, select);
  const others = st.publicList.filter((r) => !st.rooms.has(r.room));
  view.renderPublicRooms(others, (name) => openRoom(name, false));
  applyFeatures();
  st.persist([...st.rooms.keys()], st.active);
}

export function applyFeatures() {
  $("public-section").hidden = features.rooms !== true;
  $("private-row").hidden = !(features.rooms === true && features.create !== false);
  const room = st.rooms.get(st.active);
  const canInvite = Boolean(room?.private) && features.invite !== false;
  $("invite-open").hidden = !canInvite;
  if (!canInvite) $("invite-form").hidden = true;
}

export function requestRooms() {
  if (features.rooms === false) return;
  st.listAskedAt = Date.now();
  request({ type: "rooms" }, { kind: "rooms", feature: "rooms" });
}

/** The user may be looking for rooms (invites arrive unannounced). */
export function refreshSoon() {
  if (st.conn?.isOpen && Date.now() - st.listAskedAt > ROOM_LIST_SOON_MS) requestRooms();
}

export function onRoomList(f) {
  features.rooms = true;
  const list = Array.isArray(f.rooms) ? f.rooms : [];
  st.publicList = list
    .filter((r) => r && typeof r.room === "string")
    .sort((a, b) => view.roomCount(b) - view.roomCount(a));
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
