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

    if (call.dataset.live === "1") {
      const list = document.getElementById("transcript");
      let seen = list.querySelectorAll("li.turn").length;
      const timer = every(1500, async () => {
        const r = await api("GET", base);
        if (!r.ok || !r.data) return;
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
})();
