/**
 * Private swarm bookkeeping of a peer: per download, which source each
 * verified chunk came from (one byte per chunk) and what each source sent
 * lately; per file, what this peer uploaded to whom lately. All bounded.
 *
 * @module
 */

/** A chunk not verified yet. */
export const CHUNK_MISSING = 0;
/** Most sources named in a chunk map; later ones count as "other". */
export const MAX_NAMED_SOURCES = 250;
/** A chunk from a source past the first {@linkcode MAX_NAMED_SOURCES}. */
export const CHUNK_OTHER = 251;
/** A chunk verified before this run (resumed from the `.part` file). */
export const CHUNK_EARLIER = 252;

/** Window of the recent rates, ms. */
const RATE_WINDOW_MS = 5_000;
/** Finished downloads whose swarm is kept. */
const KEEP_FINISHED = 16;
/** Files whose uploads are counted at once; the least recent are forgotten. */
const MAX_UPLOAD_FILES = 64;
/** Peers counted per uploaded file; the least recent are forgotten. */
const MAX_UPLOAD_PEERS = 256;

/** What one peer sent us, or we sent it, for one file. */
export interface SwarmPeer {
  /** The peer's address (`host:port`; for an upload, the port it serves on when it said so). */
  address: string;
  /** Bytes in this run. */
  bytes: number;
  /** Chunks in this run. */
  chunks: number;
  /** Rate over the last ~5 s, bytes/s. */
  rate: number;
}

/** A download's swarm: where each chunk came from and who is trading it. */
export interface DownloadSwarm {
  /** Content id. */
  id: string;
  /** Total chunks. */
  chunks: number;
  /** Whether the download ended (finished, failed or cancelled). */
  ended: boolean;
  /**
   * One byte per chunk: `0` missing, `n` in 1–250 from `sources[n - 1]`,
   * `251` from one of the sources past the 250th (`other`), `252` verified
   * before this run. A copy: the caller may keep it.
   */
  map: Uint8Array;
  /** The sources that sent verified chunks, in the order they first did. */
  sources: SwarmPeer[];
  /** The sources past the first 250, lumped together (`null` if none). */
  other: Omit<SwarmPeer, "address"> | null;
  /** The peers this peer uploads this file's chunks to, most recent first. */
  uploads: SwarmPeer[];
}

/** A byte count with a recent rate, from one-second buckets. */
class Meter {
  bytes = 0;
  chunks = 0;
  readonly #buckets = new Float64Array(RATE_WINDOW_MS / 1000);
  #second: number;
  readonly #since: number;

  constructor(now: number) {
    this.#since = now;
    this.#second = Math.floor(now / 1000);
  }

  add(bytes: number, now: number): void {
    this.#advance(now);
    this.#buckets[this.#second % this.#buckets.length]! += bytes;
    this.bytes += bytes;
    this.chunks++;
  }

