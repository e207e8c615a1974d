// User-auth scenarios for the real `convex` npm clients (1.48.0), driven by
// tests/clients/test_js_auth.py against a daemon running tests/clients/auth_app.
//
//   CONVEX_URL=... CONVEX_SITE_URL=... ISSUER_URL=... node auth_scenarios.mjs <name>
//
// Tokens come from the test's local issuer (`POST ${ISSUER_URL}/mint`), as an app
// gets them from its auth provider. Prints one `@@result {"name", "ok", "value" |
// "error", "frames"}` line; `frames` is every WebSocket frame each client sent and
// received (tokens shortened), shown by failing tests.

import { ConvexClient, ConvexHttpClient } from "convex/browser";
import { makeFunctionReference } from "convex/server";
import NodeWs from "ws";

const url = process.env.CONVEX_URL;
const siteUrl = process.env.CONVEX_SITE_URL;
const issuerUrl = process.env.ISSUER_URL;
const scenarioName = process.argv[2];
if (!url || !siteUrl || !issuerUrl || !scenarioName) {
  console.error("usage: CONVEX_URL=... CONVEX_SITE_URL=... ISSUER_URL=... node auth_scenarios.mjs <name>");
  process.exit(2);
}

const fn = (name) => makeFunctionReference(name);
const whoami = fn("users:whoami");
const started = Date.now();
const frames = [];
const clients = [];
const elapsed = () => Date.now() - started;

/** A token from the local issuer: kind "oidc" | "custom", variant "valid" | "expired" | ... */
async function mint({ kind = "oidc", variant = "valid", claims = {}, ttl = 300 } = {}) {
  const response = await fetch(`${issuerUrl}/mint`, {
    method: "POST",
    body: JSON.stringify({ kind, variant, claims, ttl }),
  });
  if (!response.ok) throw new Error(`minting a token failed: ${response.status}`);
  return await response.text();
}

function shorten(frame) {
  if (frame?.type === "Authenticate" && typeof frame.value === "string") {
    return { ...frame, value: `...${frame.value.slice(-8)}` };
  }
  return frame;
}

/** A WebSocket class recording every frame of the client `label` into `frames`. */
function tappedWebSocket(label) {
  let connection = 0;
  const parse = (data) => {
    try {
      return JSON.parse(String(data));
    } catch {
      return String(data);
    }
  };
  const Base = typeof WebSocket === "undefined" ? NodeWs : WebSocket;
  return class TappedWebSocket extends Base {
    constructor(...args) {
      super(...args);
      const conn = connection++;
      const tap = (entry) => frames.push({ t: elapsed(), client: label, conn, ...entry });
      this._tap = tap;
      tap({ dir: "connect" });
      this.addEventListener("message", (e) => tap({ dir: "in", frame: shorten(parse(e.data)) }));
      this.addEventListener("close", (e) => tap({ dir: "close", code: e.code, reason: String(e.reason ?? "") }));
    }

    send(data) {
      this._tap({ dir: "out", frame: shorten(parse(data)) });
      return super.send(data);
    }
  };
}

function newClient(label, options = {}) {
  const client = new ConvexClient(url, {
    webSocketConstructor: tappedWebSocket(label),
    unsavedChangesWarning: false,
    ...options,
  });
  clients.push(client);
  return client;
}

function framesOf(label, predicate = () => true) {
  return frames.filter((f) => f.client === label && predicate(f));
}

const incoming = (label, type) =>
  framesOf(label, (f) => f.dir === "in" && f.frame?.type === type).map((f) => ({ t: f.t, conn: f.conn, ...f.frame }));

