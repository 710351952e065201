/**
 * A Shoal peer: serves its shared directory (framed and seed protocols),
 * keeps itself registered with a tracker, and downloads from other peers,
 * serving the chunks of a download in progress as soon as they verify.
 *
 * @module
 */
import { Buffer } from "node:buffer";
import { relative, sep } from "node:path";
import { isInside, resolveForRead } from "../content/names.ts";
import { ConnectionServer } from "../net/_server.ts";
import { UploadBuffers } from "../download/_chunk_buffers.ts";
import { serverRequests, validateSecret } from "../protocol/auth.ts";
import { FrameConnection, RemoteError, writeAll } from "../net/connection.ts";
import {
  encodeLine,
  readLine,
  refusePrivateSwarm,
  validateLegacyRequest,
} from "../protocol/legacy.ts";
import {
  chunkCount,
  chunkLength,
  type Manifest,
  readFull,
} from "../content/manifest.ts";
import {
  type FileAnnouncement,
  type ListedFile,
  type PeerInfo,
  type PeerRequest,
  validatePeerRequest,
} from "../protocol/messages.ts";
import { TokenBucket } from "../net/rate_limit.ts";
import {
  diffAnnouncements,
  type ScanProgress,
  ShareIndex,
} from "../share/share.ts";
import { ShareWatcher } from "../share/watch.ts";
import { TrackerClient } from "../tracker/client.ts";
import {
  type ActiveDownload,
  download,
  type DownloadOptions,
  type DownloadProgress,
  type DownloadResult,
} from "../download/transfer.ts";
import { DATA_HEADER_SIZE, ProtocolError } from "../net/wire.ts";

/** Options for {@linkcode startPeer}. */
export interface PeerOptions {
  /** Tracker `host:port`. */
  tracker: string;
  /** Directory to share (and, by default, to download into). */
  shared: string;
  /** Where downloads go. @default {shared} */
  out?: string;
  /** Port to serve on (0 picks a free one). @default {0} */
  port?: number;
  /** Address to bind. @default {"0.0.0.0"} */
  hostname?: string;
  /**
   * Host to advertise to the tracker (honoured only by trackers started
   * with `trustAdvertisedAddress`).
   */
  advertiseHost?: string;
  /** State directory (hash cache). @default {`${shared}/.shoal`} */
  stateDir?: string;
  /** Chunk size for files this peer hashes. @default {1048576} */
  chunkSize?: number;
  /**
   * Heartbeat interval; by default the one the tracker asks for.
   *
   * @default {undefined}
   */
  heartbeatIntervalMs?: number;
  /** Idle limit for incoming connections, ms. @default {30000} */
  readTimeoutMs?: number;
  /** Largest incoming request frame, bytes. @default {65536} */
  maxFrameSize?: number;
  /** Most open incoming connections. @default {1024} */
  maxConnections?: number;
  /** Upload cap in bytes/s over all connections (0: none). @default {0} */
  maxUploadRate?: number;
  /** Download cap in bytes/s over all downloads (0: none). @default {0} */
  maxDownloadRate?: number;
  /**
   * Share files and folders whose name starts with a dot.
   *
   * @default {false}
   */
  includeHidden?: boolean;
  /** Extra gitignore-style patterns, on top of `<shared>/.shoalignore`. */
  ignore?: readonly string[];
  /** Files hashed at once. @default {2} */
  hashConcurrency?: number;
  /** Called while the first scan hashes new or changed files. */
  onScanProgress?: (progress: ScanProgress) => void;
  /**
   * Called once per name a scan leaves out because the network cannot carry
   * it (such as `CON` or `a:b`), with the reason.
   */
  onScanSkip?: (name: string, reason: string) => void;
  /**
   * Watch the shared directory and announce changes as they happen
   * (otherwise it is rescanned at each heartbeat).
   *
   * @default {true}
   */
  watch?: boolean;
  /** How long to gather file system events, ms. @default {100} */
  watchDebounceMs?: number;
  /**
   * How long a new or changed file must stay unchanged before it is
   * announced, ms.
   *
   * @default {500}
   */
  stableMs?: number;
  /**
   * Shared secret of a private swarm (16 to 1024 bytes): every incoming
   * framed connection must pass the challenge–response of
   * `acceptAuthentication` within `readTimeoutMs`, seed-protocol
   * clients are refused, and the peer authenticates itself to the tracker
   * and to every peer it downloads from.
   *
   * @default {undefined}
   */
  secret?: string;
  /** Closes the peer when aborted. */
  signal?: AbortSignal;
}

