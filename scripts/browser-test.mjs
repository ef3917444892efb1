// End-to-end test of the web client in headless Chromium.
//
// Usage: node scripts/browser-test.mjs http://127.0.0.1:PORT
// Needs playwright-core under $BROWSER_TOOLS_DIR (default .tools/browser;
// scripts/browser-test.sh installs it) and Chromium at $CHROMIUM
// (default /usr/bin/chromium). Talks only to the base URL it is given.
// Prints `browser: N passed, M failed` last and exits non-zero on a failure.
import { createRequire } from "node:module";
import { mkdirSync } from "node:fs";
import { dirname, join, resolve } from "node:path";
import { fileURLToPath } from "node:url";

const ROOT = resolve(dirname(fileURLToPath(import.meta.url)), "..");
const TOOLS = resolve(ROOT, process.env.BROWSER_TOOLS_DIR || ".tools/browser");
const SHOTS = process.env.SCREENSHOT_DIR || join(ROOT, "artifacts/screenshots");
const CHROMIUM = process.env.CHROMIUM || "/usr/bin/chromium";
const RUN_LIMIT_MS = 60_000;
const STEP_MS = 5_000;
const ARGS = [
  "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic",
  "--no-first-run", "--disable-background-networking",
  "--disable-component-update", "--disable-sync",
];

const base = process.argv[2];
if (!base) {
  console.error("usage: browser-test.mjs BASE_URL");
  process.exit(2);
}
const { chromium } = createRequire(join(TOOLS, "package.json"))("playwright-core");

let passed = 0;
let failed = 0;
function finish() {
  console.log(`browser: ${passed} passed, ${failed} failed`);
  process.exit(failed === 0 ? 0 : 1);
}
setTimeout(() => {
  console.log(`FAIL whole run exceeded ${RUN_LIMIT_MS / 1000} s`);
  failed++;
  finish();
}, RUN_LIMIT_MS);

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

// A page plus what it did that a test wants to know: dialogs, CSP refusals,
// script errors, the WebSocket URLs it opened.
async function openPage(browser, viewport) {
  const context = await browser.newContext({ viewport });
  const page = await context.newPage();
  page.setDefaultTimeout(STEP_MS);
  const seen = { dialogs: [], problems: [], sockets: [] };
  page.on("dialog", (d) => { seen.dialogs.push(d.message()); d.dismiss().catch(() => {}); });
  page.on("pageerror", (e) => seen.problems.push(`pageerror: ${e.message}`));
  page.on("console", (m) => {
    if (m.type() === "error" && !/WebSocket/.test(m.text())) seen.problems.push(m.text());
  });
  page.on("websocket", (ws) => seen.sockets.push(ws.url()));
  return { context, page, seen };
}

async function joinRoom(page, name, room) {
  await page.goto(base, { timeout: STEP_MS });
  await page.fill("#name", name);
  await page.fill("#room", room);
  await page.press("#room", "Enter");
  await page.waitForSelector("body[data-ready]");
}

// The li of the message whose text is exactly `text`.
const msg = (page, text) => page.locator("#messages li.msg").filter({
  has: page.locator(".msg-text", { hasText: text }),
});

async function waitForText(page, text) {
  await msg(page, text).first().waitFor({ state: "visible", timeout: STEP_MS });
}

async function textsInOrder(page) {
  return page.$$eval("#messages li.msg", (lis) => lis.map((li) => ({
    seq: Number(li.dataset.seq), text: li.querySelector(".msg-text").textContent,
  })));
}

const run = Date.now().toString(36);
const hello = `hello from alice ${run}`;
const reply = `hi alice, bob here ${run}`;
const nasty = `<script>alert(1)</script> and <img src=x onerror=alert(1)> ${run}`;
const long = `${"long".repeat(120)} ${run}`;

const browser = await chromium.launch({
  executablePath: CHROMIUM, args: ARGS, headless: true, timeout: 15_000,
});
mkdirSync(SHOTS, { recursive: true });
const alice = await openPage(browser, { width: 1280, height: 800 });
const bob = await openPage(browser, { width: 375, height: 700 });

