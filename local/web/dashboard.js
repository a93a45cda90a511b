// carqueue operator dashboard: polls /stats (Bearer ADMIN_TOKEN) and /emulator/state every 2 s,
// and draws the server's per-minute history (/stats?History=1, kept in Redis for 24 h, so a
// reload loses nothing) on a hand-drawn <canvas> chart. The operator's controls, the holders
// and the distributions of the records are operator.js's.
//
// Many queues: when /stats lists more than one in Queues, a summary table of all of them shows on
// top, and a picker (or a click on a row) selects the queue of the detailed view: its counts
// (/stats?QueueId=), its chart and its project's emulator (/emulator/state?ProjectId=). The
// history is kept per queue, from every queue's row at every sample, so switching shows the
// chosen queue's own past at once and no line mixes two queues. ?queue=ID preselects one (and
// the picker keeps the URL in step, so a reload stays on it). With one queue the page looks as
// it always did.
"use strict";

(function () {
  const $ = (id) => document.getElementById(id);
  const PERIOD_MS = 2000;
  const WINDOW_MS = 10 * 60 * 1000;
  const TOKEN_KEY = "carqueue.dashboard.token";
  const histories = new Map(); // QueueId → samples [{t, queued, holders, admitted, rate}], oldest first
  let queues = [];            // the last /stats's Queues (more than one: the summary shows)
  let selected = new URLSearchParams(location.search).get("queue") || "";
  let timer = 0;
  let refreshes = 0;
  const serverHistory = new Map(); // QueueId → per-minute samples from /stats?History=1
  let historyAt = 0;               // when the selected queue's history was last read
  const HISTORY_EVERY_MS = 15000;
  let spanMin = 60;                // the chart's window, minutes
  const multi = () => queues.length > 1;
  const samplesOf = (id) => histories.get(id) || [];

  function token() { return sessionStorage.getItem(TOKEN_KEY) || ""; }

  function showError(msg) {
    $("dash-error").hidden = !msg;
    $("dash-error").textContent = msg || "";
  }

  // renderCounts shows every numeric field of obj, the known ones first.
  function renderCounts(el, obj, order) {
    const keys = order.filter((k) => k in obj).concat(Object.keys(obj).filter((k) => !order.includes(k)));
    const frag = document.createDocumentFragment();
    for (const k of keys) {
      let v = obj[k];
      if (typeof v === "object" && v !== null && !Array.isArray(v)) {
        frag.append(breakdown(k, v));
        continue;
      }
      if (Array.isArray(v)) v = v.length;
      if (typeof v !== "number") continue;
      if (k.endsWith("Seconds")) v = Math.round(v); // an age: whole seconds read better
      frag.append(count(k, v));
    }
    el.replaceChildren(frag);
  }
  // LABELS names the counts whose field names read wrongly on their own: ReapedByReason also
  // counts users who stopped, while ReapedTotal counts only the reaper's timeouts.
  const LABELS = { ReapedByReason: "Departures by reason", ReapedTotal: "Reaped total (timeouts)", CARTotalAgeSeconds: "CAR Total read (s ago)" };
  function words(label) {
    if (LABELS[label]) return LABELS[label];
    return label.replace(/([a-z])([A-Z])/g, "$1 $2").replace(/([A-Z])([A-Z][a-z])/g, "$1 $2");
  }
  // card is the shell every count shares: a labelled box keyed by its /stats field.
  function card(label, className, body) {
    const d = document.createElement("div");
    d.className = className;
    d.dataset.key = label;
    const l = document.createElement("div");
    l.className = "label";
    l.textContent = words(label);
    d.append(l, body);
    return d;
  }
  // breakdown shows a map of counts (e.g. ReapedByReason) as one card with a line per key.
  function breakdown(label, obj) {
    const ul = document.createElement("ul");
    for (const [k, v] of Object.entries(obj)) {
      const li = document.createElement("li");
      const name = document.createElement("span");
      name.textContent = k.replace(/_/g, " ");
      const n = document.createElement("b");
      n.textContent = String(v);
      li.append(name, n);
      ul.append(li);
    }
    return card(label, "count breakdown", ul);
  }
  function count(label, v) {
    const n = document.createElement("div");
    n.className = "value";
    n.textContent = Number.isInteger(v) ? String(v) : v.toFixed(2);
    return card(label, "count", n);
  }

  async function fetchStats(queueId, history) {
    const q = new URLSearchParams();
    if (queueId) q.set("QueueId", queueId);
    if (history) q.set("History", "1");
    const url = "/stats" + (q.toString() ? "?" + q : "");
    const r = await fetch(url, { method: "GET", headers: { Authorization: "Bearer " + token() } });
    let body = null;
    try { body = await r.json(); } catch { /* not an envelope */ }
    if (r.status === 401) throw Object.assign(new Error("the admin token was refused"), { auth: true });
    if (!r.ok || !body || body.Code !== 0) throw new Error(url + ": " + (body && body.Msg ? body.Msg : "HTTP " + r.status));
    return body.Data;
  }
  async function fetchEmulator(projectId) {
    const r = await fetch(projectId ? "/emulator/state?ProjectId=" + encodeURIComponent(projectId) : "/emulator/state");
    if (r.status === 404) return null; // real CAR: no emulator
    if (!r.ok) throw new Error("/emulator/state: HTTP " + r.status);
    return r.json();
  }

  async function refresh() {
    clearTimeout(timer);
    const gen = ++refreshes; // a newer refresh (a new selection) makes this one's answers stale
    try {
      const all = await fetchStats("");
      queues = Array.isArray(all.Queues) ? all.Queues.filter((x) => x && typeof x.QueueId === "string") : [];
      const now = Date.now();
      let stats = all;
      let project = "";
      if (multi()) {
        if (!queues.some((x) => x.QueueId === selected)) selected = queues[0].QueueId;
        project = queues.find((x) => x.QueueId === selected).ProjectId;
        stats = await fetchStats(selected);
        for (const x of queues) record(x.QueueId, x, now);
      } else {
        selected = all.QueueId || "";
        record(selected, all, now);
      }
      if (now - historyAt >= HISTORY_EVERY_MS || !serverHistory.has(selected)) {
        // A server without History (or whose history read fails) leaves the chart to what
        // this page samples itself (null), rather than an empty chart or no counts at all.
        const h = await fetchStats(multi() ? selected : "", true).catch(() => ({}));
        serverHistory.set(selected, Array.isArray(h.History) ? h.History.map((m) => ({
          t: Date.parse(m.At), queued: m.Queued < 0 ? null : m.Queued, holders: m.Holding < 0 ? null : m.Holding,
          rate: m.Admitted, left: m.Left,
        })) : null);
        historyAt = now;
      }
      const emu = await fetchEmulator(project).catch(() => null);
      if (gen !== refreshes) return; // the newer one renders and schedules
      showError("");
      renderSummary();
      showSelection(project);
      const shown = Object.assign({}, stats);
      delete shown.Queues; // the summary's, not a count of this queue
      renderCounts($("stats-counts"), shown, ["Queued", "Holding", "Capacity", "Free", "Admitting", "Ready", "Active", "Releasing", "AdmittedTotal", "ReapedTotal", "AdmissionsPerMinute", "CARTotal", "CARRunning"]);
      if (emu) {
        renderCounts($("emu-counts"), emu, ["Total", "Idle", "Locked", "Sessions"]);
        renderSlots(emu);
      } else {
        $("emu-counts").textContent = "No emulator: the harness talks to a real CAR.";
      }
      draw();
      $("updated").textContent = new Date().toLocaleTimeString();
      document.dispatchEvent(new CustomEvent("carqueue:stats", { detail: { stats, selected } }));
    } catch (err) {
      if (gen !== refreshes) return;
      showError(String(err.message || err));
      if (err.auth) {
        sessionStorage.removeItem(TOKEN_KEY);
        $("admin-token").focus();
        return; // wait for a new token
      }
    }
    timer = setTimeout(refresh, PERIOD_MS);
  }

  function renderSlots(emu) {
    const frag = document.createDocumentFragment();
    const sessions = new Set(emu.Sessions || []);
    for (const u of new Set([...(emu.Locked || []), ...sessions])) {
      const s = document.createElement("span");
      s.className = "slot " + (sessions.has(u) ? "session" : "locked");
      s.textContent = u + (sessions.has(u) ? " · streaming" : " · locked");
      frag.append(s);
    }
    $("emu-slots").replaceChildren(frag);
  }

  // record adds a sample of one queue's counts to that queue's own history.
  function record(id, stats, now) {
    if (!histories.has(id)) histories.set(id, []);
    const samples = histories.get(id);
    const n = (k) => Number(stats[k]) || 0;
    const holders = "Holding" in stats ? n("Holding") : n("Admitting") + n("Ready") + n("Active") + n("Releasing");
    const admitted = n("AdmittedTotal");
    // Admissions in the last minute, from the counter's growth; the server's own figure when
    // the dashboard has not watched for a minute yet.
    let rate = Number(stats.AdmissionsPerMinute) || 0;
    const old = samples.find((s) => now - s.t <= 60000);
    if (old && now - samples[0].t >= 55000) rate = Math.max(0, admitted - old.admitted) * 60000 / Math.max(1, now - old.t);
    samples.push({ t: now, queued: n("Queued"), holders, admitted, rate });
    while (samples.length && now - samples[0].t > WINDOW_MS) samples.shift();
  }

  function draw() {
    const canvas = $("chart");
    const dpr = window.devicePixelRatio || 1;
    const w = canvas.clientWidth, h = canvas.clientHeight;
    canvas.width = Math.round(w * dpr);
    canvas.height = Math.round(h * dpr);
    const g = canvas.getContext("2d");
    g.scale(dpr, dpr);
    g.clearRect(0, 0, w, h);
    const css = getComputedStyle(document.documentElement);
    const ink = css.getPropertyValue("--muted").trim() || "#667";
    const line = css.getPropertyValue("--line").trim() || "#ddd";
    const pad = { l: 40, r: 12, t: 10, b: 24 };
    const now = Date.now();
    const server = serverHistory.get(selected);
    // The server's per-minute history when read, else what this page sampled itself.
    const samples = server ? server.filter((s) => now - s.t <= spanMin * 60000) : samplesOf(selected);
    const win = server ? spanMin * 60000 : WINDOW_MS;
    // The time axis grows with the data from one minute up to the full window.
    const span = server ? win : Math.min(win, Math.max(60000, samples.length ? now - samples[0].t : 0));
    const max = Math.max(1, ...samples.map((s) => Math.max(s.queued || 0, s.holders || 0, s.rate || 0, s.left || 0)));
    const step = niceCeil(max / 4);
    const top = step * 4;
    const x = (t) => pad.l + (w - pad.l - pad.r) * (1 - (now - t) / span);
    const y = (v) => pad.t + (h - pad.t - pad.b) * (1 - v / top);

    g.font = "12px system-ui, sans-serif";
    g.fillStyle = ink;
    g.strokeStyle = line;
    g.lineWidth = 1;
    for (let i = 0; i <= 4; i++) {
      const v = step * i;
      g.beginPath();
      g.moveTo(pad.l, y(v));
      g.lineTo(w - pad.r, y(v));
      g.stroke();
      g.textAlign = "right";
      g.fillText(String(Math.round(v * 10) / 10), pad.l - 6, y(v) + 4);
    }
    g.textAlign = "center";
    const tick = span <= 120000 ? 15000 : span <= 300000 ? 60000 : span <= 3600000 ? 600000 : 4 * 3600000;
    for (let ago = Math.floor(span / tick) * tick; ago >= 0; ago -= tick) {
      const label = ago === 0 ? "now" : ago < 60000 ? "-" + ago / 1000 + " s" : ago < 3600000 ? "-" + ago / 60000 + " min" : "-" + ago / 3600000 + " h";
      g.fillText(label, x(now - ago), h - 6);
    }
    // Holders first and wider, the queue on top: where the two are equal (a full queue with as
    // many waiting as holding) both stay visible.
    series("holders", "#2f6fed", 5);
    series("rate", "#18a05a", 2);
    series("left", "#b03a5b", 2);
    series("queued", "#e08a00", 2);

    function series(key, color, width) {
      const pts = samples.filter((s) => s[key] != null); // a minute no reaper sampled has no length
      if (pts.length < 1) return;
      g.strokeStyle = color;
      g.lineWidth = width;
      g.beginPath();
      pts.forEach((s, i) => (i ? g.lineTo(x(s.t), y(s[key])) : g.moveTo(x(s.t), y(s[key]))));
      g.stroke();
      const last = pts[pts.length - 1];
      g.fillStyle = color;
      g.beginPath();
      g.arc(x(last.t), y(last[key]), Math.max(3, width / 2 + 2), 0, 2 * Math.PI);
      g.fill();
    }
  }
  // niceCeil rounds v up to 1, 2 or 5 times a power of ten, and at least 1 (counts are whole).
  function niceCeil(v) {
    if (v <= 1) return 1;
    const p = Math.pow(10, Math.floor(Math.log10(v)));
    for (const m of [1, 2, 5, 10]) if (m * p >= v) return m * p;
    return 10 * p;
  }

  // renderSummary fills the all-queues table (shown with more than one queue), one row per queue;
  // a click on a row selects it like the picker does.
  function renderSummary() {
    $("queues-card").hidden = !multi();
    if (!multi()) return;
    const pick = $("queue-pick");
    const ids = queues.map((x) => x.QueueId);
    if (Array.from(pick.options, (o) => o.value).join("\n") !== ids.join("\n")) {
      pick.replaceChildren(...queues.map((x) => new Option(x.QueueId + " (" + x.ProjectId + ")", x.QueueId)));
    }
    pick.value = selected;
    // The rows are built once per set of queues and updated in place, so a row's button keeps
    // the keyboard focus across refreshes.
    const body = $("queues-table").tBodies[0];
    if (Array.from(body.rows, (r) => r.dataset.queue).join("\n") !== ids.join("\n")) {
      body.replaceChildren(...queues.map((x) => {
        const tr = document.createElement("tr");
        tr.dataset.queue = x.QueueId;
        for (const key of ["QueueId", "ProjectId", "Capacity", "Queued", "Holding", "Free", "AdmittedTotal", "AdmissionsPerMinute"]) {
          const td = document.createElement("td");
          td.dataset.key = key;
          if (key !== "QueueId" && key !== "ProjectId") td.className = "num";
          tr.append(td);
        }
        const name = document.createElement("button");
        name.type = "button";
        name.className = "linklike";
        name.textContent = x.QueueId;
        name.title = "Show " + x.QueueId + " below";
        tr.cells[0].append(name);
        return tr;
      }));
    }
    queues.forEach((x, i) => {
      const tr = body.rows[i];
      tr.setAttribute("aria-selected", String(x.QueueId === selected));
      const samples = samplesOf(x.QueueId);
      const rate = samples.length ? samples[samples.length - 1].rate : Number(x.AdmissionsPerMinute) || 0;
      const values = {
        ProjectId: x.ProjectId + (x.ApplicationId ? " / " + x.ApplicationId : ""),
        Capacity: x.CapacityFromCAR ? "CAR's Total: " + x.Capacity : x.Capacity,
        Queued: x.Queued, Holding: x.Holding, Free: x.Free, AdmittedTotal: x.AdmittedTotal,
        AdmissionsPerMinute: Number.isInteger(rate) ? String(rate) : rate.toFixed(1),
      };
      for (const td of Array.from(tr.cells).slice(1)) td.textContent = String(values[td.dataset.key] ?? "–");
      // Users wait while no slot is free: the count to look at.
      tr.querySelector('[data-key="Queued"]').classList.toggle("full-queue", x.Free === 0 && x.Queued > 0);
    });
  }
  // showSelection names the selected queue in the titles of the detailed view.
  function showSelection(project) {
    const on = multi();
    document.body.classList.toggle("multi", on);
    $("token-title").textContent = on ? "Queues at a glance" : "Queue at a glance";
    $("queue-name").textContent = on ? " " + selected : "";
    $("stats-route").textContent = on ? "/stats?QueueId=" + selected : "/stats";
    $("emu-project").textContent = on ? ", project " + project : "";
    $("emu-route").textContent = on ? "/emulator/state?ProjectId=" + project : "/emulator/state";
    $("chart-queue").textContent = on ? " of " + selected : "";
  }
  function select(id) {
    if (!id || id === selected) return;
    selected = id;
    const u = new URL(location.href); // kept in the URL: a reload stays on this queue
    u.searchParams.set("queue", id);
    window.history.replaceState(null, "", u);
    renderSummary();
    historyAt = 0; // read the chosen queue's server history with its counts
    draw(); // the chosen queue's own history at once; its counts follow
    if (token()) refresh();
  }
  $("queue-pick").addEventListener("change", (e) => select(e.target.value));
  $("queues-table").addEventListener("click", (e) => {
    const tr = e.target.closest("tr[data-queue]");
    if (tr) select(tr.dataset.queue);
  });

  for (const r of document.querySelectorAll('input[name="chart-span"]')) {
    r.addEventListener("change", () => { spanMin = Number(r.value) || 60; draw(); });
  }
  // What operator.js needs of this page: the token, the selected queue, a refresh after a control.
  window.carqueueDashboard = { token, selected: () => (multi() ? selected : ""), refresh: () => { historyAt = 0; refresh(); } };

  $("token-form").addEventListener("submit", (e) => {
    e.preventDefault();
    sessionStorage.setItem(TOKEN_KEY, $("admin-token").value.trim());
    refresh();
  });
  window.addEventListener("resize", draw);
  if (token()) {
    $("admin-token").value = token();
    refresh();
  } else {
    $("admin-token").focus();
  }
})();
