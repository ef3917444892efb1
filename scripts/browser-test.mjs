// End-to-end test of the web client in headless Chromium, against the real
// server with accounts required (no --allow-guests).
//
// Usage: node scripts/browser-test.mjs
// The script starts a redis-server and the parley binary itself, on free
// loopback ports, so that it can stop and restart the server on the same
// port mid-test; with Redis and a fixed session key, accounts, sessions and
// history survive the restart. It stops both however the run ends.
//
// Environment: PARLEY_BIN (default target/release/parley), REDIS_SERVER
// (default redis-server), CHROMIUM (default /usr/bin/chromium),
// BROWSER_TOOLS_DIR (playwright-core; default .tools/browser),
// SCREENSHOT_DIR (default artifacts/screenshots).
// Prints `browser: N passed, M failed` last; exits non-zero on a failure.
import { spawn } from "node:child_process";
import { randomBytes } from "node:crypto";
import { createWriteStream, mkdirSync, mkdtempSync, rmSync } from "node:fs";
import { createServer, connect } from "node:net";
import { tmpdir } from "node:os";
import { dirname, join, resolve } from "node:path";
import { fileURLToPath } from "node:url";
import { createRequire } from "node:module";

const ROOT = resolve(dirname(fileURLToPath(import.meta.url)), "..");
const TOOLS = resolve(ROOT, process.env.BROWSER_TOOLS_DIR || ".tools/browser");
const SHOTS = process.env.SCREENSHOT_DIR || join(ROOT, "artifacts/screenshots");
const LOGS = join(ROOT, "artifacts/browser");
const BIN = resolve(ROOT, process.env.PARLEY_BIN || "target/release/parley");
const REDIS = process.env.REDIS_SERVER || "redis-server";
const CHROMIUM = process.env.CHROMIUM || "/usr/bin/chromium";
const RUN_LIMIT_MS = 110_000;
const STEP_MS = 5_000;
const RECONNECT_MS = 20_000;
const ARGS = [
  "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic",
  "--no-first-run", "--disable-background-networking",
  "--disable-component-update", "--disable-sync",
];

const { chromium } = createRequire(join(TOOLS, "package.json"))("playwright-core");

// ---- results ---------------------------------------------------------------

let passed = 0;
let failed = 0;
const children = new Set();

function finish() {
  for (const child of children) child.kill("SIGKILL");
  console.log(`browser: ${passed} passed, ${failed} failed`);
  process.exit(failed === 0 ? 0 : 1);
}

setTimeout(() => {
  console.log(`FAIL whole run exceeded ${RUN_LIMIT_MS / 1000} s`);
  failed++;
  finish();
}, RUN_LIMIT_MS).unref();
process.on("SIGTERM", () => { failed++; finish(); });
process.on("SIGINT", () => { failed++; finish(); });

async function check(name, fn) {
  try {
    await fn();
    passed++;
    console.log(`ok   ${name}`);
  } catch (err) {
    failed++;
    console.log(`FAIL ${name}: ${String(err.message || err).split("\n")[0]}`);
  }
}

function assert(cond, what) {
  if (!cond) throw new Error(what);
}

const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

// ---- processes -------------------------------------------------------------

function freePort() {
  return new Promise((ok, fail) => {
    const s = createServer().once("error", fail);
    s.listen(0, "127.0.0.1", () => { const { port } = s.address(); s.close(() => ok(port)); });
  });
}

function run(cmd, args, logName) {
  const log = createWriteStream(join(LOGS, logName), { flags: "a" });
  const child = spawn(cmd, args, { stdio: ["ignore", "pipe", "pipe"] });
  child.stdout.pipe(log);
  child.stderr.pipe(log);
  children.add(child);
  child.exited = new Promise((ok) => child.once("exit", () => { children.delete(child); ok(); }));
  child.once("error", (e) => console.log(`${cmd}: ${e.message}`));
  return child;
}

async function until(what, ms, probe) {
  const end = Date.now() + ms;
  while (Date.now() < end) {
    if (await probe().catch(() => false)) return;
    await sleep(100);
  }
  throw new Error(`${what} not ready within ${ms / 1000} s`);
}

const tcpOpen = (port) => new Promise((ok) => {
  const s = connect(port, "127.0.0.1", () => { s.destroy(); ok(true); });
  s.once("error", () => ok(false));
});

