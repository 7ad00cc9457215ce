// Search of past conversations and the case library (issue 17, item 3): the side panel's search (words, an order
// number DM…, or customer:ID; past conversations or model cases), a read-only viewer of what was found, and the
// "Mark as model case" form of the open conversation. The server masks, limits and audits (handoff/api/cases.py);
// everything is shown with textContent. Follows the open conversation through agent.js's "desk:conversation".
(function () {
  "use strict";

  const $ = (id) => document.getElementById(id);
  const ORDER_RE = /^DM\d{10}$/i;
  const STRINGS = {
    en: {
      title: "Search & case library", placeholder: "Words, order DM…, customer:ID", aria: "Search past conversations",
      scope: "Where to search", conversations: "Past conversations", cases: "Model cases", go: "Search",
      searching: "Searching…", found: "{n} found", none: "Nothing found.", case_badge: "model case",
      mark: "Mark as model case", l_title: "Title", l_tags: "Tags (comma-separated)", l_note: "Why it is a model",
      save: "Save as model case", saved: "Saved in the case library.", updated: "Case updated.", close: "Close",
      by: "by {name}", customer: "customer", agent: "agent", bot: "bot", system: "system",
    },
    zh: {
      title: "搜索与案例库", placeholder: "关键词、订单号 DM…、customer:ID", aria: "搜索历史对话", scope: "搜索范围",
      conversations: "历史对话", cases: "优秀案例", go: "搜索", searching: "搜索中…", found: "找到 {n} 条",
      none: "没有找到。", case_badge: "优秀案例", mark: "标记为优秀案例", l_title: "标题", l_tags: "标签（逗号分隔）",
      l_note: "为什么值得学习", save: "保存为优秀案例", saved: "已存入案例库。", updated: "案例已更新。", close: "关闭",
      by: "{name} 标记", customer: "客户", agent: "客服", bot: "机器人", system: "系统",
    },
  };
  let current = { handoffId: null, lang: "en", role: "", agentId: "", ownerId: "" };

  function t(key, vars) {
    let text = (STRINGS[current.lang] || STRINGS.en)[key] || STRINGS.en[key] || key;
    for (const [name, value] of Object.entries(vars || {})) {
      text = text.split(`{${name}}`).join(String(value));
    }
    return text;
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

  async function call(method, path, body) {
    const response = await fetch(path, {
      method, credentials: "same-origin",
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
    if (!response.ok) {
      let detail = data && data.detail;
      if (Array.isArray(detail)) {
        detail = detail.map((d) => d.msg).join("; ");
      }
      throw new Error(typeof detail === "string" ? detail : `HTTP ${response.status}`);
    }
    return data;
  }

  function when(ts) {
    const date = new Date(Number(ts) * 1000);
    return Number.isNaN(date.getTime()) ? "" : date.toLocaleString(current.lang === "zh" ? "zh-CN" : "en-GB",
      { dateStyle: "short", timeStyle: "short" });
  }

  function applyStrings() {
    $("search-title").textContent = t("title");
    $("search-q").placeholder = t("placeholder");
    $("search-q").setAttribute("aria-label", t("aria"));
    $("search-scope").setAttribute("aria-label", t("scope"));
    $("search-scope").options[0].textContent = t("conversations");
    $("search-scope").options[1].textContent = t("cases");
    $("search-go").textContent = t("go");
    $("case-title").textContent = t("mark");
    $("case-l-title").textContent = t("l_title");
    $("case-l-tags").textContent = t("l_tags");
    $("case-l-note").textContent = t("l_note");
    $("case-save").textContent = t("save");
    $("case-view-close").textContent = t("close");
  }

  function resultItem(label, snippet, badge, open) {
    const li = el("li", "search-result");
    const button = el("button", "link search-result__open", label);
    button.type = "button";
    button.addEventListener("click", open);
    li.appendChild(button);
    if (badge) {
      li.appendChild(el("span", "badge", badge));
    }
    li.appendChild(el("div", "muted small search-result__snippet", snippet));
    return li;
  }

  async function search(event) {
    event.preventDefault();
    const raw = $("search-q").value.trim();
    const status = $("search-status");
    const list = $("search-results");
    if (!raw) {
      return;
    }
    status.textContent = t("searching");
    list.replaceChildren();
    try {
      if ($("search-scope").value === "cases") {
        const cases = await call("GET", `/api/agent/cases?${new URLSearchParams({ q: raw })}`);
        list.replaceChildren(...cases.map((c) => resultItem(`${c.title} · ${(c.tags || []).join(", ")}`,
          c.snippet, t("case_badge"), () => openCase(c.id))));
        status.textContent = cases.length ? t("found", { n: cases.length }) : t("none");
        return;
      }
      const params = ORDER_RE.test(raw) ? { order: raw.toUpperCase() }
        : (raw.toLowerCase().startsWith("customer:") ? { customer: raw.slice(9).trim() } : { q: raw });
      const data = await call("GET", `/api/agent/search?${new URLSearchParams(params)}`);
      list.replaceChildren(...data.results.map((r) => resultItem(
        `${when(r.created_at)} · ${r.reason_code} · ${r.status}${r.resolution ? ` (${r.resolution})` : ""}`
          + `${r.orders.length ? ` · ${r.orders.join(", ")}` : ""}`,
        r.snippet, r.is_case ? t("case_badge") : "", () => openFound(r.handoff_id))));
      status.textContent = data.results.length ? t("found", { n: data.results.length }) : t("none");
    } catch (err) {
      status.textContent = err.message;
    }
  }

  function show(title, meta, note, messages) {
    $("case-view-title").textContent = title;
    $("case-view-meta").textContent = meta;
    $("case-view-note").textContent = note || "";
    $("case-view-messages").replaceChildren(...messages.map((m) => {
      const li = el("li", `msg msg--${["customer", "bot", "agent", "system"].includes(m.role) ? m.role : "system"}`);
      li.appendChild(el("span", "msg__label", m.role === "agent" && m.name ? m.name : t(m.role)));
      li.appendChild(el("span", "msg__text", m.shown || m.text || ""));
      return li;
    }));
    const dialog = $("case-view");
    if (!dialog.open) {
      dialog.showModal();
    }
  }

  async function openFound(handoffId) {
    try {
      const data = await call("GET", `/api/agent/search/${encodeURIComponent(handoffId)}`);
      const h = data.handoff || {};
      show(`${h.reason_code || ""} · ${h.status || ""}`, `${h.resolution || ""}`, "", data.messages || []);
    } catch (err) {
      $("search-status").textContent = err.message;
    }
  }

  async function openCase(caseId) {
    try {
      const c = await call("GET", `/api/agent/cases/${encodeURIComponent(caseId)}`);
      show(c.title, `${when(c.created_at)} · ${t("by", { name: c.created_by })} · ${(c.tags || []).join(", ")}`
        + `${c.orders && c.orders.length ? ` · ${c.orders.join(", ")}` : ""}`, c.note, c.messages || []);
    } catch (err) {
      $("search-status").textContent = err.message;
    }
  }

  async function saveCase(event) {
    event.preventDefault();
    const message = $("case-message");
    if (!current.handoffId) {
      return;
    }
    const tags = $("case-tags").value.split(/[,，]/).map((s) => s.trim()).filter(Boolean);
    try {
      const saved = await call("PUT", `/api/agent/handoffs/${encodeURIComponent(current.handoffId)}/case`,
        { title: $("case-title-input").value.trim(), tags, note: $("case-note").value.trim() });
      message.textContent = saved.new ? t("saved") : t("updated");
      message.className = "muted small";
    } catch (err) {
      message.textContent = err.message;
      message.className = "error small";
    }
  }

  function updateCaseForm() {
    const allowed = current.role === "supervisor" || (current.ownerId && current.ownerId === current.agentId);
    $("case-section").hidden = !current.handoffId || !allowed;
  }

  document.addEventListener("DOMContentLoaded", () => {
    $("search-form").addEventListener("submit", search);
    $("case-form").addEventListener("submit", saveCase);
    $("case-view-close").addEventListener("click", () => $("case-view").close());
    for (const select of document.querySelectorAll(".ui-lang")) { // the console's language, also with no conversation
      select.addEventListener("change", () => {
        current = { ...current, lang: select.value === "zh" ? "zh" : "en" };
        applyStrings();
      });
    }
    current.lang = document.documentElement.lang === "zh-CN" ? "zh" : "en";
    applyStrings();
  });

  document.addEventListener("desk:conversation", (event) => {
    const next = event.detail || {};
    if (next.handoffId !== current.handoffId) {
      $("case-message").textContent = "";
      $("case-title-input").value = "";
      $("case-tags").value = "";
      $("case-note").value = "";
    }
    const relabel = next.lang !== current.lang;
    current = next;
    updateCaseForm();
    if (relabel) {
      applyStrings();
    }
  });
}());
