/*
 * carqueue.js: the browser client of the carqueue contract (/start /poll /heartbeat /reconnect
 * /stop, docs/API.md). One ES module, no build step, no dependencies. The local harness serves it
 * at /carqueue.js; integrators copy local/web/carqueue.js into their site as it is.
 *
 *   import { join, saved } from "/carqueue.js";
 *
 *   const q = join(userId, () => TCGSDK.getClientSession(), { heartbeats: "manual" });
 *   q.on("queued",  (e) => show(`#${e.position} of ${e.length}`, e.eta));
 *   q.on("ready",   (e) => TCGSDK.start(e.serverSession));   // once per ServerSession
 *   // in TCGSDK.init({ onConnectSuccess }): q.startHeartbeats();
 *   q.on("expired", (e) => offerJoinAgain(e.reason));
 *   q.on("error",   (e) => e.fatal ? showError(e.msg) : showRetrying(e.retryInMs));
 *   // later: await q.stop();
 *
 * join(userId, clientSession, options?) → Session, already under way.
 *   userId         the CAR UserId, 1–64 of [A-Za-z0-9_.@:-]; the same for the whole visit.
 *   clientSession  a string, or a function returning one or a Promise of one (e.g.
 *                  () => TCGSDK.getClientSession()). Called for every /start and /reconnect, and
 *                  before each /poll, which carries it only when it changed (the newest wins).
 *   If the storage holds a ticket for this userId (a reload), join re-attaches with /reconnect
 *   instead of /start; a ticket the server no longer takes (401) falls back to /start.
 *
 * options (all optional)
 *   base           URL the routes hang off: base + "start", … (default: the directory this file
 *                  was loaded from, so the harness's copy talks to the harness)
 *   urls           { start, poll, heartbeat, reconnect, stop }: one URL per route, for a
 *                  deployment with one function URL per route; a missing one falls back to base
 *   fields         object merged into every request (QueueId, ProjectId, ApplicationId, …)
 *   grant          Grant, sent with /start (priority lanes, REQUIRE_GRANT)
 *   storage        where { UserId, Ticket } is kept so a reload reconnects: sessionStorage (default:
 *                  one identity per tab), localStorage, or any { getItem, setItem, removeItem };
 *                  null keeps it in memory only
 *   storageKey     default "carqueue"
 *   heartbeats     "auto" (default): heartbeats start at Ready, as the contract says;
 *                  "manual": they start at q.startHeartbeats() (call it on onConnectSuccess, so the
 *                  first heartbeat means "the stream started"; a client that never connects is
 *                  reaped after READY_TIMEOUT). Until then the session is polled at NextHeartbeatMs.
 *   timeoutMs      one request's time limit, default 35000 (an admission inside /start or /poll may
 *                  take the function's 30 s)
 *   maxBackoffMs   longest wait between retries, default 30000
 *   fetch          the fetch function (default: the global one)
 *
 * saved(options?) → { userId, ticket } | null: the identity a reload would reconnect with
 *                   (options: storage, storageKey as for join).
 * forget(options?)  removes it.
 *
 * Session
 *   on(type, fn) → off function; off(type, fn). type "*" receives every event.
 *   userId, ticket, status ("Joining", "Queued", "Admitting", "Ready", "Active", "Expired",
 *     "Stopped", "Error"), serverSession, last (the last event), closed (nothing more is sent),
 *   next                  { route, at }: the request waiting for its time (at: ms since the epoch)
 *   reconnectWindowMs     how long the slot is kept after the last heartbeat (ReconnectWindowMs of
 *                         Ready/Active; undefined from a server that does not send it)
 *   reconnectDeadline     ms since the epoch until which /reconnect gets the same slot back: the
 *                         send time of the last good Ready/Active answer + the window (guessed as
 *                         4 × NextHeartbeatMs when the server does not send it; see
 *                         reconnectWindowExact)
 *   startHeartbeats()     heartbeats from now on ("manual"; harmless in "auto")
 *   reconnect()           re-attach with a new ClientSession (/reconnect): after TCGSDK re-init
 *   refresh()             send the pending poll or heartbeat now (a retry too)
 *   stop() → Promise<{ confirmed }>   /stop (keepalive: may run while the page unloads); forgets
 *                         the ticket. Retries network errors a few times; confirmed is false when
 *                         the server never answered (it lets the user time out then).
 *   detach()              stop every request but keep the ticket (a later join reconnects)
 *
 * Events, each one plain object with type, status, route (which answer) and data (its Data):
 *   queued     position, length, eta (seconds; undefined while unknown), nextPollMs, lane,
 *              opensInSeconds (before a scheduled opening: then no position)
 *   admitting  nextPollMs, lane
 *   ready      serverSession, nextHeartbeatMs, reconnectWindowMs, lane; once per ServerSession (a
 *              reconnect brings a new one: call TCGSDK.start again)
 *   active     every good heartbeat: heartbeats (count), first, nextHeartbeatMs,
 *              reconnectWindowMs, remainingSeconds, warning (session limits), lane
 *   (lane: the answer's Lane, undefined where the answer names none)
 *   expired    reason: the answer's Reason (stopped, idle, heartbeat_timeout, never_started,
 *              car_refused, kicked, time_limit, …), "ticket_refused" on a 401; the ticket is
 *              forgotten and nothing more is sent: join again
 *   stopped    confirmed
 *   notice     the operator's notice changed (notice "" when cleared)
 *   error      route, http (0: network or timeout), code, msg, requestId, fatal, retryInMs.
 *              fatal false: retrying after retryInMs (429, 5xx, network), the place is kept;
 *              fatal true: nothing more is sent (a 4xx: a bug or a misconfiguration)
 *   Status events also carry notice (string or undefined) and paused (admission paused).
 *
 * frames(options?) → Framer: the page's side of the data channel's framing (FRAMING.md in
 * shared/datachannel, version 1), for messages larger than one datagram (or of both kinds) on a
 * channel opened with protocol "binary":
 *
 *   const f = frames({ onMessage: (m) => show(m) });  // m: a string (text) or a Uint8Array
 *   const r = await TCGSDK.createCustomDataChannel({ destPort, protocol: "binary", onMessage: f.receive });
 *   if (r.code === 0) f.connect(r.sendMessage);
 *   f.send("text of any length"); f.send(bytes);     // → the number of datagrams sent
 *
 *   options   onMessage; payload (bytes per datagram, 1200); maxMessage (1 MiB); maxPartial
 *             (messages being put together at once, 16); maxPendingBytes (4 MiB); timeoutMs (10000)
 *   f.receive(datagram)  give it every datagram (an ArrayBuffer or a view; a string, from a text
 *             channel, is passed on as it is); complete messages go to onMessage
 *   f.encode(data) → the datagrams of one message (Uint8Arrays), without sending
 *   f.reset()  forget the messages half received (call it for a new channel: a reconnect)
 *   f.stats    { messages, fragments, malformed, duplicates, tooLarge, overflow, expired, dropped }
 *   A plain datagram (not starting 0xFF 0xDC) is one whole binary message; text always travels
 *   framed, so the application, configured for binary, tells text from bytes.
 *
 * Pace: the next poll goes out after the answer's NextPollMs, the next heartbeat after
 * NextHeartbeatMs. Failures (network, timeout, 429, 5xx) are retried after Retry-After when the
 * server sends it (plus up to 20% jitter), else after an exponential backoff with jitter
 * (1 s, 2 s, 4 s … up to maxBackoffMs), never longer than the server's own pace while the user
 * holds a place or slot, so a retry comes in time to keep it.
 * Hidden tabs keep the server's pace (never slower: QUEUE_IDLE_TIMEOUT would drop the user; timers
 * of hidden tabs are throttled by the browser anyway) but skip the extra fast polls: a tab that
 * becomes visible polls at once (a second after its last poll at the earliest), and a browser that
 * comes back online retries at once, only while visible.
 * Requests are sent as text/plain (the contract accepts any Content-Type), so a page of another
 * origin needs no CORS preflight.
 */

