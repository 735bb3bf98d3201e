// Small DOM and formatting helpers shared by the console and the board.
import { t } from "./i18n.js";

// el("div", {class: "x", dataset: {id: 1}, onclick: f}, child, "text", ...)
export function el(tag, attrs = {}, ...children) {
  const node = document.createElement(tag);
  for (const [key, value] of Object.entries(attrs)) {
    if (value === null || value === undefined || value === false) continue;
    if (key === "class") node.className = value;
    else if (key === "dataset") Object.assign(node.dataset, value);
    else if (key.startsWith("on")) node.addEventListener(key.slice(2), value);
    else if (value === true) node.setAttribute(key, "");
    else node.setAttribute(key, String(value));
  }
  append(node, children);
  return node;
}

function append(node, children) {
  for (const child of children.flat()) {
    if (child === null || child === undefined || child === false) continue;
    node.append(child instanceof Node ? child : document.createTextNode(String(child)));
  }
}

export function replaceChildren(node, ...children) {
  node.replaceChildren();
  append(node, children);
}

export function ago(iso, now = Date.now()) {
  if (!iso) return "";
  const s = Math.max(0, Math.round((now - Date.parse(iso)) / 1000));
  if (s < 90) return t("ago.s", { n: s });
  if (s < 5400) return t("ago.m", { n: Math.round(s / 60) });
  return t("ago.h", { n: Math.round(s / 3600) });
}

export function clock(iso) {
  if (!iso) return "";
  return new Date(iso).toLocaleTimeString([], { hour: "2-digit", minute: "2-digit", second: "2-digit" });
}

export function channelLabel(channel) {
  const key = `channel.${channel}`;
  const text = t(key);
  return text === key ? channel : text;
}

export function lineLabel(line) {
  if (!line) return "";
  const key = `line.${line}`;
  const text = t(key);
  return text === key ? line : text;
}

export function categoryChip(category, extra = "") {
  return el("span", { class: `chip cat-${category || "unknown"} ${extra}` }, t(`cat.${category || "unknown"}`));
}

// Text with spans marked: highlights [{start, end, kind, category}] from the server (offsets in `text`).
export function highlighted(text, spans = []) {
  const out = [];
  let at = 0;
  for (const s of spans) {
    if (s.start < at || s.end > text.length) continue;
    if (s.start > at) out.push(text.slice(at, s.start));
    const cls = s.kind === "address" ? "hl-address" : s.kind === "negated" ? "hl-negated" : `hl-evidence cat-${s.category}`;
    out.push(el("mark", { class: cls, title: s.term || "" }, text.slice(s.start, s.end)));
    at = s.end;
  }
  if (at < text.length) out.push(text.slice(at));
  return out;
}

let toastTimer = null;
export function toast(message, kind = "info") {
  const box = document.getElementById("toast");
  if (!box) return;
  box.textContent = message;
  box.className = `toast show ${kind}`;
  clearTimeout(toastTimer);
  toastTimer = setTimeout(() => { box.className = "toast"; }, kind === "error" ? 8000 : 3000);
}

export function isTyping(event) {
  const target = event.target;
  return target instanceof HTMLElement && (target.isContentEditable || ["INPUT", "TEXTAREA", "SELECT"].includes(target.tagName));
}

export function isImage(attachment) {
  const type = String(attachment.type || attachment.mime_type || "").toLowerCase();
  return type === "photo" || type === "image" || type.startsWith("image/");
}
