// carqueue demo client: what a game page does around TCGSDK, minus TCGSDK itself.
//
// Identity (UserId + Ticket) is remembered so that a reload reconnects (/reconnect):
//   - with ?user=NAME in the URL, in localStorage under that name (a bookmarkable identity);
//   - otherwise in sessionStorage, which every tab has to itself, so several tabs are several
//     users and can play out a queue together.
"use strict";

(function () {
  const $ = (id) => document.getElementById(id);
  const params = new URLSearchParams(location.search);
  const pinnedUser = params.get("user");
  const store = pinnedUser ? localStorage : sessionStorage;
  const storeKey = pinnedUser ? "carqueue.demo." + pinnedUser : "carqueue.demo.tab";

  const state = {
    userId: "",
    ticket: "",
    clientSession: "",
    status: "Idle",
    timer: 0,        // pending poll or heartbeat
    tickTimer: 0,    // countdown display
    nextAt: 0,
    heartbeats: 0,
    epoch: 0,        // bumps on every join/stop so stale answers are ignored
    backoffMs: 1000,
    // The reconnect window: the server keeps a holder's slot for windowMs after its last
    // heartbeat (HEARTBEAT_TIMEOUT, told as ReconnectWindowMs). lastContactAt is when the last
    // successful heartbeat (or the Ready answer) was sent; windowExact is false when the server
    // did not say and the page guesses 4 × NextHeartbeatMs.
    lastContactAt: 0,
    windowMs: 0,
    windowExact: false,
  };

  // ---- storage -------------------------------------------------------------------------------
  function save() {
    store.setItem(storeKey, JSON.stringify({ userId: state.userId, ticket: state.ticket }));
  }
  function forget() {
    store.removeItem(storeKey);
  }
  function load() {
    try { return JSON.parse(store.getItem(storeKey) || "null"); } catch { return null; }
  }

  // ---- helpers -------------------------------------------------------------------------------
  function newClientSession() {
    const b = new Uint8Array(12);
    crypto.getRandomValues(b);
    return "demo-client-session-" + Array.from(b, (x) => x.toString(16).padStart(2, "0")).join("");
  }
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
  function clearTimers() {
    clearTimeout(state.timer);
    clearInterval(state.tickTimer);
    state.timer = 0;
    state.tickTimer = 0;
    $("next-update").textContent = "–";
    $("next-update").parentElement.hidden = true;
  }
  function schedule(ms, fn, label) {
    clearTimers();
    const epoch = state.epoch;
    state.nextAt = Date.now() + ms;
    const show = () => {
      const left = Math.max(0, state.nextAt - Date.now());
      $("next-update").textContent = (left / 1000).toFixed(1) + " s";
      $("next-kind").textContent = label;
    };
    show();
    $("next-update").parentElement.hidden = false;
    state.tickTimer = setInterval(show, 100);
    state.timer = setTimeout(() => { if (epoch === state.epoch) fn(); }, ms);
  }
  function showError(msg) {
    const e = $("error");
    if (!msg) { e.hidden = true; e.textContent = ""; return; }
    e.hidden = false;
    e.textContent = msg;
  }

  // ---- API -----------------------------------------------------------------------------------
  // call POSTs to a route and returns {http, body}; network failures come back as http 0.
  async function call(route, payload) {
    const sentAt = Date.now();
    try {
      const r = await fetch("/" + route, {
        method: "POST",
        headers: { "Content-Type": "application/json" },
        body: JSON.stringify(payload),
      });
      let body = null;
      try { body = await r.json(); } catch { /* platform error without envelope */ }
      return { http: r.status, body, sentAt, retryAfter: Number(r.headers.get("Retry-After")) || 0 };
    } catch (err) {
      return { http: 0, body: null, sentAt, error: String(err) };
    }
  }

  // retryable answers (network, 429, 503, 5xx) are retried with backoff; the rest end the flow.
  function handleFailure(res, route, again) {
    const msg = res.body && res.body.Msg ? res.body.Msg : res.error || "HTTP " + res.http;
    if (res.http === 401) {
      showError("The server no longer accepts this ticket (" + msg + "). Join again.");
      log(route + ": ticket refused");
      forget();
      $("ready-panel").hidden = true;
      showDrop(null);
      setStatus("Expired", "Your ticket is not valid any more.");
      showButtons({ rejoin: true });
      return;
    }
    if (res.http === 0 || res.http === 429 || res.http >= 500) {
      const wait = res.retryAfter ? res.retryAfter * 1000 : state.backoffMs;
      state.backoffMs = Math.min(state.backoffMs * 2, 15000);
      showError(route + " failed (" + msg + "); retrying in " + (wait / 1000).toFixed(0) + " s.");
      log(route + ": " + msg + ", retrying");
      schedule(wait, again, "retry " + route);
      return;
    }
    showError(route + " failed: " + msg);
    log(route + ": " + msg);
    showDrop(null);
    setStatus("Error", "Something is wrong with the request.");
    showButtons({ rejoin: true });
  }

  // ---- UI state ------------------------------------------------------------------------------
  const labels = {
    Idle: "Not in line", Queued: "Queued", Admitting: "Admitting", Ready: "Ready",
    Active: "Playing", Expired: "Expired", Stopped: "Stopped", Error: "Error", Joining: "Joining…",
    Dropped: "Connection dropped", Reclaimed: "Slot reclaimed",
  };
  function setStatus(status, message) {
    state.status = status;
    const pill = $("status");
    pill.dataset.status = status;
    pill.textContent = labels[status] || status;
    if (message !== undefined) $("message").textContent = message;
    document.title = (labels[status] || status) + " · carqueue demo";
  }
  function showButtons(b) {
    $("stop").hidden = !b.stop;
    $("reconnect").hidden = !b.reconnect;
    $("reconnect").classList.toggle("primary", !!b.reconnect && !b.rejoin); // the way back, while the slot is kept
    $("rejoin").hidden = !b.rejoin;
    $("join").disabled = !!b.busy;
    $("user-id").disabled = !!b.busy;
  }
  function showQueue(d) {
    $("queue-metrics").hidden = !d;
    $("position").textContent = d ? String(d.Position ?? "–") : "–";
    $("queue-length").textContent = d ? String(d.QueueLength ?? "–") : "–";
    $("eta").textContent = d ? fmtEta(d.EtaSeconds) : "–";
    $("eta").classList.toggle("text-value", !!d && d.EtaSeconds == null); // "estimating…" is words, not a number
  }

  // ---- the flow ------------------------------------------------------------------------------
  // onStatus reacts to the Data of /start, /poll and /reconnect (and of /heartbeat when it says
  // the user is still in line); sentAt is when that request went out.
  function onStatus(d, route, sentAt) {
    showError("");
    state.backoffMs = 1000;
    switch (d.Status) {
      case "Queued":
        $("ready-panel").hidden = true;
        showDrop(null);
        setStatus("Queued", "You are number " + d.Position + " of " + d.QueueLength + " in line.");
        showQueue(d);
        showButtons({ stop: true, busy: true });
        schedule(d.NextPollMs || 1000, poll, "poll");
        break;
      case "Admitting":
        $("ready-panel").hidden = true;
        showDrop(null);
        setStatus("Admitting", "A slot is being prepared for you…");
        showQueue(null);
        showButtons({ stop: true, busy: true });
        schedule(d.NextPollMs || 500, poll, "poll");
        break;
      case "Ready":
        onReady(d, route, sentAt);
        break;
      case "Expired":
        onExpired(d);
        break;
      default:
        log(route + ": unexpected status " + d.Status);
        schedule(2000, poll, "poll");
    }
  }

  // learnWindow notes the reconnect window from a Ready or Active answer, sent at sentAt.
  function learnWindow(d, sentAt) {
    state.lastContactAt = sentAt || Date.now();
    if (d.ReconnectWindowMs > 0) {
      state.windowMs = d.ReconnectWindowMs;
      state.windowExact = true;
    } else { // an older server: HEARTBEAT_TIMEOUT is not told, guess it
      state.windowMs = 4 * (d.NextHeartbeatMs || 5000);
      state.windowExact = false;
    }
  }

  function onReady(d, route, sentAt) {
    const first = state.status !== "Ready" && state.status !== "Active";
    learnWindow(d, sentAt);
    setStatus("Ready", "Your slot is ready: this is where the stream starts.");
    showQueue(null);
    showDrop(null);
    $("ready-panel").hidden = false;
    $("server-session").textContent = truncate(d.ServerSession || "", 48);
    $("server-session").title = "ServerSession, passed to TCGSDK.start()";
    showButtons({ stop: true, busy: true });
    if (first) {
      log(route + ": Ready. TCGSDK.start(ServerSession) would be called now.");
    }
    heartbeat(); // the first heartbeat confirms the client started
  }

  function onExpired(d) {
    clearTimers();
    forget();
    const reasons = {
      heartbeat_timeout: "no heartbeat for too long", idle: "no poll for too long",
      never_started: "the stream never started", stopped: "stopped", car_refused: "CAR refused the session",
    };
    const why = d && d.Reason ? " (" + (reasons[d.Reason] || d.Reason) + ")" : "";
    setStatus("Expired", "Your place or session has expired" + why + ". Join again to get back in line.");
    $("ready-panel").hidden = true;
    showDrop(null);
    showQueue(null);
    showButtons({ rejoin: true });
    log("Expired" + why);
  }

  async function join() {
    const id = $("user-id").value.trim();
    if (!$("user-id").checkValidity() || !id) {
      $("user-id").reportValidity();
      return;
    }
    state.epoch++;
    clearTimers();
    state.userId = id;
    state.ticket = "";
    state.heartbeats = 0;
    $("heartbeats").textContent = "0";
    $("last-heartbeat").textContent = "–";
    state.clientSession = newClientSession();
    $("pause-heartbeat").checked = false;
    $("ready-panel").hidden = true;
    showDrop(null);
    setStatus("Joining", "Joining the line…");
    showButtons({ busy: true });
    log("start as " + id);
    const epoch = state.epoch;
    const res = await call("start", { UserId: id, ClientSession: state.clientSession });
    if (epoch !== state.epoch) return;
    if (res.http !== 200 || !res.body || res.body.Code !== 0) {
      handleFailure(res, "start", join);
      return;
    }
    state.ticket = res.body.Data.Ticket || state.ticket;
    save();
    log("start: " + res.body.Data.Status + (res.body.Data.Position ? " at position " + res.body.Data.Position : ""));
    onStatus(res.body.Data, "start", res.sentAt);
  }

  async function poll() {
    const epoch = state.epoch;
    const res = await call("poll", { UserId: state.userId, Ticket: state.ticket });
    if (epoch !== state.epoch) return;
    if (res.http !== 200 || !res.body || res.body.Code !== 0) {
      handleFailure(res, "poll", poll);
      return;
    }
    const d = res.body.Data;
    if (d.Status !== state.status) log("poll: " + d.Status);
    onStatus(d, "poll", res.sentAt);
  }

  async function heartbeat() {
    const epoch = state.epoch;
    if ($("pause-heartbeat").checked) {
      dropped();
      return;
    }
    paused(false);
    const res = await call("heartbeat", { UserId: state.userId, Ticket: state.ticket });
    if (epoch !== state.epoch) return;
    if (res.http !== 200 || !res.body || res.body.Code !== 0) {
      handleFailure(res, "heartbeat", heartbeat);
      return;
    }
    const d = res.body.Data;
    if (d.Status === "Expired") {
      onExpired(d);
      return;
    }
    if (d.Status === "Queued" || d.Status === "Admitting") {
      // Not holding a slot (yet, or any more): back to the line, polling.
      log("heartbeat: " + d.Status + (d.Position ? " at position " + d.Position : ""));
      onStatus(d, "heartbeat", res.sentAt);
      return;
    }
    learnWindow(d, res.sentAt);
    state.heartbeats++;
    $("heartbeats").textContent = String(state.heartbeats);
    $("last-heartbeat").textContent = new Date().toLocaleTimeString();
    showDrop(null);
    if (state.status !== "Active") {
      setStatus("Active", "Playing. Heartbeats keep the slot yours.");
      log("heartbeat: Active");
    }
    if ($("pause-heartbeat").checked) { // ticked while this heartbeat was on its way
      dropped();
      return;
    }
    showButtons({ stop: true, busy: true });
    schedule(d.NextHeartbeatMs || 5000, heartbeat, "heartbeat");
  }

  // dropped is the simulated dropped connection: no heartbeat goes out, and the page counts down
  // the reconnect window the server keeps the slot for. At 0 the reaper has freed the slot (or
  // is about to, at its next tick), so the page says so; /reconnect then behaves like /start.
  function dropped() {
    clearTimers();
    paused(true);
    setStatus("Dropped", "No heartbeats go out (simulated drop). Reconnect, or untick the box, before the window ends.");
    showButtons({ stop: true, reconnect: true, busy: true });
    const epoch = state.epoch;
    const deadline = state.lastContactAt + state.windowMs;
    const about = state.windowExact ? "" : "about ";
    const tick = () => {
      if (epoch !== state.epoch || !$("pause-heartbeat").checked) return;
      const left = deadline - Date.now();
      if (left > 0) {
        showDrop("warn", "Connection dropped — your slot is kept for " + about + Math.ceil(left / 1000) + " s: press Reconnect");
        return;
      }
      reclaimed();
    };
    tick();
    state.tickTimer = setInterval(tick, 200);
  }

  function reclaimed() {
    clearTimers();
    $("pause-heartbeat").checked = false;
    paused(false);
    $("ready-panel").hidden = true;
    const secs = Math.round(state.windowMs / 1000);
    setStatus("Reclaimed", "Join again to get back in line. (Reconnect does the same now: past the window it behaves like a new join.)");
    showDrop("bad", "Slot reclaimed — no heartbeat for " + (state.windowExact ? "" : "about ") + secs + " s, so the server freed it for the next in line.");
    showButtons({ reconnect: true, rejoin: true });
    log("reconnect window over: the slot is reclaimed");
  }

  // paused greys the stream placeholder while no heartbeat goes out.
  function paused(on) {
    $("stream").classList.toggle("paused", on);
    $("stream").querySelector(".stream-badge").textContent = on ? "NO SIGNAL · placeholder" : "LIVE · placeholder";
  }

  // showDrop shows the drop notice (kind "warn" while the slot is kept, "bad" once reclaimed),
  // or hides it with null. Not a live region: the countdown would be read out every second;
  // #message announces the change of state instead.
  function showDrop(kind, text) {
    const e = $("drop");
    e.hidden = !kind;
    e.dataset.kind = kind || "";
    e.textContent = kind ? text : "";
  }

  async function reconnect() {
    state.epoch++;
    clearTimers();
    $("pause-heartbeat").checked = false;
    state.clientSession = newClientSession(); // a new TCGSDK.init gives a new ClientSession
    setStatus("Joining", "Reconnecting as " + state.userId + "…");
    showButtons({ busy: true });
    log("reconnect as " + state.userId);
    const epoch = state.epoch;
    const res = await call("reconnect", { UserId: state.userId, Ticket: state.ticket, ClientSession: state.clientSession });
    if (epoch !== state.epoch) return;
    if (res.http !== 200 || !res.body || res.body.Code !== 0) {
      handleFailure(res, "reconnect", reconnect);
      return;
    }
    const d = res.body.Data;
    if (d.Ticket) { state.ticket = d.Ticket; save(); }
    log("reconnect: " + d.Status);
    state.status = "Idle"; // so Ready counts as a fresh start of the stream
    showDrop(null);
    onStatus(d, "reconnect", res.sentAt);
  }

  async function stop() {
    state.epoch++;
    clearTimers();
    showButtons({ busy: true });
    const res = await call("stop", { UserId: state.userId, Ticket: state.ticket });
    forget();
    $("ready-panel").hidden = true;
    showDrop(null);
    showQueue(null);
    if (res.http === 200 && res.body && res.body.Code === 0) {
      setStatus("Stopped", "You left. Your slot went to the next in line.");
      log("stop: Stopped");
      showError("");
    } else {
      setStatus("Stopped", "You left (the server answered " + (res.body ? res.body.Msg : "HTTP " + res.http) + ").");
      log("stop failed: HTTP " + res.http);
    }
    showButtons({ rejoin: true });
  }

  // ---- start-up ------------------------------------------------------------------------------
  function init() {
    $("join-form").addEventListener("submit", (e) => { e.preventDefault(); join(); });
    $("rejoin").addEventListener("click", join);
    $("stop").addEventListener("click", stop);
    $("reconnect").addEventListener("click", reconnect);
    $("pause-heartbeat").addEventListener("change", (e) => {
      log(e.target.checked ? "heartbeats paused (simulated drop)" : "heartbeats resumed");
      if (e.target.checked) dropped(); // the countdown starts now, not at the next heartbeat
      else heartbeat();
    });
    $("identity-note").textContent = pinnedUser
      ? "?user=" + pinnedUser + " (kept in localStorage: survives closing the tab)"
      : "this tab (kept in sessionStorage: a reload reconnects, another tab is another user)";

    const saved = load();
    $("user-id").value = pinnedUser || (saved && saved.userId) || randomUser();
    if (saved && saved.ticket && (!pinnedUser || saved.userId === pinnedUser)) {
      state.userId = saved.userId;
      state.ticket = saved.ticket;
      log("found a saved ticket for " + saved.userId);
      reconnect();
    } else {
      showButtons({});
    }
  }
  init();
})();
