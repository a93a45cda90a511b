// carqueue demo page: what a game page does, on /carqueue.js (the queue) and TCGSDK (here the
// harness's stand-in, /tcgsdk-local.js; the real SDK has the same calls).
//
//   join ─▶ queued (position, wait) ─▶ ready: TCGSDK.start(ServerSession) ─▶ onConnectSuccess:
//   heartbeats start (q.startHeartbeats) and a data channel opens to the cloud app ─▶ playing.
//
// Identity (UserId + Ticket) is kept by carqueue.js so that a reload reconnects (/reconnect):
//   - with ?user=NAME in the URL, in localStorage under that name (a bookmarkable identity);
//   - otherwise in sessionStorage, which every tab has to itself, so several tabs are several
//     users and can play out a queue together.
// ?port=N presets the cloud app's port (default 15000); ?framing=1 opens the data channel as a
// binary one with carqueue.js's framing (messages of any size).
//
// Many queues: when the harness lists more than one (/harness/queues), the join form shows a
// picker and every request carries the chosen QueueId (carqueue.js's `fields`): a ticket is only
// valid in the queue that issued it. The QueueId is kept next to the identity (storageKey +
// ".queue"), so a reload reconnects to the same queue. ?queue=ID preselects one. With one queue
// (or on a real deployment, where /harness/queues does not exist) nothing is sent and nothing shows.
import { join, saved, frames } from "/carqueue.js";

const $ = (id) => document.getElementById(id);
const params = new URLSearchParams(location.search);
const pinnedUser = params.get("user");
// ?grant=G: a Grant the business's backend signed (priority lanes); sent with /start.
const grant = params.get("grant") || undefined;
const storeOpts = pinnedUser
  ? { storage: localStorage, storageKey: "carqueue.demo." + pinnedUser }
  : { storage: sessionStorage, storageKey: "carqueue.demo.tab" };
const queueKey = storeOpts.storageKey + ".queue";
const SDK = window.TCGSDK;

const state = {
  q: null,          // the carqueue Session
  userId: "",
  view: "Idle",     // what the pill shows
  dropped: false,   // the simulated dropped connection: requests of carqueue.js fail
  dropTimer: 0,
  nextTimer: 0,
  sdkGen: 0,        // bumps on every TCGSDK.init: callbacks of an older one are ignored
  connected: false, // onConnectSuccess seen for the current start
  queues: [],       // /harness/queues: more than one means the picker is shown
  queueId: "",      // the queue this page's session is in ("" with one queue: the default)
  opensAt: 0,       // Date.now() ms of the scheduled opening (from OpensInSeconds), 0: none
  endsAt: 0,        // Date.now() ms at which the session limit ends the session, 0: no limit
  lane: "",         // the lane the answers named ("" or "default": not shown)
};

// ---- helpers ---------------------------------------------------------------------------------
function randomUser() {
  const b = new Uint8Array(3);
  crypto.getRandomValues(b);
  return "player-" + Array.from(b, (x) => x.toString(16).padStart(2, "0")).join("");
}
function log(text) {
  const li = document.createElement("li");
  const t = document.createElement("time");
  t.textContent = new Date().toLocaleTimeString();
  const s = document.createElement("span");
  s.textContent = text;
  li.append(t, s);
  const ol = $("log");
  ol.prepend(li);
  while (ol.children.length > 60) ol.lastChild.remove();
}
function fmtEta(sec) {
  if (sec === undefined || sec === null) return "estimating…";
  sec = Math.max(0, Math.round(sec));
  if (sec < 60) return sec + " s";
  const m = Math.floor(sec / 60), s = sec % 60;
  return m + " min" + (s ? " " + s + " s" : "");
}
function truncate(s, n) {
  return s.length > n ? s.slice(0, n) + "…" + " (" + s.length + " chars)" : s;
}
function showError(msg) {
  const e = $("error");
  e.hidden = !msg;
  e.textContent = msg || "";
}

