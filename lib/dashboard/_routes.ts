/**
 * Private: the dashboard's HTTP surface. {@linkcode apiRoutes} maps each path
 * to one small handler; {@linkcode guardedHandler} checks the Host header,
 * the origin and the token before a request reaches them, and turns errors
 * into JSON replies.
 *
 * @module
 */
import {
  type Asset,
  assetResponse,
  describeError,
  HttpError,
  json,
  jsonError,
  readJsonBody,
  TOKEN_HEADER,
  tokenMatches,
} from "./_http.ts";
import type { DownloadBoard } from "./_downloads.ts";
import type { EventHub } from "./_events.ts";
import type { TrackerLookups } from "./_lookups.ts";
import type { StatusView } from "./_status.ts";
import { isContentId } from "../content/manifest.ts";
import { MAX_QUERY_LENGTH } from "../protocol/messages.ts";
import type { ListedFile } from "../protocol/messages.ts";
import { validateName } from "../content/names.ts";
import { isBatchTarget, validateBatchTarget } from "../download/batch.ts";
import { parseDuration } from "../content/_duration.ts";
import type { Peer } from "../peer/node.ts";

const MAX_BODY_BYTES = 4096;

/** What the API handlers read and drive. */
export interface RouteContext {
  peer: Peer;
  view: StatusView;
  board: DownloadBoard;
  hub: EventHub;
  lookups: TrackerLookups;
  assets: Map<string, Asset>;
}

/** Answers one request to a known path. */
type Handler = (
  context: RouteContext,
  request: Request,
  url: URL,
) => Promise<Response> | Response;

/** A name or a content id, or a {@linkcode TypeError} saying why not. */
function parseTarget(value: unknown): string {
  if (typeof value === "string" && isContentId(value)) return value;
  return validateName(value);
}

/** Runs a tracker lookup; its failure becomes a 502 (or its own status). */
async function fromTracker<T>(what: string, lookup: Promise<T>): Promise<T> {
  try {
    return await lookup;
  } catch (error) {
    const { status, message } = describeError(error, what);
    throw new HttpError(status === 400 ? 502 : status, message);
  }
}

/** Parses a target from the client; its failure becomes a 400. */
function clientTarget(value: unknown, what: string): string {
  try {
    return parseTarget(value);
  } catch (error) {
    throw new HttpError(400, describeError(error, what).message);
  }
}

/** Parses a folder prefix or glob from the client; a failure is a 400. */
function batchTarget(value: string): string {
  try {
    return validateBatchTarget(value);
  } catch (error) {
    throw new HttpError(
      400,
      describeError(error, "Cannot start a download").message,
    );
  }
}

async function listFiles(
  { lookups, board }: RouteContext,
  _request: Request,
  url: URL,
): Promise<Response> {
  const query = url.searchParams.get("query") ?? "";
  if (query.length > MAX_QUERY_LENGTH) {
    throw new HttpError(
      400,
      `Cannot list files: the query is ${query.length} characters, more than ${MAX_QUERY_LENGTH}`,
    );
  }
  const files: ListedFile[] = await fromTracker(
    "Cannot list files",
    lookups.list(query || undefined),
  );
  board.remember(files);
  return json({ query, files });
}

function listShared({ peer }: RouteContext): Response {
  return json({
    files: peer.shares.files()
      .map(({ name, id, size, chunkSize, hashes }) => ({
        name,
        id,
        size,
        chunkSize,
        chunks: hashes.length,
      }))
      .sort((a, b) => a.name.localeCompare(b.name)),
  });
}

async function listPeers(
  { lookups }: RouteContext,
  _request: Request,
  url: URL,
): Promise<Response> {
  const raw = url.searchParams.get("target");
  if (raw === null) {
    // Holders of listed files, merged by address (made at most every 10 s).
    return json({
      peers: await fromTracker("Cannot list peers", lookups.knownPeers()),
    });
  }
  const target = clientTarget(raw, "Cannot look up holders");
  // One tracker call at most: holders are cached a few seconds.
  const peers = await fromTracker(
    `Cannot look up holders of ${target}`,
    lookups.peers(target),
  );
  return json({ target, peers });
}

async function downloads(
  { board }: RouteContext,
  request: Request,
): Promise<Response> {
  if (request.method === "GET") return json({ downloads: board.list() });
  const body = await readJsonBody(request, MAX_BODY_BYTES) as
    | { target?: unknown; overwrite?: unknown; stallTimeout?: unknown }
    | null;
  const target = body?.target;
  const valid = typeof target === "string" && isBatchTarget(target)
    ? batchTarget(target)
    : clientTarget(target, "Cannot start a download");
  const overwrite = body?.overwrite ?? false;
  if (typeof overwrite !== "boolean") {
    throw new HttpError(
      400,
      "Cannot start a download: overwrite must be true or false",
    );
  }
  const stall = body?.stallTimeout;
  let stallTimeoutMs: number | undefined;
  if (stall !== undefined) {
    try {
      if (typeof stall !== "string") {
        throw new TypeError(
          'Invalid stallTimeout: give a string such as "30s"',
        );
      }
      // The command line's parser: the same units, range and messages.
      stallTimeoutMs = parseDuration(stall, "stallTimeout");
    } catch (error) {
      throw new HttpError(
        400,
        `Cannot start a download: ${(error as Error).message}`,
      );
    }
  }
  return json({
    download: board.start(
      valid,
      overwrite,
      stallTimeoutMs === undefined ? {} : { stallTimeoutMs },
    ),
  }, 202);
}

