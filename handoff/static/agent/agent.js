/*
 * Agent console for the handoff desk (no framework, no build step, no CDN).
 *
 * API: /api/agent/* (session cookie set at login). Live updates: EventSource on /api/agent/events (desk events
 * plus the open conversation's messages). Security rule: every piece of customer, bot or agent text reaches the
 * DOM through textContent only; nothing from the server is ever parsed as HTML.
 *
 * Layout: my conversations first, then the queue (filters with live counts), the open conversation (kept across
 * reloads in the URL hash and sessionStorage, transcript opened at the newest message) and its context. Every
 * console string is in the one dictionary STRINGS below (en, zh). Keyboard: see SHORTCUTS / the "Shortcuts" panel.
 */
(function () {
  "use strict";

  const SVG_NS = "http://www.w3.org/2000/svg";
  const $ = (id) => document.getElementById(id);
  const OPEN_KEY = "desk.open";
  const FILTER_KEY = "desk.filters";
  const LANG_KEY = "desk.lang";
  const PHOTO_RE = /^\[photo\] \/api\/channels\/media\/([A-Za-z0-9_-]{1,64})$/;
  const MACRO_VARS = ["customer_name", "order_number", "tracking_number", "agent_name"];
  const TYPING_EVERY_MS = 2500;

  // ---------------------------------------------------------------- strings (the one dictionary)

  const STRINGS = {
    en: {
      title: "Agent desk", username: "Username", password: "Password", login: "Log in", logout: "Log out",
      login_failed: "Login failed.", language_ui: "Language", live_updates: "Live updates",
      live: "live", offline: "offline", reconnecting: "reconnecting",
      shortcuts: "Shortcuts", sc_next: "next in queue", sc_prev: "previous in queue",
      sc_claim: "claim the open conversation", sc_reply: "write a reply", sc_send: "send the reply",
      sc_handback: "hand back to the bot", sc_escape: "leave the text box", sc_help: "show or hide this list",
      mine: "My conversations", queue: "Queue", alerts: "Alerts", agents: "Agents",
      queue_help: "Enter opens a card; j/k move through the queue.",
      f_reason: "Reason", f_priority: "Priority", f_language: "Language", f_channel: "Channel", f_tier: "Tier",
      all_reason_code: "All reasons", all_effective_priority: "All priorities", all_language: "All languages",
      all_channel: "All channels", all_tier: "All tiers",
      new_account: "New account", acc_name: "Account name", acc_display: "Shown to colleagues as",
      acc_password: "Initial passphrase (8+ characters)", acc_role: "Role", acc_create: "Create account",
      acc_created: "Created {role} {username}.",
      acc_failed: "Could not create the account: the name takes 2-40 letters, digits, '.', '_' or '-'.",
      empty: "Select a conversation from the queue.", conversation: "Conversation {id}",
      wanted: "What the customer actually wanted (for the editors)", wanted_none: "Bot got it right / not sure",
      wanted_intents: "Intent", wanted_articles: "Article",
      claim: "Claim", handback: "Hand back to bot", transfer: "Transfer", transfer_to: "Transfer to agent",
      resolution: "Resolution code", complaint_type: "Complaint type", ct_attitude: "Complaint: staff attitude",
      ct_product: "Complaint: product", ct_efficiency: "Complaint: efficiency", ct_solution: "Complaint: solution offered",
      ct_other: "Complaint: other", close: "Close", send: "Send", offline_suffix: " (offline)",
      canned_search: "Search canned answers…", reply_label: "Reply to the customer",
      reply_placeholder: "Type a reply… (Enter or Ctrl+Enter sends, Shift+Enter new line)",
      status_queued: "queued", status_claimed: "claimed by {name}", status_handed_back: "handed_back",
      status_closed: "closed", waited: "waited {wait}", frustration_n: "frustration {n}", ticket: "ticket {id}",
      supervisor_only: "supervisor", reopened: "reopened {stars}★", agent_n: "agent {name}",
      role_customer: "customer", role_bot: "bot", role_agent: "agent", role_system: "system",
      tapped: "tapped a button", you: "you",
      context: "Context", summary: "Summary", bot_attempts: "What the bot tried", frustration: "Frustration",
      identifiers: "Order & identifiers", understanding: "Bot's understanding", kb_shown: "Knowledge articles shown",
      earlier: "Earlier conversations", debug: "Debug (supervisors)", nothing: "nothing recorded",
      c_customer: "Customer", c_anonymous: "anonymous", c_tier: "Tier", c_verified: "Verified", yes: "yes", no: "no",
      c_language: "Language", c_channel: "Channel", c_reason: "Reason", c_priority: "Priority",
      c_priority_v: "{p} (queue {e})", c_frustration: "Frustration", c_frustration_v: "{n} / 100",
      c_orders: "Orders", c_tracking: "Tracking",
      reopen_banner: "Reopened after a {stars}★ rating.", reopen_words: "The customer said: “{words}”",
      reopen_no_words: "The customer left no comment.",
      curve_label: "Frustration curve, latest {n} of 100", score: "score {n}",
      notes: "Internal notes", notes_help: "Only agents and supervisors see notes; the customer never does.",
      note_label: "New internal note", note_add: "Add note", no_notes: "No notes yet.",
      ack: "Acknowledge",
      a_sla: "{reason} · waited {wait}", a_sla_d: "not picked up within the SLA ({when})",
      a_undelivered: "undelivered handoff · {reason}",
      a_undelivered_d: "conversation {cid}: gave up after {attempts} attempts ({error}) {when}",
      a_complaint: "complaint unanswered for {wait}", a_complaint_d: "escalated to a supervisor after 48 h ({when})",
      a_repeat: "repeat complaint · {n}×", a_repeat_d: "customer {customer}, order {order} ({when})",
      a_group: "group incident · {n} customers", a_group_d: "{kind}: {value} ({when})",
      sc_macro: "insert a macro (↑/↓ choose, Enter inserts)", macros: "Macros", kb_answers: "Knowledge answers",
      macro_search: "Search macros… (m)", macro_manage: "Manage macros", macro_scope: "Who uses it",
      macro_personal: "Only me", macro_shared: "Everyone (shared)", macro_title_en: "Title (English)",
      macro_text_en: "Text (English)", macro_title_zh: "Title (Chinese)", macro_text_zh: "Text (Chinese)",
      macro_vars: "Variables: {customer_name} {order_number} {tracking_number} {agent_name}",
      macro_save: "Save macro", macro_cancel: "New", macro_saved: "Saved “{title}”.", macro_deleted: "Deleted.",
      macro_edit: "Edit", macro_delete: "Delete", macro_none: "No macros yet.", scope_shared: "shared",
      scope_personal: "mine", macro_missing: "Fill in before sending: {names}",
      macro_unfilled: "The reply still has {names}: replace it with the real value first.",
      photo: "Photo from the customer",
    },
    zh: {
      title: "客服工作台", username: "用户名", password: "密码", login: "登录", logout: "退出",
      login_failed: "登录失败。", language_ui: "界面语言", live_updates: "实时更新",
      live: "实时", offline: "离线", reconnecting: "重新连接中",
      shortcuts: "快捷键", sc_next: "队列中的下一个", sc_prev: "队列中的上一个",
      sc_claim: "接入当前对话", sc_reply: "输入回复", sc_send: "发送回复",
      sc_handback: "交回机器人", sc_escape: "离开输入框", sc_help: "显示或隐藏此列表",
      mine: "我的对话", queue: "排队中", alerts: "告警", agents: "客服账号",
      queue_help: "回车打开卡片；j/k 在队列中移动。",
      f_reason: "原因", f_priority: "优先级", f_language: "语言", f_channel: "渠道", f_tier: "会员等级",
      all_reason_code: "全部原因", all_effective_priority: "全部优先级", all_language: "全部语言",
      all_channel: "全部渠道", all_tier: "全部等级",
      new_account: "新建账号", acc_name: "账号名", acc_display: "同事看到的名字",
      acc_password: "初始密码（至少 8 个字符）", acc_role: "角色", acc_create: "创建账号",
      acc_created: "已创建 {role} {username}。",
      acc_failed: "无法创建账号：账号名需为 2-40 个字母、数字、“.”、“_”或“-”。",
      empty: "请从队列中选择一个对话。", conversation: "对话 {id}",
      wanted: "客户实际想要什么（供编辑改进机器人）", wanted_none: "机器人答对了 / 不确定",
      wanted_intents: "意图", wanted_articles: "文章",
      claim: "接入", handback: "交回机器人", transfer: "转接", transfer_to: "转接给客服",
      resolution: "结案代码", complaint_type: "投诉类型", ct_attitude: "投诉：服务态度", ct_product: "投诉：产品问题",
      ct_efficiency: "投诉：处理效率", ct_solution: "投诉：解决方案", ct_other: "投诉：其他", close: "结束", send: "发送", offline_suffix: "（离线）",
      canned_search: "搜索常用回复…", reply_label: "回复客户",
      reply_placeholder: "输入回复…（回车或 Ctrl+回车发送，Shift+回车换行）",
      status_queued: "排队中", status_claimed: "{name} 已接入", status_handed_back: "已交回机器人",
      status_closed: "已结束", waited: "已等待 {wait}", frustration_n: "不满度 {n}", ticket: "工单 {id}",
      supervisor_only: "仅主管", reopened: "差评重开 {stars}★", agent_n: "客服 {name}",
      role_customer: "客户", role_bot: "机器人", role_agent: "客服", role_system: "系统",
      tapped: "点击了按钮", you: "你",
      context: "上下文", summary: "摘要", bot_attempts: "机器人做过的尝试", frustration: "不满度",
      identifiers: "订单与编号", understanding: "机器人的理解", kb_shown: "展示过的知识库文章",
      earlier: "以往对话", debug: "调试信息（主管）", nothing: "没有记录",
      c_customer: "客户", c_anonymous: "匿名", c_tier: "会员等级", c_verified: "已验证", yes: "是", no: "否",
      c_language: "语言", c_channel: "渠道", c_reason: "原因", c_priority: "优先级",
      c_priority_v: "{p}（队列 {e}）", c_frustration: "不满度", c_frustration_v: "{n} / 100",
      c_orders: "订单", c_tracking: "运单",
      reopen_banner: "客户评分 {stars}★，案件已重开。", reopen_words: "客户留言：“{words}”",
      reopen_no_words: "客户没有留言。",
      curve_label: "不满度曲线，最新 {n} / 100", score: "分数 {n}",
      notes: "内部备注", notes_help: "备注只有客服和主管可见，客户看不到。",
      note_label: "新的内部备注", note_add: "添加备注", no_notes: "暂无备注。",
      ack: "确认",
      a_sla: "{reason} · 已等待 {wait}", a_sla_d: "未在服务时限内接入（{when}）",
      a_undelivered: "未送达的转人工 · {reason}",
      a_undelivered_d: "对话 {cid}：尝试 {attempts} 次后放弃（{error}）{when}",
      a_complaint: "投诉 {wait} 未回复", a_complaint_d: "超过 48 小时，已升级给主管（{when}）",
      a_repeat: "重复投诉 · {n} 次", a_repeat_d: "客户 {customer}，订单 {order}（{when}）",
      a_group: "群体事件 · {n} 位客户", a_group_d: "{kind}：{value}（{when}）",
      sc_macro: "插入快捷回复（↑/↓ 选择，回车插入）", macros: "快捷回复", kb_answers: "知识库答案",
      macro_search: "搜索快捷回复…（m）", macro_manage: "管理快捷回复", macro_scope: "使用范围",
      macro_personal: "仅自己", macro_shared: "所有人（共享）", macro_title_en: "标题（英文）",
      macro_text_en: "内容（英文）", macro_title_zh: "标题（中文）", macro_text_zh: "内容（中文）",
      macro_vars: "变量：{customer_name} {order_number} {tracking_number} {agent_name}",
      macro_save: "保存", macro_cancel: "新建", macro_saved: "已保存“{title}”。", macro_deleted: "已删除。",
      macro_edit: "编辑", macro_delete: "删除", macro_none: "还没有快捷回复。", scope_shared: "共享",
      scope_personal: "我的", macro_missing: "发送前请填写：{names}",
      macro_unfilled: "回复中仍有 {names}，请先替换为实际内容。",
      photo: "客户发送的图片",
    },
  };
  // Reason codes read as words in Chinese; the English console keeps the codes agents and reports already use.
  const REASONS_ZH = {
    explicit_request: "客户要求人工", high_frustration: "客户非常不满", repeated_failure: "机器人多次未能解决",
    sensitive_legal: "敏感：法律", sensitive_regulator: "敏感：监管投诉", sensitive_media: "敏感：媒体曝光",
    sensitive_safety: "敏感：安全", sensitive_fraud: "敏感：欺诈", complaint: "投诉",
  };

  let lang = "en";

  function t(key, vars) {
    let text = (STRINGS[lang] && STRINGS[lang][key]) || STRINGS.en[key] || key;
    for (const [name, value] of Object.entries(vars || {})) {
      text = text.split(`{${name}}`).join(String(value));
    }
    return text;
  }

  function reasonLabel(code) {
    return lang === "zh" && REASONS_ZH[code] ? REASONS_ZH[code] : code;
  }

  function applyStrings() {
    document.documentElement.lang = lang === "zh" ? "zh-CN" : "en";
    document.title = t("title");
    for (const node of document.querySelectorAll("[data-i18n]")) {
      node.textContent = t(node.dataset.i18n);
    }
    for (const node of document.querySelectorAll("[data-i18n-placeholder]")) {
      node.placeholder = t(node.dataset.i18nPlaceholder);
    }
    for (const node of document.querySelectorAll("[data-i18n-aria]")) {
      node.setAttribute("aria-label", t(node.dataset.i18nAria));
    }
    for (const node of document.querySelectorAll("[data-i18n-title]")) {
      node.title = t(node.dataset.i18nTitle);
    }
    for (const select of document.querySelectorAll(".ui-lang")) {
      select.value = lang;
    }
    setLive(state.liveState);
  }

  function setLanguage(value) {
    lang = value === "zh" ? "zh" : "en";
    try {
      window.localStorage.setItem(LANG_KEY, lang);
    } catch (err) { /* private mode: the choice lasts for this page */ }
    applyStrings();
    if (!$("desk-view").hidden) {
      renderLists();
      renderAccounts();
      renderMacros();
      renderOwnMacros();
      if (state.handoff) {
        renderHandoff();
        renderContext();
        rerenderTranscript();
        renderNotes();
      }
    }
  }

  function initialLanguage() {
    let saved = null;
    try {
      saved = window.localStorage.getItem(LANG_KEY);
    } catch (err) { /* ignore */ }
    if (saved === "zh" || saved === "en") {
      return saved;
    }
    return (navigator.language || "").toLowerCase().startsWith("zh") ? "zh" : "en";
  }

  // ---------------------------------------------------------------- state and helpers

  const state = {
    me: null,
    meta: { reason_codes: [], resolution_codes: [], complaint_types: [] },
    agents: [],
    queue: [],
    mine: [],
    alerts: [],
    filters: {},
    selected: null, // handoff id
    handoff: null, // summary row of the selected handoff
    context: null,
    reopen: null,
    notes: [],
    macros: [],
    macroActive: 0,
    typingSentAt: 0,
    messages: [],
    knownMessageIds: new Set(),
    lastMessageId: "",
    events: null,
    eventsKey: null,
    refreshTimer: 0,
    liveState: "offline",
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
    return Number.isNaN(date.getTime()) ? "" : date.toLocaleTimeString(lang === "zh" ? "zh-CN" : "en-GB");
  }

  function setLive(which) {
    state.liveState = which;
    $("live-status").textContent = t(which);
    $("live-status").dataset.state = which;
    $("live-status").classList.toggle("on", which === "live");
  }

  function remember(handoffId) {
    try {
      if (handoffId) {
        window.sessionStorage.setItem(OPEN_KEY, handoffId);
      } else {
        window.sessionStorage.removeItem(OPEN_KEY);
      }
    } catch (err) { /* ignore */ }
    const hash = handoffId ? `#${encodeURIComponent(handoffId)}` : "";
    if (window.location.hash !== hash) {
      window.history.replaceState(null, "", `${window.location.pathname}${window.location.search}${hash}`);
    }
  }

  function remembered() {
    const fromHash = decodeURIComponent(window.location.hash.replace(/^#/, ""));
    if (/^[A-Za-z0-9_-]{1,64}$/.test(fromHash)) {
      return fromHash;
    }
    try {
      return window.sessionStorage.getItem(OPEN_KEY);
    } catch (err) {
      return null;
    }
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
      $("login-error").textContent = err.detail || t("login_failed");
    }
  }

  async function onLogout() {
    try {
      await api("POST", "/api/agent/logout");
    } finally {
      remember(null);
      showLogin();
    }
  }

  // ---------------------------------------------------------------- lists

  const FILTERS = ["reason_code", "effective_priority", "language", "channel", "tier"];

  function queueItem(row, where) {
    const li = el("li", "card");
    li.dataset.handoffId = row.handoff_id;
    li.dataset.reason = row.reason_code;
    li.dataset.frustration = String(row.frustration);
    li.tabIndex = 0;
    if (row.handoff_id === state.selected) {
      li.classList.add("selected");
      li.setAttribute("aria-current", "true");
    }
    const top = el("div", "row");
    top.appendChild(el("span", `prio prio-${row.effective_priority}`, `P${row.effective_priority}`));
    top.appendChild(el("span", "reason", reasonLabel(row.reason_code)));
    top.appendChild(el("span", "wait", formatWait(row.wait_s)));
    li.appendChild(top);
    const details = [row.tier, row.language, row.channel].filter(Boolean);
    const frus = el("span", "frus", t("frustration_n", { n: row.frustration }));
    const sub = el("div", "sub", details.join(" · "));
    sub.appendChild(document.createTextNode(" · "));
    sub.appendChild(frus);
    const extra = [];
    if (row.csat && row.csat <= 2 && row.supervisor_only) {
      extra.push(t("reopened", { stars: row.csat }));
    }
    if (row.ticket_id) {
      extra.push(t("ticket", { id: row.ticket_id }));
    }
    if (row.supervisor_only) {
      extra.push(t("supervisor_only"));
    }
    if (where === "mine" && row.agent_id && row.agent_id !== state.me.id) {
      extra.push(t("agent_n", { name: agentName(row.agent_id) }));
    }
    if (extra.length) {
      sub.appendChild(document.createTextNode(` · ${extra.join(" · ")}`));
    }
    li.appendChild(sub);
    li.appendChild(el("div", "sub", row.summary || ""));
    li.title = row.summary || "";
    li.setAttribute("aria-label", `P${row.effective_priority} ${reasonLabel(row.reason_code)}, ${details.join(", ")}, `
      + `${t("frustration_n", { n: row.frustration })}, ${t("waited", { wait: formatWait(row.wait_s) })}`);
    li.addEventListener("click", () => select(row.handoff_id));
    li.addEventListener("keydown", (event) => {
      if ((event.key === "Enter" || event.key === " ") && event.target === li) {
        event.preventDefault();
        select(row.handoff_id);
      }
    });
    return li;
  }

  function agentName(id) {
    const agent = state.agents.find((a) => a.id === id);
    return agent ? agent.display_name : id;
  }

  function matches(row, except) {
    return FILTERS.every((name) => name === except || !state.filters[name]
      || String(row[name] ?? "") === state.filters[name]);
  }

  function filterLabel(name, value) {
    if (name === "reason_code") {
      return reasonLabel(value);
    }
    if (name === "effective_priority") {
      return `P${value}`;
    }
    return value;
  }

  /** Filter menus with live counts: each option counts the waiting items it would show, given the other filters. */
  function renderFilters() {
    const known = {
      reason_code: state.meta.reason_codes,
      effective_priority: ["1", "2", "3", "4"],
      language: ["zh", "en"],
      channel: ["webchat"],
      tier: ["regular"],
    };
    for (const name of FILTERS) {
      const select = document.querySelector(`select[data-filter="${name}"]`);
      const values = new Set(known[name].map(String));
      for (const row of state.queue) {
        if (row[name] !== null && row[name] !== undefined && row[name] !== "") {
          values.add(String(row[name]));
        }
      }
      if (state.filters[name]) {
        values.add(state.filters[name]);
      }
      const pool = state.queue.filter((row) => matches(row, name));
      const all = el("option", "", `${t(`all_${name}`)} (${pool.length})`);
      all.value = "";
      const options = [all];
      for (const value of values) {
        const count = pool.filter((row) => String(row[name] ?? "") === value).length;
        const option = el("option", "", `${filterLabel(name, value)} (${count})`);
        option.value = value;
        option.dataset.count = String(count);
        options.push(option);
      }
      select.replaceChildren(...options);
      select.value = state.filters[name] || "";
    }
  }

  function renderLists() {
    const shown = state.queue.filter((row) => matches(row, null));
    $("queue").replaceChildren(...shown.map((row) => queueItem(row, "queue")));
    $("queue-count").textContent = shown.length === state.queue.length ? String(state.queue.length)
      : `${shown.length}/${state.queue.length}`;
    $("mine").replaceChildren(...state.mine.map((row) => queueItem(row, "mine")));
    $("mine-count").textContent = String(state.mine.length);
    renderFilters();
    if (state.me && state.me.role === "supervisor") {
      $("alerts-section").hidden = false;
      $("alerts-count").textContent = String(state.alerts.length);
      $("alerts").replaceChildren(...state.alerts.map(alertItem));
    }
  }

  async function refreshLists() {
    const [queue, mine] = await Promise.all([api("GET", "/api/agent/queue"), api("GET", "/api/agent/mine")]);
    state.queue = queue;
    state.mine = mine;
    if (state.me && state.me.role === "supervisor") {
      state.alerts = await api("GET", "/api/agent/alerts");
    }
    // Where the focus is now, right before the cards are re-rendered (not before the requests: the agent may
    // have moved to another card meanwhile, e.g. with j).
    const focused = document.activeElement && document.activeElement.dataset
      ? document.activeElement.dataset.handoffId : null;
    renderLists();
    // A refresh must not take the keyboard focus away from the card the agent is on (re-rendering dropped it to
    // the page), nor pull it back to that card when the agent moved on meanwhile (e.g. claimed: the reply box).
    const active = document.activeElement;
    if (focused && (!active || active === document.body)) {
      const again = document.querySelector(`.list li[data-handoff-id="${CSS.escape(focused)}"]`);
      if (again) {
        again.focus();
      }
    }
  }

  function onFilterChange(event) {
    const name = event.target.dataset.filter;
    state.filters[name] = event.target.value;
    try {
      window.sessionStorage.setItem(FILTER_KEY, JSON.stringify(state.filters));
    } catch (err) { /* ignore */ }
    renderLists();
  }

  // Supervisors' alerts: what happened, and an acknowledge button (the server closes or hides the alert).
  function alertText(a) {
    const when = formatTime(a.raised_at);
    switch (a.kind) {
      case "sla_pickup":
        return [t("a_sla", { reason: reasonLabel(a.reason_code), wait: formatWait(a.wait_s) }), t("a_sla_d", { when })];
      case "handoff_undelivered":
        return [t("a_undelivered", { reason: reasonLabel(a.reason_code) }), t("a_undelivered_d", {
          cid: a.conversation_id, attempts: a.attempts, error: a.error, when })];
      case "complaint_overdue":
        return [t("a_complaint", { wait: formatWait(a.wait_s) }), t("a_complaint_d", { when })];
      case "repeat_complaint":
        return [t("a_repeat", { n: a.complaints }), t("a_repeat_d", { customer: a.customer_id,
          order: a.order_number, when })];
      case "group_incident":
        return [t("a_group", { n: a.customers }), t("a_group_d", { kind: a.problem_kind, value: a.problem_value, when })];
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
    const ack = el("button", "ack", t("ack"));
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
      li.tabIndex = 0;
      li.addEventListener("click", () => select(a.handoff_id));
      li.addEventListener("keydown", (event) => {
        if (event.key === "Enter" && event.target === li) {
          select(a.handoff_id);
        }
      });
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
      message.textContent = t("acc_created", { role: created.role, username: created.username });
      state.agents = await api("GET", "/api/agent/agents");
      renderAccounts();
    } catch (err) {
      message.textContent = err.detail || t("acc_failed");
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
    state.reopen = null;
    state.notes = [];
    remember(null);
    $("conversation").hidden = true;
    $("context-panel").hidden = true;
    $("empty-state").textContent = reason || t("empty");
    $("empty-state").hidden = false;
    for (const li of document.querySelectorAll(".list li")) {
      li.classList.remove("selected");
      li.removeAttribute("aria-current");
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
    if (state.selected !== handoffId) {
      return; // the agent moved on while this loaded
    }
    remember(handoffId);
    state.handoff = data.handoff;
    state.context = data.context;
    state.reopen = data.reopen || null;
    state.notes = data.notes || [];
    state.messages = [];
    state.knownMessageIds = new Set();
    state.lastMessageId = "";
    $("transcript").replaceChildren();
    $("empty-state").hidden = true;
    $("conversation").hidden = false;
    $("context-panel").hidden = false;
    for (const message of data.messages) {
      appendMessage(message);
    }
    scrollToNewest();
    renderHandoff();
    renderContext();
    renderNotes();
    openEvents();
    loadCanned();
    loadMacros();
    for (const li of document.querySelectorAll(".list li")) {
      const on = li.dataset.handoffId === handoffId;
      li.classList.toggle("selected", on);
      if (on) {
        li.setAttribute("aria-current", "true");
      } else {
        li.removeAttribute("aria-current");
      }
    }
  }

  // The transcript follows the newest message while the agent is there. Layout that settles later (canned
  // answers, notes, the context panel loading) resizes it; a ResizeObserver keeps it at the newest message
  // unless the agent scrolled up to read.
  let stickToNewest = true;

  function scrollToNewest() {
    stickToNewest = true;
    const list = $("transcript");
    list.scrollTop = list.scrollHeight;
  }

  function followTranscript() {
    const list = $("transcript");
    list.addEventListener("scroll", () => {
      stickToNewest = list.scrollHeight - list.scrollTop - list.clientHeight < 80;
    });
    const keep = () => {
      if (stickToNewest) {
        list.scrollTop = list.scrollHeight;
      }
    };
    new window.ResizeObserver(keep).observe(list);
    new window.MutationObserver(keep).observe(list, { childList: true });
  }

  function messageNode(message) {
    const role = ["customer", "bot", "agent", "system"].includes(message.role) ? message.role : "system";
    const li = el("li", `msg msg--${role}`);
    li.dataset.id = message.id;
    li.dataset.role = role;
    let who = t(`role_${role}`);
    if (role === "agent") {
      who = message.author === state.me.id ? t("you") : (message.author_name || agentName(message.author) || who);
    }
    const meta = [who, formatTime(message.ts)];
    if (message.shown) { // a button the customer tapped: what they saw, not the payload the bot received
      li.classList.add("msg--tap");
      meta.push(t("tapped"));
    }
    li.appendChild(el("span", "msg__meta", meta.filter(Boolean).join(" · ")));
    const photo = role === "customer" && PHOTO_RE.exec(message.text || "");
    if (photo) { // a customer's photo: shown from the desk's own authenticated media route, never a foreign URL
      const link = el("a", "msg__photo-link");
      link.href = `/api/channels/media/${photo[1]}`;
      link.target = "_blank";
      link.rel = "noopener";
      const img = el("img", "msg__photo");
      img.src = link.href;
      img.alt = t("photo");
      img.loading = "lazy";
      link.appendChild(img);
      li.appendChild(link);
      return li;
    }
    li.appendChild(el("span", "msg__text", message.shown || message.text));
    return li;
  }

  function appendMessage(message) {
    if (!message || state.knownMessageIds.has(message.id)) {
      return;
    }
    state.knownMessageIds.add(message.id);
    state.lastMessageId = message.id;
    state.messages.push(message);
    $("transcript").appendChild(messageNode(message)); // followTranscript keeps it in view if the agent is at the newest
  }

  function rerenderTranscript() {
    $("transcript").replaceChildren(...state.messages.map(messageNode));
    scrollToNewest();
  }

  function statusText(h) {
    if (h.status === "claimed") {
      return t("status_claimed", { name: h.agent_id === state.me.id ? state.me.display_name : agentName(h.agent_id) });
    }
    return t(`status_${h.status}`);
  }

  function renderHandoff() {
    const h = state.handoff;
    const mineNow = h.status === "claimed" && h.agent_id === state.me.id;
    const supervisor = state.me.role === "supervisor";
    const open = h.status === "queued" || h.status === "claimed";
    $("conv-title").textContent = t("conversation", { id: h.conversation_id.slice(0, 8) });
    $("conv-status").textContent = statusText(h);
    $("conv-reason").textContent = `${reasonLabel(h.reason_code)} · P${h.effective_priority}`;
    $("claim").hidden = h.status !== "queued";
    $("complaint-type").hidden = h.reason_code !== "complaint";
    $("handback").disabled = !(mineNow || (supervisor && open));
    $("wanted").disabled = !(mineNow || (supervisor && open));
    $("close").disabled = !(mineNow || (supervisor && open));
    $("transfer").disabled = !(mineNow || (supervisor && open));
    $("reply-text").disabled = !mineNow;
    $("reply-send").disabled = !mineNow;
    $("note-text").disabled = !open && !supervisor;
    const others = state.agents.filter((a) => a.id !== h.agent_id && a.role !== "editor");
    const chosen = $("transfer-to").value;
    $("transfer-to").replaceChildren(...others.map((a) => {
      const option = el("option", "", `${a.display_name}${a.online ? "" : t("offline_suffix")}`);
      option.value = a.id;
      return option;
    }));
    if (others.some((a) => a.id === chosen)) {
      $("transfer-to").value = chosen;
    }
    $("resolution").replaceChildren(...state.meta.resolution_codes.map((code) => {
      const option = el("option", "", code);
      option.value = code;
      return option;
    }));
    // a complaint is closed with its type (the managers' complaint-type breakdown)
    $("complaint-type").replaceChildren(...(state.meta.complaint_types || []).map((code) => {
      const option = el("option", "", t(`ct_${code}`));
      option.value = code;
      return option;
    }));
  }

  function fact(list, label, value, key) {
    const dt = el("dt", "", label);
    const dd = el("dd", "", value === null || value === undefined || value === "" ? "—" : value);
    if (key) {
      dd.dataset.fact = key;
    }
    list.appendChild(dt);
    list.appendChild(dd);
  }

  // Other console modules open a conversation through this event (accounts.js: "take next").
  document.addEventListener("desk:open", (event) => {
    const handoffId = event.detail && event.detail.handoffId;
    if (handoffId) {
      refreshLists().catch(() => {});
      select(handoffId).catch(() => {});
    }
  });

  // Other console modules (orders.js: live orders and order actions) follow the open conversation through this event.
  function announceConversation() {
    document.dispatchEvent(new CustomEvent("desk:conversation", { detail: {
      handoffId: state.selected || null, status: (state.handoff || {}).status || "", lang,
      role: state.me ? state.me.role : "", agentId: state.me ? state.me.id : "",
      ownerId: (state.handoff || {}).agent_id || "" } }));
  }

  function renderContext() {
    announceConversation();
    const c = state.context || {};
    const h = state.handoff || {};
    const customer = c.customer || {};
    const escalation = c.escalation || {};
    const banner = $("context-reopen");
    if (state.reopen) {
      const words = state.reopen.words || [];
      banner.replaceChildren(el("strong", "", t("reopen_banner", { stars: state.reopen.stars })), el("br"),
        el("span", "reopen__words", words.length ? t("reopen_words", { words: words.join(" / ") }) : t("reopen_no_words")));
      banner.dataset.stars = String(state.reopen.stars);
      banner.hidden = false;
    } else {
      banner.hidden = true;
      banner.replaceChildren();
    }
    const facts = $("context-customer");
    facts.replaceChildren();
    fact(facts, t("c_customer"), customer.id || t("c_anonymous"));
    fact(facts, t("c_tier"), customer.tier);
    fact(facts, t("c_verified"), customer.verified ? t("yes") : t("no"));
    fact(facts, t("c_language"), customer.language);
    fact(facts, t("c_channel"), c.channel);
    fact(facts, t("c_reason"), reasonLabel(escalation.reason_code));
    fact(facts, t("c_priority"), t("c_priority_v", { p: escalation.priority, e: escalation.effective_priority }));
    // The queue card's number: the score the escalation was decided on (the handoff row), not the curve's last dot.
    fact(facts, t("c_frustration"), t("c_frustration_v", { n: h.frustration }), "frustration");
    $("context-summary").textContent = (c.summary && c.summary.text) || "";
    const attempts = (c.summary && (c.summary.bot_attempts || c.summary.bot_tried)) || [];
    $("context-attempts").replaceChildren(...(attempts.length ? attempts : [t("nothing")]).map((a) => el("li", "", a)));
    renderCurve(c.frustration || {}, h.frustration);
    const ids = $("context-identifiers");
    ids.replaceChildren();
    const identifiers = c.identifiers || {};
    fact(ids, t("c_orders"), (identifiers.order_numbers || []).join(", "));
    fact(ids, t("c_tracking"), (identifiers.tracking_numbers || []).join(", "));
    $("context-turns").replaceChildren(...(c.turns || []).map((turn) => {
      const confidence = typeof turn.confidence === "number" ? ` ${(turn.confidence * 100).toFixed(0)}%` : "";
      const frustration = typeof turn.frustration === "number" ? ` · ${t("frustration_n", { n: turn.frustration })}` : "";
      return el("li", "", `${turn.intent || "?"}${confidence}${frustration} — ${turn.shown || turn.text}`);
    }));
    $("context-kb").replaceChildren(...(c.kb_articles || []).map((a) => el(
      "li", "", `${typeof a.title === "string" ? a.title : a.id} (${a.score ?? "?"})${a.feedback ? ` · ${a.feedback}` : ""}`,
    )));
    $("context-earlier").replaceChildren(...(c.earlier_conversations || []).map((e) => el(
      "li", "", `${e.created_at || ""}${e.channel ? ` · ${e.channel}` : ""}${e.reason_code ? ` · ${reasonLabel(e.reason_code)}` : ""} · ${e.status}${e.resolution ? ` (${e.resolution})` : ""}${e.csat ? ` · CSAT ${e.csat}` : ""}${(e.messages || []).length ? ` · “${e.messages.find((m) => m.role === "customer")?.text || e.messages[0].text}”` : ""}`,
    )));
    // Raw slots are debug data: the server sends them to supervisors only, never verification digits.
    const supervisor = state.me.role === "supervisor";
    $("debug").hidden = !supervisor;
    const slots = $("context-slots");
    slots.replaceChildren();
    if (supervisor) {
      for (const [name, value] of Object.entries(c.slots || {})) {
        fact(slots, name, typeof value === "string" ? value : JSON.stringify(value));
      }
    }
  }

  function renderNotes() {
    const list = $("notes");
    if (!state.notes.length) {
      list.replaceChildren(el("li", "muted", t("no_notes")));
      return;
    }
    list.replaceChildren(...state.notes.map((note) => {
      const li = el("li", "note");
      li.dataset.id = note.id;
      li.appendChild(el("span", "msg__meta", `${note.author_name || agentName(note.author_id)} · ${formatTime(note.ts)}`));
      li.appendChild(el("span", "note__text", note.text)); // text, never HTML
      return li;
    }));
  }

  async function addNote(event) {
    event.preventDefault();
    const box = $("note-text");
    const text = box.value.trim();
    if (!text || !state.selected) {
      return;
    }
    await act(async () => {
      const note = await post("notes", { text });
      box.value = "";
      if (!state.notes.some((n) => n.id === note.id)) {
        state.notes.push(note);
      }
      renderNotes();
    });
  }

  async function reloadNotes() {
    if (!state.selected) {
      return;
    }
    try {
      state.notes = await api("GET", `/api/agent/handoffs/${encodeURIComponent(state.selected)}/notes`);
      renderNotes();
    } catch (err) {
      console.warn("desk: notes failed", err);
    }
  }

  /** Inline SVG line of the frustration scores (0-100), one point per scored message. */
  function renderCurve(frustration, decided) {
    const points = (frustration.curve && frustration.curve.length ? frustration.curve : frustration.per_message || [])
      .filter((p) => typeof p.score === "number");
    const width = 300;
    const height = 100;
    const svg = document.createElementNS(SVG_NS, "svg");
    svg.setAttribute("viewBox", `0 0 ${width} ${height}`);
    svg.setAttribute("role", "img");
    svg.setAttribute("aria-label", t("curve_label", { n: decided ?? frustration.score ?? "?" }));
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
        title.textContent = t("score", { n: points[i].score });
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
      state.reopen = data.reopen || null;
      state.notes = data.notes || state.notes;
      for (const message of data.messages) {
        appendMessage(message);
      }
      renderHandoff();
      renderContext();
      renderNotes();
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
    if (!text || box.disabled) {
      return;
    }
    const unfilled = MACRO_VARS.filter((name) => text.includes(`{${name}}`));
    if (unfilled.length) { // a macro variable the conversation had no value for: never sent as "{order_number}"
      $("action-error").textContent = t("macro_unfilled", { names: unfilled.map((n) => `{${n}}`).join(" ") });
      selectPlaceholder();
      return;
    }
    await act(async () => {
      const result = await post("messages", { text, message_id: newMessageId() });
      box.value = "";
      $("macro-missing").textContent = "";
      if (!state.knownMessageIds.has(result.id)) {
        appendMessage({ id: result.id, role: "agent", text, ts: Date.now() / 1000, author: state.me.id });
      }
    });
  }

  async function claim() {
    await act(async () => {
      await post("claim");
      await reloadSelected();
    });
    if (!$("reply-text").disabled) {
      $("reply-text").focus(); // the next thing an agent does after claiming is to greet the customer
    }
  }

  async function handBack() {
    await act(async () => {
      await post("handback", withCorrection({}));
      $("wanted").value = "";
      await reloadSelected();
    });
  }

  // At hand-back or close the agent can mark what the customer actually wanted (an intent or an article): it goes
  // to the editors' inbox (handoff/corrections.py -> workbench/inbox.py).
  async function loadWanted() {
    const options = await api("GET", `/api/agent/corrections/options?lang=${lang}`);
    const intents = el("optgroup");
    intents.label = t("wanted_intents");
    intents.append(...options.intents.map((name) => {
      const o = el("option", "", name);
      o.value = `intent:${name}`;
      return o;
    }));
    const articles = el("optgroup");
    articles.label = t("wanted_articles");
    articles.append(...options.articles.map((a) => {
      const o = el("option", "", `${a.title} (${a.id})`);
      o.value = `article:${a.id}`;
      return o;
    }));
    const none = el("option", "", t("wanted_none"));
    none.value = "";
    $("wanted").replaceChildren(none, intents, articles);
  }

  function withCorrection(body) {
    const value = $("wanted").value;
    if (!value) return body;
    const [kind, ...rest] = value.split(":");
    const target = rest.join(":");
    return { ...body, correction: kind === "intent" ? { intent: target } : { article_id: target } };
  }

  async function loadCanned() {
    const language = (state.context && state.context.customer && state.context.customer.language) || "zh";
    const query = $("canned-search").value.trim();
    try {
      const answers = await api("GET", `/api/agent/canned?lang=${language}&q=${encodeURIComponent(query)}`);
      $("canned").replaceChildren(...answers.map((a) => {
        const li = el("li", "", a.title);
        li.title = a.answer;
        li.tabIndex = 0;
        const use = () => {
          const box = $("reply-text");
          box.value = box.value ? `${box.value}\n${a.answer}` : a.answer;
          box.focus();
        };
        li.addEventListener("click", use);
        li.addEventListener("keydown", (event) => {
          if (event.key === "Enter") {
            event.preventDefault();
            use();
          }
        });
        return li;
      }));
    } catch (err) {
      console.warn("desk: canned answers failed", err);
    }
  }

  // ---------------------------------------------------------------- macros (reply templates)

  function customerLanguage() {
    const c = state.context && state.context.customer;
    return (c && c.language) || (state.handoff && state.handoff.language) || "zh";
  }

  function macroLabel(m, language) {
    return m.title[language] || m.title.en || m.title.zh || "";
  }

  async function loadMacros() {
    const query = $("macro-search").value.trim();
    const language = state.handoff ? customerLanguage() : lang;
    try {
      state.macros = await api("GET", `/api/agent/macros?lang=${language}&q=${encodeURIComponent(query)}`);
    } catch (err) {
      console.warn("desk: macros failed", err);
      return;
    }
    state.macroActive = 0;
    renderMacros();
    if (!query) {
      renderOwnMacros();
    }
  }

  function renderMacros() {
    const language = state.handoff ? customerLanguage() : lang;
    $("macros").replaceChildren(...state.macros.map((m, i) => {
      const li = el("li", "macro", macroLabel(m, language));
      li.id = `macro-${m.id}`;
      li.dataset.macroId = m.id;
      li.setAttribute("role", "option");
      li.setAttribute("aria-selected", String(i === state.macroActive));
      li.appendChild(el("span", "macro__scope", t(m.scope === "shared" ? "scope_shared" : "scope_personal")));
      li.title = m.text[language] || m.text.en || m.text.zh || "";
      li.addEventListener("mousedown", (event) => event.preventDefault()); // keep the focus where it is
      li.addEventListener("click", () => insertMacro(m.id));
      return li;
    }));
    const active = state.macros[state.macroActive];
    if (active) {
      $("macro-search").setAttribute("aria-activedescendant", `macro-${active.id}`);
    } else {
      $("macro-search").removeAttribute("aria-activedescendant");
    }
  }

  /** The macro filled for the open conversation (server side: its language, its order number, my name). */
  async function insertMacro(macroId) {
    if (!state.selected) {
      return;
    }
    await act(async () => {
      const filled = await api("GET", `/api/agent/handoffs/${encodeURIComponent(state.selected)}/macros/`
        + `${encodeURIComponent(macroId)}?lang=${customerLanguage()}`);
      const box = $("reply-text");
      const start = box.selectionStart ?? box.value.length;
      const end = box.selectionEnd ?? box.value.length;
      box.value = box.value.slice(0, start) + filled.text + box.value.slice(end);
      const caret = start + filled.text.length;
      $("macro-missing").textContent = filled.missing.length
        ? t("macro_missing", { names: filled.missing.map((n) => `{${n}}`).join(" ") }) : "";
      $("macro-search").value = "";
      box.focus();
      if (!selectPlaceholder()) {
        box.setSelectionRange(caret, caret);
      }
      loadMacros();
    });
  }

  /** Selects the first unfilled variable in the reply box, so typing replaces it. */
  function selectPlaceholder() {
    const box = $("reply-text");
    const match = /\{(customer_name|order_number|tracking_number|agent_name)\}/.exec(box.value);
    if (!match) {
      return false;
    }
    box.focus();
    box.setSelectionRange(match.index, match.index + match[0].length);
    return true;
  }

  function onMacroKey(event) {
    const count = state.macros.length;
    if (event.key === "ArrowDown" || event.key === "ArrowUp") {
      event.preventDefault();
      if (count) {
        state.macroActive = (state.macroActive + (event.key === "ArrowDown" ? 1 : count - 1)) % count;
        renderMacros();
        const node = $(`macro-${state.macros[state.macroActive].id}`);
        if (node) {
          node.scrollIntoView({ block: "nearest" });
        }
      }
    } else if (event.key === "Enter" && !event.isComposing) {
      event.preventDefault();
      const chosen = state.macros[state.macroActive];
      if (chosen) {
        insertMacro(chosen.id);
      }
    }
  }

  function renderOwnMacros() {
    const editable = state.macros.filter((m) => m.editable);
    const list = $("macro-own");
    if (!editable.length) {
      list.replaceChildren(el("li", "muted", t("macro_none")));
      return;
    }
    list.replaceChildren(...editable.map((m) => {
      const li = el("li", "", `${macroLabel(m, lang)} (${t(m.scope === "shared" ? "scope_shared" : "scope_personal")})`);
      li.dataset.macroId = m.id;
      const edit = el("button", "link", t("macro_edit"));
      edit.type = "button";
      edit.addEventListener("click", () => editMacro(m));
      const remove = el("button", "link", t("macro_delete"));
      remove.type = "button";
      remove.dataset.action = "delete";
      remove.addEventListener("click", () => deleteMacro(m.id));
      li.append(edit, remove);
      return li;
    }));
  }

  function editMacro(m) {
    $("macro-id").value = m.id;
    $("macro-scope").value = m.scope;
    $("macro-scope").disabled = true; // a macro keeps its scope
    $("macro-title-en").value = m.title.en || "";
    $("macro-text-en").value = m.text.en || "";
    $("macro-title-zh").value = m.title.zh || "";
    $("macro-text-zh").value = m.text.zh || "";
    $("macro-title-en").focus();
  }

  function resetMacroForm() {
    $("macro-form").reset();
    $("macro-id").value = "";
    $("macro-scope").disabled = false;
  }

  async function saveMacro(event) {
    event.preventDefault();
    const message = $("macro-message");
    message.textContent = "";
    const body = {
      title: { en: $("macro-title-en").value, zh: $("macro-title-zh").value },
      text: { en: $("macro-text-en").value, zh: $("macro-text-zh").value },
    };
    const id = $("macro-id").value;
    try {
      const saved = id ? await api("PUT", `/api/agent/macros/${encodeURIComponent(id)}`, body)
        : await api("POST", "/api/agent/macros", { ...body, scope: $("macro-scope").value });
      resetMacroForm();
      message.textContent = t("macro_saved", { title: macroLabel(saved, lang) });
      await loadMacros();
    } catch (err) {
      message.textContent = err.detail || String(err.message || err);
    }
  }

  async function deleteMacro(id) {
    try {
      await api("DELETE", `/api/agent/macros/${encodeURIComponent(id)}`);
      $("macro-message").textContent = t("macro_deleted");
      resetMacroForm();
      await loadMacros();
    } catch (err) {
      $("macro-message").textContent = err.detail || String(err.message || err);
    }
  }

  /** "<name> is typing…" for the web chat customer: at most one signal every few seconds, only while mine. */
  function onReplyInput() {
    const h = state.handoff;
    if (!h || h.status !== "claimed" || h.agent_id !== state.me.id || !$("reply-text").value.trim()) {
      return;
    }
    const now = Date.now();
    if (now - state.typingSentAt < TYPING_EVERY_MS) {
      return;
    }
    state.typingSentAt = now;
    post("typing").catch((err) => console.warn("desk: typing signal failed", err));
  }

  // ---------------------------------------------------------------- keyboard

  /** Next (+1) or previous (-1) card of the queue as filtered, from the open one; opens and focuses it. */
  function moveInQueue(step) {
    const cards = Array.from(document.querySelectorAll("#queue li"));
    if (!cards.length) {
      return;
    }
    const current = cards.findIndex((li) => li.dataset.handoffId === state.selected
      || li === document.activeElement);
    const next = current < 0 ? (step > 0 ? 0 : cards.length - 1)
      : Math.min(cards.length - 1, Math.max(0, current + step));
    const card = cards[next];
    card.focus();
    select(card.dataset.handoffId);
  }

  function toggleShortcuts() {
    const panel = $("shortcuts");
    panel.hidden = !panel.hidden;
    $("shortcuts-toggle").setAttribute("aria-expanded", String(!panel.hidden));
  }

  function onKey(event) {
    if ($("desk-view").hidden || event.defaultPrevented) {
      return;
    }
    const target = event.target;
    const typing = target && (["INPUT", "TEXTAREA", "SELECT"].includes(target.tagName) || target.isContentEditable);
    if (typing) {
      if (event.key === "Escape") {
        target.blur();
      }
      return;
    }
    if (event.ctrlKey || event.metaKey || event.altKey) {
      return;
    }
    const visible = (id) => !$(id).hidden && !$(id).disabled && !$("conversation").hidden;
    switch (event.key) {
      case "j":
      case "n":
        event.preventDefault();
        moveInQueue(1);
        break;
      case "k":
        event.preventDefault();
        moveInQueue(-1);
        break;
      case "c":
        if (visible("claim")) {
          event.preventDefault();
          claim();
        }
        break;
      case "h":
        if (visible("handback")) {
          event.preventDefault();
          handBack();
        }
        break;
      case "r":
        if (visible("reply-text")) {
          event.preventDefault();
          $("reply-text").focus();
        }
        break;
      case "m":
        if (visible("macro-search") && !$("reply-text").disabled) {
          event.preventDefault();
          $("macro-search").focus();
        }
        break;
      case "?":
        event.preventDefault();
        toggleShortcuts();
        break;
      default:
    }
  }

  // ---------------------------------------------------------------- live events

  function closeEvents() {
    if (state.events) {
      state.events.close();
    }
    state.events = null;
    state.eventsKey = null;
    setLive("offline");
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
    source.onopen = () => setLive("live");
    source.addEventListener("desk", (event) => {
      const data = JSON.parse(event.data);
      scheduleRefresh();
      if (data.handoff_id === state.selected) {
        if (data.type === "note") {
          reloadNotes();
        } else {
          reloadSelected().catch((err) => console.warn("desk: reload failed", err));
        }
      }
    });
    source.addEventListener("message", (event) => {
      if (state.events === source) {
        appendMessage(JSON.parse(event.data));
      }
    });
    source.onerror = () => setLive("reconnecting");
  }

  // ---------------------------------------------------------------- start

  async function start() {
    state.me = await api("GET", "/api/agent/me");
    if (state.me.role === "editor") {  // editors are not part of the desk: their page is the workbench
      window.location.assign("/workbench");
      return;
    }
    state.meta = await api("GET", "/api/agent/meta");
    loadWanted().catch((err) => console.warn("desk: correction options failed", err));
    state.agents = await api("GET", "/api/agent/agents");
    try {
      state.filters = JSON.parse(window.sessionStorage.getItem(FILTER_KEY) || "{}") || {};
    } catch (err) {
      state.filters = {};
    }
    $("whoami").textContent = `${state.me.display_name} (${state.me.role})`;
    $("macro-scope").querySelector('option[value="shared"]').hidden = state.me.role !== "supervisor";
    $("login-view").hidden = true;
    $("desk-view").hidden = false;
    renderAccounts();
    loadMacros();
    await refreshLists();
    const reopen = remembered();
    if (reopen) {
      await select(reopen); // the conversation open before a reload (or a shared link)
    } else {
      openEvents();
    }
  }

  document.addEventListener("DOMContentLoaded", () => {
    lang = initialLanguage();
    applyStrings();
    followTranscript();
    for (const select of document.querySelectorAll(".ui-lang")) {
      select.addEventListener("change", (event) => setLanguage(event.target.value));
    }
    $("login-form").addEventListener("submit", onLogin);
    $("logout").addEventListener("click", onLogout);
    $("shortcuts-toggle").addEventListener("click", toggleShortcuts);
    $("claim").addEventListener("click", claim);
    $("handback").addEventListener("click", handBack);
    $("close").addEventListener("click", () => act(async () => {
      const complaint = $("complaint-type").hidden ? {} : { complaint_type: $("complaint-type").value };
      await post("close", withCorrection({ resolution: $("resolution").value, ...complaint }));
      $("wanted").value = "";
      await reloadSelected();
    }));
    $("transfer").addEventListener("click", () => act(async () => {
      // Agents transfer what they own; supervisors reassign anything open (also straight from the queue).
      const action = state.handoff.agent_id === state.me.id ? "transfer" : "reassign";
      await post(action, { to_agent_id: $("transfer-to").value });
      await reloadSelected();
    }));
    for (const select of document.querySelectorAll("select[data-filter]")) {
      select.addEventListener("change", onFilterChange);
    }
    $("reply-form").addEventListener("submit", sendReply);
    $("note-form").addEventListener("submit", addNote);
    $("account-form").addEventListener("submit", createAccount);
    $("macro-form").addEventListener("submit", saveMacro);
    $("macro-cancel").addEventListener("click", resetMacroForm);
    $("macro-search").addEventListener("keydown", onMacroKey);
    $("reply-text").addEventListener("input", onReplyInput);
    let macroTimer = 0;
    $("macro-search").addEventListener("input", () => {
      window.clearTimeout(macroTimer);
      macroTimer = window.setTimeout(loadMacros, 150);
    });
    $("reply-text").addEventListener("keydown", (event) => {
      const composing = event.isComposing || event.keyCode === 229; // an IME's Enter picks a character
      if (event.key === "Enter" && !event.shiftKey && !composing) {
        sendReply(event);
      }
    });
    $("note-text").addEventListener("keydown", (event) => {
      if (event.key === "Enter" && (event.ctrlKey || event.metaKey) && !event.isComposing) {
        addNote(event);
      }
    });
    document.addEventListener("keydown", onKey);
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
