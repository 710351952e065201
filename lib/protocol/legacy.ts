/**
 * The seed protocol Shoal grew from: one newline-terminated JSON object per
 * request, one request per connection; a `download` reply is a JSON line
 * `{"status":"ok","size":N}` followed by exactly N raw bytes.
 *
 * @module
 */
import { writeAll } from "../net/connection.ts";
import { type HostPort, parseHostPort } from "../net/address.ts";
import { type Duplex, tcpTransport, type Transport } from "../net/transport.ts";
import { TimeoutError } from "../errors.ts";
import { PRIVATE_SWARM_STATUS } from "./auth.ts";
import { isHostName } from "./messages.ts";
import { validateName } from "../content/names.ts";
import { ProtocolError } from "../net/wire.ts";

/** Default limit on one request or reply line: 1 MiB. */
export const DEFAULT_MAX_LINE_BYTES = 1024 * 1024;
/** Most file names a seed-protocol `register` or `heartbeat` may carry. */
export const MAX_LEGACY_FILES = 10_000;

/** A validated seed-protocol request. */
export interface LegacyRequest {
  /** `register`, `heartbeat`, `list`, `getpeers` or `download`. */
  command: "register" | "heartbeat" | "list" | "getpeers" | "download";
  /** `host:port` the sender serves on (register, heartbeat). */
  address?: string;
  /** Names the sender shares (register, heartbeat). */
  files?: string[];
  /** The file asked about (getpeers, download). */
  filename?: string;
}

const encoder = new TextEncoder();
const decoder = new TextDecoder("utf-8", { fatal: true });

/**
 * Encodes a reply object as one JSON line.
 *
 * @param reply The reply.
 * @returns The bytes, newline included.
 *
 * @example
 * ```ts
 * import { encodeLine } from "./legacy.ts";
 * const bytes = encodeLine({ status: "ok" });
 * if (bytes.at(-1) !== 10) throw new Error("no newline");
 * ```
 */
export function encodeLine(reply: unknown): Uint8Array {
  return encoder.encode(JSON.stringify(reply) + "\n");
}

/**
 * Size of the `ok` line before a `download` body: the first read of the
 * original Go client's JSON decoder.
 */
export const DOWNLOAD_HEADER_BYTES = 512;

/**
 * Encodes the `{"status":"ok","size":N}` line that comes before a download's
 * bytes, padded with leading spaces (valid JSON whitespace) to
 * {@linkcode DOWNLOAD_HEADER_BYTES}. The original Go client reads this line
 * through a JSON decoder whose first read takes up to 512 bytes and keeps
 * what follows the object to itself, so body bytes arriving with the line
 * were lost to it (a download failing with `EOF`); a line that fills that
 * read leaves the whole body on the connection.
 *
 * @param size The body's length in bytes.
 * @returns The line, newline included.
 *
 * @example
 * ```ts
 * import { DOWNLOAD_HEADER_BYTES, encodeDownloadHeader } from "./legacy.ts";
 * const line = encodeDownloadHeader(150000);
 * if (line.length !== DOWNLOAD_HEADER_BYTES) throw new Error("not padded");
 * const reply = JSON.parse(new TextDecoder().decode(line));
 * if (reply.size !== 150000) throw new Error("wrong size");
 * ```
 */
export function encodeDownloadHeader(size: number): Uint8Array {
  const line = JSON.stringify({ status: "ok", size }) + "\n";
  return encoder.encode(
    " ".repeat(Math.max(0, DOWNLOAD_HEADER_BYTES - line.length)) + line,
  );
}

/** A line read from a connection, and the bytes that followed it. */
export interface LineResult {
  /** The line, without its newline. */
  line: string;
  /** Bytes already read past the newline. */
  rest: Uint8Array;
}

