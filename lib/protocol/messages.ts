/**
 * Shoal's framed protocol messages and their validators: every field that
 * arrives from the network is checked here, with bounds, before use.
 *
 * @module
 */
import { ProtocolError } from "../net/wire.ts";
import { validateName } from "../content/names.ts";
import { isContentId, MAX_FILE_SIZE } from "../content/manifest.ts";
import { isKeyHex } from "../net/identity.ts";

/** Longest search query accepted by the tracker. */
export const MAX_QUERY_LENGTH = 256;
/** Default cap on the files one peer may announce. */
export const DEFAULT_MAX_FILES_PER_PEER = 10_000;

/** Longest a `have` request with `after` may be held by the server, ms. */
export const MAX_HAVE_WAIT_MS = 5000;

/** Most chunk indexes a `have` reply lists in `added`. */
export const MAX_HAVE_ADDED = 4096;

/** Longest a `choked` error may ask a downloader to wait, ms. */
export const MAX_RETRY_AFTER_MS = 10_000;

/** A file as a peer announces it to the tracker. */
export interface FileAnnouncement {
  /** Relative POSIX name at the announcing peer. */
  name: string;
  /** Content id. */
  id: string;
  /** Size in bytes. */
  size: number;
}

/** `register`: a peer joins with the files it shares. */
export interface RegisterRequest {
  /** Discriminant. */
  type: "register";
  /** Port the peer serves on. */
  port: number;
  /** Advertised host, used only if the tracker trusts advertised addresses. */
  host?: string;
  /** Every file the peer shares. */
  files: FileAnnouncement[];
}

/** `heartbeat`: a peer is alive; `files`, if present, replaces its list. */
export interface HeartbeatRequest {
  /** Discriminant. */
  type: "heartbeat";
  /** Port the peer serves on (with the source IP, identifies the peer). */
  port: number;
  /** Advertised host (trusted mode only). */
  host?: string;
  /** The full current file list, when it changed (resets `seq` to 0). */
  files?: FileAnnouncement[];
  /**
   * Sequence number of an incremental announce (`added`/`removed`): one more
   * than the last the tracker applied for this peer, else it asks for a
   * resync. A full list (`register`, or `files` here) resets it to 0.
   */
  seq?: number;
  /** Files new or changed (by name) since the last announce. */
  added?: FileAnnouncement[];
  /** Names no longer shared since the last announce. */
  removed?: string[];
}

/** `unregister`: a graceful leave. */
export interface UnregisterRequest {
  /** Discriminant. */
  type: "unregister";
  /** Port the peer serves on. */
  port: number;
  /** Advertised host (trusted mode only). */
  host?: string;
}

/** `list`: files on the network, optionally filtered. */
export interface ListRequest {
  /** Discriminant. */
  type: "list";
  /** Substring, or glob with `*` and `?`, matched against names. */
  query?: string;
}

/** `getpeers`: holders of a content id, or of any content with a name. */
export interface GetPeersRequest {
  /** Discriminant. */
  type: "getpeers";
  /** Content id. */
  id?: string;
  /** Exact file name. */
  name?: string;
}

/** Any request a tracker accepts over the framed protocol. */
export type TrackerRequest =
  | RegisterRequest
  | HeartbeatRequest
  | UnregisterRequest
  | ListRequest
  | GetPeersRequest;

/** `manifest`: ask a peer for a file's manifest by id or name. */
export interface ManifestRequest {
  /** Discriminant. */
  type: "manifest";
  /** Content id. */
  id?: string;
  /** Name at that peer. */
  name?: string;
}

/** `chunk`: ask a peer for chunk `index` of content `id`. */
export interface ChunkRequest {
  /** Discriminant. */
  type: "chunk";
  /** Content id. */
  id: string;
  /** Chunk index. */
  index: number;
}

/**
 * `have`: ask a peer which chunks of content `id` it holds. With `after`, a
 * long poll: the reply waits until the holder's version passes `after`
 * (then lists the chunks `added` since), `waitMs` passes (`added: []`), or
 * the download completes.
 */
export interface HaveRequest {
  /** Discriminant. */
  type: "have";
  /** Content id. */
  id: string;
  /** The last version the asker knows; the reply waits for a newer one. */
  after?: number;
  /** Longest wait with `after`, ms (clamped to {@linkcode MAX_HAVE_WAIT_MS}). */
  waitMs?: number;
}

