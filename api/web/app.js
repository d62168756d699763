// LiveWitness reviewer page: search what was said, play that moment, export the evidence.
// Plain browser JavaScript with no build step; it talks only to this server's /api/v1.
"use strict";

(() => {
  const API = "/api/v1";
  const KEY_STORE = "livewitness.apiKey";
  const LANG_STORE = "livewitness.lang";
  const PAGE_SIZE = 20;

  const $ = (id) => document.getElementById(id);

  const state = {
    key: null, // the API key, sent as "Authorization: Bearer" on every call
    lang: "zh",
    streams: [],
    search: null, // {params, page, result} of the last search shown
    selected: -1, // index of the hit being played
    moment: null, // {stream, offset, at, momentUrl, clipUrl}: what the player shows
    clip: null, // {url (blob:), startOffset, startMs}: the loaded clip
    utterances: [],
    current: -1, // index of the highlighted utterance
    token: 0, // bumped per moment, so answers for an older click are dropped
    sound: false, // whether the reviewer unmuted: later clips keep that choice
    aborter: null,
    role: null, // the key's role (GET /me): the compliance role also has the overview
  };
  let overview = null; // overview.js's view, made in start()
  let cases = null; // cases.js's view, made in start()
  let timeline = null; // timeline.js's strip and moment context, made in start()

  // -- language ---------------------------------------------------------------------------
  function t(key, vars = {}) {
    const entry = window.LW_I18N[key];
    // Showing the bare key makes a missing entry obvious rather than blank.
    const text = entry ? entry[state.lang] : key;
    return text.replace(/\{(\w+)\}/g, (all, name) => (name in vars ? String(vars[name]) : all));
  }

  /** The label of a claim type or banned-word category; the raw key for new ones. */
  function labelOf(prefix, value) {
    return window.LW_I18N[`${prefix}.${value}`] ? t(`${prefix}.${value}`) : value;
  }

  function initialLanguage() {
    const saved = localStorage.getItem(LANG_STORE);
    if (saved === "zh" || saved === "en") return saved;
    return (navigator.language || "zh").toLowerCase().startsWith("zh") ? "zh" : "en";
  }

  function locale() {
    return state.lang === "zh" ? "zh-CN" : "en";
  }

  function applyLanguage() {
    document.documentElement.lang = locale();
    $("lang").value = state.lang;
    for (const el of document.querySelectorAll("[data-i18n]")) el.textContent = t(el.dataset.i18n);
    const attributes = { i18nPlaceholder: "placeholder", i18nTitle: "title", i18nAriaLabel: "aria-label" };
    for (const [data, attribute] of Object.entries(attributes)) {
      const selector = `[data-${data.replace(/[A-Z]/g, (c) => "-" + c.toLowerCase())}]`;
      for (const el of document.querySelectorAll(selector)) el.setAttribute(attribute, t(el.dataset[data]));
    }
    const zone = Intl.DateTimeFormat().resolvedOptions().timeZone || "UTC";
    $("timezone").textContent = t("filters.timezone", { zone });
    // Text made from data is built again in the new language.
    renderStreams();
    if (state.search) renderResults();
    renderMomentHeader();
    if (state.utterances.length) renderTranscript();
    updateMuteButton();
    updatePosition();
    if (overview) overview.render();
    if (cases) cases.render();
    if (state.key) $("whoami").textContent = t("auth.signedIn", { prefix: state.key.slice(0, 10) });
  }

  // -- formatting -------------------------------------------------------------------------
  /** Seconds from the stream start as h:mm:ss.s (what reviewers quote in a case). */
  function formatOffset(seconds) {
    const s = Math.max(0, seconds);
    const hours = Math.floor(s / 3600);
    const minutes = Math.floor((s % 3600) / 60);
    const rest = (s % 60).toFixed(1).padStart(4, "0");
    return `${hours}:${String(minutes).padStart(2, "0")}:${rest}`;
  }

  /** An absolute time in the reviewer's own time zone (stored times are UTC), the date in
   * ISO order (2026-12-02 20:15:03) in both languages: 12/02/2026 reads two ways. */
  function formatClock(ms, withDate = true) {
    const options = { hour: "2-digit", minute: "2-digit", second: "2-digit", hourCycle: "h23" };
    if (withDate) Object.assign(options, { year: "numeric", month: "2-digit", day: "2-digit" });
    const parts = {};
    for (const part of new Intl.DateTimeFormat("en-US", options).formatToParts(new Date(ms))) {
      parts[part.type] = part.value;
    }
    const clock = `${parts.hour}:${parts.minute}:${parts.second}`;
    return withDate ? `${parts.year}-${parts.month}-${parts.day} ${clock}` : clock;
  }

  /** A size a person reads at a glance: 1.2 MB (decimal units, as file managers show). */
  function formatSize(bytes) {
    for (const [unit, scale] of [["GB", 1e9], ["MB", 1e6], ["kB", 1e3]]) {
      if (bytes >= scale) return `${(bytes / scale).toFixed(1)} ${unit}`;
    }
    return `${bytes} B`;
  }

  function element(tag, className, text) {
    const el = document.createElement(tag);
    if (className) el.className = className;
    if (text !== undefined) el.textContent = text;
    return el;
  }

  // -- messages ---------------------------------------------------------------------------
  function showError(error) {
    if (error && error.name === "AbortError") return; // a newer request replaced it
    const text = error instanceof ApiError ? error.line() : String(error && error.message ? error.message : error);
    $("message-text").textContent = text;
    $("message").hidden = false;
    setStatus("");
  }

  function clearError() {
    $("message").hidden = true;
    $("message-text").textContent = "";
  }

  function setStatus(text) {
    $("status").textContent = text;
  }

  // -- the API ----------------------------------------------------------------------------
  class ApiError extends Error {
    constructor(status, message, type) {
      super(message);
      this.status = status;
      this.type = type;
    }

    /** One line for the message area: the API's own error line, then where it came from. */
    line() {
      const where = [this.status ? `HTTP ${this.status}` : "", this.type].filter(Boolean).join(" · ");
      return where ? `${this.message} (${where})` : this.message;
    }
  }

  async function api(path, options = {}) {
    const headers = new Headers(options.headers || {});
    headers.set("Authorization", `Bearer ${state.key}`);
    let response;
    try {
      response = await fetch(path, { ...options, headers });
    } catch (error) {
      if (error.name === "AbortError") throw error;
      throw new ApiError(0, t("error.network"), "");
    }
    if (!response.ok) throw await errorOf(response);
    return response;
  }

  /** The API answers errors as JSON {error, type}; anything else gets a generic line. */
  async function errorOf(response) {
    let body = null;
    try {
      body = await response.json();
    } catch {
      // not JSON (a proxy's error page): fall through to the generic line
    }
    if (body && typeof body.error === "string") return new ApiError(response.status, body.error, body.type);
    if (body && Array.isArray(body.detail)) {
      // FastAPI's own request validation answers {"detail": [{loc, msg}, ...]}.
      const text = body.detail.map((d) => `${(d.loc || []).slice(1).join(".")}: ${d.msg}`).join("; ");
      return new ApiError(response.status, text, "ValidationError");
    }
    return new ApiError(response.status, t("error.http", { status: response.status }), "");
  }

  async function apiJson(path, options) {
    return (await api(path, options)).json();
  }

  // -- signing in -------------------------------------------------------------------------
  async function signIn(key) {
    state.key = key;
    setStatus(t("auth.checking"));
    try {
      // Any role may list streams, so this checks the key and fills the stream filter.
      state.streams = await apiJson(`${API}/streams`);
      state.role = (await apiJson(`${API}/me`)).role;
    } catch (error) {
      // A refused key is forgotten; a server that is down is not the key's fault.
      if (error.status === 401) localStorage.removeItem(KEY_STORE);
      state.key = null;
      showSignIn();
      showError(error);
      return;
    }
    localStorage.setItem(KEY_STORE, key);
    clearError();
    setStatus("");
    showWorkspace();
    openFromHash();
  }

  function signOut() {
    localStorage.removeItem(KEY_STORE);
    state.key = null;
    state.search = null;
    stopPlayback();
    $("results").replaceChildren();
    $("total").textContent = "";
    showSignIn();
    setStatus(t("auth.signedOut"));
  }

  /** A key the server no longer accepts: back to the key form, with the reason shown. */
  function handleError(error) {
    if (error instanceof ApiError && error.status === 401) {
      localStorage.removeItem(KEY_STORE);
      state.key = null;
      stopPlayback();
      showSignIn();
    }
    showError(error);
  }

  function showSignIn() {
    $("workspace").hidden = true;
    $("overview").hidden = true;
    $("cases").hidden = true;
    $("views").hidden = true;
    $("sign-in").hidden = false;
    $("sign-out").hidden = true;
    $("whoami").hidden = true;
    $("api-key").value = "";
    $("api-key").focus();
  }

  function showWorkspace() {
    $("sign-in").hidden = true;
    $("workspace").hidden = false;
    $("sign-out").hidden = false;
    $("whoami").hidden = false;
    // Only the key's public prefix is shown, as the audit log names keys.
    $("whoami").textContent = t("auth.signedIn", { prefix: state.key.slice(0, 10) });
    renderStreams();
    $("q").focus();
    const compliance = state.role === "compliance" && overview !== null;
    const withCases = cases !== null && cases.allowed(state.role);
    $("views").hidden = !compliance && !withCases;
    $("views").querySelector('[data-view="overview"]').hidden = !compliance;
    $("views").querySelector('[data-view="cases"]').hidden = !withCases;
    if (cases) cases.signedIn(state.role);
    showView(compliance ? "overview" : "search");
  }

  /** Search (every role), the compliance overview, or the cases. */
  function showView(view) {
    $("workspace").hidden = view !== "search";
    $("overview").hidden = view !== "overview";
    $("cases").hidden = view !== "cases";
    for (const button of $("views").querySelectorAll("[data-view]")) {
      if (button.dataset.view === view) button.setAttribute("aria-current", "page");
      else button.removeAttribute("aria-current");
    }
    if (view === "overview") overview.show();
    if (view === "cases") cases.show();
  }

  // -- filters ----------------------------------------------------------------------------
  function renderStreams() {
    const select = $("f-stream");
    const chosen = select.value;
    const options = [element("option", "", t("filters.allStreams"))];
    options[0].value = "";
    for (const stream of state.streams) {
      const parts = [stream.name, stream.streamer, stream.status === "recording" ? t("filters.live") : ""];
      const option = element("option", "", parts.filter(Boolean).join(" · "));
      option.value = stream.name;
      options.push(option);
    }
    select.replaceChildren(...options);
    select.value = state.streams.some((s) => s.name === chosen) ? chosen : "";
  }

  /** Product names of the chosen stream as suggestions for the product filter. */
  async function loadProducts() {
    const stream = $("f-stream").value;
    $("product-list").replaceChildren();
    if (!stream) return;
    try {
      const products = await apiJson(`${API}/streams/${encodeURIComponent(stream)}/products`);
      $("product-list").replaceChildren(
        ...products.map((p) => {
          const option = document.createElement("option");
          option.value = p.name;
          return option;
        }),
      );
    } catch (error) {
      handleError(error);
    }
  }

  /** datetime-local gives the reviewer's local time; the API wants ISO 8601 with a zone. */
  function localToIso(value) {
    return value ? new Date(value).toISOString() : "";
  }

  function searchParams() {
    const params = new URLSearchParams({ q: $("q").value.trim() });
    const fields = { stream: "f-stream", product: "f-product", claim: "f-claim", banned: "f-banned", kind: "f-kind" };
    for (const [name, id] of Object.entries(fields)) {
      const value = $(id).value.trim();
      if (value) params.set(name, value);
    }
    const since = localToIso($("f-since").value);
    const until = localToIso($("f-until").value);
    if (since) params.set("since", since);
    if (until) params.set("until", until);
    params.set("sort", $("f-sort").value);
    if (!$("f-sound").checked) params.set("sound_alike", "false");
    params.set("size", String(PAGE_SIZE));
    return params;
  }

  // -- searching --------------------------------------------------------------------------
  async function runSearch(params, page) {
    clearError();
    setStatus(t("search.searching"));
    const query = new URLSearchParams(params);
    query.set("page", String(page));
    // aria-busy tells assistive technology (and tests) the list is being replaced.
    $("results").setAttribute("aria-busy", "true");
    try {
      const result = await apiJson(`${API}/search?${query}`);
      state.search = { params, page, result };
      state.selected = -1;
      setStatus("");
      renderResults();
    } catch (error) {
      handleError(error);
    } finally {
      $("results").setAttribute("aria-busy", "false");
    }
  }

  function totalText(result) {
    // The engine stops counting past a cap and says so with total_relation "gte".
    return `${result.total}${result.total_relation === "gte" ? "+" : ""}`;
  }

  function renderResults() {
    const { page, result } = state.search;
    $("total").textContent = result.total ? t("results.total", { total: totalText(result) }) : t("results.none");
    $("results").replaceChildren(...result.hits.map((hit, i) => renderHit(hit, i)));
    renderPager(page, result);
  }

  function renderPager(page, result) {
    const pages = Math.max(1, Math.ceil(result.total / result.size));
    const more = result.total_relation === "gte";
    $("page-info").textContent = result.total ? t("results.page", { page, pages: `${pages}${more ? "+" : ""}` }) : "";
    $("prev-page").disabled = page <= 1;
    $("next-page").disabled = !(page < pages || (more && result.hits.length === result.size));
  }

  function renderHit(hit, index) {
    const item = element("li", "hit-item");
    const button = element("button", "hit");
    button.type = "button";
    button.title = t("results.playTitle");
    button.dataset.index = String(index);
    // The matched words' time, not the utterance's: a long utterance may say it late.
    const at = hit.match_start ?? hit.start;
    const atOffset = hit.match_offset ?? hit.offset;
    button.dataset.offset = String(atOffset);
    if (index === state.selected) button.setAttribute("aria-current", "true");

    const meta = element("span", "hit-meta");
    meta.append(element("span", "hit-stream", hit.stream));
    const time = element("time", "hit-time", formatClock(Date.parse(at)));
    time.dateTime = at;
    meta.append(time);
    const offset = element("span", "hit-offset", `+${formatOffset(atOffset)}`);
    offset.title = t("results.offsetTitle");
    meta.append(offset);
    meta.append(...badgesOf(hit));

    const text = element("span", "hit-text");
    // `highlighted` is HTML-escaped by the server with only <mark> added, so it is safe
    // to insert as HTML; that is how the match is shown.
    text.innerHTML = hit.highlighted;

    button.append(meta, text);
    item.append(button);
    return item;
  }

  function badge(kind, text, title) {
    const el = element("span", `badge badge-${kind}`, text);
    if (title) el.title = title;
    return el;
  }

  function badgesOf(hit) {
    const out = [];
    if (hit.kind && hit.kind !== "speech") out.push(badge("kind", t(`timeline.${hit.kind}`), t("badge.kind")));
    if (hit.match === "sound-alike") out.push(badge("sound", t("badge.soundAlike"), t("badge.soundAlikeTitle")));
    if (hit.match === "fuzzy") out.push(badge("sound", t("badge.fuzzy"), t("badge.fuzzyTitle")));
    if (hit.match === "inferred") out.push(badge("sound", t("badge.inferred"), t("badge.inferredTitle")));
    for (const p of hit.products) out.push(badge("product", p, t("badge.product")));
    for (const c of hit.claims) out.push(badge("claim", labelOf("claim", c), t("badge.claim")));
    for (const b of hit.banned) out.push(badge("banned", labelOf("banned", b), t("badge.banned")));
    return out;
  }

  function selectHit(index) {
    const hit = state.search.result.hits[index];
    state.selected = index;
    for (const el of $("results").querySelectorAll(".hit")) {
      // aria-current="" would read as false: set "true" or remove it.
      if (Number(el.dataset.index) === index) el.setAttribute("aria-current", "true");
      else el.removeAttribute("aria-current");
    }
    openMoment({
      stream: hit.stream,
      offset: hit.match_offset ?? hit.offset,
      at: hit.match_start ?? hit.start,
      momentUrl: hit.moment_url,
      clipUrl: hit.clip_url,
    });
  }

  // -- a moment: clip and transcript ------------------------------------------------------
  function momentUrlOf(stream, offset) {
    return `${API}/streams/${encodeURIComponent(stream)}/moment?offset=${offset.toFixed(3)}`;
  }

  /** Play `target` ({stream, offset, at?, momentUrl?, clipUrl?}) and show its transcript. */
  async function openMoment(target) {
    clearError();
    const token = ++state.token;
    if (state.aborter) state.aborter.abort();
    state.aborter = new AbortController();
    const signal = state.aborter.signal;
    $("video").pause(); // the old clip must not drive the new transcript's highlight
    state.moment = { ...target, momentUrl: target.momentUrl || momentUrlOf(target.stream, target.offset) };
    state.utterances = [];
    renderMomentHeader();
    renderTranscript();
    setPlayerState("loading");
    setStatus(t("moment.loading"));
    $("export").disabled = !target.at;
    // The transcript and the clip load side by side; each shows its own error.
    const moment = loadMoment(state.moment.momentUrl, signal, token);
    try {
      // A link from an alert names only stream and offset: the moment gives the clip's URL.
      const clipUrl = target.clipUrl || (await moment)?.clip_url;
      if (!clipUrl) {
        setPlayerState("error"); // the moment's own error is shown already
        return;
      }
      const clip = await loadClip(clipUrl, signal);
      if (token === state.token) playClip(clip, target.offset, token);
      else URL.revokeObjectURL(clip.url);
    } catch (error) {
      if (token !== state.token) return;
      setPlayerState("error");
      handleError(error);
    }
  }

  /** The moment's time and transcript; null (with the error shown) when it fails. */
  async function loadMoment(url, signal, token) {
    try {
      const found = await apiJson(url, { signal });
      if (token === state.token) showMoment(found);
      return found;
    } catch (error) {
      if (token === state.token) handleError(error);
      return null;
    }
  }

  function showMoment(moment) {
    state.moment.at = moment.at;
    state.utterances = moment.transcript;
    $("export").disabled = false;
    renderMomentHeader();
    renderTranscript();
    updatePosition();
    if (timeline) timeline.show(state.moment, state.search ? state.search.result.hits : []);
  }

  function renderMomentHeader() {
    const m = state.moment;
    if (!m) {
      $("moment-where").textContent = t("moment.empty");
      return;
    }
    const clock = m.at ? formatClock(Date.parse(m.at)) : "…";
    $("moment-where").textContent = t("moment.where", { stream: m.stream, clock, offset: formatOffset(m.offset) });
    // The page's address names the moment, in the form alert links use: it can be shared.
    history.replaceState(null, "", `#stream=${encodeURIComponent(m.stream)}&t=${m.offset.toFixed(1)}`);
  }

  /** Fetch the clip with the key (a <video src> cannot send headers) as a blob URL. */
  async function loadClip(url, signal) {
    const response = await api(url, { signal });
    // Seconds from the stream start of the clip's first frame: the clip starts on a key
    // frame, so up to a few seconds before the asked-for `before`.
    const startOffset = Number(response.headers.get("X-Clip-Start-Offset") || "0");
    const start = response.headers.get("X-Clip-Start");
    const blob = await response.blob();
    return { url: URL.createObjectURL(blob), startOffset, startMs: start ? Date.parse(start) : null };
  }

  function playClip(clip, offset, token) {
    const video = $("video");
    releaseClip();
    state.clip = { ...clip, token };
    $("player").dataset.clipStartOffset = clip.startOffset.toFixed(3);
    video.addEventListener(
      "loadedmetadata",
      () => {
        if (token !== state.token) return;
        video.currentTime = Math.min(Math.max(0, offset - clip.startOffset), video.duration || 0);
        startPlaying();
      },
      { once: true },
    );
    // Browsers let a page start muted playback on its own; once the reviewer has unmuted
    // (a user gesture), later clips may play with sound.
    video.muted = !state.sound;
    video.src = clip.url;
    // Setting src drops the queued volumechange event, so the button is updated here.
    updateMuteButton();
    $("unmute").disabled = false;
    setStatus("");
  }

  function startPlaying() {
    const video = $("video");
    video.play().catch((error) => {
      if (error.name === "NotAllowedError" && !video.muted) {
        video.muted = true; // sound was refused: muted playback is always allowed
        startPlaying();
      } else if (error.name === "NotAllowedError") {
        setStatus(t("player.blocked"));
      } else if (error.name !== "AbortError") {
        showError(error);
      }
    });
  }

  function releaseClip() {
    if (state.clip) URL.revokeObjectURL(state.clip.url);
    state.clip = null;
  }

  function stopPlayback() {
    state.token += 1;
    if (state.aborter) state.aborter.abort();
    const video = $("video");
    video.pause();
    video.removeAttribute("src");
    video.load();
    releaseClip();
    state.moment = null;
    state.utterances = [];
    renderTranscript();
    renderMomentHeader();
    setPlayerState("empty");
    $("export").disabled = true;
    $("unmute").disabled = true;
    $("position").textContent = "";
  }

  function setPlayerState(value) {
    $("player").dataset.state = value;
  }

  /** Where playback is in the stream: the clip's first frame plus the time into the clip. */
  function streamOffsetNow() {
    // While another moment loads, the old clip says nothing about the new transcript.
    const clip = state.clip;
    return clip && clip.token === state.token ? clip.startOffset + $("video").currentTime : null;
  }

  function updatePosition() {
    const offset = streamOffsetNow();
    if (offset === null) return;
    const player = $("player");
    player.dataset.streamOffset = offset.toFixed(3);
    const clock = state.clip.startMs !== null ? formatClock(state.clip.startMs + $("video").currentTime * 1000, false) : "";
    $("position").textContent = t("player.position", { offset: formatOffset(offset), clock });
    highlightAt(offset);
  }

  function updateMuteButton() {
    $("unmute").textContent = $("video").muted ? t("player.unmute") : t("player.mute");
  }

  // -- transcript -------------------------------------------------------------------------
  function renderTranscript() {
    const list = $("transcript");
    state.current = -1;
    if (!state.moment) {
      list.replaceChildren();
      return;
    }
    if (!state.utterances.length) {
      list.replaceChildren(element("li", "transcript-empty", state.moment.at ? t("transcript.empty") : "…"));
      return;
    }
    const moment = momentUtterance();
    list.replaceChildren(...state.utterances.map((u, i) => renderUtterance(u, i, i === moment)));
    const offset = streamOffsetNow();
    if (offset !== null) highlightAt(offset);
    else scrollToUtterance(list.children[moment]);
  }

  /** The utterance the reviewer asked for: the one holding the moment's offset. */
  function momentUtterance() {
    const offset = state.moment.offset;
    const holding = state.utterances.findIndex((u) => u.offset <= offset + 0.05 && offset < u.end_offset);
    return holding >= 0 ? holding : lastStartedBy(offset);
  }

  function lastStartedBy(offset) {
    let found = -1;
    state.utterances.forEach((u, i) => {
      if (u.offset <= offset + 0.05) found = i;
    });
    return Math.max(found, 0);
  }

  function renderUtterance(utterance, index, isMoment) {
    const item = element("li", isMoment ? "utterance moment" : "utterance");
    item.dataset.offset = String(utterance.offset);
    item.dataset.endOffset = String(utterance.end_offset);
    const seek = element("button", "utterance-time", formatOffset(utterance.offset));
    seek.type = "button";
    seek.title = t("transcript.seek");
    seek.dataset.index = String(index);
    const text = element("span", "utterance-text");
    text.append(...wordsOf(utterance));
    item.append(seek, text);
    return item;
  }

  /** One span per word with its offset, so the word being said can be marked too. */
  function wordsOf(utterance) {
    if (!utterance.words.length) return [document.createTextNode(utterance.text)];
    const out = [];
    utterance.words.forEach((word, i) => {
      // Joined as the server joins them (core/transcript.py): Whisper's pieces carry
      // their own spaces (" hello"), and a number cut in pieces ("12", "9元") has none.
      const span = element("span", "word", i === 0 ? word.text.trimStart() : word.text);
      span.dataset.offset = String(word.offset);
      span.dataset.endOffset = String(word.end_offset);
      out.push(span);
    });
    return out;
  }

  /** Mark the utterance (and word) being said at `offset` and keep it in view. */
  function highlightAt(offset) {
    const list = $("transcript");
    if (!state.utterances.length || !list.children.length) return;
    const index = lastStartedBy(offset);
    const item = list.children[index];
    if (index !== state.current) {
      const old = list.querySelector(".utterance.current");
      if (old) {
        old.classList.remove("current");
        old.removeAttribute("aria-current");
      }
      item.classList.add("current");
      item.setAttribute("aria-current", "true");
      state.current = index;
      scrollToUtterance(item);
    }
    for (const word of list.querySelectorAll(".word.said-now")) word.classList.remove("said-now");
    for (const word of item.querySelectorAll(".word")) {
      if (Number(word.dataset.offset) <= offset && offset < Number(word.dataset.endOffset) + 0.05) {
        word.classList.add("said-now");
      }
    }
  }

  /** Scroll the transcript box only (never the page, which the reviewer may be reading). */
  function scrollToUtterance(item) {
    if (!item) return;
    const box = $("transcript"); // position: relative, so offsetTop is within the box
    const top = item.offsetTop;
    if (top < box.scrollTop || top + item.offsetHeight > box.scrollTop + box.clientHeight) {
      box.scrollTop = Math.max(0, top - box.clientHeight / 3);
    }
  }

  /** Play from an utterance: inside the loaded clip by seeking, else a new clip there. */
  function playFrom(offset) {
    const video = $("video");
    const clip = state.clip;
    if (clip && offset >= clip.startOffset && offset - clip.startOffset < (video.duration || 0)) {
      video.currentTime = offset - clip.startOffset;
      startPlaying();
      return;
    }
    openMoment({ stream: state.moment.stream, offset });
  }

  // -- export -----------------------------------------------------------------------------
  async function exportPackage() {
    const m = state.moment;
    if (!m || !m.at) return;
    const before = Number($("export-before").value);
    const after = Number($("export-after").value);
    const at = Date.parse(m.at);
    const body = {
      stream: m.stream,
      since: new Date(at - before * 1000).toISOString(),
      until: new Date(at + after * 1000).toISOString(),
    };
    clearError();
    setStatus(t("export.working"));
    $("export").disabled = true;
    try {
      const response = await api(`${API}/exports`, {
        method: "POST",
        headers: { "Content-Type": "application/json" },
        body: JSON.stringify(body),
      });
      const name = fileNameOf(response) || `${m.stream}-evidence.zip`;
      const blob = await response.blob();
      saveBlob(blob, name);
      setStatus("");
      // Stays shown: the file's name and size, and the command that checks it against
      // the installation's key (the key id is public: GET /signing-key needs no API key).
      const key = (await apiJson(`${API}/signing-key`)).key_id;
      $("export-done").textContent = t("export.done", { file: name, size: formatSize(blob.size), key });
      $("export-done").hidden = false;
    } catch (error) {
      handleError(error);
    } finally {
      $("export").disabled = !(state.moment && state.moment.at);
    }
  }

  function fileNameOf(response) {
    const disposition = response.headers.get("Content-Disposition") || "";
    const star = /filename\*=(?:UTF-8'')?([^;]+)/i.exec(disposition);
    if (star) return decodeURIComponent(star[1].replace(/"/g, ""));
    const plain = /filename="?([^";]+)"?/i.exec(disposition);
    return plain ? plain[1] : "";
  }

  /** Hand a blob to the browser as a download (the fetch carried the key; a link could not). */
  function saveBlob(blob, name) {
    const url = URL.createObjectURL(blob);
    const link = element("a");
    link.href = url;
    link.download = name;
    link.hidden = true;
    document.body.append(link);
    link.click();
    link.remove();
    // The browser reads the blob after click() returns; let it finish first.
    setTimeout(() => URL.revokeObjectURL(url), 60_000);
  }

  // -- links from alerts: #stream=NAME&t=SECONDS --------------------------------------------
  function openFromHash() {
    const params = new URLSearchParams(location.hash.slice(1));
    const stream = params.get("stream");
    const offset = Number(params.get("t"));
    if (!stream || !Number.isFinite(offset) || !state.key) return;
    if (state.moment && state.moment.stream === stream && Math.abs(state.moment.offset - offset) < 0.05) return;
    if (state.streams.some((s) => s.name === stream)) $("f-stream").value = stream;
    openMoment({ stream, offset });
  }

  // -- wiring -----------------------------------------------------------------------------
  function wire() {
    $("lang").addEventListener("change", (event) => {
      state.lang = event.target.value;
      localStorage.setItem(LANG_STORE, state.lang);
      applyLanguage();
    });
    $("key-form").addEventListener("submit", (event) => {
      event.preventDefault();
      const key = $("api-key").value.trim();
      if (key) signIn(key);
    });
    $("sign-out").addEventListener("click", signOut);
    $("views").addEventListener("click", (event) => {
      const button = event.target.closest("[data-view]");
      if (button) showView(button.dataset.view);
    });
    $("message-close").addEventListener("click", clearError);
    $("search-form").addEventListener("submit", (event) => {
      event.preventDefault();
      runSearch(searchParams(), 1);
    });
    $("search-form").addEventListener("reset", () => setTimeout(loadProducts));
    $("f-stream").addEventListener("change", loadProducts);
    $("prev-page").addEventListener("click", () => runSearch(state.search.params, state.search.page - 1));
    $("next-page").addEventListener("click", () => runSearch(state.search.params, state.search.page + 1));
    $("results").addEventListener("click", (event) => {
      const button = event.target.closest(".hit");
      if (button) selectHit(Number(button.dataset.index));
    });
    $("transcript").addEventListener("click", (event) => {
      const button = event.target.closest(".utterance-time");
      if (button) playFrom(state.utterances[Number(button.dataset.index)].offset);
    });
    $("export-form").addEventListener("submit", (event) => {
      event.preventDefault();
      exportPackage();
    });
    $("unmute").addEventListener("click", () => {
      const video = $("video");
      video.muted = !video.muted;
      state.sound = !video.muted;
    });
    wireVideo();
    window.addEventListener("hashchange", openFromHash);
  }

  function wireVideo() {
    const video = $("video");
    video.addEventListener("timeupdate", updatePosition);
    video.addEventListener("seeked", updatePosition);
    video.addEventListener("volumechange", updateMuteButton);
    video.addEventListener("playing", () => setPlayerState("playing"));
    video.addEventListener("pause", () => {
      if ($("player").dataset.state !== "loading") setPlayerState("paused");
    });
    video.addEventListener("ended", () => setPlayerState("ended"));
    video.addEventListener("error", () => {
      // A <video> without a source also reports an error; only a loaded clip's counts.
      if (!state.clip || !video.error) return;
      setPlayerState("error");
      showError(new Error(t("player.error", { code: video.error.code })));
    });
  }

  function start() {
    state.lang = initialLanguage();
    if (window.LW_OVERVIEW) {
      overview = window.LW_OVERVIEW({ t, labelOf, apiJson, handleError, clearError, setStatus });
    }
    if (window.LW_TIMELINE) timeline = window.LW_TIMELINE({ t, element, formatOffset, apiJson, openMoment });
    if (window.LW_CASES) {
      // What the cases view shares: the moment player (openMoment), the current moment
      // and search (what "add to case" keeps), downloads.
      cases = window.LW_CASES({
        t,
        api,
        apiJson,
        handleError,
        clearError,
        setStatus,
        element,
        formatOffset,
        formatClock,
        formatSize,
        saveBlob,
        fileNameOf,
        showView,
        openMoment,
        moment: () => state.moment,
        query: () => (state.search ? state.search.params.get("q") : ""),
      });
    }
    wire();
    applyLanguage();
    const saved = localStorage.getItem(KEY_STORE);
    if (saved) signIn(saved);
    else showSignIn();
  }

  start();
})();