const ROUTES = ["start", "poll", "heartbeat", "reconnect", "stop"];
const moduleBase = new URL(".", import.meta.url).href;
const memory = new Map(); // storage: null

function storeOf(options) {
  if (options && options.storage === null) {
    return {
      getItem: (k) => (memory.has(k) ? memory.get(k) : null),
      setItem: (k, v) => void memory.set(k, String(v)),
      removeItem: (k) => void memory.delete(k),
    };
  }
  if (options && options.storage) return options.storage;
  try {
    if (globalThis.sessionStorage) return globalThis.sessionStorage;
  } catch {
    // storage blocked (a sandboxed frame)
  }
  return storeOf({ storage: null });
}

function keyOf(options) {
  return (options && options.storageKey) || "carqueue";
}

/** saved returns the identity a reload would reconnect with, or null. */
export function saved(options) {
  try {
    const v = JSON.parse(storeOf(options).getItem(keyOf(options)) || "null");
    if (v && typeof v.UserId === "string" && typeof v.Ticket === "string" && v.Ticket) {
      return { userId: v.UserId, ticket: v.Ticket };
    }
  } catch {
    // unreadable: as if nothing were kept
  }
  return null;
}

/** forget removes the kept identity. */
export function forget(options) {
  try {
    storeOf(options).removeItem(keyOf(options));
  } catch {
    // nothing to do
  }
}