/**
 * Reads one newline-terminated line, bounded in size and time.
 *
 * @param conn The connection.
 * @param prefix Bytes already read from it.
 * @param maxBytes Longest accepted line.
 * @param timeoutMs Longest wait for the whole line.
 * @returns The line and any bytes after it.
 * @throws {ProtocolError} If the line is too long, not UTF-8, or the
 *   connection ends first.
 * @throws {TimeoutError} If the line does not arrive in time.
 */
export async function readLine(
  conn: Duplex,
  prefix: Uint8Array,
  maxBytes: number = DEFAULT_MAX_LINE_BYTES,
  timeoutMs = 10_000,
): Promise<LineResult> {
  // Most requests arrive whole in the first read: answer from it, with no
  // buffer, read or timer of our own.
  const whole = prefix.indexOf(10);
  if (whole >= 0 && whole <= maxBytes) {
    return { line: decodeLine(prefix, whole), rest: prefix.slice(whole + 1) };
  }
  if (prefix.length > maxBytes) throw tooLong(maxBytes);
  // Else the line grows in one buffer, read into its free end, doubled as
  // it fills and never past the limit (plus one byte to see it crossed).
  let buffer = new Uint8Array(
    Math.min(maxBytes + 1, Math.max(4 * 1024, prefix.length * 2)),
  );
  buffer.set(prefix);
  let filled = prefix.length;
  let timedOut = false;
  const timer = setTimeout(() => {
    timedOut = true;
    try {
      conn.close();
    } catch { /* already closed */ }
  }, timeoutMs);
  try {
    // The prefix holds no newline within the limit (checked above).
    let searched = filled;
    while (true) {
      const newline = buffer.subarray(searched, filled).indexOf(10);
      if (newline >= 0) {
        const end = searched + newline;
        if (end > maxBytes) break;
        return {
          line: decodeLine(buffer, end),
          rest: buffer.slice(end + 1, filled),
        };
      }
      searched = filled;
      if (filled > maxBytes) break;
      if (filled === buffer.length) {
        const grown = new Uint8Array(Math.min(buffer.length * 2, maxBytes + 1));
        grown.set(buffer);
        buffer = grown;
      }
      let n: number | null;
      try {
        n = await conn.read(buffer.subarray(filled));
      } catch (error) {
        if (timedOut) break;
        throw error;
      }
      if (n === null) {
        if (timedOut) break;
        throw new ProtocolError(
          "Cannot accept line: the connection ended before a newline",
        );
      }
      filled += n;
    }
    if (timedOut) {
      throw new TimeoutError(
        `Cannot read line: no newline within ${timeoutMs} ms`,
      );
    }
    throw tooLong(maxBytes);
  } finally {
    clearTimeout(timer);
  }
}

/** The error for a line longer than `maxBytes`. */
function tooLong(maxBytes: number): ProtocolError {
  return new ProtocolError(
    `Cannot accept line: it exceeds the ${maxBytes}-byte limit`,
  );
}

/** The UTF-8 text of `bytes` before `end`, or a ProtocolError. */
function decodeLine(bytes: Uint8Array, end: number): string {
  try {
    return decoder.decode(bytes.subarray(0, end));
  } catch {
    throw new ProtocolError("Cannot accept line: it is not valid UTF-8");
  }
}

/**
 * Refuses a seed-protocol client of a private swarm, which that protocol
 * cannot authenticate: reads its request line (so the close is clean, and
 * bounded by `timeoutMs`) and answers with {@linkcode PRIVATE_SWARM_STATUS}.
 *
 * @param conn The connection.
 * @param prefix Bytes already read from it.
 * @param timeoutMs Longest wait for the request line.
 * @param report Told why the client was refused (for the server's events).
 */
export async function refusePrivateSwarm(
  conn: Duplex,
  prefix: Uint8Array,
  timeoutMs: number,
  report: (message: string) => void,
): Promise<void> {
  report("Cannot serve a seed-protocol client: this swarm is private");
  await readLine(conn, prefix, 64 * 1024, timeoutMs).catch(() => {});
  await writeAll(conn, encodeLine({ status: PRIVATE_SWARM_STATUS }));
}

