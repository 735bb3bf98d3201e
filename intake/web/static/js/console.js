// The call-taker console: the queue of calls and reports, the selected one in full, and the map.
// Everything arrives over the stream; a card appears the moment its call rings (call.ringing).
import { api, logout, whoAmI } from "./api.js";
import { applyStatic, t, toggleLang } from "./i18n.js";
import { IncidentMap } from "./map.js";
import { Stream } from "./stream.js";
import {
  ago, categoryChip, channelLabel, clock, el, highlighted, isImage, isTyping, lineLabel, replaceChildren, toast,
} from "./util.js";

// The keys follow Vietnam's lines: 4 = 114 fire, 3 = 113 police, 5 = 115 medical.
const AGENCY_KEYS = { Digit4: "fire", Digit3: "police", Digit5: "medical", Numpad4: "fire", Numpad3: "police", Numpad5: "medical" };
const AGENCY_ORDER = ["fire", "police", "medical"];
const AGENCY_KEY_LABEL = { fire: "4", police: "3", medical: "5" };

const state = {
  me: null,
  cards: new Map(), // report id → card
  selected: null,
  suggestion: 0, // index of the highlighted suggested incident
  map: null,
  busy: false,
};

function newCard(id) {
  return { id, report: null, pop: null, linkedid: null, finals: null, partial: "", seen: Date.now(), node: null, timer: null,
    offer: null };
}

// --- what a card says ---------------------------------------------------------------------------

function callState(card) {
  const call = card.report?.call || card.pop?.call;
  if (!call) return null;
  if (call.state === "hungup") return call.needs_callback ? "missed" : "hungup";
  if (call.state === "queued") return "queued";
  return call.state === "up" ? "up" : "ringing";
}

function callerOf(card) {
  const pop = card.pop?.caller;
  const r = card.report;
  return pop?.e164 || pop?.raw || r?.phone || r?.phone_raw || r?.reporter_name || r?.reporter_id || r?.device_id
    || t("caller.unknown");
}

function lineOf(card) {
  return card.pop?.line || card.report?.dialled_number || card.report?.call?.dialled_number || null;
}

function channelOf(card) {
  return card.report?.channel || (card.pop ? "call" : "other");
}

function textOf(card) {
  return card.finals ?? card.report?.text ?? "";
}

function locationOf(card) {
  return card.report?.location || card.pop?.last_location || null;
}

function confirmedCategory(report) {
  return Boolean(report?.classification?.evidence?.some((e) => e.source === "calltaker"));
}

function selectedCard() {
  return state.selected === null ? null : state.cards.get(state.selected) || null;
}

// --- the queue ----------------------------------------------------------------------------------

// The queue member whose phone rings for the call (call.offered; members are named after console users).
function ringsForMe(card) {
  return Boolean(card.offer?.ringing && state.me && card.offer.member === state.me.name);
}

function order(a, b) {
  const live = (c) => (ringsForMe(c) ? 0 : ["ringing", "queued", "up"].includes(callState(c)) ? 1 : 2);
  return live(a) - live(b) || b.id - a.id;
}

function renderCardNode(card) {
  const status = callState(card);
  const category = card.report?.category || "unknown";
  const node = card.node || el("li", { class: "card", tabindex: "0", onclick: () => select(card.id) });
  card.node = node;
  node.className = `card cat-${category}${status ? ` state-${status}` : ""}${ringsForMe(card) ? " for-me" : ""}`;
  node.dataset.reportId = String(card.id);
  if (card.linkedid) node.dataset.linkedid = card.linkedid;
  node.setAttribute("aria-selected", String(state.selected === card.id));
  const line = lineOf(card);
  const text = textOf(card) + (card.partial ? ` ${card.partial}` : "");
  replaceChildren(node,
    el("div", { class: "row" },
      el("span", { class: "badge" }, channelLabel(channelOf(card))),
      el("span", { class: "who" }, callerOf(card)),
      line ? el("span", { class: "badge" }, line) : null,
      el("span", { class: "when" }, clock(card.report?.received_at || card.pop?.call?.started_at))),
    el("div", { class: "row" },
      categoryChip(category),
      status ? el("span", { class: `badge state-${status}` }, t(`call.${status}`)) : null,
      ringsForMe(card) ? el("span", { class: "badge for-me", id: `for-me-${card.id}` }, t("call.forMe"))
        : card.offer?.ringing && card.offer.member ? el("span", { class: "badge" }, t("call.ringsAt", { who: card.offer.member }))
          : null,
      card.report?.incident_id ? el("span", { class: "badge" }, `#${card.report.incident_id}`) : null),
    text ? el("div", { class: "snippet" }, text) : null);
  return node;
}

