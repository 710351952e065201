/**
 * A Shoal peer: serves its shared directory (framed and seed protocols),
 * keeps itself registered with a tracker, and downloads from other peers,
 * serving the chunks of a download in progress as soon as they verify.
 * This file only wires the parts: {@linkcode ChunkServer},
 * {@linkcode SeedServer}, {@linkcode Announcer} and the download bookkeeping.
 *
 * @module
 */
import type { TypedEventTarget } from "../events.ts";
import { ConnectionServer } from "../net/_server.ts";
import { UploadBuffers } from "../download/_chunk_buffers.ts";
import { swarmKey, validateSecret } from "../protocol/auth.ts";
import { type Identity, peerIdOf } from "../net/identity.ts";
import { ProtocolError } from "../errors.ts";
import { loadIdentity } from "./identity_file.ts";
import type { ListedFile, PeerInfo } from "../protocol/messages.ts";
import { TokenBucket } from "../net/rate_limit.ts";
import { type ScanProgress, ShareIndex } from "../share/share.ts";
import { ShareWatcher } from "../share/watch.ts";
import { TrackerClient, type TrackerProtocol } from "../tracker/client.ts";
import type {
  ActiveDownload,
  DownloadOptions,
  DownloadProgress,
  DownloadResult,
} from "../download/transfer.ts";
import {
  type BatchOptions,
  type BatchResult,
  downloadBatch,
} from "../download/batch.ts";
import { TimeoutError } from "../errors.ts";
import { resolveTarget } from "../download/_target.ts";
import { ChunkServer } from "./chunk_server.ts";
import { SeedServer } from "./seed_server.ts";
import { Announcer, type AnnouncerOptions } from "./announcer.ts";
import { PeerDownloads } from "./_downloads.ts";
import { tcpTransport, type Transport } from "../net/transport.ts";
import { UploadLedger, type UploadStatus } from "./_uploads.ts";
import { UploadSlots } from "./upload_slots.ts";
import { SeedSpread } from "./seed_spread.ts";
import type { ChunkNews } from "./_chunk_news.ts";
import type { RecentBytes } from "./_recent_bytes.ts";
import type { DownloadSwarm } from "./_swarm.ts";

export type { UploadStatus } from "./_uploads.ts";
export type { DownloadSwarm, SwarmPeer } from "./_swarm.ts";

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
  /**
   * With an upload cap, how many peers are served at once (at full rate,
   * rotating every few seconds, one slot optimistic); the others are told
   * `choked` and ask again later. Without a cap every peer is served.
   *
   * @default {4}
   */
  uploadSlots?: number;
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
  /**
   * How connections are made and accepted: the listening socket, the
   * tracker and the peers downloaded from. Wrap {@linkcode tcpTransport} to
   * count or throttle (encryption is added on top).
   *
   * @default {tcpTransport}
   */
  transport?: Transport;
  /**
   * The peer's long-lived key pair, proved in every secure handshake; its
   * peer id is derived from the public key.
   *
   * @default {read from `<stateDir>/identity.key`, created on first start}
   */
  identity?: Identity;
  /**
   * Encrypt the connections this peer makes (to the tracker and to
   * sources). `false` speaks plaintext: for benchmarks and trusted
   * networks only.
   *
   * @default {true}
   */
  encryption?: boolean;
  /**
   * Also serve framed connections without encryption (Shoal's own peers
   * always encrypt unless told not to).
   *
   * @default {true}
   */
  plaintext?: boolean;
  /**
   * Serve seed-protocol (plaintext JSON-line) clients; `false` closes their
   * connections unanswered.
   *
   * @default {true}
   */
  seedProtocol?: boolean;
  /** Closes the peer when aborted. */
  signal?: AbortSignal;
}