/**
 * Validates a seed-protocol request.
 *
 * @param value Parsed JSON.
 * @returns The request.
 * @throws {ProtocolError} Saying which field is wrong.
 *
 * @example
 * ```ts
 * import { validateLegacyRequest } from "@shoal/shoal/protocol";
 * const request = validateLegacyRequest({ command: "getpeers", filename: "a.txt" });
 * if (request.filename !== "a.txt") throw new Error("lost filename");
 * ```
 */
export function validateLegacyRequest(value: unknown): LegacyRequest {
  if (value === null || typeof value !== "object" || Array.isArray(value)) {
    throw new ProtocolError("Cannot accept request: not a JSON object");
  }
  const obj = value as Record<string, unknown>;
  const command = obj.command;
  if (
    command !== "register" && command !== "heartbeat" && command !== "list" &&
    command !== "getpeers" && command !== "download"
  ) {
    throw new ProtocolError(
      `Cannot accept request: unknown command ${
        JSON.stringify(command)?.slice(0, 40) ?? "undefined"
      }`,
    );
  }
  const request: LegacyRequest = { command };
  if (command === "register" || command === "heartbeat") {
    let address: HostPort | undefined;
    try {
      if (typeof obj.address === "string" && obj.address.length <= 300) {
        address = parseHostPort(obj.address);
      }
    } catch {
      address = undefined;
    }
    if (!address || !isHostName(address.hostname)) {
      throw new ProtocolError(
        'Cannot accept request: "address" is not host:port with a port from 1 to 65535',
      );
    }
    request.address = obj.address as string;
    if (obj.files !== undefined || command === "register") {
      if (!Array.isArray(obj.files) || obj.files.length > MAX_LEGACY_FILES) {
        throw new ProtocolError(
          `Cannot accept request: "files" is not a list of at most ${MAX_LEGACY_FILES} names`,
        );
      }
      request.files = obj.files.map((name) => validateName(name));
    }
  }
  if (command === "getpeers" || command === "download") {
    request.filename = validateName(obj.filename);
  }
  return request;
}

/** Options for {@linkcode legacyRequest}. */
export interface LegacyRequestOptions {
  /** Bound on connect and reply, in ms. @default {10000} */
  timeoutMs?: number;
  /** How to reach the remote side. @default {tcpTransport} */
  transport?: Transport;
  /**
   * Told the connection once it is open, before the request is sent (to
   * read its local address, or to fill in a field that depends on it).
   */
  connected?: (conn: Duplex) => void;
}

/**
 * Sends one seed-protocol request and reads its one-line reply.
 *
 * @param address `host:port` of a tracker or peer.
 * @param request The request object.
 * @param options Time limit (a number is the time limit) and transport.
 * @returns The parsed reply.
 * @throws {ProtocolError} If the reply is not a JSON object line.
 *
 * @example Listing a seed-protocol tracker
 * ```ts ignore
 * import { legacyRequest } from "@shoal/shoal/protocol";
 * const reply = await legacyRequest("127.0.0.1:9000", { command: "list" });
 * console.log(reply.filemap);
 * ```
 */
export async function legacyRequest(
  address: string,
  request: Record<string, unknown>,
  options: number | LegacyRequestOptions = {},
): Promise<Record<string, unknown>> {
  const { timeoutMs = 10_000, transport = tcpTransport, connected } =
    typeof options === "number" ? { timeoutMs: options } : options;
  const conn = await transport.dial(address, { timeoutMs });
  try {
    connected?.(conn);
    await writeAll(conn, encodeLine(request));
    const { line } = await readLine(
      conn,
      new Uint8Array(),
      DEFAULT_MAX_LINE_BYTES,
      timeoutMs,
    );
    return parseReply(line);
  } finally {
    try {
      conn.close();
    } catch { /* closed by a timeout */ }
  }
}