/** join puts userId in line (or back on its slot after a reload) and returns its Session. */
export function join(userId, clientSession, options) {
  return new Session(userId, clientSession, options || {});
}

function randomId() {
  const b = new Uint8Array(8);
  crypto.getRandomValues(b);
  return "cq-" + Array.from(b, (x) => x.toString(16).padStart(2, "0")).join("");
}

// retryAfterMs reads Retry-After (seconds or an HTTP date); 0 when absent or unreadable.
function retryAfterMs(v) {
  if (!v) return 0;
  if (/^\s*\d+\s*$/.test(v)) return Number(v) * 1000;
  const at = Date.parse(v);
  return Number.isNaN(at) ? 0 : Math.max(0, at - Date.now());
}

class Session {
  constructor(userId, clientSession, options) {
    this.userId = String(userId);
    this.ticket = "";
    this.status = "Joining";
    this.serverSession = "";
    this.reconnectWindowMs = undefined;
    this.reconnectWindowExact = false;
    this.reconnectDeadline = 0;
    this.lastContactAt = 0;
    this.last = null;

    this._cs = clientSession;
    this._sentCS = "";
    this._opt = options;
    this._store = storeOf(options);
    this._key = keyOf(options);
    this._fetch = options.fetch || globalThis.fetch.bind(globalThis);
    this._manual = options.heartbeats === "manual";
    this._hbStarted = false;
    this._heartbeats = 0;
    this._listeners = new Map();
    this._gen = 0; // bumps whenever the flow is redirected (reconnect, stop, detach): late answers are dropped
    this._timer = 0;
    this._pending = ""; // route of the scheduled request
    this._dueAt = 0;
    this._inflight = null; // AbortController of the request on its way
    this._attempt = 0; // failures in a row
    this._pace = 0; // the server's current interval (NextPollMs / NextHeartbeatMs)
    this._lastSentAt = 0;
    this._notice = undefined;
    this._done = false;

    this._onVisible = () => {
      if (document.visibilityState !== "visible" || this._inflight || this._pending !== "poll") return;
      if (this.status !== "Queued" && this.status !== "Admitting") return;
      // Back in view: a poll now for a fresh place (a second after the last one at the earliest,
      // so flipping tabs is no burst), unless the next one is due about as soon anyway.
      const at = Math.max(Date.now(), this._lastSentAt + 1000);
      if (at < this._dueAt - 250) this._schedule("poll", at - Date.now());
    };
    this._onOnline = () => {
      if (this._attempt > 0 && !this._hidden()) this.refresh();
    };
    if (typeof document !== "undefined") document.addEventListener("visibilitychange", this._onVisible);
    if (typeof window !== "undefined") window.addEventListener("online", this._onOnline);

    const kept = saved(options);
    if (kept && kept.userId === this.userId) {
      this.ticket = kept.ticket;
      this._schedule("reconnect", 0);
    } else {
      this._schedule("start", 0);
    }
  }

