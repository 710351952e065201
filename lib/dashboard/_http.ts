/**
 * Private HTTP helpers for the dashboard: the Host-header check against DNS
 * rebinding, the session token, bounded JSON bodies, JSON replies and assets.
 *
 * @module
 */
import { createHash, timingSafeEqual } from "node:crypto";
import { ProtocolError } from "../net/wire.ts";
import { RemoteError, TimeoutError } from "../errors.ts";

/** Header every API request carries the session token in. */
export const TOKEN_HEADER = "x-shoal-token";

const encoder = new TextEncoder();

/** Security headers on every reply. */
const BASE_HEADERS: Record<string, string> = {
  "x-content-type-options": "nosniff",
  "referrer-policy": "no-referrer",
  "x-frame-options": "DENY",
  "cache-control": "no-store",
};

/** Content Security Policy of the page: nothing but its own origin. */
const CSP = "default-src 'none'; script-src 'self'; style-src 'self'; " +
  "img-src 'self' data:; connect-src 'self'; base-uri 'none'; " +
  "form-action 'none'; frame-ancestors 'none'";

/** An error with the HTTP status it answers with. */
export class HttpError extends Error {
  /** HTTP status code. */
  readonly status: number;
  /**
   * Creates the error.
   *
   * @param status HTTP status.
   * @param message Readable message shown to the user.
   */
  constructor(status: number, message: string) {
    super(message);
    this.name = "HttpError";
    this.status = status;
  }
}

/** A JSON reply. */
export function json(body: unknown, status = 200): Response {
  return new Response(JSON.stringify(body), {
    status,
    headers: {
      ...BASE_HEADERS,
      "content-type": "application/json; charset=utf-8",
    },
  });
}

/** A JSON error reply `{ "error": message }`. */
export function jsonError(
  status: number,
  message: string,
  headers: Record<string, string> = {},
): Response {
  const response = json({ error: message }, status);
  for (const [name, value] of Object.entries(headers)) {
    response.headers.set(name, value);
  }
  return response;
}

/** First line of an error message, bounded. */
function firstLine(error: unknown): string {
  const text = error instanceof Error ? error.message : String(error);
  const line = text.split("\n")[0] ?? "";
  return line.length > 300 ? line.slice(0, 300) + "…" : line;
}

/** The error's first line, prefixed with `context` unless it starts with it. */
function inContext(context: string, error: unknown): string {
  const line = firstLine(error);
  return line.startsWith(context) ? line : `${context}: ${line}`;
}

/**
 * Turns an error into an HTTP status and a readable message; `context` says
 * what was being done ("Cannot list files").
 */
export function describeError(
  error: unknown,
  context: string,
): { status: number; message: string } {
  if (error instanceof HttpError) {
    return { status: error.status, message: error.message };
  }
  if (
    error instanceof ProtocolError || error instanceof TypeError ||
    error instanceof RangeError
  ) {
    return { status: 400, message: inContext(context, error) };
  }
  if (error instanceof Deno.errors.NotFound) {
    return { status: 404, message: inContext(context, error) };
  }
  if (error instanceof Deno.errors.AlreadyExists) {
    return { status: 409, message: inContext(context, error) };
  }
  if (
    error instanceof Deno.errors.ConnectionRefused ||
    error instanceof Deno.errors.ConnectionReset ||
    error instanceof Deno.errors.ConnectionAborted ||
    error instanceof Deno.errors.NotConnected ||
    error instanceof TimeoutError
  ) {
    return {
      status: 502,
      message: `${context}: the tracker is unreachable (${firstLine(error)})`,
    };
  }
  if (error instanceof RemoteError) {
    return { status: 502, message: inContext(context, error) };
  }
  return { status: 500, message: inContext(context, error) };
}

/** A static asset held in memory. */
export interface Asset {
  /** Bytes to send. */
  body: Uint8Array<ArrayBuffer>;
  /** Its `content-type`. */
  type: string;
}

const TYPES: Record<string, string> = {
  html: "text/html; charset=utf-8",
  js: "text/javascript; charset=utf-8",
  css: "text/css; charset=utf-8",
};

/**
 * Reads the fixed set of web assets into memory, relative to `base` (a
 * file or, for a published package, an https URL). They hold no secret: the
 * page gets the session token from the address the peer prints.
 */
export async function loadAssets(base: URL): Promise<Map<string, Asset>> {
  const files = ["index.html", "app.js", "style.css"] as const;
  const assets = new Map<string, Asset>();
  for (const file of files) {
    const url = new URL(file, base);
    let text: string;
    if (url.protocol === "file:") {
      // Also works for files a `deno compile --include web/` binary embeds.
      text = await Deno.readTextFile(url);
    } else {
      const response = await fetch(url);
      if (!response.ok) {
        await response.body?.cancel();
        throw new Deno.errors.NotFound(
          `Cannot load dashboard asset ${url.href}: status ${response.status}`,
        );
      }
      text = await response.text();
    }
    const type = TYPES[file.slice(file.lastIndexOf(".") + 1)]!;
    assets.set(`/${file}`, { body: encoder.encode(text), type });
  }
  assets.set("/", assets.get("/index.html")!);
  return assets;
}

/** Replies with an in-memory asset. */
export function assetResponse(asset: Asset, method: string): Response {
  return new Response(method === "HEAD" ? null : asset.body, {
    headers: {
      ...BASE_HEADERS,
      "content-type": asset.type,
      "content-security-policy": CSP,
    },
  });
}

