// Parley web client: the DOM. Builds and updates elements; keeps no
// protocol state of its own (chat.js owns that and calls in here).
//
// Invariant: text from users or the server reaches the page only through
// textContent, attribute setters or Node.append(string) (a text node), never
// through innerHTML or similar.

export const $ = (id) => document.getElementById(id);

/** A new element: `h("li", { class: "x", text: "hi" }, child...)`. */
export function h(tag, props = {}, ...children) {
  const node = document.createElement(tag);
  for (const [key, value] of Object.entries(props)) {
    if (key === "class") node.className = value;
    else if (key === "text") node.textContent = String(value);
    else if (key.startsWith("on")) node.addEventListener(key.slice(2), value);
    else node.setAttribute(key, String(value));
  }
  node.append(...children);
  return node;
}

// ---- messages -------------------------------------------------------------

// Clock time for today, with the date for older messages, in the reader's
// own locale.
const TIME = { hour: "numeric", minute: "2-digit" };
const DAY_TIME = { ...TIME, month: "short", day: "numeric" };
// Consecutive messages from one sender closer than this share one header.
const GROUP_MS = 5 * 60 * 1000;

export function messageItem(from, text, cid, own) {
  const li = h("li", { class: `msg hue-${hue(from)}`, "data-from": from });
  if (cid) li.dataset.cid = cid;
  li.classList.toggle("own", own);
  const meta = h("span", { class: "msg-meta" },
    h("time", { class: "msg-time" }), h("span", { class: "msg-status" }));
  li.append(
    h("span", { class: "msg-from", text: from }),
    h("div", { class: "bubble" }, h("p", { class: "msg-text", text }), meta),
  );
  return li;
}

export function setTime(li, ts) {
  const d = new Date(Number(ts));
  if (Number.isNaN(d.getTime())) return;
  li.dataset.ts = String(d.getTime());
  const t = li.querySelector("time");
  const today = d.toDateString() === new Date().toDateString();
  t.dateTime = d.toISOString();
  t.title = d.toLocaleString();
  t.textContent = d.toLocaleString(undefined, today ? TIME : DAY_TIME);
}

/** state: pending | sent | failed. A failed message gets a Retry button. */
export function setState(li, state, onRetry) {
  li.dataset.state = state;
  const label = { pending: "Sending…", sent: "", failed: "Not sent" }[state];
  li.querySelector(".msg-status").textContent = label;
  li.querySelector(".retry")?.remove();
  if (state === "failed" && onRetry) {
    const retry = h("button", { class: "retry", type: "button", text: "Retry" });
    retry.addEventListener("click", onRetry);
    li.querySelector(".bubble").append(retry);
  }
}

/** Inserts `li` in seq order; messages without a seq (pending) stay last. */
export function place(list, li) {
  li.remove();
  const seq = Number(li.dataset.seq);
  let prev = list.lastElementChild;
  if (li.dataset.seq) {
    while (prev && (!prev.dataset.seq || Number(prev.dataset.seq) > seq)) {
      prev = prev.previousElementSibling;
    }
  }
  list.insertBefore(li, prev ? prev.nextElementSibling : list.firstElementChild);
  regroup(li);
  if (li.nextElementSibling) regroup(li.nextElementSibling);
}

// A message continues its predecessor's group when the sender is the same
// and little time passed; CSS then hides its name.
function regroup(li) {
  const prev = li.previousElementSibling;
  const near = prev && Math.abs(Number(li.dataset.ts || Date.now()) -
    Number(prev.dataset.ts || Date.now())) < GROUP_MS;
  li.classList.toggle("cont", Boolean(near && prev.dataset.from === li.dataset.from));
}

function hue(name) {
  let x = 0;
  for (const c of name) x = (x * 31 + c.codePointAt(0)) >>> 0;
  return x % 8;
}

// ---- the room view --------------------------------------------------------

/** Shows `room`'s message list in the log, keeping the id on the visible one. */
export function showList(room) {
  const log = $("log");
  const current = $("messages");
  if (current !== room.list) {
    current?.removeAttribute("id");
    current?.remove();
    room.list.id = "messages";
    log.append(room.list);
  }
  log.setAttribute("aria-label", `Messages in ${room.name}`);
  $("room-title").textContent = room.name;
  $("room-title").classList.toggle("private", room.private);
}

export function setLogTop(room) {
  const older = $("older");
  older.hidden = !room.more;
  older.disabled = room.loadingOlder;
  older.textContent = room.loadingOlder ? "Loading…" : "Load earlier messages";
  const start = $("log-start");
  start.hidden = room.more;
  start.textContent = room.list.childElementCount === 0
    ? "No messages yet. Say hello!"
    : `This is the beginning of #${room.name}.`;
}