  // ---- public ----------------------------------------------------------------------------------

  on(type, fn) {
    if (!this._listeners.has(type)) this._listeners.set(type, new Set());
    this._listeners.get(type).add(fn);
    return () => this.off(type, fn);
  }

  off(type, fn) {
    const set = this._listeners.get(type);
    if (set) set.delete(fn);
  }

  startHeartbeats() {
    if (this._done) return;
    this._hbStarted = true;
    if (this.status === "Ready" && !this._inflight) this._schedule("heartbeat", 0);
    // otherwise: the answer on its way decides (a Ready answer now heartbeats at once)
  }

  reconnect() {
    if (this._done) return;
    this._redirect();
    this._hbStarted = false;
    this._setStatus("Joining");
    this._schedule(this.ticket ? "reconnect" : "start", 0);
  }

  refresh() {
    if (this._done || this._inflight || !this._pending) return;
    this._schedule(this._pending, 0);
  }

  detach() {
    this._redirect();
    this._finish();
  }

  async stop() {
    if (this._done && this.status === "Stopped") return { confirmed: false };
    this._redirect();
    this._finish();
    const ticket = this.ticket;
    this._forget();
    let confirmed = false;
    if (ticket) {
      for (let attempt = 0; attempt < 3 && !confirmed; attempt++) {
        if (attempt > 0) await new Promise((r) => setTimeout(r, 500 * attempt));
        const res = await this._call("stop", { UserId: this.userId, Ticket: ticket });
        confirmed = res.ok || res.http === 401; // 401: the ticket is revoked, so the user left already
        if (!res.retryable) break;
      }
    }
    this._setStatus("Stopped");
    this._emit("stopped", { status: "Stopped", route: "stop", confirmed });
    return { confirmed };
  }

  // ---- the loop --------------------------------------------------------------------------------

  /** next: the request waiting for its time, { route, at } (at: ms since the epoch), or null. */
  get next() {
    return this._pending && !this._done ? { route: this._pending, at: this._dueAt } : null;
  }

  /** closed: nothing more is sent (expired, stopped, a fatal error, or detached). */
  get closed() {
    return this._done;
  }

  _hidden() {
    return typeof document !== "undefined" && document.visibilityState === "hidden";
  }

  _schedule(route, ms) {
    clearTimeout(this._timer);
    this._pending = route;
    this._dueAt = Date.now() + ms;
    const gen = this._gen;
    this._timer = setTimeout(() => {
      if (gen === this._gen && !this._done) this._run(route);
    }, Math.max(0, ms));
  }

  _redirect() {
    this._gen++;
    clearTimeout(this._timer);
    this._timer = 0;
    this._pending = "";
    if (this._inflight) this._inflight.abort();
    this._inflight = null;
  }

  _finish() {
    this._done = true;
    if (typeof document !== "undefined") document.removeEventListener("visibilitychange", this._onVisible);
    if (typeof window !== "undefined") window.removeEventListener("online", this._onOnline);
  }

  async _clientSession() {
    const v = typeof this._cs === "function" ? await this._cs() : this._cs;
    if (typeof v !== "string" || v === "") throw new Error("no ClientSession yet");
    return v;
  }

