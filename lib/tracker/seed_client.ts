/**
 * A client for a tracker that speaks only the seed JSON-line protocol (such
 * as the original Go tracker): the same calls as `TrackerClient`, mapped onto
 * `register`, `heartbeat`, `list` and `getpeers` by name.
 *
 * @module
 */
import { RemoteError } from "../errors.ts";
import { formatHostPort, parseHostPort } from "../net/address.ts";
import type { Duplex, Transport } from "../net/transport.ts";
import { ProtocolError } from "../net/wire.ts";
import { legacyRequest, MAX_LEGACY_FILES } from "../protocol/legacy.ts";
import type {
  FileAnnouncement,
  ListedFile,
  PeerInfo,
} from "../protocol/messages.ts";
import { validateName } from "../content/names.ts";
import { globMatch } from "./_name_index.ts";

/**
 * The heartbeat interval used with a seed-protocol tracker, which names
 * none: the original Go peer's 30 s (its tracker drops a peer after 3 min).
 */
export const SEED_HEARTBEAT_INTERVAL_MS = 30_000;
/** How long a seed-protocol tracker is assumed to keep a silent peer, ms. */
export const SEED_EXPIRY_MS = 180_000;
/** Most names or holders taken from one seed-protocol reply. */
const MAX_REPLY_ENTRIES = 100_000;

/** Options for {@linkcode SeedTrackerClient}. */
export interface SeedTrackerClientOptions {
  /** Bound on connecting and on each reply, ms. @default {10000} */
  timeoutMs?: number;
  /** How the tracker is dialled. @default {tcpTransport} */
  transport?: Transport;
}

/** What a seed-protocol tracker answers to `register`, in Shoal's terms. */
export interface SeedRegistration {
  /** The `host:port` this peer registered as. */
  address: string;
  /** Heartbeat interval: {@linkcode SEED_HEARTBEAT_INTERVAL_MS}. */
  heartbeatIntervalMs: number;
  /** Assumed expiry: {@linkcode SEED_EXPIRY_MS}. */
  expiryMs: number;
  /** Always `false`: the seed protocol has no incremental announces. */
  deltas: false;
}

/**
 * Talks to one seed-protocol tracker, one short connection per call.
 *
 * The seed protocol knows names, not content ids: `register` sends the names,
 * `list` returns holders by name (ids and sizes `null`), `getpeers` finds
 * holders by name only, and every holder is a `legacy` one whose bytes
 * cannot be verified. It has no `unregister` (the tracker expires a silent
 * peer), and its `register` may only add names: a tracker that never forgets
 * a name (the Go one) keeps listing a removed file until the peer expires.
 *
 * @example Listing a seed-protocol tracker
 * ```ts ignore
 * import { SeedTrackerClient } from "@shoal/shoal/tracker";
 * const files = await new SeedTrackerClient("127.0.0.1:9000").list();
 * console.log(files.map((f) => `${f.name} (${f.holders} holders)`));
 * ```
 */
export class SeedTrackerClient {
  /** Tracker `host:port`. */
  readonly address: string;
  readonly #timeoutMs: number;
  readonly #transport: Transport | undefined;
  /** The `host:port` the last register sent, for heartbeats. */
  #registeredAs: string | undefined;

  /**
   * Creates a client (no connection is made until a call).
   *
   * @param address Tracker `host:port`.
   * @param options Timeout and transport.
   */
  constructor(address: string, options: SeedTrackerClientOptions = {}) {
    this.address = address;
    this.#timeoutMs = options.timeoutMs ?? 10_000;
    this.#transport = options.transport;
  }

