/**
 * A peer's web dashboard: a small JSON API with Server-Sent Events over a
 * running {@linkcode Peer}, and the page that drives it, served by the peer.
 * This file wires the parts: the status view, the download board, the event
 * hub and the routes.
 *
 * @module
 */
import {
  checkToken,
  hostChecker,
  jsonError,
  loadAssets,
  newToken,
} from "./_http.ts";
import { DownloadBoard } from "./_downloads.ts";
import { EventHub } from "./_events.ts";
import { TrackerLookups } from "./_lookups.ts";
import { apiRoutes, guardedHandler, type RouteContext } from "./_routes.ts";
import { StatusView } from "./_status.ts";
import type { Dashboard, DashboardOptions } from "./types.ts";
import type { Peer } from "../peer/node.ts";

export type {
  Dashboard,
  DashboardBatch,
  DashboardDownload,
  DashboardDownloadState,
  DashboardOptions,
  DashboardStatus,
  DashboardSwarm,
  DashboardSwarmPeer,
  DashboardUpload,
} from "./types.ts";

const WEB_ROOT = new URL("../../web/", import.meta.url);

/** The address to show for a bound host and port. */
function dashboardUrl(hostname: string, port: number): string {
  const shown = hostname === "0.0.0.0" || hostname === "::"
    ? "127.0.0.1"
    : hostname;
  return `http://${shown.includes(":") ? `[${shown}]` : shown}:${port}/`;
}

/**
 * Every address a dashboard bound to `hostname` can be reached at: the
 * bound one, or for a wildcard (`0.0.0.0`, `::`) loopback and each of this
 * machine's other addresses (listed when the process may read them:
 * `--allow-sys=networkInterfaces`; it is never prompted for).
 */
function reachableUrls(hostname: string, port: number): string[] {
  const wildcard = hostname === "0.0.0.0" || hostname === "::";
  if (!wildcard) return [dashboardUrl(hostname, port)];
  const urls = [dashboardUrl(hostname, port)];
  const allowed = Deno.permissions.querySync({
    name: "sys",
    kind: "networkInterfaces",
  }).state === "granted";
  if (!allowed) return urls;
  for (const nic of Deno.networkInterfaces()) {
    if (hostname === "0.0.0.0" && nic.family !== "IPv4") continue;
    if (/^(127\.|::1$|fe80:)/i.test(nic.address)) continue;
    const url = dashboardUrl(nic.address, port);
    if (!urls.includes(url)) urls.push(url);
  }
  return urls;
}

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
 * import { startPeer, startTracker } from "@shoal/shoal";
 * import { startDashboard } from "@shoal/shoal/dashboard";
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
  const assets = await loadAssets(WEB_ROOT);
  const hub = new EventHub(() =>
    JSON.stringify({ status: view.status(), downloads: board.list() })
  );
  const changed = (urgent: boolean) => urgent ? hub.publish() : hub.soon();
  const view = new StatusView(peer, changed);
  const board = new DownloadBoard(peer, options.keepFinished ?? 50, changed);
  const context: RouteContext = {
    peer,
    view,
    board,
    hub,
    assets,
    lookups: new TrackerLookups(peer),
  };

  // Upload rates from byte counts a second apart; a state event if changed.
  let ticks = 0;
  const ticker = setInterval(() => {
    view.measureUploads();
    hub.publish();
    if (++ticks % 15 === 0) hub.ping();
  }, 1000);

  // Set once the port is known.
  let checkHost: (host: string | null) => boolean = () => false;
  let url = "";
  const handler = guardedHandler(
    { token, checkHost: (host) => checkHost(host), url: () => url },
    (request, requestUrl) => apiRoutes(context, request, requestUrl),
  );
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
  url = dashboardUrl(hostname, port);

  let closing: Promise<void> | undefined;
  const close = () => {
    closing ??= (async () => {
      options.signal?.removeEventListener("abort", onAbort);
      clearInterval(ticker);
      view.close();
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
    urls: reachableUrls(hostname, port),
    pageUrl: `${url}#token=${token}`,
    token,
    port,
    close,
    [Symbol.asyncDispose]: close,
  };
}
