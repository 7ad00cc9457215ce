/*
 * Web chat client for the handoff gateway (no framework, no build step).
 *
 * Contract: POST {api}/messages sends one customer message and returns the bot's replies;
 * GET {api}/conversations/{id}/messages?after=<id> returns the history (or what came after <id>);
 * GET {api}/conversations/{id}/events?after=<id> streams new messages (agent replies) as Server-Sent Events.
 * Live updates come through EventSource; the poll stays as the fallback (slower while the stream is open).
 * Security rule: every piece of message text reaches the DOM through textContent / text nodes only,
 * because customer and agent text may contain markup.
 */
(function () {
  "use strict";

  const STORAGE_CONVERSATION = "webchat.conversation_id";
  const STORAGE_LANG = "webchat.lang";
  const POLL_INTERVAL_MS = 3000;
  /** While the event stream is open the poll is only a safety net. */
  const POLL_INTERVAL_WITH_EVENTS_MS = 5000;
  const REQUEST_TIMEOUT_MS = 30000;
  const NEAR_LIMIT_RATIO = 0.9;
  const MAX_DETAIL_CHARS = 200;
  const URL_PATTERN = /\bhttps?:\/\/[^\s<>"'\u3000-\u303f\uff00-\uffef]+/g;
  const URL_TRAILING_PUNCTUATION = /[).,;:!?\]}'"]+$/;
  /** A photo the customer sent: the server stores it as this text; the page shows the image instead. */
  const PHOTO_PATTERN = /^\[photo\] \/api\/channels\/media\/([A-Za-z]{1,64})$/;
  const PHOTO_TYPES = ["image/jpeg", "image/png", "image/webp"];
  const PHOTO_MAX_BYTES = 5 * 1024 * 1024;

  /** All UI strings; message text itself comes from the server untranslated. */
  const STRINGS = {
    en: {
      pageTitle: "Customer service",
      title: "Customer service",
      subtitle: "Orders, delivery, returns and more",
      welcome: "Hi! Ask me about orders, delivery, returns, refunds or invoices.",
      placeholder: "Type a message…",
      inputLabel: "Your message",
      composerHint: "Enter sends, Shift+Enter adds a new line.",
      sendLabel: "Send message",
      newConversation: "New chat",
      newConversationLabel: "Start a new conversation",
      langToggleText: "中文",
      langToggleLabel: "切换到中文 (switch to Chinese)",
      customer: "You",
      bot: "Assistant",
      agent: "Agent",
      system: "Notice",
      quickReplies: "Suggested replies",
      typing: "The assistant is typing…",
      sendFailed: "Message not sent.",
      networkError: "Network problem.",
      timeoutError: "The server took too long.",
      retry: "Retry",
      retryLabel: "Retry sending this message",
      historyError: "Earlier messages could not be loaded; retrying in the background.",
      conversationExpired: "This conversation has ended. Your next message starts a new one.",
      counterLabel: "characters used",
      agentTyping: "{name} is typing…",
      read: "Read",
      photoButton: "Send a photo",
      photoAlt: "Your photo",
      photoType: "Only JPEG, PNG or WebP photos can be sent.",
      photoTooLarge: "This photo is larger than 5 MB.",
    },
    zh: {
      pageTitle: "在线客服",
      title: "在线客服",
      subtitle: "订单、物流、售后问题都可以问",
      welcome: "您好！订单、物流、退换货、退款、发票等问题都可以问我。",
      placeholder: "请输入消息…",
      inputLabel: "您的消息",
      composerHint: "按 Enter 发送，Shift+Enter 换行。",
      sendLabel: "发送消息",
      newConversation: "新对话",
      newConversationLabel: "开始新的对话",
      langToggleText: "EN",
      langToggleLabel: "Switch to English (切换到英文)",
      customer: "我",
      bot: "智能助手",
      agent: "客服",
      system: "系统消息",
      quickReplies: "推荐回复",
      typing: "对方正在输入…",
      sendFailed: "消息发送失败。",
      networkError: "网络异常。",
      timeoutError: "服务器响应超时。",
      retry: "重试",
      retryLabel: "重新发送这条消息",
      historyError: "历史消息加载失败，正在后台重试。",
      conversationExpired: "本次对话已结束，发送新消息将开始新的对话。",
      counterLabel: "已输入字数",
      agentTyping: "{name} 正在输入…",
      read: "已读",
      photoButton: "发送图片",
      photoAlt: "您发送的图片",
      photoType: "只能发送 JPEG、PNG 或 WebP 格式的图片。",
      photoTooLarge: "图片超过 5 MB。",
    },
  };

  const LOCALES = { en: "en-US", zh: "zh-CN" };

  /** Error carrying enough detail to tell the customer what went wrong. */
  class ApiError extends Error {
    /**
     * @param {"http"|"network"|"timeout"|"format"} kind
     * @param {number} status HTTP status, 0 when no response arrived
     * @param {string} detail server-provided `detail`, if any
     */
    constructor(kind, status, detail) {
      super(`${kind} ${status} ${detail}`);
      this.kind = kind;
      this.status = status;
      this.detail = detail;
    }
  }

  // ---------------------------------------------------------------- storage

  /** localStorage can throw (privacy modes, disabled storage); the chat still works without it. */
  function storageGet(key) {
    try {
      return window.localStorage.getItem(key);
    } catch (err) {
      console.warn("webchat: localStorage unavailable", err);
      return null;
    }
  }

  function storageSet(key, value) {
    try {
      if (value === null) {
        window.localStorage.removeItem(key);
      } else {
        window.localStorage.setItem(key, value);
      }
    } catch (err) {
      console.warn("webchat: localStorage unavailable", err);
    }
  }

  // ---------------------------------------------------------------- helpers

  function detectLang() {
    const stored = storageGet(STORAGE_LANG);
    if (stored === "zh" || stored === "en") {
      return stored;
    }
    const nav = String(navigator.language || "").toLowerCase();
    return nav.startsWith("zh") ? "zh" : "en";
  }

  /** RFC 4122 v4 id; randomUUID is missing outside secure contexts (plain http on a LAN host). */
  function newMessageId() {
    if (window.crypto && typeof window.crypto.randomUUID === "function") {
      return window.crypto.randomUUID();
    }
    const bytes = window.crypto.getRandomValues(new Uint8Array(16));
    bytes[6] = (bytes[6] & 0x0f) | 0x40;
    bytes[8] = (bytes[8] & 0x3f) | 0x80;
    const hex = Array.from(bytes, (b) => b.toString(16).padStart(2, "0")).join("");
    return `${hex.slice(0, 8)}-${hex.slice(8, 12)}-${hex.slice(12, 16)}-${hex.slice(16, 20)}-${hex.slice(20)}`;
  }

  /**
   * Fill `el` with `text`, turning http(s) URLs into links. Text goes in only as text nodes,
   * so markup in messages is shown literally and never parsed.
   */
  function setMessageText(el, text) {
    el.textContent = "";
    URL_PATTERN.lastIndex = 0;
    if (!URL_PATTERN.test(text)) {
      el.textContent = text;
      return;
    }
    URL_PATTERN.lastIndex = 0;
    let last = 0;
    for (const match of text.matchAll(URL_PATTERN)) {
      let url = match[0];
      const trailing = url.match(URL_TRAILING_PUNCTUATION);
      if (trailing) {
        url = url.slice(0, url.length - trailing[0].length);
      }
      const start = match.index;
      el.appendChild(document.createTextNode(text.slice(last, start)));
      const link = document.createElement("a");
      link.href = url;
      link.textContent = url;
      link.target = "_blank";
      link.rel = "noopener noreferrer nofollow";
      el.appendChild(link);
      last = start + url.length;
    }
    el.appendChild(document.createTextNode(text.slice(last)));
  }

  /** Same normalisation as the gateway's clean_text (NFC, control chars, runs of blanks), for matching only. */
  function matchKey(text) {
    return String(text ?? "")
      .normalize("NFC")
      .replace(/[\u0000-\u0008\u000b-\u001f\u007f-\u009f]/g, " ")
      .replace(/[ \t\u00a0]+/g, " ")
      .trim();
  }

  // ---------------------------------------------------------------- app

  function createChat(root) {
    const apiBase = (document.body.dataset.apiBase || "/api/webchat").replace(/\/+$/, "");
    const list = root.querySelector("#messages");
    const welcome = root.querySelector("#welcome");
    const form = root.querySelector("#composer");
    const input = root.querySelector("#input");
    const sendButton = root.querySelector("#send");
    const counter = root.querySelector("#counter");
    const langToggle = root.querySelector("#lang-toggle");
    const newConversationButton = root.querySelector("#new-conversation");
    const photoButton = root.querySelector("#photo");
    const photoInput = root.querySelector("#photo-input");
    const maxChars = input.maxLength > 0 ? input.maxLength : 2000;

    const state = {
      lang: detectLang(),
      conversationId: storageGet(STORAGE_CONVERSATION),
      /** Last server message id seen through GET; the next poll asks for what came after it. */
      lastServerId: null,
      /** Server ids already on screen, plus our own message_ids (the server may reuse them). */
      knownIds: new Set(),
      /** Customer bubbles shown optimistically whose server copy has not been seen yet. */
      unconfirmed: [],
      /** Quick-reply rows, newest last; a customer message matching a payload shows the title. */
      rows: [],
      inFlight: 0,
      /** Bumped by "new conversation" so late responses for the old one are dropped. */
      generation: 0,
      queue: Promise.resolve(),
      pollTimer: 0,
      polling: false,
      typingEl: null,
      /** EventSource for the current conversation, its conversation id and whether it is connected. */
      events: null,
      eventsConversation: null,
      eventsOpen: false,
      /** Streamed messages held back while a send is in flight, so the POST's own copy is rendered first. */
      heldEvents: [],
      /** The agent's "typing" line (name, hidden when `until` passes or the agent's message arrives). */
      agentTypingEl: null,
      agentTypingTimer: 0,
      /** Newest customer message (server id) the agent has had open: those up to it show "Read". */
      readUpto: "",
    };

    function t(key) {
      const table = STRINGS[state.lang] || STRINGS.en;
      return table[key] !== undefined ? table[key] : STRINGS.en[key];
    }

    // ------------------------------------------------------------ network

    async function requestJson(method, url, body) {
      const controller = new AbortController();
      const timer = window.setTimeout(() => controller.abort(), REQUEST_TIMEOUT_MS);
      let response;
      try {
        response = await fetch(url, {
          method,
          headers: body === undefined ? { Accept: "application/json" }
            : { Accept: "application/json", "Content-Type": "application/json" },
          body: body === undefined ? undefined : JSON.stringify(body),
          signal: controller.signal,
          credentials: "same-origin",
        });
      } catch (err) {
        throw new ApiError(err && err.name === "AbortError" ? "timeout" : "network", 0, "");
      } finally {
        window.clearTimeout(timer);
      }
      let data = null;
      try {
        data = await response.json();
      } catch (err) {
        // Proxies answer some errors with HTML; the status code below still tells what happened.
        data = null;
      }
      if (response.status < 200 || response.status >= 300) {
        const detail = data && typeof data.detail === "string" ? data.detail : "";
        throw new ApiError("http", response.status, detail);
      }
      if (!data || typeof data !== "object") {
        throw new ApiError("format", response.status, "");
      }
      return data;
    }

    function historyUrl(conversationId, after) {
      return `${apiBase}/conversations/${encodeURIComponent(conversationId)}/messages?after=${encodeURIComponent(after || "")}`;
    }

    // ------------------------------------------------------------ rendering

    function isNearBottom() {
      return list.scrollHeight - list.scrollTop - list.clientHeight < 80;
    }

    function scrollToBottom() {
      list.scrollTop = list.scrollHeight;
    }

    /** Messages go above the typing indicator so it always stays last. */
    function appendToList(el, forceScroll) {
      const stick = forceScroll || isNearBottom();
      welcome.hidden = true;
      if (state.typingEl && state.typingEl.parentNode === list) {
        list.insertBefore(el, state.typingEl);
      } else if (state.agentTypingEl && state.agentTypingEl.parentNode === list) {
        list.insertBefore(el, state.agentTypingEl);
      } else {
        list.appendChild(el);
      }
      if (stick) {
        scrollToBottom();
      }
    }

    function formatTime(ts) {
      const date = new Date(ts * 1000);
      if (Number.isNaN(date.getTime())) {
        return "";
      }
      const sameDay = date.toDateString() === new Date().toDateString();
      const options = sameDay
        ? { hour: "numeric", minute: "2-digit" }
        : { month: "short", day: "numeric", hour: "numeric", minute: "2-digit" };
      return new Intl.DateTimeFormat(LOCALES[state.lang], options).format(date);
    }

    function renderTime(timeEl) {
      const ts = Number(timeEl.dataset.ts);
      timeEl.textContent = formatTime(ts);
      const date = new Date(ts * 1000);
      if (!Number.isNaN(date.getTime())) {
        timeEl.dateTime = date.toISOString();
        timeEl.title = date.toLocaleString(LOCALES[state.lang]);
      }
    }

    /** One bubble; `labelKey` names the sender for the eye (agent, bot) or only for screen readers. */
    function buildMessage(role, text, ts, name) {
      const wrapper = document.createElement("div");
      wrapper.className = `msg msg--${role}`;
      wrapper.dataset.role = role;

      const label = document.createElement("span");
      label.className = role === "customer" || role === "system" ? "msg__label visually-hidden" : "msg__label";
      if (role === "agent" && name) { // the agent's display name, as the desk wrote it with the message
        label.textContent = name;
        label.classList.add("msg__label--name");
      } else {
        label.dataset.i18n = role;
        label.textContent = t(role);
      }
      wrapper.appendChild(label);

      if (text) {
        const bubble = document.createElement("div");
        bubble.className = "msg__bubble";
        setMessageText(bubble, text);
        wrapper.appendChild(bubble);
      }

      const time = document.createElement("time");
      time.className = "msg__time";
      time.dataset.ts = String(ts);
      renderTime(time);
      wrapper.appendChild(time);
      return wrapper;
    }

    function buildQuickReplies(buttons) {
      const rowEl = document.createElement("div");
      rowEl.className = "quick-replies";
      rowEl.setAttribute("role", "group");
      rowEl.dataset.i18nAriaLabel = "quickReplies";
      rowEl.setAttribute("aria-label", t("quickReplies"));
      const row = { el: rowEl, buttons: [], used: false };
      for (const spec of buttons) {
        if (!spec || typeof spec !== "object") {
          continue;
        }
        const title = String(spec.title ?? spec.payload ?? "");
        const payload = String(spec.payload ?? spec.title ?? "");
        if (!title && !payload) {
          continue;
        }
        const button = document.createElement("button");
        button.type = "button";
        button.className = "quick-replies__button";
        button.textContent = title || payload;
        button.dataset.payload = payload;
        button.setAttribute("aria-pressed", "false");
        button.addEventListener("click", () => {
          if (row.used) {
            return;
          }
          disableRow(row, button);
          sendText(payload, title || payload);
        });
        rowEl.appendChild(button);
        row.buttons.push(button);
      }
      return row.buttons.length ? row : null;
    }

    function disableRow(row, chosen) {
      row.used = true;
      for (const button of row.buttons) {
        button.disabled = true;
        if (button === chosen) {
          button.setAttribute("aria-pressed", "true");
        }
      }
    }

    /** A customer message from the server that equals a payload of an open row was a button click. */
    function displayTextForCustomer(text) {
      for (let i = state.rows.length - 1; i >= 0; i -= 1) {
        const row = state.rows[i];
        if (row.used) {
          continue;
        }
        const chosen = row.buttons.find((b) => b.dataset.payload === text);
        if (chosen) {
          disableRow(row, chosen);
          return chosen.textContent;
        }
        break;
      }
      return text;
    }

    function renderServerMessage(message, forceScroll) {
      const role = ["customer", "bot", "agent", "system"].includes(message.role) ? message.role : "system";
      const rawText = typeof message.text === "string" ? message.text : "";
      const buttons = Array.isArray(message.buttons) ? message.buttons : [];
      const ts = typeof message.ts === "number" ? message.ts : Date.now() / 1000;
      const text = role === "customer" && !PHOTO_PATTERN.test(rawText) ? displayTextForCustomer(rawText) : rawText;
      if (!text && !buttons.length) {
        return;
      }
      const photo = role === "customer" ? PHOTO_PATTERN.exec(rawText) : null;
      const el = buildMessage(role, photo ? "" : text, ts, typeof message.name === "string" ? message.name : "");
      el.dataset.id = String(message.id);
      if (photo) {
        const bubble = document.createElement("div");
        bubble.className = "msg__bubble msg__bubble--photo";
        const img = document.createElement("img");
        img.className = "msg__photo";
        img.src = `${apiBase}/conversations/${encodeURIComponent(state.conversationId || "")}/media/${photo[1]}`;
        img.alt = t("photoAlt");
        img.dataset.i18nAlt = "photoAlt";
        bubble.appendChild(img);
        el.insertBefore(bubble, el.lastChild);
      }
      if (role === "agent") {
        hideAgentTyping();
      }
      if (role !== "customer" && buttons.length) {
        const row = buildQuickReplies(buttons);
        if (row) {
          el.insertBefore(row.el, el.lastChild);
          state.rows.push(row);
        }
      }
      appendToList(el, forceScroll);
    }

    /** Local notices (not from the server) are translated on language switch. */
    function renderNotice(key) {
      const el = buildMessage("system", t(key), Date.now() / 1000);
      el.classList.add("msg--local");
      el.querySelector(".msg__bubble").dataset.i18n = key;
      appendToList(el, true);
    }

    function setTyping(visible) {
      if (visible && !state.typingEl) {
        const el = document.createElement("div");
        el.className = "typing";
        el.dataset.typing = "true";
        el.setAttribute("role", "status");
        el.dataset.i18nAriaLabel = "typing";
        el.setAttribute("aria-label", t("typing"));
        for (let i = 0; i < 3; i += 1) {
          const dot = document.createElement("span");
          dot.className = "typing__dot";
          dot.setAttribute("aria-hidden", "true");
          el.appendChild(dot);
        }
        state.typingEl = el;
        const stick = isNearBottom();
        list.appendChild(el);
        if (stick) {
          scrollToBottom();
        }
      } else if (!visible && state.typingEl) {
        state.typingEl.remove();
        state.typingEl = null;
      }
    }

    function errorText(err) {
      let reason = "";
      if (err.kind === "network") {
        reason = ` ${t("networkError")}`;
      } else if (err.kind === "timeout") {
        reason = ` ${t("timeoutError")}`;
      } else if (err.detail) {
        reason = ` (${err.detail.slice(0, MAX_DETAIL_CHARS)})`;
      }
      return { key: "sendFailed", suffix: reason };
    }

    function showSendError(job, err) {
      clearSendError(job);
      job.bubble.classList.add("msg--failed");
      const { key, suffix } = errorText(err);
      const box = document.createElement("div");
      box.className = "error-bubble";
      box.setAttribute("role", "alert");
      box.dataset.messageId = job.messageId;

      const text = document.createElement("span");
      text.className = "error-bubble__text";
      const main = document.createElement("span");
      main.dataset.i18n = key;
      main.textContent = t(key);
      text.appendChild(main);
      if (suffix) {
        text.appendChild(document.createTextNode(suffix));
      }
      box.appendChild(text);

      const retry = document.createElement("button");
      retry.type = "button";
      retry.className = "error-bubble__retry";
      retry.dataset.i18n = "retry";
      retry.dataset.i18nAriaLabel = "retryLabel";
      retry.textContent = t("retry");
      retry.setAttribute("aria-label", t("retryLabel"));
      retry.addEventListener("click", () => {
        clearSendError(job);
        enqueue(job);
      });
      box.appendChild(retry);

      job.errorEl = box;
      job.bubble.after(box);
      if (isNearBottom()) {
        scrollToBottom();
      }
    }

    function clearSendError(job) {
      if (job.errorEl) {
        job.errorEl.remove();
        job.errorEl = null;
      }
      job.bubble.classList.remove("msg--failed");
    }

    // ------------------------------------------------------------ conversation state

    function setConversation(conversationId) {
      state.conversationId = conversationId;
      storageSet(STORAGE_CONVERSATION, conversationId);
      updatePhotoButton();
      state.readUpto = "";
    }

    /** Feeds server messages in, skipping what is already on screen. */
    function applyServerMessages(messages, advanceCursor) {
      if (!Array.isArray(messages)) {
        return;
      }
      for (const message of messages) {
        if (!message || message.id === undefined || message.id === null) {
          continue;
        }
        const id = String(message.id);
        if (advanceCursor) {
          state.lastServerId = id;
        }
        if (state.knownIds.has(id)) {
          confirmCustomer((entry) => entry.job.messageId === id, id);
          continue;
        }
        state.knownIds.add(id);
        if (message.role === "customer" && !PHOTO_PATTERN.test(String(message.text || ""))
            && confirmOwnCustomerMessage(message, id)) {
          continue;
        }
        renderServerMessage(message, false);
      }
      applyRead("");
    }

    // ------------------------------------------------------------ the agent's typing and read signals

    function streamOrder(id) {
      const [ms, seq] = String(id || "0-0").split("-");
      return [Number(ms) || 0, Number(seq) || 0];
    }

    function notAfter(a, b) {
      const [am, as] = streamOrder(a);
      const [bm, bs] = streamOrder(b);
      return am < bm || (am === bm && as <= bs);
    }

    /** Marks the customer's messages up to `upto` (a server id) as read by the agent; the mark only moves on. */
    function applyRead(upto) {
      if (upto && (!state.readUpto || !notAfter(upto, state.readUpto))) {
        state.readUpto = upto;
      }
      if (!state.readUpto) {
        return;
      }
      for (const bubble of list.querySelectorAll(".msg--customer[data-id]:not(.msg--read)")) {
        const id = bubble.dataset.id;
        if (/^\d+-\d+$/.test(id) && notAfter(id, state.readUpto)) {
          bubble.classList.add("msg--read");
          const mark = document.createElement("span");
          mark.className = "msg__read";
          mark.dataset.i18n = "read";
          mark.textContent = t("read");
          bubble.appendChild(mark);
        }
      }
    }

    function showAgentTyping(name, until) {
      const ms = Math.min(10000, Math.max(0, until * 1000 - Date.now()));
      if (!ms) {
        return;
      }
      if (!state.agentTypingEl) {
        const el = document.createElement("div");
        el.className = "agent-typing";
        el.setAttribute("role", "status");
        state.agentTypingEl = el;
      }
      state.agentTypingEl.textContent = t("agentTyping").split("{name}").join(name || t("agent"));
      if (state.agentTypingEl.parentNode !== list) {
        const stick = isNearBottom();
        list.appendChild(state.agentTypingEl);
        if (stick) {
          scrollToBottom();
        }
      }
      window.clearTimeout(state.agentTypingTimer);
      state.agentTypingTimer = window.setTimeout(hideAgentTyping, ms);
    }

    function hideAgentTyping() {
      window.clearTimeout(state.agentTypingTimer);
      if (state.agentTypingEl) {
        state.agentTypingEl.remove();
        state.agentTypingEl = null;
      }
    }

    /**
     * The server does not echo our message_id on stored customer messages and may normalise their text
     * (whitespace, control characters), so match on normalised text first, then the oldest message we have
     * handed to the server (sends are sequential, so the server stores them in that order).
     */
    function confirmOwnCustomerMessage(message, serverId) {
      const key = matchKey(message.text);
      return (
        confirmCustomer((entry) => matchKey(entry.job.text) === key, serverId) ||
        confirmCustomer((entry) => entry.job.status === "sending" || entry.job.status === "sent", serverId)
      );
    }

    /** Marks our optimistic bubble as stored by the server; returns whether one matched. */
    function confirmCustomer(predicate, serverId) {
      const index = state.unconfirmed.findIndex(predicate);
      if (index < 0) {
        return false;
      }
      const [entry] = state.unconfirmed.splice(index, 1);
      entry.job.bubble.dataset.id = serverId;
      clearSendError(entry.job);
      return true;
    }

    // ------------------------------------------------------------ sending

    function sendText(text, displayText) {
      const job = {
        messageId: newMessageId(),
        text,
        bubble: buildMessage("customer", displayText, Date.now() / 1000),
        generation: state.generation,
        errorEl: null,
        /** queued -> sending -> sent | failed; a retry goes back to sending. */
        status: "queued",
      };
      job.bubble.dataset.messageId = job.messageId;
      state.knownIds.add(job.messageId);
      state.unconfirmed.push({ job });
      appendToList(job.bubble, true);
      enqueue(job);
    }

    /** Sends run one at a time so the bot sees messages in the order they were typed. */
    function enqueue(job) {
      state.queue = state.queue.then(() => deliver(job));
    }

    async function deliver(job) {
      if (job.generation !== state.generation) {
        return;
      }
      job.status = "sending";
      job.bubble.classList.add("msg--pending");
      state.inFlight += 1;
      setTyping(true);
      try {
        const data = await requestJson("POST", `${apiBase}/messages`, {
          conversation_id: state.conversationId,
          message_id: job.messageId,
          text: job.text,
          metadata: { ui_lang: state.lang },
        });
        if (job.generation !== state.generation) {
          return;
        }
        if (typeof data.conversation_id === "string" && data.conversation_id !== state.conversationId) {
          // Unknown or expired id: the server started a fresh conversation; poll it from the start.
          setConversation(data.conversation_id);
          state.lastServerId = null;
        }
        job.status = "sent";
        job.bubble.classList.remove("msg--pending");
        clearSendError(job);
        // The cursor only moves on GET/stream results, so agent messages that raced this POST are still fetched.
        applyServerMessages(data.messages, false);
        openEvents();
        schedulePoll();
      } catch (err) {
        if (job.generation !== state.generation) {
          return;
        }
        job.status = "failed";
        job.bubble.classList.remove("msg--pending");
        if (!(err instanceof ApiError)) {
          // A bug on our side, not the network: still offer a retry rather than a silent dead bubble.
          console.error("webchat: unexpected send failure", err);
        }
        showSendError(job, err instanceof ApiError ? err : new ApiError("format", 0, ""));
      } finally {
        if (job.generation === state.generation) {
          state.inFlight -= 1;
          if (state.inFlight === 0) {
            setTyping(false);
            flushHeldEvents();
          }
        }
      }
    }

    // ------------------------------------------------------------ photos

    function updatePhotoButton() {
      photoButton.hidden = !state.conversationId; // a photo belongs to a conversation: after the first message
    }

    /** One photo, checked here for the customer's sake (the server checks again, from the bytes themselves). */
    function sendPhoto(file) {
      if (!file || !state.conversationId) {
        return;
      }
      if (!PHOTO_TYPES.includes(file.type)) {
        renderNotice("photoType");
        return;
      }
      if (file.size > PHOTO_MAX_BYTES) {
        renderNotice("photoTooLarge");
        return;
      }
      const generation = state.generation;
      const conversationId = state.conversationId;
      const messageId = newMessageId();
      state.queue = state.queue.then(async () => {
        if (generation !== state.generation) {
          return;
        }
        const url = `${apiBase}/conversations/${encodeURIComponent(conversationId)}/photos`
          + `?message_id=${encodeURIComponent(messageId)}&ui_lang=${state.lang}`;
        try {
          const response = await fetch(url, { method: "POST", body: file, credentials: "same-origin",
            headers: { Accept: "application/json", "Content-Type": "application/octet-stream" } });
          const data = await response.json().catch(() => null);
          if (generation !== state.generation) {
            return;
          }
          if (!response.ok) {
            const box = buildMessage("system", (data && typeof data.detail === "string" && data.detail)
              || t("sendFailed"), Date.now() / 1000);
            box.classList.add("msg--local");
            appendToList(box, true);
            return;
          }
          applyServerMessages(data.messages, false);
        } catch (err) {
          renderNotice("networkError");
        }
      });
    }

    // ------------------------------------------------------------ history and polling

    function forgetConversation() {
      closeEvents();
      setConversation(null);
      state.lastServerId = null;
    }

    // ------------------------------------------------------------ live events (Server-Sent Events)

    function closeEvents() {
      if (state.events) {
        state.events.close();
      }
      state.events = null;
      state.eventsConversation = null;
      state.eventsOpen = false;
      state.heldEvents = [];
    }

    function flushHeldEvents() {
      const held = state.heldEvents;
      state.heldEvents = [];
      if (held.length) {
        applyServerMessages(held, false);
      }
    }

    /**
     * One stream per conversation, from the last polled id; the browser resumes it with Last-Event-ID.
     * Streamed messages do not move the poll cursor: the fallback poll re-reads them (shown once, by id).
     */
    function openEvents() {
      if (typeof window.EventSource !== "function" || !state.conversationId) {
        return;
      }
      if (state.events && state.eventsConversation === state.conversationId) {
        return;
      }
      closeEvents();
      const conversationId = state.conversationId;
      const url = `${apiBase}/conversations/${encodeURIComponent(conversationId)}/events?after=${encodeURIComponent(state.lastServerId || "")}`;
      const source = new EventSource(url);
      state.events = source;
      state.eventsConversation = conversationId;
      source.onopen = () => {
        state.eventsOpen = true;
      };
      source.onmessage = (event) => {
        if (state.events !== source || conversationId !== state.conversationId) {
          return;
        }
        let message;
        try {
          message = JSON.parse(event.data);
        } catch (err) {
          console.warn("webchat: unreadable event", err);
          return;
        }
        if (state.inFlight > 0) {
          state.heldEvents.push(message);
        } else {
          applyServerMessages([message], false);
        }
      };
      source.addEventListener("typing", (event) => {
        if (state.events === source) {
          const data = JSON.parse(event.data);
          showAgentTyping(String(data.name || ""), Number(data.until) || 0);
        }
      });
      source.addEventListener("read", (event) => {
        if (state.events === source) {
          applyRead(String(JSON.parse(event.data).upto || ""));
        }
      });
      source.onerror = () => {
        state.eventsOpen = false;
        if (source.readyState === EventSource.CLOSED && state.events === source) {
          // Refused (e.g. 404): the poll carries on and reports; a later send reopens the stream.
          state.events = null;
          state.eventsConversation = null;
        }
      };
    }

    async function poll() {
      if (state.polling || !state.conversationId) {
        return;
      }
      state.polling = true;
      const generation = state.generation;
      const conversationId = state.conversationId;
      try {
        const data = await requestJson("GET", historyUrl(conversationId, state.lastServerId));
        if (generation === state.generation && conversationId === state.conversationId) {
          applyServerMessages(data.messages, true);
          applyRead(typeof data.read_upto === "string" ? data.read_upto : "");
        }
        return true;
      } catch (err) {
        if (generation !== state.generation || conversationId !== state.conversationId) {
          return false;
        }
        if (err instanceof ApiError && err.status === 404) {
          forgetConversation();
          renderNotice("conversationExpired");
        } else {
          console.warn("webchat: poll failed, will retry", err);
        }
        return false;
      } finally {
        state.polling = false;
      }
    }

    function schedulePoll() {
      window.clearTimeout(state.pollTimer);
      state.pollTimer = window.setTimeout(async () => {
        if (!document.hidden) {
          await poll();
        }
        schedulePoll();
      }, state.eventsOpen ? POLL_INTERVAL_WITH_EVENTS_MS : POLL_INTERVAL_MS);
    }

    async function loadHistory() {
      if (!state.conversationId) {
        return;
      }
      const ok = await poll();
      if (!ok && state.conversationId) {
        renderNotice("historyError");
      }
      if (ok) {
        openEvents();
      }
    }

    function startNewConversation() {
      state.generation += 1;
      state.queue = Promise.resolve();
      state.inFlight = 0;
      setTyping(false);
      forgetConversation();
      state.knownIds.clear();
      state.unconfirmed = [];
      state.rows = [];
      for (const child of Array.from(list.children)) {
        if (child !== welcome) {
          child.remove();
        }
      }
      welcome.hidden = false;
      input.focus();
    }

    // ------------------------------------------------------------ language

    function applyLanguage() {
      document.documentElement.lang = state.lang === "zh" ? "zh-CN" : "en";
      document.title = t("pageTitle");
      for (const el of root.querySelectorAll("[data-i18n]")) {
        el.textContent = t(el.dataset.i18n);
      }
      for (const el of root.querySelectorAll("[data-i18n-placeholder]")) {
        el.placeholder = t(el.dataset.i18nPlaceholder);
      }
      for (const el of root.querySelectorAll("[data-i18n-aria-label]")) {
        el.setAttribute("aria-label", t(el.dataset.i18nAriaLabel));
      }
      for (const el of root.querySelectorAll("[data-i18n-alt]")) {
        el.alt = t(el.dataset.i18nAlt);
      }
      for (const el of root.querySelectorAll(".msg__time")) {
        renderTime(el);
      }
      counter.title = t("counterLabel");
    }

    function toggleLanguage() {
      state.lang = state.lang === "zh" ? "en" : "zh";
      storageSet(STORAGE_LANG, state.lang);
      applyLanguage();
    }

    // ------------------------------------------------------------ composer

    function updateComposer() {
      if (input.value.length > maxChars) {
        input.value = input.value.slice(0, maxChars);
      }
      const length = input.value.length;
      counter.textContent = `${length}/${maxChars}`;
      counter.classList.toggle("chat__counter--near", length >= maxChars * NEAR_LIMIT_RATIO);
      sendButton.disabled = input.value.trim().length === 0;
      input.style.height = "auto";
      input.style.height = `${input.scrollHeight + 2}px`;
    }

    function submitComposer() {
      const text = input.value.trim();
      if (!text) {
        return;
      }
      input.value = "";
      updateComposer();
      sendText(text, text);
      input.focus();
    }

    form.addEventListener("submit", (event) => {
      event.preventDefault();
      submitComposer();
    });

    input.addEventListener("keydown", (event) => {
      // isComposing / 229: Enter that confirms a Chinese IME candidate must not send the message.
      if (event.key === "Enter" && !event.shiftKey && !event.isComposing && event.keyCode !== 229) {
        event.preventDefault();
        submitComposer();
      }
    });

    input.addEventListener("input", updateComposer);
    langToggle.addEventListener("click", toggleLanguage);
    newConversationButton.addEventListener("click", startNewConversation);
    photoButton.addEventListener("click", () => photoInput.click());
    photoInput.addEventListener("change", () => {
      const file = photoInput.files && photoInput.files[0];
      photoInput.value = "";
      sendPhoto(file);
    });
    document.addEventListener("visibilitychange", () => {
      if (!document.hidden && state.conversationId) {
        poll();
      }
    });

    applyLanguage();
    updateComposer();
    updatePhotoButton();
    loadHistory().then(schedulePoll);
  }

  document.addEventListener("DOMContentLoaded", () => {
    const root = document.getElementById("chat");
    if (root) {
      createChat(root);
    }
  });
})();
