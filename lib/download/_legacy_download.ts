/**
 * A whole-file download from seed-protocol peers: unverifiable (only the
 * size is checked), so used only when asked for; written into a locked
 * partial file and renamed into place like a verified download.
 *
 * @module
 */
import { legacyDownload } from "../protocol/legacy.ts";
import type { PeerInfo } from "../protocol/messages.ts";
import { PART_SUFFIX, validateName } from "../content/names.ts";
import { ProtocolError } from "../net/wire.ts";
import { PartFile } from "./part_file.ts";
import { prepareDestination } from "./_destination.ts";
import {
  DEFAULT_MAX_FILE_SIZE,
  DEFAULT_STALL_TIMEOUT_MS,
  type DownloadOptions,
  type DownloadResult,
} from "./options.ts";

/** Downloads `name` whole from the first seed-protocol holder that serves it. */
export async function downloadLegacy(
  name: string,
  holders: PeerInfo[],
  options: DownloadOptions,
  started: number,
): Promise<DownloadResult> {
  const saveAs = options.saveAs !== undefined
    ? validateName(options.saveAs)
    : name;
  const { path } = await prepareDestination(
    options.outDir,
    saveAs,
    options.overwrite ?? false,
  );
  // No content id to name it by: the lock alone keeps it ours.
  const partPath = `${path}.seed${PART_SUFFIX}`;
  const part = await PartFile.open(partPath, saveAs);
  const file = part.file;
  const errors: string[] = [];
  const stallMs = options.stallTimeoutMs ?? DEFAULT_STALL_TIMEOUT_MS;
  try {
    for (const holder of holders) {
      try {
        await file.truncate(0);
        await file.seek(0, Deno.SeekMode.Start);
        const size = await legacyDownload(holder.address, holder.name, file, {
          timeoutMs: Math.min(options.requestTimeoutMs ?? 15_000, stallMs),
          maxSize: options.maxFileSize ?? DEFAULT_MAX_FILE_SIZE,
          ...(options.signal ? { signal: options.signal } : {}),
          onProgress: (bytes, total) =>
            options.onProgress?.({
              id: null,
              name: saveAs,
              size: total,
              bytes,
              received: bytes,
              chunksDone: 0,
              chunks: 1,
              rate: bytes / ((performance.now() - started) / 1000),
              eta: Infinity,
              sources: 1,
            }),
        });
        if (options.fsync) await file.syncData();
        const info = await file.stat();
        if (info.size !== size) {
          throw new ProtocolError(
            `Cannot accept ${name}: wrote ${info.size} bytes, expected ${size}`,
          );
        }
        await part.moveTo(path, saveAs, options.overwrite ?? false);
        return {
          id: null,
          name: saveAs,
          path,
          size,
          received: size,
          resumedChunks: 0,
          verified: false,
          alreadyComplete: false,
          elapsedMs: Math.round(performance.now() - started),
          sources: [{ address: holder.address, bytes: size, chunks: 1 }],
        };
      } catch (error) {
        if (options.signal?.aborted) throw error;
        if (error instanceof Deno.errors.AlreadyExists) throw error;
        errors.push(`${holder.address}: ${(error as Error).message}`);
      }
    }
    await Deno.remove(partPath).catch(() => {});
  } finally {
    part.close();
  }
  throw new Deno.errors.NotFound(
    `Cannot download ${name} from any seed-protocol peer (${
      errors.slice(-3).join("; ")
    })`,
  );
}
