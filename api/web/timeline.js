// The timeline strip under the player and the moment's chat and card state: marks of
// what happened in the minutes around the moment (the search's speech hits, banned terms
// said, in the chat or on screen, chat, product cards, on-screen text, gaps, price
// mismatches), each a button that plays from its moment.
// app.js calls window.LW_TIMELINE(app) once with what it shares (see start() there).
"use strict";

window.LW_TIMELINE = (app) => {
  const API = "/api/v1";
  const $ = (id) => document.getElementById(id);
  const { t, element, formatOffset } = app;
  const AROUND_SECONDS = 300; // the strip: five minutes either side of the moment
  const CONTEXT_SECONDS = 60; // the chat shown beside the transcript: a minute either side
  const KINDS = ["speech", "banned", "chat", "card", "screen", "gap", "price_mismatch"];
  let token = 0;

  function clear() {
    $("timeline-strip").replaceChildren();
    $("context-chat").replaceChildren();
    $("context-cards").replaceChildren();
    $("timeline-pane").hidden = true;
  }

  /** The marks around `moment` ({stream, offset, at}); hits: the search's hits. */
  async function show(moment, hits) {
    const mine = ++token;
    if (!moment || !moment.at) {
      clear();
      return;
    }
    const at = Date.parse(moment.at);
    const from = Math.max(0, moment.offset - AROUND_SECONDS);
    const to = moment.offset + AROUND_SECONDS;
    const start = new Date(at - (moment.offset - from) * 1000).toISOString();
    const end = new Date(at + AROUND_SECONDS * 1000).toISOString();
    const path = `${API}/streams/${encodeURIComponent(moment.stream)}/timeline`;
    let found;
    try {
      found = await app.apiJson(`${path}?start=${encodeURIComponent(start)}&end=${encodeURIComponent(end)}`);
    } catch (error) {
      if (mine === token) clear(); // the strip is an aid: the moment itself still plays
      return;
    }
    if (mine !== token) return;
    // Zoomed to what was recorded: a short recording is not a sliver of a 10-minute strip.
    const recorded = found.recorded_until_offset;
    const until = recorded ? Math.max(Math.min(to, recorded), from + 10) : to;
    const said = (hits || [])
      .filter((h) => h.stream === moment.stream)
      .map((h) => ({ kind: "speech", offset: h.match_offset ?? h.offset, text: h.text }));
    const marks = [...said, ...found.marks].filter((m) => m.offset >= from && m.offset <= until);
    renderStrip(moment, marks, from, until);
    renderContext(moment, found);
    $("timeline-pane").hidden = false;
  }

  function renderStrip(moment, marks, from, to) {
    const strip = $("timeline-strip");
    const span = Math.max(1, to - from);
    const now = element("span", "timeline-now");
    now.style.left = `${((moment.offset - from) / span) * 100}%`;
    const items = marks.map((mark) => {
      const button = element("button", `timeline-mark mark-${mark.kind}`);
      button.type = "button";
      button.dataset.kind = mark.kind;
      button.dataset.offset = String(mark.offset);
      button.style.left = `${((mark.offset - from) / span) * 100}%`;
      const width = ((Math.max(mark.end_offset ?? mark.offset, mark.offset) - mark.offset) / span) * 100;
      if (width > 0.5) button.style.width = `${Math.min(width, 100)}%`;
      const label = t(`timeline.${mark.kind}`);
      button.title = `${label} +${formatOffset(mark.offset)} ${mark.text || ""}`.trim();
      button.setAttribute("aria-label", button.title);
      button.addEventListener("click", () => app.openMoment({ stream: moment.stream, offset: mark.offset }));
      return button;
    });
    strip.replaceChildren(now, ...items);
    const legend = KINDS.map((kind) => element("span", `timeline-key mark-${kind}`, t(`timeline.${kind}`)));
    $("timeline-legend").replaceChildren(...legend);
  }

  /** The chat a minute either side of the moment, and the cards up at the moment. */
  function renderContext(moment, found) {
    const near = found.marks.filter(
      (m) => m.kind === "chat" && Math.abs(m.offset - moment.offset) <= CONTEXT_SECONDS,
    );
    const chat = near.map((m) => {
      const item = element("li", m.offset <= moment.offset ? "chat-line" : "chat-line later");
      const when = element("button", "utterance-time", formatOffset(m.offset));
      when.type = "button";
      when.title = t("transcript.seek");
      when.addEventListener("click", () => app.openMoment({ stream: moment.stream, offset: m.offset }));
      item.append(when, element("span", "chat-user", m.user || "?"), element("span", "chat-text", m.text));
      return item;
    });
    $("context-chat").replaceChildren(...(chat.length ? chat : [element("li", "transcript-empty", t("context.noChat"))]));
    const cards = new Map(found.cards.map((c) => [c.product, c]));
    for (const m of found.marks) {
      if (m.kind !== "card" || m.offset > moment.offset) continue;
      if (m.action === "removed") cards.delete(m.product);
      else cards.set(m.product, { product: m.product, title: m.text, price: m.price, sku: m.sku });
    }
    const shown = [...cards.values()].map((c) => {
      const price = c.price === null || c.price === undefined ? "" : ` ¥${c.price}`;
      return element("li", "card-state", `${c.title || c.product}${price}`);
    });
    $("context-cards").replaceChildren(...(shown.length ? shown : [element("li", "transcript-empty", t("context.noCard"))]));
  }

  return { show, clear };
};
