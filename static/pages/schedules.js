// Schedules: scheduled functions (pending and recent; cancel) and cron jobs
// with their next and last runs. Refreshed every few seconds while shown.

import * as api from "../api.js";
import { confirmDialog, errorBox, fill, formatTime, formatValue, h, notify, pageHeader, table } from "../ui.js";

const REFRESH_MS = 5000;

export async function render(view) {
  const jobsBox = h("div", { class: "jobs" });
  const cronsBox = h("div", { class: "crons" });
  const refresh = h("button", { type: "button", onclick: () => load() }, "Refresh");
  fill(view,
    pageHeader("Schedules", refresh),
    h("section", { class: "card" }, h("h2", {}, "Scheduled functions"), jobsBox),
    h("section", { class: "card" }, h("h2", {}, "Cron jobs"), cronsBox));

  let stopped = false;

  async function loadJobs() {
    try {
      const { jobs } = await api.get("/api/scheduled_functions?limit=200");
      if (stopped) return;
      fill(jobsBox, table(
        ["Function", "Scheduled for", "State", "Completed", "Arguments", "Id", ""],
        jobs.map((job) => [
          h("span", { class: "mono" }, job.name),
          h("span", { class: "nowrap" }, formatTime(job.scheduledTime)),
          stateBadge(job.state),
          h("span", { class: "nowrap" }, formatTime(job.completedTime)),
          h("span", { class: "mono small" }, formatValue(Array.isArray(job.args) && job.args.length === 1 ? job.args[0] : job.args)),
          h("span", { class: "mono small" }, job.id),
          job.state && (job.state.kind === "pending" || job.state.kind === "inProgress")
            ? h("button", { type: "button", class: "small danger", onclick: () => cancel(job) }, "Cancel")
            : "",
        ]),
        { empty: "No scheduled functions." },
      ));
    } catch (e) {
      if (!stopped) fill(jobsBox, errorBox(e));
    }
  }

  async function loadCrons() {
    try {
      const { cronJobs } = await api.get("/api/cron_jobs");
      if (stopped) return;
      fill(cronsBox, table(
        ["Name", "Function", "Schedule", "Next run", "Last run"],
        cronJobs.map((cron) => [
          h("span", { class: "mono" }, cron.name),
          h("span", { class: "mono" }, cron.functionName),
          describeSchedule(cron.schedule),
          h("span", { class: "nowrap" }, formatTime(cron.nextRun)),
          lastRun(cron.lastRun),
        ]),
        { empty: "No cron jobs (define them in crons.py)." },
      ));
    } catch (e) {
      if (!stopped) fill(cronsBox, errorBox(e));
    }
  }

  async function cancel(job) {
    const ok = await confirmDialog("Cancel this run?", `${job.name} scheduled for ${formatTime(job.scheduledTime)} will not run.`, {
      submitLabel: "Cancel run",
    });
    if (!ok) return;
    try {
      await api.post("/api/cancel_scheduled_function", { id: job.id });
      notify("Canceled", "ok");
    } catch (e) {
      notify(e.message, "error");
    }
    loadJobs();
  }

  function load() {
    return Promise.all([loadJobs(), loadCrons()]);
  }

  await load();
  const timer = setInterval(() => {
    // Skip a refresh while a dialog is open, so a row does not move under the pointer.
    if (!document.querySelector("dialog[open]")) load();
  }, REFRESH_MS);
  return () => {
    stopped = true;
    clearInterval(timer);
  };
}

function stateBadge(state) {
  const kind = state && state.kind ? state.kind : "unknown";
  const badge = h("span", { class: `badge ${kind}` }, kind);
  if (state && state.error) return h("span", {}, badge, " ", h("span", { class: "error-text small" }, state.error));
  return badge;
}

function lastRun(run) {
  if (!run) return h("span", { class: "muted" }, "never");
  return h("span", {},
    h("span", { class: `badge ${run.status}` }, run.status), " ",
    h("span", { class: "nowrap" }, formatTime(run.ts)),
    run.error ? h("span", { class: "error-text small" }, ` ${run.error}`) : null);
}

/** The exported schedule object as words. */
export function describeSchedule(s) {
  if (!s || typeof s !== "object") return "—";
  const pad = (n) => String(n ?? 0).padStart(2, "0");
  switch (s.type) {
    case "interval":
      if (s.seconds !== undefined) return `every ${s.seconds} s`;
      if (s.minutes !== undefined) return `every ${s.minutes} min`;
      return `every ${s.hours} h`;
    case "hourly":
      return `hourly at :${pad(s.minuteUTC)} UTC`;
    case "daily":
      return `daily at ${pad(s.hourUTC)}:${pad(s.minuteUTC)} UTC`;
    case "weekly":
      return `weekly on ${s.dayOfWeek} at ${pad(s.hourUTC)}:${pad(s.minuteUTC)} UTC`;
    case "monthly":
      return `monthly on day ${s.day} at ${pad(s.hourUTC)}:${pad(s.minuteUTC)} UTC`;
    case "cron":
      return `cron ${s.cron} (UTC)`;
    default:
      return JSON.stringify(s);
  }
}