// ---- UI state --------------------------------------------------------------------------------
const labels = {
  Idle: "Not in line", Joining: "Joining…", Queued: "Queued", Admitting: "Admitting", Ready: "Ready",
  Active: "Playing", Expired: "Expired", Stopped: "Stopped", Error: "Error",
  Dropped: "Connection dropped", Elsewhere: "In another queue", Reclaimed: "Slot reclaimed", Disconnected: "Disconnected",
};
function setStatus(view, message) {
  state.view = view;
  const pill = $("status");
  pill.dataset.status = view;
  pill.textContent = labels[view] || view;
  if (message !== undefined) $("message").textContent = message;
  document.title = (labels[view] || view) + " · carqueue demo";
}
function showButtons(b) {
  $("stop").hidden = !b.stop;
  $("reconnect").hidden = !b.reconnect;
  $("reconnect").classList.toggle("primary", !!b.reconnect && !b.rejoin); // the way back, while the slot is kept
  $("rejoin").hidden = !b.rejoin;
  $("join").disabled = !!b.busy;
  $("user-id").disabled = !!b.busy;
  $("queue-id").disabled = !!b.busy; // a session stays in its queue: Stop first
}
function showQueue(e) {
  $("queue-metrics").hidden = !e;
  $("position").textContent = e ? String(e.position ?? "–") : "–";
  $("queue-length").textContent = e ? String(e.length ?? "–") : "–";
  // Before a scheduled opening the wait is a countdown, ticking between polls (showCountdowns).
  state.opensAt = e && e.opensInSeconds != null ? Date.now() + e.opensInSeconds * 1000 : 0;
  $("eta").textContent = e ? (state.opensAt ? opensText() : fmtEta(e.eta)) : "–";
  $("eta").classList.toggle("text-value", !!e && (e.eta == null || !!state.opensAt)); // words, not a number
}
function opensText() {
  const left = Math.max(0, Math.ceil((state.opensAt - Date.now()) / 1000));
  return left > 0 ? "opens in " + fmtEta(left) : "opening…";
}
// showLane shows the priority lane the answers name (an answer without Lane keeps it); null clears.
function showLane(e) {
  if (!e) state.lane = "";
  else if (typeof e.lane === "string") state.lane = e.lane;
  $("lane-note").hidden = !state.lane || state.lane === "default";
  $("lane-name").textContent = state.lane;
}
// showLimit shows the session limit's time left (RemainingSeconds of the heartbeat answers),
// ticking between heartbeats, and the server's Warning; null or no limit hides it.
function showLimit(e) {
  const limited = !!e && typeof e.remainingSeconds === "number";
  state.endsAt = limited ? Date.now() + e.remainingSeconds * 1000 : 0;
  $("remaining-box").hidden = !limited;
  $("remaining-box").classList.toggle("warn", limited && !!e.warning);
  $("remaining-box").title = limited && e.warning ? e.warning : "";
  showCountdowns();
}
// showCountdowns ticks the opening countdown and the session's time left (every 100 ms, with
// the "next request" line).
function showCountdowns() {
  if (state.opensAt && !$("queue-metrics").hidden) $("eta").textContent = opensText();
  if (state.endsAt) $("remaining").textContent = fmtEta(Math.max(0, Math.ceil((state.endsAt - Date.now()) / 1000)));
}
function showNotice(e) {
  const parts = [];
  if (e && e.paused) parts.push("Admission is paused by the operator; you keep your place.");
  if (e && e.notice) parts.push(e.notice);
  $("notice").hidden = parts.length === 0;
  $("notice").textContent = parts.join(" ");
}
// showDrop shows the drop notice (kind "warn" while the slot is kept, "bad" once reclaimed), or
// hides it with null. Not a live region: the countdown would be read out every second; #message
// announces the change of state instead.
function showDrop(kind, text) {
  const e = $("drop");
  e.hidden = !kind;
  e.dataset.kind = kind || "";
  e.textContent = kind ? text : "";
}
function setStream(s, text) {
  $("sdk-state").dataset.state = s;
  $("sdk-state").textContent = text;
  const badge = { connecting: "CONNECTING", connected: "LIVE", paused: "NO SIGNAL", ending: "ENDING", disconnected: "DISCONNECTED" }[s] || "";
  $("stream-badge").textContent = badge;
  $("stream-frame").dataset.state = s;
}
// The "next request in" line follows carqueue.js's pending request.
function watchNext() {
  clearInterval(state.nextTimer);
  const show = () => {
    showCountdowns();
    const n = state.q && !state.dropped ? state.q.next : null;
    const p = $("next-update").parentElement;
    if (!n) { p.hidden = true; return; }
    p.hidden = false;
    $("next-kind").textContent = n.route;
    const left = n.at - Date.now();
    $("next-update").textContent = left > 50 ? (left / 1000).toFixed(1) + " s" : "a moment";
  };
  show();
  state.nextTimer = setInterval(show, 100);
}

