/**
 * Private HTTP helpers for the dashboard: the Host-header check against DNS
 * rebinding, the per-session CSRF token, JSON replies and static assets.
 *
 * @module
 */
import { timingSafeEqual } from "node:crypto";
import { ProtocolError } from "./wire.ts";
import { RemoteError, TimeoutError } from "./connection.ts";

/** Header a state-changing request carries the session token in. */
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
 * file or, for a published package, an https URL); the page gets the
 * session token substituted for `{{TOKEN}}`.
 */
export async function loadAssets(
  base: URL,
  token: string,
): Promise<Map<string, Asset>> {
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
    if (file === "index.html") text = text.replaceAll("{{TOKEN}}", token);
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

/** Whether `given` equals the session token, in constant time. */
export function tokenMatches(token: string, given: string | null): boolean {
  if (given === null) return false;
  const a = encoder.encode(token);
  const b = encoder.encode(given);
  return a.length === b.length && timingSafeEqual(a, b);
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
