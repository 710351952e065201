/**
 * The tracker's request logic without sockets: {@linkcode TrackerService}
 * maps a request and the address it came from to a reply, over a
 * {@linkcode TrackerStore}. The server only reads, frames and writes.
 *
 * @module
 */
import { RateLimiter } from "./_request_rate.ts";
import { formatHostPort, parseHostPort } from "../net/address.ts";
import { ProtocolError } from "../net/wire.ts";
import type { LegacyRequest } from "../protocol/legacy.ts";
import { validateLegacyRequest } from "../protocol/legacy.ts";
import {
  DEFAULT_MAX_FILES_PER_PEER,
  type HeartbeatRequest,
  isHostName,
  type ListedFile,
  type PeerInfo,
  type TrackerRequest,
  validateTrackerRequest,
} from "../protocol/messages.ts";
import {
  DEFAULT_MAX_FILES_PER_ADDRESS,
  DEFAULT_MAX_LIST_EXAMINED,
  DEFAULT_MAX_PEERS_PER_ADDRESS,
} from "./registry.ts";
import {
  type ApplyChangesResult,
  type Clock,
  StoreUnavailableError,
  type TrackerStore,
} from "./store.ts";

/** Most bytes of names in a framed `list` reply (it says `truncated`). */
const MAX_LIST_REPLY_BYTES = 4 * 1024 * 1024;
/** Names a `list` may examine per rate-limit token beyond its first. */
const NAMES_PER_TOKEN = 1000;
/** Most holders per name in a seed-protocol `list` reply. */
const SEED_HOLDERS_PER_NAME = 20;
/**
 * Most bytes of a seed-protocol `list` reply: under the 1 MiB line limit of
 * seed clients (`DEFAULT_MAX_LINE_BYTES`), whatever the store holds.
 */
const MAX_SEED_REPLY_BYTES = 960 * 1024;

/** Events a tracker emits. */
export interface TrackerEventMap {
  /** A peer registered (detail: its address). */
  register: CustomEvent<{ address: string; files: number }>;
  /** A peer left or expired (detail: its address). */
  unregister: CustomEvent<{ address: string }>;
  /**
   * A connection was dropped for a protocol violation, or because it stopped
   * reading its reply.
   */
  "protocol-error": CustomEvent<{ remote: string; message: string }>;
  /**
   * The store could not be reached (told once per outage); requests are
   * answered with a `store_unavailable` error meanwhile.
   */
  "store-unavailable": CustomEvent<{ message: string }>;
  /** The store answers again after an outage. */
  "store-available": CustomEvent<Record<never, never>>;
}

/** Reports an event of {@linkcode TrackerEventMap} with its detail. */
export type TrackerEmit = <K extends keyof TrackerEventMap>(
  type: K,
  detail: TrackerEventMap[K]["detail"],
) => void;

/** Why a framed request was refused. */
export type TrackerErrorCode =
  | "bad_request"
  | "rate_limited"
  | "limit_exceeded"
  | "resync"
  | "unknown_peer"
  | "store_unavailable";

/** A reply to a framed tracker request (without its `rid`). */
export type TrackerReply =
  | {
    type: "registered";
    address: string;
    heartbeatIntervalMs: number;
    expiryMs: number;
    deltas: true;
  }
  | { type: "ok" }
  | { type: "files"; files: ListedFile[]; truncated?: true }
  | { type: "peers"; peers: PeerInfo[] }
  | { type: "error"; code: TrackerErrorCode; message: string };

/** A reply to a seed-protocol request. */
export interface SeedReply {
  /** `"ok"`, or `"error: …"` saying why. */
  status: string;
  /** A `list` reply's names and holders. */
  filemap?: Record<string, string[]>;
  /** A `list` reply left names out. */
  truncated?: true;
  /**
   * Set on a `list` reply: this is a Shoal tracker, which also speaks the
   * framed protocol (seed clients ignore the field). A Shoal client whose
   * framed call failed does not fall back to the seed protocol when it
   * sees it: the failure was not the tracker's protocol.
   */
  shoal?: true;
  /** A `getpeers` reply's holders. */
  peers?: string[];
}