// Puts the cards in order; only cards whose content changed are re-rendered (renderCardNode), so a busy
// queue costs one card's work per event, not the whole list's.
function placeQueue() {
  const list = document.getElementById("queue");
  const cards = [...state.cards.values()].sort(order);
  cards.forEach((card, i) => {
    const node = card.node || renderCardNode(card);
    node.setAttribute("aria-selected", String(state.selected === card.id));
    if (list.children[i] !== node) list.insertBefore(node, list.children[i] || null);
  });
  while (list.children.length > cards.length) list.lastElementChild.remove();
  document.getElementById("queue-empty").hidden = cards.length > 0;
}

function renderQueue() {
  for (const card of state.cards.values()) renderCardNode(card);
  placeQueue();
}

function select(id) {
  state.selected = id;
  state.suggestion = 0;
  placeQueue();
  renderDetail();
  const card = state.cards.get(id);
  if (card) {
    state.map.focus(locationOf(card));
    refresh(id);
  }
}

function move(step) {
  const cards = [...state.cards.values()].sort(order);
  if (!cards.length) return;
  const at = cards.findIndex((c) => c.id === state.selected);
  const next = cards[Math.min(cards.length - 1, Math.max(0, at + step))];
  select(next.id);
  next.node?.scrollIntoView({ block: "nearest" });
}

// --- the selected card ------------------------------------------------------------------------------

function section(title, ...children) {
  return el("section", {}, el("h2", {}, t(title)), ...children);
}

function key(label) {
  return el("kbd", {}, label);
}

function renderLocation(card) {
  const loc = locationOf(card);
  const body = loc
    ? el("p", { class: "location" },
      loc.label ? el("div", {}, loc.label) : null,
      el("div", {},
        el("span", { class: "src", id: "location-source", dataset: { source: loc.source } }, t(`src.${loc.source}`)),
        " · ", t("loc.accuracy", { m: Math.round(loc.accuracy_m || 0) }),
        " · ", `${loc.lat.toFixed(5)}, ${loc.lon.toFixed(5)}`))
    : el("p", { class: "muted" }, t("loc.none"));
  return section("section.location", body,
    el("div", { class: "actions" },
      el("button", { type: "button", id: "pick-location", onclick: pickLocation }, t("loc.pick"), key("L"))));
}

function renderCategory(card) {
  const r = card.report;
  const category = r?.category || "unknown";
  const confirmed = confirmedCategory(r);
  const line = confirmed
    ? t("cat.confirmed", { cat: t(`cat.${category}`) })
    : t("cat.suggested", { cat: t(`cat.${category}`), pct: Math.round((r?.confidence || 0) * 100) });
  // The words as the reporter said them (the classifier's terms are folded: "chay nha").
  const evidence = (r?.highlights || []).filter((h) => h.kind === "evidence")
    .map((h) => ({ category: h.category, term: r.text.slice(h.start, h.end) }));
  return section("section.category",
    el("p", { id: "category-state", dataset: { category, confirmed: String(confirmed) } }, categoryChip(category), " ", line),
    evidence.length ? el("p", { class: "muted" }, `${t("cat.evidence")}: `,
      evidence.map((e) => el("mark", { class: `hl-evidence cat-${e.category}` }, e.term)).flatMap((m) => [m, " "])) : null,
    el("div", { class: "actions cat-buttons", id: "category-buttons" },
      AGENCY_ORDER.map((c) => el("button", {
        type: "button", class: `cat-${c}`, dataset: { category: c }, "aria-pressed": String(confirmed && category === c),
        onclick: () => setCategory(c),
      }, t(`cat.${c}`), key(AGENCY_KEY_LABEL[c]))),
      el("button", { type: "button", id: "confirm-category", disabled: category === "unknown" || confirmed,
        onclick: () => setCategory(category) }, t("cat.confirm"), key("Enter"))));
}

