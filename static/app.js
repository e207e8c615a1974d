// The dashboard's entry point: login, the shell, and a router by location hash
// (#/data/<table>, #/functions/<path>, #/logs, #/schedules, #/files, #/settings).

import * as api from "./api.js";
import { errorBox, fill, loading } from "./ui.js";
import * as data from "./pages/data.js";
import * as files from "./pages/files.js";
import * as functions from "./pages/functions.js";
import * as logs from "./pages/logs.js";
import * as schedules from "./pages/schedules.js";
import * as settings from "./pages/settings.js";

const PAGES = { data, functions, logs, schedules, files, settings };
const DEFAULT_PAGE = "data";

const $ = (id) => document.getElementById(id);
let cleanup = null;
let renderToken = 0;

function showLogin(message) {
  stopPage();
  $("shell").hidden = true;
  $("login").hidden = false;
  const error = $("login-error");
  error.hidden = !message;
  error.textContent = message || "";
  $("admin-key").value = "";
  $("admin-key").focus();
}

function showShell() {
  $("login").hidden = true;
  $("shell").hidden = false;
  api
    .get("/instance_name", { as: "text" })
    .then((name) => {
      $("instance-name").textContent = name;
    })
    .catch(() => {});
}

function stopPage() {
  if (cleanup) {
    try {
      cleanup();
    } catch {
      // A page that fails to clean up must not stop navigation.
    }
  }
  cleanup = null;
}

function parseHash() {
  const parts = location.hash.replace(/^#\/?/, "").split("/").map(decodeURIComponent);
  const page = PAGES[parts[0]] ? parts[0] : DEFAULT_PAGE;
  return { page, args: PAGES[parts[0]] ? parts.slice(1).filter(Boolean) : [] };
}

async function route() {
  if (!api.adminKey()) {
    showLogin();
    return;
  }
  stopPage();
  const { page, args } = parseHash();
  for (const link of document.querySelectorAll("#nav a")) {
    if (link.dataset.page === page) link.setAttribute("aria-current", "page");
    else link.removeAttribute("aria-current");
  }
  closeMenu();
  const view = $("view");
  view.dataset.page = page;
  fill(view, loading());
  const token = ++renderToken;
  try {
    const result = await PAGES[page].render(view, args);
    if (token !== renderToken) {
      // Navigated away while this page was loading.
      if (typeof result === "function") result();
      return;
    }
    cleanup = typeof result === "function" ? result : null;
  } catch (e) {
    if (token === renderToken && e.name !== "AbortError") fill(view, errorBox(e));
  }
}

function closeMenu() {
  $("nav").classList.remove("open");
  $("menu-toggle").setAttribute("aria-expanded", "false");
}

async function login(event) {
  event.preventDefault();
  const key = $("admin-key").value.trim();
  const button = $("login-submit");
  if (!key) return;
  button.disabled = true;
  try {
    await api.post("/api/check_admin_key", undefined, { key });
    api.setAdminKey(key);
    showShell();
    if (!location.hash) history.replaceState(null, "", `#/${DEFAULT_PAGE}`);
    await route();
  } catch (e) {
    const refused = e.status === 401 || e.status === 403;
    showLogin(refused ? "That admin key was refused by this deployment." : e.message);
  } finally {
    button.disabled = false;
  }
}

function logout() {
  api.clearAdminKey();
  showLogin();
}

function start() {
  api.setUnauthorizedHandler(() => {
    api.clearAdminKey();
    showLogin("Your admin key is no longer accepted. Log in again.");
  });
  $("login-form").addEventListener("submit", login);
  $("logout").addEventListener("click", logout);
  $("menu-toggle").addEventListener("click", () => {
    const open = $("nav").classList.toggle("open");
    $("menu-toggle").setAttribute("aria-expanded", String(open));
  });
  window.addEventListener("hashchange", () => {
    if (api.adminKey()) route();
  });
  if (api.adminKey()) {
    showShell();
    route();
  } else {
    showLogin();
  }
}

start();
