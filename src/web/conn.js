// Parley web client: the one WebSocket and its lifecycle.
//
// The socket authenticates with the session cookie (same origin). When it
// drops, it is reopened with exponential backoff and full jitter; a close
// reason carrying `retry_ms=N` (the server draining or resetting a room)
// sets the least wait. A handshake that fails before opening may mean the
// session is gone, so /api/me is asked before retrying: a 401 ends the
// session instead of retrying forever.
//
// What is sent on the socket, and what the frames mean, is chat.js's job.

const BACKOFF_BASE_MS = 500;
const BACKOFF_CAP_MS = 15_000;
// A socket that stayed open this long counts as healthy: the next drop
// starts the backoff from the beginning again.
const HEALTHY_MS = 5_000;
const SUBPROTOCOL = "parley.v1";

export class Connection {
  /**
   * hooks: onOpen(), onFrame(obj), onDown(), onStatus(state, retryAt),
   * onSessionEnded().
   */
  constructor(hooks) {
    this.hooks = hooks;
    this.ws = null;
    this.attempt = 0;
    this.timer = 0;
    this.tick = 0;
    this.retryAt = 0;
    this.stopped = true;
    this.nextId = 1;
  }

  get isOpen() {
    return this.ws?.readyState === WebSocket.OPEN;
  }

  start() {
    this.stopped = false;
    this.attempt = 0;
    this.open();
  }

  /** Closes for good (log out): no reconnect, no more hooks. */
  stop() {
    this.stopped = true;
    this.clearTimers();
    const ws = this.ws;
    this.ws = null;
    ws?.close(1000, "bye");
  }

  /** Sends `obj` with a fresh request id; returns the id, or 0 if down. */
  send(obj) {
    if (!this.isOpen) return 0;
    obj.id = this.nextId++;
    this.ws.send(JSON.stringify(obj));
    return obj.id;
  }

  /** Skip the rest of the wait (the Retry button, or the browser is online). */
  retryNow() {
    if (this.stopped || this.ws) return;
    this.attempt = 0;
    this.open();
  }

  /** The browser says the network went away: no point in trying until back. */
  wentOffline() {
    if (this.stopped || this.isOpen) return;
    this.clearTimers();
    this.hooks.onStatus("offline", 0);
  }

  open() {
    this.clearTimers();
    this.hooks.onStatus(this.attempt === 0 ? "connecting" : "reconnecting", 0);
    const scheme = location.protocol === "https:" ? "wss:" : "ws:";
    const ws = new WebSocket(`${scheme}//${location.host}/ws`, [SUBPROTOCOL]);
    this.ws = ws;
    let openedAt = 0;
    ws.onopen = () => {
      if (this.ws !== ws) return;
      openedAt = Date.now();
      this.hooks.onStatus("connected", 0);
      this.hooks.onOpen();
    };
    ws.onmessage = (ev) => {
      if (this.ws !== ws) return; // a socket we already let go of
      let frame;
      try { frame = JSON.parse(ev.data); } catch { return; }
      if (frame && typeof frame === "object") this.hooks.onFrame(frame);
    };
    ws.onclose = (ev) => {
      if (this.ws !== ws) return;
      this.ws = null;
      if (openedAt && Date.now() - openedAt > HEALTHY_MS) this.attempt = 0;
      this.hooks.onDown();
      if (this.stopped) return;
      if (openedAt) this.schedule(retryHint(ev.reason));
      else this.checkSession();
    };
  }

  // A refused handshake looks like any network error from a page; the
  // account API tells a lost session apart from a server that is away.
  async checkSession() {
    let status = 0;
    try {
      const res = await fetch("/api/me", { cache: "no-store" });
      status = res.status;
    } catch {
      // unreachable: keep retrying
    }
    if (this.stopped) return;
    if (status === 401) {
      this.stop();
      this.hooks.onSessionEnded();
    } else {
      this.schedule(0);
    }
  }

  schedule(hintMs) {
    if (!navigator.onLine) return this.wentOffline();
    const ceiling = Math.min(BACKOFF_CAP_MS, BACKOFF_BASE_MS * 2 ** this.attempt);
    const jittered = ceiling / 2 + Math.random() * ceiling / 2;
    const delay = Math.round(Math.max(jittered, hintMs));
    this.attempt = Math.min(this.attempt + 1, 10);
    this.retryAt = Date.now() + delay;
    this.hooks.onStatus("reconnecting", this.retryAt);
    this.timer = setTimeout(() => this.open(), delay);
    this.tick = setInterval(() => this.hooks.onStatus("reconnecting", this.retryAt), 1000);
  }

  clearTimers() {
    clearTimeout(this.timer);
    clearInterval(this.tick);
    this.timer = this.tick = 0;
  }
}

/** The least wait a close reason asks for: `retry_ms=NNN`, capped at 60 s. */
export function retryHint(reason) {
  const m = /retry_ms=(\d{1,6})/.exec(String(reason || ""));
  return m ? Math.min(Number(m[1]), 60_000) : 0;
}
