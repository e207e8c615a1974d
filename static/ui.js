// Small DOM helpers shared by the pages. Everything is built with
// createElement/textContent: no HTML strings, so data can never become markup.

/** h("button", {class: "primary", onclick: f}, "Save") → an element. */
export function h(tag, attrs = {}, ...children) {
  const el = document.createElement(tag);
  for (const [name, value] of Object.entries(attrs || {})) {
    if (value === undefined || value === null || value === false) continue;
    if (name.startsWith("on") && typeof value === "function") {
      el.addEventListener(name.slice(2), value);
    } else if (name === "class") {
      el.className = value;
    } else if (name === "dataset") {
      Object.assign(el.dataset, value);
    } else if (name in el && typeof value !== "string") {
      el[name] = value;
    } else {
      el.setAttribute(name, value === true ? "" : String(value));
    }
  }
  append(el, children);
  return el;
}

function append(el, children) {
  for (const child of children.flat(Infinity)) {
    if (child === undefined || child === null || child === false) continue;
    el.append(child instanceof Node ? child : document.createTextNode(String(child)));
  }
}

/** Replace the element's children. */
export function fill(el, ...children) {
  el.replaceChildren();
  append(el, children);
  return el;
}

/** A page heading with optional actions on the right. */
export function pageHeader(title, ...actions) {
  return h("div", { class: "page-header" }, h("h1", {}, title), h("div", { class: "actions" }, actions));
}

/** A table inside a horizontally scrolling wrapper; rows are arrays of cells. */
export function table(columns, rows, { rowAttrs, empty = "Nothing here yet." } = {}) {
  const head = h("thead", {}, h("tr", {}, columns.map((c) => h("th", { scope: "col" }, c))));
  const body = h("tbody");
  rows.forEach((cells, i) => {
    body.append(h("tr", rowAttrs ? rowAttrs(i) : {}, cells.map((cell) => h("td", {}, cell))));
  });
  const wrap = h("div", { class: "table-wrap" }, h("table", {}, head, body));
  if (!rows.length) wrap.append(h("p", { class: "empty muted" }, empty));
  return wrap;
}

export function errorBox(error) {
  const message = error && error.message ? error.message : String(error);
  const code = error && error.code ? `${error.code}: ` : "";
  return h("p", { class: "error", role: "alert" }, code + message);
}

export function loading(text = "Loading…") {
  return h("p", { class: "muted loading" }, text);
}

let noticeTimer = null;

/** A short message at the bottom of the screen. */
export function notify(text, kind = "info") {
  const box = document.getElementById("notice");
  box.textContent = text;
  box.className = `notice ${kind}`;
  box.hidden = false;
  clearTimeout(noticeTimer);
  noticeTimer = setTimeout(() => {
    box.hidden = true;
  }, 4000);
}

/** A modal dialog; resolves with what `onSubmit` returns, or null when cancelled. */
export function dialog(title, body, { submitLabel = "OK", danger = false, onSubmit } = {}) {
  return new Promise((resolve) => {
    const error = h("p", { class: "error", role: "alert", hidden: true });
    const submit = h("button", { type: "submit", class: danger ? "danger" : "primary" }, submitLabel);
    const cancel = h("button", { type: "button" }, "Cancel");
    const form = h(
      "form",
      { method: "dialog", class: "dialog-form" },
      h("h2", {}, title),
      body,
      error,
      h("div", { class: "dialog-actions" }, cancel, submit),
    );
    const box = h("dialog", { class: "dialog" }, form);
    let settled = false;
    const finish = (value) => {
      if (settled) return;
      settled = true;
      box.close();
      box.remove();
      resolve(value);
    };
    cancel.addEventListener("click", () => finish(null));
    box.addEventListener("cancel", (e) => {
      e.preventDefault();
      finish(null);
    });
    form.addEventListener("submit", async (e) => {
      e.preventDefault();
      submit.disabled = true;
      error.hidden = true;
      try {
        const value = onSubmit ? await onSubmit() : true;
        finish(value === undefined ? true : value);
      } catch (err) {
        error.textContent = err.code ? `${err.code}: ${err.message}` : err.message;
        error.hidden = false;
      } finally {
        submit.disabled = false;
      }
    });
    document.body.append(box);
    box.showModal();
  });
}

