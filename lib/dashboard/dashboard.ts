/**
 * A peer's web dashboard: a small JSON API with Server-Sent Events over a
 * running {@linkcode Peer}, and the page that drives it, served by the peer.
 *
 * @module
 */
import {
  type Asset,
  assetResponse,
  checkToken,
  describeError,
  hostChecker,
  HttpError,
  json,
  jsonError,
  loadAssets,
  newToken,
  readJsonBody,
  TOKEN_HEADER,
  tokenMatches,
} from "./_http.ts";
import { DownloadBoard } from "./_downloads.ts";
import { EventHub } from "./_events.ts";
import { TrackerLookups } from "./_lookups.ts";
import { isContentId } from "../content/manifest.ts";
import { MAX_QUERY_LENGTH } from "../protocol/messages.ts";
import type { ListedFile } from "../protocol/messages.ts";
import { validateName } from "../content/names.ts";
import type { Peer } from "../peer/node.ts";

/** Options for {@linkcode startDashboard}. */
export interface DashboardOptions {
  /** Port to serve on (0 picks a free one). @default {0} */
  port?: number;
  /** Address to bind. @default {"127.0.0.1"} */
  hostname?: string;
  /**
   * Extra host names the `Host` header may carry (e.g. `"mybox.lan"`);
   * the bound address and its loopback spellings always pass.
   *
   * @default {[]}
   */
  allowedHosts?: string[];
  /**
   * Token every API request must carry in the `x-shoal-token` header: 16 to
   * 256 letters, digits, `-`, `.`, `_` or `~`. The page learns it from
   * {@linkcode Dashboard.pageUrl}; nothing on the server hands it out.
   *
   * @default {a new random 256-bit token, in hex}
   */
  token?: string;
  /** Finished downloads kept in the list. @default {50} */
  keepFinished?: number;
  /** Closes the dashboard when aborted. */
  signal?: AbortSignal;
}

/** Where a download started from the dashboard stands. */
export type DashboardDownloadState =
  | "starting"
  | "active"
  | "done"
  | "failed"
  | "cancelled";

/** A download as the dashboard shows it. */
export interface DashboardDownload {
  /** Key to cancel or dismiss it with (`DELETE /api/downloads/:key`). */
  key: string;
  /** What was asked for: a name or a content id. */
  target: string;
  /** Name it is saved under (the target until the manifest is known). */
  name: string;
  /** Content id, once known. */
  id: string | null;
  /** Where it stands. */
  state: DashboardDownloadState;
  /** Total bytes, once known. */
  size: number | null;
  /** Verified bytes. */
  bytes: number;
  /** Verified chunks. */
  chunksDone: number;
  /** Total chunks (0 until known). */
  chunks: number;
  /** Receive rate, bytes/s. */
  rate: number;
  /** Seconds left (`null` when unknown). */
  eta: number | null;
  /** Sources in use. */
  sources: number;
  /** Why it failed, readable. */
  error: string | null;
  /** Start time, ms since the epoch. */
  startedAt: number;
  /** End time, ms since the epoch. */
  finishedAt: number | null;
  /** Whether the dashboard can cancel it (it started it and it runs). */
  cancellable: boolean;
}

/** An upload as the dashboard shows it. */
export interface DashboardUpload {
  /** Remote `host:port`. */
  remote: string;
  /** Bytes sent. */
  bytes: number;
  /** Chunks sent. */
  chunks: number;
  /** Send rate over the last second or so, bytes/s. */
  rate: number;
}

/** The peer's state as `GET /api/status` and the event stream give it. */
export interface DashboardStatus {
  /** Address the tracker gives out for this peer, once registered. */
  address: string | null;
  /** Port the peer serves files on. */
  port: number;
  /** `connecting` until the first tracker call settles. */
  tracker: "connected" | "unreachable" | "connecting";
  /** Last tracker error, readable (`null` when connected). */
  trackerError: string | null;
  /** Number of shared files. */
  shared: number;
  /** Changes whenever the shared files change. */
  sharedVersion: number;
  /** Uploads in progress. */
  uploads: DashboardUpload[];
}

/** A running dashboard. */
export interface Dashboard extends AsyncDisposable {
  /** Where it is served, e.g. `http://127.0.0.1:8080/`. */
  readonly url: string;
  /**
   * Address to open in a browser: {@linkcode Dashboard.url} with the token
   * in its fragment, e.g. `http://127.0.0.1:8080/#token=…` (a fragment is
   * never sent to a server; the page keeps the token for its tab).
   */
  readonly pageUrl: string;
  /** The token every API request carries in `x-shoal-token`. */
  readonly token: string;
  /** The bound port. */
  readonly port: number;
  /** Stops serving, ends event streams and cancels its own downloads. */
  close(): Promise<void>;
}

const MAX_BODY_BYTES = 4096;
const WEB_ROOT = new URL("../../web/", import.meta.url);