  /** Bytes/s over the window (or since the first byte, if shorter). */
  rate(now: number): number {
    this.#advance(now);
    let sum = 0;
    for (const b of this.#buckets) sum += b;
    const span = Math.min(RATE_WINDOW_MS, Math.max(1000, now - this.#since));
    return Math.round(sum / (span / 1000));
  }

  #advance(now: number): void {
    const second = Math.floor(now / 1000);
    if (second === this.#second) return;
    const n = this.#buckets.length;
    const gap = Math.min(n, second - this.#second);
    for (let i = 1; i <= gap; i++) this.#buckets[(this.#second + i) % n] = 0;
    this.#second = second;
  }
}

/** One download's chunk map and sources. */
class SwarmLog {
  readonly map: Uint8Array;
  readonly #numbers = new Map<string, number>();
  readonly #sources: { address: string; meter: Meter }[] = [];
  #other: Meter | undefined;
  ended = false;

  constructor(chunks: number, has: (index: number) => boolean) {
    this.map = new Uint8Array(chunks);
    for (let i = 0; i < chunks; i++) if (has(i)) this.map[i] = CHUNK_EARLIER;
  }

  verified(index: number, length: number, source: string, now: number) {
    if (index < 0 || index >= this.map.length) return;
    let n = this.#numbers.get(source);
    if (n === undefined && this.#sources.length < MAX_NAMED_SOURCES) {
      this.#sources.push({ address: source, meter: new Meter(now) });
      n = this.#sources.length;
      this.#numbers.set(source, n);
    }
    if (n === undefined) {
      this.map[index] = CHUNK_OTHER;
      (this.#other ??= new Meter(now)).add(length, now);
    } else {
      this.map[index] = n;
      this.#sources[n - 1]!.meter.add(length, now);
    }
  }

  sources(now: number): SwarmPeer[] {
    return this.#sources.map(({ address, meter }) => ({
      address,
      bytes: meter.bytes,
      chunks: meter.chunks,
      rate: this.ended ? 0 : meter.rate(now),
    }));
  }

  other(now: number): Omit<SwarmPeer, "address"> | null {
    const m = this.#other;
    if (!m) return null;
    return {
      bytes: m.bytes,
      chunks: m.chunks,
      rate: this.ended ? 0 : m.rate(now),
    };
  }
}

/** Swarms of the downloads in progress (and a few ended), and upload meters. */
export class SwarmBook {
  readonly #logs = new Map<string, SwarmLog>();
  readonly #uploads = new Map<string, Map<string, Meter>>();
  readonly #now: () => number;

  /** @param now Clock in ms. @default {performance.now} */
  constructor(now: () => number = () => performance.now()) {
    this.#now = now;
  }

  /** A download of `id` with `chunks` chunks began; `has` tells resumed ones. */
  start(id: string, chunks: number, has: (index: number) => boolean): void {
    this.#logs.delete(id);
    this.#logs.set(id, new SwarmLog(chunks, has));
  }

  /** Chunk `index` of `id` (`length` bytes) verified, sent by `source`. */
  verified(id: string, index: number, length: number, source: string): void {
    this.#logs.get(id)?.verified(index, length, source, this.#now());
  }

  /** The download of `id` ended; its swarm is kept among the last few. */
  end(id: string): void {
    const log = this.#logs.get(id);
    if (!log) return;
    log.ended = true;
    const ended = [...this.#logs].filter(([, l]) => l.ended);
    for (const [key] of ended.slice(0, ended.length - KEEP_FINISHED)) {
      this.#logs.delete(key);
    }
  }

  /** This peer sent `bytes` of file `id` to `peer`. */
  uploaded(id: string, peer: string, bytes: number): void {
    const now = this.#now();
    let peers = this.#uploads.get(id);
    if (peers) this.#uploads.delete(id); // re-inserted last: most recent
    peers ??= new Map();
    this.#uploads.set(id, peers);
    if (this.#uploads.size > MAX_UPLOAD_FILES) {
      this.#uploads.delete(this.#uploads.keys().next().value!);
    }
    let meter = peers.get(peer);
    if (meter) peers.delete(peer);
    meter ??= new Meter(now);
    peers.set(peer, meter);
    if (peers.size > MAX_UPLOAD_PEERS) {
      peers.delete(peers.keys().next().value!);
    }
    meter.add(bytes, now);
  }

  /** The swarm of a download in progress or recently ended, by content id. */
  swarm(id: string): DownloadSwarm | undefined {
    const log = this.#logs.get(id);
    if (!log) return undefined;
    const now = this.#now();
    const uploads = [...(this.#uploads.get(id) ?? [])].reverse().map((
      [address, m],
    ) => ({ address, bytes: m.bytes, chunks: m.chunks, rate: m.rate(now) }));
    return {
      id,
      chunks: log.map.length,
      ended: log.ended,
      map: log.map.slice(),
      sources: log.sources(now),
      other: log.other(now),
      uploads,
    };
  }
}