/** Events a peer emits. */
export interface PeerEventMap {
  /** Registered (or re-registered) with the tracker. */
  registered: CustomEvent<{ address: string }>;
  /** The tracker could not be reached or refused a call. */
  "tracker-error": CustomEvent<{ message: string; refused: boolean }>;
  /** A download made progress. */
  progress: CustomEvent<DownloadProgress>;
  /** A connection was dropped for a protocol violation. */
  "protocol-error": CustomEvent<{ remote: string; message: string }>;
  /** Watching the shared directory failed; it is rescanned instead. */
  "watch-error": CustomEvent<{ message: string }>;
}

/** Upload counters for one remote address. */
export interface UploadStatus {
  /** Remote `host:port`. */
  remote: string;
  /** Bytes sent on this connection. */
  bytes: number;
  /** Chunks (or whole files) sent. */
  chunks: number;
}

/** A snapshot of what a peer is doing. */
export interface PeerStatus {
  /** Address the tracker gives out for this peer, once registered. */
  address: string | null;
  /** Whether the last tracker call succeeded. */
  trackerConnected: boolean;
  /** Files shared. */
  shared: number;
  /** Active downloads. */
  downloads: DownloadProgress[];
  /** Active uploads. */
  uploads: UploadStatus[];
  /** Bytes and chunks uploaded since start. */
  uploaded: { bytes: number; chunks: number };
}

/** A running peer. */
export interface Peer extends EventTarget, AsyncDisposable {
  /** The bound port. */
  readonly port: number;
  /** The shared files. */
  readonly shares: ShareIndex;
  /** Lists files on the network. */
  list(query?: string): Promise<ListedFile[]>;
  /** Holders of a name or content id. */
  peers(target: string): Promise<PeerInfo[]>;
  /** Downloads a file by name or content id. */
  download(
    target: string,
    options?: Partial<DownloadOptions>,
  ): Promise<DownloadResult>;
  /** What the peer is doing now. */
  status(): PeerStatus;
  /** Rescans the shared directory and announces changes now. */
  refresh(): Promise<void>;
  /** Unregisters, stops serving and closes every connection. */
  close(): Promise<void>;
}

/** A connection's upload counters and its reusable file handles. */
interface ConnectionUpload extends UploadStatus {
  files: OpenFiles;
  /** Aborted when the connection ends or the peer stops. */
  signal: AbortSignal;
}

/**
 * A few open files, oldest closed first, keyed by content id: a file replaced
 * on disk gets a new id, so a stale handle is never reused for it. The path
 * is resolved (and checked to stay inside its directory) once, on open.
 */