function renderTranscript(card) {
  const box = document.getElementById("transcript");
  if (!box) return;
  const text = textOf(card);
  const spans = card.report && card.report.text === text ? card.report.highlights || [] : [];
  if (!text && !card.partial) {
    replaceChildren(box, el("span", { class: "muted" }, t("transcript.none")));
    return;
  }
  replaceChildren(box, highlighted(text, spans),
    card.partial ? el("span", { class: "partial" }, `${text ? " " : ""}${card.partial}`) : null);
}

function suggestionsOf(card) {
  if (card.report?.suggestions) return card.report.suggestions;
  return (card.pop?.nearby_incidents || []).filter((i) => i.id !== card.report?.incident_id);
}

function renderIncident(card) {
  const r = card.report;
  const incident = r?.incident;
  const suggestions = suggestionsOf(card);
  state.suggestion = Math.min(state.suggestion, Math.max(0, suggestions.length - 1));
  const current = incident
    ? el("p", { id: "current-incident", dataset: { incident: incident.id } }, categoryChip(incident.category), " ",
      t("incident.current", { id: incident.id, n: incident.report_count }))
    : el("p", { class: "muted", id: "current-incident" }, t("incident.none"));
  const items = suggestions.map((s, i) => el("li", {
    dataset: { incident: s.id }, "aria-selected": String(i === state.suggestion),
  },
  el("div", { class: "sg-main" },
    el("div", { class: "sg-line" },
      categoryChip(s.category),
      el("strong", {}, `#${s.id}`),
      s.why === "possible_duplicate" ? el("span", { class: "dup" }, t("incident.duplicate")) : null,
      s.distance_m !== null && s.distance_m !== undefined
        ? el("span", { class: "muted" }, t("incident.distance", { m: s.distance_m })) : null,
      el("span", { class: "muted" }, t("incident.reports", { n: s.report_count }))),
    el("div", { class: "summary", title: s.summary }, s.summary || s.location_label || "")),
  el("button", { type: "button", class: "primary attach", onclick: () => attach(s.id) },
    t("incident.attach", { id: s.id }), i === state.suggestion ? key("A") : null)));
  const alone = incident && incident.report_count <= 1;
  return section("section.incident", current,
    el("h2", {}, t("incident.suggested")),
    items.length ? el("ul", { class: "suggestions", id: "suggestions" }, items)
      : el("p", { class: "muted", id: "suggestions" }, t("incident.noSuggestions")),
    el("div", { class: "actions" },
      el("button", { type: "button", id: "new-incident", disabled: Boolean(alone) || !r, onclick: newIncident },
        t("incident.new"), key("N"))));
}

function renderCall(card) {
  if (channelOf(card) !== "call") return null;
  const status = callState(card);
  const live = status === "ringing" || status === "queued" || status === "up";
  const noCalls = !state.me.calls;
  const transferred = card.report?.call?.transferred_to;
  const attempts = card.report?.callbacks || [];
  const reason = status === "missed" ? card.report?.call?.callback_reason : null;
  return section("section.call",
    transferred ? el("p", {}, t("call.transferred", { agency: t(`cat.${transferred}`) })) : null,
    el("div", { class: "actions" },
      AGENCY_ORDER.map((a) => el("button", {
        type: "button", class: "transfer", dataset: { agency: a }, disabled: !live || noCalls, onclick: () => transfer(a),
      }, t("action.transfer", { agency: t(`cat.${a}`) }), key(`⇧${AGENCY_KEY_LABEL[a]}`))),
      el("button", { type: "button", id: "callback", disabled: live || noCalls || !card.linkedid, onclick: callBack },
        t("action.callback"), key("B")),
      el("button", { type: "button", id: "hangup", class: "danger", disabled: !live || noCalls, onclick: hangup },
        t("action.hangup"), key("H"))),
    reason ? el("p", { id: "callback-reason" }, t("call.reason", { reason })) : null,
    attempts.length ? el("ul", { class: "earlier", id: "callbacks" }, attempts.map(callbackLine)) : null);
}

// One call-back attempt as Asterisk reported it: when, to whom, how it ended (and Asterisk's cause).
function callbackLine(a) {
  const parts = [`${clock(a.at)} ${a.number || ""}: ${t(`callback.${a.outcome}`)}`];
  if (a.connected_to) parts.push(t("callback.connectedTo", { who: a.connected_to }));
  if (a.cause_text && a.outcome !== "answered") parts.push(`(${a.cause_text})`);
  return el("li", { class: `callback callback-${a.outcome.replace(" ", "-")}`, dataset: { outcome: a.outcome } },
    parts.join(" · "));
}

