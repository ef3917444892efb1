// Parley web client: one page, one WebSocket, one room at a time.
//
// Speaks protocol v1 (docs/protocol.md). Identity is `?name=` on /ws until
// accounts exist. What it keeps true:
// - user text only ever reaches the page through textContent;
// - a room's messages are shown once each, in seq order (dedupe by seq);
// - own messages stay "pending" until their `ack` (matched by cid), and any
//   that were never acknowledged are re-sent with the same cid after a
//   reconnect, once the `since` backlog has been replayed;
// - a dropped socket is retried with exponential backoff and jitter,
//   rejoining with `since` = last seq seen so nothing is missed.
"use strict";

const BACKOFF_BASE_MS = 500;
const BACKOFF_CAP_MS = 15000;
const ERROR_SHOW_MS = 8000;
const RETRYABLE = new Set(["overloaded", "unavailable"]);
const SEND_RETRIES = 3;

const $ = (id) => document.getElementById(id);
const el = {
  joinView: $("join-view"), chatView: $("chat-view"), joinForm: $("join-form"),
  name: $("name"), room: $("room"), where: $("where"), me: $("me"),
  roomTitle: $("room-title"), status: $("status"), leave: $("leave"),
  error: $("error"), errorText: $("error-text"), errorClose: $("error-close"),
  log: $("log"), list: $("messages"),
  composer: $("composer"), text: $("text"),
};

// Times in the reader's locale: clock time today, with the date otherwise.
const TIME = { hour: "numeric", minute: "2-digit" };
const DAY_TIME = { ...TIME, month: "short", day: "numeric" };

// Everything the page knows about the session; only the functions below change it.
const s = {
  name: "", room: "", ws: null, attempt: 0, retryTimer: 0, errorTimer: 0,
  nextId: 1, joinId: 0, lastSeq: 0, seen: new Set(), replaying: 0,
  mine: new Map(), // cid -> <li> of own messages not yet stored
};

// ---- connection ---------------------------------------------------------

function wsUrl(name) {
  const proto = location.protocol === "https:" ? "wss:" : "ws:";
  return `${proto}//${location.host}/ws?name=${encodeURIComponent(name)}`;
}

function connect() {
  clearTimeout(s.retryTimer);
  setStatus("connecting", "Connecting…");
  const ws = new WebSocket(wsUrl(s.name));
  s.ws = ws;
  ws.onopen = () => {
    // The epoch says which life of the room's history `since` refers to;
    // if the server lost that history, it answers with reset: true.
    const since = s.lastSeq > 0 ? { since: s.lastSeq, epoch: s.epoch } : {};
    s.joinId = send({ type: "join", room: s.room, ...since });
  };
  ws.onmessage = (ev) => {
    if (s.ws !== ws) return; // a socket we already gave up on
    let frame;
    try { frame = JSON.parse(ev.data); } catch { return; }
    if (frame && typeof frame === "object") onFrame(frame);
  };
  ws.onclose = (ev) => {
    if (s.ws !== ws) return; // leaveRoom() already let it go
    s.ws = null;
    delete document.body.dataset.joined;
    scheduleReconnect(ev.code);
  };
}

function scheduleReconnect(code) {
  const ceiling = Math.min(BACKOFF_CAP_MS, BACKOFF_BASE_MS * 2 ** s.attempt);
  const delay = Math.round(ceiling / 2 + Math.random() * ceiling / 2);
  s.attempt = Math.min(s.attempt + 1, 10);
  const why = code === 1001 ? "Server restarting" : "Disconnected";
  setStatus("disconnected", `${why} — retrying in ${Math.ceil(delay / 1000)} s`);
  s.retryTimer = setTimeout(connect, delay);
}

function send(obj) {
  obj.id = s.nextId++;
  if (s.ws?.readyState === WebSocket.OPEN) s.ws.send(JSON.stringify(obj));
  return obj.id;
}

function setStatus(state, label) {
  el.status.dataset.state = state;
  el.status.textContent = label;
}

// ---- frames from the server ---------------------------------------------

function onFrame(f) {
  if (f.room !== undefined && f.room !== s.room) return; // a room we left
  switch (f.type) {
    case "joined": return onJoined(f);
    case "message": return onMessage(f);
    case "ack": return onAck(f);
    case "error": return onError(f);
  }
}