  async _run(route) {
    const gen = this._gen;
    this._pending = "";
    const body = { UserId: this.userId };
    // /start carries the ticket too when there is one: for a UserId the queue already knows,
    // only its current ticket (or a grant) lets /start change anything (API.md, Identity).
    if (route !== "start" || this.ticket) body.Ticket = this.ticket;
    if (route === "start" && this._opt.grant) body.Grant = this._opt.grant;
    if (route === "start" || route === "reconnect") {
      try {
        body.ClientSession = await this._clientSession();
      } catch (err) {
        if (gen !== this._gen) return;
        this._retry(route, { http: 0, msg: "ClientSession: " + (err && err.message ? err.message : err), retryable: true });
        return;
      }
      if (gen !== this._gen) return;
    } else if (route === "poll" && typeof this._cs === "function") {
      try {
        const cs = await this._clientSession();
        if (cs !== this._sentCS) body.ClientSession = cs;
      } catch {
        // keep the one the server has
      }
      if (gen !== this._gen) return;
    }
    const res = await this._call(route, body);
    if (gen !== this._gen || this._done) return;
    if (res.ok && body.ClientSession) this._sentCS = body.ClientSession;
    this._answer(route, res);
  }

  // _call POSTs one request and reads the envelope. It never throws.
  async _call(route, payload) {
    const requestId = randomId();
    const body = JSON.stringify(Object.assign({}, this._opt.fields || {}, payload, { RequestId: requestId }));
    const urls = this._opt.urls || {};
    const url = urls[route] || new URL(route, this._opt.base || moduleBase).href;
    const ctrl = new AbortController();
    if (route !== "stop") this._inflight = ctrl;
    const timeout = setTimeout(() => ctrl.abort(), this._opt.timeoutMs || 35000);
    const sentAt = Date.now();
    this._lastSentAt = sentAt;
    const res = { route, requestId, sentAt, http: 0, code: 0, msg: "", data: null, ok: false, retryable: true, retryAfterMs: 0 };
    try {
      const r = await this._fetch(url, {
        method: "POST",
        headers: { "Content-Type": "text/plain;charset=UTF-8" },
        body,
        signal: ctrl.signal,
        cache: "no-store",
        credentials: "omit",
        keepalive: route === "stop",
      });
      res.http = r.status;
      res.retryAfterMs = retryAfterMs(r.headers.get("Retry-After"));
      let env = null;
      try {
        env = await r.json();
      } catch {
        // a platform error page, not our envelope
      }
      if (env && typeof env === "object") {
        res.code = Number(env.Code) || 0;
        res.msg = typeof env.Msg === "string" ? env.Msg : "";
        res.data = env.Data && typeof env.Data === "object" ? env.Data : null;
        if (typeof env.RequestId === "string" && env.RequestId) res.requestId = env.RequestId;
      }
      res.ok = r.status === 200 && !!env && res.code === 0 && !!res.data;
      if (!res.msg) res.msg = res.ok ? "OK" : "HTTP " + r.status + (env ? "" : " (no carqueue answer)");
      // 408/425/429 and 5xx are passing trouble; a 200 that is not an envelope is a platform's.
      res.retryable = !res.ok && (r.status === 408 || r.status === 425 || r.status === 429 || r.status >= 500 || r.status === 200);
    } catch (err) {
      res.msg = ctrl.signal.aborted ? "timed out" : "network error: " + (err && err.message ? err.message : err);
    } finally {
      clearTimeout(timeout);
      if (this._inflight === ctrl) this._inflight = null;
    }
    return res;
  }

  _answer(route, res) {
    if (res.ok) {
      this._attempt = 0;
      if (typeof res.data.Ticket === "string" && res.data.Ticket) {
        this.ticket = res.data.Ticket;
        this._save();
      } else if (route === "start" && !this.ticket) {
        // The user is in line or holding under another ticket (another tab, another device):
        // the server told its place but changed nothing, and nothing can be done from here.
        this._fatal(route, res, "this user is already in line or playing elsewhere (no ticket issued)");
        return;
      }
      this._status(route, res);
      return;
    }
    if (res.http === 401) {
      if (route === "reconnect") { // a ticket of an earlier join: join afresh
        this._forget();
        this.ticket = "";
        this._schedule("start", 0);
        return;
      }
      if (route === "start") {
        this._fatal(route, res, res.msg);
        return;
      }
      this._expire(route, "ticket_refused", { http: 401, code: res.code, msg: res.msg });
      return;
    }
    if (res.http === 503 && res.code === 5031) { // CAR refused for good: the user left the line
      this._expire(route, "car_refused", { http: 503, code: 5031, msg: res.msg });
      return;
    }
    if (res.retryable) {
      this._retry(route, res);
      return;
    }
    this._fatal(route, res, res.msg);
  }