function renderCaller(card) {
  const pop = card.pop;
  if (!pop) return null;
  const facility = pop.facility;
  const earlier = pop.earlier_reports || [];
  return section("section.caller",
    facility ? el("div", { id: "facility" }, el("strong", {}, `${t("caller.facility")}: `), facility.name, " — ", facility.address,
      facility.contact_name ? ` (${facility.contact_name} ${facility.contact_phone || ""})` : "") : null,
    el("div", {}, el("strong", {}, t("caller.earlier"))),
    earlier.length
      ? el("ol", { class: "earlier", id: "earlier" }, earlier.map((r) => el("li", {},
        `${clock(r.received_at)} · ${channelLabel(r.channel)} · `, categoryChip(r.category), ` ${r.text || ""}`)))
      : el("p", { class: "muted" }, t("caller.noEarlier")));
}

function renderPhotos(card) {
  // Every photo comes through our server (GET /api/v1/reports/{id}/attachments/{index}): it fetches
  // Telegram files with its own token and keeps a copy, so the console needs no internet.
  const report = card.report;
  const photos = (report?.attachments || []).map((a, index) => ({ a, index })).filter(({ a }) => isImage(a));
  if (!photos.length) return null;
  return section("section.photos", el("div", { class: "photos" }, photos.map(({ a, index }) => {
    const src = `/api/v1/reports/${report.id}/attachments/${index}`;
    return el("a", { href: src, target: "_blank", rel: "noreferrer noopener" },
      el("img", { src, alt: a.description || a.caption || "", loading: "lazy", referrerpolicy: "no-referrer" }));
  })));
}

function renderNote(card) {
  const disabled = !card.report?.incident_id;
  return section("section.note",
    el("form", { class: "note-form", onsubmit: (e) => { e.preventDefault(); addNote(); } },
      el("input", { id: "note-input", maxlength: "5000", disabled, "aria-label": t("action.note") }),
      el("button", { type: "submit", disabled }, t("action.note"), key("G"))));
}

function renderDetail() {
  const box = document.getElementById("detail");
  const card = selectedCard();
  if (!card) {
    replaceChildren(box, el("p", { class: "muted" }, t("detail.empty")));
    state.map.showSubject(null);
    state.map.showIncidents([]);
    return;
  }
  const focused = document.activeElement?.id === "note-input";
  const draft = document.getElementById("note-input")?.value || "";
  const status = callState(card);
  const line = lineOf(card);
  replaceChildren(box,
    el("header", { class: "pop", id: "pop", dataset: { reportId: card.id, linkedid: card.linkedid || "" } },
      el("span", { class: "number", id: "detail-number" }, callerOf(card)),
      line ? el("span", { class: "badge", id: "detail-line" }, lineLabel(line)) : null,
      el("span", { class: "badge" }, channelLabel(channelOf(card))),
      status ? el("span", { class: `badge state-${status}`, id: "call-state" }, t(`call.${status}`)) : null,
      el("span", { class: "muted" }, ago(card.report?.received_at || card.pop?.call?.started_at))),
    renderLocation(card),
    renderCategory(card),
    section("section.transcript", el("div", { class: "transcript", id: "transcript" })),
    renderIncident(card),
    renderCall(card),
    renderPhotos(card),
    renderCaller(card),
    renderNote(card));
  renderTranscript(card);
  const note = document.getElementById("note-input");
  if (note) {
    note.value = draft;
    if (focused) note.focus();
  }
  renderMap(card);
}

function renderMap(card) {
  const loc = locationOf(card);
  state.map.showSubject(loc);
  const suggestions = suggestionsOf(card);
  const shown = [...suggestions];
  const own = card.report?.incident;
  if (own && !shown.some((i) => i.id === own.id)) shown.push(own);
  const duplicates = new Set(suggestions.filter((s) => s.why === "possible_duplicate").map((s) => s.id));
  const chosen = suggestions[state.suggestion]?.id ?? null;
  state.map.showIncidents(shown, { highlight: duplicates, selected: chosen, onClick: (id) => {
    const at = suggestions.findIndex((s) => s.id === id);
    if (at >= 0) {
      state.suggestion = at;
      renderDetail();
    }
  } });
}

// --- data ------------------------------------------------------------------------------------------

