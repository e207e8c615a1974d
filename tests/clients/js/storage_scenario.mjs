// File storage with the real `ConvexHttpClient` and Node's fetch, as a browser app does it.
//
//   CONVEX_URL=... UPLOAD_FILE=in.bin DOWNLOAD_FILE=out.bin node storage_scenario.mjs
//
// 1. a mutation generates an upload URL; 2. fetch POSTs the file's bytes to it;
// 3. a mutation saves the storage id; 4. a query returns ctx.storage.get_url();
// 5. fetch downloads it (whole, and a range) and writes it to DOWNLOAD_FILE.
// Prints one line `@@storage {...}` with what each step saw.

import { createHash } from "node:crypto";
import { readFileSync, writeFileSync } from "node:fs";
import { ConvexHttpClient } from "convex/browser";
import { makeFunctionReference } from "convex/server";

const url = process.env.CONVEX_URL;
const fn = (name) => makeFunctionReference(name);
const client = new ConvexHttpClient(url, { logger: false });
const input = readFileSync(process.env.UPLOAD_FILE);
const report = {};

const headersOf = (response) => Object.fromEntries(response.headers.entries());

const uploadUrl = await client.mutation(fn("files:generate_upload_url"), {});
report.uploadUrl = uploadUrl;
const uploaded = await fetch(uploadUrl, {
  method: "POST",
  headers: { "Content-Type": "application/x-test-binary" },
  body: new Blob([input]),
});
report.upload = { status: uploaded.status, body: await uploaded.json() };
const { storageId } = report.upload.body;

await client.mutation(fn("files:save"), { name: "blob.bin", storageId });
const fileUrl = await client.query(fn("files:url_of"), { name: "blob.bin" });
report.fileUrl = fileUrl;
report.metadata = await client.query(fn("files:metadata_of"), { name: "blob.bin" });
report.sentSha256 = createHash("sha256").update(input).digest("hex");

const downloaded = await fetch(fileUrl);
const bytes = Buffer.from(await downloaded.arrayBuffer());
writeFileSync(process.env.DOWNLOAD_FILE, bytes);
report.download = { status: downloaded.status, headers: headersOf(downloaded), length: bytes.length };

const ranged = await fetch(fileUrl, { headers: { Range: "bytes=1000-1999" } });
const slice = Buffer.from(await ranged.arrayBuffer());
report.range = {
  status: ranged.status,
  contentRange: ranged.headers.get("content-range"),
  matches: slice.equals(input.subarray(1000, 2000)),
};
const beyond = await fetch(fileUrl, { headers: { Range: `bytes=${input.length}-` } });
report.beyond = { status: beyond.status, body: await beyond.json() };

// A forged token: the last characters of the signature changed.
const forged = uploadUrl.slice(0, -4) + (uploadUrl.endsWith("AAAA") ? "BBBB" : "AAAA");
const refused = await fetch(forged, { method: "POST", body: new Blob([input]) });
report.forged = { status: refused.status, body: await refused.json() };

// Files from an action: ctx.storage.store / ctx.storage.get.
const textId = await client.action(fn("files:store_text"), { text: "héllo, storage" });
report.actionText = await client.action(fn("files:read_text"), { storageId: textId });

// Deleting: the URL stops serving.
await client.mutation(fn("files:remove"), { name: "blob.bin" });
const gone = await fetch(fileUrl);
report.afterDelete = { status: gone.status, body: await gone.json() };
report.urlAfterDelete = await client.query(fn("files:url_of"), { name: "blob.bin" });

console.log("@@storage " + JSON.stringify(report));