function onJoined(f) {
  s.attempt = 0;
  setStatus("connected", "Connected");
  document.body.dataset.joined = f.room;
  if (f.reset) clearRoom();
  s.epoch = f.epoch;
  s.replaying = Number(f.backlog) || 0;
  if (s.replaying === 0) afterReplay();
}

function onMessage(m) {
  if (s.replaying > 0 && --s.replaying === 0) queueMicrotask(afterReplay);
  if (typeof m.seq !== "number" || s.seen.has(m.seq)) return;
  s.seen.add(m.seq);
  s.lastSeq = Math.max(s.lastSeq, m.seq);

  const own = m.from === s.name ? s.mine.get(m.cid) : undefined;
  const li = own || renderMessage(m.from, m.text, m.cid);
  li.dataset.seq = m.seq;
  setTime(li, m.ts);
  const log = el.log;
  const follow = own || log.scrollHeight - log.scrollTop - log.clientHeight < 80;
  place(li);
  if (follow) el.log.scrollTop = el.log.scrollHeight;
}

// The ack settles an own message. Its seq is marked seen (but not taken as
// lastSeq: earlier messages may still be on their way) so a late echo of the
// same message is dropped as a duplicate.
function onAck(a) {
  const li = s.mine.get(a.cid);
  if (!li) return;
  s.mine.delete(a.cid);
  setState(li, "sent", "");
  if (!li.dataset.seq && typeof a.seq === "number") {
    li.dataset.seq = a.seq;
    s.seen.add(a.seq);
    place(li);
  }
}

function onError(e) {
  const li = e.cid && s.mine.get(e.cid);
  const tries = li ? Number(li.dataset.tries || 0) + 1 : 0;
  if (li && RETRYABLE.has(e.code) && tries <= SEND_RETRIES) {
    li.dataset.tries = tries; // same cid, so the server stores it at most once
    setTimeout(() => resend(e.cid, li), BACKOFF_BASE_MS * 2 ** tries);
    return;
  }
  if (li) {
    setState(li, "failed", "Not sent");
    s.mine.delete(e.cid);
  }
  if (e.id === s.joinId) leaveRoom(); // could not join: back to the form
  showError(e.message ? `${e.message} (${e.code})` : String(e.code));
}

function resend(cid, li) {
  if (s.mine.get(cid) === li && !li.dataset.seq) {
    send({ type: "send", room: s.room, text: li.dataset.text, cid });
  }
}

// After a (re)join's backlog: anything still unstored is sent again, same
// cid. A message that already came back with a seq is stored, though its ack
// went down with the old socket.
function afterReplay() {
  for (const [cid, li] of s.mine) if (li.dataset.seq) onAck({ cid });
  document.body.dataset.ready = "true";
  for (const [cid, li] of s.mine) resend(cid, li);
}

// ---- rendering ----------------------------------------------------------

// The only place user text meets the DOM: always as textContent.
function renderMessage(from, text, cid) {
  const li = node("li", `msg hue-${hue(String(from))}`);
  li.dataset.from = String(from);
  if (cid !== undefined) li.dataset.cid = String(cid);
  li.classList.toggle("own", from === s.name);
  const head = node("div", "msg-head");
  head.append(node("span", "msg-from", from), node("time", "msg-time"), node("span", "msg-status"));
  li.append(head, node("p", "msg-text", text));
  return li;
}

function node(tag, className, text) {
  const n = document.createElement(tag);
  n.className = className;
  if (text !== undefined) n.textContent = String(text);
  return n;
}

function setState(li, state, label) {
  li.dataset.state = state;
  li.querySelector(".msg-status").textContent = label;
}

function setTime(li, ts) {
  const t = li.querySelector("time");
  const d = new Date(Number(ts));
  if (Number.isNaN(d.getTime())) return;
  const today = d.toDateString() === new Date().toDateString();
  t.dateTime = d.toISOString();
  t.title = d.toLocaleString();
  t.textContent = d.toLocaleString(undefined, today ? TIME : DAY_TIME);
}