/**
 * `hello`: once per connection, the port the asker's own peer serves on, so
 * the server can tell it is a peer it downloads from (reciprocity).
 */
export interface HelloRequest {
  /** Discriminant. */
  type: "hello";
  /** The asker's serving port. */
  port: number;
}

/** `cancel`: drop a queued request (endgame duplicates). */
export interface CancelRequest {
  /** Discriminant. */
  type: "cancel";
  /** The `rid` of the request to drop. */
  target: number;
}

/** `ping`: liveness check. */
export interface PingRequest {
  /** Discriminant. */
  type: "ping";
}

/** Any request a peer accepts over the framed protocol. */
export type PeerRequest =
  | ManifestRequest
  | ChunkRequest
  | HaveRequest
  | HelloRequest
  | CancelRequest
  | PingRequest;

/** A file in a tracker's `list` reply. */
export interface ListedFile {
  /** Name (the most common name among holders). */
  name: string;
  /** Content id, or `null` for files announced by seed-protocol peers. */
  id: string | null;
  /** Size in bytes, or `null` when unknown (seed-protocol peers). */
  size: number | null;
  /** Number of live holders. */
  holders: number;
}

/** A holder in a tracker's `getpeers` reply. */
export interface PeerInfo {
  /** `host:port` to connect to. */
  address: string;
  /** Which protocol the holder speaks. */
  protocol: "shoal" | "legacy";
  /** The name the holder shares the file under. */
  name: string;
  /** The content id it holds under that name (`null`: seed-protocol peer). */
  id: string | null;
  /**
   * The public key (64 hex digits) it proved when it registered: a
   * downloader refuses a holder that proves another. Absent when none was
   * proved (seed-protocol or plaintext registrations).
   */
  key?: string;
}

type Obj = Record<string, unknown>;

function fail(what: string): never {
  throw new ProtocolError(`Cannot accept message: ${what}`);
}

/**
 * Checks that a value is a JSON object with a string `type`.
 *
 * @param value Untrusted value.
 * @returns The object.
 * @throws {ProtocolError} Otherwise.
 */
export function expectObject(value: unknown): Obj {
  if (value === null || typeof value !== "object" || Array.isArray(value)) {
    fail("not a JSON object");
  }
  const obj = value as Obj;
  if (typeof obj.type !== "string" || obj.type.length > 32) {
    fail('"type" is missing or not a short string');
  }
  return obj;
}

function port(obj: Obj): number {
  const value = obj.port;
  if (
    !Number.isInteger(value) || (value as number) < 1 ||
    (value as number) > 65535
  ) {
    fail(
      `"port" ${
        JSON.stringify(value) ?? "undefined"
      } is not an integer from 1 to 65535`,
    );
  }
  return value as number;
}

/**
 * Whether a value is a host name (DNS labels), an IPv4 address or an IPv6
 * address (without brackets): something that can go into `host:port`.
 *
 * @param value Untrusted value.
 * @returns `true` for a usable host.
 *
 * @example
 * ```ts
 * import { isHostName } from "./messages.ts";
 * if (!isHostName("peer-1.example") || isHostName("evil_host")) throw new Error();
 * ```
 */
export function isHostName(value: unknown): value is string {
  if (typeof value !== "string" || value.length === 0 || value.length > 253) {
    return false;
  }
  if (value.includes(":")) {
    return /^[0-9a-fA-F:.]+$/.test(value) && value.split(":").length >= 3;
  }
  return /^(?:[0-9A-Za-z](?:[0-9A-Za-z-]{0,61}[0-9A-Za-z])?)(?:\.[0-9A-Za-z](?:[0-9A-Za-z-]{0,61}[0-9A-Za-z])?)*$/
    .test(value);
}

function optionalHost(obj: Obj): { host?: string } {
  if (obj.host === undefined) return {};
  if (!isHostName(obj.host)) {
    fail('"host" is not a host name or IP address');
  }
  return { host: obj.host };
}

function optionalId(obj: Obj): { id?: string } {
  if (obj.id === undefined) return {};
  if (!isContentId(obj.id)) fail('"id" is not 64 lowercase hex digits');
  return { id: obj.id };
}

function optionalName(obj: Obj): { name?: string } {
  if (obj.name === undefined) return {};
  return { name: validateName(obj.name) };
}