/**
 * Starts the web dashboard for a running peer.
 *
 * @param peer The peer to show and drive.
 * @param options Port, address, token and limits.
 * @returns The running dashboard; close it or `await using` it.
 * @throws {Deno.errors.AddrInUse} If the port is taken.
 * @throws {RangeError} If `token` is shorter than 16 or longer than 256.
 * @throws {TypeError} If `token` holds a character other than letters,
 *   digits, `-`, `.`, `_` and `~`.
 *
 * @example A dashboard for a peer on loopback
 * ```ts
 * import { startTracker } from "../tracker/server.ts";
 * import { startPeer } from "../peer/node.ts";
 * import { startDashboard } from "./dashboard.ts";
 * const shared = await Deno.makeTempDir();
 * await using tracker = await startTracker({ port: 0, hostname: "127.0.0.1" });
 * await using peer = await startPeer({
 *   tracker: tracker.address,
 *   shared,
 *   hostname: "127.0.0.1",
 * });
 * await using dashboard = await startDashboard(peer, { port: 0 });
 * // Open dashboard.pageUrl in a browser; a script sends the token itself.
 * const response = await fetch(`${dashboard.url}api/status`, {
 *   headers: { "x-shoal-token": dashboard.token },
 * });
 * const status = await response.json();
 * if (status.port !== peer.port) throw new Error("wrong peer");
 * await dashboard.close();
 * await peer.close();
 * await Deno.remove(shared, { recursive: true });
 * ```
 */
