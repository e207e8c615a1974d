// Sync (WebSocket) conformance scenarios for the real `ConvexClient` of the `convex`
// npm package, driven by tests/clients/test_sync_js_client.py.
//
//   CONVEX_URL=http://127.0.0.1:3210 CONVEX_ADMIN_KEY=... node sync_scenarios.mjs <name>
//
// Calls the functions of tests/clients/app/sync_app.py. Prints `@@event {...}` lines
// while it runs (the restart scenario waits for `restarted` on stdin after printing
// `mutation_sent`) and one `@@result {"name", "ok", "value" | "error", "frames"}`
// line at the end. `frames` is every WebSocket frame each client sent ("out") and
// received ("in"), with opens and closes, for failure messages. Values are made
// JSON-safe by `plain` (a bigint becomes {"bigint": "42"}).

import { ConvexClient, ConvexHttpClient } from "convex/browser";
import { anyApi, makeFunctionReference } from "convex/server";
import { ConvexError } from "convex/values";
import { createInterface } from "node:readline";
import NodeWs from "ws";

const url = process.env.CONVEX_URL;
const adminKey = process.env.CONVEX_ADMIN_KEY;
const scenarioName = process.argv[2];
if (!url || !adminKey || !scenarioName) {
  console.error("usage: CONVEX_URL=... CONVEX_ADMIN_KEY=... node sync_scenarios.mjs <scenario>");
  process.exit(2);
}

const fn = (name) => makeFunctionReference(name);
const started = Date.now();
const frames = [];
const clients = [];
const suffix = Math.random().toString(36).slice(2, 10);

/** A JSON-safe copy of a Convex value that keeps bigints and bytes apart. */
function plain(value) {
  if (value === undefined) return { undefined: true };
  if (value === null || typeof value === "boolean" || typeof value === "string") return value;
  if (typeof value === "number") return Object.is(value, -0) ? { number: "-0" } : value;
  if (typeof value === "bigint") return { bigint: value.toString() };
  if (value instanceof ArrayBuffer) return { ArrayBuffer: Buffer.from(value).toString("hex") };
  if (Array.isArray(value)) return value.map(plain);
  if (typeof value === "object") {
    return Object.fromEntries(Object.entries(value).map(([k, v]) => [k, plain(v)]));
  }
  return { other: String(value) };
}

function describeError(error) {
  const described = {
    class: error?.constructor?.name ?? typeof error,
    isConvexError: error instanceof ConvexError,
    message: error instanceof Error ? error.message : String(error),
  };
  if (error instanceof ConvexError) described.data = plain(error.data);
  return described;
}

function event(name, fields = {}) {
  console.log(`@@event ${JSON.stringify({ event: name, t: Date.now() - started, ...fields })}`);
}

/** A WebSocket class that records every frame of the client `label` into `frames`.
 * An incoming frame for which `drop(frame, conn)` is true is recorded but never
 * reaches the client, as if the network had lost it. */
function tappedWebSocket(Base, label, drop = () => false) {
  let connection = 0;
  const record = (entry) => frames.push({ t: Date.now() - started, client: label, ...entry });
  const parse = (data) => {
    const text = String(data);
    let frame;
    try {
      frame = JSON.parse(text);
    } catch {
      return text;
    }
    // Megabyte frames (big_results) are recorded by their shape, not their text.
    if (text.length > 100000) {
      const { type, partNumber, totalParts, transitionId } = frame;
      return { type, partNumber, totalParts, transitionId, length: text.length, summarized: true };
    }
    return frame;
  };
  return class TappedWebSocket extends Base {
    constructor(...args) {
      super(...args);
      const conn = connection++;
      this._conn = conn;
      this._tap = (entry) => record({ conn, ...entry });
      this._tap({ dir: "connect", url: String(args[0]) });
      this.addEventListener("open", () => this._tap({ dir: "open" }));
      this.addEventListener("message", (e) => this._tap({ dir: "in", frame: parse(e.data) }));
      this.addEventListener("close", (e) =>
        this._tap({ dir: "close", code: e.code, reason: String(e.reason ?? "") }),
      );
      this.addEventListener("error", (e) =>
        this._tap({ dir: "error", message: String(e?.message ?? e?.error ?? "") }),
      );
    }

    send(data) {
      this._tap({ dir: "out", frame: parse(data) });
      return super.send(data);
    }

    get onmessage() {
      return super.onmessage;
    }

    set onmessage(handler) {
      if (typeof handler !== "function") {
        super.onmessage = handler;
        return;
      }
      super.onmessage = (e) => {
        const frame = parse(e.data);
        if (drop(frame, this._conn)) {
          this._tap({ dir: "dropped", frame });
          return;
        }
        handler.call(this, e);
      };
    }
  };
}