/** Options for {@linkcode TrackerService} (and, through it, the tracker). */
export interface TrackerServiceOptions {
  /** Heartbeat interval told to peers, ms. @default {30000} */
  heartbeatIntervalMs?: number;
  /**
   * A peer silent for this long disappears, ms (told to peers; the store
   * enforces it).
   *
   * @default {3 * heartbeatIntervalMs}
   */
  expiryMs?: number;
  /** Most files one peer may announce. @default {10000} */
  maxFilesPerPeer?: number;
  /**
   * Most peers (ports) registered from one IP address (an IPv6 address
   * counts for its /64); more registrations are refused. The store enforces
   * it; the service names it in its refusals.
   *
   * @default {128}
   */
  maxPeersPerAddress?: number;
  /**
   * Most files all peers registered from one IP address (IPv6: /64) may
   * announce together; announcements beyond it are refused (enforced by the
   * store, named in refusals).
   *
   * @default {100000}
   */
  maxFilesPerAddress?: number;
  /**
   * Use the host a peer advertises instead of the source address of its
   * connection (NAT and development setups). Off by default, so nobody can
   * register someone else's host.
   *
   * @default {false}
   */
  trustAdvertisedAddress?: boolean;
  /**
   * Sustained requests per second accepted from one remote IP; more are
   * answered with a `rate_limited` error. 0 disables the limit.
   *
   * @default {100}
   */
  maxRequestsPerSecond?: number;
  /**
   * Requests one remote IP may make in a burst above the sustained rate.
   *
   * @default {1000}
   */
  requestBurst?: number;
  /** Clock of the rate limit. @default {performance.now} */
  clock?: Clock;
  /** Told of each register and unregister. */
  emit?: TrackerEmit;
}

/**
 * The tracker's request logic: one handler per request, over a store.
 *
 * @example Registering a peer and asking for it
 * ```ts
 * import { MemoryStore, TrackerService } from "@shoal/shoal/tracker";
 * const service = new TrackerService(new MemoryStore());
 * const id = "a".repeat(64);
 * await service.request({
 *   type: "register",
 *   port: 10001,
 *   files: [{ name: "a.txt", id, size: 5 }],
 * }, "127.0.0.1");
 * const reply = await service.request({ type: "getpeers", id }, "127.0.0.1");
 * if (reply.type !== "peers" || reply.peers.length !== 1) throw new Error("lost");
 * ```
 */
export class TrackerService {
  /** The store the service reads and writes. */
  readonly store: TrackerStore;
  readonly #interval: number;
  readonly #expiryMs: number;
  readonly #maxFiles: number;
  readonly #maxPeersPerAddress: number;
  readonly #maxFilesPerAddress: number;
  readonly #trust: boolean;
  readonly #rate: number;
  readonly #limiter: RateLimiter;
  readonly #emit: TrackerEmit;
  /** Whether the last store call failed as unavailable. */
  #storeDown = false;

  /**
   * Creates a service over a store.
   *
   * @param store Where peers and files are kept.
   * @param options Intervals, limits and the event sink.
   */
  constructor(store: TrackerStore, options: TrackerServiceOptions = {}) {
    this.store = store;
    this.#interval = options.heartbeatIntervalMs ?? 30_000;
    this.#expiryMs = options.expiryMs ?? 3 * this.#interval;
    this.#maxFiles = options.maxFilesPerPeer ?? DEFAULT_MAX_FILES_PER_PEER;
    this.#maxPeersPerAddress = options.maxPeersPerAddress ??
      DEFAULT_MAX_PEERS_PER_ADDRESS;
    this.#maxFilesPerAddress = options.maxFilesPerAddress ??
      DEFAULT_MAX_FILES_PER_ADDRESS;
    this.#trust = options.trustAdvertisedAddress ?? false;
    this.#rate = options.maxRequestsPerSecond ?? 100;
    const clock = options.clock;
    this.#limiter = new RateLimiter(
      { requestsPerSecond: this.#rate, burst: options.requestBurst ?? 1000 },
      clock ? () => clock.now() : undefined,
    );
    this.#emit = options.emit ?? (() => {});
  }

  /**
   * Answers an untrusted framed message: rate-limited per IP, validated,
   * then handled. A bad request is answered, never thrown.
   *
   * @param message The decoded message (its `rid` is ignored).
   * @param remoteIp The IP it came from.
   * @param key The public key (hex) the client proved on a secure
   *   connection: a `register` records it with the peer.
   * @returns The reply, without `rid`.
   */
  async message(
    message: Record<string, unknown>,
    remoteIp: string,
    key?: string,
  ): Promise<TrackerReply> {
    if (!this.#limiter.take(remoteIp)) {
      return {
        type: "error",
        code: "rate_limited",
        message: this.#rateLimited(remoteIp),
      };
    }
    try {
      return await this.request(
        validateTrackerRequest(message, this.#maxFiles),
        remoteIp,
        key,
      );
    } catch (error) {
      if (!(error instanceof ProtocolError)) throw error;
      return { type: "error", code: "bad_request", message: error.message };
    }
  }

  /**
   * Answers a validated framed request (no rate limit).
   *
   * @param request The request.
   * @param remoteIp The IP it came from.
   * @param key The public key (hex) the client proved, if any.
   * @returns The reply.
   * @throws {ProtocolError} If a trusted peer advertises an invalid host.
   */
  request(
    request: TrackerRequest,
    remoteIp: string,
    key?: string,
  ): Promise<TrackerReply> {
    return this.#guard(
      this.#handle(request, remoteIp, key),
      (message) => ({ type: "error", code: "store_unavailable", message }),
    );
  }