class OpenFiles {
  #files = new Map<string, Deno.FsFile>();
  constructor(readonly max: number) {}
  async open(id: string, path: () => Promise<string>): Promise<Deno.FsFile> {
    const cached = this.#files.get(id);
    if (cached) return cached;
    const file = await Deno.open(await path(), { read: true });
    if (this.#files.size >= this.max) {
      const [oldest, handle] = this.#files.entries().next().value!;
      handle.close();
      this.#files.delete(oldest);
    }
    this.#files.set(id, file);
    return file;
  }
  close(): void {
    for (const file of this.#files.values()) file.close();
    this.#files.clear();
  }
}

/** Largest request frame a peer accepts: requests are small JSON objects. */
const MAX_REQUEST_FRAME_SIZE = 64 * 1024;

/** Most requests one connection may have queued at a peer. */
const MAX_QUEUED_REQUESTS = 256;

const sleep = (ms: number, signal: AbortSignal) =>
  new Promise<void>((resolve) => {
    if (signal.aborted) return resolve();
    const timer = setTimeout(done, ms);
    function done() {
      clearTimeout(timer);
      signal.removeEventListener("abort", done);
      resolve();
    }
    signal.addEventListener("abort", done, { once: true });
  });

/**
 * Starts a peer: indexes the shared directory, serves it and registers with
 * the tracker.
 *
 * @param options Tracker, directory, port and limits.
 * @returns The running peer; close it or `await using` it.
 *
 * @example A tracker and a peer on loopback
 * ```ts
 * import { startTracker } from "../tracker/server.ts";
 * import { startPeer } from "./node.ts";
 * const shared = await Deno.makeTempDir();
 * await Deno.writeTextFile(`${shared}/hello.txt`, "hello");
 * await using tracker = await startTracker({ port: 0, hostname: "127.0.0.1" });
 * await using peer = await startPeer({
 *   tracker: tracker.address,
 *   shared,
 *   hostname: "127.0.0.1",
 * });
 * await peer.refresh();
 * const files = await peer.list();
 * if (files[0]?.name !== "hello.txt") throw new Error("not announced");
 * await peer.close();
 * await Deno.remove(shared, { recursive: true });
 * ```
 */
export async function startPeer(options: PeerOptions): Promise<Peer> {
  const secret = options.secret === undefined
    ? undefined
    : validateSecret(options.secret);
  const shares = await ShareIndex.open({
    root: options.shared,
    ...(options.stateDir ? { stateDir: options.stateDir } : {}),
    ...(options.chunkSize ? { chunkSize: options.chunkSize } : {}),
    ...(options.includeHidden !== undefined
      ? { includeHidden: options.includeHidden }
      : {}),
    ...(options.ignore ? { ignore: options.ignore } : {}),
    ...(options.hashConcurrency
      ? { hashConcurrency: options.hashConcurrency }
      : {}),
    ...(options.onScanProgress ? { onProgress: options.onScanProgress } : {}),
    ...(options.onScanSkip ? { onSkip: options.onScanSkip } : {}),
  });
  const outDir = options.out ?? shares.root;
  const tracker = new TrackerClient(
    options.tracker,
    secret !== undefined ? { secret } : {},
  );
  const events = new EventTarget();
  const emit = <K extends keyof PeerEventMap>(
    type: K,
    detail: PeerEventMap[K]["detail"],
  ) => events.dispatchEvent(new CustomEvent(type, { detail }));
  const stop = new AbortController();
  const active = new Map<string, ActiveDownload>();
  const progress = new Map<string, DownloadProgress>();
  const uploads = new Map<string, UploadStatus>();
  const readTimeoutMs = options.readTimeoutMs ?? 30_000;
  const uploadLimiter = options.maxUploadRate
    ? new TokenBucket(options.maxUploadRate)
    : undefined;
  const downloadLimiter = options.maxDownloadRate
    ? new TokenBucket(options.maxDownloadRate)
    : undefined;
  const uploaded = { bytes: 0, chunks: 0 };
  // Chunk buffers are borrowed per chunk from one pool for all connections.
  const uploadBuffers = new UploadBuffers();

  const handleRequest = async (
    request: PeerRequest,
    connection: FrameConnection,
    rid: unknown,
    upload: ConnectionUpload,
  ) => {
    switch (request.type) {
      case "ping":
        return await connection.send({ type: "pong", rid });
      case "cancel":
        return; // Handled by the connection's queue.
      case "have": {
        if (shares.byId(request.id)) {
          return await connection.send({ type: "have", complete: true, rid });
        }
        const partial = active.get(request.id);
        if (!partial) {
          return await connection.send({
            type: "error",
            code: "not_found",
            message: `No content ${request.id.slice(0, 12)}… here`,
            rid,
          });
        }
        return await connection.send({
          type: "have",
          complete: false,
          bitfield: Buffer.from(partial.bitfield()).toString("base64"),
          rid,
        });
      }
      case "manifest": {
        let manifest: Manifest | undefined;
        if (request.id !== undefined) {
          manifest = shares.byId(request.id) ??
            active.get(request.id)?.manifest;
        } else {
          manifest = shares.byName(request.name!);
        }
        if (!manifest) {
          return await connection.send({
            type: "error",
            code: "not_found",
            message: `No file ${request.id ?? request.name} here`,
            rid,
          });
        }
        const { id, name, size, chunkSize, hashes } = manifest;
        return await connection.send({
          type: "manifest",
          manifest: { id, name, size, chunkSize, hashes },
          rid,
        });
      }
      case "chunk": {
        // A shared file, or a download in progress with this chunk verified.
        const shared = shares.byId(request.id);
        const partial = shared ? undefined : active.get(request.id);
        const manifest = shared ?? partial?.manifest;
        if (
          !manifest || (partial && !partial.has(request.index)) ||
          request.index >= chunkCount(manifest.size, manifest.chunkSize)
        ) {
          return await connection.send({
            type: "error",
            code: "not_found",
            message: `No chunk ${request.index} of ${
              request.id.slice(0, 12)
            }… here`,
            rid,
          });
        }
        const length = chunkLength(manifest, request.index);
        await uploadLimiter?.take(length, upload.signal);
        // One open file per connection, reused chunk after chunk: requests
        // on a connection are served one at a time. Seek and
        // stat are single quick syscalls, made here rather than on a
        // blocking thread; the read may wait on the disk, so it is async.
        const file = await upload.files.open(
          manifest.id,
          shared
            ? () => resolveForRead(shares.root, shared.name)
            : () => Promise.resolve(partial!.partPath),
        );
        if (shared) {
          const info = file.statSync();
          if (
            info.size !== shared.size ||
            (info.mtime?.getTime() ?? 0) !== shared.mtime
          ) {
            void refresh();
            throw new RemoteError(
              "content_changed",
              `Cannot serve ${shared.name}: it changed on disk since it was hashed`,
            );
          }
        }
        // Borrowed for this chunk only, so an idle connection holds none.
        const frame = await uploadBuffers.acquire(
          DATA_HEADER_SIZE + length,
          upload.signal,
        );
        try {
          file.seekSync(
            request.index * manifest.chunkSize,
            Deno.SeekMode.Start,
          );
          if (
            await readFull(file, frame.subarray(DATA_HEADER_SIZE)) !== length
          ) {
            throw new RemoteError(
              "content_changed",
              "Cannot serve chunk: the file is shorter than its manifest",
            );
          }
          await connection.sendDataFrame(
            typeof rid === "number" ? rid : 0,
            frame,
          );
        } finally {
          uploadBuffers.release(frame);
        }
        upload.bytes += length;
        upload.chunks++;
        uploaded.bytes += length;
        uploaded.chunks++;
      }
    }
  };

  const server = new ConnectionServer(
    Deno.listen({
      hostname: options.hostname ?? "0.0.0.0",
      port: options.port ?? 0,
    }),
    {
      framed: async (conn, prefix, remote) => {
        const connection = new FrameConnection(conn, {
          prefix,
          readTimeoutMs,
          maxFrameSize: options.maxFrameSize ?? MAX_REQUEST_FRAME_SIZE,
          readBufferSize: 16 * 1024,
          allowData: false, // requests are small JSON frames
        });
        const ended$ = new AbortController();
        const upload: ConnectionUpload = {
          remote,
          bytes: 0,
          chunks: 0,
          files: new OpenFiles(4),
          signal: AbortSignal.any([stop.signal, ended$.signal]),
        };
        uploads.set(remote, upload);
        // Requests are read eagerly into a bounded queue and served in
        // order, so a `cancel` can drop a request that is still waiting.
        const queue: { request: PeerRequest; rid: unknown }[] = [];
        let wakeWorker: (() => void) | undefined;
        let ended = false;
        const serveOne = async (request: PeerRequest, rid: unknown) => {
          try {
            await handleRequest(request, connection, rid, upload);
          } catch (error) {
            if (
              error instanceof RemoteError || error instanceof ProtocolError ||
              error instanceof Deno.errors.NotFound
            ) {
              const code = error instanceof RemoteError
                ? error.code
                : error instanceof ProtocolError
                ? "bad_request"
                : "not_found";
              await connection.send({
                type: "error",
                code,
                message: error.message,
                rid,
              });
            } else {
              throw error;
            }
          }
        };
        const worker = (async () => {
          while (true) {
            const next = queue.shift();
            if (next) {
              await serveOne(next.request, next.rid);
              continue;
            }
            if (ended) return;
            await new Promise<void>((resolve) => wakeWorker = resolve);
          }
        })().catch(() => connection.close());
        try {
          const requests = serverRequests(connection, secret, {
            timeoutMs: readTimeoutMs,
            remote,
          });
          for await (const message of requests) {
            const rid = message.rid;
            let request: PeerRequest;
            try {
              request = validatePeerRequest(message);
            } catch (error) {
              if (!(error instanceof ProtocolError)) throw error;
              // Not awaited: a client that sends but never reads must not
              // stall this loop (the connection bounds its queued writes).
              connection.send({
                type: "error",
                code: "bad_request",
                message: error.message,
                rid,
              }).catch(() => {});
              continue;
            }
            if (request.type === "cancel") {
              const target = request.target;
              const i = queue.findIndex((q) => q.rid === target);
              if (i >= 0) queue.splice(i, 1);
              continue;
            }
            if (queue.length >= MAX_QUEUED_REQUESTS) {
              throw new ProtocolError(
                `Cannot accept request: more than ${MAX_QUEUED_REQUESTS} queued on one connection`,
              );
            }
            queue.push({ request, rid });
            wakeWorker?.();
            wakeWorker = undefined;
          }
        } catch (error) {
          if (error instanceof ProtocolError) {
            emit("protocol-error", { remote, message: error.message });
            return;
          }
          throw error;
        } finally {
          ended = true;
          queue.length = 0;
          ended$.abort();
          // Close first: a worker stuck sending to a client that stopped
          // reading is released by the failing write.
          connection.close();
          wakeWorker?.();
          await worker;
          uploads.delete(remote);
          upload.files.close();
        }
      },
      legacy: async (conn, prefix, remote) => {
        if (secret !== undefined) {
          return await refusePrivateSwarm(
            conn,
            prefix,
            readTimeoutMs,
            (message) => emit("protocol-error", { remote, message }),
          );
        }
        let request;
        try {
          const { line } = await readLine(
            conn,
            prefix,
            undefined,
            readTimeoutMs,
          );
          let parsed: unknown;
          try {
            parsed = JSON.parse(line);
          } catch {
            throw new ProtocolError("Cannot accept request: it is not JSON");
          }
          request = validateLegacyRequest(parsed);
        } catch (error) {
          if (!(error instanceof ProtocolError)) throw error;
          emit("protocol-error", { remote, message: error.message });
          await writeAll(
            conn,
            encodeLine({ status: `error: ${error.message}` }),
          );
          return;
        }
        if (request.command !== "download") {
          await writeAll(
            conn,
            encodeLine({
              status:
                `error: "${request.command}" is a tracker command; this is a peer`,
            }),
          );
          return;
        }
        const shared = shares.byName(request.filename!);
        let file: Deno.FsFile | undefined;
        try {
          if (!shared) {
            throw new Deno.errors.NotFound(
              `no file named ${
                JSON.stringify(request.filename)
              } is shared here`,
            );
          }
          file = await Deno.open(
            await resolveForRead(shares.root, shared.name),
            { read: true },
          );
        } catch (error) {
          await writeAll(
            conn,
            encodeLine({ status: `error: ${(error as Error).message}` }),
          );
          return;
        }
        using _file = file;
        const { size } = await file.stat();
        const upload: UploadStatus = { remote, bytes: 0, chunks: 0 };
        uploads.set(remote, upload);
        try {
          // A client that stops reading is cut off after the read timeout
          // without progress instead of holding the connection forever.
          let stall = setTimeout(() => conn.close(), readTimeoutMs);
          const progress = () => {
            clearTimeout(stall);
            stall = setTimeout(() => conn.close(), readTimeoutMs);
          };
          try {
            await writeAll(conn, encodeLine({ status: "ok", size }));
            let sent = 0;
            while (sent < size) {
              const buffer = await uploadBuffers.acquire(
                Math.min(1024 * 1024, size - sent),
                stop.signal,
              );
              let n: number | null;
              try {
                n = await file.read(buffer);
                if (n !== null) await writeAll(conn, buffer.subarray(0, n));
              } finally {
                uploadBuffers.release(buffer);
              }
              if (n === null) break;
              progress();
              sent += n;
              upload.bytes = sent;
            }
            upload.chunks = 1;
          } finally {
            clearTimeout(stall);
          }
        } finally {
          uploads.delete(remote);
        }
      },
      error: () => {},
    },
    {
      ...(options.maxConnections
        ? { maxConnections: options.maxConnections }
        : {}),
      firstByteTimeoutMs: readTimeoutMs,
    },
  );
  server.start();
  const port = server.port;
  const host = options.advertiseHost;

  // Keeping registered: register with the full list, then heartbeats that
  // carry only what changed, numbered so the tracker can ask for the full
  // list again if it missed one; re-register when the tracker forgot us,
  // back off on failure. The watcher wakes the loop as soon as files change.
  let registeredAddress: string | null = null;
  let trackerConnected = false;
  let wake = new AbortController();
  let announcedVersion = -1;
  // Downloads in progress are announced too (partial seeding): their
  // verified chunks are served while the rest arrives.
  let partialVersion = 0;
  const allAnnouncements = (): FileAnnouncement[] => {
    const list = shares.announcements();
    for (const d of active.values()) {
      if (!shares.byId(d.manifest.id)) {
        list.push({ name: d.name, id: d.manifest.id, size: d.manifest.size });
      }
    }
    return list;
  };
  let registered = false;
  let useDeltas = false;
  let resync = false;
  let seq = 0;
  /** What the tracker holds for us, by name (first entry per name wins). */
  let announced = new Map<string, FileAnnouncement>();
  const byName = (files: FileAnnouncement[]) => {
    const map = new Map<string, FileAnnouncement>();
    for (const file of files) if (!map.has(file.name)) map.set(file.name, file);
    return map;
  };
  /** Callers of refresh() waiting for an announce of at least `version`. */
  let waiters: { version: number; resolve: () => void }[] = [];
  const settleWaiters = (version: number) => {
    const ready = waiters.filter((w) => w.version <= version);
    waiters = waiters.filter((w) => w.version > version);
    for (const w of ready) w.resolve();
  };
  const watcher = options.watch === false ? undefined : ShareWatcher.start(
    shares,
    {
      ...(options.watchDebounceMs !== undefined
        ? { debounceMs: options.watchDebounceMs }
        : {}),
      ...(options.stableMs !== undefined ? { stableMs: options.stableMs } : {}),
    },
  );
  watcher?.addEventListener("change", () => wake.abort());
  watcher?.addEventListener("error", (e) => {
    emit("watch-error", { message: (e as CustomEvent).detail.message });
  });
  const announceLoop = async () => {
    let interval = options.heartbeatIntervalMs ?? 30_000;
    let backoff = 250;
    while (!stop.signal.aborted) {
      const version = shares.version + partialVersion;
      try {
        if (!registered) {
          const files = allAnnouncements();
          const registration = await tracker.register(port, files, host);
          registered = true;
          useDeltas = registration.deltas;
          resync = false;
          seq = 0;
          announced = byName(files);
          registeredAddress = registration.address;
          interval = options.heartbeatIntervalMs ??
            registration.heartbeatIntervalMs;
          emit("registered", { address: registration.address });
        } else if (version === announcedVersion) {
          await tracker.heartbeat(port, undefined, host);
        } else if (!useDeltas || resync) {
          const files = allAnnouncements();
          await tracker.heartbeat(port, files, host);
          resync = false;
          seq = 0;
          announced = byName(files);
        } else {
          const files = allAnnouncements();
          const { added, removed } = diffAnnouncements(announced, files);
          if (added.length === 0 && removed.length === 0) {
            await tracker.heartbeat(port, undefined, host);
          } else {
            await tracker.announceChanges(port, seq + 1, added, removed, host);
            seq++;
          }
          announced = byName(files);
        }
        announcedVersion = version;
        trackerConnected = true;
        backoff = 250;
        settleWaiters(version);
        if (!wake.signal.aborted) {
          await sleep(interval, AbortSignal.any([stop.signal, wake.signal]));
        }
        if (wake.signal.aborted) wake = new AbortController();
        else if (!watcher?.active) await shares.rescan().catch(() => {});
      } catch (error) {
        if (stop.signal.aborted) break;
        if (error instanceof RemoteError && error.code === "unknown_peer") {
          registered = false;
          continue;
        }
        if (error instanceof RemoteError && error.code === "resync") {
          resync = true;
          continue;
        }
        trackerConnected = false;
        settleWaiters(version);
        emit("tracker-error", {
          message: (error as Error).message,
          refused: error instanceof RemoteError,
        });
        await sleep(backoff, stop.signal);
        backoff = Math.min(backoff * 2, interval);
      }
    }
    settleWaiters(Infinity);
  };
  const loop = announceLoop();

  /** Resolves once the tracker was sent the current list (or was tried). */
  const announceNow = () =>
    new Promise<void>((resolve) => {
      if (stop.signal.aborted) return resolve();
      waiters.push({ version: shares.version + partialVersion, resolve });
      wake.abort();
    });

  const refresh = async () => {
    await watcher?.flush();
    await shares.rescan();
    await announceNow();
  };

  let closing: Promise<void> | undefined;
  const close = () => {
    closing ??= (async () => {
      options.signal?.removeEventListener("abort", onAbort);
      stop.abort();
      await watcher?.close();
      await loop;
      if (registered) await tracker.unregister(port, host).catch(() => {});
      await server.close();
    })();
    return closing;
  };
  const onAbort = () => void close();
  options.signal?.addEventListener("abort", onAbort, { once: true });

  const peer: Peer = Object.assign(events, {
    port,
    shares,
    list: (query?: string) => tracker.list(query),
    peers: (target: string) =>
      tracker.getPeers(
        /^[0-9a-f]{64}$/.test(target) ? { id: target } : { name: target },
      ),
    download: async (
      target: string,
      downloadOptions: Partial<DownloadOptions> = {},
    ): Promise<DownloadResult> => {
      const key = target;
      const dest = downloadOptions.outDir ?? outDir;
      let activeId: string | undefined;
      try {
        const result = await download(target, {
          tracker: options.tracker,
          ...(secret !== undefined ? { secret } : {}),
          ...(downloadLimiter ? { limiter: downloadLimiter } : {}),
          ...downloadOptions,
          outDir: dest,
          signal: downloadOptions.signal
            ? AbortSignal.any([downloadOptions.signal, stop.signal])
            : stop.signal,
          onStart: (d) => {
            activeId = d.manifest.id;
            active.set(d.manifest.id, d);
            partialVersion++;
            wake.abort();
            downloadOptions.onStart?.(d);
          },
          onProgress: (p) => {
            progress.set(key, p);
            emit("progress", p);
            downloadOptions.onProgress?.(p);
          },
        });
        if (result.manifest && isInside(shares.root, result.path)) {
          // Share it at once with the manifest already verified: no rehash,
          // no rescan.
          const name = relative(shares.root, result.path).split(sep).join("/");
          const info = await Deno.stat(result.path);
          if (
            shares.isRelevant(result.path) &&
            shares.byName(name)?.id !== result.manifest.id
          ) {
            shares.add({
              ...result.manifest,
              name,
              path: result.path,
              mtime: info.mtime?.getTime() ?? 0,
            });
          }
          wake.abort();
        }
        return result;
      } finally {
        progress.delete(key);
        if (activeId !== undefined) {
          active.delete(activeId);
          partialVersion++;
        }
      }
    },
    status: (): PeerStatus => ({
      address: registeredAddress,
      trackerConnected,
      shared: shares.files().length,
      downloads: [...progress.values()],
      uploads: [...uploads.values()].filter((u) => u.bytes > 0).map((
        { remote, bytes, chunks },
      ) => ({ remote, bytes, chunks })),
      uploaded: { ...uploaded },
    }),
    refresh,
    close,
    [Symbol.asyncDispose]: close,
  });
  return peer;
}