// ---- TCGSDK ----------------------------------------------------------------------------------
// initSDK (re)initialises TCGSDK and resolves once it has a ClientSession to give.
function initSDK() {
  const gen = ++state.sdkGen;
  state.connected = false;
  const mine = (fn) => (...args) => { if (gen === state.sdkGen) fn(...args); };
  return new Promise((resolve, reject) => {
    try {
      SDK.init({
        mount: "stream",
        onInitSuccess: mine(() => resolve()),
        onConnectSuccess: mine(onConnectSuccess),
        onDisconnect: mine(onDisconnect),
        onNetworkChange: mine(onNetworkChange),
      });
    } catch (err) {
      reject(err);
    }
  });
}
function destroySDK() {
  state.sdkGen++; // whatever the old one still reports is not news
  state.connected = false;
  $("proxy-port").textContent = "–";
  closeChannel("closed", "Opens once the stream is connected.");
  try { SDK.destroy(); } catch { /* not started */ }
}
function onNetworkChange(r) {
  if (r && r.status === "stats" && r.stats) { // every few seconds: the stream's round trip
    if (state.connected && !state.dropped) $("sdk-state").title = "the stream's round trip: " + r.stats.rtt + " ms";
    return;
  }
  log("onNetworkChange: " + JSON.stringify(r));
}
function onConnectSuccess(r) {
  state.connected = true;
  setStream("connected", "connected");
  // The stand-in says which proxy port the session's datagrams come from (the real SDK does not).
  $("proxy-port").textContent = r && r.proxyPort ? String(r.proxyPort) : "–";
  if (state.view === "Disconnected" && state.q && !state.q.closed) { // TCGSDK reconnected on its own
    setStatus(state.q.status === "Active" ? "Active" : "Ready", "The stream is back.");
    showButtons({ stop: true, busy: true });
  }
  log("onConnectSuccess: the stream is up; heartbeats start");
  if (state.q) state.q.startHeartbeats();
  openChannel();
}
function onDisconnect(r) {
  const was = state.connected;
  state.connected = false;
  setStream("disconnected", "disconnected");
  closeChannel("closed", "The stream is gone, and the channel with it.");
  log("onDisconnect" + (r && (r.msg || r.reason) ? ": " + (r.msg || r.reason) : ""));
  if (state.dropped) reclaimed();
  if (state.view === "Reclaimed" || state.view === "Expired") return; // the end the page already shows
  if (!was) return;
  // Not the page's doing: the session was destroyed (a /stop from elsewhere, a kick, the reaper)
  // or the network broke. Ask the queue now rather than at the next heartbeat.
  setStatus("Disconnected", "The stream disconnected. Checking with the queue…");
  showButtons({ stop: true, reconnect: true, busy: true });
  if (state.q) state.q.refresh();
}

// ---- the queue -------------------------------------------------------------------------------
// demoFetch is carqueue.js's transport: while a drop is simulated, every request fails as on a
// dead network.
function demoFetch(url, init) {
  if (state.dropped) return Promise.reject(new TypeError("simulated dropped connection"));
  return fetch(url, init);
}

// startSession joins as userId (a kept ticket for it makes carqueue.js reconnect instead).
async function startSession(userId) {
  if (state.q) state.q.detach();
  state.q = null;
  destroySDK();
  state.userId = userId;
  $("heartbeats").textContent = "0";
  $("last-heartbeat").textContent = "–";
  $("ready-panel").hidden = true;
  showDrop(null);
  showQueue(null);
  showError("");
  setStatus("Joining", (saved(storeOpts) ? "Reconnecting as " : "Joining the line as ") + userId + (state.queueId ? " in queue " + state.queueId : "") + "…");
  showQueueNote();
  showButtons({ busy: true });
  try {
    await initSDK();
  } catch (err) {
    setStatus("Error", "TCGSDK did not initialise: " + err);
    showButtons({ rejoin: true });
    return;
  }
  const fields = state.queueId ? { QueueId: state.queueId } : undefined;
  const q = join(userId, () => SDK.getClientSession(), Object.assign({ heartbeats: "manual", fetch: demoFetch, fields, grant }, storeOpts));
  state.q = q;
  log((q.ticket ? "reconnect" : "start") + " as " + userId + (state.queueId ? " in queue " + state.queueId : ""));
  const mine = (fn) => (e) => { if (state.q === q) fn(e); };
  q.on("queued", mine(onQueued));
  q.on("admitting", mine(onAdmitting));
  q.on("ready", mine(onReady));
  q.on("active", mine(onActive));
  q.on("expired", mine(onExpired));
  q.on("error", mine(onError));
  q.on("notice", mine((e) => log(e.notice ? "notice: " + e.notice : "notice cleared")));
  watchNext();
}