  _retry(route, res) {
    let wait;
    if (res.retryAfterMs > 0) {
      wait = res.retryAfterMs * (1 + 0.2 * Math.random());
    } else {
      let cap = this._opt.maxBackoffMs || 30000;
      if (this._pace > 0 && route !== "start") cap = Math.min(cap, this._pace); // in time to keep the place
      const base = Math.min(cap, 1000 * 2 ** Math.min(this._attempt, 16));
      wait = base / 2 + (Math.random() * base) / 2;
    }
    this._attempt++;
    wait = Math.round(wait);
    this._schedule(route, wait);
    this._emit("error", {
      status: this.status, route, http: res.http, code: res.code, msg: res.msg, requestId: res.requestId,
      fatal: false, retryInMs: wait, attempt: this._attempt,
    });
  }

  _fatal(route, res, msg) {
    this._redirect();
    this._finish();
    this._setStatus("Error");
    this._emit("error", {
      status: "Error", route, http: res.http, code: res.code, msg, requestId: res.requestId, fatal: true,
    });
  }

  _expire(route, reason, extra) {
    this._redirect();
    this._finish();
    this._forget();
    this.serverSession = "";
    this._setStatus("Expired");
    this._emit("expired", Object.assign({ status: "Expired", route, reason }, extra || {}));
  }

  _status(route, res) {
    const d = res.data;
    const common = { route, data: d, notice: typeof d.Notice === "string" ? d.Notice : undefined, paused: d.Paused === true };
    if ((d.Notice || "") !== (this._notice || "") && (d.Notice !== undefined || this._notice !== undefined)) {
      this._notice = d.Notice;
      this._emit("notice", { status: this.status, route, notice: d.Notice || "" });
    }
    switch (d.Status) {
      case "Queued":
      case "Admitting": {
        this.serverSession = "";
        this._pace = d.NextPollMs > 0 ? d.NextPollMs : 2000;
        this._setStatus(d.Status);
        this._schedule("poll", this._pace);
        if (d.Status === "Queued") {
          this._emit("queued", Object.assign(common, {
            status: "Queued", position: d.Position, length: d.QueueLength, eta: d.EtaSeconds,
            nextPollMs: this._pace, lane: d.Lane, opensInSeconds: d.OpensInSeconds,
          }));
        } else {
          this._emit("admitting", Object.assign(common, { status: "Admitting", nextPollMs: this._pace, lane: d.Lane }));
        }
        return;
      }
      case "Ready": {
        this._learnWindow(d, res.sentAt);
        const fresh = !!d.ServerSession && d.ServerSession !== this.serverSession;
        if (fresh) {
          this.serverSession = d.ServerSession;
          this._hbStarted = false;
          this._heartbeats = 0;
        }
        const playing = this.status === "Active" && !fresh;
        if (!playing) this._setStatus("Ready");
        // The first heartbeat goes out at once: it tells the server the client started.
        if (!this._manual || this._hbStarted) this._schedule("heartbeat", playing ? this._pace : 0);
        else this._schedule("poll", this._pace); // waiting for startHeartbeats: notice an expiry meanwhile
        if (fresh) {
          this._emit("ready", Object.assign(common, {
            status: "Ready", serverSession: d.ServerSession, nextHeartbeatMs: this._pace,
            reconnectWindowMs: this.reconnectWindowMs, lane: d.Lane,
          }));
        }
        return;
      }
      case "Active": {
        this._learnWindow(d, res.sentAt);
        this._heartbeats++;
        this._setStatus("Active");
        this._schedule("heartbeat", this._pace);
        this._emit("active", Object.assign(common, {
          status: "Active", heartbeats: this._heartbeats, first: this._heartbeats === 1,
          nextHeartbeatMs: this._pace, reconnectWindowMs: this.reconnectWindowMs,
          remainingSeconds: d.RemainingSeconds, warning: d.Warning, lane: d.Lane,
        }));
        return;
      }
      case "Expired":
        this._expire(route, d.Reason || "", common);
        return;
      default: // a status this client does not know: keep asking at a calm pace
        this._retry(route === "heartbeat" ? "heartbeat" : "poll",
          { http: 200, code: 0, msg: "unexpected Status " + d.Status, requestId: res.requestId, retryAfterMs: 2000 });
    }
  }