export async function startDashboard(
  peer: Peer,
  options: DashboardOptions = {},
): Promise<Dashboard> {
  const hostname = options.hostname ?? "127.0.0.1";
  const token = options.token === undefined
    ? newToken()
    : checkToken(options.token);
  const assets: Map<string, Asset> = await loadAssets(WEB_ROOT);
  const lookups = new TrackerLookups(peer);
  let trackerError: string | null = null;
  let trackerSettled = false;
  const uploadSeen = new Map<string, { bytes: number; at: number }>();
  const uploadRates = new Map<string, number>();

  const status = (): DashboardStatus => {
    const s = peer.status();
    return {
      address: s.address,
      port: peer.port,
      tracker: s.trackerConnected
        ? "connected"
        : trackerError !== null || trackerSettled
        ? "unreachable"
        : "connecting",
      trackerError: s.trackerConnected ? null : trackerError,
      shared: s.shared,
      sharedVersion: peer.shares.version,
      uploads: s.uploads.map((u) => ({
        ...u,
        rate: uploadRates.get(u.remote) ?? 0,
      })),
    };
  };

  const hub = new EventHub(() =>
    JSON.stringify({ status: status(), downloads: board.list() })
  );
  const board = new DownloadBoard(
    peer,
    options.keepFinished ?? 50,
    (urgent) => urgent ? hub.publish() : hub.soon(),
  );

  // Upload rates from byte counts a second apart; a state event if changed.
  let ticks = 0;
  const ticker = setInterval(() => {
    const now = performance.now();
    const current = new Set<string>();
    for (const u of peer.status().uploads) {
      current.add(u.remote);
      const seen = uploadSeen.get(u.remote);
      if (seen && now > seen.at) {
        uploadRates.set(
          u.remote,
          Math.max(0, (u.bytes - seen.bytes) / ((now - seen.at) / 1000)),
        );
      }
      uploadSeen.set(u.remote, { bytes: u.bytes, at: now });
    }
    for (const remote of uploadSeen.keys()) {
      if (!current.has(remote)) {
        uploadSeen.delete(remote);
        uploadRates.delete(remote);
      }
    }
    hub.publish();
    if (++ticks % 15 === 0) hub.ping();
  }, 1000);

  const onProgress = () => hub.soon();
  const onRegistered = () => {
    trackerError = null;
    trackerSettled = true;
    hub.publish();
  };
  const onTrackerError = (event: Event) => {
    trackerError = String(
      (event as CustomEvent<{ message: string }>).detail.message,
    ).split("\n")[0]!;
    trackerSettled = true;
    hub.publish();
  };
  peer.addEventListener("progress", onProgress);
  peer.addEventListener("registered", onRegistered);
  peer.addEventListener("tracker-error", onTrackerError);

  // --- routing -----------------------------------------------------------

  // Set once the port is known.
  let checkHost: (host: string | null) => boolean = () => false;

  const parseTarget = (value: unknown): string => {
    if (typeof value === "string" && isContentId(value)) return value;
    return validateName(value);
  };

  const route = async (request: Request, url: URL): Promise<Response> => {
    const { pathname } = url;
    const method = request.method;
    const only = (...allowed: string[]) => {
      if (!allowed.includes(method)) {
        throw new HttpError(
          405,
          `Cannot ${method} ${pathname}: use ${allowed.join(" or ")}`,
        );
      }
    };
    const asset = assets.get(pathname);
    if (asset) {
      only("GET", "HEAD");
      return assetResponse(asset, method);
    }
    switch (pathname) {
      case "/api/status":
        only("GET");
        return json(status());
      case "/api/files": {
        only("GET");
        const query = url.searchParams.get("query") ?? "";
        if (query.length > MAX_QUERY_LENGTH) {
          throw new HttpError(
            400,
            `Cannot list files: the query is ${query.length} characters, more than ${MAX_QUERY_LENGTH}`,
          );
        }
        let files: ListedFile[];
        try {
          files = await lookups.list(query || undefined);
        } catch (error) {
          const { status, message } = describeError(
            error,
            "Cannot list files",
          );
          throw new HttpError(status === 400 ? 502 : status, message);
        }
        board.remember(files);
        return json({ query, files });
      }
      case "/api/shared":
        only("GET");
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
      case "/api/peers": {
        only("GET");
        const raw = url.searchParams.get("target");
        if (raw === null) return json({ peers: await knownPeers() });
        let target: string;
        try {
          target = parseTarget(raw);
        } catch (error) {
          throw new HttpError(
            400,
            describeError(error, "Cannot look up holders").message,
          );
        }
        try {
          // One tracker call at most: holders are cached a few seconds.
          return json({ target, peers: await lookups.peers(target) });
        } catch (error) {
          const { status, message } = describeError(
            error,
            `Cannot look up holders of ${target}`,
          );
          throw new HttpError(status === 400 ? 502 : status, message);
        }
      }
      case "/api/downloads": {
        only("GET", "POST");
        if (method === "GET") return json({ downloads: board.list() });
        const body = await readJsonBody(request, MAX_BODY_BYTES);
        const target = (body as { target?: unknown } | null)?.target;
        let valid: string;
        try {
          valid = parseTarget(target);
        } catch (error) {
          throw new HttpError(
            400,
            describeError(error, "Cannot start a download").message,
          );
        }
        return json({ download: board.start(valid) }, 202);
      }
      case "/api/events":
        only("GET");
        return hub.response();
    }
    const match = /^\/api\/downloads\/([^/]{1,64})$/.exec(pathname);
    if (match) {
      only("DELETE");
      let key: string;
      try {
        key = decodeURIComponent(match[1]!);
      } catch {
        throw new HttpError(400, "Cannot cancel a download: bad key encoding");
      }
      return json({ download: await board.cancel(key) });
    }
    throw new HttpError(404, `Nothing at ${pathname.slice(0, 200)}`);
  };

  /** Holders of listed files, merged by address (made at most every 10 s). */
  const knownPeers = async () => {
    try {
      return await lookups.knownPeers();
    } catch (error) {
      const { status, message } = describeError(error, "Cannot list peers");
      throw new HttpError(status === 400 ? 502 : status, message);
    }
  };

  const handler = async (request: Request): Promise<Response> => {
    const host = request.headers.get("host");
    if (!checkHost(host)) {
      return jsonError(
        403,
        `Refused Host ${
          JSON.stringify((host ?? "").slice(0, 100))
        }: this dashboard answers only to ${url.slice(7, -1)}`,
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
      !tokenMatches(token, request.headers.get(TOKEN_HEADER))
    ) {
      return jsonError(
        403,
        `Refused ${method} ${
          requestUrl.pathname.slice(0, 100)
        } without the dashboard token: open the address the peer printed (it ends in #token=…)`,
      );
    }
    try {
      return await route(request, requestUrl);
    } catch (error) {
      const { status, message } = describeError(error, "Request failed");
      return jsonError(
        status,
        message,
        status === 405 ? { allow: allowFor(requestUrl.pathname) } : {},
      );
    }
  };

  const server = Deno.serve({
    port: options.port ?? 0,
    hostname,
    onListen: () => {},
    // Reached when an event stream is ended for a client that stopped
    // reading (the connection is closed); the handler catches the rest.
    // A library prints nothing.
    onError: () => jsonError(500, "Request failed"),
  }, handler);
  const port = server.addr.port;
  checkHost = hostChecker(hostname, port, options.allowedHosts);
  const shown = hostname === "0.0.0.0" || hostname === "::"
    ? "127.0.0.1"
    : hostname;
  const url = `http://${shown.includes(":") ? `[${shown}]` : shown}:${port}/`;
  const pageUrl = `${url}#token=${token}`;

  let closing: Promise<void> | undefined;
  const close = () => {
    closing ??= (async () => {
      options.signal?.removeEventListener("abort", onAbort);
      clearInterval(ticker);
      peer.removeEventListener("progress", onProgress);
      peer.removeEventListener("registered", onRegistered);
      peer.removeEventListener("tracker-error", onTrackerError);
      await board.close();
      hub.close();
      await server.shutdown();
    })();
    return closing;
  };
  const onAbort = () => void close();
  options.signal?.addEventListener("abort", onAbort, { once: true });
  if (options.signal?.aborted) await close();

  return {
    url,
    pageUrl,
    token,
    port,
    close,
    [Symbol.asyncDispose]: close,
  };
}

function allowFor(pathname: string): string {
  if (pathname === "/api/downloads") return "GET, POST";
  if (pathname.startsWith("/api/downloads/")) return "DELETE";
  return "GET";
}
