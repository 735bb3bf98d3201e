// The dispatch board: one agency's open incidents (highest priority, then newest, first), the map, and the
// selected incident's timeline. Actions go through the same queue API dispatch systems use.
import { api, logout, whoAmI } from "./api.js";
import { applyStatic, t, toggleLang } from "./i18n.js";
import { IncidentMap } from "./map.js";
import { Stream } from "./stream.js";
import { ago, categoryChip, channelLabel, clock, el, highlighted, isTyping, replaceChildren, toast } from "./util.js";

const ACTIVE = new Set(["open", "acknowledged"]);

const state = {
  me: null,
  agency: null,
  incidents: new Map(),
  selected: null,
  detail: null,
  checked: new Set(), // reports ticked for a split
  map: null,
  busy: false,
};

function can(...roles) {
  return state.me.role === "admin" || roles.includes(state.me.role);
}

function sorted() {
  return [...state.incidents.values()].sort((a, b) => a.priority - b.priority
    || Date.parse(b.last_report_at) - Date.parse(a.last_report_at) || b.id - a.id);
}

// --- tabs and list ----------------------------------------------------------------------------------

function renderTabs() {
  const agencies = state.me.role === "dispatcher" ? [state.me.agency] : [...state.me.agencies, "unknown"];
  replaceChildren(document.getElementById("agencies"), agencies.map((a) => el("button", {
    type: "button", role: "tab", "aria-selected": String(a === state.agency), dataset: { agency: a },
    onclick: () => showAgency(a),
  }, t(`cat.${a}`))));
}

async function showAgency(agency) {
  state.agency = agency;
  state.selected = null;
  state.detail = null;
  renderTabs();
  const page = await api.get(`/api/v1/incidents?category=${agency}&limit=200`);
  state.incidents = new Map(page.items.map((i) => [i.id, i]));
  renderList();
  renderTimeline();
  state.map.fitIncidents(page.items);
}

function renderList() {
  const list = document.getElementById("incidents");
  const items = sorted();
  replaceChildren(list, items.map((i) => el("li", {
    class: `card cat-${i.category}`, tabindex: "0", dataset: { incidentId: i.id }, "aria-selected": String(i.id === state.selected),
    onclick: () => select(i.id),
  },
  el("div", { class: "row" },
    el("span", { class: "who" }, `#${i.id}`),
    el("span", { class: "badge" }, t("priority", { p: i.priority })),
    el("span", { class: "badge" }, t(`status.${i.status}`)),
    el("span", { class: "badge report-count", dataset: { count: i.report_count } }, t("incident.reports", { n: i.report_count })),
    el("span", { class: "when" }, ago(i.last_report_at))),
  el("div", { class: "snippet" }, i.summary || ""),
  i.location_label ? el("div", { class: "snippet" }, i.location_label) : null,
  i.lease ? el("div", { class: "snippet" }, t("board.claimedBy", { who: i.lease.holder })) : null)));
  document.getElementById("incidents-empty").hidden = items.length > 0;
  state.map.showIncidents(items, { selected: state.selected, onClick: select });
}

async function select(id) {
  if (state.selected !== id) state.checked.clear();
  state.selected = id;
  renderList();
  try {
    state.detail = await api.get(`/api/v1/incidents/${id}`);
  } catch (err) {
    toast(t("error", { detail: err.message }), "error");
    return;
  }
  renderTimeline();
  const d = state.detail;
  if (d.lat !== null) state.map.focus({ lat: d.lat, lon: d.lon, accuracy_m: d.accuracy_m || 100 });
}

function move(step) {
  const items = sorted();
  if (!items.length) return;
  const at = items.findIndex((i) => i.id === state.selected);
  select(items[Math.min(items.length - 1, Math.max(0, at + step))].id);
}

// --- the selected incident --------------------------------------------------------------------------

function key(label) {
  return el("kbd", {}, label);
}

function eventText(e) {
  const d = e.data || {};
  if (e.kind === "note") return d.text;
  if (e.kind === "category_changed") return `${t(`cat.${d.from}`)} → ${t(`cat.${d.to}`)}`;
  if (e.kind === "closed") return d.reason || "";
  if (e.kind === "merged_into" || e.kind === "split") return `#${d.into}`;
  if (e.kind === "merged_from" || e.kind === "split_from") return `#${d.from}`;
  if (e.kind === "report_attached" || e.kind === "opened") return d.channel ? channelLabel(d.channel) : "";
  return "";
}