function onQueued(e) {
  showError("");
  if (state.view !== "Queued") log(e.route + ": Queued" + (e.position ? " at position " + e.position : ""));
  $("ready-panel").hidden = true;
  showDrop(null);
  showNotice(e);
  showLane(e);
  setStatus("Queued", e.position ? "You are number " + e.position + " of " + e.length + " in line." : "The queue opens soon.");
  showQueue(e);
  showButtons({ stop: true, busy: true });
}
function onAdmitting(e) {
  showError("");
  if (state.view !== "Admitting") log(e.route + ": Admitting");
  showNotice(e);
  showLane(e);
  setStatus("Admitting", "A slot is being prepared for you…");
  showQueue(null);
  showButtons({ stop: true, busy: true });
}
function onReady(e) {
  showError("");
  showNotice(e);
  showLane(e);
  showLimit(null);
  showQueue(null);
  showDrop(null);
  setStatus("Ready", "Your slot is ready: starting the stream…");
  $("ready-panel").hidden = false;
  $("pause-heartbeat").parentElement.hidden = false;
  $("server-session").textContent = truncate(e.serverSession, 48);
  $("server-session").title = "ServerSession, passed to TCGSDK.start()";
  $("heartbeats").textContent = "0";
  showButtons({ stop: true, busy: true });
  setStream("connecting", "connecting…");
  log(e.route + ": Ready; TCGSDK.start(ServerSession)");
  try {
    SDK.start(e.serverSession);
  } catch (err) {
    showError("TCGSDK.start failed: " + err);
  }
}
function onActive(e) {
  showError("");
  showNotice(e);
  showLane(e);
  showLimit(e);
  $("heartbeats").textContent = String(e.heartbeats);
  $("last-heartbeat").textContent = new Date().toLocaleTimeString();
  if (state.dropped) return; // the answer was on its way when the box was ticked
  if (state.view === "Disconnected") { // the stream is down, the slot still ours
    $("message").textContent = "The stream disconnected, but your slot is kept: press Reconnect.";
    return;
  }
  showDrop(null);
  if (state.view !== "Active") {
    setStatus("Active", e.warning || "Playing. Heartbeats keep the slot yours.");
    log("heartbeat: Active");
  } else if (e.warning) {
    $("message").textContent = e.warning;
  }
  showButtons({ stop: true, busy: true });
}
const reasons = {
  heartbeat_timeout: "no heartbeat for too long", idle: "no poll for too long",
  never_started: "the stream never started", stopped: "stopped", car_refused: "CAR refused the session",
  kicked: "removed by the operator", time_limit: "the session's time is up", ticket_refused: "the ticket is no longer valid",
};
function onExpired(e) {
  clearDrop();
  const why = e.reason ? " (" + (reasons[e.reason] || e.reason) + ")" : "";
  setStatus("Expired", "Your place or session has ended" + why + ". Join again to get back in line.");
  showDrop(null);
  showQueue(null);
  showNotice(null);
  showLane(null);
  showLimit(null);
  showButtons({ rejoin: true });
  log(e.route + ": Expired" + why);
  // The stream, if one was shown, stays on show, greyed: CAR destroys (or has destroyed) the
  // session, and TCGSDK's onDisconnect follows. The next join destroys TCGSDK.
  $("pause-heartbeat").parentElement.hidden = true;
  if (state.connected) setStream("ending", "ending…");
  else if ($("sdk-state").dataset.state !== "disconnected") setStream("disconnected", "not connected");
}
function onError(e) {
  if (e.fatal && e.http === 409 && e.code === 4090) { // the user is in another queue of the deployment
    destroySDK();
    const m = /queue "([^"]+)"/.exec(e.msg || "");
    const where = m ? m[1] : "";
    showError("You are already in queue " + (where || "another queue") + " (waiting or playing there, perhaps in another tab): " +
      "stop there first, then join here.");
    setStatus("Elsewhere", "Not joined: a user waits or plays in one queue at a time.");
    showButtons({ rejoin: true });
    log(e.route + ": already in queue " + (where || "elsewhere") + " (409, code 4090)");
    return;
  }
  if (e.fatal) {
    destroySDK();
    showError(e.route + " failed: " + e.msg);
    setStatus("Error", "Something is wrong with the request.");
    showButtons({ rejoin: true });
    log(e.route + ": " + e.msg);
    return;
  }
  if (state.dropped) return; // the countdown says it all
  showError(e.route + " failed (" + e.msg + "); retrying in " + (e.retryInMs / 1000).toFixed(1) + " s. Your place is kept.");
  if (e.attempt === 1) log(e.route + ": " + e.msg + ", retrying");
}

