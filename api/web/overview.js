// The compliance overview: banned-word hits per streamer and stream over time, the terms
// heard most and claim counts, as SVG charts drawn here (nothing is loaded from elsewhere).
// app.js calls window.LW_OVERVIEW(app) once with what it shares: t, labelOf, apiJson,
// handleError, clearError and setStatus.
"use strict";

window.LW_OVERVIEW = (app) => {
  const API = "/api/v1";
  // The SVG namespace as the HTML parser gives it (the page's code holds no URL).
  const SVG = (() => {
    const holder = document.createElement("div");
    holder.innerHTML = "<svg></svg>";
    return holder.firstChild.namespaceURI;
  })();
  const $ = (id) => document.getElementById(id);
  // One colour per lexicon category, the same in every chart; new categories are grey.
  const COLOURS = {
    absolute: "#b3261e",
    false_price: "#e07b00",
    medical: "#7a4dbf",
    efficacy: "#1f7a8c",
    guarantee: "#2d7a46",
    superstition: "#8c6d1f",
    state_endorsement: "#1f5fbf",
    professional_endorsement: "#c2185b",
  };
  let data = null; // the last overview answer

  const colour = (category) => COLOURS[category] || "#6b7785";
  const { t } = app;

  function svg(tag, attributes = {}, text) {
    const el = document.createElementNS(SVG, tag);
    for (const [name, value] of Object.entries(attributes)) el.setAttribute(name, String(value));
    if (text !== undefined) el.textContent = text;
    return el;
  }

  function titled(el, text) {
    el.append(svg("title", {}, text)); // the browser shows it on hover
    return el;
  }

  const pad = (n) => String(n).padStart(2, "0");
  /** A local time as YYYY-MM-DD HH:mm (unambiguous in every language). */
  function stamp(ms, withTime = true) {
    const d = new Date(ms);
    const day = `${d.getFullYear()}-${pad(d.getMonth() + 1)}-${pad(d.getDate())}`;
    return withTime ? `${day} ${pad(d.getHours())}:${pad(d.getMinutes())}` : day;
  }

  /** datetime-local's value for a time (the reviewer's own zone). */
  function localValue(ms) {
    const d = new Date(ms);
    return `${stamp(ms, false)}T${pad(d.getHours())}:${pad(d.getMinutes())}:${pad(d.getSeconds())}`;
  }

  /** A preset fills the range fields: the last N days up to the next whole hour (one
   * day) or the next local midnight (longer: then the day buckets are local days). */
  function applyPreset() {
    const days = Number($("o-range").value);
    if (!days) return;
    const until = new Date();
    if (days > 1) {
      until.setHours(24, 0, 0, 0);
    } else {
      until.setMinutes(0, 0, 0);
      until.setHours(until.getHours() + 1);
    }
    $("o-until").value = localValue(until.getTime());
    $("o-since").value = localValue(until.getTime() - days * 86400000);
  }

  async function load() {
    const params = new URLSearchParams({ bucket: $("o-bucket").value });
    for (const [name, id] of [["since", "o-since"], ["until", "o-until"]]) {
      if ($(id).value) params.set(name, new Date($(id).value).toISOString());
    }
    app.clearError();
    $("overview").setAttribute("aria-busy", "true");
    try {
      data = await app.apiJson(`${API}/compliance/overview?${params}`);
      render();
    } catch (error) {
      app.handleError(error);
    } finally {
      $("overview").setAttribute("aria-busy", "false");
    }
  }

  /** The row the charts show: every stream, one streamer or one stream. */
  function focused() {
    const [kind, name] = ($("o-focus").value || "all:").split(/:(.*)/s);
    if (kind === "streamer") return data.streamers.find((s) => (s.streamer ?? "") === name);
    if (kind === "stream") return data.streams.find((s) => s.stream === name);
    return null;
  }

  function renderFocus() {
    const select = $("o-focus");
    const chosen = select.value;
    const option = (value, text) => {
      const el = document.createElement("option");
      el.value = value;
      el.textContent = text;
      return el;
    };
    const options = [option("all:", t("overview.everyone"))];
    for (const s of data.streamers) options.push(option(`streamer:${s.streamer ?? ""}`, `${t("overview.streamer")} · ${s.streamer ?? t("overview.noStreamer")}`));
    for (const s of data.streams) options.push(option(`stream:${s.stream}`, `${t("overview.stream")} · ${s.stream}`));
    select.replaceChildren(...options);
    select.value = options.some((o) => o.value === chosen) ? chosen : "all:";
  }

  function render() {
    if (!data) return;
    renderFocus();
    const row = focused();
    const series = row ? row.series : sumSeries(data.streams);
    const total = row ? row.total : data.total;
    $("overview-summary").textContent = t("overview.summary", {
      total,
      since: stamp(Date.parse(data.since)),
      until: stamp(Date.parse(data.until)),
      bucket: t(`overview.bucket.${data.bucket}`),
    });
    drawTimeline($("chart-timeline"), series, data.buckets, data.bucket_seconds);
    drawLegend(series);
    drawBars($("chart-streamers"), data.streamers.map((s) => ({
      label: s.streamer ?? t("overview.noStreamer"),
      parts: Object.entries(s.by_category).map(([c, n]) => ({ key: c, value: n, colour: colour(c), title: `${app.labelOf("banned", c)}: ${n}` })),
      note: s.hits_per_hour === null ? "" : t("overview.perHour", { rate: s.hits_per_hour.toFixed(1) }),
    })), "streamers");
    const terms = row ? row.top_terms : data.top_terms;
    drawBars($("chart-terms"), terms.map((term) => ({
      label: term.term,
      parts: [{ key: term.category, value: term.count, colour: colour(term.category), title: `${app.labelOf("banned", term.category)}: ${term.count}` }],
    })), "terms");
    const claims = row ? row.claims : data.claims;
    const more = data.claims_at_least ? "+" : "";
    drawBars($("chart-claims"), data.claim_types.filter((c) => claims[c.name]).map((c) => ({
      label: app.labelOf("claim", c.name),
      parts: [{ key: c.name, value: claims[c.name], colour: "#1f5fbf", title: `${claims[c.name]}${more}` }],
    })), "claims");
    renderStreams();
  }

  function sumSeries(rows) {
    const out = {};
    for (const row of rows) {
      for (const [category, line] of Object.entries(row.series)) {
        out[category] = (out[category] || new Array(line.length).fill(0)).map((n, i) => n + line[i]);
      }
    }
    return out;
  }

  /** Hits per bucket stacked by category: the shape of a streamer's day at a glance. */
  function drawTimeline(box, series, buckets, width, small = false) {
    const W = small ? 160 : 720;
    const H = small ? 28 : 220;
    const left = small ? 0 : 40;
    const bottom = small ? 0 : 30;
    const top = small ? 0 : 10;
    const chart = svg("svg", { viewBox: `0 0 ${W} ${H}`, class: small ? "spark" : "timeline", role: "img" });
    const count = buckets.length;
    const totals = new Array(count).fill(0);
    for (const line of Object.values(series)) line.forEach((n, i) => { totals[i] += n; });
    const max = Math.max(1, ...totals);
    const plotH = H - top - bottom;
    const step = (W - left) / Math.max(count, 1);
    chart.setAttribute("aria-label", t("overview.timelineLabel", { total: totals.reduce((a, b) => a + b, 0) }));
    if (!small) {
      for (const tick of [0, Math.ceil(max / 2), max]) {
        const y = top + plotH - (tick / max) * plotH;
        chart.append(svg("line", { x1: left, x2: W, y1: y, y2: y, class: "grid" }));
        chart.append(svg("text", { x: left - 6, y: y + 4, "text-anchor": "end", class: "tick" }, String(tick)));
      }
      const marks = count > 2 ? [0, Math.floor(count / 2), count - 1] : [...Array(count).keys()];
      const withTime = width < 86400;
      for (const i of marks) {
        const anchor = i === 0 ? "start" : i === count - 1 ? "end" : "middle";
        const x = i === count - 1 ? W : left + i * step + (i === 0 ? 0 : step / 2);
        chart.append(svg("text", { x, y: H - 8, "text-anchor": anchor, class: "tick" }, stamp(Date.parse(buckets[i]), withTime)));
      }
    }
    const stacked = new Array(count).fill(0);
    for (const [category, line] of Object.entries(series)) {
      line.forEach((n, i) => {
        if (!n) return;
        const h = (n / max) * plotH;
        const y = top + plotH - ((stacked[i] + n) / max) * plotH;
        stacked[i] += n;
        const bar = svg("rect", {
          x: left + i * step + step * 0.1, y, width: Math.max(step * 0.8, 1), height: h,
          fill: colour(category), class: "bar",
          "data-category": category, "data-bucket": buckets[i], "data-count": n,
        });
        titled(bar, `${stamp(Date.parse(buckets[i]))} · ${app.labelOf("banned", category)}: ${n}`);
        chart.append(bar);
      });
    }
    if (!small && !totals.some(Boolean)) {
      chart.append(svg("text", { x: W / 2, y: H / 2, "text-anchor": "middle", class: "empty" }, t("overview.noHits")));
    }
    box.replaceChildren(chart);
  }

  function drawLegend(series) {
    $("chart-legend").replaceChildren(...Object.keys(series).map((category) => {
      const item = document.createElement("li");
      const swatch = document.createElement("span");
      swatch.className = "swatch";
      swatch.style.background = colour(category);
      item.append(swatch, document.createTextNode(app.labelOf("banned", category)));
      return item;
    }));
  }

  /** Horizontal bars, one row each, stacked from parts; the count at the row's end. */
  function drawBars(box, rows, name) {
    if (!rows.length) {
      const empty = document.createElement("p");
      empty.className = "hint";
      empty.textContent = t("overview.none");
      box.replaceChildren(empty);
      return;
    }
    const W = 360;
    const rowH = 22;
    const labelW = 110;
    const chart = svg("svg", { viewBox: `0 0 ${W} ${rows.length * rowH + 4}`, class: `bars bars-${name}`, role: "img" });
    chart.setAttribute("aria-label", t(`overview.${name}`));
    const max = Math.max(1, ...rows.map((r) => r.parts.reduce((a, p) => a + p.value, 0)));
    const room = W - labelW - (rows.some((r) => r.note) ? 130 : 40); // the counts' room
    rows.forEach((row, i) => {
      const y = i * rowH + 2;
      chart.append(svg("text", { x: labelW - 6, y: y + 14, "text-anchor": "end", class: "label" }, row.label));
      let x = labelW;
      let sum = 0;
      for (const part of row.parts) {
        const w = (part.value / max) * room;
        chart.append(titled(svg("rect", { x, y: y + 3, width: Math.max(w, 1), height: rowH - 8, fill: part.colour, class: "bar", "data-key": part.key, "data-count": part.value }), part.title));
        x += w;
        sum += part.value;
      }
      const note = row.note ? ` · ${row.note}` : "";
      chart.append(svg("text", { x: x + 4, y: y + 14, class: "value" }, `${sum}${note}`));
    });
    box.replaceChildren(chart);
  }

  /** One row per stream: totals, rate on air, a small timeline, top terms and claims. */
  function renderStreams() {
    const body = $("overview-streams").tBodies[0];
    body.replaceChildren(...data.streams.map((s) => {
      const tr = document.createElement("tr");
      tr.dataset.stream = s.stream;
      const cell = (text) => {
        const td = document.createElement("td");
        td.textContent = text;
        tr.append(td);
        return td;
      };
      cell(s.stream);
      cell(s.streamer ?? t("overview.noStreamer"));
      cell(String(s.total)).className = "number";
      cell(s.hits_per_hour === null ? "–" : s.hits_per_hour.toFixed(1)).className = "number";
      drawTimeline(cell(""), s.series, data.buckets, data.bucket_seconds, true);
      cell(s.top_terms.map((term) => `${term.term} ×${term.count}`).join(" · "));
      cell(String(s.claims_total)).className = "number";
      return tr;
    }));
  }

  function wire() {
    $("o-range").addEventListener("change", applyPreset);
    for (const id of ["o-since", "o-until"]) $(id).addEventListener("input", () => { $("o-range").value = "custom"; });
    $("overview-form").addEventListener("submit", (event) => {
      event.preventDefault();
      load();
    });
    $("o-focus").addEventListener("change", render);
  }

  /** Shown for the first time: the preset's range, loaded. */
  function show() {
    if (!$("o-until").value) applyPreset();
    if (!data) load();
  }

  wire();
  return { show, render, load };
};