function renderTimeline() {
  const box = document.getElementById("timeline");
  const d = state.detail;
  if (!d) {
    replaceChildren(box, el("p", { class: "muted" }, t("board.select")));
    return;
  }
  const active = ACTIVE.has(d.status);
  const mine = d.lease && d.lease.holder === state.me.name;
  const others = sorted().filter((i) => i.id !== d.id);
  const entries = [
    ...d.reports.map((r) => ({ at: r.received_at, report: r })),
    ...d.events.map((e) => ({ at: e.at, event: e })),
  ].sort((a, b) => Date.parse(a.at) - Date.parse(b.at));
  replaceChildren(box,
    el("header", { class: "pop", id: "incident-header", dataset: { incidentId: d.id } },
      el("span", { class: "number" }, `#${d.id}`), categoryChip(d.category),
      el("span", { class: "badge" }, t(`status.${d.status}`)), el("span", { class: "badge" }, t("priority", { p: d.priority })),
      el("span", { class: "badge", id: "report-count", dataset: { count: d.report_count } }, t("incident.reports", { n: d.report_count })),
      d.lease ? el("span", { class: "badge" }, t("board.claimedBy", { who: d.lease.holder })) : null),
    el("p", {}, d.summary || ""),
    d.location_label ? el("p", { class: "muted" }, `${d.location_label} · ${t(`src.${d.location_source || "unknown"}`)}`) : null,
    el("div", { class: "actions" },
      el("button", { type: "button", id: "claim", disabled: !active, onclick: () => action("claim") }, t("board.claim"), key("C")),
      el("button", { type: "button", id: "release", disabled: !d.lease, onclick: () => action("release") }, t("board.release"), key("R")),
      can("dispatcher") ? el("button", { type: "button", id: "ack", disabled: d.status !== "open", onclick: () => action("ack") },
        t("board.ack"), key("A")) : null),
    el("form", { class: "inline-form", onsubmit: (e) => { e.preventDefault(); closeIncident(); } },
      el("input", { id: "close-reason", placeholder: t("board.closeReason"), maxlength: "2000", disabled: !active }),
      el("button", { type: "submit", class: "danger", disabled: !active || (d.lease && !mine) }, t("board.close"), key("X"))),
    can("calltaker") ? el("form", { class: "inline-form", onsubmit: (e) => { e.preventDefault(); mergeIncident(); } },
      el("label", { for: "merge-target" }, t("board.merge")),
      el("select", { id: "merge-target", disabled: !active },
        el("option", { value: "" }, t("board.mergeTarget")),
        others.map((i) => el("option", { value: i.id }, `#${i.id} ${i.summary.slice(0, 40)}`))),
      el("button", { type: "submit", disabled: !active }, t("board.merge"), key("M"))) : null,
    el("h2", {}, t("board.timeline")),
    el("ol", { class: "timeline", id: "timeline-list" }, entries.map((entry) => (entry.report
      ? el("li", { class: "report", dataset: { reportId: entry.report.id } },
        el("label", {},
          can("calltaker") ? el("input", { type: "checkbox", checked: state.checked.has(entry.report.id), onchange: (ev) => {
            if (ev.target.checked) state.checked.add(entry.report.id); else state.checked.delete(entry.report.id);
            document.getElementById("split").disabled = state.checked.size === 0;
          } }) : null,
          el("span", {}, el("strong", {}, channelLabel(entry.report.channel)), " ", categoryChip(entry.report.category), " ",
            entry.report.phone || entry.report.reporter_name || "")),
        el("div", { class: "meta" }, clock(entry.at), entry.report.location
          ? ` · ${t(`src.${entry.report.location.source}`)} ±${Math.round(entry.report.location.accuracy_m)} m` : ""),
        entry.report.text ? el("div", {}, highlighted(entry.report.text, [])) : null)
      : el("li", { class: "event", dataset: { kind: entry.event.kind } },
        el("div", {}, el("strong", {}, t(`event.${entry.event.kind}`)), " ", eventText(entry.event)),
        el("div", { class: "meta" }, `${clock(entry.at)} · ${entry.event.actor}`))))),
    can("calltaker") ? el("div", { class: "actions" },
      el("button", { type: "button", id: "split", disabled: state.checked.size === 0, onclick: splitReports }, t("board.split"), key("S")))
      : null,
    el("form", { class: "note-form", onsubmit: (e) => { e.preventDefault(); addNote(); } },
      el("input", { id: "note-input", maxlength: "5000", "aria-label": t("action.note") }),
      el("button", { type: "submit" }, t("action.note"), key("G"))));
}

// --- actions -----------------------------------------------------------------------------------------