// ---- the simulated dropped connection --------------------------------------------------------
// No request of carqueue.js gets through; the page counts down the reconnect window the server
// keeps the slot for (ReconnectWindowMs after the last good heartbeat). At 0 the reaper has freed
// the slot (or is about to, at its next tick), so the page says so; Reconnect then behaves like
// Join.
function dropped() {
  if (!state.q || !state.q.serverSession) return;
  state.dropped = true;
  setStream("paused", "no signal");
  setStatus("Dropped", "No heartbeats go out (simulated drop). Reconnect, or untick the box, before the window ends.");
  showButtons({ stop: true, reconnect: true, busy: true });
  showError("");
  const q = state.q;
  const tick = () => {
    if (!state.dropped || state.q !== q) return;
    const left = q.reconnectDeadline - Date.now();
    if (left > 0) {
      const about = q.reconnectWindowExact ? "" : "about ";
      showDrop("warn", "Connection dropped — your slot is kept for " + about + Math.ceil(left / 1000) + " s: press Reconnect");
      return;
    }
    reclaimed();
  };
  tick();
  clearInterval(state.dropTimer);
  state.dropTimer = setInterval(tick, 200);
}
function clearDrop() {
  state.dropped = false;
  clearInterval(state.dropTimer);
  $("pause-heartbeat").checked = false;
}
function undropped() {
  clearDrop();
  showDrop(null);
  if (!state.q || state.q.closed) return;
  setStream(state.connected ? "connected" : "disconnected", state.connected ? "connected" : "disconnected");
  setStatus(state.q.status === "Active" ? "Active" : "Ready", "Heartbeats resumed.");
  state.q.refresh(); // the heartbeat that was held back goes now
}
function reclaimed() {
  if (state.view === "Reclaimed") return;
  const q = state.q;
  clearDrop();
  if (q) q.detach(); // the ticket stays: Reconnect tries it, and past the window it is a new join
  // TCGSDK stays up: when the reaper destroys the session, its onDisconnect says so.
  $("pause-heartbeat").parentElement.hidden = true;
  const secs = q ? Math.round((q.reconnectWindowMs || q.reconnectDeadline - q.lastContactAt) / 1000) : 0;
  const about = q && q.reconnectWindowExact ? "" : "about ";
  setStatus("Reclaimed", "Join again to get back in line. (Reconnect does the same now: past the window it behaves like a new join.)");
  showDrop("bad", "Slot reclaimed — no heartbeat for " + about + secs + " s, so the server freed it for the next in line.");
  showButtons({ reconnect: true, rejoin: true });
  log("reconnect window over: the slot is reclaimed");
}

// ---- buttons ---------------------------------------------------------------------------------
async function reconnect() {
  clearDrop();
  showDrop(null);
  const q = state.q;
  if (q && !q.closed) {
    // Same Session: a new TCGSDK.init gives a new ClientSession, /reconnect re-attaches it.
    destroySDK();
    setStatus("Joining", "Reconnecting as " + state.userId + "…");
    showButtons({ busy: true });
    await initSDK();
    if (state.q !== q) return;
    log("reconnect as " + state.userId);
    q.reconnect();
    return;
  }
  startSession(state.userId); // its kept ticket makes it a /reconnect
}
async function stop() {
  const q = state.q;
  clearDrop();
  showButtons({ busy: true });
  destroySDK();
  $("ready-panel").hidden = true;
  showDrop(null);
  showQueue(null);
  showNotice(null);
  showLane(null);
  showLimit(null);
  if (!q) return;
  const { confirmed } = await q.stop();
  if (state.q !== q) return;
  showError("");
  setStatus("Stopped", confirmed ? "You left. Your slot went to the next in line." : "You left (the server did not answer; it lets the slot time out).");
  log("stop: " + (confirmed ? "Stopped" : "no answer"));
  showButtons({ rejoin: true });
}
function joinClicked() {
  const id = $("user-id").value.trim();
  if (!$("user-id").checkValidity() || !id) {
    $("user-id").reportValidity();
    return;
  }
  // A join is a join: a ticket kept for this user from before is not used.
  storeOpts.storage.removeItem(storeOpts.storageKey);
  pickQueue($("queue-id").value);
  startSession(id);
}