export function setOnline(room) {
  const line = $("room-online");
  line.hidden = !room.online;
  if (!room.online) return;
  const names = [...room.online].sort();
  const shown = names.slice(0, 6).join(", ");
  const more = names.length > 6 ? ` and ${names.length - 6} more` : "";
  line.textContent = `${names.length} online: ${shown}${more}`;
}

export function setTyping(room) {
  const names = room ? [...room.typing.keys()] : [];
  $("typing").textContent = names.length === 0 ? ""
    : names.length === 1 ? `${names[0]} is typing…`
    : names.length === 2 ? `${names[0]} and ${names[1]} are typing…`
    : "Several people are typing…";
}

/** Keeps the log pinned to the bottom if the reader was already there. */
export function atBottom() {
  const log = $("log");
  return log.scrollHeight - log.scrollTop - log.clientHeight < 80;
}

export function toBottom() {
  const log = $("log");
  log.scrollTop = log.scrollHeight;
}

// ---- the room lists -------------------------------------------------------

/** rooms: the joined ones, in order; onPick(name) when one is chosen. */
export function renderMyRooms(rooms, active, onPick) {
  const items = rooms.map((room) => {
    const button = h("button", {
      class: "room-item", type: "button", "data-room": room.name,
    }, h("span", { class: "room-name", text: room.name }));
    button.classList.toggle("private", room.private);
    if (room.name === active) button.setAttribute("aria-current", "true");
    if (room.unread > 0) {
      const n = room.unread > 99 ? "99+" : String(room.unread);
      button.append(h("span", { class: "badge", text: n, "aria-label": `${n} unread` }));
    }
    button.addEventListener("click", () => onPick(room.name));
    return h("li", {}, button);
  });
  $("my-rooms").replaceChildren(...items);

  const unread = rooms.reduce((n, r) => n + (r.name === active ? 0 : r.unread), 0);
  const badge = $("rooms-toggle-badge");
  badge.hidden = unread === 0;
  badge.textContent = String(unread);
  document.title = unread > 0 ? `(${unread}) Parley` : "Parley";
}

/** A listed room's size: users online in it (or members, older shape). */
export function roomCount(r) {
  return Number(r.online ?? r.members) || 0;
}

/** list: [{room, private, online}] from the server, minus joined rooms. */
export function renderPublicRooms(list, onJoin) {
  const items = list.map((r) => {
    const n = roomCount(r);
    const what = r.online !== undefined ? "online" : "members";
    const button = h("button", {
      class: "room-item", type: "button", "data-room": r.room,
      "aria-label": `Join ${r.room}, ${n} ${what}`, title: `${n} ${what}`,
    }, h("span", { class: "room-name", text: r.room }),
    h("span", { class: "count", text: String(n) }));
    button.classList.toggle("private", Boolean(r.private));
    button.addEventListener("click", () => onJoin(r.room));
    return h("li", {}, button);
  });
  $("public-rooms").replaceChildren(...items);
  $("public-empty").hidden = items.length > 0;
}

// ---- connection state and errors ------------------------------------------

const STATUS_TEXT = {
  connecting: "Connecting…", connected: "Connected",
  reconnecting: "Reconnecting", offline: "Offline",
};

/** state: connecting | connected | reconnecting | offline. */
export function setStatus(state, retryAt) {
  const status = $("status");
  status.dataset.state = state;
  document.body.dataset.conn = state;
  let text = STATUS_TEXT[state];
  const secs = retryAt ? Math.max(0, Math.ceil((retryAt - Date.now()) / 1000)) : 0;
  if (state === "reconnecting" && secs > 0) text = `Reconnecting in ${secs} s`;
  status.textContent = text;

  const banner = $("conn-banner");
  banner.hidden = state === "connected" || state === "connecting";
  banner.dataset.state = state;
  $("conn-banner-text").textContent = state === "offline"
    ? "You are offline. Messages you write are kept and sent when you are back."
    : "Connection lost. Messages you write are kept and sent once it is back.";
}

let errorTimer = 0;

export function showError(text, kind = "error") {
  $("error-text").textContent = text;
  $("error").dataset.kind = kind;
  $("error").hidden = false;
  clearTimeout(errorTimer);
  errorTimer = setTimeout(hideError, 8000);
}

export function showNotice(text) {
  showError(text, "notice");
}

export function hideError() {
  $("error").hidden = true;
}