function parseReply(line: string): Record<string, unknown> {
  let reply: unknown;
  try {
    reply = JSON.parse(line);
  } catch {
    throw new ProtocolError("Cannot accept reply: it is not JSON");
  }
  if (reply === null || typeof reply !== "object" || Array.isArray(reply)) {
    throw new ProtocolError("Cannot accept reply: it is not a JSON object");
  }
  return reply as Record<string, unknown>;
}

/** Options for {@linkcode legacyDownload}. */
export interface LegacyDownloadOptions {
  /** Bound on connecting and on each read, in ms. @default {10000} */
  timeoutMs?: number;
  /** Refuse a reply announcing more bytes than this. */
  maxSize?: number;
  /** Called with the byte count so far after each write. */
  onProgress?: (bytes: number, total: number) => void;
  /** Stops the transfer when aborted. */
  signal?: AbortSignal;
  /** How to reach the peer. @default {tcpTransport} */
  transport?: Transport;
}

/**
 * Downloads a whole file from a seed-protocol peer into an open file,
 * streaming with a fixed buffer, and checks the byte count.
 *
 * @param address Peer `host:port`.
 * @param filename Name at that peer.
 * @param file Destination, positioned at 0.
 * @param options Limits and progress.
 * @returns The number of bytes written.
 * @throws {ProtocolError} On an error status, a bad header or a short body.
 */
export async function legacyDownload(
  address: string,
  filename: string,
  file: Deno.FsFile,
  options: LegacyDownloadOptions = {},
): Promise<number> {
  const timeoutMs = options.timeoutMs ?? 10_000;
  const transport = options.transport ?? tcpTransport;
  const conn = await transport.dial(address, { timeoutMs });
  const abort = () => conn.close();
  options.signal?.addEventListener("abort", abort, { once: true });
  try {
    await writeAll(conn, encodeLine({ command: "download", filename }));
    const { line, rest } = await readLine(
      conn,
      new Uint8Array(),
      64 * 1024,
      timeoutMs,
    );
    const reply = parseReply(line);
    if (reply.status !== "ok") {
      throw new ProtocolError(
        `Cannot download ${filename} from ${address}: ${
          typeof reply.status === "string"
            ? reply.status.slice(0, 200)
            : "no status"
        }`,
      );
    }
    const size = reply.size;
    if (
      !Number.isSafeInteger(size) || (size as number) < 0 ||
      (options.maxSize !== undefined && (size as number) > options.maxSize)
    ) {
      throw new ProtocolError(
        `Cannot download ${filename} from ${address}: bad size ${
          typeof size === "number" ? size : typeof size
        }`,
      );
    }
    const total = size as number;
    let received = Math.min(rest.length, total);
    await writeAll(file, rest.subarray(0, received));
    const buffer = new Uint8Array(1024 * 1024);
    // A body that stops coming is cut off: each read must bring bytes
    // within `timeoutMs`, or the connection is closed.
    let stalled = false;
    let timer: ReturnType<typeof setTimeout> | undefined;
    const arm = () => {
      clearTimeout(timer);
      timer = setTimeout(() => {
        stalled = true;
        abort();
      }, timeoutMs);
    };
    try {
      while (received < total) {
        options.signal?.throwIfAborted();
        arm();
        const n = await conn.read(
          buffer.subarray(0, Math.min(buffer.length, total - received)),
        ).catch((error) => {
          if (stalled) return null;
          throw error;
        });
        if (n === null) break;
        await writeAll(file, buffer.subarray(0, n));
        received += n;
        options.onProgress?.(received, total);
      }
    } finally {
      clearTimeout(timer);
    }
    options.signal?.throwIfAborted();
    if (stalled) {
      throw new TimeoutError(
        `Cannot download ${filename} from ${address}: no bytes for ${timeoutMs} ms after ${received} of ${total}`,
      );
    }
    if (received !== total) {
      throw new ProtocolError(
        `Cannot download ${filename} from ${address}: got ${received} of ${total} bytes`,
      );
    }
    return received;
  } finally {
    options.signal?.removeEventListener("abort", abort);
    try {
      conn.close();
    } catch { /* closed by abort */ }
  }
}
