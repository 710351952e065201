/**
 * The framed side of a peer: answers `have` (at once or as a long poll),
 * `manifest`, `chunk`, `hello` and `ping` from a share index and the
 * downloads in progress (verified chunks only), with a per-connection request
 * queue, open-file cache, upload limits and upload slots.
 *
 * @module
 */
import type { ConnectionHandler } from "../net/_server.ts";
import { UploadBuffers } from "../download/_chunk_buffers.ts";
import { serverRequests } from "../protocol/auth.ts";
import { FrameConnection } from "../net/connection.ts";
import { RemoteError } from "../errors.ts";
import { resolveForRead } from "../content/names.ts";
import {
  chunkCount,
  chunkLength,
  type Manifest,
  readFull,
} from "../content/manifest.ts";
import {
  type ChunkRequest,
  type HaveRequest,
  type ManifestRequest,
  type PeerRequest,
  validatePeerRequest,
} from "../protocol/messages.ts";
import type { TokenBucket } from "../net/rate_limit.ts";
import type { ShareIndex } from "../share/share.ts";
import type { ActiveDownload } from "../download/transfer.ts";
import { DATA_HEADER_SIZE, ProtocolError } from "../net/wire.ts";
import { UploadLedger, type UploadStatus } from "./_uploads.ts";
import { RequestQueue } from "./_request_queue.ts";
import { OpenFiles } from "./_open_files.ts";
import { haveReply, notFound, waitForNews } from "./_have.ts";
import type { ChunkNews } from "./_chunk_news.ts";
import { addressKey } from "./_recent_bytes.ts";
import type { SlotDecision, UploadSlots } from "./upload_slots.ts";
import type { SeedSpread } from "./seed_spread.ts";

/** Largest request frame a peer accepts: requests are small JSON objects. */
export const MAX_REQUEST_FRAME_SIZE = 64 * 1024;

/** Most long-poll `have` requests one connection may have waiting. */
export const MAX_POLLS_PER_CONNECTION = 4;

/** Options for {@linkcode ChunkServer}. */
export interface ChunkServerOptions {
  /** The shared files. */
  shares: ShareIndex;
  /**
   * A download in progress by content id; its verified chunks are served.
   *
   * @default {() => undefined}
   */
  partial?: (id: string) => ActiveDownload | undefined;
  /**
   * The change feed of a download in progress by content id, for long-poll
   * `have` requests (without one they are answered at once).
   *
   * @default {() => undefined}
   */
  news?: (id: string) => ChunkNews | undefined;
  /**
   * Who is served now when the uplink is capped; others are answered
   * `choked`.
   *
   * @default {undefined} (every request is served)
   */
  slots?: UploadSlots;
  /**
   * Spreads the chunks of whole files: a chunk handed out already may be
   * answered `choked` while others never were.
   *
   * @default {undefined}
   */
  spread?: SeedSpread;
  /** Private-swarm secret, already validated. @default {undefined} */
  secret?: string;
  /** Idle limit for a connection, ms. @default {30000} */
  readTimeoutMs?: number;
  /** Largest request frame, bytes. @default {65536} */
  maxFrameSize?: number;
  /** Shared upload cap. @default {undefined} */
  uploadLimiter?: TokenBucket;
  /** Pool the chunk buffers are borrowed from. @default {new UploadBuffers()} */
  uploadBuffers?: UploadBuffers;
  /** Counters of uploads. @default {new UploadLedger()} */
  uploads?: UploadLedger;
  /** Told when a shared file changed on disk since it was hashed. */
  onContentChanged?: () => void;
  /** Told when a connection is dropped for a protocol violation. */
  onProtocolError?: (remote: string, message: string) => void;
  /** Aborted when the peer stops. */
  signal?: AbortSignal;
}

type Connection = Parameters<ConnectionHandler>[0];