class Parley {
  constructor(args) { this.args = args; this.proc = null; }

  async start() {
    this.proc = run(BIN, this.args, "parley.log");
    const proc = this.proc;
    await until("parley", 10_000, async () => {
      if (proc.exitCode !== null) throw new Error("parley exited");
      return (await fetch(`${base}/readyz`)).ok;
    });
  }

  /** SIGTERM: the server closes every socket with 1001 and exits. */
  async stop() {
    const proc = this.proc;
    proc.kill("SIGTERM");
    const killed = sleep(8_000).then(() => proc.kill("SIGKILL"));
    await Promise.race([proc.exited, killed]);
    await proc.exited;
  }
}

// ---- pages -----------------------------------------------------------------

// A page plus what it did that a test wants to know: dialogs, CSP refusals,
// script errors, and every frame it sent on a WebSocket.
async function openPage(viewport, cookies) {
  const context = await browser.newContext({ viewport });
  if (cookies) await context.addCookies(cookies);
  const page = await context.newPage();
  page.setDefaultTimeout(STEP_MS);
  const seen = { dialogs: [], problems: [], sent: [] };
  page.on("dialog", (d) => { seen.dialogs.push(d.message()); d.dismiss().catch(() => {}); });
  page.on("pageerror", (e) => seen.problems.push(`pageerror: ${e.message}`));
  page.on("console", (m) => {
    // Refused sockets and 4xx answers are expected here; CSP refusals are not.
    if (m.type() === "error" && !/WebSocket|Failed to load resource/.test(m.text())) {
      seen.problems.push(m.text());
    }
  });
  page.on("websocket", (ws) => ws.on("framesent", (f) => {
    try { seen.sent.push(JSON.parse(f.payload)); } catch { /* not JSON */ }
  }));
  return { context, page, seen };
}

async function signUp(page, username, password) {
  await page.goto(base, { timeout: STEP_MS });
  await page.waitForSelector("body[data-view=auth]");
  await page.click("#mode-signup");
  await page.fill("#username", username);
  await page.fill("#password", password);
  await page.press("#password", "Enter");
  await page.waitForSelector("body[data-view=chat]");
  await page.waitForSelector("#status[data-state=connected]");
}

async function joinRoom(page, room) {
  if (await page.isVisible("#rooms-toggle")) await page.click("#rooms-toggle");
  await page.fill("#join-room", room);
  await page.press("#join-room", "Enter");
  await page.waitForSelector(`body[data-room="${room}"][data-ready]`);
}

async function pickRoom(page, room) {
  if (await page.isVisible("#rooms-toggle")) await page.click("#rooms-toggle");
  await page.click(`#my-rooms .room-item[data-room="${room}"]`);
  await page.waitForSelector(`body[data-room="${room}"][data-ready]`);
}

async function say(page, text) {
  await page.fill("#text", text);
  await page.press("#text", "Enter");
}

// The li of the shown message whose text contains `text`.
const msg = (page, text) => page.locator("#messages li.msg").filter({
  has: page.locator(".msg-text", { hasText: text }),
});

async function waitForText(page, text, timeout = STEP_MS) {
  await msg(page, text).first().waitFor({ state: "visible", timeout });
}

async function waitSent(page, text, timeout = STEP_MS) {
  await msg(page, text).and(page.locator("[data-state=sent][data-seq]")).waitFor({ timeout });
}

async function countOf(page, text) {
  return msg(page, text).count();
}

async function shownSeqs(page) {
  return page.$$eval("#messages li.msg", (lis) => lis.map((li) => Number(li.dataset.seq)));
}

const increasing = (xs) => xs.every((x, i) => i === 0 || x > xs[i - 1]);

// ---- the run ---------------------------------------------------------------

mkdirSync(SHOTS, { recursive: true });
mkdirSync(LOGS, { recursive: true });
const redisDir = mkdtempSync(join(tmpdir(), "parley-browser-redis-"));
process.on("exit", () => rmSync(redisDir, { recursive: true, force: true }));
const redisPort = await freePort();
run(REDIS, ["--port", String(redisPort), "--bind", "127.0.0.1", "--save", "",
  "--appendonly", "no", "--dir", redisDir], "redis.log");
