// Data: the tables, a paginated document browser with filters, and document
// view / edit / insert / delete, and clearing a table.

import * as api from "../api.js";
import {
  code,
  confirmDialog,
  dialog,
  errorBox,
  fill,
  formatTime,
  formatValue,
  h,
  jsonEditor,
  notify,
  pageHeader,
  pretty,
} from "../ui.js";

const PAGE_SIZE = 50;
const MAX_COLUMNS = 12;
const OPS = [
  ["eq", "="],
  ["neq", "≠"],
  ["lt", "<"],
  ["lte", "≤"],
  ["gt", ">"],
  ["gte", "≥"],
];

export async function render(view, args) {
  const { tables } = await api.get("/api/tables");
  let table = args[0] || null;
  if (!table && tables.length) {
    table = tables[0].name;
    history.replaceState(null, "", `#/data/${encodeURIComponent(table)}`);
  }
  const known = tables.find((t) => t.name === table);
  const list = h(
    "ul",
    { class: "table-list" },
    tables.map((t) =>
      h(
        "li",
        {},
        h(
          "a",
          {
            href: `#/data/${encodeURIComponent(t.name)}`,
            "aria-current": t.name === table ? "page" : null,
            dataset: { table: t.name },
          },
          h("span", { class: "name" }, t.name),
          h("span", { class: "count muted" }, String(t.documentCount)),
        ),
      ),
    ),
  );
  const aside = h(
    "aside",
    { class: "tables card" },
    h("div", { class: "aside-header" }, h("h2", {}, "Tables"),
      h("button", { type: "button", class: "small", onclick: () => insertDocument(null) }, "New table")),
    tables.length ? list : h("p", { class: "muted" }, "No tables yet. Create one by inserting a document."),
  );
  const main = h("section", { class: "documents" });
  fill(view, pageHeader("Data"), h("div", { class: "data-layout" }, aside, main));
  if (!table) return undefined;
  if (!known) {
    fill(main, errorBox(new Error(`Table ${table} does not exist.`)));
    return undefined;
  }
  return browse(main, table, known.documentCount);
}

/** Insert a document into `table` (or, when null, a table named in the dialog). */
async function insertDocument(table, after) {
  const nameInput = h("input", { id: "new-table-name", name: "table", required: true, spellcheck: "false" });
  const editor = jsonEditor({}, {
    label: "Document (Convex-JSON)",
    validate: (v) => {
      if (!v || typeof v !== "object" || Array.isArray(v)) throw new Error("A document is a JSON object");
      for (const f of ["_id", "_creationTime"]) if (f in v) throw new Error(`${f} is set by the database`);
    },
  });
  const body = h("div", {},
    table ? null : h("div", { class: "field" }, h("label", { for: "new-table-name" }, "Table name"), nameInput),
    editor.el);
  const result = await dialog(table ? `Add a document to ${table}` : "New table", body, {
    submitLabel: "Insert",
    onSubmit: async () => {
      const target = table || nameInput.value.trim();
      if (!target) throw new Error("Give the table a name");
      const answer = await api.post("/api/dashboard/documents/insert", { table: target, document: editor.value() });
      return { table: target, id: answer.id };
    },
  });
  if (!result) return;
  notify(`Inserted ${result.id}`, "ok");
  if (result.table !== table) location.hash = `#/data/${encodeURIComponent(result.table)}`;
  else if (after) after();
}