/**
 * Validates a list of file announcements.
 *
 * @param value Untrusted value.
 * @param maxFiles Largest accepted list.
 * @returns The announcements.
 * @throws {ProtocolError} On a wrong shape, a bad name or id, or too many
 *   entries.
 */
export function validateAnnouncements(
  value: unknown,
  maxFiles: number,
): FileAnnouncement[] {
  if (!Array.isArray(value)) fail('"files" is not an array');
  if (value.length > maxFiles) {
    fail(
      `"files" has ${value.length} entries, more than the ${maxFiles} allowed`,
    );
  }
  return value.map((entry: unknown) => {
    if (entry === null || typeof entry !== "object") {
      fail("a file entry is not an object");
    }
    const e = entry as Obj;
    if (!isContentId(e.id)) {
      fail("a file entry's id is not 64 lowercase hex digits");
    }
    if (
      !Number.isSafeInteger(e.size) || (e.size as number) < 0 ||
      (e.size as number) > MAX_FILE_SIZE
    ) {
      fail("a file entry's size is not a non-negative integer");
    }
    return { name: validateName(e.name), id: e.id, size: e.size as number };
  });
}

/**
 * Validates the `removed` names of an incremental announce.
 *
 * @param value Untrusted value.
 * @param maxFiles Largest accepted list.
 * @returns The names.
 * @throws {ProtocolError} On a wrong shape, a bad name or too many entries.
 *
 * @example Validating removed names
 * ```ts
 * import { validateRemovedNames } from "./messages.ts";
 * if (validateRemovedNames(["a.txt"], 10)[0] !== "a.txt") throw new Error("bad");
 * ```
 */
export function validateRemovedNames(
  value: unknown,
  maxFiles: number,
): string[] {
  if (!Array.isArray(value)) fail('"removed" is not an array');
  if (value.length > maxFiles) {
    fail(`"removed" has ${value.length} entries; the limit is ${maxFiles}`);
  }
  return value.map((name: unknown) => validateName(name));
}

/**
 * Validates a request sent to a tracker.
 *
 * @param value Untrusted decoded JSON.
 * @param maxFiles Largest accepted file list.
 * @returns The typed request.
 * @throws {ProtocolError} Saying which field is wrong.
 *
 * @example Validating a list request
 * ```ts
 * import { validateTrackerRequest } from "@shoal/shoal/protocol";
 * const request = validateTrackerRequest({ type: "list", query: "*.txt" });
 * if (request.type !== "list") throw new Error("wrong type");
 * ```
 */
export function validateTrackerRequest(
  value: unknown,
  maxFiles: number = DEFAULT_MAX_FILES_PER_PEER,
): TrackerRequest {
  const obj = expectObject(value);
  switch (obj.type) {
    case "register":
      return {
        type: "register",
        port: port(obj),
        ...optionalHost(obj),
        files: validateAnnouncements(obj.files, maxFiles),
      };
    case "heartbeat": {
      const request: HeartbeatRequest = {
        type: "heartbeat",
        port: port(obj),
        ...optionalHost(obj),
        ...(obj.files === undefined
          ? {}
          : { files: validateAnnouncements(obj.files, maxFiles) }),
      };
      if (obj.added === undefined && obj.removed === undefined) return request;
      if (request.files !== undefined) {
        fail('a heartbeat carries "files" or "added"/"removed", not both');
      }
      if (!Number.isSafeInteger(obj.seq) || (obj.seq as number) < 1) {
        fail('"seq" is not a positive integer');
      }
      request.seq = obj.seq as number;
      request.added = validateAnnouncements(obj.added ?? [], maxFiles);
      request.removed = validateRemovedNames(obj.removed ?? [], maxFiles);
      return request;
    }
    case "unregister":
      return { type: "unregister", port: port(obj), ...optionalHost(obj) };
    case "list": {
      if (obj.query === undefined) return { type: "list" };
      if (
        typeof obj.query !== "string" || obj.query.length > MAX_QUERY_LENGTH
      ) {
        fail(
          `"query" is not a string of at most ${MAX_QUERY_LENGTH} characters`,
        );
      }
      return { type: "list", query: obj.query };
    }
    case "getpeers": {
      const request: GetPeersRequest = {
        type: "getpeers",
        ...optionalId(obj),
        ...optionalName(obj),
      };
      if (request.id === undefined && request.name === undefined) {
        fail('getpeers needs "id" or "name"');
      }
      return request;
    }
    default:
      fail(`unknown tracker request type ${JSON.stringify(obj.type)}`);
  }
}