/** A `ConvexClient` whose frames are recorded under `label`. On Node >= 22 the client
 * uses the global (undici) WebSocket, as it does without options; `useWs` makes it
 * use the `ws` package that `convex` depends on (what it bundles for older Node). */
function newClient(label, { useWs = false, drop } = {}) {
  const Base = useWs || typeof WebSocket === "undefined" ? NodeWs : WebSocket;
  const client = new ConvexClient(url, {
    webSocketConstructor: tappedWebSocket(Base, label, drop),
    unsavedChangesWarning: false,
  });
  clients.push(client);
  return client;
}

function framesOf(label, predicate = () => true) {
  return frames.filter((f) => f.client === label && predicate(f));
}

async function waitFor(what, predicate, timeoutMs = 30000) {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const value = predicate();
    if (value) return value;
    if (Date.now() > deadline)
      throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}`);
    await new Promise((resolve) => setTimeout(resolve, 20));
  }
}

async function settle(promise) {
  try {
    return { ok: true, value: plain(await promise) };
  } catch (error) {
    return { ok: false, error: describeError(error) };
  }
}

// -- stdin commands (restart scenario) -------------------------------------------------

const commands = [];
const stdinLines = createInterface({ input: process.stdin });
stdinLines.on("line", (line) => commands.push(line.trim()));

// -- scenarios -----------------------------------------------------------------------------

/** onUpdate on one client; mutations from another; the first sees each new value. */
async function subscribe({ useWs = false } = {}) {
  const channel = `subscribe-${suffix}`;
  const watcher = newClient("watcher", { useWs });
  const writer = newClient("writer", { useWs });
  const updates = [];
  const errors = [];
  watcher.onUpdate(
    anyApi.sync_app.bodies,
    { channel },
    (value) => updates.push(plain(value)),
    (error) => errors.push(describeError(error)),
  );
  await waitFor("the first value", () => updates.length >= 1 || errors.length >= 1);
  const first = await settle(writer.mutation(anyApi.sync_app.send, { channel, body: "one" }));
  await waitFor("the watcher to see 'one'", () => updates.at(-1)?.includes("one"));
  const second = await settle(writer.mutation(anyApi.sync_app.send, { channel, body: "two" }));
  await waitFor("the watcher to see 'two'", () => updates.at(-1)?.includes("two"));
  return { updates, errors, mutations: [first, second] };
}

/** An internal query over the socket: refused without admin auth, served with it. */
async function adminAuth() {
  const secret = fn("sync_app:secret");
  const anonymous = newClient("anonymous");
  const withoutAuth = await settle(anonymous.query(secret, { x: 1n }));

  const admin = newClient("admin");
  admin.setAdminAuth(adminKey);
  const withAuth = await settle(admin.query(secret, { x: 2n }));

  // A subscription made before admin auth is re-run once the client authenticates.
  const switching = newClient("switching");
  const events = [];
  switching.onUpdate(
    secret,
    { x: 3n },
    (value) => events.push({ value: plain(value) }),
    (error) => events.push({ error: describeError(error) }),
  );
  await waitFor("the subscription's first result", () => events.length >= 1);
  switching.setAdminAuth(adminKey);
  await waitFor("the subscription's result after admin auth", () => events.some((e) => e.value));
  return { withoutAuth, withAuth, subscriptionEvents: events };
}

/** ConvexError data through QueryFailed, MutationResponse and ActionResponse. */
async function convexErrors() {
  const client = newClient("errors");
  return {
    query: await settle(client.query(fn("sync_app:fail_query"), {})),
    mutation: await settle(client.mutation(fn("sync_app:fail_mutation"), {})),
    action: await settle(client.action(fn("sync_app:fail_action"), {})),
  };
}

/** The daemon is stopped (SIGTERM) and started again on the same port and data
 * under a connected client, which must reconnect, resubscribe and settle each pending
 * mutation once, applied once. Two mutations are pending when the test stops the
 * daemon (it waits for `mutation_sent`, then answers `restarted` on stdin):
 * - "lost-response": committed, but its MutationResponse is dropped on the way (the
 *   tap loses it), so the client must re-send it after reconnecting and the server
 *   must answer from its record of (sessionId, requestId) without running it again;
 * - "in-flight": a mutation that sleeps 0.5 s, running when the SIGTERM arrives. */
async function restart() {
  const channel = `restart-${suffix}`;
  let lostRequestId;
  const drop = (frame, conn) =>
    conn === 0 && frame?.type === "MutationResponse" && frame.requestId === lostRequestId;
  const watcher = newClient("watcher", { drop });
  const updates = [];
  const errors = [];
  watcher.onUpdate(
    fn("sync_app:bodies"),
    { channel },
    (value) => updates.push({ t: Date.now() - started, value: plain(value) }),
    (error) => errors.push(describeError(error)),
  );
  await waitFor("the first value", () => updates.length >= 1);

  const settlements = { "lost-response": [], "in-flight": [] };
  const track = (body, promise) =>
    promise.then(
      (value) => settlements[body].push({ t: Date.now() - started, ok: true, value: plain(value) }),
      (error) =>
        settlements[body].push({ t: Date.now() - started, ok: false, error: describeError(error) }),
    );
  const sentMutation = (body) =>
    framesOf(
      "watcher",
      (f) => f.dir === "out" && f.frame?.type === "Mutation" && f.frame.args?.[0]?.body === body,
    )[0];

  track("lost-response", watcher.mutation(fn("sync_app:send"), { channel, body: "lost-response" }));
  lostRequestId = (await waitFor("the first Mutation frame", () => sentMutation("lost-response")))
    .frame.requestId;
  await waitFor(
    "the dropped MutationResponse",
    () => framesOf("watcher", (f) => f.dir === "dropped").length,
  );
  track(
    "in-flight",
    watcher.mutation(fn("sync_app:send_slow"), { channel, body: "in-flight", seconds: 0.5 }),
  );
  await waitFor("the second Mutation frame", () => sentMutation("in-flight"));
  event("mutation_sent");
  await waitFor("the test to restart the daemon", () => commands.includes("restarted"), 180000);
  const restartedAt = Date.now() - started;

  await waitFor(
    "both pending mutations to settle",
    () => settlements["lost-response"].length && settlements["in-flight"].length,
    90000,
  );
  const writer = newClient("writer");
  const after = await settle(writer.mutation(fn("sync_app:send"), { channel, body: "after" }));
  await waitFor(
    "the watcher to see 'after' (resubscribed)",
    () => updates.at(-1)?.value?.includes?.("after"),
    60000,
  );
  // Time for a duplicate (a second settlement or a second row) to show up.
  await new Promise((resolve) => setTimeout(resolve, 1500));
  const finalRows = await settle(writer.query(fn("sync_app:rows"), { channel }));
  const firstClose = framesOf("watcher", (f) => f.conn === 0 && f.dir === "close")[0];
  return {
    restartedAt,
    firstClosedAt: firstClose?.t ?? null,
    lostRequestId,
    updates,
    errors,
    settlements,
    after,
    finalRows,
  };
}

/** A protocol timestamp (base64 of 8 little-endian bytes) as a BigInt. */
function u64(encoded) {
  return Buffer.from(encoded, "base64").readBigUInt64LE(0);
}

/** The daemon is restarted from a backup older than what the client has seen (the test
 * waits for `observed`, then answers `restored` on stdin). The client reconnects with a
 * maxObservedTimestamp the restored database never published; the clock has passed it,
 * so the server serves the restored data at a timestamp no older than that (as a
 * clock-driven backend does), without waiting for a write. */
async function restore() {
  const channel = `restore-${suffix}`;
  const watcher = newClient("watcher");
  const updates = [];
  const errors = [];
  watcher.onUpdate(
    fn("sync_app:bodies"),
    { channel },
    (value) => updates.push({ t: Date.now() - started, value: plain(value) }),
    (error) => errors.push(describeError(error)),
  );
  await waitFor("the first value", () => updates.length >= 1);
  const before = await settle(
    watcher.mutation(fn("sync_app:send"), { channel, body: "before-restore" }),
  );
  await waitFor("the watcher to see 'before-restore'", () =>
    updates.at(-1)?.value?.includes?.("before-restore"),
  );
  const tsOf = (f) =>
    f.frame?.type === "Transition"
      ? u64(f.frame.endVersion.ts)
      : f.frame?.type === "MutationResponse" && f.frame.success
        ? u64(f.frame.ts)
        : 0n;
  const observed = framesOf("watcher", (f) => f.dir === "in")
    .map(tsOf)
    .reduce((a, b) => (a > b ? a : b), 0n);
  event("observed");
  await waitFor("the test to restore the backup", () => commands.includes("restored"), 180000);
  const restoredAt = Date.now() - started;
  const served = await waitFor(
    "the restored data",
    () => updates.find((u) => u.t > restoredAt && !u.value?.includes?.("before-restore")),
    120000,
  );
  event("served");
  const http = new ConvexHttpClient(url);
  const after = await settle(http.mutation(fn("sync_app:send"), { channel, body: "after-restore" }));
  await waitFor(
    "the watcher to see 'after-restore'",
    () => updates.at(-1)?.value?.includes?.("after-restore"),
    120000,
  );
  return {
    before,
    after,
    observed: observed.toString(),
    restoredAt,
    served,
    updates,
    errors,
  };
}

/** onPaginatedUpdate_experimental with loadMore while another client inserts. */
async function pagination() {
  const channel = `pages-${suffix}`;
  const reader = newClient("reader");
  const writer = newClient("writer");
  const send = (body) => writer.mutation(fn("sync_app:send"), { channel, body });
  for (let i = 0; i < 6; i++) await send(`m${i}`);

  const snapshots = [];
  let latest;
  reader.onPaginatedUpdate_experimental(
    fn("sync_app:page"),
    { channel },
    { initialNumItems: 2 },
    (result) => {
      latest = result;
      snapshots.push({
        t: Date.now() - started,
        status: result.status,
        bodies: result.results.map((row) => row.body),
        ids: result.results.map((row) => row.id),
      });
    },
    (error) => snapshots.push({ t: Date.now() - started, error: describeError(error) }),
  );
  await waitFor("the first page", () => latest?.status === "CanLoadMore");

  const inserted = [];
  const loadMoreCalls = [];
  for (let round = 0; latest.status !== "Exhausted"; round++) {
    if (round > 10) throw new Error("pagination did not finish in 10 rounds");
    // Insert (newest first: onto the first page) while the next page loads.
    const bodies = round === 0 ? ["n0"] : round === 1 ? ["n1", "n2"] : [];
    const writes = bodies.map((body) => send(body));
    loadMoreCalls.push(latest.loadMore(2));
    inserted.push(...bodies);
    await Promise.all(writes);
    await waitFor(
      `round ${round}: the new page and the inserted rows`,
      () =>
        latest.status !== "LoadingMore" &&
        latest.status !== "LoadingFirstPage" &&
        bodies.every((body) => latest.results.some((row) => row.body === body)),
    );
  }
  // Let page splits (a page that grew past 2 x initialNumItems) finish: every page
  // query the reader holds has a result and no two start at the same cursor.
  await waitFor("page splits to finish", () => {
    const pages = new Map();
    for (const f of framesOf("reader")) {
      if (f.dir === "out" && f.frame?.type === "ModifyQuerySet") {
        for (const m of f.frame.modifications) {
          if (m.type === "Add") pages.set(m.queryId, { cursor: m.args[0].paginationOpts.cursor });
          else pages.delete(m.queryId);
        }
      } else if (f.dir === "in" && f.frame?.type === "Transition") {
        for (const m of f.frame.modifications) {
          if (m.type === "QueryUpdated" && pages.has(m.queryId)) pages.get(m.queryId).done = true;
        }
      }
    }
    const cursors = [...pages.values()].map((page) => page.cursor);
    return (
      [...pages.values()].every((page) => page.done) && new Set(cursors).size === cursors.length
    );
  });
  const finalRows = await settle(writer.query(fn("sync_app:rows"), { channel }));
  return { inserted, loadMoreCalls, snapshots, finalRows };
}

/** The value big_results:blob returns (tests/clients/app/big_results.py). */
function expectedBlob(version, parts, segments) {
  const body = 'abc é"\\ 😀 xyz|'.repeat(segments);
  return { version, parts: Array.from({ length: parts }, (_, i) => `${version}:${i}:${body}`) };
}

/** A subscription whose result is ~12 MB of JSON (over the 5 MB threshold: it comes
 * in TransitionChunks) on the default WebSocket and on `ws`, then a new version of it. */
async function bigResults() {
  const channel = `big-${suffix}`;
  const parts = 3000;
  const segments = 125;
  const args = { channel, parts, segments };
  const labels = ["big_default", "big_ws"];
  const seen = Object.fromEntries(labels.map((label) => [label, []]));
  const errors = [];
  for (const label of labels) {
    const client = newClient(label, { useWs: label === "big_ws" });
    client.onUpdate(
      fn("big_results:blob"),
      args,
      (value) => {
        const expected = expectedBlob(value?.version, parts, segments);
        seen[label].push({
          t: Date.now() - started,
          version: value?.version,
          parts: value?.parts?.length,
          chars: value?.parts?.reduce((n, part) => n + part.length, 0),
          intact:
            value?.parts?.length === parts &&
            value.parts.every((part, i) => part === expected.parts[i]),
        });
      },
      (error) => errors.push({ label, error: describeError(error) }),
    );
  }
  const reached = (version) => () =>
    labels.every((label) => seen[label].some((v) => v.version === version)) || errors.length;
  await waitFor("the first big result on every client", reached(0), 120000);
  const writer = newClient("big_writer");
  const bump = await settle(writer.mutation(fn("big_results:bump"), { channel }));
  await waitFor("the next version on every client", reached(1), 120000);
  const expectedChars = expectedBlob(0, parts, segments).parts.reduce((n, p) => n + p.length, 0);
  return { seen, errors, bump, expectedChars };
}

const scenarios = {
  big_results: bigResults,
  subscribe,
  subscribe_ws: () => subscribe({ useWs: true }),
  admin_auth: adminAuth,
  convex_errors: convexErrors,
  restart,
  restore,
  pagination,
};

async function main() {
  const scenario = scenarios[scenarioName];
  if (!scenario) throw new Error(`unknown scenario ${scenarioName}`);
  const result = { name: scenarioName };
  try {
    result.value = await scenario();
    result.ok = true;
  } catch (error) {
    result.ok = false;
    result.error = { message: String(error?.message ?? error), stack: String(error?.stack) };
  }
  result.frames = frames;
  console.log(`@@result ${JSON.stringify(result)}`);
  await Promise.allSettled(clients.map((client) => client.close()));
  process.exit(0);
}

main().catch((error) => {
  console.error(error);
  process.exit(1);
});
