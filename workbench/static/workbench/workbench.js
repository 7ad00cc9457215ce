// The editors' workbench: knowledge articles (list, search, edit in both languages), their versions (diff,
// restore) and "try a question". Same login as the agent console; every value from the API is set as text.
(function () {
  "use strict";

  const LANG_KEY = "desk.lang"; // the same choice as the agent console's
  const STRINGS = {
    en: {
      title: "Content workbench", login_help: "Editors and supervisors: the agent console's account.",
      username: "Username", password: "Password", login: "Log in", logout: "Log out",
      forbidden: "Editors and supervisors only.", language_ui: "Language", articles: "Knowledge articles",
      search: "Search id, title, answer, question, tag", count: "{n} articles", article: "Article",
      pick: "Pick an article on the left.", title_zh: "Title (Chinese)", title_en: "Title (English)",
      answer_zh: "Answer (Chinese)", answer_en: "Answer (English)",
      questions_zh: "Example questions (Chinese), one per line",
      questions_en: "Example questions (English), one per line", tags: "Tags (comma-separated)",
      reviewed: "Last reviewed against the policy", save: "Save",
      save_help: "Saving stores a version and writes the article file; the bot uses it after the index is rebuilt.",
      saved: "Saved as version {v}.", unchanged: "Nothing changed: no new version.",
      theirs: "What changed meanwhile", yours: "Your edit against the current version",
      load_current: "Load the current version (your edit is shown above)", versions: "Versions",
      version_line: "v{v} · {kind} · {author} · {time}", restore: "Restore", show_diff: "Diff",
      restored: "Version {from} restored as version {v}.", kind_import: "imported", kind_files: "changed in the files",
      kind_edit: "edited", kind_restore: "restored v{from}", version: "version {v}",
      try: "Try a question", try_help: "What the bot would do now, with its own decision on the live index.",
      try_lang: "Language", auto: "detect", try_go: "Try", decision: "Decision",
      decision_answer: "answer with the best article", decision_suggest: "did you mean (suggest articles)",
      decision_none: "decline (no answer in the knowledge base)",
      level_confident: "confident", level_middling: "middling", level_none: "below the bar",
      thresholds: "answer ≥ {c}, did-you-mean ≥ {m}, clear lead {margin}; index {build}",
      error: "Error {status}: {detail}",
      tab_releases: "Releases", releases: "Releases of the bot", retrain: "Retrain now",
      releases_help: "A retrain builds a new model and knowledge index from the current content, in the background. The gate then measures it against the live release on held-out questions; a release that loses more than the tolerance can only be deployed by a supervisor, with a reason. Deploying swaps the model on every worker while customers keep chatting; an earlier release can be rolled back to.",
      rel_id: "Release", rel_status: "Status", rel_by: "By", rel_started: "Started", rel_time: "Time", rel_gate: "Gate",
      status_training: "training", status_ready: "ready to deploy", status_blocked: "refused by the gate",
      status_failed: "failed", status_cancelled: "cancelled", status_live: "live", status_retired: "earlier",
      gate_pass: "passed", gate_fail: "refused", gate_none: "-", release_title: "Release {id} ({kind})",
      kind_retrain: "retrained", kind_setup: "set up", stage_snapshot: "copy the content",
      stage_kb_index: "build the knowledge index", stage_rasa_train: "train the Rasa model",
      stage_nlu_gate: "measure intents (held-out sets)", stage_kb_gate: "measure answers (retrieval dev set)",
      stage_time: "{s} s", stage_running: "running, {s} s", cancel_training: "Cancel the training",
      deploy: "Deploy to the bot", deploy_over: "Deploy anyway (supervisor)", rollback: "Roll back to this release",
      override_reason: "Why deploy although the gate refused it (kept in the log)",
      deployed: "Release {id} is live.", training_started: "Release {id} is training.",
      cancel_sent: "Cancelling…", deploying: "Deploying release {id}: every worker loads it in turn…",
      gate_title: "The gate: candidate against the live release", gate_check: "Measure", gate_language: "Language",
      gate_live: "Live", gate_candidate: "Candidate", gate_change: "Change", gate_result: "Result",
      gate_failing: "Newly failing (right before, wrong now)", gate_fixed: "Fixed (wrong before, right now)",
      gate_intents: "Intents whose F1 changed", check_nlu_macro_f1: "intent macro-F1",
      check_nlu_entity_recall: "order/phone number recall", check_stories_passed: "conversation tests passed",
      stage_stories_gate: "run the conversation tests", check_kb_right: "questions answered with the right article",
      check_kb_out_of_scope_answered: "unrelated questions answered (lower is better)",
      line_expected: "expected {expected}, got {got}", release_log: "Training log", release_history: "Who did what",
      history_line: "{time} · {actor} · {action} release {id}", action_retrain: "started a retrain of",
      action_cancel: "cancelled", action_deploy: "deployed", action_rollback: "rolled back to",
      overridden: "deployed over the gate by {by}: {reason}", elapsed: "{s} s", none_yet: "No release yet.",
      release_error: "Error: {error}",
      status_canary: "in canary ({share})", canary_share: "Share of new conversations (%)", canary_start: "Try it on a share of new conversations (canary)",
      canary_title: "Canary: release {id} answers {share} of new conversations",
      canary_ended: "Last canary: release {id} ({outcome})", outcome_promoted: "promoted",
      outcome_aborted: "aborted", outcome_replaced: "ended by another deploy",
      outcome_auto_aborted: "stopped automatically: significantly worse than the live release",
      action_canary_auto_aborted: "stopped (significantly worse) the canary of",
      guard_why: "{measure}: {z} standard errors worse than the live release",
      canary_since: "Since {time}, started by {by}. Conversations: canary {c}, live {l}.",
      canary_arm: "Canary", canary_live: "Live", canary_difference: "Difference (95 % interval)",
      canary_verdict: "Verdict", canary_help: "Each figure counts conversations as the unit; an interval that contains 0 means the two releases cannot be told apart yet.",
      canary_promote: "Promote: deploy it for everyone", canary_abort: "Abort the canary",
      measure_answered: "messages answered (KB or flow)", measure_fallback: "fallback answers (lower is better)",
      measure_handoff: "handed to a person (lower is better)", measure_csat: "CSAT (1-5)",
      verdict_few: "not enough data yet (at least {n} per arm)", verdict_same: "no significant difference yet",
      verdict_better: "canary better", verdict_worse: "canary worse", canary_started: "Release {id} is answering {share} of new conversations.",
      canary_aborted: "Canary aborted: every conversation is answered by the live release.",
      canary_promoting: "Promoting release {id}: every worker loads it in turn…", canary_starting: "Starting the canary: the canary worker loads release {id} (up to a minute)…", canary_none: "No canary worker is configured (RASA_CANARY_URL).",
      action_canary_start: "started a canary of", action_canary_promoted: "promoted the canary", action_canary_aborted: "aborted the canary of",
      action_canary_replaced: "ended (by another deploy) the canary of",
      tab_articles: "Articles", tab_inbox: "Inbox", inbox: "What the bot got wrong", inbox_sort: "Order",
      sort_frequent: "most frequent first", sort_newest: "newest first", inbox_source: "Source",
      source_all: "all sources", source_nlu_fallback: "not understood (NLU fallback)",
      source_kb_no_answer: "no answer in the knowledge base", source_kb_choice: "picked a \"did you mean\"",
      source_unhelpful: "\"did this help?\" - no", source_repeated_failure: "handed over after repeated failures",
      source_correction: "agent correction", refresh: "Refresh",
      inbox_help: "Phone numbers, order numbers and names are masked. Adding a line writes the Rasa training file (a new version); the bot learns it at the next retrain.",
      inbox_empty: "Nothing to review.", inbox_count: "{groups} groups · {items} messages",
      times: "×{n}", newest: "newest {time}", example: "Example text", intent: "Intent", article_pick: "Article",
      check: "Check", add_intent: "Add to intent", add_article: "Add as example question", dismiss: "Dismiss",
      messages: "customer messages: {n}", guess: "NLU guessed {intent}", wanted_intent: "agent: wanted {intent}",
      wanted_article: "wanted article {article}", added_intent: "Added to {intent} ({language}) as version {v}.",
      added_article: "Added to {article} as version {v}.", dismissed: "Dismissed.", line_ok: "Would add: {line}",
      refused: "Refused", warning: "Warning", pick_intent: "— choose an intent —",
      agent_reply: "The agent's reply", draft_article: "Draft an article", draft_created: "Draft {id} created.",
      open_draft: "Open the draft", category: "Category",
      drafts: "Drafts (not published)", draft_id: "Article id (lowercase words joined by hyphens)",
      draft_category: "Category (article file)", publish: "Publish", discard: "Discard the draft",
      save_draft: "Save the draft", draft_version: "draft · version {v}",
      draft_help: "A draft is not published: the bot cannot use it until it is complete and published.",
      draft_incomplete: "Draft - not published. Still missing or wrong:",
      draft_missing: "missing language: {langs}", draft_complete: "Draft - complete, ready to publish.",
      draft_saved: "Draft saved (version {v}).", published: "Published as article {id} (version {v}).",
      discarded: "Draft discarded.", lang_zh: "Chinese", lang_en: "English", kind_draft: "created from a draft",
      tab_versions: "Versions", feed: "Content versions", feed_kind: "Show", feed_all: "articles and intents",
      feed_articles: "articles", feed_intents: "intents", feed_imports: "include the files as first imported",
      feed_help: "Restoring an earlier version makes a new version with its content (the history keeps both); articles are checked by today's rules and refused if someone changed them meanwhile.",
      feed_empty: "No changes yet.", feed_article: "article", feed_intent: "intent",
      feed_current: "current", restored_intent: "{target}: version {from} restored as version {v}.",
      restored_article: "{target}: version {from} restored as version {v}.",
    },
    zh: {
      title: "内容工作台", login_help: "编辑和主管：使用客服工作台的账号登录。", username: "用户名", password: "密码",
      login: "登录", logout: "退出", forbidden: "仅限编辑和主管使用。", language_ui: "界面语言", articles: "知识库文章",
      search: "搜索编号、标题、答案、问题、标签", count: "共 {n} 篇", article: "文章", pick: "请在左侧选择一篇文章。",
      title_zh: "标题（中文）", title_en: "标题（英文）", answer_zh: "答案（中文）", answer_en: "答案（英文）",
      questions_zh: "示例问题（中文），每行一个", questions_en: "示例问题（英文），每行一个", tags: "标签（逗号分隔）",
      reviewed: "最近按政策核对日期", save: "保存",
      save_help: "保存会生成新版本并写回文章文件；重建索引后机器人才会使用。",
      saved: "已保存为第 {v} 版。", unchanged: "没有改动，未生成新版本。", theirs: "期间别人改了什么",
      yours: "你的修改（相对当前版本）", load_current: "载入当前版本（你的修改见上方）", versions: "版本记录",
      version_line: "第 {v} 版 · {kind} · {author} · {time}", restore: "恢复", show_diff: "差异",
      restored: "已将第 {from} 版恢复为第 {v} 版。", kind_import: "导入", kind_files: "文件中被修改",
      kind_edit: "编辑", kind_restore: "恢复自第 {from} 版", version: "第 {v} 版",
      try: "试问一个问题", try_help: "机器人现在会怎么做：用它自己的判定和当前索引。", try_lang: "语言",
      auto: "自动识别", try_go: "试一试", decision: "判定", decision_answer: "直接用最佳文章回答",
      decision_suggest: "“您是不是想问”（推荐文章）", decision_none: "婉拒（知识库没有答案）",
      level_confident: "有把握", level_middling: "中等", level_none: "低于门槛",
      thresholds: "回答 ≥ {c}，推荐 ≥ {m}，领先幅度 {margin}；索引 {build}",
      error: "错误 {status}：{detail}",
      tab_articles: "文章", tab_inbox: "待处理", inbox: "机器人答错的问题", inbox_sort: "排序",
      sort_frequent: "按出现次数", sort_newest: "按最新", inbox_source: "来源", source_all: "全部来源",
      source_nlu_fallback: "没听懂（NLU 兜底）", source_kb_no_answer: "知识库没有答案",
      source_kb_choice: "选了“您是不是想问”", source_unhelpful: "“有帮助吗？”—没帮助",
      source_repeated_failure: "多次失败后转人工", source_correction: "客服更正", refresh: "刷新",
      inbox_help: "电话号码、订单号和姓名均已隐去。加入意图会写入 Rasa 训练文件（生成新版本），下次重新训练后生效。",
      inbox_empty: "没有待处理的内容。", inbox_count: "{groups} 组 · {items} 条消息",
      times: "×{n}", newest: "最新 {time}", example: "示例文本", intent: "意图", article_pick: "文章",
      check: "检查", add_intent: "加入意图", add_article: "加为示例问题", dismiss: "忽略",
      messages: "{n} 条消息", guess: "NLU 猜测 {intent}", wanted_intent: "客服：应为 {intent}",
      wanted_article: "应为文章 {article}", added_intent: "已加入 {intent}（{language}），第 {v} 版。",
      added_article: "已加入文章 {article}，第 {v} 版。", dismissed: "已忽略。", line_ok: "将加入：{line}",
      refused: "拒绝", warning: "提醒", pick_intent: "— 选择意图 —",
      agent_reply: "客服的回复", draft_article: "起草新文章", draft_created: "已创建草稿 {id}。",
      open_draft: "打开草稿", category: "分类",
      drafts: "草稿（未发布）", draft_id: "文章编号（小写英文单词用连字符连接）", draft_category: "分类（文章文件）",
      publish: "发布", discard: "放弃草稿", save_draft: "保存草稿", draft_version: "草稿 · 第 {v} 版",
      draft_help: "草稿不会发布：补全并发布之前机器人不会使用它。",
      draft_incomplete: "草稿，未发布。还缺少或需要修改：", draft_missing: "缺少语言：{langs}",
      draft_complete: "草稿已完整，可以发布。", draft_saved: "草稿已保存（第 {v} 版）。",
      published: "已发布为文章 {id}（第 {v} 版）。", discarded: "草稿已放弃。", lang_zh: "中文", lang_en: "英文",
      kind_draft: "由草稿创建",
      tab_releases: "发布", releases: "机器人的发布版本", retrain: "立即重新训练",
      releases_help: "重新训练会在后台用当前内容生成新的模型和知识索引。随后门禁用留出问题把它与线上版本比较；下降超过容差的版本只能由主管填写理由后部署。部署时各工作进程依次切换模型，客户可以继续对话；也可以回滚到之前的版本。",
      rel_id: "版本", rel_status: "状态", rel_by: "发起人", rel_started: "开始时间", rel_time: "用时", rel_gate: "门禁",
      status_training: "训练中", status_ready: "可部署", status_blocked: "门禁未通过", status_failed: "失败",
      status_cancelled: "已取消", status_live: "线上", status_retired: "历史版本",
      gate_pass: "通过", gate_fail: "未通过", gate_none: "-", release_title: "版本 {id}（{kind}）",
      kind_retrain: "重新训练", kind_setup: "初始安装", stage_snapshot: "复制内容", stage_kb_index: "构建知识索引",
      stage_rasa_train: "训练 Rasa 模型", stage_nlu_gate: "评估意图（留出集）", stage_kb_gate: "评估答案（检索开发集）",
      stage_time: "{s} 秒", stage_running: "进行中，{s} 秒", cancel_training: "取消训练",
      deploy: "部署到机器人", deploy_over: "仍然部署（主管）", rollback: "回滚到此版本",
      override_reason: "门禁未通过仍要部署的理由（记入日志）",
      deployed: "版本 {id} 已上线。", training_started: "版本 {id} 正在训练。", cancel_sent: "正在取消…",
      deploying: "正在部署版本 {id}：各工作进程依次加载…",
      gate_title: "门禁：候选版本对比线上版本", gate_check: "指标", gate_language: "语言", gate_live: "线上",
      gate_candidate: "候选", gate_change: "变化", gate_result: "结果",
      gate_failing: "新出错（原来对，现在错）", gate_fixed: "已修正（原来错，现在对）", gate_intents: "F1 有变化的意图",
      check_nlu_macro_f1: "意图宏平均 F1", check_nlu_entity_recall: "订单号/手机号召回率", check_stories_passed: "对话测试通过率",
      stage_stories_gate: "运行对话测试",
      check_kb_right: "用正确文章回答的问题", check_kb_out_of_scope_answered: "被回答的无关问题（越低越好）",
      line_expected: "应为 {expected}，实际 {got}", release_log: "训练日志", release_history: "操作记录",
      history_line: "{time} · {actor} · {action}版本 {id}", action_retrain: "开始重新训练",
      action_cancel: "取消了", action_deploy: "部署了", action_rollback: "回滚到",
      overridden: "{by} 越过门禁部署：{reason}", elapsed: "{s} 秒", none_yet: "还没有版本。", release_error: "错误：{error}",
      status_canary: "灰度中（{share}）", canary_share: "新会话比例（%）", canary_start: "先在部分新会话中试用（灰度发布）",
      canary_title: "灰度发布：版本 {id} 回答 {share} 的新会话",
      canary_ended: "上一次灰度：版本 {id}（{outcome}）", outcome_promoted: "已全量", outcome_aborted: "已终止",
      outcome_replaced: "因其他部署结束", outcome_auto_aborted: "已自动终止：明显差于线上版本",
      action_canary_auto_aborted: "（明显变差）自动终止了灰度", guard_why: "{measure}：比线上版本差 {z} 个标准误",
      canary_since: "自 {time} 起，由 {by} 发起。会话数：灰度 {c}，线上 {l}。",
      canary_arm: "灰度", canary_live: "线上", canary_difference: "差值（95% 置信区间）", canary_verdict: "结论",
      canary_help: "各指标以会话为单位计算；区间包含 0 表示暂时还分不出两个版本的差别。",
      canary_promote: "全量发布：对所有会话部署", canary_abort: "终止灰度",
      measure_answered: "已回答的消息（知识库或流程）", measure_fallback: "兜底回复（越低越好）",
      measure_handoff: "转人工（越低越好）", measure_csat: "满意度（1-5）",
      verdict_few: "数据还不够（每组至少 {n}）", verdict_same: "暂无显著差异", verdict_better: "灰度更好", verdict_worse: "灰度更差",
      canary_started: "版本 {id} 正在回答 {share} 的新会话。", canary_aborted: "灰度已终止：所有会话由线上版本回答。",
      canary_promoting: "正在全量发布版本 {id}：各工作进程依次加载…", canary_starting: "正在启动灰度：灰度工作进程加载版本 {id}（最多约一分钟）…", canary_none: "没有配置灰度工作进程（RASA_CANARY_URL）。",
      action_canary_start: "开始灰度发布", action_canary_promoted: "全量发布了灰度", action_canary_aborted: "终止了灰度",
      action_canary_replaced: "（因其他部署）结束了灰度",
      tab_versions: "版本", feed: "内容版本", feed_kind: "显示", feed_all: "文章和意图", feed_articles: "文章",
      feed_intents: "意图", feed_imports: "包括首次导入的文件",
      feed_help: "恢复旧版本会用它的内容生成一个新版本（历史记录两者都保留）；文章按现行规则检查，期间若有人修改则拒绝恢复。",
      feed_empty: "还没有改动。", feed_article: "文章", feed_intent: "意图", feed_current: "当前",
      restored_intent: "{target}：已将第 {from} 版恢复为第 {v} 版。",
      restored_article: "{target}：已将第 {from} 版恢复为第 {v} 版。",
    },
  };

  let lang = "en";
  const state = { me: null, list: [], current: null, versions: null, tryResult: null, conflictHead: null,
    mode: "article", draft: null, drafts: [], categories: [] };

  function $(id) {
    return document.getElementById(id);
  }

  function t(key, params) {
    let text = (STRINGS[lang] && STRINGS[lang][key]) || STRINGS.en[key] || key;
    for (const [name, value] of Object.entries(params || {})) {
      text = text.split(`{${name}}`).join(String(value));
    }
    return text;
  }

  function el(tag, className, text) {
    const node = document.createElement(tag);
    if (className) node.className = className;
    if (text !== undefined) node.textContent = text;
    return node;
  }

  class ApiError extends Error {
    constructor(status, detail, data) {
      super(t("error", { status, detail: detail || "" }));
      this.status = status;
      this.detail = detail;
      this.data = data;
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
      show("login-view");
    }
    if (response.status < 200 || response.status >= 300) {
      throw new ApiError(response.status, data && typeof data.detail === "string" ? data.detail : "", data);
    }
    return data;
  }

  function show(view) {
    for (const id of ["login-view", "forbidden-view", "main-view"]) {
      $(id).hidden = id !== view;
    }
  }

  function applyStrings() {
    document.documentElement.lang = lang === "zh" ? "zh-CN" : "en";
    document.title = t("title");
    for (const node of document.querySelectorAll("[data-i18n]")) {
      node.textContent = t(node.dataset.i18n);
    }
    for (const node of document.querySelectorAll("[data-i18n-placeholder]")) {
      node.setAttribute("placeholder", t(node.dataset.i18nPlaceholder));
    }
    $("ui-lang").value = lang;
  }

  function setLanguage(value) {
    lang = value === "zh" ? "zh" : "en";
    try {
      window.localStorage.setItem(LANG_KEY, lang);
    } catch (err) { /* private mode */ }
    applyStrings();
    renderList();
    renderDrafts();
    if (state.current || state.draft) {
      renderHead();
      renderVersions();
    }
    renderTry();
    renderInbox();
    renderFeed();
    if (releases.data) loadReleases().catch(releaseProblem);
  }

  function initialLanguage() {
    let saved = null;
    try {
      saved = window.localStorage.getItem(LANG_KEY);
    } catch (err) { /* ignore */ }
    if (saved === "zh" || saved === "en") return saved;
    return (navigator.language || "").toLowerCase().startsWith("zh") ? "zh" : "en";
  }

  function when(seconds) {
    return new Date(seconds * 1000).toLocaleString(lang === "zh" ? "zh-CN" : "en-GB");
  }

  // ---------------------------------------------------------------- list

  let searchTimer = null;

  async function loadList() {
    const q = $("search").value.trim();
    const data = await api("GET", `/api/workbench/articles?${new URLSearchParams({ q })}`);
    state.list = data.articles;
    if (!q || !state.categories.length) state.categories = data.categories;
    renderList();
  }

  function renderList() {
    $("list-count").textContent = t("count", { n: state.list.length });
    $("articles").replaceChildren(...state.list.map((a) => {
      const li = el("li", "articles__item");
      const button = el("button", "articles__button");
      button.type = "button";
      button.dataset.id = a.id;
      button.append(el("span", "articles__title", a.title[lang] || a.title.en), el("code", "articles__id", a.id),
        el("span", "muted", ` · ${t("version", { v: a.version })}`));
      if (state.mode === "article" && state.current && state.current.article.id === a.id) {
        button.setAttribute("aria-current", "true");
      }
      button.addEventListener("click", () => openArticle(a.id));
      li.append(button);
      return li;
    }));
  }

  // ---------------------------------------------------------------- editor

  function setMessage(text, isError) {
    $("message").textContent = text || "";
    $("message").classList.toggle("error", Boolean(isError));
  }

  function clearFeedback() {
    setMessage("");
    $("problems").hidden = true;
    $("problem-list").replaceChildren();
    $("conflict").hidden = true;
  }

  async function openArticle(id) {
    clearFeedback();
    state.current = await api("GET", `/api/workbench/articles/${encodeURIComponent(id)}`);
    state.mode = "article";
    state.draft = null;
    fillForm(state.current.article);
    renderHead();
    renderList();
    renderDrafts();
    await loadVersions();
  }

  function renderHead() {
    const isDraft = state.mode === "draft";
    const head = isDraft ? state.draft : state.current;
    if (!head) return;
    $("article-id").textContent = head.article.id;
    $("article-version").textContent = `${t(isDraft ? "draft_version" : "version", { v: head.version })} · `
      + `${head.updated_by} · ${when(head.updated_at)}`;
    $("editor-empty").hidden = true;
    $("editor").hidden = false;
    $("versions-box").hidden = isDraft;
    $("draft-fields").hidden = !isDraft;
    $("publish").hidden = !isDraft;
    $("discard").hidden = !isDraft;
    $("save").textContent = t(isDraft ? "save_draft" : "save");
    $("save-help").textContent = t(isDraft ? "draft_help" : "save_help");
    $("draft-status").hidden = !isDraft;
    if (isDraft) renderDraftStatus();
  }

  function renderDraftStatus() {
    const d = state.draft;
    $("draft-status").dataset.complete = String(d.complete);
    $("draft-state").textContent = t(d.complete ? "draft_complete" : "draft_incomplete");
    const items = d.missing_languages.length
      ? [t("draft_missing", { langs: d.missing_languages.map((l) => t(`lang_${l}`)).join(", ") })] : [];
    $("draft-problems").replaceChildren(...[...items, ...d.problems].map((p) => el("li", "", String(p))));
  }

  function fillForm(article) {
    for (const l of ["zh", "en"]) {
      $(`title-${l}`).value = article.title[l];
      $(`answer-${l}`).value = article.answer[l];
      $(`questions-${l}`).value = article.questions[l].join("\n");
    }
    $("tags").value = (article.tags || []).join(", ");
    $("last-reviewed").value = article.last_reviewed || "";
  }

  function readForm() {
    const lines = (id) => $(id).value.split("\n").map((s) => s.trim()).filter(Boolean);
    return {
      title: { zh: $("title-zh").value, en: $("title-en").value },
      answer: { zh: $("answer-zh").value, en: $("answer-en").value },
      questions: { zh: lines("questions-zh"), en: lines("questions-en") },
      tags: $("tags").value.split(/[,，]/).map((s) => s.trim()).filter(Boolean),
      last_reviewed: $("last-reviewed").value || null,
    };
  }

  function showProblems(err) {
    const problems = (err.data && Array.isArray(err.data.problems)) ? err.data.problems : [err.detail || err.message];
    $("problem-list").replaceChildren(...problems.map((p) => el("li", "", String(p))));
    $("problems").hidden = false;
  }

  function showConflict(err) {
    const data = err.data || {};
    $("conflict-text").textContent = err.detail || "";
    $("conflict-theirs").textContent = data.theirs || "";
    $("conflict-yours").textContent = data.yours || "";
    $("conflict").hidden = false;
    state.conflictHead = data.current || null;
  }

  async function afterWrite(head, doneText) {
    state.current = head;
    fillForm(head.article);
    renderHead();
    setMessage(doneText);
    await Promise.all([loadList(), loadVersions()]);
  }

  async function onSave(event) {
    event.preventDefault();
    clearFeedback();
    $("save").disabled = true;
    if (state.mode === "draft") {
      try {
        await saveDraft();
      } finally {
        $("save").disabled = false;
      }
      return;
    }
    const body = { base_version: state.current.version, ...readForm() };
    try {
      const head = await api("PUT", `/api/workbench/articles/${encodeURIComponent(state.current.article.id)}`, body);
      await afterWrite(head, head.unchanged ? t("unchanged") : t("saved", { v: head.version }));
    } catch (err) {
      if (err.status === 422) {
        showProblems(err);
      } else if (err.status === 409) {
        showConflict(err);
      } else {
        setMessage(err.message, true);
      }
    } finally {
      $("save").disabled = false;
    }
  }

  function onLoadCurrent() {
    if (!state.conflictHead) return;
    if (state.mode === "draft") {
      state.draft = state.conflictHead;
      state.conflictHead = null;
      fillDraft(state.draft);
      $("conflict").hidden = true;
      return;
    }
    state.current = state.conflictHead;
    state.conflictHead = null;
    fillForm(state.current.article);
    renderHead();
    $("conflict").hidden = true;
    loadVersions();
  }

  // ---------------------------------------------------------------- drafts (workbench/drafts.py)

  async function loadDrafts() {
    state.drafts = (await api("GET", "/api/workbench/drafts")).drafts;
    renderDrafts();
  }

  function renderDrafts() {
    $("drafts-box").hidden = !state.drafts.length;
    $("drafts").replaceChildren(...state.drafts.map((d) => {
      const li = el("li", "articles__item");
      const button = el("button", "articles__button");
      button.type = "button";
      button.dataset.draftId = String(d.id);
      button.append(el("span", "articles__title", d.title[lang] || d.title.en || d.title.zh),
        el("code", "articles__id", d.article_id),
        el("span", d.complete ? "muted" : "error", ` · ${d.complete ? t("draft_complete")
          : t("draft_missing", { langs: d.missing_languages.map((l) => t(`lang_${l}`)).join(", ") || "…" })}`));
      if (state.mode === "draft" && state.draft && state.draft.id === d.id) button.setAttribute("aria-current", "true");
      button.addEventListener("click", () => openDraft(d.id).catch((err) => setMessage(err.message, true)));
      li.append(button);
      return li;
    }));
  }

  function fillDraft(draft) {
    fillForm(draft.article);
    $("draft-article-id").value = draft.article.id;
    const categories = state.categories.includes(draft.article.category) ? state.categories
      : [draft.article.category, ...state.categories];
    $("draft-category").replaceChildren(...categories.map((c) => option(c, c, c === draft.article.category)));
    renderHead();
    renderList();
    renderDrafts();
  }

  async function openDraft(id) {
    setView("articles");
    clearFeedback();
    state.draft = await api("GET", `/api/workbench/drafts/${id}`);
    state.mode = "draft";
    state.current = null;
    state.versions = null;
    fillDraft(state.draft);
  }

  async function saveDraft() {
    const body = { base_version: state.draft.version, article_id: $("draft-article-id").value.trim(),
      category: $("draft-category").value, ...readForm() };
    try {
      state.draft = await api("PUT", `/api/workbench/drafts/${state.draft.id}`, body);
      fillDraft(state.draft);
      setMessage(t("draft_saved", { v: state.draft.version }));
      await loadDrafts();
    } catch (err) {
      if (err.status === 409 && err.data && err.data.current) {
        showConflict(err);
      } else if (err.status === 422) {
        showProblems(err);
      } else {
        setMessage(err.message, true);
      }
    }
  }

  async function onPublish() {
    clearFeedback();
    $("publish").disabled = true;
    try {
      await saveDraft(); // what is on screen is what gets published
      if (!$("conflict").hidden || !$("problems").hidden) return;
      const r = await api("POST", `/api/workbench/drafts/${state.draft.id}/publish`,
        { base_version: state.draft.version });
      state.mode = "article";
      state.draft = null;
      state.current = r.article;
      fillForm(r.article.article);
      renderHead();
      setMessage(t("published", { id: r.article.article.id, v: r.article.version }));
      await Promise.all([loadList(), loadDrafts(), loadVersions()]);
    } catch (err) {
      if (err.status === 422) {
        showProblems(err);
      } else if (err.status === 409 && err.data && err.data.current) {
        showConflict(err);
      } else {
        setMessage(err.message, true);
      }
    } finally {
      $("publish").disabled = false;
    }
  }

  async function onDiscard() {
    clearFeedback();
    try {
      await api("POST", `/api/workbench/drafts/${state.draft.id}/discard`, { base_version: state.draft.version });
      state.mode = "article";
      state.draft = null;
      $("editor").hidden = true;
      $("draft-status").hidden = true;
      $("editor-empty").hidden = false;
      $("article-id").textContent = "";
      $("article-version").textContent = t("discarded");
      await loadDrafts();
    } catch (err) {
      setMessage(err.message, true);
    }
  }

  // ---------------------------------------------------------------- versions

  async function loadVersions() {
    if (!state.current || state.mode !== "article") return;
    const id = state.current.article.id;
    const data = await api("GET", `/api/workbench/articles/${encodeURIComponent(id)}/versions`);
    state.versions = data.versions;
    $("version-diff").hidden = true;
    renderVersions();
  }

  function renderVersions() {
    if (!state.current || !state.versions || state.mode !== "article") return;
    $("versions").replaceChildren(...state.versions.map((v) => {
      const li = el("li", "versions__item");
      li.dataset.version = String(v.version);
      const kind = v.kind === "restore" ? t("kind_restore", { from: v.restored_from }) : t(`kind_${v.kind}`);
      li.append(el("span", "", t("version_line", { v: v.version, kind, author: v.author, time: when(v.created_at) })));
      const diffButton = el("button", "link", t("show_diff"));
      diffButton.type = "button";
      diffButton.addEventListener("click", () => {
        $("version-diff").textContent = v.diff || "";
        $("version-diff").hidden = false;
      });
      li.append(" ", diffButton);
      if (v.version !== state.current.version) {
        const restoreButton = el("button", "link restore", t("restore"));
        restoreButton.type = "button";
        restoreButton.addEventListener("click", () => onRestore(v.version));
        li.append(" ", restoreButton);
      }
      return li;
    }));
  }

  async function onRestore(version) {
    clearFeedback();
    try {
      const head = await api("POST", `/api/workbench/articles/${encodeURIComponent(state.current.article.id)}/restore`,
        { version, base_version: state.current.version });
      await afterWrite(head, head.unchanged ? t("unchanged") : t("restored", { from: version, v: head.version }));
    } catch (err) {
      if (err.status === 422) {
        showProblems(err);
      } else if (err.status === 409) {
        showConflict(err);
      } else {
        setMessage(err.message, true);
      }
    }
  }

  // ---------------------------------------------------------------- try a question

  async function onTry(event) {
    event.preventDefault();
    $("try-error").textContent = "";
    $("try-submit").disabled = true;
    try {
      const body = { question: $("try-question").value.trim() };
      if ($("try-lang").value) body.language = $("try-lang").value;
      state.tryResult = await api("POST", "/api/workbench/try", body);
      renderTry();
    } catch (err) {
      state.tryResult = null;
      $("try-result").hidden = true;
      $("try-error").textContent = err.message;
    } finally {
      $("try-submit").disabled = false;
    }
  }

  function renderTry() {
    const result = state.tryResult;
    if (!result) return;
    $("try-decision").textContent = t(`decision_${result.decision}`);
    $("try-decision").dataset.decision = result.decision;
    $("try-hits").replaceChildren(...result.hits.map((hit) => {
      const li = el("li", "try__hit");
      li.dataset.id = hit.id;
      li.append(el("span", "", hit.title), " ", el("code", "", hit.id), " ",
        el("span", "try__score", hit.score.toFixed(3)), " ", el("span", "muted", t(`level_${hit.level}`)));
      return li;
    }));
    const th = result.thresholds || {};
    $("try-thresholds").textContent = t("thresholds", { c: th.confident, m: th.middling, margin: th.clear_margin,
      build: String(result.index_build || "").slice(0, 12) });
    $("try-result").hidden = false;
  }

  // ---------------------------------------------------------------- inbox

  const inbox = { data: null, intents: null, articles: null };

  function setView(view) {
    for (const name of ["articles", "inbox", "versions", "releases"]) {
      $(`${name}-view`).hidden = view !== name;
      $(`tab-${name}`).setAttribute("aria-pressed", String(view === name));
    }
    if (view === "inbox") loadInbox().catch((err) => { $("inbox-error").textContent = err.message; });
    if (view === "versions") loadFeed().catch((err) => { $("feed-message").textContent = err.message; });
    if (view === "releases") loadReleases().catch(releaseProblem);
  }

  // ---------------------------------------------------------------- releases (retrain, gate, deploy, roll back)

  const releases = { data: null, canary: null, open: null, timer: null };
  const POLL_MS = 5000; // reads count against the account's report limit
  const CANARY_POLL_MS = 15000;

  function releaseProblem(err) {
    $("releases-message").textContent = err.message;
    $("releases-message").classList.add("error");
  }

  function releaseSay(text) {
    $("releases-message").textContent = text;
    $("releases-message").classList.remove("error");
  }

  function when(ts) {
    return ts ? new Date(ts * 1000).toLocaleString(lang === "zh" ? "zh-CN" : "en-GB") : "";
  }

  function pct(value) {
    return value === null || value === undefined ? "-" : `${(value * 100).toFixed(1)}%`;
  }

  async function loadReleases() {
    [releases.data, releases.canary] = await Promise.all([api("GET", "/api/workbench/releases"),
      api("GET", "/api/workbench/canary")]);
    renderReleases();
    renderCanary();
    const wanted = releases.open || releases.data.training || (releases.data.releases[0] || {}).id;
    if (wanted) await openRelease(wanted);
    schedulePoll();
  }

  function renderReleases() {
    const body = $("releases-table").querySelector("tbody");
    body.replaceChildren();
    for (const r of releases.data.releases) {
      const row = el("tr", r.id === releases.open ? "is-open" : "");
      row.dataset.release = String(r.id);
      row.tabIndex = 0;
      const link = el("button", "linkish", `#${r.id}`);
      link.type = "button";
      link.addEventListener("click", () => openRelease(r.id).catch(releaseProblem));
      const cell = el("td");
      cell.append(link);
      const trying = releases.canary && releases.canary.running && releases.canary.running.release_id === r.id;
      const label = trying ? t("status_canary", { share: `${Math.round(releases.canary.running.share * 100)}%` })
        : t(`status_${r.status}`);
      row.append(cell, el("td", `status status--${trying ? "canary" : r.status}`, label), el("td", "", r.created_by),
        el("td", "", when(r.created_at)), el("td", "", t("elapsed", { s: Math.round(r.elapsed_s) })),
        el("td", "", t(`gate_${r.gate || "none"}`)));
      body.append(row);
    }
    if (!releases.data.releases.length) {
      const row = el("tr");
      const cell = el("td", "muted", t("none_yet"));
      cell.colSpan = 6;
      row.append(cell);
      body.append(row);
    }
    $("retrain").disabled = Boolean(releases.data.training);
    const history = $("release-history");
    history.replaceChildren();
    for (const h of releases.data.history) {
      const item = el("li", "", t("history_line", { time: when(h.ts), actor: h.actor,
        action: t(`action_${h.action}`), id: h.release_id }));
      if (h.detail && h.detail.override_reason) {
        item.append(el("div", "muted", t("overridden", { by: h.actor, reason: h.detail.override_reason })));
      }
      if (h.detail && h.detail.measure) {
        item.append(el("div", "muted", t("guard_why", { measure: t(`measure_${h.detail.measure}`), z: h.detail.z })));
      }
      history.append(item);
    }
  }

  async function openRelease(id) {
    releases.open = id;
    const [row, log] = await Promise.all([api("GET", `/api/workbench/releases/${id}`),
      api("GET", `/api/workbench/releases/${id}/log`)]);
    renderRelease(row, log.log);
    for (const tr of $("releases-table").querySelectorAll("tbody tr")) {
      tr.classList.toggle("is-open", tr.dataset.release === String(id));
    }
    return row;
  }

  function renderRelease(r, log) {
    $("release-detail").hidden = false;
    $("release-title").textContent = t("release_title", { id: r.id, kind: t(`kind_${r.kind}`) });
    const status = [t(`status_${r.status}`)];
    if (r.error) status.push(t("release_error", { error: r.error }));
    if (r.override_by) status.push(t("overridden", { by: r.override_by, reason: r.override_reason }));
    $("release-status").textContent = status.join(" · ");
    const stages = $("release-stages");
    stages.replaceChildren();
    for (const s of r.stages) {
      const state = s.ok === true ? "done" : s.ok === false ? "failed" : "running";
      const item = el("li", `stage stage--${state}`, `${t(`stage_${s.name}`)} · `
        + t(state === "running" ? "stage_running" : "stage_time", { s: s.seconds.toFixed(0) }));
      item.dataset.stage = s.name;
      stages.append(item);
    }
    $("release-cancel").hidden = r.status !== "training";
    const deployable = ["ready", "blocked", "retired"].includes(r.status) && !r.files_removed;
    const over = r.status === "blocked";
    const deploy = $("release-deploy");
    deploy.hidden = !deployable || (over && state.me.role !== "supervisor");
    deploy.textContent = t(r.status === "retired" ? "rollback" : over ? "deploy_over" : "deploy");
    deploy.dataset.release = String(r.id);
    $("override-box").hidden = !(deployable && over && state.me.role === "supervisor");
    const canary = releases.canary || {};
    const tryable = ["ready", "blocked"].includes(r.status) && !r.files_removed && canary.available && !canary.running
      && !(over && state.me.role !== "supervisor");
    $("release-canary").hidden = !tryable;
    $("canary-box").hidden = !tryable;
    $("release-canary").dataset.release = String(r.id);
    renderGate(r.report);
    $("release-log").textContent = log || "";
  }

  function renderGate(report) {
    $("release-gate").hidden = !report;
    if (!report) return;
    const body = $("gate-table").querySelector("tbody");
    body.replaceChildren();
    const checks = ["nlu", "stories", "kb"].filter((name) => report[name]);
    for (const row of checks.flatMap((name) => report[name].rows || [])) {
      const tr = el("tr", row.passed ? "" : "is-bad");
      tr.dataset.check = `${row.check}:${row.language}`;
      const delta = row.delta === null || row.delta === undefined ? "-"
        : `${row.delta >= 0 ? "+" : ""}${(row.delta * 100).toFixed(1)}`;
      tr.append(el("td", "", t(`check_${row.check}`)), el("td", "", row.language), el("td", "", pct(row.current)),
        el("td", "", pct(row.candidate)), el("td", "", delta), el("td", "", t(row.passed ? "gate_pass" : "gate_fail")));
      body.append(tr);
    }
    const lines = (key) => {
      const out = [];
      for (const check of checks) {
        for (const [language, changes] of Object.entries(report[check].changes || {})) {
          for (const line of changes[key] || []) out.push({ check, language, ...line });
        }
      }
      return out;
    };
    for (const [key, id] of [["newly_failing", "gate-failing"], ["fixed", "gate-fixed"]]) {
      const list = $(id);
      list.replaceChildren();
      for (const line of lines(key)) {
        const item = el("li", "", `[${line.language}] ${line.text} — `);
        item.append(el("span", "muted", t("line_expected", { expected: line.expected || "-", got: line.got || "-" })));
        list.append(item);
      }
    }
    const intents = $("gate-intents").querySelector("tbody");
    intents.replaceChildren();
    for (const [language, rows] of Object.entries(report.nlu.per_intent || {})) {
      for (const [intent, f1] of Object.entries(rows)) {
        if (f1.current === f1.candidate) continue;
        const tr = el("tr");
        tr.append(el("td", "", language), el("td", "", intent), el("td", "", f1.current ?? "-"),
          el("td", "", f1.candidate ?? "-"));
        intents.append(tr);
      }
    }
  }

  function schedulePoll() {
    window.clearTimeout(releases.timer);
    if ($("releases-view").hidden || !releases.data) return;
    if (releases.data.training) {
      releases.timer = window.setTimeout(() => pollTraining().catch(releaseProblem), POLL_MS);
    } else if (releases.canary && releases.canary.running) {
      releases.timer = window.setTimeout(() => pollCanary().catch(releaseProblem), CANARY_POLL_MS);
    }
  }

  // While a canary runs: only its comparison.
  async function pollCanary() {
    releases.canary = await api("GET", "/api/workbench/canary");
    renderCanary();
    schedulePoll();
  }

  function renderCanary() {
    const data = releases.canary;
    const shown = data && data.shown;
    $("canary").hidden = !shown;
    if (!shown) return;
    const running = Boolean(data.running);
    const share = `${Math.round(shown.share * 100)}%`;
    $("canary-title").textContent = running ? t("canary_title", { id: shown.release_id, share })
      : t("canary_ended", { id: shown.release_id, outcome: t(`outcome_${shown.outcome}`) });
    const cmp = data.comparison;
    $("canary-status").textContent = t("canary_since", { time: when(shown.started_at), by: shown.started_by,
      c: cmp ? cmp.canary.conversations : 0, l: cmp ? cmp.control.conversations : 0 });
    const body = $("canary-table").querySelector("tbody");
    body.replaceChildren();
    for (const measure of ["answered", "fallback", "handoff", "csat"]) {
      if (!cmp) break;
      const rate = measure !== "csat";
      const fmt = (v) => (v === null || v === undefined ? "-" : rate ? pct(v) : v.toFixed(2));
      const arm = (m) => `${fmt(m.value)} (n=${m.count})${m.low !== null && m.low !== undefined
        ? ` [${fmt(m.low)}, ${fmt(m.high)}]` : ""}`;
      const d = cmp.difference[measure];
      const signed = (v) => (v === null ? "-" : `${v >= 0 ? "+" : ""}${rate ? (v * 100).toFixed(1) : v.toFixed(2)}`);
      const diff = d.value === null ? "-" : `${signed(d.value)} [${signed(d.low)}, ${signed(d.high)}]`;
      const lowerBetter = measure === "fallback" || measure === "handoff";
      let verdict = "verdict_same";
      if (!d.enough) verdict = "verdict_few";
      else if (d.significant) verdict = (d.value > 0) !== lowerBetter ? "verdict_better" : "verdict_worse";
      const tr = el("tr", verdict === "verdict_worse" ? "is-bad" : "");
      tr.dataset.measure = measure;
      tr.append(el("td", "", t(`measure_${measure}`)), el("td", "", arm(cmp.canary[measure])),
        el("td", "", arm(cmp.control[measure])), el("td", "", diff),
        el("td", "", t(verdict, { n: measure === "csat" ? cmp.min_ratings : cmp.min_conversations })));
      body.append(tr);
    }
    $("canary-promote").hidden = !running;
    $("canary-abort").hidden = !running;
  }

  async function onStartCanary() {
    const id = Number($("release-canary").dataset.release);
    const share = Number($("canary-share").value) / 100;
    const button = $("release-canary");
    button.disabled = true;
    releaseSay(t("canary_starting", { id }));
    try {
      await api("POST", `/api/workbench/releases/${id}/canary`, { share, reason: $("override-reason").value });
      releaseSay(t("canary_started", { id, share: `${Math.round(share * 100)}%` }));
      await loadReleases();
    } catch (err) {
      releaseProblem(err);
    } finally {
      button.disabled = false;
    }
  }

  async function onPromoteCanary() {
    const id = releases.canary.running.release_id;
    $("canary-promote").disabled = true;
    releaseSay(t("canary_promoting", { id }));
    try {
      await api("POST", "/api/workbench/canary/promote", { reason: $("override-reason").value });
      releaseSay(t("deployed", { id }));
      await loadReleases();
    } catch (err) {
      releaseProblem(err);
    } finally {
      $("canary-promote").disabled = false;
    }
  }

  async function onAbortCanary() {
    try {
      await api("POST", "/api/workbench/canary/abort");
      releaseSay(t("canary_aborted"));
      await loadReleases();
    } catch (err) {
      releaseProblem(err);
    }
  }

  // While a release trains: only its row and log; the whole list again once it has ended.
  async function pollTraining() {
    const id = releases.data.training;
    if (releases.open !== id) return loadReleases();
    const row = await openRelease(id);
    if (row.status === "training") schedulePoll();
    else await loadReleases();
    return undefined;
  }

  async function onRetrain() {
    try {
      const row = await api("POST", "/api/workbench/releases");
      releases.open = row.id;
      releaseSay(t("training_started", { id: row.id }));
      await loadReleases();
    } catch (err) {
      releaseProblem(err);
    }
  }

  async function onCancelTraining() {
    try {
      await api("POST", `/api/workbench/releases/${releases.open}/cancel`);
      releaseSay(t("cancel_sent"));
      await loadReleases();
    } catch (err) {
      releaseProblem(err);
    }
  }

  async function onDeploy() {
    const id = Number($("release-deploy").dataset.release);
    const button = $("release-deploy");
    button.disabled = true;
    releaseSay(t("deploying", { id }));
    try {
      await api("POST", `/api/workbench/releases/${id}/deploy`, { reason: $("override-reason").value });
      $("override-reason").value = "";
      releaseSay(t("deployed", { id }));
      await loadReleases();
    } catch (err) {
      releaseProblem(err);
    } finally {
      button.disabled = false;
    }
  }

  async function loadInbox() {
    $("inbox-error").textContent = "";
    if (!inbox.intents) inbox.intents = (await api("GET", "/api/workbench/intents")).intents;
    if (!inbox.articles) inbox.articles = (await api("GET", "/api/workbench/articles")).articles;
    const params = new URLSearchParams({ sort: $("inbox-sort").value });
    if ($("inbox-source").value) params.set("source", $("inbox-source").value);
    inbox.data = await api("GET", `/api/workbench/inbox?${params}`);
    renderInbox();
  }

  function option(value, text, selected) {
    const node = el("option", "", text);
    node.value = value;
    node.selected = Boolean(selected);
    return node;
  }

  function renderInbox() {
    const data = inbox.data;
    if (!data) return;
    $("inbox-badge").textContent = data.item_count ? String(data.item_count) : "";
    $("inbox-count").textContent = t("inbox_count", { groups: data.group_count, items: data.item_count });
    $("inbox-empty").hidden = data.groups.length > 0;
    $("inbox-groups").replaceChildren(...data.groups.map(renderGroup));
  }

  function renderGroup(group) {
    const li = el("li", "inbox__group");
    li.dataset.id = String(group.id);
    const ids = group.messages.map((m) => m.id);
    const head = el("div", "inbox__head");
    head.append(el("span", "inbox__count", t("times", { n: group.count })), el("q", "inbox__text", group.text),
      el("span", "muted", `${group.language} · ${t("newest", { time: when(group.newest_ts) })}`));
    for (const [source, n] of Object.entries(group.sources)) {
      head.append(el("span", "inbox__chip", `${t(`source_${source}`)} ${n > 1 ? `×${n}` : ""}`.trim()));
    }
    const guesses = [...new Set(group.messages.map((m) => m.intent_guess).filter(Boolean))];
    for (const g of guesses) head.append(el("span", "inbox__chip", t("guess", { intent: g })));
    for (const i of group.suggested_intents) head.append(el("span", "inbox__chip", t("wanted_intent", { intent: i })));
    for (const a of group.suggested_articles) head.append(el("span", "inbox__chip", t("wanted_article", { article: a })));

    const textLabel = el("label", "");
    const text = el("input", "inbox__edit");
    text.value = group.text;
    text.maxLength = 300;
    textLabel.append(el("span", "", t("example")), text);

    const intentRow = el("div", "inbox__row");
    const intentSelect = el("select", "inbox__intent");
    intentSelect.setAttribute("aria-label", t("intent"));
    const preferred = group.suggested_intents[0] || guesses[0] || "";
    intentSelect.append(option("", t("pick_intent"), !preferred),
      ...(inbox.intents[group.language] || []).map((name) => option(name, name, name === preferred)));
    const intentButtons = el("div", "inbox__actions");
    const checkButton = el("button", "inbox__check", t("check"));
    const addIntent = el("button", "inbox__add-intent", t("add_intent"));
    intentButtons.append(checkButton, addIntent);
    intentRow.append(intentSelect, intentButtons);

    const articleRow = el("div", "inbox__row");
    const articleSelect = el("select", "inbox__article");
    articleSelect.setAttribute("aria-label", t("article_pick"));
    const suggestedArticle = group.suggested_articles[0]
      || (group.messages.find((m) => m.article_id) || {}).article_id || "";
    articleSelect.append(option("", "—", !suggestedArticle), ...inbox.articles.map((a) =>
      option(a.id, `${a.title[lang] || a.title.en} (${a.id})`, a.id === suggestedArticle)));
    const articleButtons = el("div", "inbox__actions");
    const addArticle = el("button", "inbox__add-article", t("add_article"));
    const dismissButton = el("button", "inbox__dismiss", t("dismiss"));
    articleButtons.append(addArticle, dismissButton);
    articleRow.append(articleSelect, articleButtons);

    // An agent answered one of these messages: one click drafts a new article from the reply (workbench/drafts.py).
    const answered = group.messages.find((m) => m.detail && Array.isArray(m.detail.agent_replies)
      && m.detail.agent_replies.length);
    const draftRow = el("div", "inbox__draft");
    const draftButton = el("button", "inbox__draft-article", t("draft_article"));
    let replySelect = null;
    let categorySelect = null;
    if (answered) {
      const replies = answered.detail.agent_replies;
      const fullest = replies.reduce((best, r, i) => (r.text.length > replies[best].text.length ? i : best), 0);
      const preview = el("p", "inbox__reply", replies[fullest].text);
      const row = el("div", "inbox__row");
      const pickers = el("div", "inbox__actions");
      if (replies.length > 1) {
        replySelect = el("select", "inbox__reply-pick");
        replySelect.setAttribute("aria-label", t("agent_reply"));
        replySelect.append(...replies.map((r, i) => option(String(i), r.text.slice(0, 80), i === fullest)));
        replySelect.addEventListener("change", () => { preview.textContent = replies[Number(replySelect.value)].text; });
        pickers.append(replySelect);
      }
      categorySelect = el("select", "inbox__category");
      categorySelect.setAttribute("aria-label", t("category"));
      const usual = (inbox.articles.find((a) => a.id === suggestedArticle) || {}).category || state.categories[0];
      categorySelect.append(...state.categories.map((c) => option(c, c, c === usual)));
      pickers.append(categorySelect);
      row.append(pickers, draftButton);
      draftRow.append(el("span", "muted", t("agent_reply")), preview, row);
    }
    draftRow.hidden = !answered;

    const result = el("div", "inbox__result");
    result.setAttribute("role", "status");
    const details = el("details", "inbox__messages");
    details.append(el("summary", "", t("messages", { n: group.messages.length })));
    const list = el("ul", "");
    for (const m of group.messages) {
      list.append(el("li", "", `${when(m.ts)} · ${t(`source_${m.source}`)} · ${m.text}`));
    }
    details.append(list);
    for (const b of [checkButton, addIntent, addArticle, dismissButton, draftButton]) b.type = "button";

    function say(lines, isError) {
      result.replaceChildren(...lines.map(([cls, line]) => el("p", cls, line)));
      result.classList.toggle("error", Boolean(isError));
    }
    function problems(err) {
      const refusals = (err.data && err.data.refusals) || [];
      return refusals.length ? refusals.map((r) => ["error", `${t("refused")}: ${r.message}`]) : [["error", err.message]];
    }
    async function busy(fn) {
      for (const b of [checkButton, addIntent, addArticle, dismissButton, draftButton]) b.disabled = true;
      try {
        await fn();
      } finally {
        for (const b of [checkButton, addIntent, addArticle, dismissButton, draftButton]) b.disabled = false;
      }
    }
    const intentBody = () => ({ text: text.value, intent: intentSelect.value, language: group.language });
    checkButton.addEventListener("click", () => busy(async () => {
      if (!intentSelect.value) return;
      try {
        const r = await api("POST", "/api/workbench/inbox/check", intentBody());
        say([[r.refused ? "error" : "", t("line_ok", { line: r.line })],
          ...r.refusals.map((x) => ["error", `${t("refused")}: ${x.message}`]),
          ...r.warnings.map((x) => ["inbox__warn", `${t("warning")}: ${x.message}`])]);
      } catch (err) {
        say(problems(err), true);
      }
    }));
    addIntent.addEventListener("click", () => busy(async () => {
      if (!intentSelect.value) return;
      try {
        const r = await api("POST", "/api/workbench/inbox/add-to-intent", { ...intentBody(), item_ids: ids });
        say([["", t("added_intent", { intent: r.intent, language: r.language, v: r.version })],
          ...r.warnings.map((x) => ["inbox__warn", `${t("warning")}: ${x.message}`])]);
        li.dataset.done = "intent";
        await refreshSoon();
      } catch (err) {
        say(problems(err), true);
      }
    }));
    addArticle.addEventListener("click", () => busy(async () => {
      if (!articleSelect.value) return;
      try {
        const head = await api("GET", `/api/workbench/articles/${encodeURIComponent(articleSelect.value)}`);
        const r = await api("POST", "/api/workbench/inbox/add-to-article", { item_ids: ids,
          article_id: articleSelect.value, base_version: head.version, text: text.value, language: group.language });
        say([["", t("added_article", { article: articleSelect.value, v: r.version })]]);
        li.dataset.done = "article";
        await refreshSoon();
      } catch (err) {
        const listed = err.data && err.data.problems;
        say(listed ? listed.map((x) => ["error", x]) : problems(err), true);
      }
    }));
    draftButton.addEventListener("click", () => busy(async () => {
      try {
        const body = { item_ids: ids, category: categorySelect.value };
        if (replySelect) body.reply_index = Number(replySelect.value);
        const d = await api("POST", "/api/workbench/inbox/draft-article", body);
        const open = el("button", "link inbox__open-draft", t("open_draft"));
        open.type = "button";
        open.addEventListener("click", () => openDraft(d.id).catch((err) => say([["error", err.message]], true)));
        result.replaceChildren(el("p", "", t("draft_created", { id: d.article.id })), open);
        result.classList.remove("error");
        li.dataset.done = "draft";
        await Promise.all([refreshSoon(), loadDrafts()]);
      } catch (err) {
        say(problems(err), true);
      }
    }));
    dismissButton.addEventListener("click", () => busy(async () => {
      try {
        await api("POST", "/api/workbench/inbox/dismiss", { item_ids: ids });
        say([["", t("dismissed")]]);
        li.dataset.done = "dismissed";
        await refreshSoon();
      } catch (err) {
        say(problems(err), true);
      }
    }));
    li.append(head, textLabel, intentRow, articleRow, draftRow, result, details);
    return li;
  }

  async function refreshSoon() {
    // The handled group stays on screen with its result; the counts update.
    const params = new URLSearchParams({ sort: $("inbox-sort").value });
    if ($("inbox-source").value) params.set("source", $("inbox-source").value);
    const data = await api("GET", `/api/workbench/inbox?${params}`);
    $("inbox-badge").textContent = data.item_count ? String(data.item_count) : "";
    $("inbox-count").textContent = t("inbox_count", { groups: data.group_count, items: data.item_count });
  }

  // ---------------------------------------------------------------- content versions (workbench/versions_api.py)

  const feed = { rows: null };

  async function loadFeed() {
    const params = new URLSearchParams({ kind: $("feed-kind").value, limit: "200" });
    if ($("feed-imports").checked) params.set("include_imports", "true");
    feed.rows = (await api("GET", `/api/workbench/versions?${params}`)).versions;
    renderFeed();
  }

  function renderFeed() {
    if (!feed.rows) return;
    $("feed-empty").hidden = feed.rows.length > 0;
    $("feed").replaceChildren(...feed.rows.map((v) => {
      const li = el("li", "feed__item");
      li.dataset.type = v.type;
      li.dataset.target = v.target;
      li.dataset.version = String(v.version);
      const kind = v.kind === "restore" ? t("kind_restore", { from: v.restored_from }) : t(`kind_${v.kind}`);
      const head = el("div", "feed__head");
      head.append(el("span", "inbox__chip", t(`feed_${v.type}`)), el("code", "feed__target", v.target),
        el("span", "", t("version_line", { v: v.version, kind, author: v.author, time: when(v.created_at) })));
      if (v.current) head.append(el("span", "inbox__chip feed__current", t("feed_current")));
      const diff = el("pre", "diff feed__diff", v.diff || "");
      diff.hidden = true;
      const diffButton = el("button", "link feed__show", t("show_diff"));
      diffButton.type = "button";
      diffButton.addEventListener("click", () => { diff.hidden = !diff.hidden; });
      head.append(diffButton);
      if (!v.current) {
        const restoreButton = el("button", "link restore feed__restore", t("restore"));
        restoreButton.type = "button";
        restoreButton.addEventListener("click", () => onFeedRestore(v, restoreButton));
        head.append(restoreButton);
      }
      li.append(head, diff);
      return li;
    }));
  }

  async function onFeedRestore(v, button) {
    $("feed-message").textContent = "";
    $("feed-message").classList.remove("error");
    button.disabled = true;
    try {
      let r;
      if (v.type === "article") {
        // Optimistic like the editor's restore: the version the page showed as current, 409 if it changed.
        r = await api("POST", `/api/workbench/articles/${encodeURIComponent(v.article_id)}/restore`,
          { version: v.version, base_version: v.current_version });
      } else {
        r = await api("POST", `/api/workbench/intents/${v.language}/${encodeURIComponent(v.intent)}/restore`,
          { version: v.version });
      }
      $("feed-message").textContent = r.unchanged ? t("unchanged")
        : t(`restored_${v.type}`, { target: v.target, from: v.version, v: r.version });
      await loadFeed();
      if (v.type === "article") await loadList();
    } catch (err) {
      const listed = err.data && Array.isArray(err.data.problems) ? `: ${err.data.problems.join("; ")}` : "";
      $("feed-message").textContent = err.message + (err.status === 422 ? listed : "");
      $("feed-message").classList.add("error");
    } finally {
      button.disabled = false;
    }
  }

  // ---------------------------------------------------------------- session

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

  async function onLogout() {
    try {
      await api("POST", "/api/agent/logout");
    } catch (err) { /* already gone */ }
    state.me = null;
    state.current = null;
    show("login-view");
  }

  async function start() {
    try {
      state.me = await api("GET", "/api/workbench/me");
    } catch (err) {
      show(err.status === 401 ? "login-view" : "forbidden-view");
      return;
    }
    $("whoami").textContent = `${state.me.display_name || state.me.username} (${state.me.role})`;
    show("main-view");
    await Promise.all([loadList(), loadDrafts()]);
    if (window.location.hash === "#inbox") setView("inbox");
    if (window.location.hash === "#versions") setView("versions");
    if (window.location.hash === "#releases") setView("releases");
  }

  document.addEventListener("DOMContentLoaded", () => {
    lang = initialLanguage();
    applyStrings();
    $("ui-lang").addEventListener("change", (e) => setLanguage(e.target.value));
    $("login-form").addEventListener("submit", onLogin);
    $("logout").addEventListener("click", onLogout);
    $("forbidden-logout").addEventListener("click", onLogout);
    $("search").addEventListener("input", () => {
      window.clearTimeout(searchTimer);
      searchTimer = window.setTimeout(() => loadList().catch((err) => setMessage(err.message, true)), 200);
    });
    $("editor").addEventListener("submit", onSave);
    $("load-current").addEventListener("click", onLoadCurrent);
    $("try-form").addEventListener("submit", onTry);
    $("tab-articles").addEventListener("click", () => setView("articles"));
    $("tab-inbox").addEventListener("click", () => setView("inbox"));
    $("tab-versions").addEventListener("click", () => setView("versions"));
    $("tab-releases").addEventListener("click", () => setView("releases"));
    $("retrain").addEventListener("click", onRetrain);
    $("release-cancel").addEventListener("click", onCancelTraining);
    $("release-deploy").addEventListener("click", onDeploy);
    $("release-canary").addEventListener("click", onStartCanary);
    $("canary-promote").addEventListener("click", onPromoteCanary);
    $("canary-abort").addEventListener("click", onAbortCanary);
    $("releases-refresh").addEventListener("click", () => loadReleases().catch(releaseProblem));
    $("publish").addEventListener("click", onPublish);
    $("discard").addEventListener("click", onDiscard);
    for (const id of ["feed-kind", "feed-imports", "feed-refresh"]) {
      $(id).addEventListener(id === "feed-refresh" ? "click" : "change",
        () => loadFeed().catch((err) => { $("feed-message").textContent = err.message; }));
    }
    for (const id of ["inbox-sort", "inbox-source"]) {
      $(id).addEventListener("change", () => loadInbox().catch((err) => { $("inbox-error").textContent = err.message; }));
    }
    $("inbox-refresh").addEventListener("click", () => loadInbox().catch((err) => {
      $("inbox-error").textContent = err.message;
    }));
    start();
  });
}());
