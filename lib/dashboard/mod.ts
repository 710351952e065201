/**
 * A peer's web dashboard: a JSON API with Server-Sent Events over a running
 * peer, and the page that drives it, served on a port of its own.
 *
 * @example A dashboard for a peer on loopback
 * ```ts
 * import { startPeer, startTracker } from "@shoal/shoal";
 * import { startDashboard } from "@shoal/shoal/dashboard";
 *
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
 *
 * @module
 */
export {
  type Dashboard,
  type DashboardBatch,
  type DashboardDownload,
  type DashboardDownloadState,
  type DashboardOptions,
  type DashboardStatus,
  type DashboardSwarm,
  type DashboardSwarmPeer,
  type DashboardUpload,
} from "./types.ts";
export { startDashboard } from "./dashboard.ts";