async function refresh(id) {
  const card = state.cards.get(id);
  if (!card) return;
  try {
    card.report = await api.get(`/api/v1/reports/${id}`);
  } catch (err) {
    if (err.status !== 404) toast(t("error", { detail: err.message }), "error");
    return;
  }
  if (card.finals !== null && card.report.text.length >= card.finals.length) card.finals = null;
  card.linkedid = card.linkedid || card.report.linkedid || null;
  renderCardNode(card);
  placeQueue();
  if (state.selected === id) renderDetail();
}

// Events about one report come in bursts (a call is answered, its audio starts, it ends): one read for a burst.
function scheduleRefresh(id, wait = null) {
  const card = state.cards.get(id);
  if (!card) return;
  if (wait === null) wait = state.selected === id ? 120 : 400;
  clearTimeout(card.timer);
  card.timer = setTimeout(() => refresh(id), wait);
}

function onRinging(data) {
  const id = data.report_id;
  const card = state.cards.get(id) || newCard(id);
  card.pop = data;
  card.linkedid = data.call?.linkedid || card.linkedid;
  state.cards.set(id, card);
  renderCardNode(card);
  placeQueue();
  if (state.selected === null) select(id);
  else if (state.selected === id) renderDetail();
  scheduleRefresh(id, 0);
}

function onTranscript(data) {
  const id = data.report_id;
  let card = state.cards.get(id);
  if (!card) {
    card = newCard(id);
    state.cards.set(id, card);
    scheduleRefresh(id, 0);
  }
  if (data.final) {
    card.finals = data.text;
    card.partial = "";
  } else {
    card.partial = data.segment || "";
    const before = data.text.slice(0, Math.max(0, data.text.length - card.partial.length)).trim();
    if (card.finals === null && before) card.finals = before;
  }
  const placed = Boolean(card.node);
  renderCardNode(card);
  if (!placed) placeQueue();
  if (state.selected === id) renderTranscript(card);
}

function onIncidentEvent(event) {
  const data = event.data || {};
  const reportId = event.report_id ?? data.report?.id ?? null;
  if (reportId !== null) {
    if (!state.cards.has(reportId)) {
      state.cards.set(reportId, newCard(reportId)); // a report from another door joins the queue
    }
    scheduleRefresh(reportId);
  }
  // Other reports of the incident: the one on screen is read again (its incident changed); the others only
  // when a merge or a split moved them, so a big incident's events do not make every one of its cards re-read.
  const moved = event.kind === "incident.merged" || event.kind === "incident.split" || event.kind === "incident.opened";
  const touched = new Set([event.incident_id, data.into, data.split_from].filter((x) => x !== undefined && x !== null));
  for (const card of state.cards.values()) {
    if (card.id === reportId || !card.report || !touched.has(card.report.incident_id)) continue;
    if (moved || card.id === state.selected) scheduleRefresh(card.id);
  }
}

function onOffered(data) {
  const card = state.cards.get(data.report_id);
  if (!card) return;
  card.offer = data;
  renderCardNode(card);
  placeQueue();
  // A call ringing on this call-taker's phone comes to the front of the screen, unless they are busy
  // with another live call.
  const current = selectedCard();
  if (ringsForMe(card) && (!current || callState(current) !== "up")) select(card.id);
}

function onEvent(event) {
  if (event.kind === "call.offered") onOffered(event.data);
  else if (event.kind === "call.ringing") onRinging(event.data);
  else if (event.kind === "call.transcript") onTranscript(event.data);
  else if (event.kind === "call.updated" || event.kind === "call.callback") {
    if (event.report_id !== null && state.cards.has(event.report_id)) scheduleRefresh(event.report_id);
  }
  else if (event.kind.startsWith("incident.")) onIncidentEvent(event);
}

// --- actions ---------------------------------------------------------------------------------------

async function act(run, message = null) {
  if (state.busy) return null;
  state.busy = true;
  try {
    const result = await run();
    if (message) toast(message);
    return result;
  } catch (err) {
    toast(t("error", { detail: err.message }), "error");
    return null;
  } finally {
    state.busy = false;
  }
}

async function reportAction(path, body) {
  const card = selectedCard();
  if (!card) return;
  const result = await act(() => api.post(`/api/v1/reports/${card.id}/${path}`, body));
  if (result) {
    card.report = result;
    card.finals = null;
    renderCardNode(card);
    placeQueue();
    renderDetail();
  }
}

const setCategory = (category) => reportAction("category", { category });
const newIncident = () => reportAction("new-incident", {});