function hue(name) {
  let h = 0;
  for (const c of name) h = (h * 31 + c.codePointAt(0)) >>> 0;
  return h % 8;
}

// Keeps the list in seq order with unsequenced (pending) own messages last.
function place(li) {
  li.remove();
  const seq = Number(li.dataset.seq);
  let prev = el.list.lastElementChild;
  while (prev && (!prev.dataset.seq || Number(prev.dataset.seq) > seq)) {
    prev = prev.previousElementSibling;
  }
  el.list.insertBefore(li, prev ? prev.nextElementSibling : el.list.firstElementChild);
}

function clearRoom() {
  for (const li of [...el.list.children]) if (!s.mine.has(li.dataset.cid)) li.remove();
  s.seen.clear();
  s.lastSeq = 0;
}

function showError(text) {
  el.errorText.textContent = text;
  el.error.hidden = false;
  clearTimeout(s.errorTimer);
  s.errorTimer = setTimeout(() => { el.error.hidden = true; }, ERROR_SHOW_MS);
}

// ---- user actions -------------------------------------------------------

function enterRoom(name, room) {
  Object.assign(s, { name, room, attempt: 0, lastSeq: 0, replaying: 0 });
  s.seen.clear();
  s.mine.clear();
  el.list.replaceChildren();
  el.me.textContent = name;
  el.roomTitle.textContent = `#${room}`;
  el.log.setAttribute("aria-label", `Messages in ${room}`);
  localStorage.setItem("parley.name", name);
  localStorage.setItem("parley.room", room);
  sessionStorage.setItem("parley.active", "1");
  showView("chat");
  connect();
  el.text.focus();
}

function leaveRoom() {
  clearTimeout(s.retryTimer);
  if (document.body.dataset.joined) send({ type: "leave", room: s.room });
  s.ws?.close(1000);
  s.ws = null; // nothing more from it reaches the page
  setStatus("disconnected", "Not connected");
  delete document.body.dataset.joined;
  delete document.body.dataset.ready;
  sessionStorage.removeItem("parley.active");
  showView("join");
  el.name.focus();
}

function showView(view) {
  document.body.dataset.view = view;
  el.joinView.hidden = view !== "join";
  el.chatView.hidden = view !== "chat";
  el.where.hidden = el.leave.hidden = view !== "chat";
}

function sendText() {
  const text = el.text.value;
  if (!text.trim()) return; // length limits are the server's to enforce
  const cid = `${Date.now().toString(36)}-${Math.random().toString(36).slice(2, 10)}`;
  const li = renderMessage(s.name, text, cid);
  li.dataset.text = text;
  setState(li, "pending", "Sending…");
  s.mine.set(cid, li);
  el.list.append(li);
  el.log.scrollTop = el.log.scrollHeight;
  // If the socket is down, afterReplay() sends it once we have rejoined.
  if (s.replaying === 0) send({ type: "send", room: s.room, text, cid });
  el.text.value = "";
  autosize();
}

function autosize() {
  el.text.style.height = "auto";
  el.text.style.height = `${Math.min(el.text.scrollHeight, 160)}px`;
}

el.joinForm.addEventListener("submit", (ev) => {
  ev.preventDefault();
  if (el.joinForm.reportValidity()) enterRoom(el.name.value.trim(), el.room.value.trim());
});
el.composer.addEventListener("submit", (ev) => { ev.preventDefault(); sendText(); });
el.text.addEventListener("keydown", (ev) => {
  if (ev.key !== "Enter" || ev.shiftKey || ev.isComposing) return;
  ev.preventDefault();
  sendText();
});
el.text.addEventListener("input", autosize);
el.leave.addEventListener("click", leaveRoom);
el.errorClose.addEventListener("click", () => { el.error.hidden = true; });
window.addEventListener("online", () => {
  if (document.body.dataset.view === "chat" && !s.ws) connect();
});

// Prefill from last time; a reload of an active tab goes straight back in.
el.name.value = localStorage.getItem("parley.name") || "";
el.room.value = localStorage.getItem("parley.room") || "lobby";
if (sessionStorage.getItem("parley.active") && el.joinForm.checkValidity()) {
  enterRoom(el.name.value, el.room.value);
} else {
  (el.name.value ? el.room : el.name).focus();
}