async function waitFor(what, predicate, timeoutMs = 30000) {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const value = predicate();
    if (value) return value;
    if (Date.now() > deadline) throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}`);
    await new Promise((resolve) => setTimeout(resolve, 20));
  }
}

async function settle(promise) {
  try {
    return { ok: true, value: await promise };
  } catch (error) {
    return { ok: false, error: String(error?.message ?? error) };
  }
}

/** setAuth with a fetcher handing out tokens named gen-1, gen-2, ...; a subscription
 * to users:whoami follows each new identity. */
function authenticatedClient(label, { ttl, kind = "oidc", clientOptions = {} }) {
  const client = newClient(label, clientOptions);
  const state = { fetches: [], changes: [], updates: [], errors: [] };
  client.setAuth(
    async ({ forceRefreshToken }) => {
      const n = state.fetches.length + 1;
      state.fetches.push({ t: elapsed(), forceRefreshToken, n });
      return await mint({ kind, claims: { name: `gen-${n}` }, ttl });
    },
    (isAuthenticated) => state.changes.push({ t: elapsed(), isAuthenticated }),
  );
  client.onUpdate(
    whoami,
    {},
    (value) => state.updates.push({ t: elapsed(), value }),
    (error) => state.errors.push(String(error?.message ?? error)),
  );
  const seen = (name) => state.updates.some((u) => u.value?.name === name);
  return { client, state, seen };
}

// -- scenarios ------------------------------------------------------------------------

/** Tokens live 13 s: the client refreshes 3 s after each confirmation (its default
 * leeway is 10 s), and right after the first. The subscription follows each token. */
async function refresh() {
  const { client, state, seen } = authenticatedClient("user", { ttl: 13 });
  await waitFor("the identity of the third token", () => seen("gen-3"), 40000);
  const mutation = await settle(client.mutation(fn("users:remember"), { note: "hello" }));
  const action = await settle(client.action(fn("users:whoami_action"), {}));
  const notes = await settle(client.query(fn("users:notes"), {}));
  return { ...state, mutation, action, notes, authErrors: incoming("user", "AuthError") };
}

/** The client would refresh only long after expiry (negative leeway), so the server
 * ends the session when the token expires: AuthError (authUpdateAttempted false).
 * The client fetches a fresh token, reconnects, and the subscription goes on. */
async function expiry() {
  const { state, seen } = authenticatedClient("user", {
    ttl: 3,
    clientOptions: { authRefreshTokenLeewaySeconds: -60 },
  });
  await waitFor("the identity of the second token", () => seen("gen-2"), 20000);
  await waitFor("the identity of the third token (after expiry)", () => seen("gen-3"), 40000);
  return { ...state, authErrors: incoming("user", "AuthError") };
}

/** Each bad token: AuthError, then (the fetcher has nothing better) the client gives up
 * auth (onChange false) and goes on unauthenticated. */
async function refused() {
  const outcomes = {};
  for (const variant of ["wrong_aud", "wrong_iss", "expired", "tampered"]) {
    const token = await mint({ variant });
    const client = newClient(variant);
    const state = { fetches: [], changes: [], updates: [] };
    client.setAuth(
      async ({ forceRefreshToken }) => {
        state.fetches.push({ forceRefreshToken });
        return token;
      },
      (isAuthenticated) => state.changes.push(isAuthenticated),
    );
    client.onUpdate(whoami, {}, (value) => state.updates.push(value));
    await waitFor(`${variant}: auth given up`, () => state.changes.includes(false));
    await waitFor(`${variant}: the unauthenticated result`, () => state.updates.length >= 1);
    outcomes[variant] = { ...state, authErrors: incoming(variant, "AuthError") };
  }
  // A bad cached token, then a good fresh one: the refresh dance recovers.
  const client = newClient("recover");
  const state = { fetches: [], changes: [], updates: [] };
  client.setAuth(
    async ({ forceRefreshToken }) => {
      state.fetches.push({ forceRefreshToken });
      return await mint({
        variant: state.fetches.length === 1 ? "expired" : "valid",
        claims: { name: `fetch-${state.fetches.length}` },
      });
    },
    (isAuthenticated) => state.changes.push(isAuthenticated),
  );
  client.onUpdate(whoami, {}, (value) => state.updates.push(value));
  await waitFor("recovered identity", () => state.updates.some((value) => value?.name));
  outcomes.recover = { ...state, authErrors: incoming("recover", "AuthError") };
  return outcomes;
}

/** A customJwt provider (ES256) over the socket. */
async function customJwt() {
  const { state, seen } = authenticatedClient("custom", { ttl: 300, kind: "custom" });
  await waitFor("the custom identity", () => seen("gen-1") || seen("gen-2"));
  return state;
}

/** ConvexHttpClient.setAuth, and HTTP actions with a Bearer token. */
async function http() {
  const client = new ConvexHttpClient(url);
  const anonymous = await settle(client.query(whoami, {}));
  client.setAuth(await mint({ claims: { name: "Ada", email: "ada@example.com" } }));
  const result = {
    anonymous,
    query: await settle(client.query(whoami, {})),
    mutation: await settle(client.mutation(fn("users:remember"), { note: "from http" })),
    action: await settle(client.action(fn("users:whoami_action"), {})),
  };
  client.setAuth(await mint({ kind: "custom", claims: { sub: "svc" } }));
  result.custom = await settle(client.query(whoami, {}));
  result.refused = {};
  for (const variant of ["wrong_aud", "wrong_iss", "expired", "tampered"]) {
    client.setAuth(await mint({ variant }));
    result.refused[variant] = {
      query: await settle(client.query(whoami, {})),
      mutation: await settle(client.mutation(fn("users:remember"), { note: variant })),
    };
  }
  result.httpAction = {};
  for (const variant of ["valid", "expired"]) {
    const response = await fetch(`${siteUrl}/whoami`, {
      headers: { Authorization: `Bearer ${await mint({ variant })}` },
    });
    result.httpAction[variant] = { status: response.status, body: await response.json() };
  }
  const admin = new ConvexHttpClient(url);
  result.notes = await settle(admin.query(fn("users:notes"), {}));
  return result;
}

const scenarios = { refresh, expiry, refused, custom_jwt: customJwt, http };

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
