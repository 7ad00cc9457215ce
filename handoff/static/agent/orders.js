// Orders in the console's context panel (issue 17, item 3): the conversation's orders live from the order service
// (status, items, tracking, refunds) and the changes the policy allows now - the delay coupon or shipping-fee
// refund, a return, an exchange (size/colour, or the same item when faulty; out of stock: the policy's return), a
// reship or a full refund of a lost parcel (the customer's choice), an address change before shipping. The server decides everything
// (handoff/order_desk.py: who may act, once per change, audit); this page only shows and asks.
// Follows the open conversation through the "desk:conversation" event of agent.js.
(function () {
  "use strict";

  const $ = (id) => document.getElementById(id);
  const STRINGS = {
    en: {
      title: "Orders (live)", loading: "Loading orders…", none: "No order verified in this conversation.",
      unavailable: "Order service unavailable: {why}", not_verified: "{number}: not verified in this conversation",
      status: "Status", promised: "Promised by", late: "Days late", items: "Items", tracking: "Tracking",
      latest: "Latest", refunds: "Refunds", coupon: "Issue {amount} yuan coupon", shipping_refund:
        "Refund shipping fee ({amount} yuan)", reship: "Reship lost parcel", start_return: "Start return",
      change_address: "Change address", address: "New address", name: "Recipient", phone: "Phone",
      province: "Province", city: "City", district: "District", line: "Street and number",
      no_reason: "7-day no-reason", quality: "quality problem", photos: "photos needed", may_not_act:
        "Only the conversation's agent (after claiming) or a supervisor can change orders.",
      working: "Working…", done: "Done: {what}. The customer was told in the chat.", already: "Already done: {what}.",
      refused: "Not allowed: {why}.", duplicate: "Already done by the first click: {what}.",
      coupon_done: "coupon {code} ({amount} yuan)", refund_done: "shipping fee refund ({amount} yuan)",
      return_done: "return {rma}", reship_done: "reshipped, tracking {tracking}", address_done: "address changed",
      none_allowed: "Nothing to compensate or change for this order now.",
      why_not_delayed_enough: "the delay is too short for compensation",
      why_lost_parcel: "a lost parcel is reshipped or refunded, not compensated", why_order_closed: "the order is closed",
      why_already_shipped: "the order has already shipped", why_not_lost: "the parcel is not lost",
      why_window_expired: "the return window has ended", why_excluded_category: "this category cannot be returned without reason",
      why_not_delivered: "the order has not been delivered", why_quantity_exceeded: "nothing left to return",
      why_shipping_refund_not_offered: "the shipping-fee refund is not offered at this delay",
      why_no_shipping_fee_to_refund: "no shipping fee was paid",
      lost_refund: "Refund lost parcel in full ({amount} yuan)", start_exchange: "Start exchange",
      variant: "Replacement size/colour (empty: the same item)", out_of_stock:
        "Replacement out of stock (the customer agreed to a return with refund instead)",
      exchange_done: "exchange of {item} → {variant}", same_item: "same item",
      switched_done: "replacement out of stock, return {rma} opened instead",
      lost_refund_done: "full refund {amount} yuan to {method}",
      why_out_of_stock: "the replacement is out of stock and the policy offers no return instead",
      why_already_reshipped: "the parcel was already reshipped", why_already_refunded: "the lost parcel was already refunded",
      why_option_not_offered: "the store does not offer this for lost parcels",
      why_nothing_to_refund: "everything paid was already refunded",
    },
    zh: {
      title: "订单（实时）", loading: "正在加载订单…", none: "本对话中没有已验证的订单。",
      unavailable: "订单服务不可用：{why}", not_verified: "{number}：本对话中未验证",
      status: "状态", promised: "承诺送达", late: "延误天数", items: "商品", tracking: "物流", latest: "最新",
      refunds: "退款", coupon: "发放 {amount} 元优惠券", shipping_refund: "退运费（{amount} 元）", reship: "补发丢失包裹",
      start_return: "发起退货", change_address: "修改地址", address: "新地址", name: "收件人", phone: "手机号",
      province: "省", city: "市", district: "区", line: "街道门牌", no_reason: "七天无理由", quality: "质量问题",
      photos: "需提供照片",
      may_not_act: "只有接入本对话的客服或主管可以修改订单。", working: "处理中…",
      done: "已完成：{what}。已在对话中告知客户。", already: "此前已完成：{what}。", refused: "不允许：{why}。",
      duplicate: "第一次点击已完成：{what}。", coupon_done: "优惠券 {code}（{amount} 元）", refund_done: "退运费（{amount} 元）",
      return_done: "退货 {rma}", reship_done: "已补发，运单号 {tracking}", address_done: "地址已修改",
      none_allowed: "该订单目前没有可补偿或可修改的项目。",
      why_not_delayed_enough: "延误天数不足以补偿", why_lost_parcel: "丢件应补发或退款，不发补偿券",
      why_order_closed: "订单已关闭", why_already_shipped: "订单已发货", why_not_lost: "包裹并未丢失",
      why_window_expired: "已超过退货期限", why_excluded_category: "该类商品不支持无理由退货",
      why_not_delivered: "订单尚未签收", why_quantity_exceeded: "没有可退的数量",
      why_shipping_refund_not_offered: "此延误档位不提供退运费", why_no_shipping_fee_to_refund: "该订单未付运费",
      lost_refund: "丢件全额退款（{amount} 元）", start_exchange: "发起换货", variant: "更换的尺码/颜色（留空：换同款新品）",
      out_of_stock: "想换的商品缺货（客户同意改为退货退款）", exchange_done: "换货 {item} → {variant}", same_item: "同款新品",
      switched_done: "换货商品缺货，已改为退货 {rma}", lost_refund_done: "全额退款 {amount} 元，原路退回 {method}",
      why_out_of_stock: "想换的商品缺货，且政策不支持改为退货", why_already_reshipped: "包裹已补发",
      why_already_refunded: "丢件已全额退款", why_option_not_offered: "本店不对丢件提供此处理方式",
      why_nothing_to_refund: "已付款项均已退回",
    },
  };
  let current = { handoffId: null, status: "", lang: "en", role: "", agentId: "", ownerId: "" };
  let generation = 0;
  let lastData = null;

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

  function yuan(cents) {
    const value = Number(cents || 0) / 100;
    return Number.isInteger(value) ? String(value) : value.toFixed(2);
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
      const detail = data && typeof data.detail === "string" ? data.detail : `HTTP ${response.status}`;
      const error = new Error(detail);
      error.status = response.status;
      throw error;
    }
    return data;
  }

  function fact(list, label, value) {
    list.appendChild(el("dt", "", label));
    list.appendChild(el("dd", "", value === null || value === undefined || value === "" ? "—" : value));
  }

  function what(kind, result) {
    if (kind === "coupon" && result.coupon) {
      return t("coupon_done", { code: result.coupon.code, amount: yuan(result.coupon.amount_cents) });
    }
    if (kind === "shipping_refund" && result.shipping_refund) {
      return t("refund_done", { amount: yuan(result.shipping_refund.amount_cents) });
    }
    if (kind === "return" && result.return_request) {
      return t("return_done", { rma: result.return_request.rma });
    }
    if (kind === "reship") {
      return t("reship_done", { tracking: result.tracking_number || "" });
    }
    if (kind === "exchange") {
      if (result.switched_to_return && result.return_request) {
        return t("switched_done", { rma: result.return_request.rma });
      }
      return t("exchange_done", { item: result.item_name || "", variant: result.variant || t("same_item") });
    }
    if (kind === "lost_refund" && result.refund) {
      const shown = result.display || {};
      return t("lost_refund_done", { amount: yuan(result.refund.amount_cents),
        method: (current.lang === "zh" ? shown.method_zh : shown.method_en) || result.refund.method });
    }
    return kind === "address" ? t("address_done") : kind;
  }

  function outcomeText(answer) {
    const result = answer.result || {};
    if (answer.duplicate) {
      return t("duplicate", { what: what(answer.kind, result) });
    }
    if (answer.outcome === "done") {
      return t("done", { what: what(answer.kind, result) });
    }
    if (answer.outcome === "already_done") {
      return t("already", { what: what(answer.kind, result) });
    }
    return t("refused", { why: t(`why_${answer.refusal}`) });
  }

  async function act(card, number, body, button) {
    const message = card.querySelector(".order__result");
    button.disabled = true; // a second click while the first runs is not even sent (the server would answer 409)
    message.textContent = t("working");
    message.className = "order__result muted small";
    try {
      const answer = await call("POST", `/api/agent/handoffs/${encodeURIComponent(current.handoffId)}/orders/`
        + `${encodeURIComponent(number)}/actions`, body);
      if (answer.outcome === "done" || answer.outcome === "already_done") {
        await load(outcomeText(answer), number); // the panel shows the order as it is now, with the outcome
        return;
      }
      message.textContent = outcomeText(answer);
      message.dataset.outcome = answer.outcome;
    } catch (err) {
      message.textContent = err.message;
      message.className = "order__result error small";
      message.dataset.outcome = "error";
    }
    button.disabled = false;
  }

  function actionButton(card, number, label, body, name) {
    const button = el("button", "order__action", label);
    button.type = "button";
    button.dataset.action = name;
    button.disabled = !mayAct();
    button.addEventListener("click", () => act(card, number, body, button));
    return button;
  }

  function mayAct() {
    return lastData ? Boolean(lastData.may_act) : false;
  }

  function returnForm(card, number, allowed) {
    const eligible = (allowed.returns || []).filter((r) => r.eligible);
    if (!eligible.length) {
      return null;
    }
    const wrap = el("div", "order__return");
    const select = el("select", "order__return-item");
    select.setAttribute("aria-label", t("start_return"));
    for (const r of eligible) {
      const option = el("option", "", `${r.name} (${r.sku}) · ${t(r.reason)}${r.deadline ? ` · ≤ ${r.deadline}` : ""}`
        + `${r.photos_required ? ` · ${t("photos")}` : ""}`);
      option.value = `${r.sku}|${r.reason}`;
      select.appendChild(option);
    }
    const button = el("button", "order__action", t("start_return"));
    button.type = "button";
    button.dataset.action = "return";
    button.disabled = !mayAct();
    button.addEventListener("click", () => {
      const [sku, reason] = select.value.split("|");
      act(card, number, { kind: "return", sku, reason }, button);
    });
    wrap.append(select, button);
    return wrap;
  }

  function exchangeForm(card, number, allowed) {
    // Exchanges follow the return windows of their reason: the same eligible items and reasons as a return.
    const eligible = (allowed.returns || []).filter((r) => r.eligible);
    if (!eligible.length) {
      return null;
    }
    const details = el("details", "order__exchange");
    details.appendChild(el("summary", "", t("start_exchange")));
    const form = el("form", "account-form");
    const select = el("select", "order__exchange-item");
    select.setAttribute("aria-label", t("start_exchange"));
    for (const r of eligible) {
      const option = el("option", "", `${r.name} (${r.sku}) · ${t(r.reason)}${r.deadline ? ` · ≤ ${r.deadline}` : ""}`
        + `${r.photos_required ? ` · ${t("photos")}` : ""}`);
      option.value = `${r.sku}|${r.reason}`;
      select.appendChild(option);
    }
    const variantLabel = el("label", "", t("variant"));
    const variant = el("input");
    variant.name = "variant";
    variant.maxLength = 64;
    variantLabel.appendChild(variant);
    const stockLabel = el("label", "order__check");
    const outOfStock = el("input");
    outOfStock.type = "checkbox";
    outOfStock.name = "out_of_stock";
    stockLabel.append(outOfStock, document.createTextNode(` ${t("out_of_stock")}`));
    const button = el("button", "order__action", t("start_exchange"));
    button.type = "submit";
    button.dataset.action = "exchange";
    button.disabled = !mayAct();
    form.append(select, variantLabel, stockLabel, button);
    form.addEventListener("submit", (event) => {
      event.preventDefault();
      const [sku, reason] = select.value.split("|");
      act(card, number, { kind: "exchange", sku, reason, variant: variant.value.trim() || null,
        in_stock: !outOfStock.checked }, button);
    });
    details.appendChild(form);
    return details;
  }

  function addressForm(card, number) {
    const details = el("details", "order__address");
    details.appendChild(el("summary", "", t("change_address")));
    const form = el("form", "account-form");
    const fields = [["recipient_name", "name"], ["phone", "phone"], ["province", "province"], ["city", "city"],
      ["district", "district"], ["address_line", "line"]];
    const inputs = {};
    for (const [name, label] of fields) {
      const wrap = el("label", "", t(label));
      const input = el("input");
      input.name = name;
      input.required = true;
      input.maxLength = name === "address_line" ? 200 : 64;
      inputs[name] = input;
      wrap.appendChild(input);
      form.appendChild(wrap);
    }
    const button = el("button", "order__action", t("change_address"));
    button.type = "submit";
    button.dataset.action = "address";
    button.disabled = !mayAct();
    form.appendChild(button);
    form.addEventListener("submit", (event) => {
      event.preventDefault();
      const address = Object.fromEntries(Object.entries(inputs).map(([k, input]) => [k, input.value.trim()]));
      act(card, number, { kind: "address", address }, button);
    });
    details.appendChild(form);
    return details;
  }

  function orderCard(o) {
    const card = el("article", "order");
    card.dataset.order = o.number;
    card.appendChild(el("h4", "order__number", o.number));
    if (!o.verified) {
      card.appendChild(el("p", "muted small", t("not_verified", { number: o.number })));
      return card;
    }
    if (!o.order) {
      card.appendChild(el("p", "error small", o.error || ""));
      return card;
    }
    const order = o.order;
    const facts = el("dl", "facts");
    fact(facts, t("status"), order.status);
    fact(facts, t("promised"), order.promised_delivery_date);
    fact(facts, t("late"), order.days_late ? String(order.days_late) : "0");
    fact(facts, t("items"), (order.items || []).map((i) => `${i.name} ×${i.quantity} (${i.sku})`).join(", "));
    const shipments = (o.tracking && o.tracking.shipments) || [];
    fact(facts, t("tracking"), shipments.map((s) => `${s.carrier.toUpperCase()} ${s.tracking_number}`).join(" → "));
    const latest = o.tracking && o.tracking.events && o.tracking.events[0];
    if (latest) {
      fact(facts, t("latest"), `${(latest.occurred_at || "").slice(0, 16).replace("T", " ")} ${current.lang === "zh" ? latest.description_zh : latest.description_en}`);
    }
    const refunds = (o.refunds && o.refunds.refunds) || [];
    if (refunds.length) {
      fact(facts, t("refunds"), refunds.map((r) => `${r.kind} ${yuan(r.amount_cents)} (${r.status})`).join(", "));
    }
    card.appendChild(facts);
    const allowed = o.allowed || {};
    const actions = el("div", "order__actions");
    if (allowed.compensation) {
      actions.appendChild(actionButton(card, o.number, t("coupon", { amount: yuan(allowed.compensation.coupon_cents) }),
        { kind: "coupon" }, "coupon"));
      if (allowed.compensation.shipping_refund_cents) {
        actions.appendChild(actionButton(card, o.number, t("shipping_refund", {
          amount: yuan(allowed.compensation.shipping_refund_cents) }), { kind: "shipping_refund" }, "shipping_refund"));
      }
    }
    if (allowed.reship) {
      actions.appendChild(actionButton(card, o.number, t("reship"), { kind: "reship" }, "reship"));
    }
    if (allowed.lost_refund) {
      actions.appendChild(actionButton(card, o.number, t("lost_refund", {
        amount: yuan(allowed.lost_refund.amount_cents) }), { kind: "lost_refund" }, "lost_refund"));
    }
    const returns = returnForm(card, o.number, allowed);
    if (returns) {
      actions.appendChild(returns);
    }
    const exchanges = exchangeForm(card, o.number, allowed);
    if (exchanges) {
      actions.appendChild(exchanges);
    }
    if (allowed.address_change) {
      actions.appendChild(addressForm(card, o.number));
    }
    if (!actions.childNodes.length) {
      actions.appendChild(el("p", "muted small", t("none_allowed")));
    }
    card.appendChild(actions);
    const result = el("p", "order__result muted small");
    result.setAttribute("role", "status");
    card.appendChild(result);
    return card;
  }

  function render(note, noteFor) {
    $("orders-title").textContent = t("title");
    const box = $("orders");
    const status = $("orders-status");
    if (!lastData) {
      box.replaceChildren();
      return;
    }
    status.textContent = lastData.error ? t("unavailable", { why: lastData.error })
      : (lastData.orders.some((o) => o.verified) ? (mayAct() ? "" : t("may_not_act")) : t("none"));
    box.replaceChildren(...lastData.orders.map(orderCard));
    if (note && noteFor) {
      const card = box.querySelector(`[data-order="${CSS.escape(noteFor)}"] .order__result`);
      if (card) {
        card.textContent = note;
      }
    }
  }

  async function load(note, noteFor) {
    const mine = ++generation;
    const handoffId = current.handoffId;
    if (!handoffId) {
      lastData = null;
      render();
      return;
    }
    if (!note) {
      $("orders-status").textContent = t("loading");
    }
    try {
      const data = await call("GET", `/api/agent/handoffs/${encodeURIComponent(handoffId)}/orders`);
      if (mine !== generation) {
        return;
      }
      lastData = data;
    } catch (err) {
      if (mine !== generation) {
        return;
      }
      lastData = { orders: [], error: err.message, may_act: false };
    }
    render(note, noteFor);
  }

  document.addEventListener("desk:conversation", (event) => {
    const next = event.detail || {};
    const changed = next.handoffId !== current.handoffId || next.status !== current.status
      || next.ownerId !== current.ownerId;
    const relabel = next.lang !== current.lang;
    current = next;
    if (changed) {
      load();
    } else if (relabel) {
      render();
    }
  });
}());
