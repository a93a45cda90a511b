/*
 * tcgsdk-local.js: a stand-in for Tencent Cloud's TCGSDK (the CAR web SDK), served by carqueue's
 * local harness (`go run ./local`) at /tcgsdk-local.js. A page written for the real SDK runs
 * against the harness and its CAR emulator by swapping one script tag:
 *
 *   <script src=".../tcg-sdk/index.js"></script>
 *   <script src="http://127.0.0.1:8080/tcgsdk-local.js"></script>   <!-- instead, locally -->
 *
 * It talks to the harness it was loaded from (the origin of its own script URL; any page origin
 * may load it). There is no video: a placeholder canvas stands in the `mount` element. The data
 * channel is real: each sendMessage is one UDP datagram from the session's proxy port on
 * 127.0.0.1 to the cloud application's destPort, and the datagrams it sends back arrive at
 * onMessage. The behaviour, codes and wire protocol are described in README.md ("Test your own
 * page and cloud app") and local/relay.
 *
 * Classic script, no build step, no dependencies: it sets window.TCGSDK.
 */
(function () {
  "use strict";

  const VERSION = "tcgsdk-local/1";
  const MAX_DATAGRAM = 65507; // the largest UDP payload: larger messages are dropped, as CAR's proxy must
  const CHANNEL_TIMEOUT_MS = 5000; // createCustomDataChannel answers code 3 after this, as TCGSDK does
  const RECONNECT_TRIES = 10; // automatic reconnection, as TCGSDK's `reconnect` init option (default on)

  const script = document.currentScript; // null when loaded as a module: then the page's origin
  let harness = script && script.src ? new URL(script.src).origin : location.origin;

  // Close codes of the harness's sockets (local/relay): after a connection, onDisconnect codes;
  // before it, a failed start.
  const DISCONNECT_CODE = { 4000: 0, 4001: 1, 4002: 2 }; // destroyed, replaced (kicked), reclaimed
  const WEBRTC_CODE_OF_FAILURE = { 4400: -1, 4403: -1, 4404: 2, 4429: 1, 4503: 100 };

  let opts = {}; // the init params
  let phase = "idle"; // idle | inited | connecting | connected | disconnected | failed | destroyed
  let clientSession = "";
  let serverSession = "";
  let ctl = null; // the session socket
  let conn = null; // { id, proxyPort, userId } once connected
  let generation = 0; // bumped whenever the current socket is abandoned: its events are then ignored
  let reconnectTries = 0;
  let reconnectTimer = 0;
  let statsTimer = 0;
  let redrawTimer = 0;
  let lastRtt = 0;
  let connectedAt = 0;
  const channels = new Map(); // destPort → channel
  const listeners = new Map(); // TCGSDK.on(type) handlers
  const warned = new Set();

  function wsURL(path, params) {
    const u = new URL(path, harness);
    u.protocol = u.protocol === "https:" ? "wss:" : "ws:";
    u.search = new URLSearchParams(params).toString();
    return u.toString();
  }

  function warnOnce(what) {
    if (!warned.has(what)) {
      warned.add(what);
      console.warn("tcgsdk-local: " + what);
    }
  }

  // fire calls the init callback and the TCGSDK.on handlers, later (as the SDK does), each in a try.
  function fire(type, callback, payload) {
    const fns = [];
    if (typeof opts[callback] === "function") fns.push(opts[callback]);
    for (const fn of listeners.get(type) || []) fns.push(fn);
    setTimeout(() => {
      for (const fn of fns) {
        try {
          fn(payload);
        } catch (e) {
          console.error("tcgsdk-local: " + callback + " threw", e);
        }
      }
    }, 0);
  }

  function newClientSession() {
    const b = new Uint8Array(24);
    crypto.getRandomValues(b);
    let s = "";
    for (const x of b) s += String.fromCharCode(x);
    return "tcgsdk-local." + btoa(s).replace(/\+/g, "-").replace(/\//g, "_").replace(/=+$/, "");
  }

  // ---- the session socket -------------------------------------------------------------------

  function connect(auto) {
    const gen = ++generation;
    phase = "connecting";
    draw();
    let ws;
    try {
      ws = new WebSocket(wsURL("/tcgsdk/ws", { ServerSession: serverSession, ClientSession: clientSession }));
    } catch (e) {
      startFailed({ code: 1006, reason: String(e) }, auto);
      return;
    }
    ctl = ws;
    let connected = false;
    ws.onmessage = (ev) => {
      if (gen !== generation || typeof ev.data !== "string") return;
      let msg;
      try {
        msg = JSON.parse(ev.data);
      } catch (e) {
        return;
      }
      if (msg.type === "connected" && !connected) {
        connected = true;
        conn = { id: msg.conn, proxyPort: msg.proxyPort, userId: msg.userId };
        phase = "connected";
        reconnectTries = 0;
        connectedAt = Date.now();
        startStats(gen);
        draw();
        fire("WebrtcStatusChange", "onWebrtcStatusChange", { code: 0, msg: "ok" });
        fire("ConnectSuccess", "onConnectSuccess", {
          code: 0, msg: "", seat_index: 0, role: "Player",
          proxyPort: msg.proxyPort, userId: msg.userId, // the stand-in's own additions
        });
      } else if (msg.type === "pong" && typeof msg.t === "number") {
        lastRtt = Math.max(0, Math.round(performance.now() - msg.t));
        fire("NetworkChange", "onNetworkChange", {
          status: "stats",
          stats: { rtt: lastRtt, fps: 0, bit_rate: 0, packet_lost: 0, packet_received: 0, timestamp: Date.now() },
        });
      }
    };
    ws.onclose = (ev) => {
      if (gen !== generation) return; // abandoned by start() or destroy()
      ctl = null;
      stopStats();
      closeChannels();
      if (!connected) {
        startFailed(ev, auto);
        return;
      }
      conn = null;
      phase = "disconnected";
      draw(ev.reason);
      const code = DISCONNECT_CODE[ev.code];
      if (code !== undefined) {
        fire("Disconnected", "onDisconnect", { code, msg: ev.reason });
        return;
      }
      // The harness stopped, or the network between: reconnect like TCGSDK (the session may still
      // be there, inside the emulator's reconnect window).
      fire("Disconnected", "onDisconnect", {
        code: -1, msg: ev.reason || "connection to the harness lost (WebSocket close " + ev.code + ")",
      });
      if (opts.reconnect !== false) scheduleReconnect();
    };
  }

  function startFailed(ev, auto) {
    if (ev.code >= 4000 && ev.code < 5000) {
      // The harness refused this ServerSession: a new one is needed (init + CreateSession).
      phase = "failed";
      draw(ev.reason);
      const webrtc = WEBRTC_CODE_OF_FAILURE[ev.code];
      fire("WebrtcStatusChange", "onWebrtcStatusChange", { code: webrtc === undefined ? 100 : webrtc, msg: ev.reason });
      fire("ConnectFailed", "onConnectFail", { code: ev.code, msg: ev.reason });
      return;
    }
    if (auto && opts.reconnect !== false) {
      scheduleReconnect();
      return;
    }
    phase = "failed";
    draw("cannot reach the harness");
    fire("ConnectFailed", "onConnectFail", { code: -1, msg: "cannot reach the harness at " + harness + (ev.reason ? ": " + ev.reason : "") });
  }

  function scheduleReconnect() {
    if (reconnectTries >= RECONNECT_TRIES) {
      phase = "failed";
      draw("reconnection failed");
      fire("ConnectFailed", "onConnectFail", { code: -3, msg: "reconnect attempts exceeded: init and CreateSession again" });
      return;
    }
    reconnectTries++;
    phase = "connecting";
    draw("reconnecting " + reconnectTries + "/" + RECONNECT_TRIES);
    fire("ConnectFailed", "onConnectFail", { code: -2, msg: "auto reconnecting (" + reconnectTries + "/" + RECONNECT_TRIES + ")" });
    const gen = generation;
    const wait = Number.isFinite(opts.reconnectInterval) ? opts.reconnectInterval : 6000;
    reconnectTimer = setTimeout(() => {
      if (gen === generation) connect(true);
    }, wait);
  }

  // abandon drops the current socket without callbacks (a new start, or destroy).
  function abandon() {
    generation++;
    clearTimeout(reconnectTimer);
    stopStats();
    if (ctl) {
      try {
        ctl.close(1000, "TCGSDK.destroy");
      } catch (e) { /* closing already */ }
      ctl = null;
    }
    closeChannels();
    conn = null;
  }

  function startStats(gen) {
    stopStats();
    const every = Number.isFinite(opts.statsInterval) ? opts.statsInterval : 5000;
    const ping = () => {
      if (gen === generation && ctl && ctl.readyState === WebSocket.OPEN) {
        ctl.send(JSON.stringify({ type: "ping", t: performance.now() }));
      }
    };
    ping();
    if (every > 0) statsTimer = setInterval(ping, every);
    redrawTimer = setInterval(draw, 1000);
  }

  function stopStats() {
    clearInterval(statsTimer);
    clearInterval(redrawTimer);
    statsTimer = 0;
    redrawTimer = 0;
  }

  // ---- data channels ------------------------------------------------------------------------

  function byteLength(data) {
    if (typeof data === "string") return data.length * 3 <= MAX_DATAGRAM ? data.length : new TextEncoder().encode(data).length;
    if (data instanceof ArrayBuffer) return data.byteLength;
    if (ArrayBuffer.isView(data)) return data.byteLength;
    if (typeof Blob !== "undefined" && data instanceof Blob) return data.size;
    return -1;
  }

  function closeChannels() {
    for (const ch of channels.values()) {
      ch.open = false;
      try {
        ch.ws.close(1000, "connection closed");
      } catch (e) { /* closing already */ }
    }
    channels.clear();
    draw();
  }

  const noop = function () {};

  function createCustomDataChannel(params) {
    const p = params || {};
    const destPort = Number(p.destPort);
    const protocol = p.protocol === "binary" ? "binary" : "text";
    const onMessage = typeof p.onMessage === "function" ? p.onMessage : noop;
    if (phase !== "connected" || !conn) {
      return Promise.resolve({ code: 1, msg: "ack dataChannel does not open, please try again later.", sendMessage: noop });
    }
    if (!Number.isInteger(destPort) || destPort < 1 || destPort > 65535) {
      return Promise.resolve({ code: -1, msg: "destPort must be an integer from 1 to 65535", sendMessage: noop });
    }
    const existing = channels.get(destPort);
    if (existing) {
      return Promise.resolve({ code: 2, msg: "a data channel to port " + destPort + " already exists", sendMessage: existing.send });
    }
    const ws = new WebSocket(wsURL("/tcgsdk/channel", { conn: conn.id, destPort: String(destPort), protocol }));
    ws.binaryType = "arraybuffer";
    const ch = { ws, destPort, protocol, open: false };
    ch.send = function sendMessage(data) {
      if (!ch.open || ws.readyState !== WebSocket.OPEN) return; // as TCGSDK: only on an open channel
      if (typeof data !== "string" && byteLength(data) < 0) data = String(data);
      const n = byteLength(data);
      if (n > MAX_DATAGRAM) {
        console.warn("tcgsdk-local: sendMessage of " + n + " bytes dropped: one message is one UDP datagram, at most " +
          MAX_DATAGRAM + " bytes (split larger messages, ideally below 1,400 bytes)");
        return;
      }
      ws.send(data);
    };
    channels.set(destPort, ch);
    draw();
    return new Promise((resolve) => {
      let settled = false;
      const settle = (answer) => {
        if (settled) return false;
        settled = true;
        clearTimeout(timer);
        resolve(answer);
        return true;
      };
      const forget = () => {
        if (channels.get(destPort) === ch) channels.delete(destPort);
        draw();
      };
      const timer = setTimeout(() => {
        if (settle({ code: 3, msg: "request timeout, please try again later.", sendMessage: noop })) {
          forget();
          ws.close();
        }
      }, CHANNEL_TIMEOUT_MS);
      ws.onopen = () => {
        ch.open = true;
        settle({ code: 0, msg: "", sendMessage: ch.send });
      };
      ws.onmessage = (ev) => {
        try {
          onMessage(ev.data); // a string on a text channel, an ArrayBuffer on a binary one
        } catch (e) {
          console.error("tcgsdk-local: onMessage threw", e);
        }
      };
      ws.onclose = () => {
        ch.open = false;
        forget();
        settle({ code: -1, msg: "failed to create the data channel", sendMessage: noop });
      };
    });
  }

  // ---- the placeholder where the stream would be ---------------------------------------------

  let canvas = null;
  let note = ""; // why the last connection ended or failed, shown on the placeholder

  function mountPlaceholder() {
    if (canvas) canvas.remove();
    canvas = null;
    const el = typeof opts.mount === "string" ? document.getElementById(opts.mount) : opts.mount;
    if (!el || typeof el.appendChild !== "function") {
      if (opts.mount) warnOnce("init: no element with id " + JSON.stringify(opts.mount) + " to mount the placeholder in");
      return;
    }
    canvas = document.createElement("canvas");
    canvas.className = "tcgsdk-local-placeholder";
    canvas.setAttribute("aria-label", "Cloud stream placeholder (tcgsdk-local)");
    canvas.style.display = "block";
    canvas.style.width = "100%";
    canvas.style.height = "100%";
    el.appendChild(canvas);
    if (typeof ResizeObserver === "function") new ResizeObserver(() => draw()).observe(canvas);
    draw();
  }

  function draw(why) {
    if (typeof why === "string") note = why;
    if (!canvas) return;
    const dpr = window.devicePixelRatio || 1;
    const w = Math.max(160, canvas.clientWidth || 640);
    const h = Math.max(90, canvas.clientHeight || 360);
    if (canvas.width !== Math.round(w * dpr) || canvas.height !== Math.round(h * dpr)) {
      canvas.width = Math.round(w * dpr);
      canvas.height = Math.round(h * dpr);
    }
    const g = canvas.getContext("2d");
    if (!g) return;
    g.setTransform(dpr, 0, 0, dpr, 0, 0);
    g.fillStyle = "#14181f";
    g.fillRect(0, 0, w, h);
    g.strokeStyle = "#232a35";
    g.lineWidth = 1;
    for (let x = 0; x < w; x += 32) {
      g.beginPath(); g.moveTo(x + 0.5, 0); g.lineTo(x + 0.5, h); g.stroke();
    }
    for (let y = 0; y < h; y += 32) {
      g.beginPath(); g.moveTo(0, y + 0.5); g.lineTo(w, y + 0.5); g.stroke();
    }
    const colour = { connected: "#3fb950", connecting: "#d29922", failed: "#f85149", disconnected: "#f85149" }[phase] || "#8b949e";
    if (phase === "connected") { // something that moves, as a stream would
      const t = (Date.now() - connectedAt) / 1000;
      g.fillStyle = "#1f6feb";
      g.beginPath();
      g.arc(w / 2 + Math.cos(t) * w / 3, h * 0.75 + Math.sin(t * 1.3) * h / 10, 6, 0, 2 * Math.PI);
      g.fill();
    }
    g.textAlign = "center";
    g.fillStyle = "#e6edf3";
    g.font = "600 " + Math.round(Math.min(22, w / 22)) + "px system-ui, sans-serif";
    g.fillText("Cloud stream placeholder", w / 2, h / 2 - 34);
    g.font = Math.round(Math.min(14, w / 34)) + "px system-ui, sans-serif";
    g.fillStyle = "#8b949e";
    g.fillText("tcgsdk-local: no video; data channels relayed by " + harness, w / 2, h / 2 - 12);
    g.fillStyle = colour;
    let status = phase;
    if (phase === "connected" && conn) {
      const s = Math.floor((Date.now() - connectedAt) / 1000);
      status = "connected as " + conn.userId + ", proxy port " + conn.proxyPort + ", " +
        channels.size + " channel" + (channels.size === 1 ? "" : "s") + ", " +
        Math.floor(s / 60) + ":" + String(s % 60).padStart(2, "0") + (lastRtt ? ", rtt " + lastRtt + " ms" : "");
    } else if (note && phase !== "inited" && phase !== "idle") {
      status += ": " + note;
    }
    g.fillText(status.length > 110 ? status.slice(0, 107) + "…" : status, w / 2, h / 2 + 14);
  }

  // ---- the API ------------------------------------------------------------------------------

  const api = {
    init(params) {
      if (phase === "connecting" || phase === "connected") {
        const p = params || {};
        if (typeof p.onInitSuccess === "function") {
          const cb = p.onInitSuccess;
          setTimeout(() => cb({ code: -2, msg: "peerConnection is not disconnected: call TCGSDK.destroy() first", description: "" }), 0);
        }
        return;
      }
      opts = Object.assign({}, params || {});
      if (typeof opts.harness === "string" && opts.harness) harness = new URL(opts.harness, location.href).origin;
      clientSession = newClientSession();
      serverSession = "";
      phase = "inited";
      note = "";
      reconnectTries = 0;
      mountPlaceholder();
      fire("InitSuccess", "onInitSuccess", { code: 0, msg: "", description: VERSION + " at " + harness });
    },

    getInitOptions() {
      return opts;
    },

    getClientSession() {
      return clientSession;
    },

    start(ss) {
      if (!clientSession) {
        console.error("tcgsdk-local: start() before init() (or after destroy()): init first, then CreateSession with getClientSession()");
        return;
      }
      ss = ss == null ? "" : String(ss);
      if ((phase === "connecting" || phase === "connected") && ss === serverSession) {
        warnOnce("start() again with the same ServerSession while connected: ignored");
        return;
      }
      abandon(); // a start with a new ServerSession replaces the connection, silently
      serverSession = ss;
      reconnectTries = 0;
      note = "";
      connect(false);
    },

    reconnect() {
      if (!serverSession || !clientSession || phase === "connecting" || phase === "connected") return;
      abandon();
      reconnectTries = 0;
      connect(true);
    },

    destroy(params) {
      const p = params || {};
      const notify = phase === "connecting" || phase === "connected";
      abandon();
      clientSession = "";
      serverSession = "";
      phase = "destroyed";
      draw("TCGSDK.destroy()");
      if (notify) {
        fire("Disconnected", "onDisconnect", {
          code: typeof p.code === "number" ? p.code : 0,
          msg: typeof p.message === "string" ? p.message : "closed by TCGSDK.destroy()",
        });
      }
    },

    createCustomDataChannel,

    on(type, handler) {
      if (typeof handler !== "function") return;
      if (!listeners.has(type)) listeners.set(type, []);
      listeners.get(type).push(handler);
    },

    getIsMobileGame() {
      return false;
    },

    // The stand-in's own: what it is connected to, for tests and debugging.
    getLocalInfo() {
      return {
        version: VERSION, harness, phase,
        userId: conn ? conn.userId : "",
        proxyPort: conn ? conn.proxyPort : 0,
        channels: Array.from(channels.values()).filter((c) => c.open).map((c) => c.destPort),
      };
    },
  };

  // Every other TCGSDK method (input, media, resolution…) is a no-op that says so once, so a
  // page written for the real SDK does not stop at a missing function.
  window.TCGSDK = new Proxy(api, {
    get(target, prop, receiver) {
      if (typeof prop !== "string" || prop in target || prop === "then" || !/^[a-z][A-Za-z0-9]*$/.test(prop)) {
        return Reflect.get(target, prop, receiver);
      }
      const stub = function () {
        warnOnce("TCGSDK." + prop + "() is not emulated (no stream locally): ignored");
        return undefined;
      };
      target[prop] = stub;
      return stub;
    },
  });
})();