  _learnWindow(d, sentAt) {
    this._pace = d.NextHeartbeatMs > 0 ? d.NextHeartbeatMs : 5000;
    this.lastContactAt = sentAt;
    if (d.ReconnectWindowMs > 0) {
      this.reconnectWindowMs = d.ReconnectWindowMs;
      this.reconnectWindowExact = true;
    } else {
      this.reconnectWindowMs = undefined;
      this.reconnectWindowExact = false;
    }
    this.reconnectDeadline = sentAt + (this.reconnectWindowMs || 4 * this._pace);
  }

  _setStatus(s) {
    this.status = s;
  }

  _save() {
    try {
      this._store.setItem(this._key, JSON.stringify({ UserId: this.userId, Ticket: this.ticket }));
    } catch {
      // full or blocked: this visit works, a reload starts over
    }
  }

  _forget() {
    try {
      const kept = saved(this._opt);
      if (!kept || kept.userId === this.userId) this._store.removeItem(this._key);
    } catch {
      // nothing to do
    }
  }

  _emit(type, e) {
    e.type = type;
    if (e.status === undefined) e.status = this.status;
    this.last = e;
    for (const t of [type, "*"]) {
      const set = this._listeners.get(t);
      if (!set) continue;
      for (const fn of [...set]) {
        try {
          fn(e);
        } catch (err) {
          console.error("carqueue: a listener of " + type + " failed:", err);
        }
      }
    }
  }
}

// ---- data channel framing (shared/datachannel/FRAMING.md, version 1) ---------------------------

const MAGIC0 = 0xff, MAGIC1 = 0xdc, FRAME_VERSION = 1, HEADER = 16;

function isFramed(b) {
  return b.length >= 2 && b[0] === MAGIC0 && b[1] === MAGIC1;
}

function bytesOf(data) {
  if (data instanceof Uint8Array) return data;
  if (data instanceof ArrayBuffer) return new Uint8Array(data);
  if (ArrayBuffer.isView(data)) return new Uint8Array(data.buffer, data.byteOffset, data.byteLength);
  return null;
}

