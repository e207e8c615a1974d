// Talking to the daemon: the admin key (sessionStorage only, never a cookie),
// JSON requests with `Authorization: Convex <key>`, and errors as ApiError.

const KEY = "convex-dashboard.adminKey";

export class ApiError extends Error {
  constructor(status, code, message) {
    super(message);
    this.status = status;
    this.code = code;
  }
}

let onUnauthorized = () => {};

/** Called (once per 401) when the daemon refuses the key: back to the login screen. */
export function setUnauthorizedHandler(handler) {
  onUnauthorized = handler;
}

export function adminKey() {
  return sessionStorage.getItem(KEY);
}

export function setAdminKey(key) {
  sessionStorage.setItem(KEY, key);
}

export function clearAdminKey() {
  sessionStorage.removeItem(KEY);
}

/** base64 of the UTF-8 bytes of a string (btoa alone only takes Latin-1). */
export function base64Utf8(text) {
  const bytes = new TextEncoder().encode(text);
  let binary = "";
  for (const b of bytes) binary += String.fromCharCode(b);
  return btoa(binary);
}

/** `Convex <key>`, or `Convex <key>:<base64 JSON identity>` to act as a user. */
export function authorization(key, identity) {
  if (identity === undefined || identity === null) return `Convex ${key}`;
  return `Convex ${key}:${base64Utf8(JSON.stringify(identity))}`;
}

async function errorFrom(response) {
  let code = `Http${response.status}`;
  let message = `${response.status} ${response.statusText}`.trim();
  const text = await response.text().catch(() => "");
  try {
    const body = JSON.parse(text);
    if (body && typeof body === "object") {
      code = body.code || code;
      message = body.message || message;
    }
  } catch {
    if (text) message = text.slice(0, 300);
  }
  if (response.status === 404 && code === "NotFound") {
    message = "This deployment does not offer this feature (the endpoint is missing).";
  }
  return new ApiError(response.status, code, message);
}

/**
 * One request to the daemon. `body` (if any) is sent as JSON; the answer is
 * parsed as JSON unless `as: "text"`. Throws ApiError; a 401 also logs out.
 */
export async function request(method, path, { body, identity, signal, as = "json", key } = {}) {
  const useKey = key ?? adminKey();
  const headers = {};
  if (useKey) headers.Authorization = authorization(useKey, identity);
  const init = { method, headers, signal, credentials: "omit", cache: "no-store" };
  if (body !== undefined) {
    headers["Content-Type"] = "application/json";
    init.body = JSON.stringify(body);
  }
  let response;
  try {
    response = await fetch(path, init);
  } catch (e) {
    if (e.name === "AbortError") throw e;
    throw new ApiError(0, "NetworkError", `Could not reach the daemon: ${e.message}`);
  }
  if (!response.ok) {
    const error = await errorFrom(response);
    if (response.status === 401 && key === undefined) onUnauthorized(error);
    throw error;
  }
  return as === "text" ? response.text() : response.json();
}

export const get = (path, options) => request("GET", path, options);
export const post = (path, body, options = {}) => request("POST", path, { ...options, body });

/** Query string from an object, leaving out null/undefined/"" values. */
export function query(params) {
  const search = new URLSearchParams();
  for (const [name, value] of Object.entries(params)) {
    if (value !== undefined && value !== null && value !== "") search.set(name, String(value));
  }
  const text = search.toString();
  return text ? `?${text}` : "";
}
