// Logs: a live stream of function executions from the long poll
// GET /api/stream_function_logs?cursor=, with filters, pause and clear.

import * as api from "../api.js";
import { errorBox, fill, h, pageHeader } from "../ui.js";

const MAX_ENTRIES = 1000;
const LEVELS = ["LOG", "INFO", "WARN", "ERROR", "DEBUG"];
const TYPE_LETTERS = { Query: "Q", Mutation: "M", Action: "A", HttpAction: "H" };

export async function render(view) {
  const state = { cursor: 0, entries: [], paused: false, stopped: false, controller: null, failures: 0 };

  const live = h("span", { class: "live-status badge", "aria-live": "polite" }, "Connecting…");
  const pause = h("button", { type: "button", onclick: togglePause }, "Pause");
  const clear = h("button", { type: "button", onclick: () => { state.entries = []; draw(); } }, "Clear");
  const fnFilter = h("input", { type: "search", placeholder: "Function", "aria-label": "Function filter", class: "log-filter-function" });
  const textFilter = h("input", { type: "search", placeholder: "Search messages", "aria-label": "Text filter", class: "log-filter-text" });
  const status = h("select", { "aria-label": "Status filter", class: "log-filter-status" },
    h("option", { value: "" }, "Any status"), h("option", { value: "success" }, "Success"), h("option", { value: "failure" }, "Failure"));
  const level = h("select", { "aria-label": "Level filter", class: "log-filter-level" },
    h("option", { value: "" }, "Any level"), LEVELS.map((l) => h("option", { value: l }, l)));
  for (const el of [fnFilter, textFilter]) el.addEventListener("input", draw);
  for (const el of [status, level]) el.addEventListener("change", draw);

  const rowsBox = h("div", { class: "log-rows" });
  const problem = h("div", { class: "log-problem" });
  fill(view,
    pageHeader("Logs", live, pause, clear),
    h("div", { class: "filters log-filters" }, fnFilter, textFilter, status, level),
    problem,
    rowsBox);

  function togglePause() {
    state.paused = !state.paused;
    pause.textContent = state.paused ? "Resume" : "Pause";
    if (state.paused) {
      if (state.controller) state.controller.abort();
      setLive("Paused", "paused");
    } else {
      poll();
    }
  }

  function setLive(text, kind) {
    live.textContent = text;
    live.className = `live-status badge ${kind}`;
  }

  /** One row per log line, then one for the completion of the execution. */
  function rowsOf(entry) {
    const fn = `${TYPE_LETTERS[entry.udfType] || "?"} ${entry.identifier || ""}`;
    const failed = entry.error !== null && entry.error !== undefined;
    const rows = [];
    for (const line of entry.logLines || []) {
      const parsed = parseLine(line);
      rows.push({
        time: parsed.timestamp ?? entry.timestamp * 1000,
        fn,
        level: parsed.level,
        message: parsed.message,
        requestId: entry.requestId,
        duration: null,
        status: failed ? "failure" : "success",
        kind: "line",
      });
    }
    if (entry.kind === "Completion" || entry.kind === undefined) {
      const ms = typeof entry.executionTime === "number" ? entry.executionTime * 1000 : null;
      rows.push({
        time: entry.timestamp * 1000,
        fn,
        level: failed ? "ERROR" : "",
        message: failed ? String(entry.error) : entry.cachedResult ? "Cached result" : "Function executed",
        requestId: entry.requestId,
        duration: ms,
        status: failed ? "failure" : "success",
        kind: "completion",
      });
    }
    return rows;
  }

  function draw() {
    const fnNeedle = fnFilter.value.trim().toLowerCase();
    const textNeedle = textFilter.value.trim().toLowerCase();
    const rows = [];
    for (const entry of state.entries) {
      if (fnNeedle && !String(entry.identifier || "").toLowerCase().includes(fnNeedle)) continue;
      for (const row of rowsOf(entry)) {
        if (status.value && row.status !== status.value) continue;
        if (level.value && row.level !== level.value) continue;
        if (textNeedle && !row.message.toLowerCase().includes(textNeedle)) continue;
        rows.push(row);
      }
    }
    rows.reverse(); // Newest first.
    const body = h("tbody", {}, rows.map((r) => h("tr", { class: `log-row ${r.kind} ${r.status}` },
      h("td", { class: "nowrap mono small" }, formatClock(r.time)),
      h("td", { class: "mono nowrap" }, r.fn),
      h("td", {}, r.level ? h("span", { class: `badge level-${r.level.toLowerCase()}` }, r.level) : ""),
      h("td", { class: "message" }, r.message),
      h("td", { class: "mono small nowrap" }, r.requestId || ""),
      h("td", { class: "nowrap" }, r.duration === null ? "" : `${r.duration.toFixed(1)} ms`),
      h("td", {}, r.kind === "completion" ? h("span", { class: `badge ${r.status}` }, r.status) : ""))));
    fill(rowsBox, h("div", { class: "table-wrap" }, h("table", { class: "logs" },
      h("thead", {}, h("tr", {}, ["Time", "Function", "Level", "Message", "Request", "Duration", "Status"].map((c) => h("th", { scope: "col" }, c)))),
      body)));
    if (!rows.length) {
      rowsBox.append(h("p", { class: "empty muted" }, state.entries.length ? "No entry matches the filters." : "Waiting for function executions…"));
    }
  }

  async function poll() {
    while (!state.stopped && !state.paused) {
      const controller = new AbortController();
      state.controller = controller;
      if (state.failures === 0) setLive("Live", "live");
      try {
        const answer = await api.get(`/api/stream_function_logs${api.query({ cursor: state.cursor })}`, { signal: controller.signal });
        state.failures = 0;
        fill(problem);
        if (typeof answer.newCursor === "number") state.cursor = answer.newCursor;
        if (answer.entries && answer.entries.length) {
          state.entries.push(...answer.entries);
          if (state.entries.length > MAX_ENTRIES) state.entries.splice(0, state.entries.length - MAX_ENTRIES);
          draw();
        }
      } catch (e) {
        if (e.name === "AbortError" || state.stopped) return;
        if (e.status === 404 || e.status === 401) {
          setLive("Unavailable", "failure");
          fill(problem, errorBox(e));
          return;
        }
        state.failures += 1;
        setLive("Reconnecting…", "paused");
        fill(problem, errorBox(e));
        await sleep(Math.min(30000, 500 * 2 ** state.failures));
      }
    }
  }

  draw();
  poll();
  return () => {
    state.stopped = true;
    if (state.controller) state.controller.abort();
  };
}

/** A log line: structured {messages, level, timestamp} or a "[LEVEL] text" string. */
function parseLine(line) {
  if (typeof line === "string") {
    const m = /^\[(\w+)\]\s?(.*)$/s.exec(line);
    return m ? { level: m[1].toUpperCase(), message: m[2], timestamp: null } : { level: "LOG", message: line, timestamp: null };
  }
  const messages = Array.isArray(line.messages) ? line.messages.join(" ") : String(line.messages ?? "");
  return {
    level: String(line.level || "LOG").toUpperCase(),
    message: messages + (line.isTruncated ? " (truncated)" : ""),
    timestamp: typeof line.timestamp === "number" ? line.timestamp : null,
  };
}

function formatClock(ms) {
  const d = new Date(ms);
  if (Number.isNaN(d.getTime())) return "";
  const pad = (n, w = 2) => String(n).padStart(w, "0");
  return `${d.getFullYear()}-${pad(d.getMonth() + 1)}-${pad(d.getDate())} ${pad(d.getHours())}:${pad(d.getMinutes())}:${pad(d.getSeconds())}.${pad(d.getMilliseconds(), 3)}`;
}

function sleep(ms) {
  return new Promise((resolve) => setTimeout(resolve, ms));
}
