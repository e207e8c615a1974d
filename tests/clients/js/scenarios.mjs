// Conformance scenarios for the real `ConvexHttpClient` of the `convex` npm package.
//
//   CONVEX_URL=http://127.0.0.1:3210 CONVEX_ADMIN_KEY=... node scenarios.mjs [name...]
//
// Calls the functions of tests/clients/app/conformance.py and prints one line per
// scenario: `@@scenario {"name", "ok", "value" | "error", "wire"}`. Values are spelled
// out with their JavaScript types (see `describe`), so the Python test can tell 1n
// from 1, -0 from 0 and an ArrayBuffer from anything else. `wire` holds every HTTP
// request the client made and the response it got, for failure messages.

import { ConvexHttpClient } from "convex/browser";
import { makeFunctionReference } from "convex/server";
import { ConvexError } from "convex/values";

const url = process.env.CONVEX_URL;
const adminKey = process.env.CONVEX_ADMIN_KEY;
if (!url || !adminKey) {
  console.error("CONVEX_URL and CONVEX_ADMIN_KEY must be set");
  process.exit(2);
}

const fn = (name) => makeFunctionReference(name);

/** A JSON description of a Convex value that keeps its JavaScript type. */
function describe(value) {
  if (value === null) return null;
  if (value === undefined) return { undefined: true };
  if (typeof value === "boolean" || typeof value === "string") return value;
  if (typeof value === "number") return { number: Object.is(value, -0) ? "-0" : String(value) };
  if (typeof value === "bigint") return { bigint: value.toString() };
  if (value instanceof ArrayBuffer) return { ArrayBuffer: Buffer.from(value).toString("hex") };
  if (Array.isArray(value)) return value.map(describe);
  const proto = Object.getPrototypeOf(value);
  if (proto === Object.prototype || proto === null) {
    return {
      object: Object.fromEntries(Object.entries(value).map(([k, v]) => [k, describe(v)])),
    };
  }
  return { other: Object.prototype.toString.call(value) };
}

function describeError(error) {
  const described = {
    class: error?.constructor?.name ?? typeof error,
    isConvexError: error instanceof ConvexError,
    message: error instanceof Error ? error.message : String(error),
  };
  if (error instanceof ConvexError) described.data = describe(error.data);
  return described;
}

/** A fetch that records each exchange into `wire`. */
function recordingFetch(wire) {
  return async (input, init = {}) => {
    const exchange = {
      request: {
        method: init.method ?? "GET",
        url: String(input),
        headers: { ...(init.headers ?? {}) },
        body: init.body ?? null,
      },
    };
    wire.push(exchange);
    try {
      const response = await fetch(input, init);
      const text = await response.clone().text();
      exchange.response = {
        status: response.status,
        headers: Object.fromEntries(response.headers.entries()),
        body: text,
      };
      return response;
    } catch (error) {
      exchange.fetchError = String(error);
      throw error;
    }
  };
}

function newClient(wire) {
  return new ConvexHttpClient(url, { fetch: recordingFetch(wire), logger: false });
}

const ECHO_ARGS = {
  int: 1n,
  intMax: 2n ** 63n - 1n,
  intMin: -(2n ** 63n),
  bytes: new Uint8Array([0, 255, 16, 1]).buffer,
  empty: new ArrayBuffer(0),
  nan: NaN,
  inf: Infinity,
  ninf: -Infinity,
  negzero: -0,
  zero: 0,
  float: 1.5,
  whole: 2,
  text: "é😀",
  nested: { list: [1n, { b: new Uint8Array([7]).buffer }, null, true, [-0]] },
};

const IDENTITY = {
  subject: "user1",
  issuer: "https://issuer.example.com",
  name: "Ada Lovelace",
  email: "ada@example.com",
};

const scenarios = {
  // Queries and value round trips.
  query_echo_values: (c) => c.query(fn("conformance:echo"), ECHO_ARGS),
  query_server_decodes_values: (c) => c.query(fn("conformance:describe"), ECHO_ARGS),
  query_server_encodes_values: (c) => c.query(fn("conformance:special_values"), {}),
  query_no_args: (c) => c.query(fn("conformance:echo")),

  // Mutations and actions.
  mutation_insert_then_query: async (c) => {
    const id = await c.mutation(fn("conformance:insert"), { body: "hello", count: 5n });
    const doc = await c.query(fn("conformance:get"), { id });
    return { id, doc };
  },
  mutation_void_returns_null: (c) => c.mutation(fn("conformance:nothing"), {}),
  mutation_queue_keeps_order: async (c) => {
    const ids = await Promise.all(
      [0, 1, 2, 3].map((i) => c.mutation(fn("conformance:insert"), { body: `q${i}`, count: BigInt(i) })),
    );
    const docs = [];
    for (const id of ids) docs.push(await c.query(fn("conformance:get"), { id }));
    return docs.map((d) => [d.body, d._creationTime]);
  },
  action_calls_mutation_and_query: (c) =>
    c.action(fn("conformance:insert_and_read"), { body: "from action" }),

  // Errors.
  convex_error_in_mutation: (c) => c.mutation(fn("conformance:fail_with_data"), {}),
  convex_error_string_in_query: (c) => c.query(fn("conformance:fail_with_string"), {}),
  convex_error_in_action: (c) => c.action(fn("conformance:fail_in_action"), {}),
  plain_error_in_query: (c) => c.query(fn("conformance:fail_plain"), {}),
  argument_validation_error: (c) =>
    c.mutation(fn("conformance:insert"), { body: "x", count: 5 }),
  unknown_function: (c) => c.query(fn("conformance:does_not_exist"), {}),
  unknown_module: (c) => c.query(fn("nowhere:nothing"), {}),

  // Internal functions and admin auth.
  internal_query_as_client: (c) => c.query(fn("conformance:secret"), { x: 1n }),
  internal_query_as_admin: (c) => {
    c.setAdminAuth(adminKey);
    return c.query(fn("conformance:secret"), { x: 1n });
  },
  internal_function_endpoint_as_admin: (c) => {
    c.setAdminAuth(adminKey);
    return c.function(fn("conformance:secret"), undefined, { x: 2n });
  },
  internal_function_endpoint_as_client: (c) =>
    c.function(fn("conformance:secret"), undefined, { x: 2n }),
  bad_admin_key: (c) => {
    c.setAdminAuth("convex-self-hosted|0000");
    return c.query(fn("conformance:echo"), {});
  },

  // Identities.
  identity_anonymous: (c) => c.query(fn("conformance:whoami"), {}),
  identity_admin_without_identity: (c) => {
    c.setAdminAuth(adminKey);
    return c.query(fn("conformance:whoami"), {});
  },
  identity_acting_as_user: (c) => {
    c.setAdminAuth(adminKey, IDENTITY);
    return c.query(fn("conformance:whoami"), {});
  },
  identity_acting_as_user_in_action: (c) => {
    c.setAdminAuth(adminKey, { ...IDENTITY, tokenIdentifier: "custom-token-id" });
    return c.action(fn("conformance:whoami_in_action"), {});
  },
};

const only = process.argv.slice(2);
for (const [name, scenario] of Object.entries(scenarios)) {
  if (only.length && !only.includes(name)) continue;
  const wire = [];
  let result;
  try {
    result = { name, ok: true, value: describe(await scenario(newClient(wire))) };
  } catch (error) {
    result = { name, ok: false, error: describeError(error) };
  }
  result.wire = wire;
  process.stdout.write(`@@scenario ${JSON.stringify(result)}\n`);
}
