/**
 * A peer's web dashboard: a small JSON API with Server-Sent Events over a
 * running {@linkcode Peer}, and the page that drives it, served by the peer.
 *
 * @module
 */
import {
  type Asset,
  assetResponse,
  describeError,
  hostChecker,
  HttpError,
  json,
  jsonError,
  loadAssets,
  newToken,
  TOKEN_HEADER,
  tokenMatches,
} from "./_dashboard_http.ts";
import { isContentId } from "./manifest.ts";
import { MAX_QUERY_LENGTH } from "./messages.ts";
import type { ListedFile, PeerInfo } from "./messages.ts";
import { validateName } from "./names.ts";
import type { Peer } from "./peer_node.ts";
import type { DownloadProgress } from "./transfer.ts";

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
  /** Address to open, e.g. `http://127.0.0.1:8080/`. */
  readonly url: string;
  /** The bound port. */
  readonly port: number;
  /** Stops serving, ends event streams and cancels its own downloads. */
  close(): Promise<void>;
}

interface Tracked {
  view: DashboardDownload;
  controller: AbortController;
  settled: Promise<void>;
  running: boolean;
}

/** Waits for `promise`, at most `ms` milliseconds. */
async function settleWithin(promise: Promise<unknown>, ms: number) {
  let timer: ReturnType<typeof setTimeout> | undefined;
  await Promise.race([
    promise,
    new Promise((resolve) => timer = setTimeout(resolve, ms)),
  ]);
  clearTimeout(timer);
}

const MAX_BODY_BYTES = 4096;
const WEB_ROOT = new URL("../web/", import.meta.url);

