/*
 * Agent console for the handoff desk (no framework, no build step, no CDN).
 *
 * API: /api/agent/* (session cookie set at login). Live updates: EventSource on /api/agent/events (desk events
 * plus the open conversation's messages). Security rule: every piece of customer, bot or agent text reaches the
 * DOM through textContent only; nothing from the server is ever parsed as HTML.
 */
(function () {
  "use strict";

  const SVG_NS = "http://www.w3.org/2000/svg";
  const $ = (id) => document.getElementById(id);

  const state = {
    me: null,
    meta: { reason_codes: [], resolution_codes: [] },
    agents: [],
    selected: null, // handoff id
    handoff: null, // summary row of the selected handoff
    context: null,
    knownMessageIds: new Set(),
    lastMessageId: "",
    events: null,
    eventsKey: null,
    refreshTimer: 0,
  };

  class ApiError extends Error {
    constructor(status, detail) {
      super(detail || `HTTP ${status}`);
      this.status = status;
      this.detail = detail;
    }
  }

  async function api(method, path, body) {
    const response = await fetch(path, {
      method,
      credentials: "same-origin",
      headers: body === undefined ? { Accept: "application/json" }
        : { Accept: "application/json", "Content-Type": "application/json" },
      body: body === undefined ? undefined : JSON.stringify(body),
    });
    let data = null;
    try {
      data = await response.json();
    } catch (err) {
      data = null;
    }
    if (response.status === 401 && !path.endsWith("/login")) {
      showLogin();
    }
    if (response.status < 200 || response.status >= 300) {
      throw new ApiError(response.status, data && typeof data.detail === "string" ? data.detail : "");
    }
    return data;
  }

  function el(tag, className, text) {
    const node = document.createElement(tag);
    if (className) {
      node.className = className;
    }
    if (text !== undefined && text !== null) {
      node.textContent = String(text);
    }
    return node;
  }

  function formatWait(seconds) {
    const s = Math.max(0, Math.floor(seconds));
    return s < 60 ? `${s}s` : `${Math.floor(s / 60)}m ${s % 60}s`;
  }

  function formatTime(value) {
    const date = typeof value === "number" ? new Date(value * 1000) : new Date(value);
    return Number.isNaN(date.getTime()) ? "" : date.toLocaleTimeString();
  }

  // ---------------------------------------------------------------- login

  function showLogin() {
    closeEvents();
    $("desk-view").hidden = true;
    $("login-view").hidden = false;
    $("login-username").focus();
  }

  async function onLogin(event) {
    event.preventDefault();
    $("login-error").textContent = "";
    try {
      await api("POST", "/api/agent/login", {
        username: $("login-username").value.trim(),
        password: $("login-password").value,
      });
      $("login-password").value = "";
      await start();
    } catch (err) {
      $("login-error").textContent = err.detail || "Login failed.";
    }
  }

  async function onLogout() {
    try {
      await api("POST", "/api/agent/logout");
    } finally {
      showLogin();
    }
  }

  // ---------------------------------------------------------------- lists

  function queueItem(row, showAgent) {
    const li = el("li");
    li.dataset.handoffId = row.handoff_id;
    li.dataset.reason = row.reason_code;
    if (row.handoff_id === state.selected) {
      li.classList.add("selected");
    }
    const top = el("div", "row");
    top.appendChild(el("span", `prio prio-${row.effective_priority}`, `P${row.effective_priority}`));
    top.appendChild(el("span", "reason", row.reason_code));
    top.appendChild(el("span", "wait", formatWait(row.wait_s)));
    li.appendChild(top);
    const details = [row.tier, row.language, `frustration ${row.frustration}`];
    if (row.ticket_id) {
      details.push(`ticket ${row.ticket_id}`);
    }
    if (row.supervisor_only) {
      details.push("supervisor");
    }
    if (showAgent && row.agent_id) {
      details.push(`agent ${agentName(row.agent_id)}`);
    }
    li.appendChild(el("div", "sub", details.join(" · ")));
    li.appendChild(el("div", "sub", row.summary || ""));
    li.title = row.summary || "";
    li.addEventListener("click", () => select(row.handoff_id));
    return li;
  }

  function agentName(id) {
    const agent = state.agents.find((a) => a.id === id);
    return agent ? agent.display_name : id;
  }

  async function refreshLists() {
    const [queue, mine] = await Promise.all([api("GET", "/api/agent/queue"), api("GET", "/api/agent/mine")]);
    const queueEl = $("queue");
    queueEl.replaceChildren(...queue.map((row) => queueItem(row, false)));
    $("queue-count").textContent = String(queue.length);
    $("mine").replaceChildren(...mine.map((row) => queueItem(row, false)));
    $("mine-count").textContent = String(mine.length);
    if (state.me && state.me.role === "supervisor") {
      const alerts = await api("GET", "/api/agent/alerts");
      $("alerts-section").hidden = false;
      $("alerts-count").textContent = String(alerts.length);
      $("alerts").replaceChildren(...alerts.map(alertItem));
    }
  }

  // Supervisors' alerts: what happened, and an acknowledge button (the server closes or hides the alert).
  function alertText(a) {
    const when = formatTime(a.raised_at);
    switch (a.kind) {
      case "sla_pickup":
        return [`${a.reason_code} · waited ${formatWait(a.wait_s)}`, `not picked up within the SLA (${when})`];
      case "handoff_undelivered":
        return [`undelivered handoff · ${a.reason_code}`,
          `conversation ${a.conversation_id}: gave up after ${a.attempts} attempts (${a.error}) ${when}`];
      case "repeat_complaint":
        return [`repeat complaint · ${a.complaints}×`,
          `customer ${a.customer_id}, order ${a.order_number} (${when})`];
      case "group_incident":
        return [`group incident · ${a.customers} customers`, `${a.problem_kind}: ${a.problem_value} (${when})`];
      default:
        return [a.kind, when];
    }
  }

  function alertItem(a) {
    const li = el("li");
    li.dataset.alertId = a.id;
    li.dataset.kind = a.kind;
    const [title, detail] = alertText(a);
    li.appendChild(el("div", "row", title));
    li.appendChild(el("div", "sub", detail));
    li.title = detail;
    const ack = el("button", "ack", "Acknowledge");
    ack.type = "button";
    ack.addEventListener("click", (event) => {
      event.stopPropagation();
      ack.disabled = true;
      api("POST", `/api/agent/alerts/${encodeURIComponent(a.id)}/ack`)
        .catch((err) => console.warn("desk: acknowledge failed", err))
        .finally(scheduleRefresh);
    });
    li.appendChild(ack);
    if (a.handoff_id) {
      li.addEventListener("click", () => select(a.handoff_id));
    }
    return li;
  }

  // ---------------------------------------------------------------- accounts (supervisors)

  function renderAccounts() {
    const supervisor = state.me && state.me.role === "supervisor";
    $("accounts-section").hidden = !supervisor;
    if (!supervisor) {
      return;
    }
    $("accounts-count").textContent = String(state.agents.length);
    $("accounts").replaceChildren(...state.agents.map((a) => el("li", "", `${a.display_name} (${a.username}, ${a.role})`)));
  }

  async function createAccount(event) {
    event.preventDefault();
    const message = $("account-message");
    message.textContent = "";
    try {
      const created = await api("POST", "/api/agent/agents", {
        username: $("account-username").value.trim(),
        display_name: $("account-display-name").value.trim(),
        password: $("account-password").value,
        role: $("account-role").value,
      });
      $("account-form").reset();
      message.textContent = `Created ${created.role} ${created.username}.`;
      state.agents = await api("GET", "/api/agent/agents");
      renderAccounts();
    } catch (err) {
      message.textContent = err.detail
        || "Could not create the account: the name takes 2-40 letters, digits, '.', '_' or '-'.";
    }
  }

  function scheduleRefresh() {
    window.clearTimeout(state.refreshTimer);
    state.refreshTimer = window.setTimeout(() => {
      refreshLists().catch((err) => console.warn("desk: refresh failed", err));
    }, 100);
  }

  // ---------------------------------------------------------------- conversation

  // Only the owner, supervisors, and (while it waits in the queue) every agent may read a conversation: when a
  // colleague claims it or it is transferred away, the server answers 403 and the view is left.
  function leaveConversation(reason) {
    state.selected = null;
    state.handoff = null;
    state.context = null;
    $("conversation").hidden = true;
    $("context-panel").hidden = true;
    $("empty-state").textContent = reason || "Select a conversation from the queue.";
    $("empty-state").hidden = false;
    for (const li of document.querySelectorAll(".list li")) {
      li.classList.remove("selected");
    }
    openEvents();
  }

  function lostAccess(err) {
    return err instanceof ApiError && (err.status === 403 || err.status === 404);
  }

  async function select(handoffId) {
    state.selected = handoffId;
    $("action-error").textContent = "";
    let data;
    try {
      data = await api("GET", `/api/agent/handoffs/${encodeURIComponent(handoffId)}`);
    } catch (err) {
      if (lostAccess(err)) {
        leaveConversation(err.detail);
        return;
      }
      throw err;
    }
    state.handoff = data.handoff;
    state.context = data.context;
    state.knownMessageIds = new Set();
    state.lastMessageId = "";
    $("transcript").replaceChildren();
    for (const message of data.messages) {
      appendMessage(message);
    }
    $("empty-state").hidden = true;
    $("conversation").hidden = false;
    $("context-panel").hidden = false;
    renderHandoff();
    renderContext();
    openEvents();
    loadCanned();
    for (const li of document.querySelectorAll(".list li")) {
      li.classList.toggle("selected", li.dataset.handoffId === handoffId);
    }
  }

  function appendMessage(message) {
    if (!message || state.knownMessageIds.has(message.id)) {
      return;
    }
    state.knownMessageIds.add(message.id);
    state.lastMessageId = message.id;
    const role = ["customer", "bot", "agent", "system"].includes(message.role) ? message.role : "system";
    const li = el("li", `msg msg--${role}`);
    li.dataset.id = message.id;
    li.dataset.role = role;
    const who = role === "agent" && message.author ? agentName(message.author) : role;
    li.appendChild(el("span", "msg__meta", `${who} · ${formatTime(message.ts)}`));
    li.appendChild(el("span", "msg__text", message.text));
    const list = $("transcript");
    const stick = list.scrollHeight - list.scrollTop - list.clientHeight < 80;
    list.appendChild(li);
    if (stick) {
      list.scrollTop = list.scrollHeight;
    }
  }

  function renderHandoff() {
    const h = state.handoff;
    const mineNow = h.status === "claimed" && h.agent_id === state.me.id;
    const supervisor = state.me.role === "supervisor";
    const open = h.status === "queued" || h.status === "claimed";
    $("conv-title").textContent = `Conversation ${h.conversation_id.slice(0, 8)}`;
    $("conv-status").textContent = h.status === "claimed" ? `claimed by ${agentName(h.agent_id)}` : h.status;
    $("conv-reason").textContent = `${h.reason_code} · P${h.effective_priority}`;
    $("claim").hidden = h.status !== "queued";
    $("handback").disabled = !(mineNow || (supervisor && open));
    $("close").disabled = !(mineNow || (supervisor && open));
    $("transfer").disabled = !(mineNow || (supervisor && open));
    $("reply-text").disabled = !mineNow;
    $("reply-send").disabled = !mineNow;
    const others = state.agents.filter((a) => a.id !== h.agent_id);
    $("transfer-to").replaceChildren(...others.map((a) => {
      const option = el("option", "", `${a.display_name}${a.online ? "" : " (offline)"}`);
      option.value = a.id;
      return option;
    }));
  }

  function fact(list, label, value) {
    list.appendChild(el("dt", "", label));
    list.appendChild(el("dd", "", value === null || value === undefined || value === "" ? "—" : value));
  }

  function renderContext() {
    const c = state.context || {};
    const customer = c.customer || {};
    const escalation = c.escalation || {};
    const facts = $("context-customer");
    facts.replaceChildren();
    fact(facts, "Customer", customer.id || "anonymous");
    fact(facts, "Tier", customer.tier);
    fact(facts, "Verified", customer.verified ? "yes" : "no");
    fact(facts, "Language", customer.language);
    fact(facts, "Channel", c.channel);
    fact(facts, "Reason", escalation.reason_code);
    fact(facts, "Priority", `${escalation.priority} (queue ${escalation.effective_priority})`);
    $("context-summary").textContent = (c.summary && c.summary.text) || "";
    renderCurve(c.frustration || {});
    const ids = $("context-identifiers");
    ids.replaceChildren();
    const identifiers = c.identifiers || {};
    fact(ids, "Orders", (identifiers.order_numbers || []).join(", "));
    fact(ids, "Tracking", (identifiers.tracking_numbers || []).join(", "));
    for (const [name, value] of Object.entries(c.slots || {})) {
      if (!["order_number", "tracking_number", "language"].includes(name)) {
        fact(ids, name, typeof value === "string" ? value : JSON.stringify(value));
      }
    }
    $("context-turns").replaceChildren(...(c.turns || []).map((t) => {
      const confidence = typeof t.confidence === "number" ? ` ${(t.confidence * 100).toFixed(0)}%` : "";
      const frustration = typeof t.frustration === "number" ? ` · frustration ${t.frustration}` : "";
      return el("li", "", `${t.intent || "?"}${confidence}${frustration} — ${t.text}`);
    }));
    $("context-kb").replaceChildren(...(c.kb_articles || []).map((a) => el(
      "li", "", `${typeof a.title === "string" ? a.title : a.id} (${a.score ?? "?"})${a.feedback ? ` · ${a.feedback}` : ""}`,
    )));
    $("context-earlier").replaceChildren(...(c.earlier_conversations || []).map((e) => el(
      "li", "", `${e.created_at || ""} · ${e.reason_code} · ${e.status}${e.resolution ? ` (${e.resolution})` : ""}${e.csat ? ` · CSAT ${e.csat}` : ""}`,
    )));
  }

  /** Inline SVG line of the frustration scores (0-100), one point per scored message. */
  function renderCurve(frustration) {
    const points = (frustration.curve && frustration.curve.length ? frustration.curve : frustration.per_message || [])
      .filter((p) => typeof p.score === "number");
    const width = 300;
    const height = 100;
    const svg = document.createElementNS(SVG_NS, "svg");
    svg.setAttribute("viewBox", `0 0 ${width} ${height}`);
    svg.setAttribute("role", "img");
    svg.setAttribute("aria-label", `Frustration curve, latest ${frustration.score ?? "?"} of 100`);
    svg.id = "frustration-svg";
    const threshold = document.createElementNS(SVG_NS, "line");
    threshold.setAttribute("x1", "0");
    threshold.setAttribute("x2", String(width));
    threshold.setAttribute("y1", String(height - 80));
    threshold.setAttribute("y2", String(height - 80));
    threshold.setAttribute("stroke", "#e0a0a0");
    threshold.setAttribute("stroke-dasharray", "4 3");
    svg.appendChild(threshold);
    const step = points.length > 1 ? (width - 20) / (points.length - 1) : 0;
    const coords = points.map((p, i) => [10 + i * step, height - 5 - (Math.min(100, Math.max(0, p.score)) * (height - 10)) / 100]);
    if (coords.length) {
      const line = document.createElementNS(SVG_NS, "polyline");
      line.setAttribute("points", coords.map(([x, y]) => `${x.toFixed(1)},${y.toFixed(1)}`).join(" "));
      line.setAttribute("fill", "none");
      line.setAttribute("stroke", "#c25e00");
      line.setAttribute("stroke-width", "2");
      svg.appendChild(line);
      coords.forEach(([x, y], i) => {
        const dot = document.createElementNS(SVG_NS, "circle");
        dot.setAttribute("cx", x.toFixed(1));
        dot.setAttribute("cy", y.toFixed(1));
        dot.setAttribute("r", "3");
        dot.setAttribute("fill", "#c25e00");
        const title = document.createElementNS(SVG_NS, "title");
        title.textContent = `score ${points[i].score}`;
        dot.appendChild(title);
        svg.appendChild(dot);
      });
    }
    $("frustration-chart").replaceChildren(svg);
  }

  // ---------------------------------------------------------------- actions

  async function act(fn) {
    $("action-error").textContent = "";
    try {
      await fn();
    } catch (err) {
      $("action-error").textContent = err.detail || String(err.message || err);
    }
  }

  async function reloadSelected() {
    if (state.selected) {
      let data;
      try {
        data = await api("GET", `/api/agent/handoffs/${encodeURIComponent(state.selected)}`);
      } catch (err) {
        if (!lostAccess(err)) {
          throw err;
        }
        leaveConversation(err.detail);
        scheduleRefresh();
        return;
      }
      state.handoff = data.handoff;
      for (const message of data.messages) {
        appendMessage(message);
      }
      renderHandoff();
    }
    scheduleRefresh();
  }

  function post(action, body) {
    return api("POST", `/api/agent/handoffs/${encodeURIComponent(state.selected)}/${action}`, body);
  }

  function newMessageId() {
    const bytes = window.crypto.getRandomValues(new Uint8Array(16));
    return Array.from(bytes, (b) => b.toString(16).padStart(2, "0")).join("");
  }

  async function sendReply(event) {
    event.preventDefault();
    const box = $("reply-text");
    const text = box.value.trim();
    if (!text) {
      return;
    }
    await act(async () => {
      const result = await post("messages", { text, message_id: newMessageId() });
      box.value = "";
      if (!state.knownMessageIds.has(result.id)) {
        appendMessage({ id: result.id, role: "agent", text, ts: Date.now() / 1000, author: state.me.id });
      }
    });
  }

  async function loadCanned() {
    const language = (state.context && state.context.customer && state.context.customer.language) || "zh";
    const query = $("canned-search").value.trim();
    try {
      const answers = await api("GET", `/api/agent/canned?lang=${language}&q=${encodeURIComponent(query)}`);
      $("canned").replaceChildren(...answers.map((a) => {
        const li = el("li", "", a.title);
        li.title = a.answer;
        li.addEventListener("click", () => {
          const box = $("reply-text");
          box.value = box.value ? `${box.value}\n${a.answer}` : a.answer;
          box.focus();
        });
        return li;
      }));
    } catch (err) {
      console.warn("desk: canned answers failed", err);
    }
  }

  // ---------------------------------------------------------------- live events

  function closeEvents() {
    if (state.events) {
      state.events.close();
    }
    state.events = null;
    state.eventsKey = null;
    $("live-status").textContent = "offline";
    $("live-status").classList.remove("on");
  }

  function openEvents() {
    const key = state.selected || "";
    if (state.events && state.eventsKey === key) {
      return;
    }
    closeEvents();
    const params = new URLSearchParams();
    if (state.selected) {
      params.set("handoff_id", state.selected);
      params.set("after", `|${state.lastMessageId}`);
    }
    const source = new EventSource(`/api/agent/events?${params.toString()}`);
    state.events = source;
    state.eventsKey = key;
    source.onopen = () => {
      $("live-status").textContent = "live";
      $("live-status").classList.add("on");
    };
    source.addEventListener("desk", (event) => {
      const data = JSON.parse(event.data);
      scheduleRefresh();
      if (data.handoff_id === state.selected) {
        reloadSelected().catch((err) => console.warn("desk: reload failed", err));
      }
    });
    source.addEventListener("message", (event) => {
      if (state.events === source) {
        appendMessage(JSON.parse(event.data));
      }
    });
    source.onerror = () => {
      $("live-status").textContent = "reconnecting";
      $("live-status").classList.remove("on");
    };
  }

  // ---------------------------------------------------------------- start

  async function start() {
    state.me = await api("GET", "/api/agent/me");
    state.meta = await api("GET", "/api/agent/meta");
    state.agents = await api("GET", "/api/agent/agents");
    $("whoami").textContent = `${state.me.display_name} (${state.me.role})`;
    $("resolution").replaceChildren(...state.meta.resolution_codes.map((code) => {
      const option = el("option", "", code);
      option.value = code;
      return option;
    }));
    $("login-view").hidden = true;
    $("desk-view").hidden = false;
    renderAccounts();
    await refreshLists();
    openEvents();
  }

  document.addEventListener("DOMContentLoaded", () => {
    $("login-form").addEventListener("submit", onLogin);
    $("logout").addEventListener("click", onLogout);
    $("claim").addEventListener("click", () => act(async () => {
      await post("claim");
      await reloadSelected();
    }));
    $("handback").addEventListener("click", () => act(async () => {
      await post("handback");
      await reloadSelected();
    }));
    $("close").addEventListener("click", () => act(async () => {
      await post("close", { resolution: $("resolution").value });
      await reloadSelected();
    }));
    $("transfer").addEventListener("click", () => act(async () => {
      // Agents transfer what they own; supervisors reassign anything open (also straight from the queue).
      const action = state.handoff.agent_id === state.me.id ? "transfer" : "reassign";
      await post(action, { to_agent_id: $("transfer-to").value });
      await reloadSelected();
    }));
    $("reply-form").addEventListener("submit", sendReply);
    $("account-form").addEventListener("submit", createAccount);
    $("reply-text").addEventListener("keydown", (event) => {
      if (event.key === "Enter" && !event.shiftKey && !event.isComposing && event.keyCode !== 229) {
        sendReply(event);
      }
    });
    let cannedTimer = 0;
    $("canned-search").addEventListener("input", () => {
      window.clearTimeout(cannedTimer);
      cannedTimer = window.setTimeout(loadCanned, 200);
    });
    window.setInterval(() => {
      if (!$("desk-view").hidden) {
        scheduleRefresh(); // wait times tick; also a fallback when the event stream is down
      }
    }, 10000);
    start().catch(() => showLogin());
  });
})();
