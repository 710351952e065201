/**
 * The seed-protocol side of a peer: answers a newline-JSON `download` request
 * with the whole file after an `ok` line, or refuses in a private swarm.
 *
 * @module
 */
import type { ConnectionHandler } from "../net/_server.ts";
import { UploadBuffers } from "../download/_chunk_buffers.ts";
import { writeAll } from "../net/connection.ts";
import { resolveForRead } from "../content/names.ts";
import {
  encodeDownloadHeader,
  encodeLine,
  readLine,
  refusePrivateSwarm,
  validateLegacyRequest,
} from "../protocol/legacy.ts";
import type { ShareIndex } from "../share/share.ts";
import { ProtocolError } from "../net/wire.ts";
import { UploadLedger, type UploadStatus } from "./_uploads.ts";

/** Options for {@linkcode SeedServer}. */
export interface SeedServerOptions {
  /** The shared files. */
  shares: ShareIndex;
  /** Refuse every client: this peer is in a private swarm. @default {false} */
  privateSwarm?: boolean;
  /**
   * Idle limit for the request line and for a client that stops reading, ms.
   *
   * @default {30000}
   */
  readTimeoutMs?: number;
  /** Pool the file buffers are borrowed from. @default {new UploadBuffers()} */
  uploadBuffers?: UploadBuffers;
  /** Counters of uploads. @default {new UploadLedger()} */
  uploads?: UploadLedger;
  /** Told when a client sent a malformed request. */
  onProtocolError?: (remote: string, message: string) => void;
  /** Aborted when the peer stops. */
  signal?: AbortSignal;
}

type Connection = Parameters<ConnectionHandler>[0];

/** Largest piece of a file written at once. */
const WRITE_SIZE = 1024 * 1024;

/**
 * Serves seed-protocol clients the whole shared files they ask for by name.
 *
 * @example Serving one connection handed over by an accept loop
 * ```ts ignore
 * const server = new SeedServer({ shares });
 * await server.serve(conn, prefix, "127.0.0.1:5000");
 * ```
 */
export class SeedServer {
  readonly #shares: ShareIndex;
  readonly #private: boolean;
  readonly #readTimeoutMs: number;
  readonly #buffers: UploadBuffers;
  readonly #uploads: UploadLedger;
  readonly #onProtocolError: (remote: string, message: string) => void;
  readonly #signal: AbortSignal;

  /**
   * Creates a server over a share index.
   *
   * @param options Shares, limits and callbacks.
   */
  constructor(options: SeedServerOptions) {
    this.#shares = options.shares;
    this.#private = options.privateSwarm ?? false;
    this.#readTimeoutMs = options.readTimeoutMs ?? 30_000;
    this.#buffers = options.uploadBuffers ?? new UploadBuffers();
    this.#uploads = options.uploads ?? new UploadLedger();
    this.#onProtocolError = options.onProtocolError ?? (() => {});
    this.#signal = options.signal ?? new AbortController().signal;
  }

  /**
   * Serves one seed-protocol connection: one request, one reply.
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
    if (this.#private) {
      return await refusePrivateSwarm(
        conn,
        prefix,
        this.#readTimeoutMs,
        (message) => this.#onProtocolError(remote, message),
      );
    }
    const filename = await this.#readRequest(conn, prefix, remote);
    if (filename === undefined) return;
    const file = await this.#open(conn, filename);
    if (!file) return;
    using _file = file;
    const upload = this.#uploads.open<UploadStatus>({
      remote,
      bytes: 0,
      chunks: 0,
    });
    try {
      await this.#send(conn, file, upload);
    } finally {
      this.#uploads.close(remote);
    }
  };

  /** Reads the request line; answers and returns nothing unless a download. */
  async #readRequest(
    conn: Connection,
    prefix: Uint8Array,
    remote: string,
  ): Promise<string | undefined> {
    let request;
    try {
      const { line } = await readLine(
        conn,
        prefix,
        undefined,
        this.#readTimeoutMs,
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
      this.#onProtocolError(remote, error.message);
      await writeAll(conn, encodeLine({ status: `error: ${error.message}` }));
      return undefined;
    }
    if (request.command !== "download") {
      await writeAll(
        conn,
        encodeLine({
          status:
            `error: "${request.command}" is a tracker command; this is a peer`,
        }),
      );
      return undefined;
    }
    return request.filename!;
  }

  /** Opens a shared file by name, or answers with the error. */
  async #open(
    conn: Connection,
    filename: string,
  ): Promise<Deno.FsFile | undefined> {
    const shared = this.#shares.byName(filename);
    try {
      if (!shared) {
        throw new Deno.errors.NotFound(
          `no file named ${JSON.stringify(filename)} is shared here`,
        );
      }
      return await Deno.open(
        await resolveForRead(this.#shares.root, shared.name),
        { read: true },
      );
    } catch (error) {
      await writeAll(
        conn,
        encodeLine({ status: `error: ${(error as Error).message}` }),
      );
      return undefined;
    }
  }

  /** Sends the `ok` line and the file. */
  async #send(
    conn: Connection,
    file: Deno.FsFile,
    upload: UploadStatus,
  ): Promise<void> {
    const { size } = await file.stat();
    // A client that stops reading is cut off after the read timeout
    // without progress instead of holding the connection forever.
    let stall = setTimeout(() => conn.close(), this.#readTimeoutMs);
    const progress = () => {
      clearTimeout(stall);
      stall = setTimeout(() => conn.close(), this.#readTimeoutMs);
    };
    try {
      // Padded: the Go client's first read must hold the line alone.
      await writeAll(conn, encodeDownloadHeader(size));
      let sent = 0;
      while (sent < size) {
        const buffer = await this.#buffers.acquire(
          Math.min(WRITE_SIZE, size - sent),
          this.#signal,
        );
        let n: number | null;
        try {
          n = await file.read(buffer);
          if (n !== null) await writeAll(conn, buffer.subarray(0, n));
        } finally {
          this.#buffers.release(buffer);
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
  }
}