/**
 * Starts the web dashboard for a running peer.
 *
 * @param peer The peer to show and drive.
 * @param options Port, address and limits.
 * @returns The running dashboard; close it or `await using` it.
 * @throws {Deno.errors.AddrInUse} If the port is taken.
 *
 * @example A dashboard for a peer on loopback
 * ```ts
 * import { startTracker } from "./tracker_server.ts";
 * import { startPeer } from "./peer_node.ts";
 * import { startDashboard } from "./dashboard.ts";
 * const shared = await Deno.makeTempDir();
 * await using tracker = await startTracker({ port: 0, hostname: "127.0.0.1" });
 * await using peer = await startPeer({
 *   tracker: tracker.address,
 *   shared,
 *   hostname: "127.0.0.1",
 * });
 * await using dashboard = await startDashboard(peer, { port: 0 });
 * const response = await fetch(`${dashboard.url}api/status`);
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
  const keepFinished = options.keepFinished ?? 50;
  const token = newToken();
  const assets: Map<string, Asset> = await loadAssets(WEB_ROOT, token);
  const downloads = new Map<string, Tracked>();
  const names = new Map<string, string>(); // content id -> listed name
  let nextKey = 1;
  let trackerError: string | null = null;
  let trackerSettled = false;
  const uploadSeen = new Map<string, { bytes: number; at: number }>();
  const uploadRates = new Map<string, number>();

  // --- state -------------------------------------------------------------

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

  const external = (p: DownloadProgress, i: number): DashboardDownload => ({
    key: `peer-${i}`,
    target: p.id ?? p.name,
    name: p.name,
    id: p.id,
    state: "active",
    size: p.size,
    bytes: p.bytes,
    chunksDone: p.chunksDone,
    chunks: p.chunks,
    rate: p.rate,
    eta: Number.isFinite(p.eta) ? p.eta : null,
    sources: p.sources,
    error: null,
    startedAt: 0,
    finishedAt: null,
    cancellable: false,
  });

  const listDownloads = (): DashboardDownload[] => {
    const ours = [...downloads.values()].map((d) => ({ ...d.view }));
    const running = new Set(
      [...downloads.values()].filter((d) => d.running)
        .flatMap((d) => [d.view.id, d.view.name]),
    );
    const others = peer.status().downloads
      .filter((p) => !running.has(p.id) && !running.has(p.name))
      .map(external);
    return [...others, ...ours.reverse()];
  };

  // --- event stream ------------------------------------------------------

  const encoder = new TextEncoder();
  const streams = new Set<ReadableStreamDefaultController<Uint8Array>>();
  let lastSent = "";
  let flushTimer: ReturnType<typeof setTimeout> | undefined;
  const snapshot = () =>
    JSON.stringify({ status: status(), downloads: listDownloads() });
  const send = (
    controller: ReadableStreamDefaultController<Uint8Array>,
    text: string,
  ) => {
    try {
      controller.enqueue(encoder.encode(text));
    } catch {
      streams.delete(controller);
    }
  };
  const broadcast = (force = false) => {
    if (flushTimer !== undefined) clearTimeout(flushTimer);
    flushTimer = undefined;
    if (streams.size === 0) return;
    const data = snapshot();
    if (data === lastSent && !force) return;
    lastSent = data;
    for (const controller of streams) {
      send(controller, `event: state\ndata: ${data}\n\n`);
    }
  };
  const soon = () => {
    flushTimer ??= setTimeout(() => broadcast(), 150);
  };
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
    broadcast();
    // A comment line now and then keeps proxies from closing the stream.
    if (++ticks % 15 === 0) {
      for (const controller of streams) send(controller, ": ping\n\n");
    }
  }, 1000);

  const onProgress = () => soon();
  const onRegistered = () => {
    trackerError = null;
    trackerSettled = true;
    broadcast();
  };
  const onTrackerError = (event: Event) => {
    trackerError = String(
      (event as CustomEvent<{ message: string }>).detail.message,
    ).split("\n")[0]!;
    trackerSettled = true;
    broadcast();
  };
  peer.addEventListener("progress", onProgress);
  peer.addEventListener("registered", onRegistered);
  peer.addEventListener("tracker-error", onTrackerError);

  const events = (): Response => {
    let self: ReadableStreamDefaultController<Uint8Array> | undefined;
    const body = new ReadableStream<Uint8Array>({
      start(controller) {
        self = controller;
        streams.add(controller);
        send(controller, "retry: 2000\n\n");
        send(controller, `event: state\ndata: ${snapshot()}\n\n`);
      },
      cancel() {
        if (self) streams.delete(self);
      },
    });
    return new Response(body, {
      headers: {
        "content-type": "text/event-stream; charset=utf-8",
        "cache-control": "no-store",
        "x-content-type-options": "nosniff",
      },
    });
  };

  // --- downloads ---------------------------------------------------------

  const prune = () => {
    const finished = [...downloads.values()].filter((d) => !d.running);
    for (
      const d of finished.slice(0, Math.max(0, finished.length - keepFinished))
    ) {
      downloads.delete(d.view.key);
    }
  };

  const startDownload = (target: string): DashboardDownload => {
    for (const d of downloads.values()) {
      if (
        d.running && (d.view.target === target || d.view.id === target)
      ) {
        throw new HttpError(
          409,
          `Cannot start a download of ${target}: it is already running`,
        );
      }
    }
    const key = String(nextKey++);
    const controller = new AbortController();
    const id = isContentId(target) ? target : null;
    const view: DashboardDownload = {
      key,
      target,
      name: (id && names.get(id)) ?? target,
      id,
      state: "starting",
      size: null,
      bytes: 0,
      chunksDone: 0,
      chunks: 0,
      rate: 0,
      eta: null,
      sources: 0,
      error: null,
      startedAt: Date.now(),
      finishedAt: null,
      cancellable: true,
    };
    const settled = peer.download(target, {
      signal: controller.signal,
      onProgress: (p) => {
        if (view.state === "starting") view.state = "active";
        Object.assign(view, {
          name: p.name,
          id: p.id,
          size: p.size,
          bytes: p.bytes,
          chunksDone: p.chunksDone,
          chunks: p.chunks,
          rate: p.rate,
          eta: Number.isFinite(p.eta) ? p.eta : null,
          sources: p.sources,
        });
        soon();
      },
    }).then(
      (result) => {
        Object.assign(view, {
          state: "done",
          name: result.name,
          id: result.id,
          size: result.size,
          bytes: result.size,
          chunksDone: view.chunks || view.chunksDone,
          rate: result.elapsedMs > 0
            ? result.received / (result.elapsedMs / 1000)
            : 0,
          eta: 0,
          sources: 0,
        });
      },
      (error) => {
        if (controller.signal.aborted) {
          view.state = "cancelled";
        } else {
          view.state = "failed";
          view.error = describeError(error, `Cannot download ${view.name}`)
            .message;
        }
        view.rate = 0;
        view.eta = null;
        view.sources = 0;
      },
    ).finally(() => {
      view.finishedAt = Date.now();
      view.cancellable = false;
      tracked.running = false;
      prune();
      broadcast();
    });
    const tracked: Tracked = { view, controller, settled, running: true };
    downloads.set(key, tracked);
    broadcast();
    return { ...view };
  };

  // --- routing -----------------------------------------------------------

  // Set once the port is known.
  let checkHost: (host: string | null) => boolean = () => false;

  const parseTarget = (value: unknown): string => {
    if (typeof value === "string" && isContentId(value)) return value;
    return validateName(value);
  };

  const readBody = async (request: Request): Promise<unknown> => {
    const type = request.headers.get("content-type") ?? "";
    if (!/^application\/json\b/i.test(type)) {
      throw new HttpError(
        415,
        `Cannot read the request: expected application/json, got ${
          JSON.stringify(type.slice(0, 100))
        }`,
      );
    }
    const bytes = new Uint8Array(await request.arrayBuffer());
    if (bytes.length > MAX_BODY_BYTES) {
      throw new HttpError(
        413,
        `Cannot read the request: ${bytes.length} bytes exceeds the ${MAX_BODY_BYTES}-byte limit`,
      );
    }
    try {
      return JSON.parse(new TextDecoder().decode(bytes));
    } catch {
      throw new HttpError(400, "Cannot read the request: it is not JSON");
    }
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
      case "/api/session":
        only("GET");
        return json({ token, header: TOKEN_HEADER });
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
          files = await peer.list(query || undefined);
        } catch (error) {
          const { status, message } = describeError(
            error,
            "Cannot list files",
          );
          throw new HttpError(status === 400 ? 502 : status, message);
        }
        for (const f of files) if (f.id !== null) names.set(f.id, f.name);
        if (names.size > 10_000) names.clear();
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
          return json({ target, peers: await peer.peers(target) });
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
        if (method === "GET") return json({ downloads: listDownloads() });
        const body = await readBody(request);
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
        return json({ download: startDownload(valid) }, 202);
      }
      case "/api/events":
        only("GET");
        return events();
    }
    const match = /^\/api\/downloads\/([^/]{1,64})$/.exec(pathname);
    if (match) {
      only("DELETE");
      const key = decodeURIComponent(match[1]!);
      const found = downloads.get(key);
      if (!found) {
        throw new HttpError(
          404,
          `Cannot cancel download ${JSON.stringify(key)}: there is none`,
        );
      }
      if (found.running) {
        found.controller.abort();
        // Shown as cancelled at once; the transfer winds down behind.
        if (found.view.state !== "done" && found.view.state !== "failed") {
          Object.assign(found.view, {
            state: "cancelled",
            cancellable: false,
            rate: 0,
            eta: null,
            sources: 0,
          });
        }
        await settleWithin(found.settled, 2000);
        broadcast();
      } else {
        downloads.delete(key);
        broadcast();
      }
      return json({ download: { ...found.view } });
    }
    throw new HttpError(404, `Nothing at ${pathname.slice(0, 200)}`);
  };

  /** Holders of the files on the network, merged by address. */
  const knownPeers = async () => {
    let files: ListedFile[];
    try {
      files = await peer.list();
    } catch (error) {
      const { status, message } = describeError(error, "Cannot list peers");
      throw new HttpError(status === 400 ? 502 : status, message);
    }
    const byAddress = new Map<
      string,
      { address: string; protocol: PeerInfo["protocol"]; files: number }
    >();
    const queue = files.slice(0, 100);
    const worker = async () => {
      for (let file = queue.shift(); file; file = queue.shift()) {
        const holders = await peer.peers(file.id ?? file.name).catch(() => []);
        for (const holder of holders) {
          const entry = byAddress.get(holder.address) ??
            { address: holder.address, protocol: holder.protocol, files: 0 };
          entry.files++;
          byAddress.set(holder.address, entry);
        }
      }
    };
    await Promise.all([worker(), worker(), worker(), worker()]);
    return [...byAddress.values()].sort((a, b) =>
      a.address.localeCompare(b.address)
    );
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
      if (!tokenMatches(token, request.headers.get(TOKEN_HEADER))) {
        return jsonError(
          403,
          `Refused a ${method} without the session token: reload the page`,
        );
      }
    }
    let requestUrl: URL;
    try {
      requestUrl = new URL(request.url);
    } catch {
      return jsonError(400, "Cannot parse the request URL");
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
  }, handler);
  const port = server.addr.port;
  checkHost = hostChecker(hostname, port, options.allowedHosts);
  const shown = hostname === "0.0.0.0" || hostname === "::"
    ? "127.0.0.1"
    : hostname;
  const url = `http://${shown.includes(":") ? `[${shown}]` : shown}:${port}/`;

  let closing: Promise<void> | undefined;
  const close = () => {
    closing ??= (async () => {
      options.signal?.removeEventListener("abort", onAbort);
      clearInterval(ticker);
      if (flushTimer !== undefined) clearTimeout(flushTimer);
      peer.removeEventListener("progress", onProgress);
      peer.removeEventListener("registered", onRegistered);
      peer.removeEventListener("tracker-error", onTrackerError);
      for (const d of downloads.values()) d.controller.abort();
      await settleWithin(
        Promise.all([...downloads.values()].map((d) => d.settled)),
        5000,
      );
      if (flushTimer !== undefined) clearTimeout(flushTimer);
      for (const controller of streams) {
        try {
          controller.close();
        } catch {
          // Already closed by the client.
        }
      }
      streams.clear();
      await server.shutdown();
    })();
    return closing;
  };
  const onAbort = () => void close();
  options.signal?.addEventListener("abort", onAbort, { once: true });
  if (options.signal?.aborted) await close();

  return {
    url,
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
