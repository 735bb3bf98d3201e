import { applyStatic, t, toggleLang } from "./i18n.js";

applyStatic();
document.getElementById("lang").addEventListener("click", toggleLang);

const form = document.getElementById("login");
const error = document.getElementById("login-error");
const nameInput = document.getElementById("name");
const passwordInput = document.getElementById("password");
const csrf = document.querySelector('meta[name="login-csrf"]').content;

form.addEventListener("submit", async (event) => {
  event.preventDefault();
  error.textContent = "";
  const next = new URLSearchParams(window.location.search).get("next") || "";
  const resp = await fetch("/auth/login", {
    method: "POST",
    credentials: "same-origin",
    headers: { "Content-Type": "application/json", "X-CSRF-Token": csrf },
    body: JSON.stringify({ name: nameInput.value, password: passwordInput.value, next }),
  });
  if (resp.ok) {
    const body = await resp.json();
    window.location.assign(body.next);
    return;
  }
  let detail = "";
  try {
    detail = (await resp.json()).detail || "";
  } catch {
    detail = "";
  }
  error.textContent = resp.status === 400 ? detail
    : t(resp.status === 403 ? "login.expired" : resp.status === 429 ? "login.throttled" : "login.failed");
  passwordInput.value = "";
  passwordInput.focus();
});