/** A new random session token (32 bytes, hex). */
export function newToken(): string {
  const bytes = crypto.getRandomValues(new Uint8Array(32));
  return Array.from(bytes, (b) => b.toString(16).padStart(2, "0")).join("");
}

/** Shortest and longest token {@linkcode checkToken} accepts. */
export const TOKEN_LENGTH = { min: 16, max: 256 } as const;

/**
 * Checks a token chosen by the user: 16 to 256 characters that need no
 * escaping in a URL or a header (letters, digits, `-`, `.`, `_`, `~`).
 *
 * @throws {RangeError} If it is too short or too long.
 * @throws {TypeError} If it holds another character.
 */
export function checkToken(token: string): string {
  if (token.length < TOKEN_LENGTH.min || token.length > TOKEN_LENGTH.max) {
    throw new RangeError(
      `Cannot use the dashboard token: it is ${token.length} characters, not ${TOKEN_LENGTH.min} to ${TOKEN_LENGTH.max}`,
    );
  }
  const bad = /[^A-Za-z0-9._~-]/.exec(token);
  if (bad) {
    throw new TypeError(
      `Cannot use the dashboard token: character ${
        JSON.stringify(bad[0])
      } at ${bad.index} is not a letter, digit, "-", ".", "_" or "~"`,
    );
  }
  return token;
}

const digest = (text: string) => createHash("sha256").update(text).digest();

/**
 * Whether `given` equals the session token. Both are hashed first, so the
 * comparison takes the same time whatever their lengths and contents.
 */
export function tokenMatches(token: string, given: string | null): boolean {
  if (given === null || given.length > 4 * TOKEN_LENGTH.max) return false;
  return timingSafeEqual(digest(token), digest(given));
}

/**
 * Reads a JSON request body of at most `limit` bytes. A `Content-Length`
 * over the limit is refused before any byte is read; a body without one is
 * read only until it passes the limit.
 *
 * @throws {HttpError} 415 (not JSON), 413 (too big) or 400 (bad JSON).
 */
export async function readJsonBody(
  request: Request,
  limit: number,
): Promise<unknown> {
  const type = request.headers.get("content-type") ?? "";
  if (!/^application\/json\b/i.test(type)) {
    throw new HttpError(
      415,
      `Cannot read the request: expected application/json, got ${
        JSON.stringify(type.slice(0, 100))
      }`,
    );
  }
  const declared = request.headers.get("content-length");
  if (declared !== null && !(Number(declared) <= limit)) {
    throw new HttpError(
      413,
      `Cannot read the request: its ${
        JSON.stringify(declared.slice(0, 30))
      }-byte body exceeds the ${limit}-byte limit`,
    );
  }
  const bytes = new Uint8Array(limit);
  let length = 0;
  if (request.body) {
    const reader = request.body.getReader();
    for (let r = await reader.read(); !r.done; r = await reader.read()) {
      if (length + r.value.length > limit) {
        // Stop reading: the rest of the body is never buffered.
        await reader.cancel().catch(() => {});
        throw new HttpError(
          413,
          `Cannot read the request: its body exceeds the ${limit}-byte limit`,
        );
      }
      bytes.set(r.value, length);
      length += r.value.length;
    }
  }
  try {
    return JSON.parse(new TextDecoder().decode(bytes.subarray(0, length)));
  } catch {
    throw new HttpError(400, "Cannot read the request: it is not JSON");
  }
}

const IPV4 =
  /^(?:(?:25[0-5]|2[0-4]\d|1\d\d|[1-9]?\d)\.){3}(?:25[0-5]|2[0-4]\d|1\d\d|[1-9]?\d)$/;
const IPV6 = /^\[[0-9a-f:.]+\]$/;
const LOOPBACK_NAMES = ["localhost", "127.0.0.1", "[::1]"];

/**
 * Decides which `Host` headers a dashboard bound to `hostname:port` answers.
 * A DNS-rebinding page reaches the server under its own domain name, so only
 * the bound host, its loopback spellings (when bound to loopback), IP
 * literals (when bound to every interface) and names listed in `extra` pass.
 */
export function hostChecker(
  hostname: string,
  port: number,
  extra: readonly string[] = [],
): (host: string | null) => boolean {
  const bound = hostname.includes(":") && !hostname.startsWith("[")
    ? `[${hostname.toLowerCase()}]`
    : hostname.toLowerCase();
  const wildcard = bound === "0.0.0.0" || bound === "[::]";
  const loopback = bound === "localhost" || bound === "[::1]" ||
    bound.startsWith("127.");
  const names = new Set([bound, ...extra.map((h) => h.toLowerCase())]);
  if (loopback || wildcard) {
    for (const name of LOOPBACK_NAMES) {
      names.add(name);
    }
  }
  return (host) => {
    if (host === null || host.length > 300) return false;
    const match = /^(\[[0-9a-fA-F:.]+\]|[^:\[\]]+)(?::(\d{1,5}))?$/.exec(host);
    if (!match) return false;
    const name = match[1]!.toLowerCase();
    if (Number(match[2] ?? "80") !== port) return false;
    if (names.has(name)) return true;
    return wildcard && (IPV4.test(name) || IPV6.test(name));
  };
}