async function post(path, body = {}) {
  if (state.busy) return null;
  state.busy = true;
  try {
    return await api.post(path, body);
  } catch (err) {
    toast(t("error", { detail: err.message }), "error");
    return null;
  } finally {
    state.busy = false;
  }
}

async function action(name, body = {}) {
  if (!state.selected) return;
  const result = await post(`/api/v1/incidents/${state.selected}/${name}`, body);
  if (result) {
    upsert(result);
    await select(state.selected);
  }
}

function closeIncident() {
  const reason = document.getElementById("close-reason")?.value.trim() || "";
  return action("close", { reason });
}

function mergeIncident() {
  const into = Number(document.getElementById("merge-target")?.value);
  if (into) action("merge", { into });
}

async function splitReports() {
  if (!state.selected || !state.checked.size) return;
  const result = await post(`/api/v1/incidents/${state.selected}/split`, { report_ids: [...state.checked] });
  if (result) {
    state.checked.clear();
    upsert(result);
    await select(state.selected);
  }
}

async function addNote() {
  const input = document.getElementById("note-input");
  const text = input?.value.trim();
  if (!state.selected || !text) return;
  if (await post(`/api/v1/incidents/${state.selected}/notes`, { text })) {
    toast(t("action.noteSaved"));
    await select(state.selected);
  }
}

// --- the stream --------------------------------------------------------------------------------------

function upsert(incident) {
  if (incident.category === state.agency && ACTIVE.has(incident.status)) state.incidents.set(incident.id, incident);
  else state.incidents.delete(incident.id);
}

async function onEvent(event) {
  if (!event.kind.startsWith("incident.")) return;
  const data = event.data || {};
  if (data.incident) upsert(data.incident);
  // A merge or a split changes a second incident that the event does not carry: read it.
  for (const other of [data.into, data.split_from]) {
    if (typeof other === "number") {
      try {
        upsert(await api.get(`/api/v1/incidents/${other}`));
      } catch {
        // gone or not ours: the next event will tell
      }
    }
  }
  renderList();
  const touched = [event.incident_id, data.into, data.split_from];
  if (state.selected !== null && touched.includes(state.selected)) {
    if (state.incidents.has(state.selected)) await select(state.selected);
    else {
      state.selected = null;
      state.detail = null;
      renderTimeline();
    }
  }
}

function onKey(event) {
  if (event.key === "Escape") {
    document.getElementById("help").hidden = true;
    if (document.activeElement instanceof HTMLElement) document.activeElement.blur();
    return;
  }
  if (isTyping(event) || event.ctrlKey || event.metaKey || event.altKey) return;
  const lower = event.key.toLowerCase();
  let handled = true;
  if (event.key === "?") document.getElementById("help").hidden = !document.getElementById("help").hidden;
  else if (lower === "j") move(1);
  else if (lower === "k") move(-1);
  else if (!state.selected) handled = false;
  else if (lower === "c") action("claim");
  else if (lower === "r") action("release");
  else if (lower === "a" && can("dispatcher")) action("ack");
  else if (lower === "x") document.getElementById("close-reason")?.focus();
  else if (lower === "m") document.getElementById("merge-target")?.focus();
  else if (lower === "s") splitReports();
  else if (lower === "g") document.getElementById("note-input")?.focus();
  else handled = false;
  if (handled) event.preventDefault();
}

async function main() {
  applyStatic();
  state.me = await whoAmI();
  document.getElementById("user").textContent = state.me.name + (state.me.agency ? ` (${t(`cat.${state.me.agency}`)})` : "");
  document.getElementById("to-console").hidden = !can("calltaker");
  document.getElementById("lang").addEventListener("click", () => {
    toggleLang();
    renderTabs();
    renderList();
    renderTimeline();
  });
  document.getElementById("logout").addEventListener("click", logout);
  document.addEventListener("keydown", onKey);
  state.map = new IncidentMap(document.getElementById("map"), state.me.map);
  const conn = document.getElementById("conn");
  new Stream({
    onEvent: (e) => onEvent(e).catch((err) => toast(t("error", { detail: err.message }), "error")),
    onState: (s) => {
      conn.dataset.state = s;
      conn.textContent = t(`conn.${s}`);
      document.body.dataset.stream = s;
    },
  }).start();
  const agency = new URLSearchParams(window.location.search).get("agency");
  const first = state.me.role === "dispatcher" ? state.me.agency : (state.me.agencies.includes(agency) ? agency : "fire");
  await showAgency(first);
  setInterval(renderList, 15000);
  document.body.dataset.ready = "true";
}

main().catch((err) => toast(t("error", { detail: err.message }), "error"));
