// Files: stored files (list, upload, download, delete).

import * as api from "../api.js";
import { confirmDialog, errorBox, fill, formatBytes, formatTime, h, notify, pageHeader, table } from "../ui.js";

const PAGE_SIZE = 50;

export async function render(view) {
  const listBox = h("div", { class: "files" });
  const more = h("button", { type: "button", class: "more", hidden: true, onclick: () => loadPage() }, "Load more");
  const picker = h("input", { type: "file", id: "upload-file", "aria-label": "File to upload" });
  const upload = h("button", { type: "submit", class: "primary" }, "Upload");
  const form = h("form", { class: "upload-form" }, picker, upload);
  form.addEventListener("submit", async (e) => {
    e.preventDefault();
    const file = picker.files && picker.files[0];
    if (!file) {
      notify("Choose a file first", "error");
      return;
    }
    upload.disabled = true;
    try {
      const storageId = await uploadFile(file);
      notify(`Uploaded ${file.name} as ${storageId}`, "ok");
      picker.value = "";
      reload();
    } catch (err) {
      notify(err.message, "error");
    } finally {
      upload.disabled = false;
    }
  });

  fill(view, pageHeader("Files"), h("section", { class: "card" }, form), h("section", { class: "card" }, listBox, more));

  let files = [];
  let cursor = null;
  let generation = 0;

  async function loadPage() {
    const mine = generation;
    try {
      const page = await api.get(`/api/storage_files${api.query({ numItems: PAGE_SIZE, cursor })}`);
      if (mine !== generation) return;
      files.push(...page.page);
      cursor = page.continueCursor;
      more.hidden = page.isDone;
      draw();
    } catch (e) {
      if (mine === generation) fill(listBox, errorBox(e));
    }
  }

  function reload() {
    generation += 1;
    files = [];
    cursor = null;
    return loadPage();
  }

  function draw() {
    fill(listBox, table(
      ["Storage id", "Size", "Type", "Uploaded", "SHA-256", ""],
      files.map((f) => [
        h("span", { class: "mono small" }, f.storageId),
        h("span", { class: "nowrap" }, formatBytes(f.size)),
        f.contentType || h("span", { class: "muted" }, "—"),
        h("span", { class: "nowrap" }, formatTime(f._creationTime)),
        h("span", { class: "mono small" }, f.sha256 ? `${String(f.sha256).slice(0, 16)}…` : ""),
        h("span", { class: "nowrap" },
          h("a", { href: downloadPath(f), download: f.storageId, class: "button small" }, "Download"), " ",
          h("button", { type: "button", class: "small danger", onclick: () => remove(f) }, "Delete")),
      ]),
      { empty: "No files stored." },
    ));
  }

  async function remove(file) {
    const ok = await confirmDialog("Delete this file?", `${file.storageId} will be deleted. This cannot be undone.`, { submitLabel: "Delete" });
    if (!ok) return;
    try {
      await api.post("/api/storage/delete", { storageId: file.storageId });
      notify("File deleted", "ok");
    } catch (e) {
      notify(e.message, "error");
    }
    reload();
  }

  await loadPage();
  return () => {
    generation += 1;
  };
}

/** Same-origin path of a URL from the daemon (its public origin may differ from ours). */
function localPath(url) {
  const parsed = new URL(url, location.href);
  return parsed.pathname + parsed.search;
}

function downloadPath(file) {
  return file.url ? localPath(file.url) : `/api/storage/${encodeURIComponent(file.storageId)}`;
}

async function uploadFile(file) {
  const { uploadUrl } = await api.post("/api/storage/generate_upload_url", {});
  // The upload URL carries its own token: no admin key is sent with the bytes.
  const response = await fetch(localPath(uploadUrl), {
    method: "POST",
    headers: { "Content-Type": file.type || "application/octet-stream" },
    body: file,
    credentials: "omit",
  });
  const text = await response.text();
  let body = {};
  try {
    body = JSON.parse(text);
  } catch {
    // Reported below.
  }
  if (!response.ok) throw new api.ApiError(response.status, body.code || "UploadFailed", body.message || text || "Upload failed");
  return body.storageId;
}