try {
  await check("join page renders with name, room and join controls", async () => {
    await alice.page.goto(base, { timeout: STEP_MS });
    assert(await alice.page.inputValue("#room") === "lobby", "room does not default to lobby");
    assert(await alice.page.isVisible("label[for=name]"), "name field has no label");
    await alice.page.screenshot({ path: join(SHOTS, "join-desktop.png") });
    await bob.page.goto(base, { timeout: STEP_MS });
    await bob.page.screenshot({ path: join(SHOTS, "join-narrow.png") });
  });

  await check("alice and bob join lobby and show connected", async () => {
    await joinRoom(alice.page, "alice", "lobby");
    await joinRoom(bob.page, "bob", "lobby");
    for (const p of [alice.page, bob.page]) {
      await p.waitForSelector("#status[data-state=connected]");
    }
  });

  await check("WebSocket URL is ws(s)://host/ws?name=...", async () => {
    const url = new URL(alice.seen.sockets[0] || "about:blank");
    const expect = new URL(base);
    assert(url.protocol === (expect.protocol === "https:" ? "wss:" : "ws:"), `scheme ${url.protocol}`);
    assert(url.host === expect.host && url.pathname === "/ws", `url ${url}`);
    assert(url.searchParams.get("name") === "alice", `name in ${url}`);
  });

  await check("alice sends with Enter; her message is acked", async () => {
    await alice.page.fill("#text", hello);
    await alice.page.press("#text", "Enter");
    const li = msg(alice.page, hello);
    await li.and(alice.page.locator("[data-state=sent][data-seq][data-cid]")).waitFor();
    assert(await alice.page.inputValue("#text") === "", "composer not cleared");
  });

  await check("bob sees alice's message", async () => {
    await waitForText(bob.page, hello);
    assert(await msg(bob.page, hello).getAttribute("data-from") === "alice", "wrong sender");
  });

  await check("bob replies with the Send button; alice sees it", async () => {
    await bob.page.fill("#text", reply);
    await bob.page.click("#send");
    await waitForText(alice.page, reply);
    await msg(bob.page, reply).and(bob.page.locator("[data-state=sent]")).waitFor();
  });

  await check("markup in a message is shown as literal text", async () => {
    await alice.page.fill("#text", nasty);
    await alice.page.press("#text", "Enter");
    for (const p of [alice.page, bob.page]) {
      await waitForText(p, nasty);
      const shown = await msg(p, run).filter({ hasText: "<script>" }).locator(".msg-text").textContent();
      assert(shown === nasty, `rendered as ${JSON.stringify(shown)}`);
      assert(await p.locator("#messages img, #messages script").count() === 0, "element created");
    }
    await bob.page.waitForTimeout(300);
    assert(alice.seen.dialogs.length + bob.seen.dialogs.length === 0, "a dialog fired");
  });

  await check("each message is shown once", async () => {
    for (const p of [alice.page, bob.page]) {
      for (const t of [hello, reply, nasty]) {
        const n = await msg(p, t).count();
        assert(n === 1, `${JSON.stringify(t.slice(0, 20))} shown ${n} times`);
      }
    }
  });

  await check("long text wraps in a 375px window", async () => {
    await bob.page.fill("#text", long);
    await bob.page.press("#text", "Enter");
    await waitForText(bob.page, long);
    await waitForText(alice.page, long);
    const overflow = await bob.page.evaluate(() => {
      const d = document.scrollingElement;
      const log = document.getElementById("log");
      return d.scrollWidth - d.clientWidth + (log.scrollWidth - log.clientWidth);
    });
    assert(overflow <= 0, `horizontal overflow of ${overflow}px`);
  });

  await check("timestamps are shown", async () => {
    const t = msg(bob.page, hello).locator("time");
    assert((await t.textContent()).trim() !== "", "empty time");
    assert(!Number.isNaN(Date.parse(await t.getAttribute("datetime"))), "bad datetime");
  });

  await check("a server error frame is shown; the message is marked failed", async () => {
    const tooLong = `${"x".repeat(5000)} ${run}`; // over the default max_text_bytes
    await alice.page.fill("#text", tooLong);
    await alice.page.press("#text", "Enter");
    await msg(alice.page, tooLong).and(alice.page.locator("[data-state=failed]")).waitFor();
    await alice.page.locator("#error").waitFor({ state: "visible" });
    assert(/invalid_text/.test(await alice.page.textContent("#error-text")), "no error code");
    await alice.page.click("#error-close");
  });

  // carol's socket runs through a Playwright route, so the test can cut it
  // and refuse reconnects for a while, as a flaky network would.
  await check("after a dropped connection the client rejoins with since, misses nothing", async () => {
    const carol = await openPage(browser, { width: 800, height: 600 });
    const links = [];
    const joins = [];
    let offline = false;
    await carol.context.routeWebSocket(/\/ws\?/, (ws) => {
      if (offline) return ws.close({ code: 1013, reason: "test: offline" });
      const server = ws.connectToServer();
      ws.onMessage((m) => {
        const f = JSON.parse(m);
        if (f.type === "join") joins.push(f);
        server.send(m);
      });
      links.push({ ws, server });
    });
    try {
      await joinRoom(carol.page, "carol", "lobby");
      const whileAway = `sent while carol was away ${run}`;
      const queued = `queued by carol while away ${run}`;
      offline = true;
      const link = links.at(-1);
      await link.ws.close({ code: 1013, reason: "test: drop" });
      await link.server.close();
      await carol.page.waitForSelector("#status[data-state=disconnected]");
      await carol.page.fill("#text", queued);
      await carol.page.press("#text", "Enter");
      await msg(carol.page, queued).and(carol.page.locator("[data-state=pending]")).waitFor();
      await alice.page.fill("#text", whileAway);
      await alice.page.press("#text", "Enter");
      await msg(alice.page, whileAway).and(alice.page.locator("[data-state=sent]")).waitFor();
      offline = false;
      await carol.page.waitForSelector("#status[data-state=connected]", { timeout: 20_000 });
      await waitForText(carol.page, whileAway);
      await msg(carol.page, queued).and(carol.page.locator("[data-state=sent]")).waitFor();
      await waitForText(alice.page, queued);
      const rejoin = joins.at(-1);
      assert(joins.length >= 2 && rejoin.since > 0, `rejoin was ${JSON.stringify(rejoin)}`);
      for (const t of [hello, whileAway, queued]) {
        const n = await msg(carol.page, t).count();
        assert(n === 1, `${JSON.stringify(t.slice(0, 20))} shown ${n} times`);
      }
      assert(carol.seen.problems.length === 0, carol.seen.problems.join(" | "));
    } finally {
      await carol.context.close();
    }
  });

  await check("reload shows earlier messages as history, in seq order", async () => {
    await alice.page.reload({ timeout: STEP_MS });
    if (await alice.page.isVisible("#join-form")) await joinRoom(alice.page, "alice", "lobby");
    await alice.page.waitForSelector("body[data-ready]");
    for (const t of [hello, reply, nasty, long]) await waitForText(alice.page, t);
    const list = await textsInOrder(alice.page);
    const seqs = list.map((m) => m.seq);
    assert(seqs.every((s, i) => i === 0 || s > seqs[i - 1]), `seqs not increasing: ${seqs}`);
    assert(list.filter((m) => m.text === hello).length === 1, "history duplicated");
  });

  await check("no script errors, CSP refusals or dialogs", async () => {
    const problems = [...alice.seen.problems, ...bob.seen.problems];
    assert(problems.length === 0, problems.join(" | "));
    assert(alice.seen.dialogs.length + bob.seen.dialogs.length === 0, "a dialog fired");
  });

  await check("screenshots saved (1280x800 and 375x700)", async () => {
    await alice.page.screenshot({ path: join(SHOTS, "chat-desktop.png") });
    await bob.page.screenshot({ path: join(SHOTS, "chat-narrow.png") });
  });
} catch (err) {
  failed++;
  console.log(`FAIL unexpected: ${err.message}`);
} finally {
  await browser.close().catch(() => {});
}
finish();
