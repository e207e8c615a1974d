// Functions: the deployed functions (type, visibility, args validator), and
// running any of them with JSON arguments, optionally as a given user.

import * as api from "../api.js";
import { code, errorBox, fill, h, jsonEditor, pageHeader, pretty, table } from "../ui.js";

const TYPE_LABELS = { query: "Query", mutation: "Mutation", action: "Action" };

export async function render(view, args) {
  const info = await api.get("/api/deployment");
  const selected = args.length ? args.join("/") : null;
  const search = h("input", { type: "search", placeholder: "Filter functions", "aria-label": "Filter functions", class: "search" });
  const listBox = h("div", { class: "function-list" });
  const runner = h("section", { class: "run card", "aria-label": "Run a function" });

  const draw = () => {
    const needle = search.value.trim().toLowerCase();
    const shown = info.functions.filter((f) => !needle || f.path.toLowerCase().includes(needle));
    fill(listBox, table(
      ["Function", "Type", "Visibility", "Arguments"],
      shown.map((f) => [
        h("a", { href: `#/functions/${encodeURIComponent(f.path)}`, class: "mono", "aria-current": f.path === selected ? "true" : null }, f.path),
        h("span", { class: `badge ${f.udfType}` }, TYPE_LABELS[f.udfType] || f.udfType),
        h("span", { class: `badge ${f.visibility}` }, f.visibility),
        h("span", { class: "mono small" }, describeValidator(f.args)),
      ]),
      { empty: info.functions.length ? "No function matches." : "No functions are deployed." },
    ));
  };
  search.addEventListener("input", draw);
  draw();

  const fn = info.functions.find((f) => f.path === selected);
  fill(view, pageHeader("Functions"), h("div", { class: fn ? "functions-layout with-runner" : "functions-layout" },
    h("section", { class: "card" }, search, listBox),
    fn ? runner : null));
  if (fn) showRunner(runner, fn);
  else if (selected) view.append(errorBox(new Error(`No function ${selected} in this deployment.`)));
  return undefined;
}

/** A short text for an args validator (the exported validator JSON). */
export function describeValidator(v) {
  if (!v) return "any";
  switch (v.type) {
    case "object": {
      const fields = Object.entries(v.value || {}).map(([name, field]) => {
        const inner = field && field.fieldType ? field.fieldType : field;
        return `${name}${field && field.optional ? "?" : ""}: ${describeValidator(inner)}`;
      });
      return `{${fields.join(", ")}}`;
    }
    case "array":
      return `${describeValidator(v.value)}[]`;
    case "id":
      return `Id<${v.tableName}>`;
    case "literal":
      return JSON.stringify(v.value);
    case "union":
      return (v.value || []).map(describeValidator).join(" | ");
    case "record":
      return `Record<${describeValidator(v.keys)}, ${describeValidator(v.values && v.values.fieldType ? v.values.fieldType : v.values)}>`;
    default:
      return v.type || "any";
  }
}

function showRunner(box, fn) {
  const args = jsonEditor({}, {
    label: "Arguments (Convex-JSON object)",
    rows: 6,
    name: "args",
    validate: (v) => {
      if (!v || typeof v !== "object" || Array.isArray(v)) throw new Error("Arguments are a JSON object");
    },
  });
  const actAs = h("input", { type: "checkbox", id: "act-as" });
  const identity = jsonEditor({ subject: "user-1", issuer: "https://example.com", name: "Test user" }, {
    label: "Identity (JSON; tokenIdentifier defaults to issuer|subject)",
    rows: 5,
    name: "identity",
    validate: (v) => {
      if (!v || typeof v !== "object" || Array.isArray(v)) throw new Error("An identity is a JSON object");
    },
  });
  identity.el.hidden = true;
  actAs.addEventListener("change", () => {
    identity.el.hidden = !actAs.checked;
  });
  const output = h("div", { class: "run-output", "aria-live": "polite" });
  const run = h("button", { type: "submit", class: "primary" }, `Run ${TYPE_LABELS[fn.udfType] || "function"}`);
  const form = h("form", { class: "run-form" },
    h("h2", {}, h("span", { class: "mono" }, fn.path)),
    h("p", { class: "muted" }, `${TYPE_LABELS[fn.udfType] || fn.udfType}, ${fn.visibility}. Arguments: `,
      h("span", { class: "mono" }, describeValidator(fn.args))),
    args.el,
    h("div", { class: "checkbox" }, actAs, h("label", { for: "act-as" }, "Act as a user")),
    identity.el,
    h("div", { class: "actions" }, run),
    output);
  form.addEventListener("submit", async (e) => {
    e.preventDefault();
    let argsValue;
    let identityValue;
    try {
      argsValue = args.value();
      identityValue = actAs.checked ? identity.value() : undefined;
    } catch (err) {
      fill(output, errorBox(err));
      return;
    }
    run.disabled = true;
    fill(output, h("p", { class: "muted" }, "Running…"));
    const started = performance.now();
    try {
      const answer = await api.post("/api/function", { path: fn.path, args: argsValue, format: "convex_encoded_json" }, { identity: identityValue });
      showResult(output, answer, performance.now() - started);
    } catch (err) {
      fill(output, errorBox(err));
    } finally {
      run.disabled = false;
    }
  });
  fill(box, form);
}

function showResult(output, answer, ms) {
  const ok = answer.status === "success";
  const parts = [
    h("p", { class: `run-status ${ok ? "ok" : "error"}` }, ok ? `Succeeded in ${ms.toFixed(0)} ms` : `Failed after ${ms.toFixed(0)} ms`),
  ];
  if (ok) {
    parts.push(h("h3", {}, "Result"), code(pretty(answer.value === undefined ? null : answer.value)));
  } else {
    parts.push(h("h3", {}, "Error"), h("pre", { class: "code error-text" }, answer.errorMessage || "Unknown error"));
    if (answer.errorData !== undefined) parts.push(h("h3", {}, "Error data"), code(pretty(answer.errorData)));
  }
  const lines = answer.logLines || [];
  parts.push(h("h3", {}, `Log lines (${lines.length})`));
  parts.push(lines.length
    ? h("pre", { class: "code log-lines" }, lines.map((l) => (typeof l === "string" ? l : `[${l.level}] ${(l.messages || []).join(" ")}`)).join("\n"))
    : h("p", { class: "muted" }, "No log lines."));
  fill(output, parts);
}
