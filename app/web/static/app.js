// Switchboard operator page. No framework, no build step. Talks to the JSON admin API with
// the session cookie; every POST carries the session's CSRF token (meta csrf-token).
(function () {
  "use strict";
  const csrf = (document.querySelector('meta[name="csrf-token"]') || {}).content || "";

  async function api(method, path, body) {
    const headers = { Accept: "application/json" };
    if (method !== "GET") headers["X-CSRF-Token"] = csrf;
    if (body !== undefined) headers["Content-Type"] = "application/json";
    const r = await fetch(path, {
      method, headers, credentials: "same-origin",
      body: body === undefined ? undefined : JSON.stringify(body),
    });
    if (r.status === 401) { window.location.href = "/admin/ui/login"; return { ok: false }; }
    let data = null;
    try { data = await r.json(); } catch (e) { data = null; }
    return { ok: r.ok, status: r.status, data };
  }

  function when(ms) {
    if (!ms) return "";
    return new Date(ms).toISOString().replace("T", " ").replace(/\.\d+Z$/, "Z");
  }
  function clock(ms) {
    const s = Math.max(0, ms || 0) / 1000;
    const m = Math.floor(s / 60);
    return String(m).padStart(2, "0") + ":" + (s % 60).toFixed(1).padStart(4, "0");
  }
  function el(tag, attrs, children) {
    const node = document.createElement(tag);
    for (const [k, v] of Object.entries(attrs || {})) {
      if (k === "class") node.className = v; else node.setAttribute(k, v);
    }
    for (const c of children || []) node.append(c instanceof Node ? c : document.createTextNode(String(c)));
    return node;
  }
  function every(ms, fn) {
    let busy = false;
    const tick = async () => {
      if (busy || document.hidden) return;
      busy = true;
      try { await fn(); } catch (e) { /* next tick retries */ } finally { busy = false; }
    };
    return setInterval(tick, ms);
  }

  // --- dashboard: live calls refresh themselves -------------------------------------------
  const liveBody = document.getElementById("live-body");
  if (liveBody) {
    const section = document.getElementById("live");
    const period = Number(section.dataset.pollMs || 2000);
    every(period, async () => {
      const r = await api("GET", "/admin/live");
      if (!r.ok || !r.data) return;
      const rows = r.data.items.map((c) => el("tr", { "data-sid": c.call_sid }, [
        el("td", {}, [el("a", { href: "/admin/ui/calls/" + encodeURIComponent(c.call_sid) }, [c.call_sid])]),
        el("td", {}, [c.direction]), el("td", {}, [c.from_masked]), el("td", {}, [c.to_masked]),
        el("td", {}, [c.flow]), el("td", {}, [el("span", { class: "state " + c.state }, [c.state])]),
        el("td", {}, [when(c.started_at_ms)]), el("td", { class: "muted" }, [c.instance]),
      ]));
      liveBody.replaceChildren(...rows);
      document.getElementById("live-count").textContent = String(r.data.items.length);
      document.getElementById("live-empty").hidden = r.data.items.length > 0;
      document.getElementById("live-updated").textContent = "updated " + when(Date.now()).slice(11);
    });
  }

  // --- dashboard: the call list's first page refreshes itself ------------------------------
  const calls = document.getElementById("calls");
  if (calls && calls.dataset.refresh !== undefined) {
    const body = document.getElementById("calls-body");
    const query = calls.dataset.refresh;
    every(5000, async () => {
      const r = await api("GET", "/admin/calls?" + (query ? query + "&" : "") + "limit=50");
      if (!r.ok || !r.data) return;
      const rows = r.data.items.map((c) => {
        const link = el("td", {}, [el("a", { href: "/admin/ui/calls/" + encodeURIComponent(c.call_sid) }, [c.call_sid.slice(0, 14) + "…"])]);
        if (c.live) link.append(" ", el("span", { class: "badge live" }, ["live"]));
        const flow = el("td", {}, [c.flow]);
        if (c.campaign) flow.append(" ", el("span", { class: "muted" }, ["· " + c.campaign]));
        return el("tr", { "data-sid": c.call_sid }, [
          el("td", {}, [when(c.created_at_ms)]), link, el("td", {}, [c.direction]),
          el("td", {}, [c.from_masked]), el("td", {}, [c.to_masked]), flow, el("td", {}, [c.status]),
          el("td", {}, [c.duration_s === null ? "" : c.duration_s + " s"]),
          el("td", { class: "muted" }, [c.end_reason || ""]), el("td", {}, [String(c.total_tokens)]),
        ]);
      });
      if (!rows.length) rows.push(el("tr", { class: "none" }, [el("td", { colspan: "10", class: "muted" }, ["No calls match."])]));
      body.replaceChildren(...rows);
      const stamp = document.getElementById("calls-updated");
      if (stamp) stamp.textContent = "updated " + when(Date.now()).slice(11);
    });
  }

  // --- one call: controls and a transcript that follows the live call ----------------------
  const call = document.getElementById("call");
  if (call) {
    const sid = call.dataset.sid;
    const base = "/admin/calls/" + encodeURIComponent(sid);
    const msg = document.getElementById("control-msg");
    const say = (text, bad) => { if (msg) { msg.textContent = text; msg.className = bad ? "error" : "ok"; } };
    const show = (r, okText) => say(r.ok ? okText || r.data.detail : (r.data && r.data.detail) || "failed (" + r.status + ")", !r.ok);

    const hangup = document.getElementById("hangup-btn");
    if (hangup) hangup.addEventListener("click", async () => {
      if (!window.confirm("Hang up this call now?")) return;
      hangup.disabled = true;
      const r = await api("POST", base + "/hangup", { reason: "operator" });
      show(r, "Hanging up…");
      if (!r.ok) hangup.disabled = false;
    });
    const target = document.getElementById("transfer-target");
    const to = document.getElementById("transfer-to");
    if (target && to) {
      const sync = () => { to.hidden = target.value !== ""; };
      target.addEventListener("change", sync); sync();
    }
    const transfer = document.getElementById("transfer-form");
    if (transfer) transfer.addEventListener("submit", async (ev) => {
      ev.preventDefault();
      const body = target.value ? { target: target.value } : { to: to.value };
      const mode = document.getElementById("transfer-mode");
      if (mode) body.mode = mode.value;
      const r = await api("POST", base + "/transfer", body);
      show(r);
    });
    const sayForm = document.getElementById("say-form");
    if (sayForm) sayForm.addEventListener("submit", async (ev) => {
      ev.preventDefault();
      const text = document.getElementById("say-text");
      const r = await api("POST", base + "/say", { text: text.value });
      show(r);
      if (r.ok) text.value = "";
    });

    const audio = document.getElementById("recording");
    const transcriptList = document.getElementById("transcript");
    if (audio && transcriptList) transcriptList.addEventListener("click", (ev) => {
      const li = ev.target.closest("li.seek");
      if (!li) return;
      audio.currentTime = Number(li.dataset.offsetMs || 0) / 1000;
      transcriptList.querySelectorAll("li.playing").forEach((n) => n.classList.remove("playing"));
      li.classList.add("playing");
      audio.play().catch(() => {});
    });

    if (call.dataset.live === "1") {
      const list = document.getElementById("transcript");
      const stateLine = document.getElementById("call-state");
      let seen = list.querySelectorAll("li.turn").length;
      const timer = every(1500, async () => {
        const r = await api("GET", base);
        if (!r.ok || !r.data) return;
        if (stateLine) stateLine.textContent = r.data.live ? r.data.live.state : r.data.call.status;
        const lines = r.data.transcript;
        if (lines.length !== seen) {
          seen = lines.length;
          list.replaceChildren(...lines.map((t) => {
            const parts = [
              el("span", { class: "at" }, [clock(t.offset_ms)]),
              el("span", { class: "who" }, [t.role === "user" ? "Caller" : "Agent"]),
              el("span", { class: "text" }, [t.text]),
            ];
            if (t.interrupted) parts.push(el("span", { class: "badge cut" }, ["interrupted"]));
            return el("li", { class: "turn " + t.role + (t.interrupted ? " interrupted" : "") }, parts);
          }));
        }
        if (!r.data.call.live) {  // ended: render everything (tools, cost, latency) server-side
          clearInterval(timer);
          const badge = document.getElementById("live-badge");
          badge.textContent = "ended"; badge.className = "badge ended";
          const controls = document.getElementById("controls");
          if (controls) controls.querySelectorAll("button, input, select").forEach((n) => { n.disabled = true; });
          setTimeout(() => window.location.reload(), 1500);
        }
      });
    }
  }

  // --- a campaign: live progress, controls -------------------------------------------------
  const campaign = document.getElementById("campaign");
  if (campaign) {
    const cid = campaign.dataset.cid;
    const started = Number(campaign.dataset.startedMs || 0);
    const set = (id, text) => { const n = document.getElementById(id); if (n) n.textContent = text; };
    const table = (id, counts) => {
      const body = document.getElementById(id);
      if (!body) return;
      const rows = Object.entries(counts || {}).map(([k, v]) => el("tr", {}, [el("td", {}, [k]), el("td", {}, [String(v)])]));
      body.replaceChildren(...(rows.length ? rows : [el("tr", {}, [el("td", { class: "muted" }, ["None yet."])])]));
    };
    const active = (s) => s === "running" || s === "paused";
    if (active(document.getElementById("c-status").textContent)) {
      const timer = every(2000, async () => {
        const r = await api("GET", "/admin/campaigns/" + encodeURIComponent(cid) + "/stats");
        if (!r.ok || !r.data) return;
        const s = r.data;
        set("c-status", s.status); set("c-done", s.done); set("c-total", s.contacts);
        set("c-calling", s.in_progress); set("c-waiting", s.pending); set("c-attempts", s.attempts);
        const bar = document.getElementById("c-progress");
        bar.max = s.contacts || 1; bar.value = s.done;
        set("c-next", s.next_due_at_ms && s.pending ? "next dial " + when(s.next_due_at_ms) : "");
        const now = Date.now();
        if (started && s.done > 0 && s.done < s.contacts && s.status === "running") {
          const eta = now + (s.contacts - s.done) / (s.done / (now - started));
          set("c-eta", "eta " + when(Math.max(eta, s.pending && s.next_due_at_ms ? s.next_due_at_ms : 0)));
        } else set("c-eta", "");
        table("outcomes-body", s.outcomes); table("attempt-outcomes-body", s.attempt_outcomes);
        set("c-updated", "updated " + when(now).slice(11));
        if (!active(s.status) && !s.in_progress) { clearInterval(timer); setTimeout(() => window.location.reload(), 500); }
      });
    }
    const msg = document.getElementById("campaign-msg");
    document.querySelectorAll("#campaign-controls button[data-action]").forEach((b) => b.addEventListener("click", async () => {
      const action = b.dataset.action;
      if (action === "cancel" && !window.confirm("Cancel this campaign? Waiting contacts will not be called.")) return;
      const r = await api("POST", "/admin/campaigns/" + encodeURIComponent(cid) + "/" + action);
      if (msg) { msg.textContent = r.ok ? "Campaign " + r.data.status + "." : (r.data && r.data.detail) || "failed"; msg.className = r.ok ? "ok" : "error"; }
      if (r.ok) setTimeout(() => window.location.reload(), 300);
    }));
  }

  // --- the do-not-call list: add and remove ------------------------------------------------
  const dncForm = document.getElementById("dnc-form");
  if (dncForm) dncForm.addEventListener("submit", async (ev) => {
    ev.preventDefault();
    const r = await api("POST", "/admin/dnc", {
      number: document.getElementById("dnc-number").value,
      reason: document.getElementById("dnc-reason").value,
    });
    const msg = document.getElementById("dnc-msg");
    msg.textContent = r.ok ? "Added " + r.data.number_masked + "." : (r.data && typeof r.data.detail === "string" ? r.data.detail : "not a phone number");
    msg.className = r.ok ? "ok" : "error";
    if (r.ok) setTimeout(() => window.location.reload(), 300);
  });
  const dncTable = document.getElementById("dnc-table");
  if (dncTable) dncTable.addEventListener("click", async (ev) => {
    const b = ev.target.closest("button[data-remove]");
    if (!b || !window.confirm("Remove this number from the do-not-call list?")) return;
    const r = await api("DELETE", "/admin/dnc/" + encodeURIComponent(b.dataset.remove));
    if (r.ok) b.closest("tr").remove();
  });

  // --- flows: validate, reload --------------------------------------------------------------
  const validate = document.getElementById("validate-form");
  if (validate) validate.addEventListener("submit", async (ev) => {
    ev.preventDefault();
    const out = document.getElementById("validate-result");
    const r = await api("POST", "/admin/flows/validate", { yaml: document.getElementById("validate-yaml").value });
    if (!r.ok || !r.data) { out.replaceChildren(el("p", { class: "error" }, [(r.data && r.data.detail) || "failed (" + r.status + ")"])); return; }
    if (r.data.valid) { out.replaceChildren(el("p", { class: "ok" }, ["Valid: flow " + r.data.flow.name + "."])); return; }
    out.replaceChildren(el("p", { class: "error" }, ["Not valid:"]), el("ul", {}, r.data.errors.map((e) => el("li", {}, [(e.line ? "line " + e.line + ": " : "") + e.message]))));
  });
  const reload = document.getElementById("reload-btn");
  if (reload) reload.addEventListener("click", async () => {
    const msg = document.getElementById("reload-msg");
    const r = await api("POST", "/admin/flows/reload");
    if (r.data && r.data.flows) {
      msg.textContent = r.data.ok ? "Reloaded: " + r.data.flows.join(", ") + (r.data.changed.length ? " (changed: " + r.data.changed.join(", ") + ")" : "") + "."
        : "Refused, nothing changed: " + r.data.problems.map((p) => p.file + (p.line ? ":" + p.line : "") + " " + p.message).join("; ");
      msg.className = r.data.ok ? "ok" : "error";
    } else { msg.textContent = (r.data && r.data.detail) || "failed"; msg.className = "error"; }
  });
})();