/**
 * Validates a request sent to a peer.
 *
 * @param value Untrusted decoded JSON.
 * @returns The typed request.
 * @throws {ProtocolError} Saying which field is wrong.
 *
 * @example Validating a chunk request
 * ```ts
 * import { validatePeerRequest } from "@shoal/shoal/protocol";
 * const request = validatePeerRequest({ type: "chunk", id: "a".repeat(64), index: 0 });
 * if (request.type !== "chunk") throw new Error("wrong type");
 * ```
 */
export function validatePeerRequest(value: unknown): PeerRequest {
  const obj = expectObject(value);
  switch (obj.type) {
    case "manifest": {
      const request: ManifestRequest = {
        type: "manifest",
        ...optionalId(obj),
        ...optionalName(obj),
      };
      if (request.id === undefined && request.name === undefined) {
        fail('manifest needs "id" or "name"');
      }
      return request;
    }
    case "chunk": {
      if (!isContentId(obj.id)) fail('"id" is not 64 lowercase hex digits');
      if (
        !Number.isSafeInteger(obj.index) || (obj.index as number) < 0
      ) {
        fail('"index" is not a non-negative integer');
      }
      return { type: "chunk", id: obj.id, index: obj.index as number };
    }
    case "have":
      return validateHave(obj);
    case "hello":
      return { type: "hello", port: port(obj) };
    case "cancel":
      if (
        !Number.isInteger(obj.target) || (obj.target as number) < 0 ||
        (obj.target as number) > 0xffffffff
      ) {
        fail('"target" is not a request id');
      }
      return { type: "cancel", target: obj.target as number };
    case "ping":
      return { type: "ping" };
    default:
      fail(`unknown peer request type ${JSON.stringify(obj.type)}`);
  }
}

function validateHave(obj: Obj): HaveRequest {
  if (!isContentId(obj.id)) fail('"id" is not 64 lowercase hex digits');
  const request: HaveRequest = { type: "have", id: obj.id };
  if (obj.after !== undefined) {
    if (!Number.isSafeInteger(obj.after) || (obj.after as number) < 0) {
      fail('"after" is not a non-negative integer');
    }
    request.after = obj.after as number;
  }
  if (obj.waitMs !== undefined) {
    if (typeof obj.waitMs !== "number" || !(obj.waitMs >= 0)) {
      fail('"waitMs" is not a non-negative number');
    }
    request.waitMs = Math.min(obj.waitMs, MAX_HAVE_WAIT_MS);
  }
  return request;
}

/**
 * Validates a `files` reply from a tracker.
 *
 * @param value The reply object.
 * @param maxEntries Largest accepted list.
 * @returns The listed files, less any whose name is not a valid name here.
 * @throws {ProtocolError} On any otherwise malformed entry.
 */
export function validateListReply(
  value: Obj,
  maxEntries = 100_000,
): ListedFile[] {
  const files = value.files;
  if (!Array.isArray(files) || files.length > maxEntries) {
    fail('"files" is not an array of bounded length');
  }
  return files.flatMap((entry: unknown) => {
    if (entry === null || typeof entry !== "object") {
      fail("a file is not an object");
    }
    const e = entry as Obj;
    if (e.id !== null && !isContentId(e.id)) fail("a file's id is invalid");
    if (
      e.size !== null &&
      (!Number.isSafeInteger(e.size) || (e.size as number) < 0)
    ) {
      fail("a file's size is invalid");
    }
    if (!Number.isSafeInteger(e.holders) || (e.holders as number) < 0) {
      fail("a file's holder count is invalid");
    }
    // A name this side cannot save under (another tracker's rules, or a
    // hostile entry) leaves out that entry, not the whole reply.
    const name = usableName(e.name);
    if (name === undefined) return [];
    return [{
      name,
      id: e.id as string | null,
      size: e.size as number | null,
      holders: e.holders as number,
    }];
  });
}

/**
 * Validates a `peers` reply from a tracker.
 *
 * @param value The reply object.
 * @param maxEntries Largest accepted list.
 * @returns The holders, less any whose name is not a valid name here.
 * @throws {ProtocolError} On any otherwise malformed entry.
 */
