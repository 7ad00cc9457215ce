/*
 * Managers' service dashboard (issue 15), served by the gateway at /dashboard.
 *
 * Data: the supervisors-only API /api/analytics/* (analytics/api.py) with the agent console's session (the HttpOnly
 * cookie set by POST /api/agent/login, same origin). Charts: Chart.js, vendored by scripts/setup.sh; without it the
 * tiles and tables still work. Every value from the API (agent names, reasons, conversation ids) is put into the page
 * with textContent or as chart data, never as HTML. Filters live in the URL hash so a view can be reloaded or shared.
 */
(function () {
  "use strict";

  const LANG_KEY = "desk.lang"; // the same choice as the agent console's
  const STRINGS = {
    en: {
      title: "Service dashboard", login_help: "Supervisors only: the agent console's account.",
      username: "Username", password: "Password", login: "Log in", forbidden: "Supervisors only.",
      to_console: "Agent console", language_ui: "Language", from: "From", to: "To", channel: "Channel",
      language: "Language", all_channels: "All channels", all_languages: "All languages", apply: "Apply",
      tz_note: "Days and hours in China time (Asia/Shanghai).", loading: "Loading…", loaded: "Updated {time}",
      failed: "Could not load: {detail}", kpis: "Key figures", csv: "CSV", daily: "Daily trend",
      click_day: "Click a day, a bar or a number for the conversations behind it.",
      reasons: "Handoffs by reason", reason: "Reason", handoffs: "Handoffs", rate: "Share of conversations",
      agents: "Agents", agent: "Agent", taken: "Handoffs taken", share: "Share", replies: "Replies",
      closed: "Closed / handed back", handle: "Avg handling", csat: "CSAT", online: "Online", occupancy: "Occupancy",
      load: "Load",
      t_load: "Agent load", s_load: "occupancy {occ} · {hours} h online",
      def_load: "Agent load: the average of conversations owned / the agent's limit over the minutes desk members were "
        + "online (sampled once a minute). Occupancy: the share of those minutes with at least one conversation.",
      scores: "Score distribution (CSAT)", stars_col: "Stars", for_bot: "Bot", for_agents: "Agents",
      ctypes: "Complaint types", ctype: "Type (chosen when closed)", complaints_col: "Complaints",
      answered_col: "Answered by an agent", ct_attitude: "Staff attitude", ct_product: "Product",
      ct_efficiency: "Efficiency", ct_solution: "Solution offered", ct_other: "Other", ct_unclassified: "Not classified",
      tiers: "Queue times by membership tier", tier: "Tier", vip: "VIP", wait_avg: "Avg wait for an agent",
      wait_max: "Longest wait", frt_avg: "Avg first reply (service hours)", breaches: "Over 15 s",
      topics: "Unanswered topics", topic: "Topic (newest wording)", askings: "Askings", topic_sources: "How it failed",
      topics_note: "What the bot got wrong in the period, grouped by meaning as in the editors' inbox (masked). "
        + "Editors fix them in the workbench.",
      heatmap: "Conversations by weekday and hour", drill: "Conversations", close: "Close",
      conversation: "Conversation", day: "Day", hour: "Hour", handed_off: "Handed off",
      frt_bot_s: "Bot first reply", frt_human_s: "Agent first reply", repeat: "Repeat", yes: "yes", no: "no",
      no_data: "no data", no_rows: "No data for this period.", charts_missing:
        "Charts are not installed (Chart.js): run scripts/setup.sh. The figures below are complete.",
      t_conversations: "Conversations", t_deflection: "Bot resolution (deflection)", t_handoff: "Handoff rate",
      t_frt_bot: "First response, bot", t_frt_human: "First response, agents", t_csat: "CSAT, agents",
      t_sla: "SLA breaches (> {target} s)", t_repeat: "Repeat contacts (7 days)", t_resolution: "Resolution time",
      s_of: "{part} of {whole}", s_handoffs: "{n} handoffs · {tickets} tickets", s_max: "max {max} · {n} answered",
      s_human: "max {max} · queue wait {wait}", s_csat: "rated {n}× · 4–5★ {rate} · bot: {bot}",
      s_low: "1–2★", s_sla_bot: "bot", s_sla_human: "agents", s_repeat: "{part} of {whole} identified customers",
      s_resolved: "{n} resolved · max {max}", stars: "{n} ★",
      d_all: "All conversations", d_bot_resolved: "Resolved by the bot", d_handed_off: "Handed off",
      d_repeat: "Repeat contacts", d_bot_sla_breach: "Bot SLA breaches", d_human_sla_breach: "Agent SLA breaches",
      d_csat_low: "Rated 1–2 ★", d_day: "day {v}", d_reason: "reason {v}", d_agent: "closed by {v}",
      d_slot: "{dow} {hour}:00", ds_conversations: "Conversations", ds_resolved: "Bot-resolved",
      ds_handed: "Handed off", ds_rate: "Deflection %",
      live: "Live queue and SLA", live_waiting: "Waiting now", live_vip: "VIP waiting", live_oldest: "Oldest wait",
      live_oldest_vip: "Oldest VIP wait", live_agents: "Agents online", live_load: "Load", live_pickup: "Over pickup SLA",
      live_c24: "Complaints > 24 h", live_c48: "Complaints > 48 h", live_alerts: "Open alerts",
      live_p: "Priority {p}", live_p_h: "Priority", live_owned: "Owned / limit", live_none: "nobody online", live_note: "Refreshed every 5 s from the desk.",
      first_n: "first {n}", dows: ["Mon", "Tue", "Wed", "Thu", "Fri", "Sat", "Sun"],
      t_fcr: "First-contact resolution", t_kb: "KB coverage of top questions", t_csat_bot: "CSAT, bot",
      t_complaints: "Complaints answered within 24 h", s_came_back: "came back: {n}",
      s_kb: "{covered} of {top} top questions · by askings {weighted}", s_csat_bot: "rated {n}× · 4–5★ {rate}",
      s_complaints: "{n} complaints", s_late: "late {n}", s_escalated: "escalated (48 h) {n}",
      d_complaint_late_24h: "Complaints answered late (> 24 h)",
      d_complaint_escalated_48h: "Complaints escalated (> 48 h)",
      t_sources: "Bot answers from the KB", s_sources: "KB {kb} · flows {flow} · fallback {fallback} of {n}",
      sources: "Bot answers by source", source: "Source", article: "Article", answers: "Answers",
      avg_score: "Avg score", src_kb: "Knowledge base", src_flow: "Flow", src_fallback: "Fallback",
      src_unknown: "Not recorded",
      sources_note: "The bot's answer to each customer message: a knowledge-base article (with its retrieval score), "
        + "a flow, or a fallback.",
      def_sources: "Customer messages the bot answered, by the source of its first answer (before the customer's "
        + "next message), as Rasa recorded it: a knowledge-base article, a flow (any other response or action), or "
        + "a fallback (rephrase, no answer, out of scope, offer of a human).",
      target_min: "target ≥ {v}", target_max: "target ≤ {v}", target_band: "target {a}–{b}", target_met: "met", target_missed: "not met",
      target_none: "no target in the seed reports", definition: "Definition",
      d_csat_agents: "Rated after an agent", d_csat_bot: "Rated, bot only", d_first_contact: "Resolved at first contact",
      d_came_back: "Came back within 7 days", questions: "Most frequent questions",
      questions_note: "Masked customer texts; covered = at least half of the askings answered from the knowledge base.",
      question: "Question", asked: "Asked", kb_answered: "KB answers", covered: "Covered",
      def_conversations: "Conversations that started in the range (China-time days) with at least one customer "
        + "message, on the chosen channel and in the chosen language.",
      def_deflection: "Bot resolution (deflection): conversations with no handoff / conversations. A customer who "
        + "gave up counts as resolved: read it with repeat contacts.",
      def_handoff: "Conversations handed to an agent / conversations (handoffs and tickets below).",
      def_frt_bot: "Per conversation: the first bot message at or after the first customer message, minus that "
        + "message; average (maximum below).",
      def_frt_human: "Per handoff queued in service hours: the first agent message after queueing minus the queue "
        + "time; average (maximum and queue wait below).",
      def_csat: "CSAT of agents: the first rating after a handoff was closed; average stars, share of 4–5 stars.",
      def_csat_bot: "CSAT of the bot: ratings with no closed handoff before them (the bot asks for no rating today, "
        + "so this is usually no data).",
      def_sla: "First response over 15 s. Bot: first bot answer later than 15 s after the first customer message "
        + "(or none); agents: handoffs in service hours first answered later than 15 s after queueing (or never). "
        + "The seed target, 15-s response for 80 %, allows at most 20 % breaches.",
      def_repeat: "Identified conversations whose customer started another conversation in the 7 days before / "
        + "identified conversations.",
      def_resolution: "Per handoff handed back or closed: end minus queued; average (maximum below).",
      def_fcr: "First-contact resolution: identified conversations (customer known) whose customer started no other "
        + "conversation in the 7 days after / identified conversations.",
      def_kb: "KB coverage: of the 20 most frequent customer messages, the share covered - at least half of their "
        + "askings got a knowledge-base answer before the customer's next message.",
      def_complaints: "Complaint handoffs first answered by an agent within 24 h of queueing / complaints; late = "
        + "answered after 24 h or unanswered past 24 h; escalated = the same after 48 h.",
    },
    zh: {
      live: "实时排队与 SLA", live_waiting: "正在排队", live_vip: "VIP 排队", live_oldest: "最长等待",
      live_oldest_vip: "VIP 最长等待", live_agents: "在线客服", live_load: "负载", live_pickup: "超出接入时限",
      live_c24: "投诉超 24 小时", live_c48: "投诉超 48 小时", live_alerts: "未处理告警",
      live_p: "优先级 {p}", live_p_h: "优先级", live_owned: "接待 / 上限", live_none: "无人在线", live_note: "每 5 秒从客服台刷新。",
      title: "客服数据看板", login_help: "仅限主管：使用客服工作台的账号。", username: "用户名", password: "密码",
      login: "登录", forbidden: "仅限主管查看。", to_console: "客服工作台", language_ui: "界面语言", from: "开始",
      to: "结束", channel: "渠道", language: "语言", all_channels: "全部渠道", all_languages: "全部语言",
      apply: "查询", tz_note: "日期和小时按北京时间（Asia/Shanghai）。", loading: "加载中…", loaded: "更新于 {time}",
      failed: "加载失败：{detail}", kpis: "关键指标", csv: "导出 CSV", daily: "每日趋势",
      click_day: "点击某一天、柱形或数字，查看背后的对话。", reasons: "转人工原因", reason: "原因",
      handoffs: "转人工次数", rate: "占对话比例", agents: "客服", agent: "客服", taken: "接入数", share: "占比",
      replies: "回复数", closed: "结束/交回", handle: "平均处理时长", csat: "满意度", online: "在线时长",
      occupancy: "占用率", load: "负载",
      t_load: "坐席负载", s_load: "占用率 {occ} · 在线 {hours} 小时",
      def_load: "坐席负载：客服在线的每一分钟（每分钟采样一次）里，所接对话数 / 其上限的平均值。占用率：其中至少接着一个对话的分钟占比。",
      scores: "评分分布（满意度）", stars_col: "星级", for_bot: "机器人", for_agents: "人工",
      ctypes: "投诉类型", ctype: "类型（结案时选择）", complaints_col: "投诉数", answered_col: "人工已回复",
      ct_attitude: "服务态度", ct_product: "产品问题", ct_efficiency: "处理效率", ct_solution: "解决方案", ct_other: "其他",
      ct_unclassified: "未分类",
      tiers: "各会员等级排队时长", tier: "会员等级", vip: "VIP", wait_avg: "平均等待接入", wait_max: "最长等待",
      frt_avg: "平均首次人工回复（服务时间内）", breaches: "超过 15 秒",
      topics: "未解决的问题", topic: "问题（最新说法）", askings: "次数", topic_sources: "失败方式",
      topics_note: "该时间段内机器人没答好的问题，按语义分组，与编辑收件箱一致（已脱敏）。编辑可在知识工作台处理。",
      heatmap: "按星期和小时的对话量", drill: "对话明细", close: "关闭", conversation: "对话", day: "日期",
      hour: "小时", handed_off: "转人工", frt_bot_s: "机器人首次回复", frt_human_s: "人工首次回复",
      repeat: "重复咨询", yes: "是", no: "否", no_data: "暂无数据", no_rows: "该时间段暂无数据。",
      charts_missing: "图表组件（Chart.js）未安装：请运行 scripts/setup.sh。下方数字完整。",
      t_conversations: "对话数", t_deflection: "机器人解决率", t_handoff: "转人工率", t_frt_bot: "机器人首次响应",
      t_frt_human: "人工首次响应", t_csat: "人工满意度", t_sla: "超时（> {target} 秒）",
      t_repeat: "7 天内重复咨询", t_resolution: "解决时长", s_of: "{whole} 中的 {part}",
      s_handoffs: "{n} 次转人工 · {tickets} 个工单", s_max: "最长 {max} · 已回复 {n}",
      s_human: "最长 {max} · 排队 {wait}", s_csat: "{n} 份评价 · 4–5 星 {rate} · 机器人：{bot}",
      s_low: "1–2 星", s_sla_bot: "机器人", s_sla_human: "人工", s_repeat: "已识别客户 {whole} 中的 {part}",
      s_resolved: "已解决 {n} · 最长 {max}", stars: "{n} 星",
      d_all: "全部对话", d_bot_resolved: "机器人解决", d_handed_off: "转人工", d_repeat: "重复咨询",
      d_bot_sla_breach: "机器人超时", d_human_sla_breach: "人工超时", d_csat_low: "1–2 星评价",
      d_day: "日期 {v}", d_reason: "原因 {v}", d_agent: "由 {v} 结束", d_slot: "{dow} {hour} 时",
      ds_conversations: "对话数", ds_resolved: "机器人解决", ds_handed: "转人工", ds_rate: "解决率 %",
      first_n: "前 {n} 条", dows: ["周一", "周二", "周三", "周四", "周五", "周六", "周日"],
      t_fcr: "首次解决率", t_kb: "高频问题知识库覆盖率", t_csat_bot: "机器人满意度", t_complaints: "投诉 24 小时内回复率",
      s_came_back: "7 天内再次咨询：{n}", s_kb: "前 {top} 个问题中覆盖 {covered} 个 · 按提问次数 {weighted}",
      s_csat_bot: "{n} 份评价 · 4–5 星 {rate}", s_complaints: "{n} 个投诉",
      s_late: "超 24 小时 {n}", s_escalated: "升级（48 小时）{n}",
      d_complaint_late_24h: "超 24 小时才回复的投诉", d_complaint_escalated_48h: "超 48 小时升级的投诉",
      t_sources: "机器人回答来自知识库", s_sources: "{n} 次回答：知识库 {kb} · 流程 {flow} · 兜底 {fallback}",
      sources: "机器人回答来源", source: "来源", article: "文章", answers: "回答次数", avg_score: "平均得分",
      src_kb: "知识库", src_flow: "流程", src_fallback: "兜底回复", src_unknown: "未记录",
      sources_note: "机器人对每条客户消息的回答来源：知识库文章（附检索得分）、业务流程或兜底回复。",
      def_sources: "机器人回答过的客户消息，按其第一条回答（客户下一条消息之前）的来源统计，来源由 Rasa 记录：知识库文章、"
        + "业务流程（其他回复或动作）或兜底回复（请换个说法、无答案、超出范围、建议转人工）。",
      target_min: "目标 ≥ {v}", target_max: "目标 ≤ {v}", target_band: "目标 {a}–{b}", target_met: "达标", target_missed: "未达标",
      target_none: "源文档未给出目标", definition: "指标定义",
      d_csat_agents: "人工服务后的评价", d_csat_bot: "仅机器人服务的评价", d_first_contact: "首次即解决",
      d_came_back: "7 天内再次咨询", questions: "高频问题",
      questions_note: "客户原话（已脱敏）；已覆盖 = 至少一半的提问由知识库回答。",
      question: "问题", asked: "提问次数", kb_answered: "知识库回答", covered: "已覆盖",
      def_conversations: "在所选日期（北京时间）开始、至少有一条客户消息、符合所选渠道和语言的对话。",
      def_deflection: "机器人解决率：未转人工的对话 / 全部对话。放弃咨询的客户也算解决，请结合重复咨询一起看。",
      def_handoff: "转人工的对话 / 全部对话（下方为转人工次数和工单数）。",
      def_frt_bot: "每个对话：第一条客户消息之后机器人的第一条回复与该消息的时间差；平均值（下方为最大值）。",
      def_frt_human: "服务时间内每次转人工：排队后客服第一条消息与排队时间的差；平均值（下方为最大值和排队时长）。",
      def_csat: "人工满意度：人工服务结束后的第一次评价；平均星级和 4–5 星占比。",
      def_csat_bot: "机器人满意度：之前没有已结束人工服务的评价（目前机器人不邀请评价，通常暂无数据）。",
      def_sla: "首次响应超过 15 秒。机器人：第一条客户消息后 15 秒内未回复（或未回复）；人工：服务时间内转人工后 15 秒内"
        + "未回复（或从未回复）。源文档目标为 80% 在 15 秒内响应，即超时不超过 20%。",
      def_repeat: "已识别客户的对话中，客户在此前 7 天内已有其他对话的比例。",
      def_resolution: "每次交回或结束的人工服务：结束时间减排队时间；平均值（下方为最大值）。",
      def_fcr: "首次解决率：已识别客户的对话中，客户在之后 7 天内没有再发起对话的比例。",
      def_kb: "知识库覆盖率：最常见的 20 条客户消息中，至少一半的提问在客户下一条消息前得到知识库回答的比例。",
      def_complaints: "投诉类转人工中，排队后 24 小时内得到客服首次回复的比例；超时 = 24 小时后才回复或 24 小时仍未回复；"
        + "升级 = 48 小时后同样情况。",
    },
  };
  const REASONS_ZH = {
    explicit_request: "客户要求人工", high_frustration: "客户非常不满", repeated_failure: "机器人多次未能解决",
    sensitive_legal: "敏感：法律", sensitive_regulator: "敏感：监管投诉", sensitive_media: "敏感：媒体曝光",
    sensitive_safety: "敏感：安全", sensitive_fraud: "敏感：欺诈", complaint: "投诉", csat_low: "低分评价",
    unknown: "未知",
  };
  const DRILL_LIMIT = 500; // analytics/kpis.py Kpis.conversations(limit=500)
  const COLORS = { resolved: "#2e7d32", handed: "#e08a00", rate: "#2a5bd7", reasons: "#5b6bd7" };

  let lang = "en";
  const state = { filters: null, summary: null, daily: [], reasons: [], heatmap: [], agents: [], tiers: [], topics: [], questions: [],
                  scores: [], ctypes: [],
                  sources: [], drill: null, charts: {} };
  const $ = (id) => document.getElementById(id);

  function t(key, vars) {
    let text = (STRINGS[lang] && STRINGS[lang][key]) || STRINGS.en[key] || key;
    for (const [name, value] of Object.entries(vars || {})) {
      text = text.split(`{${name}}`).join(String(value));
    }
    return text;
  }

  function reasonLabel(code) {
    return lang === "zh" && REASONS_ZH[code] ? REASONS_ZH[code] : String(code);
  }

  // ---------------------------------------------------------------- formatting ("no data" for null)

  function num(value) {
    return value === null || value === undefined ? t("no_data")
      : new Intl.NumberFormat(lang === "zh" ? "zh-CN" : "en-US").format(value);
  }

  function pct(rate) {
    return rate === null || rate === undefined ? t("no_data") : `${(rate * 100).toFixed(1).replace(/\.0$/, "")}%`;
  }

  function secs(value) {
    if (value === null || value === undefined) {
      return t("no_data");
    }
    const unit = lang === "zh" ? { s: " 秒", m: " 分钟", h: " 小时" } : { s: " s", m: " min", h: " h" };
    if (value < 90) {
      return `${Number(value.toFixed(1))}${unit.s}`;
    }
    if (value < 2 * 3600) {
      return `${Number((value / 60).toFixed(1))}${unit.m}`;
    }
    return `${Number((value / 3600).toFixed(1))}${unit.h}`;
  }

  function stars(value) {
    return value === null || value === undefined ? t("no_data") : t("stars", { n: value });
  }

  // ---------------------------------------------------------------- API

  class ApiError extends Error {
    constructor(status, detail) {
      super(detail || `HTTP ${status}`);
      this.status = status;
    }
  }

  async function api(method, path, body) {
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
      throw new ApiError(response.status, data && typeof data.detail === "string" ? data.detail : "");
    }
    return data;
  }

  function query(extra) {
    const f = state.filters;
    const params = new URLSearchParams({ start: f.start, end: f.end });
    if (f.channel) params.set("channel", f.channel);
    if (f.language) params.set("language", f.language);
    for (const [key, value] of Object.entries(extra || {})) {
      if (value !== null && value !== undefined && value !== "") params.set(key, String(value));
    }
    return params.toString();
  }

  // ---------------------------------------------------------------- views

  function show(view) {
    for (const id of ["login-view", "forbidden-view", "dash-view"]) {
      $(id).hidden = id !== view;
    }
  }

  function applyStrings() {
    document.documentElement.lang = lang === "zh" ? "zh-CN" : "en";
    document.title = t("title");
    for (const el of document.querySelectorAll("[data-i18n]")) {
      el.textContent = t(el.dataset.i18n);
    }
    for (const el of document.querySelectorAll("[data-i18n-aria]")) {
      el.setAttribute("aria-label", t(el.dataset.i18nAria));
    }
    $("ui-lang").value = lang;
  }

  function setLanguage(value) {
    lang = value === "zh" ? "zh" : "en";
    try {
      window.localStorage.setItem(LANG_KEY, lang);
    } catch (err) { /* private mode */ }
    applyStrings();
    if (state.summary) renderAll();
  }

  function initialLanguage() {
    let saved = null;
    try {
      saved = window.localStorage.getItem(LANG_KEY);
    } catch (err) { /* ignore */ }
    if (saved === "zh" || saved === "en") return saved;
    return (navigator.language || "").toLowerCase().startsWith("zh") ? "zh" : "en";
  }

  function setStatus(text, isError) {
    $("status").textContent = text;
    $("status").classList.toggle("error", Boolean(isError));
  }

  // ---------------------------------------------------------------- filters (URL hash)

  function isoDay(date) {
    const pad = (n) => String(n).padStart(2, "0");
    return `${date.getFullYear()}-${pad(date.getMonth() + 1)}-${pad(date.getDate())}`;
  }

  function readFilters() {
    const hash = new URLSearchParams(window.location.hash.slice(1));
    const day = /^\d{4}-\d{2}-\d{2}$/;
    const today = new Date();
    const weekAgo = new Date(today.getTime() - 6 * 86400000);
    const channel = hash.get("channel") || "";
    const language = hash.get("language") || "";
    return {
      start: day.test(hash.get("start") || "") ? hash.get("start") : isoDay(weekAgo),
      end: day.test(hash.get("end") || "") ? hash.get("end") : isoDay(today),
      channel: /^[a-z_]{1,32}$/.test(channel) ? channel : "",
      language: language === "zh" || language === "en" ? language : "",
    };
  }

  function fillForm() {
    const f = state.filters;
    $("f-start").value = f.start;
    $("f-end").value = f.end;
    $("f-channel").value = f.channel;
    $("f-language").value = f.language;
  }

  function onFilter(event) {
    event.preventDefault();
    state.filters = { start: $("f-start").value, end: $("f-end").value, channel: $("f-channel").value,
                      language: $("f-language").value };
    const hash = new URLSearchParams(Object.entries(state.filters).filter(([, v]) => v)).toString();
    window.history.replaceState(null, "", `#${hash}`);
    load();
  }

  // ---------------------------------------------------------------- loading

  async function load() {
    setStatus(t("loading"));
    const q = query();
    try {
      const [summary, daily, reasons, heatmap, agents, tiers, questions, sources, topics, scores, ctypes] = await Promise.all([
        api("GET", `/api/analytics/summary?${q}`), api("GET", `/api/analytics/daily?${q}`),
        api("GET", `/api/analytics/reasons?${q}`), api("GET", `/api/analytics/heatmap?${q}`),
        api("GET", `/api/analytics/agents?${q}`), api("GET", `/api/analytics/tiers?${q}`),
        api("GET", `/api/analytics/questions?${q}`), api("GET", `/api/analytics/sources?${q}`),
        api("GET", `/api/analytics/topics?${q}`), api("GET", `/api/analytics/scores?${q}`),
        api("GET", `/api/analytics/complaint_types?${q}`)]);
      Object.assign(state, { summary, daily: daily.rows, reasons: reasons.rows, heatmap: heatmap.rows,
                             agents: agents.rows, tiers: tiers.rows, questions: questions.rows,
                             sources: sources.rows, topics: topics.rows, scores: scores.rows, ctypes: ctypes.rows });
      renderAll();
      setStatus(t("loaded", { time: new Date().toLocaleTimeString(lang === "zh" ? "zh-CN" : "en-US") }));
      if (state.drill) openDrill(state.drill);
    } catch (err) {
      if (err.status === 401) {
        show("login-view");
        return;
      }
      if (err.status === 403) {
        show("forbidden-view");
        return;
      }
      setStatus(t("failed", { detail: err.message }), true);
    }
  }

  function renderAll() {
    for (const link of document.querySelectorAll("a.csv[data-table]")) {
      link.href = `/api/analytics/export/${link.dataset.table}.csv?${query()}`;
      link.setAttribute("download", "");
    }
    renderTiles();
    renderDaily();
    renderReasons();
    renderAgents();
    renderTiers();
    renderScores();
    renderTopics();
    renderHeatmap();
    renderQuestions();
    renderSources();
  }

  // ---------------------------------------------------------------- tiles

  function drillNode(text, onClick, testId) {
    const button = document.createElement("button");
    button.type = "button";
    button.className = "num";
    button.textContent = text;
    if (testId) button.dataset.drill = testId;
    button.addEventListener("click", onClick);
    return button;
  }

  function drillButton(text, drill, testId) {
    return drillNode(text, () => openDrill(drill), testId);
  }

  // A target of summary.targets ({min} or {max}) against a value (null: no data). "met" / "missed" / "no_data".
  function targetStatus(value, target) {
    if (value === null || value === undefined) return "no_data";
    const low = target.min === undefined || value >= target.min;
    const high = target.max === undefined || value <= target.max;
    return low && high ? "met" : "missed";
  }

  // opts.def: the definition (docs/KPIS.md), the tile's tooltip and its "Definition" note; opts.target:
  // { status, text } from targetLine, shown under the figure and as the tile's colour.
  function tile(key, label, main, sub, extras, opts) {
    const el = document.createElement("div");
    el.className = "tile";
    el.dataset.kpi = key;
    const head = document.createElement("div");
    head.className = "tile__label";
    head.textContent = label;
    el.append(head);
    const o = opts || {};
    if (o.def) {
      el.title = o.target ? `${o.def}\n${o.target.text}` : o.def;
    }
    const value = document.createElement("div");
    value.className = "tile__value";
    if (main.nodes) {
      value.append(...main.nodes);
    } else if (main.drill && !main.empty) {
      value.append(drillButton(main.text, main.drill, key));
    } else {
      value.textContent = main.text;
    }
    if (main.empty) value.classList.add("tile__value--empty");
    el.append(value);
    const small = document.createElement("div");
    small.className = "tile__sub muted";
    small.textContent = sub || "";
    for (const extra of extras || []) {
      small.append(small.textContent ? " · " : "", drillButton(extra.text, extra.drill, extra.id));
    }
    el.append(small);
    if (o.target) {
      const line = document.createElement("div");
      line.className = "tile__target";
      line.textContent = o.target.text;
      el.dataset.target = o.target.status;
      if (o.target.status !== "no_data") el.classList.add(`tile--${o.target.status}`);
      el.append(line);
    }
    if (o.def) {
      const details = document.createElement("details");
      details.className = "tile__def";
      const summary = document.createElement("summary");
      summary.textContent = t("definition");
      const text = document.createElement("p");
      text.textContent = o.def;
      details.append(summary, text);
      el.append(details);
    }
    return el;
  }

  // "target ≥ 72% · not met" (the status word only when there is a figure to compare).
  function targetLine(value, target, format) {
    if (!target) return null;
    const bound = target.min !== undefined && target.max !== undefined
      ? t("target_band", { a: format(target.min), b: format(target.max) })
      : target.min !== undefined ? t("target_min", { v: format(target.min) }) : t("target_max", { v: format(target.max) });
    const status = targetStatus(value, target);
    return { status, text: status === "no_data" ? bound : `${bound} · ${t(`target_${status}`)}` };
  }

  // The SLA tile has two breach rates against one target: missed when either misses, met when the known ones meet.
  function slaTarget(rates, target) {
    if (!target) return null;
    const known = rates.filter((r) => r !== null && r !== undefined);
    const worst = known.length ? Math.max(...known) : null;
    return targetLine(worst, target, pct);
  }

  function renderTiles() {
    const s = state.summary;
    const n = s.conversations;
    const empty = (v) => v === null || v === undefined;
    const box = $("tiles");
    box.replaceChildren();
    const frb = s.first_response_bot;
    const frh = s.first_response_human;
    const agentsCsat = s.csat.agents;
    const botCsat = s.csat.bot;
    const sla = s.sla;
    const targets = s.targets || {};
    const fcr = s.first_contact_resolution;
    const kb = s.kb_coverage;
    const comp = s.complaints;
    const load = s.agent_load;
    // The KB figure opens the questions behind it (the questions table), not a conversation list.
    const kbOpen = () => {
      const card = $("questions");
      card.scrollIntoView({ block: "nearest" });
      card.focus({ preventScroll: true });
    };
    const kbNode = drillNode(pct(kb.rate), kbOpen, "kb_coverage");
    // Bot answers by source: the figure opens the sources table (by article), not a conversation list.
    const src = s.bot_answers;
    const srcOpen = () => {
      const card = $("sources");
      card.scrollIntoView({ block: "nearest" });
      card.focus({ preventScroll: true });
    };
    const srcNode = empty(src.kb_rate) ? document.createTextNode(t("no_data"))
      : drillNode(pct(src.kb_rate), srcOpen, "sources");
    box.append(
      tile("conversations", t("t_conversations"), { text: num(n), drill: { segment: "all" }, empty: !n }, "",
        [], { def: t("def_conversations") }),
      tile("deflection", t("t_deflection"),
        { text: pct(s.bot_resolution.rate), drill: { segment: "bot_resolved" }, empty: empty(s.bot_resolution.rate) },
        empty(s.bot_resolution.rate) ? "" : t("s_of", { part: s.bot_resolution.resolved, whole: n }), [],
        { def: t("def_deflection"), target: targetLine(s.bot_resolution.rate, targets.bot_resolution, pct) }),
      tile("handoff", t("t_handoff"),
        { text: pct(s.handoff.rate), drill: { segment: "handed_off" }, empty: empty(s.handoff.rate) },
        empty(s.handoff.rate) ? "" : t("s_handoffs", { n: s.handoff.handoffs, tickets: s.handoff.tickets }), [],
        { def: `${t("def_handoff")} ${t("target_none")}.` }),
      tile("fcr", t("t_fcr"),
        { text: pct(fcr.rate), drill: { segment: "first_contact" }, empty: empty(fcr.rate) },
        empty(fcr.rate) ? "" : t("s_repeat", { part: fcr.resolved, whole: fcr.identified }),
        empty(fcr.rate) ? [] : [{ text: t("s_came_back", { n: fcr.identified - fcr.resolved }),
                                  drill: { segment: "came_back" }, id: "came_back" }],
        { def: t("def_fcr"), target: targetLine(fcr.rate, targets.first_contact_resolution, pct) }),
      tile("kb", t("t_kb"), { nodes: empty(kb.rate) ? [document.createTextNode(t("no_data"))] : [kbNode],
                              empty: empty(kb.rate) },
        empty(kb.rate) ? "" : t("s_kb", { covered: kb.covered, top: kb.top_questions, weighted: pct(kb.weighted_rate) }),
        [], { def: t("def_kb"), target: targetLine(kb.rate, targets.kb_coverage, pct) }),
      tile("frt_bot", t("t_frt_bot"), { text: secs(frb.avg_s), drill: { segment: "all" }, empty: empty(frb.avg_s) },
        empty(frb.avg_s) ? "" : t("s_max", { max: secs(frb.max_s), n: frb.answered }), [],
        { def: t("def_frt_bot") }),
      tile("frt_human", t("t_frt_human"),
        { text: secs(frh.avg_s), drill: { segment: "handed_off" }, empty: empty(frh.avg_s) },
        empty(frh.avg_s) ? "" : t("s_human", { max: secs(frh.max_s), wait: secs(frh.queue_wait_avg_s) }), [],
        { def: t("def_frt_human") }),
      tile("csat", t("t_csat"),
        { text: stars(agentsCsat.avg_stars), drill: { segment: "csat_agents" }, empty: empty(agentsCsat.avg_stars) },
        t("s_csat", { n: agentsCsat.answers, rate: pct(agentsCsat.csat_rate), bot: stars(s.csat.bot.avg_stars) }),
        [{ text: t("s_low"), drill: { segment: "csat_low" }, id: "csat_low" }],
        { def: t("def_csat"), target: targetLine(agentsCsat.avg_stars, targets.csat, stars) }),
      tile("csat_bot", t("t_csat_bot"),
        { text: stars(botCsat.avg_stars), drill: { segment: "csat_bot" }, empty: empty(botCsat.avg_stars) },
        empty(botCsat.avg_stars) ? "" : t("s_csat_bot", { n: botCsat.answers, rate: pct(botCsat.csat_rate) }), [],
        { def: t("def_csat_bot"), target: targetLine(botCsat.avg_stars, targets.csat, stars) }),
      tile("sla", t("t_sla", { target: sla.target_s }), {
        empty: !n,
        nodes: n ? [drillButton(num(sla.bot_breaches), { segment: "bot_sla_breach" }, "bot_sla_breach"),
                    document.createTextNode(" / "),
                    drillButton(num(sla.human_breaches), { segment: "human_sla_breach" }, "human_sla_breach")]
          : [document.createTextNode(t("no_data"))],
      }, n ? `${t("s_sla_bot")} ${pct(sla.bot_breach_rate)} / ${t("s_sla_human")} ${pct(sla.human_breach_rate)}`
        : "", [],
      { def: t("def_sla"), target: slaTarget([sla.bot_breach_rate, sla.human_breach_rate], targets.sla_breach_rate) }),
      tile("repeat", t("t_repeat"),
        { text: pct(s.repeat_contacts.rate), drill: { segment: "repeat" }, empty: empty(s.repeat_contacts.rate) },
        empty(s.repeat_contacts.rate) ? ""
          : t("s_repeat", { part: s.repeat_contacts.repeats, whole: s.repeat_contacts.identified }), [],
        { def: t("def_repeat") }),
      tile("resolution", t("t_resolution"),
        { text: secs(s.resolution_time.avg_s), drill: { segment: "handed_off" },
          empty: empty(s.resolution_time.avg_s) },
        empty(s.resolution_time.avg_s) ? ""
          : t("s_resolved", { n: s.resolution_time.resolved, max: secs(s.resolution_time.max_s) }), [],
        { def: t("def_resolution") }),
      tile("complaints", t("t_complaints"),
        { text: pct(comp.answered_24h_rate), drill: { segment: "handed_off", reason: "complaint" },
          empty: empty(comp.answered_24h_rate) },
        comp.handoffs ? t("s_complaints", { n: comp.handoffs }) : "",
        // the late and escalated counts open the conversations behind them
        comp.handoffs ? [{ text: t("s_late", { n: num(comp.breaches_24h) }), drill: { segment: "complaint_late_24h" },
                           id: "complaint_late_24h" },
                         { text: t("s_escalated", { n: num(comp.escalated_48h) }),
                           drill: { segment: "complaint_escalated_48h" }, id: "complaint_escalated_48h" }] : [],
        { def: `${t("def_complaints")} ${t("target_none")}.` }),
      tile("sources", t("t_sources"), { nodes: [srcNode], empty: empty(src.kb_rate) },
        empty(src.kb_rate) ? "" : t("s_sources", { n: num(src.answered), kb: num(src.by_source.kb),
                                                   flow: num(src.by_source.flow),
                                                   fallback: num(src.by_source.fallback) }), [],
        { def: `${t("def_sources")} ${t("target_none")}.` }),
      tile("agent_load", t("t_load"), { text: pct(load.load), empty: empty(load.load) },
        empty(load.load) ? "" : t("s_load", { occ: pct(load.occupancy), hours: (load.online_minutes / 60).toFixed(1) }),
        [], { def: t("def_load"), target: targetLine(load.load, targets.agent_load, pct) }),
    );
  }

  function renderQuestions() {
    fillTable("questions-table", state.questions, 4, (q, tr) => {
      tr.dataset.covered = q.covered ? "yes" : "no";
      tr.append(cell(q.question), cell(num(q.asked)), cell(`${num(q.kb_answered)} (${pct(q.kb_rate)})`),
        cell(q.covered ? t("yes") : t("no")));
    });
  }

  function renderSources() {
    fillTable("sources-table", state.sources, 5, (r, tr) => {
      tr.dataset.source = r.source;
      tr.append(cell(t(`src_${r.source}`)), cell(r.kb_id || "–"), cell(num(r.answers)), cell(pct(r.share)),
        cell(r.avg_score === null ? "–" : r.avg_score.toFixed(2)));
    });
  }

  // ---------------------------------------------------------------- charts

  function chartsAvailable(canvas) {
    const ok = typeof window.Chart === "function";
    const box = canvas.parentElement;
    let note = box.querySelector(".chart-missing");
    if (!ok && !note) {
      note = document.createElement("p");
      note.className = "chart-missing error";
      box.append(note);
    }
    if (note) {
      note.textContent = ok ? "" : t("charts_missing");
      note.hidden = ok;
    }
    return ok;
  }

  function draw(key, canvas, config) {
    if (state.charts[key]) {
      state.charts[key].destroy();
      delete state.charts[key];
    }
    if (!chartsAvailable(canvas)) return;
    state.charts[key] = new window.Chart(canvas, config);
  }

  function rangeDays() {
    const days = [];
    const start = new Date(`${state.filters.start}T00:00:00Z`);
    const end = new Date(`${state.filters.end}T00:00:00Z`);
    for (let d = start; d <= end && days.length <= 400; d = new Date(d.getTime() + 86400000)) {
      days.push(d.toISOString().slice(0, 10));
    }
    return days.length > 400 ? state.daily.map((r) => r.day) : days;
  }

  function renderDaily() {
    const byDay = new Map(state.daily.map((r) => [r.day, r]));
    const days = rangeDays();
    const pick = (field) => days.map((d) => (byDay.has(d) ? byDay.get(d)[field] : 0));
    const rate = days.map((d) => (byDay.has(d) && byDay.get(d).bot_resolution_rate !== null
      ? Math.round(byDay.get(d).bot_resolution_rate * 1000) / 10 : null));
    draw("daily", $("chart-daily"), {
      data: {
        labels: days,
        datasets: [
          { type: "bar", label: t("ds_resolved"), data: pick("bot_resolved"), backgroundColor: COLORS.resolved,
            stack: "c", yAxisID: "y", order: 1 },
          { type: "bar", label: t("ds_handed"), data: pick("handed_off"), backgroundColor: COLORS.handed,
            stack: "c", yAxisID: "y", order: 1 },
          { type: "line", label: t("ds_rate"), data: rate, borderColor: COLORS.rate, backgroundColor: COLORS.rate,
            yAxisID: "rate", spanGaps: true, order: 0 },
        ],
      },
      options: {
        animation: false, responsive: true, maintainAspectRatio: false,
        interaction: { mode: "index", intersect: false },
        scales: {
          x: { stacked: true },
          y: { stacked: true, beginAtZero: true, ticks: { precision: 0 },
               title: { display: true, text: t("ds_conversations") } },
          rate: { position: "right", min: 0, max: 100, grid: { drawOnChartArea: false } },
        },
        onClick: (event, elements) => {
          if (elements.length) openDrill({ segment: "all", day: days[elements[0].index] });
        },
      },
    });
  }

  function renderReasons() {
    const rows = state.reasons;
    draw("reasons", $("chart-reasons"), {
      type: "bar",
      data: { labels: rows.map((r) => reasonLabel(r.reason)),
              datasets: [{ label: t("handoffs"), data: rows.map((r) => r.handoffs),
                           backgroundColor: COLORS.reasons }] },
      options: {
        animation: false, responsive: true, maintainAspectRatio: false, indexAxis: "y",
        plugins: { legend: { display: false } }, scales: { x: { beginAtZero: true, ticks: { precision: 0 } } },
        onClick: (event, elements) => {
          if (elements.length) openDrill({ segment: "handed_off", reason: rows[elements[0].index].reason });
        },
      },
    });
    fillTable("reasons-table", rows, 3, (r, tr) => {
      tr.append(cell(reasonLabel(r.reason)),
        cell(drillButton(num(r.handoffs), { segment: "handed_off", reason: r.reason }, `reason-${r.reason}`)),
        cell(pct(r.rate)));
    });
  }

  // ---------------------------------------------------------------- tables

  function cell(content, tag) {
    const td = document.createElement(tag || "td");
    if (content instanceof Node) td.append(content);
    else td.textContent = content === null || content === undefined ? "–" : String(content);
    return td;
  }

  function emptyRow(span) {
    const tr = document.createElement("tr");
    const td = cell(t("no_rows"));
    td.colSpan = span;
    td.className = "muted";
    tr.append(td);
    return tr;
  }

  // A table's body: one row per item (``fill`` appends its cells), or "no data" across ``span`` columns.
  function fillTable(id, items, span, fill) {
    const body = $(id).tBodies[0];
    body.replaceChildren();
    if (!items.length) {
      body.append(emptyRow(span));
      return;
    }
    for (const item of items) {
      const tr = document.createElement("tr");
      fill(item, tr);
      body.append(tr);
    }
  }

  function renderAgents() {
    fillTable("agents-table", state.agents, 10, (a, tr) => {
      tr.append(cell(a.agent_id), cell(num(a.handoffs)), cell(pct(a.share)), cell(num(a.replies)),
        cell(a.closed ? drillButton(num(a.closed), { segment: "all", agent: a.agent_id }, `agent-${a.agent_id}`)
          : "0"),
        cell(secs(a.handle_avg_s)), cell(a.csat_answers ? `${stars(a.csat_avg)} (${a.csat_answers})` : t("no_data")),
        cell(a.online_minutes ? secs(a.online_minutes * 60) : t("no_data")), cell(pct(a.occupancy)), cell(pct(a.load)));
    });
  }

  function renderTiers() {
    fillTable("tiers-table", state.tiers, 6, (r, tr) => {
      tr.append(cell(r.vip ? `${r.tier} (${t("vip")})` : r.tier), cell(num(r.handoffs)), cell(secs(r.queue_wait_avg_s)),
        cell(secs(r.queue_wait_max_s)), cell(secs(r.human_frt_avg_s)),
        cell(`${num(r.human_sla_breaches)} (${pct(r.human_breach_rate)})`));
    });
  }

  function renderScores() {
    const side = (n, share) => (n ? `${num(n)} (${pct(share)})` : "0");
    fillTable("scores-table", state.scores, 3, (r, tr) => {
      tr.append(cell("★".repeat(r.stars)), cell(side(r.bot, r.bot_share)), cell(side(r.agents, r.agents_share)));
    });
    fillTable("ctypes-table", state.ctypes, 4, (r, tr) => {
      tr.append(cell(t(`ct_${r.complaint_type}`)), cell(num(r.complaints)), cell(pct(r.share)), cell(num(r.answered)));
    });
  }

  function renderTopics() {
    fillTable("topics-table", state.topics, 4, (r, tr) => {
      tr.append(cell(r.topic), cell(r.language), cell(num(r.count)), cell(r.sources));
    });
  }

  function renderHeatmap() {
    const table = $("heatmap");
    table.replaceChildren();
    const counts = new Map(state.heatmap.map((r) => [`${r.dow}-${r.hour}`, r]));
    const max = Math.max(0, ...state.heatmap.map((r) => r.conversations));
    const head = document.createElement("tr");
    head.append(cell("", "th"));
    for (let h = 0; h < 24; h += 1) head.append(cell(String(h), "th"));
    const thead = document.createElement("thead");
    thead.append(head);
    const tbody = document.createElement("tbody");
    const dows = t("dows");
    for (let d = 0; d < 7; d += 1) {
      const tr = document.createElement("tr");
      tr.append(cell(dows[d], "th"));
      for (let h = 0; h < 24; h += 1) {
        const r = counts.get(`${d}-${h}`);
        const n = r ? r.conversations : 0;
        const level = n && max ? Math.max(1, Math.ceil((n / max) * 4)) : 0;
        const td = document.createElement("td");
        td.className = `heat-${level}`;
        if (n) {
          const button = drillButton(String(n), { segment: "all", dow: d, hour: h }, `slot-${d}-${h}`);
          button.title = `${t("d_slot", { dow: dows[d], hour: h })}: ${n} / ${t("handed_off")} ${r.handed_off}`;
          td.append(button);
        }
        tr.append(td);
      }
      tbody.append(tr);
    }
    table.append(thead, tbody);
  }

  // ---------------------------------------------------------------- drill-down

  function drillTitle(drill) {
    const parts = [t(`d_${drill.segment}`)];
    if (drill.day) parts.push(t("d_day", { v: drill.day }));
    if (drill.reason) parts.push(t("d_reason", { v: reasonLabel(drill.reason) }));
    if (drill.agent) parts.push(t("d_agent", { v: drill.agent }));
    if (drill.dow !== undefined && drill.hour !== undefined) {
      parts.push(t("d_slot", { dow: t("dows")[drill.dow], hour: drill.hour }));
    }
    return `${t("drill")}: ${parts.join(" · ")}`;
  }

  async function openDrill(drill) {
    state.drill = drill;
    const q = query(drill);
    const section = $("drill");
    section.hidden = false;
    $("drill-title").textContent = drillTitle(drill);
    $("drill-csv").href = `/api/analytics/export/conversations.csv?${q}`;
    $("drill-csv").setAttribute("download", "");
    const body = $("drill-table").tBodies[0];
    let data;
    try {
      data = await api("GET", `/api/analytics/conversations?${q}`);
    } catch (err) {
      setStatus(t("failed", { detail: err.message }), true);
      return;
    }
    if (state.drill !== drill) return; // a newer drill-down was asked for meanwhile
    body.replaceChildren();
    // The API lists at most DRILL_LIMIT conversations (oldest first); say so rather than show a wrong count.
    $("drill-count").textContent = data.rows.length >= DRILL_LIMIT ? t("first_n", { n: num(DRILL_LIMIT) })
      : num(data.rows.length);
    if (!data.rows.length) body.append(emptyRow(12));
    for (const r of data.rows) {
      const tr = document.createElement("tr");
      tr.append(cell(r.conversation_id), cell(r.day), cell(r.hour), cell(r.channel), cell(r.language),
        cell(r.handed_off ? t("yes") : t("no")), cell(r.reason ? reasonLabel(r.reason) : null), cell(r.agent_id),
        cell(r.bot_frt_s === null ? null : secs(r.bot_frt_s)),
        cell(r.human_frt_s === null ? null : secs(r.human_frt_s)), cell(r.csat), cell(r.repeat ? t("yes") : ""));
      body.append(tr);
    }
    section.scrollIntoView({ block: "nearest" });
  }

  function closeDrill() {
    state.drill = null;
    $("drill").hidden = true;
  }

  // ---------------------------------------------------------------- start

  async function onLogin(event) {
    event.preventDefault();
    $("login-error").textContent = "";
    try {
      await api("POST", "/api/agent/login",
        { username: $("login-username").value, password: $("login-password").value });
      $("login-password").value = "";
      await start();
    } catch (err) {
      $("login-error").textContent = err.message;
    }
  }

  // ---------------------------------------------------------------- live queue and SLA board

  const LIVE_EVERY_MS = 5000;
  let liveTimer = null;

  function liveTile(key, value, alarm) {
    const div = document.createElement("div");
    div.className = alarm ? "tile tile--alarm" : "tile";
    div.dataset.live = key;
    const label = document.createElement("div");
    label.className = "tile__label";
    label.textContent = t(`live_${key}`);
    const val = document.createElement("div");
    val.className = "tile__value";
    val.textContent = value;
    div.append(label, val);
    return div;
  }

  function renderLive(b) {
    const w = b.waiting;
    const br = b.breaches;
    const ag = b.agents;
    $("live-tiles").replaceChildren(
      liveTile("waiting", num(w.total)), liveTile("vip", num(w.vip)),
      liveTile("oldest", secs(w.oldest_wait_s)), liveTile("oldest_vip", secs(w.oldest_vip_wait_s)),
      liveTile("agents", ag.online ? `${ag.online} · ${ag.owned}/${ag.capacity}` : t("live_none")),
      liveTile("load", pct(ag.load)), liveTile("pickup", num(br.pickup), br.pickup > 0),
      liveTile("c24", num(br.complaints_24h), br.complaints_24h > 0),
      liveTile("c48", num(br.complaints_48h), br.complaints_48h > 0),
      liveTile("alerts", num(br.alerts_open), br.alerts_open > 0));
    const rows = Object.entries(w.by_priority).map(([p, n]) => {
      const tr = document.createElement("tr");
      tr.dataset.priority = p;
      for (const text of [t("live_p", { p }), num(n)]) {
        const td = document.createElement("td");
        td.textContent = text;
        tr.appendChild(td);
      }
      return tr;
    });
    $("live-priority").querySelector("tbody").replaceChildren(...rows);
    $("live-agents").querySelector("tbody").replaceChildren(...ag.rows.map((a) => {
      const tr = document.createElement("tr");
      for (const text of [a.name, `${a.owned}/${a.limit}`, pct(a.load)]) {
        const td = document.createElement("td");
        td.textContent = text;
        tr.appendChild(td);
      }
      return tr;
    }));
    $("live-at").textContent = new Date(b.at * 1000).toLocaleTimeString(lang === "zh" ? "zh-CN" : "en-US");
  }

  async function refreshLive() {
    try {
      renderLive(await api("GET", "/api/analytics/live"));
    } catch (err) {
      if (err.status === 401 || err.status === 403) {
        clearInterval(liveTimer);
        liveTimer = null;
      }
    }
  }

  function startLive() {
    refreshLive();
    if (liveTimer === null) liveTimer = setInterval(refreshLive, LIVE_EVERY_MS);
  }

  async function start() {
    let me;
    try {
      me = await api("GET", "/api/agent/me");
    } catch (err) {
      show(err.status === 401 ? "login-view" : "forbidden-view");
      return;
    }
    if (me.role !== "supervisor") {
      show("forbidden-view");
      return;
    }
    $("whoami").textContent = `${me.display_name || me.username || ""} (${me.role})`;
    show("dash-view");
    state.filters = readFilters();
    fillForm();
    startLive();
    await load();
  }

  document.addEventListener("DOMContentLoaded", () => {
    lang = initialLanguage();
    applyStrings();
    $("ui-lang").addEventListener("change", (e) => setLanguage(e.target.value));
    $("login-form").addEventListener("submit", onLogin);
    $("filters").addEventListener("submit", onFilter);
    $("drill-close").addEventListener("click", closeDrill);
    start();
  });
}());