// ---- the data channel ------------------------------------------------------------------------
// One channel is shown at a time: the port field's. TCGSDK keeps a channel for the whole
// connection (there is no call to close one), so each is remembered per port until the stream
// disconnects, and opening one again reuses it (code 2). With "Framing" the channel is a binary
// one and carqueue.js's frames() splits and joins messages (FRAMING.md): messages of any size.
const chan = {
  conn: 0,            // state.sdkGen of the connection the channels belong to
  byPort: new Map(),  // destPort → { protocol, send, framer } of this connection
  gen: 0,             // bumps on every open/close: a late result of an older attempt is dropped
  port: 0,            // the channel shown
  send: null,
  framed: false,
  answered: false,    // the app has answered on the channel shown
  hello: 0,           // timer: says hello until the app answers (code 0 only means the channel exists)
  pending: new Map(), // message text → send times, for the round trip
  ticks: 0,
};
const BIG = 64 * 1024;
function setChan(s, label, message) {
  $("chan-state").dataset.state = s;
  $("chan-state").textContent = label;
  if (message !== undefined) $("chan-message").textContent = message;
  const usable = s === "open" || s === "waiting";
  $("chan-input").disabled = !usable;
  $("chan-send").disabled = !usable;
  $("chan-send-big").disabled = !usable || !chan.framed;
  $("chan-send-big").title = chan.framed ? "" : "needs Framing: one datagram carries at most 65,507 bytes";
}
function closeChannel(s, message) {
  chan.gen++;
  clearTimeout(chan.hello);
  chan.send = null;
  chan.answered = false;
  chan.pending.clear();
  if (state.sdkGen !== chan.conn || !state.connected) chan.byPort.clear(); // that connection's channels are gone
  setChan(s, s === "failed" ? "Failed" : "Closed", message);
}
function chanLog(kind, text, extra, length) {
  const li = document.createElement("li");
  li.dataset.kind = kind;
  if (length !== undefined) li.dataset.length = String(length);
  const t = document.createElement("time");
  t.textContent = new Date().toLocaleTimeString();
  const arrow = document.createElement("span");
  arrow.className = "dir";
  arrow.textContent = kind === "sent" ? "→" : "←";
  const s = document.createElement("span");
  s.className = "text";
  s.textContent = text;
  li.append(t, arrow, s);
  if (extra) {
    const x = document.createElement("span");
    x.className = "extra muted";
    x.textContent = extra;
    li.append(x);
  }
  const ol = $("chan-log");
  ol.prepend(li);
  while (ol.children.length > 40) ol.lastChild.remove();
}
function portValue() {
  const p = Number($("chan-port").value);
  return Number.isInteger(p) && p > 0 && p < 65536 ? p : 0;
}
// openChannel shows the channel to the port field's port, creating it if this connection has
// none yet: createCustomDataChannel, retried while TCGSDK says "not ready yet" (1) or "timeout"
// (3); then it says hello until the app answers.
async function openChannel() {
  const port = portValue();
  if (!port) { $("chan-port").reportValidity(); return; }
  if (!state.connected) { setChan("closed", "Closed", "Opens once the stream is connected."); return; }
  closeChannel("opening");
  const gen = chan.gen;
  const conn = state.sdkGen;
  chan.conn = conn;
  chan.port = port;
  const framed = $("chan-framed").checked;
  let ch = chan.byPort.get(port);
  const later = ch && ch.framed !== framed;
  if (!ch) {
    const framer = framed ? frames({ onMessage: (m) => onChannelMessage(conn, port, m) }) : null;
    chan.framed = framed;
    setChan("opening", "Opening", "Opening a " + (framed ? "framed (binary)" : "text") + " channel to the cloud app on port " + port + "…");
    for (let attempt = 1; ; attempt++) {
      let r;
      try {
        r = await SDK.createCustomDataChannel({
          destPort: port,
          protocol: framed ? "binary" : "text",
          onMessage: framer ? framer.receive : (data) => onChannelMessage(conn, port, data),
        });
      } catch (err) {
        r = { code: -1, msg: String(err) };
      }
      if (gen !== chan.gen) return;
      r = r || { code: -1, msg: "no result" };
      if ((r.code === 0 || r.code === 2) && typeof r.sendMessage === "function") {
        if (framer) framer.connect(r.sendMessage);
        ch = { framed, send: framer ? (d) => framer.send(d) : (d) => { r.sendMessage(d); return 1; } };
        chan.byPort.set(port, ch);
        break;
      }
      if ((r.code === 1 || r.code === 3) && attempt < 50 && state.connected) {
        await new Promise((res) => setTimeout(res, Math.min(2000, 100 * 2 ** Math.min(attempt, 5))));
        if (gen !== chan.gen) return;
        continue;
      }
      closeChannel("failed", "createCustomDataChannel(" + port + ") failed: code " + r.code + (r.msg ? " (" + r.msg + ")" : ""));
      log("data channel to port " + port + " failed: code " + r.code);
      return;
    }
    log("data channel to port " + port + " created (" + (framed ? "binary, framed" : "text") + ")");
  }
  chan.send = ch.send;
  chan.framed = ch.framed;
  setChan("waiting", "Waiting", "Channel to port " + port + " ready; saying hello until the app answers…");
  if (later) {
    // TCGSDK has no call to close a channel: this connection keeps its channel to the port.
    log("framing " + (framed ? "on" : "off") + " from the next start: this connection keeps its " + (ch.framed ? "framed" : "text") + " channel to port " + port);
  }
  let hellos = 0;
  const hello = () => {
    if (gen !== chan.gen || chan.answered) return;
    if (hellos === 10) {
      setChan("waiting", "No answer", "No answer from 127.0.0.1:" + port + " yet. Is the app running? go run ./local/echoapp -port " + port);
    }
    hellos++;
    sendText("hello");
    chan.hello = setTimeout(hello, hellos < 10 ? 1000 : 3000);
  };
  hello();
}
function sendText(text, label) {
  if (!chan.send) return false;
  const at = performance.now();
  const list = chan.pending.get(text) || [];
  list.push(at);
  if (list.length > 20) list.shift();
  chan.pending.set(text, list);
  let datagrams = 1;
  try {
    datagrams = chan.send(text);
  } catch (err) {
    chanLog("error", "send failed: " + err);
    return false;
  }
  chanLog("sent", label || text, datagrams > 1 ? datagrams + " datagrams" : "", text.length);
  return true;
}
function asText(data) {
  if (typeof data === "string") return data;
  if (data instanceof ArrayBuffer || ArrayBuffer.isView(data)) return new TextDecoder().decode(data);
  return String(data);
}
function bigMessage() {
  return ("64 KiB: " + "0123456789abcdef".repeat(BIG / 16)).slice(0, BIG);
}
function onChannelMessage(conn, port, data) {
  // Only the channel shown, of the current connection (a reload's old proxy port is gone anyway).
  if (conn !== state.sdkGen || port !== chan.port || !chan.send) return;
  const text = asText(data);
  if (!chan.answered) {
    chan.answered = true;
    clearTimeout(chan.hello);
    setChan("open", "Open", "The cloud app on port " + chan.port + " answers" + (chan.framed ? " (framed: messages of any size)" : "") + ". Type a message.");
    log("the cloud app answers on the data channel");
  }
  let tick = null;
  if (text.startsWith("{")) {
    try { tick = JSON.parse(text); } catch { /* not JSON */ }
  }
  if (tick && typeof tick === "object" && "tick" in tick) {
    chan.ticks++;
    $("ticks").textContent = String(chan.ticks);
    const rest = Object.entries(tick).filter(([k]) => k !== "tick").map(([k, v]) => k + " " + (typeof v === "object" ? JSON.stringify(v) : v));
    chanLog("tick", "tick " + tick.tick, rest.length ? rest.join(" · ") : "pushed by the app");
    return;
  }
  const m = text.match(/^echo: ([\s\S]*)$/);
  const sent = m ? chan.pending.get(m[1]) : null;
  const shown = text.length > 200 ? text.slice(0, 40) + "… (" + text.length.toLocaleString("en") + " chars)" : text;
  if (sent && sent.length) {
    const ms = performance.now() - sent.shift();
    const rtt = ms < 10 ? ms.toFixed(1) : String(Math.round(ms));
    $("rtt").textContent = rtt + " ms";
    chanLog("echo", shown, rtt + " ms", text.length);
  } else {
    chanLog("app", shown, "", text.length);
  }
}

