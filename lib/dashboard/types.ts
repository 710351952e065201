/**
 * The dashboard's public shapes: its options, the status and downloads its
 * API returns, and the running {@linkcode Dashboard} handle.
 *
 * @module
 */

/** Options for `startDashboard`. */
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
  /** Why it failed, readable, in the dashboard's terms. */
  error: string | null;
  /**
   * What the page offers for an ended download: `resume` (cancelled, or
   * stopped with verified chunks kept), `retry` (failed), `replace` (a
   * different file is in the way: download again over it); `null` while it
   * runs or once it is done.
   */
  action: "resume" | "retry" | "replace" | null;
  /** For a folder or glob: its files (`null` for one file). */
  batch: DashboardBatch | null;
  /** Start time, ms since the epoch. */
  startedAt: number;
  /** End time, ms since the epoch. */
  finishedAt: number | null;
  /** Whether the dashboard can cancel it (it started it and it runs). */
  cancellable: boolean;
  /**
   * Where its chunks came from and whom they go to; `null` before the
   * manifest is known, for a seed-protocol download, or for an older ended
   * one (only the newest few ended downloads carry it).
   */
  swarm: DashboardSwarm | null;
}

/** A folder or glob download as the dashboard shows it. */
export interface DashboardBatch {
  /** Files picked (0 until the network was listed). */
  files: number;
  /** Files ended. */
  filesDone: number;
  /** Files that failed. */
  failed: number;
  /** Names being downloaded now. */
  current: string[];
  /** Each ended file's outcome, in name order (at most 1000). */
  results: { name: string; ok: boolean; error: string | null }[];
}

/** A peer in a download's swarm view. */
export interface DashboardSwarmPeer {
  /** The peer's `host:port`. */
  address: string;
  /** Bytes sent (to us, or by us) in this run. */
  bytes: number;
  /** Rate over the last ~5 s, bytes/s. */
  rate: number;
}

/** A download's swarm as the page draws it, bounded whatever the file. */
export interface DashboardSwarm {
  /** Chunks in the file. */
  chunks: number;
  /** Cells in `map` (at most 1024; fewer for a file of fewer chunks). */
  cells: number;
  /**
   * The chunk map, base64, one byte per cell (a run of about
   * `chunks / cells` chunks, coded by the most frequent among them): `0`
   * missing, `n` in 1–12 from `sources[n - 1]`, `254` from other sources,
   * `255` verified before this run.
   */
  map: string;
  /** The sources that sent chunks, in the order they first did (at most 12). */
  sources: DashboardSwarmPeer[];
  /** The sources past those, lumped together (`null` if none). */
  other: { bytes: number; rate: number } | null;
  /** The peers this peer sends the file's chunks to, fastest first (at most 12). */
  uploads: DashboardSwarmPeer[];
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
  /** The peer's id, derived from its public key. */
  id: string;
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
   * Every address it can be reached at: `url` first, then, when bound to
   * all interfaces, this machine's other addresses (if the process may list
   * them). Each needs the token, like `url`.
   */
  readonly urls: readonly string[];
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
