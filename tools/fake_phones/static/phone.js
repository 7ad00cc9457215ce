// The fake phone page: polls the chat, sends what the customer types or taps. Everything the bot sends is shown as
// text (textContent only, never HTML).
"use strict";
(function () {
  const platform = document.body.dataset.platform;
  const NAMES = { telegram: "Telegram", whatsapp: "WhatsApp", wechat: "WeChat 微信" };
  const api = "/phone/api/" + platform;
  const chat = document.querySelector(".chat");
  const form = document.querySelector(".composer");
  const input = form.elements.text;
  const language = document.querySelector("select[name=language]");
  const status = document.querySelector(".status");
  const sheet = document.querySelector(".sheet");
  let after = 0;

  function randomDigits(n) {
    const a = new Uint32Array(n);
    crypto.getRandomValues(a);
    return Array.from(a, (x) => String(x % 10)).join("");
  }

  function newUser() {
    if (platform === "telegram") return String(1 + (crypto.getRandomValues(new Uint32Array(1))[0] % 8)) + randomDigits(9);
    if (platform === "whatsapp") return "1555" + randomDigits(7);
    const chars = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789_-";
    const a = new Uint32Array(27);
    crypto.getRandomValues(a);
    return "o" + Array.from(a, (x) => chars[x % chars.length]).join("");
  }

  const key = "fake-phone-user-" + platform;
  let user = localStorage.getItem(key) || newUser();
  localStorage.setItem(key, user);

  function showWho() {
    document.querySelector(".title").textContent = NAMES[platform] + " · Store bot";
    document.querySelector(".who").textContent = (platform === "wechat" ? "OpenID " : platform === "whatsapp" ? "+" : "chat ") + user;
  }

  async function post(path, body) {
    status.textContent = "";
    const r = await fetch(api + path, {
      method: "POST", headers: { "Content-Type": "application/json" },
      body: JSON.stringify(Object.assign({ user: user, language: language.value }, body)),
    });
    if (!r.ok) {
      let detail = r.status + "";
      try { const j = await r.json(); detail = typeof j.detail === "string" ? j.detail : detail; } catch (e) { /* not JSON */ }
      status.textContent = "not delivered: " + detail;
    }
    poll();
  }

  function tap(data) { post("/tap", { data: data }); }

  function openList(label, buttons) {
    sheet.querySelector(".sheet-title").textContent = label;
    const rows = sheet.querySelector(".sheet-rows");
    rows.replaceChildren();
    for (const b of buttons) {
      const li = document.createElement("li");
      const button = document.createElement("button");
      button.type = "button";
      button.textContent = b.title;
      if (b.description) { const s = document.createElement("small"); s.textContent = b.description; button.append(s); }
      button.addEventListener("click", () => { sheet.hidden = true; tap(b.data); });
      li.append(button);
      rows.append(li);
    }
    sheet.hidden = false;
  }

  function render(m) {
    const li = document.createElement("li");
    li.className = "msg " + m.side;
    li.dataset.testid = "msg-" + m.side;
    if (m.style === "text_menu") {
      // WeChat has no buttons: the numbered lines of the text are the menu; tapping one sends its number.
      const numbers = new Map(m.buttons.map((b) => [b.data + ". " + b.title, b.data]));
      for (const line of m.text.split("\n")) {
        const number = numbers.get(line.trim());
        if (number) {
          const b = document.createElement("button");
          b.type = "button"; b.className = "menu-line"; b.textContent = line;
          b.addEventListener("click", () => tap(number));
          li.append(b);
        } else {
          li.append(document.createTextNode(line + "\n"));
        }
      }
    } else {
      li.append(document.createTextNode(m.text));
    }
    if (m.buttons.length && m.style !== "text_menu") {
      const box = document.createElement("div");
      box.className = "buttons " + m.style;
      if (m.style === "list") {
        const b = document.createElement("button");
        b.type = "button"; b.textContent = "☰ " + (m.label || "Options");
        b.addEventListener("click", () => openList(m.label, m.buttons));
        box.append(b);
      } else {
        for (const button of m.buttons) {
          const b = document.createElement("button");
          b.type = "button"; b.textContent = button.title;
          b.addEventListener("click", () => tap(button.data));
          box.append(b);
        }
      }
      li.append(box);
    }
    chat.append(li);
    chat.scrollTop = chat.scrollHeight;
  }

  // Telegram shows a START button in a chat that has no messages yet; it sends "/start".
  function showStart() {
    if (platform !== "telegram" || chat.children.length) return;
    const li = document.createElement("li");
    li.className = "start";
    const b = document.createElement("button");
    b.type = "button"; b.textContent = "START";
    b.addEventListener("click", () => { li.remove(); post("/send", { text: "/start" }); });
    li.append(b);
    chat.append(li);
  }

  let polling = false;
  async function poll() {
    if (polling) return;
    polling = true;
    try {
      const r = await fetch(api + "/messages?user=" + encodeURIComponent(user) + "&after=" + after);
      if (r.ok) {
        const messages = (await r.json()).messages;
        if (messages.length) chat.querySelector(".start")?.remove();
        for (const m of messages) { render(m); after = Math.max(after, m.id); }
        if (!after) showStart();
      }
    } catch (e) { /* server restarting: next poll */ }
    finally { polling = false; }
  }

  form.addEventListener("submit", (event) => {
    event.preventDefault();
    const text = input.value;
    if (!text.trim()) return;
    input.value = "";
    post("/send", { text: text });
  });
  document.querySelector(".sheet-close").addEventListener("click", () => { sheet.hidden = true; });
  document.querySelector(".new-chat").addEventListener("click", () => {
    user = newUser(); localStorage.setItem(key, user); after = 0; chat.replaceChildren(); showWho();
  });
  if (platform !== "telegram") document.querySelector(".lang").hidden = true;
  showWho();
  poll();
  setInterval(poll, 1000);
})();
