// Parley web client: the entry point. Account screens (sign up, log in,
// log out) against /api/, then the chat view wired to the connection
// (conn.js), the protocol state (state.js, chat.js, outbox.js, rooms.js)
// and the DOM (view.js).
//
// A module script, so it runs after the document is parsed. No build step:
// the browser loads these files as they are, from the binary.
import { Connection } from "./conn.js";
import * as chat from "./chat.js";
import { send } from "./outbox.js";
import * as rooms from "./rooms.js";
import * as view from "./view.js";

const { $ } = view;

// Sign-up also wants a letter or digit somewhere (not just "." or "-").
const USER_RULE = /^(?=.*[A-Za-z0-9])[A-Za-z0-9_.-]{1,32}$/;
const ROOM_RULE = /^[A-Za-z0-9_.:-]{1,64}$/;
const DEFAULT_ROOM = "lobby";

// What each /api/ error code means to a person.
const AUTH_ERRORS = {
  invalid_credentials: "Wrong user name or password.",
  username_taken: "That user name is taken. Choose another, or log in if it is yours.",
  invalid_username: "User names are 1–32 letters, digits, _ - or . (no spaces), with at least one letter or digit.",
  invalid_password: "Passwords need 8 to 128 characters.",
  busy: "The server is busy. Try again in a moment.",
  unavailable: "Accounts are unavailable right now. Try again in a moment.",
  forbidden_origin: "This page's address may not log in to this server.",
  bad_request: "The server did not understand the request.",
};

let mode = "login";
let me = "";
let conn = null;

// ---- account screens -------------------------------------------------------

function showAuth(notice) {
  document.body.dataset.view = "auth";
  for (const id of ["status", "who", "logout"]) $(id).hidden = true;
  $("auth-view").hidden = false;
  $("chat-view").hidden = true;
  document.title = "Parley";
  setMode(mode);
  authMessage(notice || "", "notice");
  $("password").value = "";
  ($("username").value ? $("password") : $("username")).focus();
}

function setMode(next) {
  mode = next;
  const signup = mode === "signup";
  $("mode-login").setAttribute("aria-pressed", String(!signup));
  $("mode-signup").setAttribute("aria-pressed", String(signup));
  $("auth-title").textContent = signup ? "Create your account" : "Welcome back";
  $("auth-hint").textContent = signup
    ? "Pick a user name people will know you by."
    : "Log in to pick up your conversations.";
  $("auth-submit").textContent = signup ? "Create account" : "Log in";
  $("password").autocomplete = signup ? "new-password" : "current-password";
  $("password-rule").hidden = !signup;
  authMessage("");
}

function authMessage(text, kind = "error") {
  const p = $("auth-error");
  p.textContent = text;
  p.dataset.kind = kind;
  p.hidden = !text;
}

// Checks what the server would refuse anyway, to say so sooner.
function localProblem(username, password) {
  if (!username) return "Enter a user name.";
  if (!password) return "Enter a password.";
  if (mode !== "signup") return "";
  if (!USER_RULE.test(username)) return AUTH_ERRORS.invalid_username;
  if (password.length < 8) return AUTH_ERRORS.invalid_password;
  return "";
}

async function submitAuth(ev) {
  ev.preventDefault();
  const username = $("username").value.trim();
  const password = $("password").value;
  const problem = localProblem(username, password);
  if (problem) return authMessage(problem);

  const button = $("auth-submit");
  button.disabled = true;
  authMessage("");
  try {
    const res = await fetch(`/api/${mode}`, {
      method: "POST",
      headers: { "Content-Type": "application/json" },
      body: JSON.stringify({ username, password }),
      cache: "no-store",
    });
    const body = await res.json().catch(() => ({}));
    if (res.ok) return startChat(String(body.username || username));
    authMessage(authError(res, body));
    $("password").select();
  } catch {
    authMessage("Cannot reach the server. Check your connection and try again.");
  } finally {
    button.disabled = false;
  }
}

function authError(res, body) {
  const code = body?.error?.code;
  if (code === "rate_limited") {
    const secs = Number(res.headers.get("Retry-After")) || 60;
    return `Too many attempts. Try again in ${secs} seconds.`;
  }
  return AUTH_ERRORS[code] || body?.error?.message || `The server answered ${res.status}.`;
}

// ---- the chat --------------------------------------------------------------

function startChat(username) {
  me = username;
  document.body.dataset.view = "chat";
  $("auth-view").hidden = true;
  $("chat-view").hidden = false;
  for (const id of ["status", "who", "logout"]) $(id).hidden = false;
  $("me").textContent = $("side-me").textContent = me;
  $("avatar").textContent = me.slice(0, 1).toUpperCase();
  $("password").value = "";

  conn = new Connection({
    onOpen: chat.onOpen,
    onFrame: chat.onFrame,
    onDown: chat.onDown,
    onStatus: view.setStatus,
    onSessionEnded: () => endChat("Your session has ended. Please log in again."),
  });
  rooms.init(conn, me, saveRooms);
  const saved = loadRooms();
  for (const name of saved.rooms) rooms.openRoom(name);
  rooms.select(saved.rooms.includes(saved.active) ? saved.active : saved.rooms[0]);
  setPane("room");
  conn.start();
  $("text").focus();
}