/** Events a peer emits. */
export interface PeerEventMap {
  /**
   * Registered (or re-registered) with the tracker; `protocol` is `seed`
   * for a tracker that speaks only the seed protocol (names only: what it
   * lists downloads whole and unverified).
   */
  registered: CustomEvent<{ address: string; protocol: TrackerProtocol }>;
  /** The tracker could not be reached or refused a call. */
  "tracker-error": CustomEvent<{ message: string; refused: boolean }>;
  /** A download made progress. */
  progress: CustomEvent<DownloadProgress>;
  /** A connection was dropped for a protocol violation. */
  "protocol-error": CustomEvent<{ remote: string; message: string }>;
  /** Watching the shared directory failed; it is rescanned instead. */
  "watch-error": CustomEvent<{ message: string }>;
}

/** A snapshot of what a peer is doing. */
export interface PeerStatus {
  /** The peer's id (derived from its public key, see `peerIdOf`). */
  id: string;
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
export interface Peer extends TypedEventTarget<PeerEventMap>, AsyncDisposable {
  /** The bound port. */
  readonly port: number;
  /** The peer's id, derived from its public key (see `peerIdOf`). */
  readonly id: string;
  /** The public key it proves in every secure handshake. */
  readonly publicKey: Uint8Array;
  /** The shared files. */
  readonly shares: ShareIndex;
  /** Lists files on the network. */
  list(query?: string): Promise<ListedFile[]>;
  /** Holders of a name, a content id or a unique start of one (8+ hex). */
  peers(target: string): Promise<PeerInfo[]>;
  /** Downloads a file by name, content id or unique id start (8+ hex). */
  download(
    target: string,
    options?: Partial<DownloadOptions>,
  ): Promise<DownloadResult>;
  /**
   * Downloads every file a folder prefix (`docs/`) or glob (`*.iso`) picks
   * from the network, each verified, into the same relative names.
   */
  downloadBatch(
    target: string,
    options?: Partial<BatchOptions>,
  ): Promise<BatchResult>;
  /** What the peer is doing now. */
  status(): PeerStatus;
  /**
   * The swarm of a download in progress or among the last 16 ended, by
   * content id: which source each chunk came from (one byte per chunk) and
   * the rates of the peers it comes from and goes to.
   */
  swarm(id: string): DownloadSwarm | undefined;
  /** Rescans the shared directory and announces changes now. */
  refresh(): Promise<void>;
  /** Unregisters, stops serving and closes every connection. */
  close(): Promise<void>;
}

/**
 * Starts a peer: indexes the shared directory, serves it and registers with
 * the tracker.
 *
 * @param options Tracker, directory, port and limits.
 * @returns The running peer; close it or `await using` it.
 *
 * @example A tracker and a peer on loopback
 * ```ts
 * import { startPeer, startTracker } from "@shoal/shoal";
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
  const transport = options.transport ?? tcpTransport;
  const shares = await openShares(options);
  const identity = options.identity ?? await loadIdentity(shares.stateDir);
  const encryption = options.encryption ?? true;
  const tracker = new TrackerClient(options.tracker, {
    ...(secret !== undefined ? { secret } : {}),
    transport,
    identity,
    encryption,
  });
  const events = new EventTarget();
  const emit = <K extends keyof PeerEventMap>(
    type: K,
    detail: PeerEventMap[K]["detail"],
  ) => events.dispatchEvent(new CustomEvent(type, { detail }));
  const stop = new AbortController();
  let announcer: Announcer | undefined;
  const downloads = new PeerDownloads(shares, {
    tracker: options.tracker,
    outDir: options.out ?? shares.root,
    options: {
      ...(secret !== undefined ? { secret } : {}),
      identity,
      encryption,
      ...(options.maxDownloadRate
        ? { limiter: new TokenBucket(options.maxDownloadRate) }
        : {}),
      transport,
    },
    signal: stop.signal,
    onChange: () => announcer?.wake(),
    onProgress: (p) => emit("progress", p),
  });
  const uploads = new UploadLedger(downloads.swarms);
  const server = serve(options, {
    shares,
    identity,
    secret,
    transport,
    uploads,
    partial: downloads.partial,
    news: downloads.news,
    received: downloads.received,
    onContentChanged: () => void refresh(),
    onProtocolError: (remote, message) =>
      emit("protocol-error", { remote, message }),
    signal: stop.signal,
  });
  const port = server.port;
  const watcher = options.watch === false ? undefined : ShareWatcher.start(
    shares,
    {
      ...(options.watchDebounceMs !== undefined
        ? { debounceMs: options.watchDebounceMs }
        : {}),
      ...(options.stableMs !== undefined ? { stableMs: options.stableMs } : {}),
    },
  );
  const session = announcer = announce(options, {
    client: tracker,
    port,
    // Downloads in progress are announced too (partial seeding): their
    // verified chunks are served while the rest arrives.
    files: () => downloads.announcements(),
    version: () => shares.version + downloads.version,
    // Without a watcher the directory is rescanned at each heartbeat.
    idle: async () => {
      if (!watcher?.active) await shares.rescan();
    },
  });
  session.addEventListener("registered", (e) => emit("registered", e.detail));
  session.addEventListener("tracker-error", (e) => {
    const { message, refused } = e.detail;
    emit("tracker-error", { message, refused });
  });
  watcher?.addEventListener("change", () => session.wake());
  watcher?.addEventListener("error", (e) => {
    emit("watch-error", { message: e.detail.message });
  });
  session.start();

  async function refresh(): Promise<void> {
    await watcher?.flush();
    await shares.rescan();
    await session.announceNow();
  }

  let closing: Promise<void> | undefined;
  const close = () => {
    closing ??= (async () => {
      options.signal?.removeEventListener("abort", onAbort);
      stop.abort();
      const stopped = session.stop();
      await watcher?.close();
      await stopped;
      await session.close(); // unregisters
      await server.close();
    })();
    return closing;
  };
  const onAbort = () => void close();
  options.signal?.addEventListener("abort", onAbort, { once: true });

  // Every tracker call tells the session whether the tracker answered, so
  // the peer's state follows the last call of any kind.
  const observed = async <T>(call: Promise<T>): Promise<T> => {
    try {
      const result = await call;
      session.observe();
      return result;
    } catch (error) {
      if (isUnreachable(error)) session.observe(error as Error);
      throw error;
    }
  };
  // The tracker lists this peer among the holders of what it downloads.
  const isOwnAddress = (address: string) => address === session.address;
  const downloadOne = (target: string, o?: Partial<DownloadOptions>) =>
    downloads.download(target, { servingPort: port, isOwnAddress, ...o });
  const id = peerIdOf(identity.publicKey);
  const peer: Peer = Object.assign(events, {
    port,
    id,
    publicKey: identity.publicKey,
    shares,
    list: (query?: string) => observed(tracker.list(query)),
    peers: async (target: string) =>
      await observed(tracker.getPeers(
        await resolveTarget(target, (query) => observed(tracker.list(query))),
      )),
    download: downloadOne,
    downloadBatch: (target: string, o?: Partial<BatchOptions>) =>
      downloadBatch(target, {
        outDir: options.out ?? shares.root,
        ...o,
        list: (query: string) => observed(tracker.list(query || undefined)),
        run: downloadOne,
      }),
    status: (): PeerStatus => ({
      id,
      address: session.address,
      trackerConnected: session.connected,
      shared: shares.files().length,
      downloads: downloads.progress(),
      uploads: uploads.active(),
      uploaded: { ...uploads.total },
    }),
    swarm: (id: string) => downloads.swarms.swarm(id),
    refresh,
    close,
    [Symbol.asyncDispose]: close,
  });
  return peer;
}

/** What {@linkcode serve} shares with the rest of the peer. */
interface ServeContext {
  shares: ShareIndex;
  identity: Identity;
  secret: string | undefined;
  transport: Transport;
  uploads: UploadLedger;
  partial: (id: string) => ActiveDownload | undefined;
  news: (id: string) => ChunkNews | undefined;
  received: RecentBytes;
  onContentChanged: () => void;
  onProtocolError: (remote: string, message: string) => void;
  signal: AbortSignal;
}

/** Listens and serves the framed and seed protocols. */
function serve(options: PeerOptions, ctx: ServeContext): ConnectionServer {
  const readTimeoutMs = options.readTimeoutMs ?? 30_000;
  // Chunk buffers are borrowed per chunk from one pool for all connections.
  const uploadBuffers = new UploadBuffers();
  // With a capped uplink, a few peers at a time get it at full rate (those
  // uploading to this peer preferred), and whole files are spread.
  const slots = options.maxUploadRate
    ? new UploadSlots({
      ...(options.uploadSlots ? { slots: options.uploadSlots } : {}),
      reciprocity: (remote) => {
        const serves = chunks.helloAddress(remote);
        return serves === undefined ? 0 : ctx.received.bytes(serves);
      },
    })
    : undefined;
  const chunks: ChunkServer = new ChunkServer({
    shares: ctx.shares,
    partial: ctx.partial,
    news: ctx.news,
    ...(slots ? { slots, spread: new SeedSpread() } : {}),
    ...(ctx.secret !== undefined ? { secret: ctx.secret } : {}),
    readTimeoutMs,
    ...(options.maxFrameSize ? { maxFrameSize: options.maxFrameSize } : {}),
    ...(options.maxUploadRate
      ? { uploadLimiter: new TokenBucket(options.maxUploadRate) }
      : {}),
    uploadBuffers,
    uploads: ctx.uploads,
    onContentChanged: ctx.onContentChanged,
    onProtocolError: ctx.onProtocolError,
    signal: ctx.signal,
  });
  const seed = new SeedServer({
    shares: ctx.shares,
    privateSwarm: ctx.secret !== undefined,
    readTimeoutMs,
    uploadBuffers,
    uploads: ctx.uploads,
    onProtocolError: ctx.onProtocolError,
    signal: ctx.signal,
  });
  const server = ConnectionServer.listen(
    {
      hostname: options.hostname ?? "0.0.0.0",
      port: options.port ?? 0,
      transport: ctx.transport,
      ...(options.maxConnections
        ? { maxConnections: options.maxConnections }
        : {}),
      firstByteTimeoutMs: readTimeoutMs,
      secure: {
        identity: ctx.identity,
        ...(ctx.secret !== undefined ? { psk: swarmKey(ctx.secret) } : {}),
      },
      plaintext: options.plaintext ?? true,
    },
    {
      framed: chunks.serve,
      ...(options.seedProtocol === false ? {} : { legacy: seed.serve }),
      // A failed secure handshake is reported like a protocol violation.
      error: (error, remote) => {
        if (error instanceof ProtocolError) {
          ctx.onProtocolError(remote, error.message);
        }
      },
    },
  );
  server.start();
  return server;
}

/** The announce session with the peer's options. */
function announce(
  options: PeerOptions,
  session: Pick<
    AnnouncerOptions,
    "client" | "port" | "files" | "version" | "idle"
  >,
): Announcer {
  return new Announcer({
    ...session,
    ...(options.advertiseHost ? { host: options.advertiseHost } : {}),
    ...(options.heartbeatIntervalMs !== undefined
      ? { heartbeatIntervalMs: options.heartbeatIntervalMs }
      : {}),
  });
}

/** Opens the share index with the peer's options. */
function openShares(options: PeerOptions): Promise<ShareIndex> {
  return ShareIndex.open({
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
}

/** Whether `error` says the tracker could not be reached (not a refusal). */
function isUnreachable(error: unknown): boolean {
  return error instanceof Deno.errors.ConnectionRefused ||
    error instanceof Deno.errors.ConnectionReset ||
    error instanceof Deno.errors.ConnectionAborted ||
    error instanceof Deno.errors.NotConnected ||
    error instanceof Deno.errors.TimedOut ||
    error instanceof Deno.errors.BrokenPipe ||
    error instanceof Deno.errors.UnexpectedEof ||
    error instanceof TimeoutError;
}