export function validatePeersReply(
  value: Obj,
  maxEntries = 10_000,
): PeerInfo[] {
  const peers = value.peers;
  if (!Array.isArray(peers) || peers.length > maxEntries) {
    fail('"peers" is not an array of bounded length');
  }
  // A reply by name repeats one name for every holder: check each once.
  const names = new Map<unknown, string | undefined>();
  return peers.flatMap((entry: unknown) => {
    if (entry === null || typeof entry !== "object") {
      fail("a peer is not an object");
    }
    const e = entry as Obj;
    if (
      typeof e.address !== "string" || e.address.length > 300 ||
      !/^(\[[0-9a-fA-F:.]+\]|[0-9A-Za-z.\-]+):\d{1,5}$/.test(e.address)
    ) {
      fail("a peer's address is not host:port");
    }
    if (e.protocol !== "shoal" && e.protocol !== "legacy") {
      fail("a peer's protocol is not shoal or legacy");
    }
    if (e.id !== null && !isContentId(e.id)) {
      fail("a peer's content id is invalid");
    }
    if (e.protocol === "shoal" && e.id === null) {
      fail("a Shoal peer has no content id");
    }
    if (e.key !== undefined && !isKeyHex(e.key)) {
      fail("a peer's key is not 64 lowercase hex digits");
    }
    let name = names.get(e.name);
    if (name === undefined && !names.has(e.name)) {
      name = usableName(e.name);
      names.set(e.name, name);
    }
    if (name === undefined) return [];
    return [{
      address: e.address,
      protocol: e.protocol,
      name,
      id: e.id,
      ...(e.key !== undefined ? { key: e.key } : {}),
    }];
  });
}

function usableName(value: unknown): string | undefined {
  try {
    return validateName(value);
  } catch {
    return undefined;
  }
}

/** A peer's answer to `ping`. */
export interface Pong {
  /** Always `pong`. */
  type: "pong";
}

/** A peer's answer to `manifest`: check it with `validateManifest(manifest, id)`. */
export interface ManifestReply {
  /** Always `manifest`. */
  type: "manifest";
  /** The manifest, untrusted until validated against the content id asked for. */
  manifest: unknown;
}

/**
 * A peer's answer to `have`: everything, a bitfield of the chunks it holds,
 * or (to a long poll) the chunks `added` since the version asked after.
 * `version` grows with every verified chunk (absent from old peers).
 */
export type HaveReply =
  | { type: "have"; complete: true; version?: number }
  | { type: "have"; complete: false; bitfield: string; version?: number }
  | { type: "have"; complete: false; added: number[]; version: number };

/** A tracker's answer to `heartbeat` and `unregister`. */
export interface OkReply {
  /** Always `ok`. */
  type: "ok";
}

/** A tracker's answer to `register`. */
export interface RegisteredReply {
  /** Always `registered`. */
  type: "registered";
  /** The address the tracker recorded for the peer. */
  address: string;
  /** How often to send heartbeats, ms (when told). */
  heartbeatIntervalMs?: number;
  /** How long the tracker keeps a silent peer, ms (when told). */
  expiryMs?: number;
  /** Whether the tracker takes heartbeats carrying only changes. */
  deltas?: boolean;
}

/** A tracker's answer to `list`. */
export interface FilesReply {
  /** Always `files`. */
  type: "files";
  /** The listed files (entries with unusable names left out). */
  files: ListedFile[];
}

/** A tracker's answer to `getpeers`. */
export interface PeersReply {
  /** Always `peers`. */
  type: "peers";
  /** The holders (entries with unusable names left out). */
  peers: PeerInfo[];
}

/** Peer request type → reply type (`chunk` answers with a data frame). */
export interface PeerReplies {
  /** `manifest` → {@linkcode ManifestReply}. */
  manifest: ManifestReply;
  /** `have` → {@linkcode HaveReply}. */
  have: HaveReply;
  /** `chunk` → the chunk's bytes. */
  chunk: Uint8Array;
  /** `ping` → {@linkcode Pong}. */
  ping: Pong;
  /** `hello` → {@linkcode OkReply}. */
  hello: OkReply;
}