/** A connection's upload counters and its reusable file handles. */
interface ConnectionUpload extends UploadStatus {
  files: OpenFiles;
  /** Aborted when the connection ends or the peer stops. */
  signal: AbortSignal;
  /** The remote's serving address (`hello`), as an address key. */
  serves: string | undefined;
  /** The same as `host:port`, for reports. */
  servesAddress?: string;
  /** Long-poll `have` requests waiting. */
  polls: Set<Promise<void>>;
}

/**
 * Serves framed peer connections: one handler per request type, requests of
 * a connection served in order.
 *
 * @example Serving one connection handed over by an accept loop
 * ```ts ignore
 * const server = new ChunkServer({ shares });
 * await server.serve(conn, prefix, "127.0.0.1:5000");
 * ```
 */
export class ChunkServer {
  readonly #shares: ShareIndex;
  readonly #partial: (id: string) => ActiveDownload | undefined;
  readonly #news: (id: string) => ChunkNews | undefined;
  readonly #slots: UploadSlots | undefined;
  readonly #spread: SeedSpread | undefined;
  /** Serving address (address key) by connection, from `hello`. */
  readonly #hello = new Map<string, string>();
  readonly #secret: string | undefined;
  readonly #readTimeoutMs: number;
  readonly #maxFrameSize: number;
  readonly #limiter: TokenBucket | undefined;
  readonly #buffers: UploadBuffers;
  /** Upload counters. */
  readonly uploads: UploadLedger;
  readonly #onContentChanged: () => void;
  readonly #onProtocolError: (remote: string, message: string) => void;
  readonly #signal: AbortSignal;

  /**
   * Creates a server over a share index.
   *
   * @param options Shares, downloads in progress, limits and callbacks.
   */
  constructor(options: ChunkServerOptions) {
    this.#shares = options.shares;
    this.#partial = options.partial ?? (() => undefined);
    this.#news = options.news ?? (() => undefined);
    this.#slots = options.slots;
    this.#spread = options.spread;
    this.#secret = options.secret;
    this.#readTimeoutMs = options.readTimeoutMs ?? 30_000;
    this.#maxFrameSize = options.maxFrameSize ?? MAX_REQUEST_FRAME_SIZE;
    this.#limiter = options.uploadLimiter;
    this.#buffers = options.uploadBuffers ?? new UploadBuffers();
    this.uploads = options.uploads ?? new UploadLedger();
    this.#onContentChanged = options.onContentChanged ?? (() => {});
    this.#onProtocolError = options.onProtocolError ?? (() => {});
    this.#signal = options.signal ?? new AbortController().signal;
  }

  /**
   * Serves one framed connection until it ends.
   *
   * @param conn The accepted connection.
   * @param prefix Bytes already read from it.
   * @param remote Its `host:port`, for reports.
   */
  serve = async (
    conn: Connection,
    prefix: Uint8Array,
    remote: string,
  ): Promise<void> => {
    const connection = new FrameConnection(conn, {
      prefix,
      readTimeoutMs: this.#readTimeoutMs,
      maxFrameSize: this.#maxFrameSize,
      readBufferSize: 16 * 1024,
      allowData: false, // requests are small JSON frames
    });
    const ended = new AbortController();
    const upload = this.uploads.open<ConnectionUpload>({
      remote,
      bytes: 0,
      chunks: 0,
      files: new OpenFiles(4),
      signal: AbortSignal.any([this.#signal, ended.signal]),
      serves: undefined,
      polls: new Set(),
    });
    const queue = new RequestQueue<{ request: PeerRequest; rid: unknown }>();
    const worker = queue.run(({ request, rid }) =>
      this.#serveOne(request, connection, rid, upload)
    ).catch(() => connection.close());
    try {
      await this.#readRequests(connection, remote, queue, upload);
    } catch (error) {
      if (!(error instanceof ProtocolError)) throw error;
      this.#onProtocolError(remote, error.message);
    } finally {
      queue.end();
      ended.abort();
      // Close first: a worker stuck sending to a client that stopped
      // reading is released by the failing write.
      connection.close();
      await worker;
      await Promise.all(upload.polls);
      this.uploads.close(remote);
      upload.files.close();
      this.#hello.delete(remote);
      this.#slots?.leave(remote);
      this.#spread?.leave(remote);
    }
  };

  async #readRequests(
    connection: FrameConnection,
    remote: string,
    queue: RequestQueue<{ request: PeerRequest; rid: unknown }>,
    upload: ConnectionUpload,
  ): Promise<void> {
    const requests = serverRequests(connection, this.#secret, {
      timeoutMs: this.#readTimeoutMs,
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
      if (request.type === "cancel") queue.cancel(request.target);
      else if (request.type === "hello") {
        this.#sayHello(request.port, connection, rid, upload);
      } else if (
        request.type === "have" && request.after !== undefined &&
        upload.polls.size < MAX_POLLS_PER_CONNECTION
      ) {
        // Waits beside the queue: chunk requests are not held behind it.
        const poll = this.#poll(request, connection, rid, upload)
          .catch(() => connection.close())
          .finally(() => upload.polls.delete(poll));
        upload.polls.add(poll);
      } else queue.push({ request, rid });
    }
  }

  /** Serves one request, answering expected failures with an error reply. */
  async #serveOne(
    request: PeerRequest,
    connection: FrameConnection,
    rid: unknown,
    upload: ConnectionUpload,
  ): Promise<void> {
    try {
      await this.#handle(request, connection, rid, upload);
    } catch (error) {
      if (
        !(error instanceof RemoteError || error instanceof ProtocolError ||
          error instanceof Deno.errors.NotFound)
      ) {
        throw error;
      }
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
    }
  }

