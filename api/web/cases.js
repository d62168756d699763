// Cases: "add to case" for the moment in the player (an open case, or a new one), and the
// cases view: each case's moments, played in the page's one player, with their notes,
// tags and corrections. Those are signed overlays, shown beside the machine transcript
// and never replacing it; each says whether its signature verified.
// app.js calls window.LW_CASES(app) once with what it shares (see start() there).
"use strict";

window.LW_CASES = (app) => {
  const API = "/api/v1";
  const $ = (id) => document.getElementById(id);
  const { t, element } = app;
  const READERS = ["reviewer", "compliance", "case-system"];
  const EDITORS = ["reviewer", "case-system"];
  const REPORTERS = ["reviewer", "case-system"]; // report and package are exports
  const MOMENT_SECONDS = 10; // a moment kept from the player: its offset and 10 s after
  let role = null;
  let open = []; // the open cases, for the picker
  let shown = null; // the case in the case view

  const allowed = (r) => READERS.includes(r);
  const mayEdit = () => EDITORS.includes(role);

  async function loadOpen() {
    open = await app.apiJson(`${API}/cases?status=open`);
    renderPicker();
  }

  function renderPicker() {
    const pick = $("case-pick");
    const chosen = pick.value;
    const options = open.map((c) => {
      const option = element("option", "", c.external_id ? `${c.title} [${c.external_id}]` : c.title);
      option.value = String(c.id);
      return option;
    });
    const fresh = element("option", "", t("cases.new"));
    fresh.value = "new";
    pick.replaceChildren(...options, fresh);
    if ([...pick.options].some((o) => o.value === chosen)) pick.value = chosen;
    $("case-new-label").hidden = pick.value !== "new";
  }

  /** Keep the player's moment in the chosen case (made first when "new"). */
  async function addToCase() {
    const m = app.moment();
    if (!m) return;
    app.clearError();
    try {
      let id = $("case-pick").value;
      if (id === "new") {
        const title = $("case-new-title").value.trim();
        if (!title) throw new Error(t("cases.needTitle"));
        id = String((await post(`${API}/cases`, { title })).id);
        $("case-new-title").value = "";
      }
      const query = app.query();
      const body = {
        stream: m.stream,
        start_offset: Math.max(0, m.offset),
        end_offset: Math.max(0, m.offset) + MOMENT_SECONDS,
        found_by: query ? `search "${query}"` : t("cases.fromPlayer"),
        matched: query ? [query] : [],
      };
      const kept = await post(`${API}/cases/${id}/moments`, body);
      await loadOpen();
      $("case-pick").value = id;
      renderPicker();
      app.setStatus(t("cases.added", { title: kept.title, count: kept.moments.length }));
    } catch (error) {
      app.handleError(error);
    }
  }

  async function post(path, body) {
    return app.apiJson(path, {
      method: "POST",
      headers: { "Content-Type": "application/json" },
      body: JSON.stringify(body),
    });
  }

  // -- the cases view ---------------------------------------------------------------------
  async function show() {
    try {
      const all = await app.apiJson(`${API}/cases`);
      const items = all.map((c) => {
        const item = element("li");
        const button = element("button", "case-link", `#${c.id} ${c.title}`);
        button.type = "button";
        button.dataset.case = String(c.id);
        if (shown && shown.id === c.id) button.setAttribute("aria-current", "true");
        item.append(button, element("span", `case-status case-${c.status}`, t(`cases.status.${c.status}`)));
        return item;
      });
      $("case-list").replaceChildren(...items);
      if (!all.length) $("case-list").append(element("li", "hint", t("cases.none")));
      if (shown) await openCase(shown.id);
    } catch (error) {
      app.handleError(error);
    }
  }

  function markCurrent() {
    for (const button of $("case-list").querySelectorAll("[data-case]")) {
      if (shown && Number(button.dataset.case) === shown.id) button.setAttribute("aria-current", "true");
      else button.removeAttribute("aria-current");
    }
  }

  async function openCase(id) {
    shown = await app.apiJson(`${API}/cases/${id}`);
    render();
  }

  function render() {
    if (!shown) return;
    const c = shown;
    $("case-view").hidden = false;
    $("case-heading").textContent = c.external_id ? `#${c.id} ${c.title} [${c.external_id}]` : `#${c.id} ${c.title}`;
    $("case-meta").textContent = t("cases.meta", {
      status: t(`cases.status.${c.status}`),
      count: c.moments.length,
      holds: c.holds,
    });
    const exports = REPORTERS.includes(role) && c.moments.length > 0;
    $("case-report").hidden = !exports;
    $("case-package").hidden = !exports;
    $("case-moments").replaceChildren(...c.moments.map(renderMoment));
  }

  function renderMoment(m) {
    const item = element("li", "case-moment");
    const head = element("div", "case-moment-head");
    const play = element("button", "", t("cases.play"));
    play.type = "button";
    play.addEventListener("click", () => {
      app.showView("search");
      app.openMoment({ stream: m.stream, offset: m.start_offset, at: m.since });
    });
    const where = `${m.stream} · ${app.formatOffset(m.start_offset)}–${app.formatOffset(m.end_offset)} · ${app.formatClock(Date.parse(m.since))}`;
    head.append(play, element("span", "", where), element("span", "hint", t("cases.foundBy", { how: m.found_by })));
    const overlays = element("ul", "overlays");
    for (const o of m.overlays) {
      const row = element("li", `overlay overlay-${o.kind}`);
      const mark = o.signature_ok ? t("cases.signed") : t("cases.unsigned");
      row.append(
        element("span", "overlay-kind", t(`cases.kind.${o.kind}`)),
        element("span", "overlay-text", o.text),
        element("span", o.signature_ok ? "hint" : "overlay-bad", `${o.author} · ${app.formatClock(Date.parse(o.at))} · ${mark}`),
      );
      overlays.append(row);
    }
    item.append(head, overlays);
    if (mayEdit() && shown.status === "open") item.append(noteForm(m));
    return item;
  }

  function noteForm(m) {
    const form = element("form", "overlay-form");
    const kind = element("select");
    for (const [value, path] of [["note", "notes"], ["correction", "corrections"], ["tag", "tags"]]) {
      const option = element("option", "", t(`cases.kind.${value}`));
      option.value = path;
      kind.append(option);
    }
    kind.setAttribute("aria-label", t("cases.kindLabel"));
    const text = element("input");
    text.type = "text";
    text.maxLength = 4000;
    text.required = true;
    text.setAttribute("aria-label", t("cases.noteLabel"));
    const submit = element("button", "", t("cases.write"));
    submit.type = "submit";
    form.append(kind, text, submit);
    form.addEventListener("submit", async (event) => {
      event.preventDefault();
      app.clearError();
      try {
        await post(`${API}/cases/${shown.id}/moments/${m.id}/${kind.value}`, { text: text.value });
        await openCase(shown.id);
      } catch (error) {
        app.handleError(error);
      }
    });
    return form;
  }

  async function download(path, fallback, working) {
    app.clearError();
    app.setStatus(t(working));
    try {
      const response = await app.api(path);
      const blob = await response.blob();
      const name = app.fileNameOf(response) || fallback;
      app.saveBlob(blob, name);
      app.setStatus(t("cases.downloaded", { file: name, size: app.formatSize(blob.size) }));
    } catch (error) {
      app.setStatus("");
      app.handleError(error);
    }
  }

  function wire() {
    $("case-pick").addEventListener("change", () => {
      $("case-new-label").hidden = $("case-pick").value !== "new";
    });
    $("case-add").addEventListener("submit", (event) => {
      event.preventDefault();
      addToCase();
    });
    $("case-list").addEventListener("click", (event) => {
      const button = event.target.closest("[data-case]");
      if (!button) return;
      openCase(Number(button.dataset.case)).then(markCurrent, app.handleError);
    });
    $("case-report").addEventListener("click", () =>
      download(`${API}/cases/${shown.id}/report.pdf`, `case-${shown.id}.pdf`, "cases.reporting"),
    );
    $("case-package").addEventListener("click", () =>
      download(`${API}/cases/${shown.id}/package`, `case-${shown.id}.zip`, "cases.packaging"),
    );
  }

  /** After signing in: the add-to-case form for roles that edit cases. */
  function signedIn(newRole) {
    role = newRole;
    shown = null;
    $("case-view").hidden = true;
    $("case-add").hidden = !mayEdit();
    if (mayEdit()) loadOpen().catch(app.handleError);
  }

  wire();
  return { allowed, signedIn, show, render: () => { renderPicker(); render(); } };
};
