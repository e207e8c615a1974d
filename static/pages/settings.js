// Settings: environment variables (list, set, remove), deployment info and the schema.

import * as api from "../api.js";
import { code, confirmDialog, dialog, errorBox, fill, formatTime, h, notify, pageHeader, pretty, table } from "../ui.js";

const NAME = /^[A-Za-z_][A-Za-z0-9_]*$/;

export async function render(view) {
  const envBox = h("div", { class: "env" });
  const infoBox = h("div", { class: "info" });
  const schemaBox = h("div", { class: "schema" });
  fill(view,
    pageHeader("Settings"),
    h("section", { class: "card" },
      h("div", { class: "section-header" }, h("h2", {}, "Environment variables"),
        h("div", { class: "actions" }, h("button", { type: "button", class: "primary", onclick: () => edit(null) }, "Add variable"))),
      envBox),
    h("section", { class: "card" }, h("h2", {}, "Deployment"), infoBox),
    h("section", { class: "card" }, h("h2", {}, "Schema"), schemaBox));

  async function loadEnv() {
    try {
      const { environmentVariables } = await api.get("/api/environment_variables");
      fill(envBox, table(
        ["Name", "Value", ""],
        environmentVariables.map((v) => [
          h("span", { class: "mono" }, v.name),
          h("span", { class: "mono small env-value" }, v.value),
          h("span", { class: "nowrap" },
            h("button", { type: "button", class: "small", onclick: () => edit(v) }, "Edit"), " ",
            h("button", { type: "button", class: "small danger", onclick: () => remove(v) }, "Remove")),
        ]),
        { empty: "No environment variables." },
      ));
    } catch (e) {
      fill(envBox, errorBox(e));
    }
  }

  async function edit(variable) {
    const name = h("input", { id: "env-name", required: true, spellcheck: "false", maxlength: "40" });
    const value = h("textarea", { id: "env-value", rows: 3, spellcheck: "false" });
    if (variable) {
      name.value = variable.name;
      name.readOnly = true;
      value.value = variable.value;
    }
    const saved = await dialog(variable ? `Edit ${variable.name}` : "Add an environment variable",
      h("div", {},
        h("div", { class: "field" }, h("label", { for: "env-name" }, "Name"), name),
        h("div", { class: "field" }, h("label", { for: "env-value" }, "Value"), value)),
      {
        submitLabel: "Save",
        onSubmit: async () => {
          const n = name.value.trim();
          if (!NAME.test(n)) throw new Error("Names start with a letter or _ and contain only letters, digits and _");
          await api.post("/api/update_environment_variables", { changes: [{ name: n, value: value.value }] });
        },
      });
    if (saved) {
      notify("Saved", "ok");
      loadEnv();
    }
  }

  async function remove(variable) {
    const ok = await confirmDialog(`Remove ${variable.name}?`, "Functions will no longer see this variable.", { submitLabel: "Remove" });
    if (!ok) return;
    try {
      await api.post("/api/update_environment_variables", { changes: [{ name: variable.name, value: null }] });
      notify(`Removed ${variable.name}`, "ok");
    } catch (e) {
      notify(e.message, "error");
    }
    loadEnv();
  }

  async function loadInfo() {
    const settle = (p) => p.then((v) => ({ ok: true, v }), (e) => ({ ok: false, e }));
    const [version, name, deployment, urls] = await Promise.all([
      settle(api.get("/version", { as: "text" })),
      settle(api.get("/instance_name", { as: "text" })),
      settle(api.get("/api/deployment")),
      settle(api.get("/api/v1/get_canonical_urls")),
    ]);
    const show = (r, f) => (r.ok ? f(r.v) : h("span", { class: "error-text" }, r.e.message));
    const rows = [
      ["Instance name", show(name, (v) => h("span", { class: "mono" }, v))],
      ["Version", show(version, (v) => h("span", { class: "mono" }, v))],
      ["API URL", show(urls, (v) => h("span", { class: "mono" }, v.convexCloudUrl))],
      ["HTTP actions URL", show(urls, (v) => h("span", { class: "mono" }, v.convexSiteUrl))],
      ["Deployment id", show(deployment, (v) => h("span", { class: "mono" }, String(v.deploymentId ?? "—")))],
      ["Deployed at", show(deployment, (v) => formatTime(v.deployedAt))],
      ["Functions", show(deployment, (v) => String(v.functions.length))],
      ["HTTP routes", show(deployment, (v) => (v.httpRoutes.length
        ? h("ul", { class: "plain" }, v.httpRoutes.map((r) => h("li", { class: "mono small" }, routeText(r))))
        : "none"))],
    ];
    fill(infoBox, h("dl", { class: "info-list" }, rows.map(([k, v]) => [h("dt", {}, k), h("dd", {}, v)])));
    if (deployment.ok) {
      fill(schemaBox, deployment.v.schema ? code(pretty(deployment.v.schema)) : h("p", { class: "muted" }, "No schema.py: documents are not validated."));
    } else {
      fill(schemaBox, errorBox(deployment.e));
    }
  }

  await Promise.all([loadEnv(), loadInfo()]);
  return undefined;
}

function routeText(route) {
  if (!route || typeof route !== "object") return String(route);
  const method = route.method || "";
  const path = route.path || route.pathPrefix || "";
  return `${method} ${path}${route.pathPrefix ? "*" : ""}`.trim();
}
