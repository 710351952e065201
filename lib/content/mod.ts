/**
 * Content addressing: manifests (a file's size, chunk size and the SHA-256
 * of every chunk), content ids, and the safe file names a peer accepts.
 *
 * @example Hashing a file into a manifest
 * ```ts
 * import { contentId, hashFile, validateName } from "@shoal/shoal/content";
 *
 * const dir = await Deno.makeTempDir();
 * await Deno.writeTextFile(`${dir}/a.txt`, "hello, shoal");
 * const manifest = await hashFile(`${dir}/a.txt`, "a.txt");
 * if (manifest.size !== 12) throw new Error("wrong size");
 * const { size, chunkSize, hashes } = manifest;
 * if (contentId(size, chunkSize, hashes) !== manifest.id) {
 *   throw new Error("id mismatch");
 * }
 * validateName("docs/a.txt");
 * await Deno.remove(dir, { recursive: true });
 * ```
 *
 * @module
 */
export {
  chunkCount,
  chunkLength,
  contentId,
  DEFAULT_CHUNK_SIZE,
  effectiveChunkSize,
  hashFile,
  type HashFileOptions,
  isContentId,
  type Manifest,
  MAX_CHUNKS,
  MIN_CHUNK_SIZE,
  sha256Hex,
  validateManifest,
} from "./manifest.ts";
export {
  isInside,
  MAX_NAME_BYTES,
  resolveForRead,
  resolveForWrite,
  validateName,
} from "./names.ts";
