// carqueue operator dashboard, the operator's side: the controls of the selected queue
// (/admin/pause, /resume, /notice, /capacity, /kick, each confirmed first), the users playing
// now (/admin/sessions) and the distributions of waiting and playing times from the newest
// finished sessions (/admin/records, Newest). dashboard.js owns the token and the selection
// (window.carqueueDashboard) and says when it read /stats (the carqueue:stats event).
"use strict";

(function () {
  const $ = (id) => document.getElementById(id);
  const dash = () => window.carqueueDashboard;
  const RECORDS = 500;      // finished sessions the distributions are drawn from
  const SLOW_EVERY = 5;     // the holders and records are read every 5th /stats (10 s)
  let seen = 0;
  let last = null;          // the last /stats of the selected queue

  async function admin(route, body) {
    const b = Object.assign({}, body || {});
    const q = dash().selected();
    if (q) b.QueueId = q;
    const r = await fetch("/admin/" + route, {
      method: "POST", body: JSON.stringify(b), headers: { Authorization: "Bearer " + dash().token() },
    });
    let env = null;
    try { env = await r.json(); } catch { /* not an envelope */ }
    if (!r.ok || !env || env.Code !== 0) throw new Error("/admin/" + route + ": " + (env && env.Msg ? env.Msg : "HTTP " + r.status));
    return env.Data;
  }

  function say(text, bad) {
    $("ops-message").textContent = text;
    $("ops-message").classList.toggle("error", !!bad);
  }

  // control asks first, then makes the change, says what happened and refreshes everything.
  async function control(question, route, body, done) {
    if (!dash().token()) return say("Enter the admin token first.", true);
    if (!window.confirm(question)) return say("Cancelled.");
    try {
      const d = await admin(route, body);
      // The notice box follows the server's notice again once the operator's text was sent
      // (or cleared); until then it keeps what the operator is writing.
      if ("Notice" in body) {
        delete $("ops-notice").dataset.edited;
        if (body.Notice === "") $("ops-notice").value = "";
      }
      say(done(d));
      seen = 0;
      dash().refresh();
    } catch (err) {
      say(String(err.message || err), true);
    }
  }

  function queueName() { return dash().selected() || (last && last.QueueId) || "this queue"; }

  $("ops-pause").addEventListener("click", () => {
    const notice = $("ops-notice").value.trim();
    const body = $("ops-notice-with-pause").checked && notice ? { Notice: notice } : {};
    control("Pause admission of " + queueName() + "? Queued users keep their places.", "pause", body,
      () => "Admission paused" + (body.Notice ? ", notice set." : "."));
  });
  $("ops-resume").addEventListener("click", () =>
    control("Resume admission of " + queueName() + "?", "resume", {}, () => "Admission resumed."));
  $("ops-notice-set").addEventListener("click", () => {
    const notice = $("ops-notice").value.trim();
    if (!notice) return say("Write the notice first (or use Clear).", true);
    control("Show this notice to every user of " + queueName() + "?\n\n" + notice, "notice", { Notice: notice }, () => "Notice set.");
  });
  $("ops-notice-clear").addEventListener("click", () =>
    control("Clear the notice of " + queueName() + "?", "notice", { Notice: "" }, () => "Notice cleared."));
  $("ops-capacity-set").addEventListener("click", () => {
    const n = Number($("ops-capacity").value);
    if (!Number.isInteger(n) || n < 0) return say("Capacity: a whole number ≥ 0.", true);
    control("Set the capacity of " + queueName() + " to " + n + "? Lowering it ends no session.", "capacity", { Capacity: n },
      () => "Capacity set to " + n + ".");
  });
  $("ops-capacity-reset").addEventListener("click", () =>
    control("Return " + queueName() + " to its configured capacity?", "capacity", { Reset: true }, () => "Capacity back to the configured one."));
  function kick(user) {
    if (!/^[A-Za-z0-9_.@:-]{1,64}$/.test(user)) return say("UserId: 1–64 of letters, digits and _ . @ : -", true);
    control("Kick " + user + " from " + queueName() + "? A playing user's session is destroyed.", "kick", { UserId: user },
      (d) => user + (d.Was === "None" ? " was not in this queue." : " kicked (was " + d.Was + ")."));
  }
  $("ops-kick").addEventListener("click", () => kick($("ops-kick-user").value.trim()));

  // The state of the controls, from /stats.
  document.addEventListener("carqueue:stats", (e) => {
    last = e.detail.stats;
    const paused = last.Paused === true;
    const st = $("ops-state");
    st.dataset.status = paused ? "Expired" : "Active";
    st.textContent = paused ? "Paused" : "Admitting";
    $("ops-queue").textContent = e.detail.selected ? " of " + e.detail.selected : "";
    const cap = $("ops-capacity");
    if (document.activeElement !== cap) cap.value = String(last.Capacity ?? "");
    cap.title = last.CapacityOverride != null ? "Set live (configured otherwise)" : "As configured";
    const notice = $("ops-notice");
    if (document.activeElement !== notice && !notice.dataset.edited) notice.value = last.Notice || "";
    if (seen++ % SLOW_EVERY === 0) slow().catch((err) => say(String(err.message || err), true));
  });
  $("ops-notice").addEventListener("input", (e) => { e.target.dataset.edited = "1"; });

  async function slow() {
    const [sessions, records] = await Promise.all([admin("sessions", { Limit: 100 }), admin("records", { Newest: RECORDS })]);
    renderHolders(sessions.Sessions || []);
    renderDists(records.Records || []);
  }

  function fmtDur(sec) {
    if (sec == null) return "–";
    sec = Math.round(sec);
    if (sec < 60) return sec + " s";
    if (sec < 3600) return Math.floor(sec / 60) + " min " + String(sec % 60).padStart(2, "0") + " s";
    return Math.floor(sec / 3600) + " h " + String(Math.floor(sec / 60) % 60).padStart(2, "0") + " min";
  }

  function renderHolders(list) {
    $("holders-empty").hidden = list.length > 0;
    $("holders-table").hidden = list.length === 0;
    const rows = list.map((s) => {
      const tr = document.createElement("tr");
      tr.dataset.user = s.UserId;
      for (const [v, num] of [[s.UserId], [s.Status], [s.Lane], [fmtDur(s.WaitedSeconds), true], [fmtDur(s.PlayedSeconds), true]]) {
        const td = document.createElement("td");
        td.textContent = v;
        if (num) td.className = "num";
        tr.append(td);
      }
      const td = document.createElement("td");
      const b = document.createElement("button");
      b.type = "button";
      b.className = "linklike";
      b.textContent = "Kick";
      b.title = "Kick " + s.UserId;
      b.addEventListener("click", () => kick(s.UserId));
      td.append(b);
      tr.append(td);
      return tr;
    });
    $("holders-table").tBodies[0].replaceChildren(...rows);
  }

  function median(xs) {
    if (!xs.length) return null;
    const s = [...xs].sort((a, b) => a - b);
    return s.length % 2 ? s[(s.length - 1) / 2] : (s[s.length / 2 - 1] + s[s.length / 2]) / 2;
  }

  function renderDists(recs) {
    $("dist-n").textContent = String(recs.length);
    const waited = recs.filter((r) => r.AdmittedAt).map((r) => r.WaitedSeconds);
    const played = recs.filter((r) => r.StartedAt).map((r) => r.PlayedSeconds);
    histogram($("dist-wait"), waited, "#e08a00");
    histogram($("dist-play"), played, "#2f6fed");
    const mw = median(waited), mp = median(played);
    $("dist-wait-median").textContent = mw == null ? "" : "· median " + fmtDur(mw) + " of " + waited.length;
    $("dist-play-median").textContent = mp == null ? "" : "· median " + fmtDur(mp) + " of " + played.length;
    const reasons = {};
    for (const r of recs) reasons[r.Reason] = (reasons[r.Reason] || 0) + 1;
    $("dist-reasons").textContent = recs.length
      ? "Why they ended: " + Object.entries(reasons).map(([k, v]) => k.replace(/_/g, " ") + " " + v).join(" · ")
      : "No finished session yet.";
  }

  // histogram draws values (seconds) in 10 buckets from 0 to the largest, with their counts.
  function histogram(canvas, values, color) {
    const dpr = window.devicePixelRatio || 1;
    const w = canvas.clientWidth, h = canvas.clientHeight;
    canvas.width = Math.round(w * dpr);
    canvas.height = Math.round(h * dpr);
    const g = canvas.getContext("2d");
    g.scale(dpr, dpr);
    g.clearRect(0, 0, w, h);
    const css = getComputedStyle(document.documentElement);
    g.fillStyle = css.getPropertyValue("--muted").trim() || "#667";
    g.font = "12px system-ui, sans-serif";
    if (!values.length) {
      g.textAlign = "center";
      g.fillText("no data yet", w / 2, h / 2);
      return;
    }
    const n = 10, top = Math.max(1, ...values);
    const counts = new Array(n).fill(0);
    for (const v of values) counts[Math.min(n - 1, Math.floor((v / top) * n))]++;
    const most = Math.max(...counts);
    const pad = { l: 8, r: 8, t: 14, b: 20 };
    const bw = (w - pad.l - pad.r) / n;
    for (let i = 0; i < n; i++) {
      const bh = (h - pad.t - pad.b) * (counts[i] / most);
      g.fillStyle = color;
      g.fillRect(pad.l + i * bw + 1, h - pad.b - bh, bw - 2, bh);
      if (counts[i]) {
        g.fillStyle = css.getPropertyValue("--muted").trim() || "#667";
        g.textAlign = "center";
        g.fillText(String(counts[i]), pad.l + (i + 0.5) * bw, h - pad.b - bh - 3);
      }
    }
    g.fillStyle = css.getPropertyValue("--muted").trim() || "#667";
    g.textAlign = "left";
    g.fillText("0", pad.l, h - 5);
    g.textAlign = "right";
    g.fillText(fmtDur(top), w - pad.r, h - 5);
  }
})();