  /**
   * Settles a store call: an unavailable store becomes the reply
   * `onDown` makes, reported once per outage; a success after an outage
   * reports the recovery.
   */
  async #guard<T>(
    work: Promise<T>,
    onDown: (message: string) => T,
  ): Promise<T> {
    try {
      const result = await work;
      if (this.#storeDown) {
        this.#storeDown = false;
        this.#emit("store-available", {});
      }
      return result;
    } catch (error) {
      if (!(error instanceof StoreUnavailableError)) throw error;
      if (!this.#storeDown) {
        this.#storeDown = true;
        this.#emit("store-unavailable", { message: error.message });
      }
      return onDown(
        `Cannot serve the request: the tracker's store is unavailable (${error.message}); retry later`,
      );
    }
  }

  #handle(
    request: TrackerRequest,
    remoteIp: string,
    key: string | undefined,
  ): Promise<TrackerReply> {
    switch (request.type) {
      case "register":
        return this.#register(request, remoteIp, key);
      case "heartbeat":
        return this.#heartbeat(request, remoteIp);
      case "unregister":
        return this.#unregister(request, remoteIp);
      case "list":
        return this.#list(request.query, remoteIp);
      case "getpeers":
        return this.#getPeers(request);
    }
  }

  /**
   * Answers an untrusted seed-protocol request.
   *
   * @param parsed The request line's JSON.
   * @param remoteIp The IP it came from.
   * @returns The reply.
   * @throws {ProtocolError} If it is invalid or over the rate limit (the
   *   server reports it and answers with an error status).
   */
  async seed(parsed: unknown, remoteIp: string): Promise<SeedReply> {
    if (!this.#limiter.take(remoteIp)) {
      throw new ProtocolError(this.#rateLimited(remoteIp));
    }
    const request = validateLegacyRequest(parsed);
    return await this.#guard(
      this.#seedHandle(request, remoteIp),
      (message) => ({ status: `error: store_unavailable: ${message}` }),
    );
  }

  async #seedHandle(
    request: LegacyRequest,
    remoteIp: string,
  ): Promise<SeedReply> {
    switch (request.command) {
      case "register":
      case "heartbeat":
        return await this.#seedAnnounce(request, remoteIp);
      case "list": {
        // Bounded: a few holders per name, and a reply that fits the seed
        // line limit, however many names and holders there are.
        const { filemap, truncated } = await this.store.seedList({
          limit: 10_000,
          holdersPerName: SEED_HOLDERS_PER_NAME,
          maxBytes: MAX_SEED_REPLY_BYTES,
        });
        return {
          status: "ok",
          filemap,
          ...(truncated ? { truncated } : {}),
          shoal: true,
        };
      }
      case "getpeers": {
        const peers = await this.store.getPeers({ name: request.filename! });
        return { status: "ok", peers: peers.map((p) => p.address) };
      }
      default:
        return {
          status:
            `error: "${request.command}" is a peer command; send it to a peer`,
        };
    }
  }

  /** Drops expired peers (reporting each) and idle rate-limit buckets. */
  async sweep(): Promise<void> {
    const expired = await this.#guard(this.store.expire(), () => []);
    for (const address of expired) {
      this.#emit("unregister", { address });
    }
    this.#limiter.sweep();
  }

  #rateLimited(remoteIp: string): string {
    return `Cannot serve ${remoteIp}: more than ${this.#rate} requests per second (slow down)`;
  }

  /** Why a registration or announce was refused, for its reply. */
  #refusal(address: string, result: ApplyChangesResult): string {
    return result === "too_many_peers"
      ? `Cannot register ${address}: its IP address already has ${this.#maxPeersPerAddress} peers registered (the most allowed)`
      : `Cannot accept the files of ${address}: they would exceed ${this.#maxFiles} files per peer or ${this.#maxFilesPerAddress} per IP address`;
  }

  #limitExceeded(address: string, result: ApplyChangesResult): TrackerReply {
    return {
      type: "error",
      code: "limit_exceeded",
      message: this.#refusal(address, result),
    };
  }

  /**
   * The address a peer is known by. Only a trusting tracker uses the
   * advertised host, and only a valid one: a reply must never carry an
   * address clients cannot parse.
   */
  #peerAddress(remoteIp: string, port: number, host?: string): string {
    if (this.#trust && host !== undefined && !isHostName(host)) {
      throw new ProtocolError(
        `Cannot accept advertised host ${
          JSON.stringify((host as string).slice(0, 64))
        }: not a host name or IP address`,
      );
    }
    return formatHostPort(this.#trust && host ? host : remoteIp, port);
  }

  async #register(
    request: Extract<TrackerRequest, { type: "register" }>,
    remoteIp: string,
    key: string | undefined,
  ): Promise<TrackerReply> {
    const address = this.#peerAddress(remoteIp, request.port, request.host);
    const result = await this.store.register({
      address,
      protocol: "shoal",
      files: request.files,
      source: remoteIp,
      ...(key !== undefined ? { key } : {}),
    });
    if (result !== "ok") return this.#limitExceeded(address, result);
    this.#emit("register", { address, files: request.files.length });
    return {
      type: "registered",
      address,
      heartbeatIntervalMs: this.#interval,
      expiryMs: this.#expiryMs,
      deltas: true,
    };
  }

  async #heartbeat(
    request: HeartbeatRequest,
    remoteIp: string,
  ): Promise<TrackerReply> {
    const address = this.#peerAddress(remoteIp, request.port, request.host);
    let result: ApplyChangesResult;
    if (request.seq !== undefined) {
      const reply = await this.store.applyChanges(address, {
        seq: request.seq,
        added: request.added ?? [],
        removed: request.removed ?? [],
        maxFiles: this.#maxFiles,
      });
      if (reply.result === "resync") {
        return {
          type: "error",
          code: "resync",
          message:
            `Cannot apply announce ${request.seq} from ${address}: expected ${
              reply.seq + 1
            } (send the full list)`,
        };
      }
      result = reply.result;
    } else if (request.files) {
      result = await this.store.replaceFiles(address, request.files);
    } else {
      result = await this.store.touch(address) ? "ok" : "unknown_peer";
    }
    if (result === "ok") return { type: "ok" };
    if (result === "unknown_peer") {
      return {
        type: "error",
        code: "unknown_peer",
        message: `Cannot refresh ${address}: not registered (register again)`,
      };
    }
    return this.#limitExceeded(address, result);
  }

  async #unregister(
    request: Extract<TrackerRequest, { type: "unregister" }>,
    remoteIp: string,
  ): Promise<TrackerReply> {
    const address = this.#peerAddress(remoteIp, request.port, request.host);
    if (await this.store.unregister(address)) {
      this.#emit("unregister", { address });
    }
    return { type: "ok" };
  }

  async #list(
    query: string | undefined,
    remoteIp: string,
  ): Promise<TrackerReply> {
    const { files, truncated, examined } = await this.store.search(query, {
      limit: 10_000,
      maxBytes: MAX_LIST_REPLY_BYTES,
      maxExamined: DEFAULT_MAX_LIST_EXAMINED,
    });
    // A query that had to examine many names costs more of the rate.
    this.#limiter.charge(remoteIp, Math.floor(examined / NAMES_PER_TOKEN));
    return { type: "files", files, ...(truncated ? { truncated } : {}) };
  }

  async #getPeers(
    request: Extract<TrackerRequest, { type: "getpeers" }>,
  ): Promise<TrackerReply> {
    const peers = await this.store.getPeers(
      request.id !== undefined ? { id: request.id } : { name: request.name! },
    );
    return { type: "peers", peers };
  }

  async #seedAnnounce(
    request: LegacyRequest,
    remoteIp: string,
  ): Promise<SeedReply> {
    const advertised = parseHostPort(request.address!);
    const address = this.#peerAddress(
      remoteIp,
      advertised.port,
      advertised.hostname,
    );
    const files = request.files?.slice(0, this.#maxFiles);
    const result = await this.store.seedAnnounce({
      command: request.command as "register" | "heartbeat",
      address,
      ...(files ? { files } : {}),
      source: remoteIp,
    });
    if (result === "ok") {
      if (request.command === "register") {
        this.#emit("register", { address, files: files?.length ?? 0 });
      }
      return { status: "ok" };
    }
    return result === "unknown_peer"
      ? { status: `error: ${address} is not registered; register first` }
      : { status: `error: ${this.#refusal(address, result)}` };
  }
}