  async #handle(
    request: PeerRequest,
    connection: FrameConnection,
    rid: unknown,
    upload: ConnectionUpload,
  ): Promise<void> {
    switch (request.type) {
      case "ping":
        return await connection.send({ type: "pong", rid });
      case "cancel":
      case "hello":
        return; // Handled as they are read.
      case "have":
        return await connection.send(this.#have(request.id, rid));
      case "manifest":
        return await connection.send(this.#manifest(request, rid));
      case "chunk":
        return await this.#chunk(request, connection, rid, upload);
    }
  }

  /** Remembers the port a remote serves on, and says ok. */
  #sayHello(
    port: number,
    connection: FrameConnection,
    rid: unknown,
    upload: ConnectionUpload,
  ): void {
    const host = upload.remote.slice(0, upload.remote.lastIndexOf(":"));
    upload.serves = addressKey(host, port);
    upload.servesAddress = `${host}:${port}`;
    this.#hello.set(upload.remote, upload.serves);
    // Not awaited, like an error reply: the read loop never waits on writes.
    connection.send({ type: "ok", rid }).catch(() => {});
  }

  /**
   * The serving address (an address key, see `addressKey`) a connection
   * told in its `hello`.
   *
   * @param remote The connection's `host:port`.
   * @returns The key, or `undefined` before (or without) a `hello`.
   */
  helloAddress(remote: string): string | undefined {
    return this.#hello.get(remote);
  }

  /**
   * Answers a long-poll `have`: once the download's version passes
   * `after`, `waitMs` passes, the download ends or the connection closes.
   */
  async #poll(
    request: HaveRequest,
    connection: FrameConnection,
    rid: unknown,
    upload: ConnectionUpload,
  ): Promise<void> {
    const news = this.#shares.byId(request.id)
      ? undefined
      : this.#news(request.id);
    const after = request.after!;
    await waitForNews(news, after, request.waitMs ?? 0, upload.signal);
    if (upload.signal.aborted) return;
    await connection.send(this.#have(request.id, rid, after));
  }

  #have(id: string, rid: unknown, after?: number): Record<string, unknown> {
    return haveReply(this.#shares, this.#partial(id), this.#news(id), {
      id,
      rid,
      ...(after !== undefined ? { after } : {}),
    });
  }

  #manifest(
    request: ManifestRequest,
    rid: unknown,
  ): Record<string, unknown> {
    const manifest: Manifest | undefined = request.id !== undefined
      ? this.#shares.byId(request.id) ?? this.#partial(request.id)?.manifest
      : this.#shares.byName(request.name!);
    if (!manifest) {
      return notFound(`No file ${request.id ?? request.name} here`, rid);
    }
    const { id, name, size, chunkSize, hashes } = manifest;
    return {
      type: "manifest",
      manifest: { id, name, size, chunkSize, hashes },
      rid,
    };
  }

  /** Sends a chunk of a shared file, or a verified one of a download. */
  async #chunk(
    request: ChunkRequest,
    connection: FrameConnection,
    rid: unknown,
    upload: ConnectionUpload,
  ): Promise<void> {
    const shared = this.#shares.byId(request.id);
    const partial = shared ? undefined : this.#partial(request.id);
    const manifest = shared ?? partial?.manifest;
    if (
      !manifest || (partial && !partial.has(request.index)) ||
      request.index >= chunkCount(manifest.size, manifest.chunkSize)
    ) {
      return await connection.send(notFound(
        `No chunk ${request.index} of ${request.id.slice(0, 12)}… here`,
        rid,
      ));
    }
    const choked = this.#choke(request, manifest, shared !== undefined, upload);
    if (choked) {
      return await connection.send({
        type: "error",
        code: "choked",
        message: "Not now: the upload slots are taken; ask again later",
        retryAfterMs: choked.retryAfterMs,
        rid,
      });
    }
    const length = chunkLength(manifest, request.index);
    await this.#limiter?.take(length, upload.signal);
    // One open file per connection, reused chunk after chunk: requests
    // on a connection are served one at a time. Seek and
    // stat are single quick syscalls, made here rather than on a
    // blocking thread; the read may wait on the disk, so it is async.
    const file = await upload.files.open(
      manifest.id,
      shared
        ? () => resolveForRead(this.#shares.root, shared.name)
        : () => Promise.resolve(partial!.partPath),
    );
    if (shared) {
      const info = file.statSync();
      if (
        info.size !== shared.size ||
        (info.mtime?.getTime() ?? 0) !== shared.mtime
      ) {
        this.#onContentChanged();
        throw new RemoteError(
          "content_changed",
          `Cannot serve ${shared.name}: it changed on disk since it was hashed`,
        );
      }
    }
    // Borrowed for this chunk only, so an idle connection holds none.
    const frame = await this.#buffers.acquire(
      DATA_HEADER_SIZE + length,
      upload.signal,
    );
    try {
      file.seekSync(request.index * manifest.chunkSize, Deno.SeekMode.Start);
      if (await readFull(file, frame.subarray(DATA_HEADER_SIZE)) !== length) {
        throw new RemoteError(
          "content_changed",
          "Cannot serve chunk: the file is shorter than its manifest",
        );
      }
      await connection.sendDataFrame(typeof rid === "number" ? rid : 0, frame);
    } finally {
      this.#buffers.release(frame);
    }
    this.uploads.sent(upload, length, {
      id: manifest.id,
      peer: upload.servesAddress ?? upload.remote,
    });
  }

  /** Whether the upload policies refuse a chunk request now. */
  #choke(
    request: ChunkRequest,
    manifest: Manifest,
    whole: boolean,
    upload: ConnectionUpload,
  ): { retryAfterMs: number } | undefined {
    let decision: SlotDecision | undefined = this.#slots?.request(
      upload.remote,
    );
    if (decision?.unchoked === false) return decision;
    if (whole && this.#spread) {
      decision = this.#spread.request(
        manifest.id,
        chunkCount(manifest.size, manifest.chunkSize),
        request.index,
        { peer: upload.remote, serves: upload.serves !== undefined },
      );
      if (!decision.unchoked) return decision;
      // Counted as handed out now, not once sent: a request waiting for
      // the upload cap must not let the same chunk go to another peer.
      this.#spread.uploaded(
        manifest.id,
        chunkCount(manifest.size, manifest.chunkSize),
        request.index,
      );
    }
    return undefined;
  }
}