function browse(main, table, count) {
  const state = { order: "desc", filters: [], cursor: null, isDone: false, docs: [], selected: new Set(), open: null };
  let generation = 0;

  const countLabel = h("span", { class: "muted" }, `${count} document${count === 1 ? "" : "s"}`);
  const deleteSelected = h("button", { type: "button", class: "danger", disabled: true, onclick: removeSelected }, "Delete selected");
  const header = h(
    "div",
    { class: "section-header" },
    h("h2", {}, table, " ", countLabel),
    h("div", { class: "actions" },
      h("button", { type: "button", class: "primary", onclick: () => insertDocument(table, reload) }, "Add document"),
      deleteSelected,
      h("button", { type: "button", class: "danger", onclick: clearTable }, "Clear table")),
  );

  // -- filters ---------------------------------------------------------------
  const rows = h("div", { class: "filter-rows" });
  const orderSelect = h("select", { id: "order", "aria-label": "Order" },
    h("option", { value: "desc" }, "Newest first"), h("option", { value: "asc" }, "Oldest first"));
  orderSelect.addEventListener("change", () => {
    state.order = orderSelect.value;
    reload();
  });
  const filterForm = h(
    "form",
    { class: "filters", "aria-label": "Filter documents" },
    rows,
    h("div", { class: "filter-actions" },
      h("button", { type: "button", class: "small", onclick: () => addFilterRow() }, "+ Condition"),
      h("button", { type: "submit", class: "small primary" }, "Apply filter"),
      h("button", { type: "button", class: "small", onclick: resetFilters }, "Reset"),
      orderSelect),
  );
  filterForm.addEventListener("submit", (e) => {
    e.preventDefault();
    state.filters = readFilters();
    reload();
  });

  function addFilterRow(field = "", op = "eq", value = "") {
    const select = h("select", { "aria-label": "Operator", class: "filter-op" }, OPS.map(([v, label]) => h("option", { value: v }, label)));
    select.value = op;
    const row = h("div", { class: "filter-row" },
      h("input", { class: "filter-field", placeholder: "field (a.b)", "aria-label": "Field", value: field, spellcheck: "false" }),
      select,
      h("input", { class: "filter-value", placeholder: "value (JSON or text)", "aria-label": "Value", value, spellcheck: "false" }),
      h("button", { type: "button", class: "small", "aria-label": "Remove condition", onclick: () => row.remove() }, "×"));
    rows.append(row);
  }

  function readFilters() {
    const filters = [];
    for (const row of rows.querySelectorAll(".filter-row")) {
      const field = row.querySelector(".filter-field").value.trim();
      if (!field) continue;
      const raw = row.querySelector(".filter-value").value;
      let value;
      try {
        value = JSON.parse(raw);
      } catch {
        value = raw; // Plain text is a string value.
      }
      filters.push({ field, op: row.querySelector(".filter-op").value, value });
    }
    return filters;
  }

  function resetFilters() {
    rows.replaceChildren();
    addFilterRow();
    state.filters = [];
    reload();
  }

  addFilterRow();

  // -- documents -------------------------------------------------------------
  const results = h("div", { class: "results" });
  const more = h("button", { type: "button", class: "more", hidden: true, onclick: () => loadPage() }, "Load more");
  const status = h("p", { class: "muted status" });
  const panel = h("section", { class: "doc-panel card", hidden: true, "aria-label": "Document" });

  fill(main, header, filterForm, status, results, more, panel);

  async function loadPage() {
    const mine = generation;
    more.disabled = true;
    status.textContent = "Loading…";
    try {
      const params = { numItems: PAGE_SIZE, order: state.order, cursor: state.cursor };
      let page;
      if (state.filters.length) {
        page = await api.get(`/api/dashboard/documents${api.query({ table, ...params, filters: JSON.stringify(state.filters) })}`);
      } else {
        page = await api.get(`/api/tables/${encodeURIComponent(table)}/documents${api.query(params)}`);
      }
      if (mine !== generation) return;
      state.docs.push(...page.page);
      state.cursor = page.continueCursor;
      state.isDone = page.isDone;
      status.textContent = state.filters.length
        ? `${state.docs.length} matching document${state.docs.length === 1 ? "" : "s"}${state.isDone ? "" : " so far"}`
        : "";
      drawTable();
    } catch (e) {
      if (mine === generation) {
        status.textContent = "";
        fill(results, errorBox(e));
      }
    } finally {
      more.disabled = false;
      more.hidden = state.isDone;
    }
  }

  function reload() {
    generation += 1;
    state.cursor = null;
    state.docs = [];
    state.isDone = false;
    state.selected.clear();
    updateSelection();
    refreshCount();
    return loadPage();
  }

  async function refreshCount() {
    try {
      const { tables } = await api.get("/api/tables");
      const t = tables.find((x) => x.name === table);
      const n = t ? t.documentCount : 0;
      countLabel.textContent = `${n} document${n === 1 ? "" : "s"}`;
      const link = document.querySelector(`.table-list a[data-table="${CSS.escape(table)}"] .count`);
      if (link) link.textContent = String(n);
    } catch {
      // The count is cosmetic.
    }
  }

  function columns() {
    const names = [];
    for (const doc of state.docs) {
      for (const key of Object.keys(doc)) {
        if (!key.startsWith("_") && !names.includes(key)) names.push(key);
      }
    }
    return names.slice(0, MAX_COLUMNS);
  }

  function drawTable() {
    const fields = columns();
    const allBox = h("input", { type: "checkbox", "aria-label": "Select all" });
    allBox.addEventListener("change", () => {
      for (const doc of state.docs) {
        if (allBox.checked) state.selected.add(doc._id);
        else state.selected.delete(doc._id);
      }
      drawTable();
      updateSelection();
    });
    allBox.checked = state.docs.length > 0 && state.docs.every((d) => state.selected.has(d._id));
    const head = h("thead", {}, h("tr", {},
      h("th", { class: "select" }, allBox),
      h("th", { scope: "col" }, "_id"),
      fields.map((f) => h("th", { scope: "col" }, f)),
      h("th", { scope: "col" }, "_creationTime")));
    const body = h("tbody");
    for (const doc of state.docs) {
      const box = h("input", { type: "checkbox", "aria-label": `Select ${doc._id}`, checked: state.selected.has(doc._id) });
      box.addEventListener("click", (e) => e.stopPropagation());
      box.addEventListener("change", () => {
        if (box.checked) state.selected.add(doc._id);
        else state.selected.delete(doc._id);
        updateSelection();
      });
      const row = h("tr", { class: "doc-row", dataset: { id: doc._id }, tabindex: "0" },
        h("td", { class: "select" }, box),
        h("td", { class: "id mono" }, doc._id),
        fields.map((f) => h("td", { dataset: { field: f } }, f in doc ? formatValue(doc[f]) : h("span", { class: "muted" }, "unset"))),
        h("td", { class: "nowrap" }, formatTime(doc._creationTime)));
      row.addEventListener("click", () => openDocument(doc));
      row.addEventListener("keydown", (e) => {
        if (e.key === "Enter") openDocument(doc);
      });
      body.append(row);
    }
    fill(results, h("div", { class: "table-wrap" }, h("table", { class: "docs" }, head, body)));
    if (!state.docs.length) {
      results.append(h("p", { class: "empty muted" }, state.filters.length && !state.isDone
        ? "No matches in the documents scanned so far. Load more to keep looking."
        : "No documents."));
    }
    if (state.open) {
      const fresh = state.docs.find((d) => d._id === state.open);
      if (fresh) openDocument(fresh, false);
    }
  }

  function updateSelection() {
    const n = state.selected.size;
    deleteSelected.disabled = n === 0;
    deleteSelected.textContent = n ? `Delete selected (${n})` : "Delete selected";
  }

  function openDocument(doc, scroll = true) {
    state.open = doc._id;
    fill(panel,
      h("div", { class: "section-header" },
        h("h3", {}, "Document ", h("span", { class: "mono" }, doc._id)),
        h("div", { class: "actions" },
          h("button", { type: "button", class: "primary", onclick: () => editDocument(doc) }, "Edit"),
          h("button", { type: "button", class: "danger", onclick: () => removeDocuments([doc._id]) }, "Delete"),
          h("button", { type: "button", onclick: closePanel }, "Close"))),
      code(pretty(doc)));
    panel.hidden = false;
    if (scroll) panel.scrollIntoView({ block: "nearest" });
  }

  function closePanel() {
    state.open = null;
    panel.hidden = true;
  }

  async function editDocument(doc) {
    const editor = jsonEditor(doc, {
      label: "Document (Convex-JSON; _id and _creationTime cannot change)",
      rows: 16,
      validate: (v) => {
        if (!v || typeof v !== "object" || Array.isArray(v)) throw new Error("A document is a JSON object");
      },
    });
    const saved = await dialog(`Edit ${doc._id}`, editor.el, {
      submitLabel: "Save",
      onSubmit: () => api.post("/api/dashboard/documents/update", { table, id: doc._id, document: editor.value() }),
    });
    if (!saved) return;
    notify("Document saved", "ok");
    const replaced = saved.document;
    const i = state.docs.findIndex((d) => d._id === doc._id);
    if (i >= 0) state.docs[i] = replaced;
    drawTable();
    openDocument(replaced, false);
  }

  async function removeDocuments(ids) {
    const what = ids.length === 1 ? `document ${ids[0]}` : `${ids.length} documents`;
    const ok = await dialog(`Delete ${what}?`, h("p", {}, "This cannot be undone."), {
      submitLabel: "Delete",
      danger: true,
      onSubmit: () => api.post("/api/dashboard/documents/delete", { ids }),
    });
    if (!ok) return;
    notify(`Deleted ${what}`, "ok");
    if (ids.includes(state.open)) closePanel();
    reload();
  }

  function removeSelected() {
    if (state.selected.size) removeDocuments([...state.selected]);
  }

  async function clearTable() {
    const ok = await confirmDialog(`Clear ${table}?`, `Every document of ${table} will be deleted. This cannot be undone.`, {
      submitLabel: "Clear table",
    });
    if (!ok) return;
    try {
      const answer = await api.post("/api/clear_tables", { tableNames: [table] });
      notify(`Deleted ${answer.deleted[table] ?? 0} documents`, "ok");
    } catch (e) {
      notify(e.message, "error");
    }
    closePanel();
    reload();
  }

  loadPage();
  return () => {
    generation += 1;
  };
}