function attach(incidentId) {
  return reportAction("attach", { incident_id: incidentId });
}

function pickLocation() {
  const card = selectedCard();
  if (!card) return;
  document.getElementById("pick-hint").hidden = false;
  state.map.setPicking((lat, lon) => {
    document.getElementById("pick-hint").hidden = true;
    reportAction("location", { lat, lon });
  });
}

function cancelPick() {
  state.map.setPicking(null);
  document.getElementById("pick-hint").hidden = true;
}

async function callAction(path, body = {}) {
  const card = selectedCard();
  if (!card?.linkedid && !card?.report?.call?.linkedid) return;
  const linkedid = card.linkedid || card.report.call.linkedid;
  await act(() => api.post(`/api/v1/calls/${encodeURIComponent(linkedid)}/${path}`, body), t("action.done"));
  scheduleRefresh(card.id, 0);
}

const transfer = (agency) => callAction("transfer", { agency });
const callBack = () => callAction("callback");
const hangup = () => callAction("hangup");

async function addNote() {
  const card = selectedCard();
  const input = document.getElementById("note-input");
  const text = input?.value.trim();
  if (!card?.report?.incident_id || !text) return;
  const done = await act(() => api.post(`/api/v1/incidents/${card.report.incident_id}/notes`, { text }), t("action.noteSaved"));
  if (done) {
    input.value = "";
    input.blur();
  }
}

// --- keys --------------------------------------------------------------------------------------------

function onKey(event) {
  if (event.key === "Escape") {
    cancelPick();
    document.getElementById("help").hidden = true;
    if (document.activeElement instanceof HTMLElement) document.activeElement.blur();
    return;
  }
  if (isTyping(event) || event.ctrlKey || event.metaKey || event.altKey) return;
  const card = selectedCard();
  const lower = event.key.toLowerCase();
  let handled = true;
  if (event.key === "?") document.getElementById("help").hidden = !document.getElementById("help").hidden;
  else if (lower === "j") move(1);
  else if (lower === "k") move(-1);
  else if (!card) handled = false;
  else if (AGENCY_KEYS[event.code] && event.shiftKey) transfer(AGENCY_KEYS[event.code]);
  else if (AGENCY_KEYS[event.code]) setCategory(AGENCY_KEYS[event.code]);
  else if (event.key === "Enter" && card.report && card.report.category !== "unknown") setCategory(card.report.category);
  else if (event.key === "ArrowDown" || event.key === "ArrowUp") {
    const n = suggestionsOf(card).length;
    if (n) {
      state.suggestion = (state.suggestion + (event.key === "ArrowDown" ? 1 : n - 1)) % n;
      renderDetail();
    }
  } else if (lower === "a") {
    const target = suggestionsOf(card)[state.suggestion];
    if (target) attach(target.id);
  } else if (lower === "n") newIncident();
  else if (lower === "l") pickLocation();
  else if (lower === "b") callBack();
  else if (lower === "h") hangup();
  else if (lower === "g") document.getElementById("note-input")?.focus();
  else handled = false;
  if (handled) event.preventDefault();
}

// --- start -----------------------------------------------------------------------------------------

async function main() {
  applyStatic();
  state.me = await whoAmI();
  if (!["calltaker", "admin"].includes(state.me.role)) {
    window.location.assign("/board");
    return;
  }
  document.getElementById("user").textContent = state.me.name;
  document.getElementById("lang").addEventListener("click", () => {
    toggleLang();
    renderQueue();
    renderDetail();
  });
  document.getElementById("logout").addEventListener("click", logout);
  document.addEventListener("keydown", onKey);
  state.map = new IncidentMap(document.getElementById("map"), state.me.map);
  const conn = document.getElementById("conn");
  const stream = new Stream({
    onEvent,
    onState: (s) => {
      conn.dataset.state = s;
      conn.textContent = t(`conn.${s}`);
      document.body.dataset.stream = s;
    },
  });
  stream.start();
  const page = await api.get("/api/v1/reports?limit=40");
  for (const report of page.items) {
    if (state.cards.has(report.id)) continue;
    const card = newCard(report.id);
    card.report = report;
    card.linkedid = report.linkedid || null;
    state.cards.set(report.id, card);
  }
  renderQueue();
  document.body.dataset.ready = "true";
}

main().catch((err) => toast(t("error", { detail: err.message }), "error"));