export function confirmDialog(title, text, { submitLabel = "Confirm", danger = true } = {}) {
  return dialog(title, h("p", {}, text), { submitLabel, danger });
}

/**
 * A JSON textarea that checks its text as it is typed. `validate(value)`
 * may throw to refuse a parsed value. `.value()` returns the parsed value or
 * throws; `.valid()` says whether it parses.
 */
export function jsonEditor(initial, { rows = 12, validate, label = "JSON", name = "json" } = {}) {
  const id = `json-${Math.random().toString(36).slice(2)}`;
  const area = h("textarea", {
    id,
    name,
    rows,
    spellcheck: "false",
    class: "json-input",
    autocapitalize: "off",
  });
  area.value = typeof initial === "string" ? initial : JSON.stringify(initial, null, 2);
  const status = h("p", { class: "json-status muted", "aria-live": "polite" });
  const parse = () => {
    const value = JSON.parse(area.value);
    if (validate) validate(value);
    return value;
  };
  const check = () => {
    try {
      parse();
      status.textContent = "Valid JSON";
      status.className = "json-status ok";
      area.setAttribute("aria-invalid", "false");
      return true;
    } catch (e) {
      status.textContent = e.message;
      status.className = "json-status error";
      area.setAttribute("aria-invalid", "true");
      return false;
    }
  };
  area.addEventListener("input", check);
  check();
  const el = h("div", { class: "json-editor" }, h("label", { for: id }, label), area, status);
  return {
    el,
    area,
    valid: check,
    value() {
      if (!check()) throw new Error(`Invalid JSON: ${status.textContent}`);
      return parse();
    },
  };
}

// -- values ----------------------------------------------------------------------

function b64Bytes(text) {
  const binary = atob(text);
  const bytes = new Uint8Array(binary.length);
  for (let i = 0; i < binary.length; i++) bytes[i] = binary.charCodeAt(i);
  return bytes;
}

/** A Convex-JSON value as a short human-readable text. */
export function formatValue(value, max = 80) {
  const text = describe(value);
  return text.length > max ? `${text.slice(0, max - 1)}…` : text;
}

function describe(value) {
  if (value === null) return "null";
  if (typeof value === "string") return value;
  if (typeof value !== "object") return String(value);
  if (Array.isArray(value)) return `[${value.map(describe).join(", ")}]`;
  const keys = Object.keys(value);
  if (keys.length === 1) {
    try {
      if (keys[0] === "$integer") {
        const view = new DataView(b64Bytes(value.$integer).buffer);
        return `${view.getBigInt64(0, true)}n`;
      }
      if (keys[0] === "$float") {
        const view = new DataView(b64Bytes(value.$float).buffer);
        return String(view.getFloat64(0, true));
      }
      if (keys[0] === "$bytes") return `bytes(${b64Bytes(value.$bytes).length})`;
    } catch {
      // Not a well-formed special value: show it as an object.
    }
  }
  return `{${keys.map((k) => `${k}: ${describe(value[k])}`).join(", ")}}`;
}

export function formatTime(ms) {
  if (ms === null || ms === undefined || Number.isNaN(Number(ms))) return "—";
  const date = new Date(Number(ms));
  return date.toLocaleString(undefined, { hour12: false });
}

export function formatBytes(n) {
  if (typeof n !== "number") return "—";
  if (n < 1024) return `${n} B`;
  if (n < 1024 * 1024) return `${(n / 1024).toFixed(1)} KiB`;
  if (n < 1024 ** 3) return `${(n / 1024 / 1024).toFixed(1)} MiB`;
  return `${(n / 1024 ** 3).toFixed(2)} GiB`;
}

export function pretty(value) {
  return JSON.stringify(value, null, 2);
}

export function code(text) {
  return h("pre", { class: "code" }, text);
}
