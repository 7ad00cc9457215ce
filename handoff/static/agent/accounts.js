// Account management for supervisors and "take next" for everyone (issue 17, item 4). Supervisors see every account
// with its load and set concurrency, skills (reason codes), languages; disable/enable; reset a passphrase. "Take
// next" claims the first waiting conversation that matches my skills and languages (VIP and urgent first) and opens
// it (agent.js listens to "desk:open"). The server checks roles, audits and limits (handoff/api/accounts.py).
(function () {
  "use strict";

  const $ = (id) => document.getElementById(id);
  const STRINGS = {
    en: {
      take_next: "Take next for me", nothing: "Nothing waiting for your skills and languages.",
      manage: "Manage accounts", concurrency: "Max conversations", skills: "Skills (reasons; none = all)",
      languages: "Languages (none = all)", save: "Save", disable: "Disable", enable: "Enable",
      reset: "Reset passphrase", new_password: "New passphrase (8+)", saved: "Saved {name}.",
      disabled_badge: "disabled", online: "online", active: "{n} open", reset_done: "Passphrase of {name} reset.",
      sc_take_next: "take the next conversation for me (my skills and languages, VIP first)",
      sc_search: "search past conversations and model cases",
    },
    zh: {
      take_next: "为我接入下一个", nothing: "没有符合您技能和语言的排队对话。", manage: "管理账号",
      concurrency: "最多同时对话", skills: "技能（原因；不选 = 全部）", languages: "语言（不选 = 全部）", save: "保存",
      disable: "停用", enable: "启用", reset: "重置口令", new_password: "新口令（至少 8 位）", saved: "已保存 {name}。",
      disabled_badge: "已停用", online: "在线", active: "{n} 个进行中", reset_done: "已重置 {name} 的口令。",
      sc_take_next: "为我接入下一个对话（按我的技能和语言，VIP 优先）", sc_search: "搜索历史对话和优秀案例",
    },
  };
  let lang = "en";
  let role = "";
  let reasons = [];

  function t(key, vars) {
    let text = (STRINGS[lang] || STRINGS.en)[key] || STRINGS.en[key] || key;
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
      const error = new Error(typeof detail === "string" ? detail : `HTTP ${response.status}`);
      error.status = response.status;
      throw error;
    }
    return data;
  }

  async function takeNext() {
    const message = $("take-next-message");
    message.textContent = "";
    try {
      const row = await call("POST", "/api/agent/queue/next");
      document.dispatchEvent(new CustomEvent("desk:open", { detail: { handoffId: row.handoff_id } }));
    } catch (err) {
      message.textContent = err.status === 404 ? t("nothing") : err.message;
    }
  }

  function checkboxes(name, values, chosen) {
    const box = el("fieldset", "account-admin__choices");
    box.appendChild(el("legend", "", t(name)));
    for (const value of values) {
      const label = el("label", "account-admin__choice");
      const input = el("input");
      input.type = "checkbox";
      input.value = value;
      input.name = name;
      input.checked = chosen.includes(value);
      label.append(input, document.createTextNode(` ${value}`));
      box.appendChild(label);
    }
    return box;
  }

  function picked(form, name) {
    return Array.from(form.querySelectorAll(`input[name="${name}"]:checked`)).map((i) => i.value);
  }

  function accountItem(a) {
    const li = el("li", "account-admin__item");
    li.dataset.username = a.username;
    const head = el("div", "account-admin__head", `${a.display_name} (${a.username}, ${a.role})`);
    if (a.disabled) {
      head.appendChild(el("span", "badge", t("disabled_badge")));
    }
    if (a.online) {
      head.appendChild(el("span", "badge", t("online")));
    }
    head.appendChild(el("span", "muted small", ` ${t("active", { n: a.active })}`));
    li.appendChild(head);
    if (a.role === "editor") {
      return li;
    }
    const form = el("form", "account-admin__form");
    const concurrency = el("label", "", t("concurrency"));
    const number = el("input");
    number.type = "number";
    number.min = "1";
    number.max = "20";
    number.name = "max_concurrent";
    number.value = String(a.max_concurrent);
    concurrency.appendChild(number);
    form.append(concurrency, checkboxes("skills", reasons, a.skills || []),
      checkboxes("languages", ["zh", "en"], a.languages || []));
    const save = el("button", "", t("save"));
    save.type = "submit";
    save.dataset.action = "save";
    const toggle = el("button", "link", a.disabled ? t("enable") : t("disable"));
    toggle.type = "button";
    toggle.dataset.action = "toggle";
    form.append(save, toggle);
    form.addEventListener("submit", (event) => {
      event.preventDefault();
      change(a, { max_concurrent: Number(number.value), skills: picked(form, "skills"),
        languages: picked(form, "languages") });
    });
    toggle.addEventListener("click", () => change(a, { disabled: !a.disabled }));
    const reset = el("form", "account-admin__reset");
    const password = el("input");
    password.type = "password";
    password.autocomplete = "new-password";
    password.minLength = 8;
    password.required = true;
    password.setAttribute("aria-label", t("new_password"));
    password.placeholder = t("new_password");
    const resetButton = el("button", "link", t("reset"));
    resetButton.type = "submit";
    reset.append(password, resetButton);
    reset.addEventListener("submit", async (event) => {
      event.preventDefault();
      try {
        await call("POST", `/api/agent/accounts/${encodeURIComponent(a.id)}/password`, { password: password.value });
        $("account-admin-message").textContent = t("reset_done", { name: a.username });
        password.value = "";
      } catch (err) {
        $("account-admin-message").textContent = err.message;
      }
    });
    li.append(form, reset);
    return li;
  }

  async function change(account, body) {
    try {
      await call("PATCH", `/api/agent/accounts/${encodeURIComponent(account.id)}`, body);
      await loadAccounts();
      $("account-admin-message").textContent = t("saved", { name: account.username });
    } catch (err) {
      $("account-admin-message").textContent = err.message;
    }
  }

  async function loadAccounts() {
    if (role !== "supervisor") {
      return;
    }
    if (!reasons.length) {
      reasons = (await call("GET", "/api/agent/meta")).reason_codes || [];
    }
    const list = await call("GET", "/api/agent/accounts");
    $("account-admin").replaceChildren(...list.map(accountItem));
  }

  function applyStrings() {
    $("take-next").textContent = t("take_next");
    $("sc-take-next").textContent = t("sc_take_next");
    $("sc-search").textContent = t("sc_search");
    $("manage-accounts-title").textContent = t("manage");
  }

  async function whoAmI() {
    try {
      const me = await call("GET", "/api/agent/me");
      role = me.role;
    } catch (err) {
      role = "";
    }
  }

  // t: take next; /: search (not while typing, not with modifiers, only in the desk view).
  function onKey(event) {
    const target = event.target;
    const typing = target && (["INPUT", "TEXTAREA", "SELECT"].includes(target.tagName) || target.isContentEditable);
    if (typing || event.defaultPrevented || event.ctrlKey || event.metaKey || event.altKey || $("desk-view").hidden
        || document.querySelector("dialog[open]")) {
      return;
    }
    if (event.key === "t") {
      event.preventDefault();
      takeNext();
    } else if (event.key === "/") {
      event.preventDefault();
      $("search-q").focus();
    }
  }

  document.addEventListener("DOMContentLoaded", () => {
    $("take-next").addEventListener("click", takeNext);
    document.addEventListener("keydown", onKey);
    $("manage-accounts").addEventListener("toggle", async () => {
      if ($("manage-accounts").open) {
        await whoAmI();
        loadAccounts().catch((err) => { $("account-admin-message").textContent = err.message; });
      }
    });
    for (const select of document.querySelectorAll(".ui-lang")) {
      select.addEventListener("change", () => {
        lang = select.value === "zh" ? "zh" : "en";
        applyStrings();
        if ($("manage-accounts").open) {
          loadAccounts().catch(() => {});
        }
      });
    }
    lang = document.documentElement.lang === "zh-CN" ? "zh" : "en";
    applyStrings();
  });

  document.addEventListener("desk:conversation", (event) => {
    const next = event.detail || {};
    role = next.role || role;
    if (next.lang && next.lang !== lang) {
      lang = next.lang;
      applyStrings();
    }
  });
}());