  async #ask(
    request: Record<string, unknown>,
    connected?: (conn: Duplex) => void,
  ): Promise<Record<string, unknown>> {
    return await legacyRequest(this.address, request, {
      timeoutMs: this.#timeoutMs,
      ...(this.#transport ? { transport: this.#transport } : {}),
      ...(connected ? { connected } : {}),
    });
  }

  /**
   * Registers a peer serving on `port` with the names of its files. A seed
   * tracker registers the address it is given, so without `host` this end's
   * address on the connection to the tracker is sent (what the tracker can
   * reach it by).
   *
   * @param port The peer's serving port.
   * @param files Everything it shares (only names are sent).
   * @param host Host to register instead of this end's address.
   * @returns The registration.
   * @throws {RemoteError} `refused` if the tracker does not answer `ok`.
   */
  async register(
    port: number,
    files: FileAnnouncement[],
    host?: string,
  ): Promise<SeedRegistration> {
    const names = [...new Set(files.map((f) => f.name))].slice(
      0,
      MAX_LEGACY_FILES,
    );
    const request: Record<string, unknown> = { command: "register" };
    let address = "";
    const reply = await this.#ask(request, (conn) => {
      const hostname = host ?? conn.localAddr?.hostname;
      if (hostname === undefined) {
        throw new TypeError(
          `Cannot register with ${this.address}: this end's address is unknown on this transport (advertise a host)`,
        );
      }
      address = formatHostPort(hostname, port);
      // Sent once the connection is open: the address is known only now.
      request.address = address;
      request.files = names;
    });
    checkStatus(reply, "register");
    this.#registeredAs = address;
    return {
      address,
      heartbeatIntervalMs: SEED_HEARTBEAT_INTERVAL_MS,
      expiryMs: SEED_EXPIRY_MS,
      deltas: false,
    };
  }

  /**
   * Sends a heartbeat. A new full list is sent as a `register`, the one
   * seed command every seed tracker applies.
   *
   * @param port The peer's serving port (for a new list).
   * @param files The new list, if it changed.
   * @param host Advertised host (for a new list).
   * @throws {RemoteError} `unknown_peer` if the tracker forgot the peer.
   */
  async heartbeat(
    port: number,
    files?: FileAnnouncement[],
    host?: string,
  ): Promise<void> {
    if (files) {
      await this.register(port, files, host);
      return;
    }
    if (this.#registeredAs === undefined) {
      throw new RemoteError("unknown_peer", "Not registered yet");
    }
    const reply = await this.#ask({
      command: "heartbeat",
      address: this.#registeredAs,
    });
    checkStatus(reply, "heartbeat");
  }

  /**
   * The seed protocol has no incremental announce: always asks for the full
   * list.
   *
   * @throws {RemoteError} Always, with code `resync`.
   */
  announceChanges(): Promise<void> {
    return Promise.reject(
      new RemoteError("resync", "A seed-protocol tracker takes full lists"),
    );
  }

  /**
   * The seed protocol has no `unregister`: the tracker drops the peer once
   * its heartbeats stop. Resolves at once.
   */
  unregister(): Promise<void> {
    return Promise.resolve();
  }

  /**
   * Lists the tracker's names, filtered here by `query` (substring, or glob
   * with `*` and `?`, matching the whole name or its last segment).
   *
   * @param query Substring or glob.
   * @returns The files by name; ids and sizes are `null`.
   */
  async list(query?: string): Promise<ListedFile[]> {
    const reply = await this.#ask({ command: "list" });
    checkStatus(reply, "list");
    const filemap = reply.filemap ?? {};
    if (
      filemap === null || typeof filemap !== "object" || Array.isArray(filemap)
    ) {
      throw new ProtocolError(
        'Cannot accept list reply: "filemap" is not an object',
      );
    }
    const needle = query?.toLowerCase() ?? "";
    const glob = /[*?]/.test(needle);
    const files: ListedFile[] = [];
    for (
      const [name, holders] of Object.entries(filemap).slice(
        0,
        MAX_REPLY_ENTRIES,
      )
    ) {
      if (!Array.isArray(holders) || !isSafeName(name)) continue;
      const lower = name.toLowerCase();
      const hit = needle === "" ||
        (glob
          ? globMatch(needle, lower) ||
            globMatch(needle, lower, lower.lastIndexOf("/") + 1)
          : lower.includes(needle));
      if (hit) {
        files.push({ name, id: null, size: null, holders: holders.length });
      }
    }
    return files.sort((a, b) => a.name < b.name ? -1 : a.name > b.name ? 1 : 0);
  }

  /**
   * Finds holders of a name. A seed tracker knows no content ids: asked for
   * an id, it returns none.
   *
   * @param query `{ name }` (or `{ id }`, which finds nothing).
   * @returns The holders, each a `legacy` peer.
   */
  async getPeers(
    query: { id: string } | { name: string },
  ): Promise<PeerInfo[]> {
    if (!("name" in query)) return [];
    const name = validateName(query.name);
    const reply = await this.#ask({ command: "getpeers", filename: name });
    checkStatus(reply, "getpeers");
    const peers = Array.isArray(reply.peers) ? reply.peers : [];
    const holders: PeerInfo[] = [];
    for (const address of peers.slice(0, MAX_REPLY_ENTRIES)) {
      if (typeof address !== "string" || address.length > 300) continue;
      try {
        const { hostname, port } = parseHostPort(address);
        holders.push({
          address: formatHostPort(hostname, port),
          protocol: "legacy",
          name,
          id: null,
        });
      } catch { /* not host:port: skipped */ }
    }
    return holders;
  }
}

function isOk(reply: Record<string, unknown>): boolean {
  return reply.status === "ok";
}

function isSafeName(name: string): boolean {
  try {
    validateName(name);
    return true;
  } catch {
    return false;
  }
}

/** Throws unless the seed reply says `ok`; "not registered" is `unknown_peer`. */
function checkStatus(reply: Record<string, unknown>, command: string): void {
  if (isOk(reply)) return;
  const status = typeof reply.status === "string"
    ? reply.status.slice(0, 200)
    : "no status";
  throw new RemoteError(
    /not registered/i.test(status) ? "unknown_peer" : "refused",
    `Cannot ${command} with the seed-protocol tracker: ${status}`,
  );
}
