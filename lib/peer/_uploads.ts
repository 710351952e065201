/**
 * Private upload bookkeeping shared by the chunk server and the seed server:
 * counters per open connection and totals since the peer started, and per
 * file whom its chunks went to lately.
 *
 * @module
 */
import { SwarmBook } from "./_swarm.ts";

/** Upload counters for one remote address. */
export interface UploadStatus {
  /** Remote `host:port`. */
  remote: string;
  /** Bytes sent on this connection. */
  bytes: number;
  /** Chunks (or whole files) sent. */
  chunks: number;
}

/** Counters of every connection uploading now, and the totals. */
export class UploadLedger {
  readonly #open = new Map<string, UploadStatus>();
  /** Bytes and chunks uploaded since start (whole seed-protocol files not counted). */
  readonly total: { bytes: number; chunks: number } = { bytes: 0, chunks: 0 };
  /** Told of every chunk of a file sent, per peer. */
  readonly swarms: SwarmBook;

  /** @param swarms Where uploads per file and peer are counted. */
  constructor(swarms: SwarmBook = new SwarmBook()) {
    this.swarms = swarms;
  }

  /** Starts counting for a connection and returns its counters. */
  open<T extends UploadStatus>(upload: T): T {
    this.#open.set(upload.remote, upload);
    return upload;
  }

  /** Stops counting for a connection. */
  close(remote: string): void {
    this.#open.delete(remote);
  }

  /**
   * Adds one sent chunk to a connection and to the totals, and (given the
   * file's content id and the peer's address) to that file's swarm.
   */
  sent(
    upload: UploadStatus,
    bytes: number,
    to?: { id: string; peer: string },
  ): void {
    if (to) this.swarms.uploaded(to.id, to.peer, bytes);
    upload.bytes += bytes;
    upload.chunks++;
    this.total.bytes += bytes;
    this.total.chunks++;
  }

  /** Connections that sent something, as plain snapshots. */
  active(): UploadStatus[] {
    return [...this.#open.values()].filter((u) => u.bytes > 0).map((
      { remote, bytes, chunks },
    ) => ({ remote, bytes, chunks }));
  }
}