// ---- start-up --------------------------------------------------------------------------------
async function init() {
  $("join-form").addEventListener("submit", (e) => { e.preventDefault(); joinClicked(); });
  $("rejoin").addEventListener("click", joinClicked);
  $("queue-id").addEventListener("change", (e) => pickQueue(e.target.value));
  $("stop").addEventListener("click", stop);
  $("reconnect").addEventListener("click", reconnect);
  $("pause-heartbeat").addEventListener("change", (e) => {
    log(e.target.checked ? "heartbeats paused (simulated drop)" : "heartbeats resumed");
    if (e.target.checked) dropped(); // the countdown starts now, not at the next heartbeat
    else undropped();
  });
  $("chan-form").addEventListener("submit", (e) => { e.preventDefault(); openChannel(); });
  $("chan-framed").addEventListener("change", () => {
    const u = new URL(location.href); // kept in the URL, so a reload keeps it
    if ($("chan-framed").checked) u.searchParams.set("framing", "1");
    else u.searchParams.delete("framing");
    history.replaceState(null, "", u);
    if (state.connected) openChannel();
  });
  $("chan-send-big").addEventListener("click", () => {
    sendText(bigMessage(), "a 64 KiB message (" + BIG.toLocaleString("en") + " characters)");
  });
  $("send-form").addEventListener("submit", (e) => {
    e.preventDefault();
    const text = $("chan-input").value;
    if (text && sendText(text)) $("chan-input").value = "";
  });
  if (params.get("port")) $("chan-port").value = params.get("port");
  $("chan-framed").checked = params.get("framing") === "1";
  $("identity-note").textContent = pinnedUser
    ? "?user=" + pinnedUser + " (kept in localStorage: survives closing the tab)"
    : "this tab (kept in sessionStorage: a reload reconnects, another tab is another user)";

  if (!SDK) {
    setStatus("Error", "TCGSDK is not loaded (/tcgsdk-local.js).");
    showButtons({});
    return;
  }
  const kept = saved(storeOpts);
  $("user-id").value = pinnedUser || (kept && kept.userId) || randomUser();
  showButtons({ busy: true });
  await loadQueues(kept);
  if (kept && (!pinnedUser || kept.userId === pinnedUser)) {
    log("found a kept ticket for " + kept.userId + (state.queueId ? " in queue " + state.queueId : ""));
    startSession(kept.userId);
  } else {
    showButtons({});
  }
}