/** frames returns a Framer: see the top of this file. */
export function frames(options) {
  const o = options || {};
  const P = o.payload || 1200;
  const maxMessage = o.maxMessage || 1 << 20;
  const maxPartial = o.maxPartial || 16;
  const maxPending = o.maxPendingBytes || 4 * maxMessage;
  const timeoutMs = o.timeoutMs || 10000;
  const decoder = new TextDecoder();
  const encoder = new TextEncoder();
  let nextId = typeof o.firstId === "number" ? (o.firstId - 1) >>> 0 : crypto.getRandomValues(new Uint32Array(1))[0];
  let send = null;
  let partials = new Map(); // id → { binary, total, count, size, buf, have, got, started }
  let dead = new Map(); // id → when it was dropped: its late fragments are discarded
  let pending = 0;
  const stats = { messages: 0, fragments: 0, malformed: 0, duplicates: 0, tooLarge: 0, overflow: 0, expired: 0, dropped: 0 };

  function encode(data) {
    const text = typeof data === "string";
    const bytes = text ? encoder.encode(data) : bytesOf(data);
    if (!bytes) throw new TypeError("frames: send a string, an ArrayBuffer or a typed array");
    if (!text && bytes.length <= P && !isFramed(bytes)) return [bytes]; // plain: the channel's kind
    const total = bytes.length;
    const count = Math.max(1, Math.ceil(total / P));
    if (count > 65535 || total > 0xffffffff) throw new RangeError("frames: " + total + " bytes need more than 65,535 fragments");
    const size = Math.ceil(total / count);
    nextId = (nextId + 1) >>> 0;
    const out = [];
    for (let i = 0; i < count; i++) {
      const part = bytes.subarray(i * size, Math.min((i + 1) * size, total));
      const d = new Uint8Array(HEADER + part.length);
      const v = new DataView(d.buffer);
      d[0] = MAGIC0; d[1] = MAGIC1; d[2] = FRAME_VERSION; d[3] = text ? 0 : 1;
      v.setUint32(4, nextId); v.setUint32(8, total); v.setUint16(12, i); v.setUint16(14, count);
      d.set(part, HEADER);
      out.push(d);
    }
    return out;
  }

  function deliver(bytes, binary) {
    stats.messages++;
    if (typeof o.onMessage !== "function") return;
    try {
      o.onMessage(binary ? bytes : decoder.decode(bytes));
    } catch (err) {
      console.error("carqueue frames: onMessage failed:", err);
    }
  }

  function kill(id, now, reason) {
    stats[reason]++;
    stats.dropped++;
    dead.set(id, now);
  }

  function expire(now) {
    for (const [id, p] of partials) {
      if (now - p.started >= timeoutMs) {
        partials.delete(id);
        pending -= p.total;
        kill(id, now, "expired");
      }
    }
    for (const [id, at] of dead) if (now - at >= timeoutMs) dead.delete(id);
  }

  function receive(data) {
    if (typeof data === "string") { // a text channel: nothing framed can arrive
      deliver(encoder.encode(data), false);
      return;
    }
    const b = bytesOf(data);
    if (!b) return;
    stats.fragments++;
    const now = Date.now();
    expire(now);
    if (!isFramed(b)) {
      deliver(b.slice(), true);
      return;
    }
    if (b.length < HEADER || b[2] !== FRAME_VERSION) { stats.malformed++; return; }
    const v = new DataView(b.buffer, b.byteOffset, b.byteLength);
    const binary = (b[3] & 1) === 1;
    const id = v.getUint32(4), total = v.getUint32(8), index = v.getUint16(12), count = v.getUint16(14);
    const size = total === 0 ? 0 : Math.ceil(total / count);
    const payload = b.subarray(HEADER);
    const valid = count >= 1 && index < count &&
      (total === 0 ? count === 1 : (count - 1) * size < total) &&
      payload.length === Math.min(size, total - index * size);
    if (!valid) { stats.malformed++; return; }
    if (count === 1) {
      if (total > maxMessage) { stats.tooLarge++; stats.dropped++; return; }
      deliver(payload.slice(), binary);
      return;
    }
    let p = partials.get(id);
    if (!p) {
      if (dead.has(id)) { stats.dropped++; return; }
      if (total > maxMessage) { kill(id, now, "tooLarge"); return; }
      if (partials.size >= maxPartial || pending + total > maxPending) { kill(id, now, "overflow"); return; }
      p = { binary, total, count, size, buf: new Uint8Array(total), have: new Uint8Array(count), got: 0, started: now };
      partials.set(id, p);
      pending += total;
    } else if (p.binary !== binary || p.total !== total || p.count !== count) {
      stats.malformed++;
      return;
    }
    if (p.have[index]) { stats.duplicates++; return; }
    p.have[index] = 1;
    p.buf.set(payload, index * size);
    if (++p.got < count) return;
    partials.delete(id);
    pending -= total;
    deliver(p.buf, binary);
  }

  return {
    receive,
    encode,
    stats,
    connect(sendMessage) {
      send = sendMessage;
    },
    send(data) {
      if (typeof send !== "function") throw new Error("frames: connect(sendMessage) first");
      const out = encode(data);
      for (const d of out) send(d);
      return out.length;
    },
    reset() {
      partials = new Map();
      dead = new Map();
      pending = 0;
    },
  };
}

export { ROUTES };
