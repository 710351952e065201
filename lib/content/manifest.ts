/**
 * Content identity: splitting a file into chunks, hashing each with SHA-256,
 * and deriving the content id that names the file on the network.
 *
 * The content id is the SHA-256 of `"shoal-manifest-v1\n<size>\n<chunkSize>\n"`
 * followed by the raw 32-byte chunk hashes, so a manifest received from a
 * stranger is checked against the id before any chunk is trusted.
 *
 * @module
 */
import { createHash } from "node:crypto";
import { ProtocolError } from "../errors.ts";
import { validateName } from "./names.ts";
import { fromHex } from "./_bytes.ts";

/** Smallest chunk size (the original design's 4 KiB). */
export const MIN_CHUNK_SIZE = 4096;
/** Largest chunk size a peer may use: 16 MiB. */
export const MAX_CHUNK_SIZE = 16 * 1024 * 1024;
/** Default chunk size: 1 MiB. */
export const DEFAULT_CHUNK_SIZE = 1024 * 1024;
/**
 * Most chunks in one file. A larger file uses a doubled chunk size until it
 * fits, so a manifest always fits in one frame.
 */
export const MAX_CHUNKS = 131_072;
/** Largest file size accepted from the network (2^53 − 1 bytes). */
export const MAX_FILE_SIZE = Number.MAX_SAFE_INTEGER;

/** The verified description of one file's content. */
export interface Manifest {
  /** Content id: 64 lowercase hex digits. */
  id: string;
  /** The file's name at the peer that described it. */
  name: string;
  /** Size in bytes. */
  size: number;
  /** Chunk size in bytes (the last chunk may be shorter). */
  chunkSize: number;
  /** SHA-256 of each chunk, hex. */
  hashes: string[];
}

/**
 * Number of chunks of a file.
 *
 * @param size File size.
 * @param chunkSize Chunk size.
 * @returns `ceil(size / chunkSize)`.
 *
 * @example
 * ```ts
 * import { chunkCount } from "@shoal/shoal/content";
 * if (chunkCount(10, 4) !== 3) throw new Error("wrong count");
 * ```
 */
export function chunkCount(size: number, chunkSize: number): number {
  return Math.ceil(size / chunkSize);
}

/**
 * Byte length of chunk `index`.
 *
 * @param manifest The file's size and chunk size.
 * @param index Chunk index.
 * @returns The chunk's length (the last one may be short).
 *
 * @example
 * ```ts
 * import { chunkLength } from "@shoal/shoal/content";
 * if (chunkLength({ size: 10, chunkSize: 4 }, 2) !== 2) throw new Error("wrong");
 * ```
 */
export function chunkLength(
  manifest: Pick<Manifest, "size" | "chunkSize">,
  index: number,
): number {
  return Math.min(
    manifest.chunkSize,
    manifest.size - index * manifest.chunkSize,
  );
}

/**
 * The chunk size actually used for a file: the requested size, doubled until
 * the file has at most {@linkcode MAX_CHUNKS} chunks.
 *
 * @param size File size.
 * @param requested Requested chunk size.
 * @returns The chunk size to use.
 *
 * @example
 * ```ts
 * import { effectiveChunkSize } from "@shoal/shoal/content";
 * if (effectiveChunkSize(100, 4096) !== 4096) throw new Error("changed");
 * ```
 */
export function effectiveChunkSize(size: number, requested: number): number {
  let chunkSize = requested;
  while (
    chunkCount(size, chunkSize) > MAX_CHUNKS && chunkSize < MAX_CHUNK_SIZE
  ) {
    chunkSize *= 2;
  }
  return Math.min(chunkSize, MAX_CHUNK_SIZE);
}

/**
 * SHA-256 of bytes, hex.
 *
 * @param bytes Data to hash.
 * @returns 64 hex digits.
 *
 * @example
 * ```ts
 * import { sha256Hex } from "@shoal/shoal/content";
 * if (sha256Hex(new Uint8Array()).length !== 64) throw new Error("bad hash");
 * ```
 */
export function sha256Hex(bytes: Uint8Array): string {
  return createHash("sha256").update(bytes).digest("hex");
}

/**
 * Computes the content id of a file from its size, chunk size and chunk hashes.
 *
 * @param size File size.
 * @param chunkSize Chunk size.
 * @param hashes Hex SHA-256 of each chunk.
 * @returns The content id (hex).
 *
 * @example
 * ```ts
 * import { contentId, sha256Hex } from "@shoal/shoal/content";
 * const data = new TextEncoder().encode("hello");
 * const id = contentId(5, 4096, [sha256Hex(data)]);
 * if (id.length !== 64) throw new Error("bad id");
 * ```
 */
export function contentId(
  size: number,
  chunkSize: number,
  hashes: readonly string[],
): string {
  const hash = createHash("sha256");
  hash.update(`shoal-manifest-v1\n${size}\n${chunkSize}\n`);
  for (const hex of hashes) hash.update(fromHex(hex));
  return hash.digest("hex");
}

/** Whether a value is a content id (64 lowercase hex digits). */
export function isContentId(value: unknown): value is string {
  return typeof value === "string" && /^[0-9a-f]{64}$/.test(value);
}

/** Options for {@linkcode hashFile}. */
export interface HashFileOptions {
  /**
   * Requested chunk size (raised for huge files, see
   * {@linkcode effectiveChunkSize}).
   *
   * @default {DEFAULT_CHUNK_SIZE}
   */
  chunkSize?: number;
  /** Stops hashing when aborted. */
  signal?: AbortSignal;
}