// ---- many queues -----------------------------------------------------------------------------
// loadQueues asks the harness for its queues and shows the picker when there is more than one.
// The queue preselected: the kept one when a reload reconnects (its ticket is only valid there),
// else ?queue=ID, else the first.
async function loadQueues(kept) {
  let list = [];
  try {
    const r = await fetch("/harness/queues");
    if (r.ok) list = (await r.json()).Queues || [];
  } catch { /* no harness: one queue, as on a real deployment */ }
  state.queues = Array.isArray(list) ? list.filter((x) => x && typeof x.QueueId === "string") : [];
  if (state.queues.length < 2) { state.queues = []; pickQueue(""); return; }
  const sel = $("queue-id");
  sel.replaceChildren(...state.queues.map((x) => {
    const o = document.createElement("option");
    o.value = x.QueueId;
    o.textContent = x.QueueId + " — project " + x.ProjectId + (x.ApplicationId ? " / " + x.ApplicationId : "") + " · " + capacityText(x);
    return o;
  }));
  $("queue-picker").hidden = false;
  const known = (id) => !!id && state.queues.some((x) => x.QueueId === id);
  const keptQueue = kept ? storeOpts.storage.getItem(queueKey) : null;
  const wanted = params.get("queue");
  if (wanted && !known(wanted)) showError("?queue=" + wanted + " is not a queue of this deployment; pick one of the list.");
  sel.value = known(keptQueue) ? keptQueue : known(wanted) ? wanted : state.queues[0].QueueId;
  pickQueue(sel.value);
}
function capacityText(x) {
  if (x.CapacityFromCAR || x.Capacity === 0) return "CAR's Total slots";
  return x.Capacity + (x.Capacity === 1 ? " slot" : " slots");
}
// pickQueue sets the queue of the next session and keeps it with the identity.
function pickQueue(id) {
  state.queueId = state.queues.length > 1 ? id : "";
  if (state.queueId) storeOpts.storage.setItem(queueKey, state.queueId);
  else storeOpts.storage.removeItem(queueKey);
  showQueueNote();
}
function showQueueNote() {
  const x = state.queues.find((q) => q.QueueId === state.queueId);
  $("queue-note").hidden = !x;
  if (!x) return;
  $("queue-note-id").textContent = x.QueueId;
  $("queue-note-project").textContent = x.ProjectId + (x.ApplicationId ? " / " + x.ApplicationId : "");
}
init();