function endChat(notice) {
  conn?.stop();
  conn = null;
  rooms.reset();
  view.hideError();
  $("my-rooms").replaceChildren();
  $("messages")?.remove();
  showAuth(notice);
}

async function logout() {
  try {
    await fetch("/api/logout", { method: "POST", cache: "no-store" });
  } catch {
    // the cookie stays until the server can be told; still leave the chat
  }
  endChat("You have logged out.");
}

// Rooms joined this session, per user, so a reload comes back to them.
function loadRooms() {
  try {
    const saved = JSON.parse(localStorage.getItem(`parley.rooms.${me}`));
    const names = saved.rooms.filter((r) => ROOM_RULE.test(r)).slice(0, 32);
    if (names.length > 0) return { rooms: names, active: saved.active };
  } catch {
    // nothing saved, or not ours
  }
  return { rooms: [DEFAULT_ROOM], active: DEFAULT_ROOM };
}

function saveRooms(names, active) {
  try {
    localStorage.setItem(`parley.rooms.${me}`, JSON.stringify({ rooms: names, active }));
  } catch {
    // storage full or disabled: a reload starts from the lobby
  }
}

// Narrow windows show either the room list or the room.
function setPane(pane) {
  document.body.dataset.pane = pane;
  $("rooms-toggle").setAttribute("aria-expanded", String(pane === "rooms"));
}

function submitJoin(ev) {
  ev.preventDefault();
  const input = $("join-room");
  const name = input.value.trim().replace(/^#/, "");
  if (!ROOM_RULE.test(name)) {
    view.showError("Room names are 1–64 letters, digits, _ - . or :");
    return input.focus();
  }
  rooms.openRoom(name, $("join-private").checked);
  input.value = "";
  $("join-private").checked = false;
  setPane("room");
  $("text").focus();
}

function submitText() {
  const text = $("text").value;
  if (!text.trim()) return; // length limits are the server's to enforce
  if (!send(text)) return view.showError("Join a room first.");
  $("text").value = "";
  autosize();
}

function autosize() {
  const t = $("text");
  t.style.height = "auto";
  t.style.height = `${Math.min(t.scrollHeight, 160)}px`;
}

// ---- wiring ----------------------------------------------------------------

$("auth-form").addEventListener("submit", submitAuth);
$("mode-login").addEventListener("click", () => setMode("login"));
$("mode-signup").addEventListener("click", () => setMode("signup"));
$("logout").addEventListener("click", logout);
$("join-form").addEventListener("submit", submitJoin);
$("composer").addEventListener("submit", (ev) => { ev.preventDefault(); submitText(); });
$("text").addEventListener("keydown", (ev) => {
  if (ev.key !== "Enter" || ev.shiftKey || ev.isComposing) return;
  ev.preventDefault();
  submitText();
});
$("text").addEventListener("input", () => { autosize(); chat.typed(); });
$("older").addEventListener("click", chat.loadOlder);
$("log").addEventListener("scroll", () => { if ($("log").scrollTop < 60) chat.loadOlder(); });
$("leave").addEventListener("click", () => rooms.leave(document.body.dataset.room));
$("invite-open").addEventListener("click", () => {
  $("invite-form").hidden = !$("invite-form").hidden;
  if (!$("invite-form").hidden) $("invite-user").focus();
});
$("invite-form").addEventListener("submit", (ev) => {
  ev.preventDefault();
  const user = $("invite-user").value.trim();
  if (!USER_RULE.test(user)) return view.showError(AUTH_ERRORS.invalid_username);
  if (rooms.invite(user)) $("invite-user").value = "";
});
$("rooms-toggle").addEventListener("click", () => {
  setPane(document.body.dataset.pane === "rooms" ? "room" : "rooms");
  rooms.refreshSoon();
});
$("my-rooms").addEventListener("click", (ev) => {
  if (ev.target.closest(".room-item")) setPane("room");
});
$("public-rooms").addEventListener("click", (ev) => {
  if (ev.target.closest(".room-item")) setPane("room");
});
$("retry-now").addEventListener("click", () => conn?.retryNow());
$("error-close").addEventListener("click", view.hideError);
window.addEventListener("online", () => conn?.retryNow());
window.addEventListener("focus", rooms.refreshSoon);
window.addEventListener("offline", () => conn?.wentOffline());
document.addEventListener("visibilitychange", () => { if (!document.hidden) rooms.seen(); });

// Start: an existing session (cookie) goes straight to the chat.
try {
  const res = await fetch("/api/me", { cache: "no-store" });
  const body = res.ok ? await res.json() : null;
  if (body?.username) startChat(String(body.username));
  else showAuth();
} catch {
  showAuth();
  authMessage("Cannot reach the server. Reload to try again.");
}