async function cancelDownload(
  { board }: RouteContext,
  _request: Request,
  url: URL,
): Promise<Response> {
  let key: string;
  try {
    key = decodeURIComponent(url.pathname.slice("/api/downloads/".length));
  } catch {
    throw new HttpError(400, "Cannot cancel a download: bad key encoding");
  }
  return json({ download: await board.cancel(key) });
}

/** Each API path with its methods and handler. */
const API: Record<string, { methods: string[]; handle: Handler }> = {
  "/api/status": {
    methods: ["GET"],
    handle: ({ view }) => json(view.status()),
  },
  "/api/files": { methods: ["GET"], handle: listFiles },
  "/api/shared": { methods: ["GET"], handle: listShared },
  "/api/peers": { methods: ["GET"], handle: listPeers },
  "/api/downloads": { methods: ["GET", "POST"], handle: downloads },
  "/api/events": { methods: ["GET"], handle: ({ hub }) => hub.response() },
};
const CANCEL = { methods: ["DELETE"], handle: cancelDownload };
const ASSET_METHODS = ["GET", "HEAD"];

/** The route of a path, if any. */
function routeOf(
  context: RouteContext,
  pathname: string,
): { methods: string[]; handle: Handler } | undefined {
  const asset = context.assets.get(pathname);
  if (asset) {
    return {
      methods: ASSET_METHODS,
      handle: (_, request) => assetResponse(asset, request.method),
    };
  }
  if (Object.hasOwn(API, pathname)) return API[pathname];
  if (/^\/api\/downloads\/[^/]{1,64}$/.test(pathname)) return CANCEL;
  return undefined;
}

/**
 * Answers a request that passed the guards: a static asset or an API call.
 *
 * @param context What the handlers read and drive.
 * @param request The request.
 * @param url Its parsed URL.
 * @returns The response.
 * @throws {HttpError} For an unknown path (404) or method (405), or a
 *   handler's refusal.
 */
export async function apiRoutes(
  context: RouteContext,
  request: Request,
  url: URL,
): Promise<Response> {
  const { pathname } = url;
  const route = routeOf(context, pathname);
  if (!route) throw new HttpError(404, `Nothing at ${pathname.slice(0, 200)}`);
  if (!route.methods.includes(request.method)) {
    throw new HttpError(
      405,
      `Cannot ${request.method} ${pathname}: use ${route.methods.join(" or ")}`,
    );
  }
  return await route.handle(context, request, url);
}

/** The `Allow` header for a 405 on `pathname`. */
function allowFor(pathname: string): string {
  if (pathname === "/api/downloads") return "GET, POST";
  if (pathname.startsWith("/api/downloads/")) return "DELETE";
  return "GET";
}

/** What {@linkcode guardedHandler} checks requests against. */
export interface GuardOptions {
  /** The token every API call must carry. */
  token: string;
  /** Whether a Host header names this dashboard. */
  checkHost: (host: string | null) => boolean;
  /** The dashboard's URL, for the refusal message. */
  url: () => string;
}

/**
 * Wraps `routes` in the dashboard's checks: the Host header (against DNS
 * rebinding), the origin of a non-GET (against cross-site requests) and the
 * token of an API call; every error becomes a JSON reply.
 *
 * @param guard The token, host check and URL.
 * @param routes Answers a request that passed.
 * @returns The handler for `Deno.serve`.
 */
export function guardedHandler(
  guard: GuardOptions,
  routes: (request: Request, url: URL) => Promise<Response>,
): (request: Request) => Promise<Response> {
  return async (request) => {
    const host = request.headers.get("host");
    if (!guard.checkHost(host)) {
      return jsonError(
        403,
        `Refused Host ${
          JSON.stringify((host ?? "").slice(0, 100))
        }: this dashboard answers only to ${guard.url().slice(7, -1)}`,
      );
    }
    const method = request.method;
    let requestUrl: URL;
    try {
      requestUrl = new URL(request.url);
    } catch {
      return jsonError(400, "Cannot parse the request URL");
    }
    if (method !== "GET" && method !== "HEAD") {
      const origin = request.headers.get("origin");
      if (origin !== null && origin !== `http://${host}`) {
        return jsonError(
          403,
          `Refused a ${method} from origin ${
            JSON.stringify(origin.slice(0, 100))
          }`,
        );
      }
    }
    // The page and its script are public; every API call, reading or not,
    // needs the token, which only the address the peer printed carries.
    if (
      requestUrl.pathname.startsWith("/api/") &&
      !tokenMatches(guard.token, request.headers.get(TOKEN_HEADER))
    ) {
      return jsonError(
        403,
        `Refused ${method} ${
          requestUrl.pathname.slice(0, 100)
        } without the dashboard token: open the address the peer printed (it ends in #token=…)`,
      );
    }
    try {
      return await routes(request, requestUrl);
    } catch (error) {
      const { status, message } = describeError(error, "Request failed");
      return jsonError(
        status,
        message,
        status === 405 ? { allow: allowFor(requestUrl.pathname) } : {},
      );
    }
  };
}
