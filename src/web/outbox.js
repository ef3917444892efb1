// Parley web client: own messages. Each waits in its room's outbox, shown
// as pending, until its ack or its echo (matched by cid) confirms it. It is
// sent again with the same cid after a reconnect (chat.js calls transmit
// once the rejoin's backlog is in), so the server stores it at most once;
// a refused one is marked failed and gets a Retry button.
import * as view from "./view.js";
import { RETRYABLE, describe, st } from "./state.js";

const ACK_TIMEOUT_MS = 10_000;
const AUTO_RETRIES = 3;

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
export function transmit(room, cid) {
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
export function settle(room, cid, seq) {
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

export function sendRefused(room, e) {
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