/** Tracker request type → reply type. */
export interface TrackerReplies {
  /** `register` → {@linkcode RegisteredReply}. */
  register: RegisteredReply;
  /** `heartbeat` → {@linkcode OkReply}. */
  heartbeat: OkReply;
  /** `unregister` → {@linkcode OkReply}. */
  unregister: OkReply;
  /** `list` → {@linkcode FilesReply}. */
  list: FilesReply;
  /** `getpeers` → {@linkcode PeersReply}. */
  getpeers: PeersReply;
}

/** For each request type of a map, the validator of its reply. */
export type ReplyValidators<M> = {
  [K in keyof M]: (reply: Record<string, unknown> | Uint8Array) => M[K];
};

function expectType(reply: Obj | Uint8Array, type: string): Obj {
  if (reply instanceof Uint8Array || reply.type !== type) {
    fail(`expected a "${type}" reply`);
  }
  return reply;
}

const optionalMs = (value: unknown): number | undefined =>
  typeof value === "number" && value >= 10 && value <= 86_400_000
    ? value
    : undefined;

/**
 * Validators of the replies to peer requests, for `RpcClient.ask`.
 *
 * @example Checking a pong
 * ```ts
 * import { peerReplies } from "@shoal/shoal/protocol";
 * const pong = peerReplies.ping({ type: "pong" });
 * if (pong.type !== "pong") throw new Error("unreachable");
 * ```
 */
export const peerReplies: ReplyValidators<PeerReplies> = {
  manifest: (reply) => ({
    type: "manifest",
    manifest: expectType(reply, "manifest").manifest,
  }),
  have: (reply) => {
    const obj = expectType(reply, "have");
    const version = obj.version;
    if (
      version !== undefined &&
      (!Number.isSafeInteger(version) || (version as number) < 0)
    ) {
      fail('"version" is not a non-negative integer');
    }
    const v = version === undefined ? {} : { version: version as number };
    if (obj.complete === true) return { type: "have", complete: true, ...v };
    if (obj.added !== undefined && obj.bitfield === undefined) {
      const added = obj.added;
      if (
        version === undefined || !Array.isArray(added) ||
        added.length > MAX_HAVE_ADDED ||
        !added.every((i) => Number.isSafeInteger(i) && i >= 0)
      ) {
        fail('"added" is not a bounded list of chunk indexes with a version');
      }
      return {
        type: "have",
        complete: false,
        added: added as number[],
        version: version as number,
      };
    }
    if (typeof obj.bitfield !== "string" || obj.bitfield.length > 1 << 20) {
      fail('"bitfield" is not a bounded base64 string');
    }
    return { type: "have", complete: false, bitfield: obj.bitfield, ...v };
  },
  chunk: (reply) => {
    if (!(reply instanceof Uint8Array)) fail("expected data for a chunk");
    return reply;
  },
  ping: (reply) => (expectType(reply, "pong"), { type: "pong" }),
  hello: (reply) => (expectType(reply, "ok"), { type: "ok" }),
};

/**
 * Validators of the replies to tracker requests, for `RpcClient.ask`.
 *
 * @example Checking a peers reply
 * ```ts
 * import { trackerReplies } from "@shoal/shoal/protocol";
 * const reply = trackerReplies.getpeers({ type: "peers", peers: [] });
 * if (reply.peers.length !== 0) throw new Error("expected no peers");
 * ```
 */
export const trackerReplies: ReplyValidators<TrackerReplies> = {
  register: (reply) => {
    const obj = expectType(reply, "registered");
    if (typeof obj.address !== "string" || obj.address.length > 300) {
      fail("the registration has no address");
    }
    const result: RegisteredReply = {
      type: "registered",
      address: obj.address,
    };
    const interval = optionalMs(obj.heartbeatIntervalMs);
    const expiry = optionalMs(obj.expiryMs);
    if (interval !== undefined) result.heartbeatIntervalMs = interval;
    if (expiry !== undefined) result.expiryMs = expiry;
    if (obj.deltas === true) result.deltas = true;
    return result;
  },
  heartbeat: (reply) => (expectType(reply, "ok"), { type: "ok" }),
  unregister: (reply) => (expectType(reply, "ok"), { type: "ok" }),
  list: (reply) => ({
    type: "files",
    files: validateListReply(expectType(reply, "files")),
  }),
  getpeers: (reply) => ({
    type: "peers",
    peers: validatePeersReply(expectType(reply, "peers")),
  }),
};