await until("redis-server", 10_000, () => tcpOpen(redisPort));

const port = await freePort();
const base = `http://127.0.0.1:${port}`;
const server = new Parley([
  "--listen", `127.0.0.1:${port}`, "--log-level", "warn",
  "--redis", `redis://127.0.0.1:${redisPort}/0`,
  "--session-key", randomBytes(32).toString("hex"),
]);
await server.start();

const browser = await chromium.launch({
  executablePath: CHROMIUM, args: ARGS, headless: true, timeout: 15_000,
});

// Each run starts from an empty Redis, so these texts are unique in it.
const PASSWORD = "correct horse battery";
const hello = "Morning Bob! The tomatoes finally came up 🌱";
const reply = "Hi Alice — great news. Did the basil survive the frost?";
const nasty = "<script>alert(1)</script> and <img src=x onerror=alert(1)> stay text";
const long = `Pasting a link: https://example.com/${"very-long-path".repeat(24)}`;
const alice = await openPage({ width: 1280, height: 800 });
const bob = await openPage({ width: 360, height: 740 });

try {
  await check("login screen: labelled fields, no session yet", async () => {
    await alice.page.goto(base, { timeout: STEP_MS });
    await alice.page.waitForSelector("body[data-view=auth]").catch((e) => {
      throw new Error(alice.seen.problems.join(" | ") || e.message);
    });
    for (const id of ["username", "password"]) {
      assert(await alice.page.isVisible(`label[for=${id}]`), `${id} has no label`);
    }
    assert(await alice.page.evaluate(() => document.activeElement?.id) === "username",
      "user name field not focused");
    await alice.page.screenshot({ path: join(SHOTS, "login.png") });
  });

  await check("the page is served with a Content-Security-Policy and cache headers", async () => {
    for (const path of ["/", "/app.js", "/style.css"]) {
      const res = await fetch(`${base}${path}`);
      assert(res.ok, `${path}: ${res.status}`);
      assert(/default-src 'self'/.test(res.headers.get("content-security-policy") || ""),
        `${path}: no CSP`);
      assert(res.headers.get("cache-control"), `${path}: no Cache-Control`);
    }
  });

  await check("alice signs up, lands in #lobby, connected", async () => {
    await signUp(alice.page, "alice", PASSWORD);
    await alice.page.waitForSelector('body[data-room="lobby"][data-ready]');
    assert(await alice.page.textContent("#me") === "alice", "user name not shown");
  });

  await check("bob signs up in a 360 px window", async () => {
    await signUp(bob.page, "bob", PASSWORD);
    await bob.page.waitForSelector('body[data-room="lobby"][data-ready]');
  });

  await check("a taken user name gets a clear error", async () => {
    const other = await openPage({ width: 800, height: 700 });
    try {
      await other.page.goto(base);
      await other.page.click("#mode-signup");
      await other.page.fill("#username", "alice");
      await other.page.fill("#password", "another password");
      await other.page.click("#auth-submit");
      await other.page.waitForSelector("#auth-error:not([hidden])");
      const text = await other.page.textContent("#auth-error");
      assert(/taken/i.test(text), `error said ${JSON.stringify(text)}`);
      assert(await other.page.isVisible("body[data-view=auth]"), "left the form");
    } finally {
      await other.context.close();
    }
  });

  await check("a wrong password gets a clear error", async () => {
    const other = await openPage({ width: 1280, height: 800 });
    try {
      await other.page.goto(base);
      await other.page.fill("#username", "alice");
      await other.page.fill("#password", "not the password");
      await other.page.press("#password", "Enter");
      await other.page.waitForSelector("#auth-error:not([hidden])");
      const text = await other.page.textContent("#auth-error");
      assert(/wrong user name or password/i.test(text), `error said ${JSON.stringify(text)}`);
      await other.page.screenshot({ path: join(SHOTS, "login-error.png") });
    } finally {
      await other.context.close();
    }
  });

  await check("both join #garden from the join box", async () => {
    await joinRoom(alice.page, "garden");
    await joinRoom(bob.page, "garden");
    assert(await bob.page.isVisible("#composer"), "narrow view does not show the room");
  });

  await check("who is online: bob's arrival reaches alice, alice is listed for bob", async () => {
    const online = (page) => page.textContent("#room-online");
    await until("bob in alice's online line", STEP_MS, async () =>
      /^2 online: alice, bob$/.test(await online(alice.page)));
    await until("alice in bob's online line", STEP_MS, async () =>
      /^2 online: alice, bob$/.test(await online(bob.page)));
  });

  await check("alice sends with Enter: pending, then acked", async () => {
    await say(alice.page, hello);
    await waitSent(alice.page, hello);
    assert(await alice.page.inputValue("#text") === "", "composer not cleared");
    const cid = await msg(alice.page, hello).getAttribute("data-cid");
    assert(alice.seen.sent.some((f) => f.type === "send" && f.cid === cid), "no send frame");
  });

  await check("bob sees it and replies with the Send button; alice sees it", async () => {
    await waitForText(bob.page, hello);
    assert(await msg(bob.page, hello).getAttribute("data-from") === "alice", "wrong sender");
    await bob.page.fill("#text", reply);
    await bob.page.click("#send");
    await waitForText(alice.page, reply);
    await waitSent(bob.page, reply);
  });

  await check("markup in a message is shown as literal text", async () => {
    await say(alice.page, nasty);
    for (const p of [alice.page, bob.page]) {
      await waitForText(p, nasty);
      const shown = await msg(p, "<script>").locator(".msg-text").textContent();
      assert(shown === nasty, `rendered as ${JSON.stringify(shown)}`);
      assert(await p.locator("#messages img, #messages script").count() === 0, "element created");
    }
    await bob.page.waitForTimeout(300);
    assert(alice.seen.dialogs.length + bob.seen.dialogs.length === 0, "a dialog fired");
  });

  await check("long text wraps in a 360 px window", async () => {
    await say(bob.page, long);
    await waitForText(bob.page, long);
    await waitForText(alice.page, long);
    const overflow = await bob.page.evaluate(() => {
      const d = document.scrollingElement;
      const log = document.getElementById("log");
      return d.scrollWidth - d.clientWidth + (log.scrollWidth - log.clientWidth);
    });
    assert(overflow <= 0, `horizontal overflow of ${overflow}px`);
  });

  await check("each message is shown once, in seq order", async () => {
    for (const p of [alice.page, bob.page]) {
      for (const t of [hello, reply, nasty, long]) {
        const n = await countOf(p, t);
        assert(n === 1, `${JSON.stringify(t.slice(0, 20))} shown ${n} times`);
      }
      assert(increasing(await shownSeqs(p)), "seqs not increasing");
    }
  });

  await check("timestamps are in the user's locale", async () => {
    const li = msg(bob.page, hello);
    const t = li.locator("time");
    const ts = Number(await li.getAttribute("data-ts"));
    const expected = await bob.page.evaluate((x) => new Date(x).toLocaleString(undefined,
      { hour: "numeric", minute: "2-digit" }), ts);
    assert(await t.textContent() === expected, `shows ${await t.textContent()}, not ${expected}`);
    assert(!Number.isNaN(Date.parse(await t.getAttribute("datetime"))), "bad datetime");
  });

  await check("a message in another room raises its unread count", async () => {
    await pickRoom(alice.page, "lobby");
    const unread = "Just planted the sunflowers by the fence.";
    await say(bob.page, unread);
    await waitSent(bob.page, unread);
    const badge = alice.page.locator('#my-rooms .room-item[data-room="garden"] .badge');
    await badge.waitFor();
    assert(await badge.textContent() === "1", `badge says ${await badge.textContent()}`);
    assert(/^\(1\) /.test(await alice.page.title()), "title has no count");
    await pickRoom(alice.page, "garden");
    await waitForText(alice.page, unread);
    assert(await badge.count() === 0, "badge not cleared");
  });

  await check("older history loads on scroll-back, each message once", async () => {
    // bob's page opens a second socket and fills #archive, paced under
    // the server's per-socket message rate.
    const n = 70;
    const acks = await bob.page.evaluate(async (count) => {
      const ws = new WebSocket(`ws://${location.host}/ws`, ["parley.v1"]);
      let acked = 0;
      const done = new Promise((ok) => {
        ws.onmessage = (ev) => { if (JSON.parse(ev.data).type === "ack" && ++acked === count) ok(); };
      });
      await new Promise((ok) => { ws.onopen = ok; });
      ws.send(JSON.stringify({ type: "join", room: "archive" }));
      for (let i = 1; i <= count; i++) {
        const text = `archive ${String(i).padStart(3, "0")}`;
        ws.send(JSON.stringify({ type: "send", room: "archive", text, cid: `a${i}` }));
        await new Promise((ok) => setTimeout(ok, 60));
      }
      await Promise.race([done, new Promise((ok) => setTimeout(ok, 4000))]);
      ws.close();
      return acked;
    }, n);
    assert(acks === n, `only ${acks} of ${n} acked`);
    await joinRoom(alice.page, "archive");
    await waitForText(alice.page, "archive 070");
    assert(await countOf(alice.page, "archive 001") === 0, "first page not partial");
    assert(await alice.page.isVisible("#older"), "no way to load older messages");
    await alice.page.locator("#log").evaluate((log) => { log.scrollTop = 0; });
    await waitForText(alice.page, "archive 001");
    await alice.page.waitForSelector("#log-start:not([hidden])");
    const seqs = await shownSeqs(alice.page);
    assert(seqs.length === n && increasing(seqs), `shown ${seqs.length}, in order: ${increasing(seqs)}`);
  });

  await check("a refused message is marked failed; Retry resends the same cid", async () => {
    await joinRoom(alice.page, "scratch");
    const tooLong = `too long ${"x".repeat(5000)}`; // over the default max_text_bytes
    await say(alice.page, tooLong);
    const li = msg(alice.page, tooLong);
    await li.and(alice.page.locator("[data-state=failed]")).waitFor();
    await alice.page.waitForSelector("#error:not([hidden])");
    assert(/invalid_text/.test(await alice.page.textContent("#error-text")), "no error code");
    const cid = await li.getAttribute("data-cid");
    await li.locator(".retry").click();
    await li.and(alice.page.locator("[data-state=failed]")).waitFor();
    const sends = alice.seen.sent.filter((f) => f.type === "send" && f.cid === cid);
    assert(sends.length === 2, `sent ${sends.length} times with cid ${cid}`);
    await alice.page.click("#error-close");
    await alice.page.click("#leave");
    await alice.page.waitForSelector('#my-rooms .room-item[data-room="scratch"]', { state: "detached" });
  });

  await check("a reload keeps the session and shows history once, in order", async () => {
    await pickRoom(alice.page, "garden");
    await alice.page.reload({ timeout: STEP_MS });
    await alice.page.waitForSelector('body[data-view=chat][data-room="garden"][data-ready]');
    for (const t of [hello, reply, nasty, long]) await waitForText(alice.page, t);
    for (const t of [hello, reply]) {
      assert(await countOf(alice.page, t) === 1, "history duplicated");
    }
    assert(increasing(await shownSeqs(alice.page)), "seqs not increasing");
    const rooms = await alice.page.$$eval("#my-rooms .room-item", (bs) => bs.map((b) => b.dataset.room));
    assert(rooms.join() === "lobby,garden,archive", `rooms after reload: ${rooms}`);
  });

  await check("server restart: reconnecting shown, then what was sent meanwhile arrives once", async () => {
    const whileDownA = "Written while the server was down — still arrives once.";
    const whileDownB = "Mine too: queued on my phone during the restart.";
    const joinsBefore = alice.seen.sent.filter((f) => f.type === "join").length;
    await server.stop();
    for (const p of [alice.page, bob.page]) {
      await p.waitForSelector("#status[data-state=reconnecting]");
      await p.waitForSelector("#conn-banner:not([hidden])");
    }
    await say(alice.page, whileDownA);
    await say(bob.page, whileDownB);
    await msg(alice.page, whileDownA).and(alice.page.locator("[data-state=pending]")).waitFor();
    await msg(bob.page, whileDownB).and(bob.page.locator("[data-state=pending]")).waitFor();
    await alice.page.screenshot({ path: join(SHOTS, "reconnecting.png") });
    await bob.page.screenshot({ path: join(SHOTS, "reconnecting-narrow.png") });
    await server.start();
    for (const p of [alice.page, bob.page]) {
      await p.waitForSelector("#status[data-state=connected]", { timeout: RECONNECT_MS });
    }
    await waitSent(alice.page, whileDownA, RECONNECT_MS);
    await waitSent(bob.page, whileDownB, RECONNECT_MS);
    await waitForText(alice.page, whileDownB);
    await waitForText(bob.page, whileDownA);
    await alice.page.waitForTimeout(500); // room for a duplicate to show up
    for (const p of [alice.page, bob.page]) {
      for (const t of [hello, reply, whileDownA, whileDownB]) {
        const n = await countOf(p, t);
        assert(n === 1, `${JSON.stringify(t.slice(0, 24))} shown ${n} times`);
      }
      assert(increasing(await shownSeqs(p)), "seqs not increasing");
    }
    const rejoin = alice.seen.sent.filter((f) => f.type === "join").slice(joinsBefore)
      .find((f) => f.room === "garden");
    assert(rejoin?.since > 0 && rejoin.epoch, `rejoin was ${JSON.stringify(rejoin)}`);
  });

  await check("a close reason's retry_ms is honoured before reconnecting", async () => {
    const carol = await openPage({ width: 800, height: 600 });
    try {
      await signUp(carol.page, "carol", PASSWORD);
      const opens = [];
      await carol.context.routeWebSocket(/\/ws$/, (ws) => {
        opens.push(Date.now());
        const server = ws.connectToServer();
        if (opens.length === 1) {
          setTimeout(() => ws.close({ code: 1012, reason: "drain retry_ms=2500" }), 300);
        }
        return server;
      });
      await carol.page.reload();
      await carol.page.waitForSelector("#status[data-state=reconnecting]");
      await carol.page.waitForSelector("#status[data-state=connected]", { timeout: RECONNECT_MS });
      assert(opens.length >= 2, `${opens.length} connections`);
      const waited = opens[1] - opens[0] - 300;
      assert(waited >= 2400, `reconnected after ${waited} ms`);
    } finally {
      await carol.context.close();
    }
  });

  await check("screenshots of the room view (1280 and 360 px) and the room list", async () => {
    await alice.page.screenshot({ path: join(SHOTS, "room-desktop.png") });
    await bob.page.screenshot({ path: join(SHOTS, "room-narrow.png") });
    await bob.page.click("#rooms-toggle");
    await bob.page.waitForSelector("#sidebar", { state: "visible" });
    await bob.page.screenshot({ path: join(SHOTS, "rooms-narrow.png") });
    await bob.page.click("#rooms-toggle");
  });

  await check("log out returns to the login screen; the old session cannot connect", async () => {
    const cookies = await alice.context.cookies();
    assert(cookies.some((c) => c.name === "parley_session" && c.httpOnly), "no HttpOnly cookie");
    await alice.page.click("#logout");
    await alice.page.waitForSelector("body[data-view=auth]");
    assert(/logged out/i.test(await alice.page.textContent("#auth-error")), "no logged-out note");
    const old = await openPage({ width: 800, height: 600 }, cookies);
    try {
      await old.page.goto(base);
      await old.page.waitForSelector("body[data-view=auth]");
      const outcome = await old.page.evaluate(() => new Promise((ok) => {
        const ws = new WebSocket(`ws://${location.host}/ws`, ["parley.v1"]);
        ws.onopen = () => { ws.close(); ok("opened"); };
        ws.onclose = () => ok("refused");
        setTimeout(() => ok("timeout"), 4000);
      }));
      assert(outcome === "refused", `old session's socket ${outcome}`);
    } finally {
      await old.context.close();
    }
  });

  await check("alice's log-out takes her off bob's online line", async () => {
    await pickRoom(bob.page, "garden");
    await until("alice gone from bob's online line", STEP_MS, async () =>
      /^1 online: bob$/.test(await bob.page.textContent("#room-online")));
  });

  await check("no script errors, CSP refusals or dialogs", async () => {
    const problems = [...alice.seen.problems, ...bob.seen.problems];
    assert(problems.length === 0, problems.join(" | "));
    assert(alice.seen.dialogs.length + bob.seen.dialogs.length === 0, "a dialog fired");
  });
} catch (err) {
  failed++;
  console.log(`FAIL unexpected: ${err.message}`);
} finally {
  await browser.close().catch(() => {});
  await server.stop().catch(() => {});
}
finish();
