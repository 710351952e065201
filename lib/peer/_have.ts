/**
 * Private `have` answers of the chunk server: what a peer holds of a file
 * (complete, the chunks added since a version, or a bitfield), and the wait
 * of a long poll for the next verified chunk.
 *
 * @module
 */
import { Buffer } from "node:buffer";
import type { ActiveDownload } from "../download/transfer.ts";
import type { ShareIndex } from "../share/share.ts";
import type { ChunkNews } from "./_chunk_news.ts";

/** An error reply saying something is not here. */
export const notFound = (
  message: string,
  rid: unknown,
): Record<string, unknown> => ({
  type: "error",
  code: "not_found",
  message,
  rid,
});

/**
 * A `have` reply: complete, the chunks added since `after` (when given and
 * still remembered), or the whole bitfield; with the download's version.
 *
 * @param shares The shared files.
 * @param partial The download in progress of this id, if any.
 * @param news Its change feed, if any.
 * @param request Content id, reply id and the version the asker knows.
 * @returns The reply object.
 */
export function haveReply(
  shares: ShareIndex,
  partial: ActiveDownload | undefined,
  news: ChunkNews | undefined,
  request: { id: string; rid: unknown; after?: number },
): Record<string, unknown> {
  const { id, rid, after } = request;
  const version = news?.version ?? 0;
  if (shares.byId(id)) return { type: "have", complete: true, version, rid };
  if (!partial) return notFound(`No content ${id.slice(0, 12)}… here`, rid);
  const added = after !== undefined ? news?.since(after) : undefined;
  if (added) return { type: "have", complete: false, added, version, rid };
  return {
    type: "have",
    complete: false,
    bitfield: Buffer.from(partial.bitfield()).toString("base64"),
    version,
    rid,
  };
}

/**
 * Waits, for a long poll, until the feed passes version `after`, `waitMs`
 * passes, the download ends or `signal` aborts.
 *
 * @param news The feed (no wait without one).
 * @param after The version the asker knows.
 * @param waitMs The longest wait, ms.
 * @param signal Aborted when the connection ends.
 */
export async function waitForNews(
  news: ChunkNews | undefined,
  after: number,
  waitMs: number,
  signal: AbortSignal,
): Promise<void> {
  if (!news || after > news.version || waitMs <= 0) return;
  await news.changed(after, signal, waitMs);
}