/**
 * Reads a file once, in large blocks, and returns its manifest.
 *
 * @param path File to hash.
 * @param name Name to put in the manifest.
 * @param options Chunk size and cancellation.
 * @returns The manifest.
 *
 * @example Hashing a file
 * ```ts
 * import { hashFile } from "@shoal/shoal/content";
 * const path = await Deno.makeTempFile();
 * await Deno.writeTextFile(path, "hello");
 * const manifest = await hashFile(path, "hello.txt");
 * if (manifest.size !== 5 || manifest.hashes.length !== 1) throw new Error("bad");
 * await Deno.remove(path);
 * ```
 */
export async function hashFile(
  path: string,
  name: string,
  options: HashFileOptions = {},
): Promise<Manifest> {
  using file = await Deno.open(path, { read: true });
  const { size } = await file.stat();
  const chunkSize = effectiveChunkSize(
    size,
    options.chunkSize ?? DEFAULT_CHUNK_SIZE,
  );
  const perBlock = Math.max(1, Math.floor((1024 * 1024) / chunkSize));
  // A file smaller than one block gets a buffer of its own size (plus one
  // byte to see the end): allocating a whole block per small file dominates
  // hashing thousands of them.
  const block = new Uint8Array(Math.min(perBlock * chunkSize, size + 1));
  const hashes: string[] = [];
  let total = 0;
  while (true) {
    options.signal?.throwIfAborted();
    const filled = await readFull(file, block);
    if (filled === 0) break;
    total += filled;
    for (let offset = 0; offset < filled; offset += chunkSize) {
      hashes.push(
        sha256Hex(block.subarray(offset, Math.min(offset + chunkSize, filled))),
      );
    }
    if (filled < block.length) break;
  }
  if (total !== size) {
    throw new Error(
      `Cannot hash ${path}: its size changed from ${size} to ${total} while reading`,
    );
  }
  return {
    id: contentId(size, chunkSize, hashes),
    name,
    size,
    chunkSize,
    hashes,
  };
}

/**
 * Reads until `buffer` is full or the file ends.
 *
 * @param file Open file.
 * @param buffer Destination.
 * @returns Bytes read (less than `buffer.length` only at end of file).
 */
export async function readFull(
  file: Deno.FsFile,
  buffer: Uint8Array,
): Promise<number> {
  let filled = 0;
  while (filled < buffer.length) {
    const n = await file.read(buffer.subarray(filled));
    if (n === null) break;
    filled += n;
  }
  return filled;
}

/**
 * Validates a manifest received from the network and checks it against the
 * content id it claims (and the id that was asked for, if given).
 *
 * @param value The untrusted value.
 * @param expectedId The id that was requested.
 * @returns The manifest.
 * @throws {ProtocolError} If any field is invalid or the hashes do not match
 *   the id.
 *
 * @example Checking a manifest
 * ```ts
 * import { contentId, validateManifest } from "@shoal/shoal/content";
 * const hashes = ["00".repeat(32)];
 * const id = contentId(1, 4096, hashes);
 * validateManifest({ id, name: "a", size: 1, chunkSize: 4096, hashes }, id);
 * ```
 */
export function validateManifest(
  value: unknown,
  expectedId?: string,
): Manifest {
  if (value === null || typeof value !== "object") {
    throw new ProtocolError("Cannot accept manifest: not an object");
  }
  const m = value as Record<string, unknown>;
  if (!isContentId(m.id)) {
    throw new ProtocolError("Cannot accept manifest: id is not 64 hex digits");
  }
  const name = validateName(m.name);
  const size = m.size;
  if (!Number.isSafeInteger(size) || (size as number) < 0) {
    throw new ProtocolError(
      `Cannot accept manifest: size ${
        typeof size === "number" ? size : typeof size
      } is not a non-negative integer`,
    );
  }
  const chunkSize = m.chunkSize;
  if (
    !Number.isSafeInteger(chunkSize) ||
    (chunkSize as number) < MIN_CHUNK_SIZE ||
    (chunkSize as number) > MAX_CHUNK_SIZE
  ) {
    throw new ProtocolError(
      `Cannot accept manifest: chunkSize ${
        typeof chunkSize === "number" ? chunkSize : typeof chunkSize
      } is not between ${MIN_CHUNK_SIZE} and ${MAX_CHUNK_SIZE}`,
    );
  }
  const count = chunkCount(size as number, chunkSize as number);
  if (count > MAX_CHUNKS) {
    throw new ProtocolError(
      `Cannot accept manifest: ${count} chunks exceed the ${MAX_CHUNKS}-chunk limit`,
    );
  }
  const hashes = m.hashes;
  if (!Array.isArray(hashes) || hashes.length !== count) {
    throw new ProtocolError(
      `Cannot accept manifest: expected ${count} chunk hashes`,
    );
  }
  for (const hash of hashes) {
    if (!isContentId(hash)) {
      throw new ProtocolError(
        "Cannot accept manifest: a chunk hash is not 64 hex digits",
      );
    }
  }
  const computed = contentId(size as number, chunkSize as number, hashes);
  if (
    computed !== m.id || (expectedId !== undefined && computed !== expectedId)
  ) {
    throw new ProtocolError(
      `Cannot accept manifest: its hashes give id ${
        computed.slice(0, 12)
      }…, not the requested ${(expectedId ?? m.id as string).slice(0, 12)}…`,
    );
  }
  return {
    id: computed,
    name,
    size: size as number,
    chunkSize: chunkSize as number,
    hashes: hashes as string[],
  };
}
