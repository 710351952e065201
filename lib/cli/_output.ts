/**
 * Private: what the peer command prints, as text for people and as the
 * versioned JSON documented in docs/json.md for scripts.
 *
 * @module
 */
import { formatBytes } from "../content/_bytes.ts";
import type { DownloadResult } from "../download/options.ts";
import type { ListedFile, PeerInfo } from "../protocol/messages.ts";
import { SHOWN_ID_LENGTH } from "../download/_target.ts";
import { keyFromHex, peerIdOf } from "../net/identity.ts";
import { plural, table } from "./_cli.ts";

/** The version of every `--json` document; bumped on an incompatible change. */
export const JSON_VERSION = 1;

/** Exit codes, as documented: success, failure, bad usage, Ctrl-C. */
export const EXIT = { ok: 0, failed: 1, usage: 2, interrupted: 130 } as const;

/** A command stopped by Ctrl-C (SIGINT) or SIGTERM: exit code 130. */
export class Interrupted extends Error {
  constructor(message: string) {
    super(message);
    this.name = "Interrupted";
  }
}

/** One `--json` document: the fields with `version` first. */
export function jsonLine(fields: Record<string, unknown>): string {
  return JSON.stringify({ version: JSON_VERSION, ...fields });
}

/** The `--json` document of a failed command. */
export function jsonError(message: string, exitCode: number): string {
  return jsonLine({ error: { message, exitCode } });
}

/** Listed files by name, then id (stable for people and scripts alike). */
export function sortFiles(files: ListedFile[]): ListedFile[] {
  return files.toSorted((a, b) =>
    a.name < b.name
      ? -1
      : a.name > b.name
      ? 1
      : (a.id ?? "").localeCompare(b.id ?? "")
  );
}

/** The `list` table (files sorted), or what matched nothing. */
export function formatList(files: ListedFile[], query?: string): string {
  if (files.length === 0) {
    return query ? `No files match "${query}".` : "No files on the network.";
  }
  return table([
    ["NAME", "SIZE", "HOLDERS", "ID"],
    ...sortFiles(files).map((f) => [
      f.name,
      f.size === null ? "?" : formatBytes(f.size),
      String(f.holders),
      f.id === null ? "(seed protocol)" : f.id.slice(0, SHOWN_ID_LENGTH),
    ]),
  ]);
}

/** The `peers` table, or who holds nothing. */
export function formatPeers(target: string, peers: PeerInfo[]): string {
  if (peers.length === 0) return `Nobody holds ${target}.`;
  return table([
    ["ADDRESS", "PROTOCOL", "NAME", "ID", "PEER"],
    ...peers.map((p) => [
      p.address,
      p.protocol,
      p.name,
      p.id === null ? "-" : p.id.slice(0, SHOWN_ID_LENGTH),
      // The peer id of the key it proved when it registered.
      p.key ? peerIdOf(keyFromHex(p.key)) : "-",
    ]),
  ]);
}

/** The average rate of a download, bytes/s (0 when nothing was timed). */
export function averageRate(result: DownloadResult): number {
  return result.elapsedMs > 0
    ? Math.round(result.received / (result.elapsedMs / 1000))
    : 0;
}

/** The one line a finished download prints, with its average rate. */
export function describeResult(result: DownloadResult): string {
  if (result.alreadyComplete) {
    return `Already have ${result.name} (${
      formatBytes(result.size)
    }) at ${result.path}`;
  }
  const seconds = result.elapsedMs / 1000;
  const resumed = result.resumedChunks > 0
    ? `, ${plural(result.resumedChunks, "chunk")} resumed`
    : "";
  return `Downloaded ${result.name} (${formatBytes(result.size)}) in ${
    seconds.toFixed(2)
  } s at ${formatBytes(averageRate(result))}/s${resumed}${
    result.verified
      ? ", verified"
      : ", NOT verified (seed-protocol source: only the size was checked)"
  } -> ${result.path}`;
}

/** A download's `--json` document: the result without its manifest. */
export function resultJson(
  result: DownloadResult,
  extra: Record<string, unknown> = {},
): string {
  const { manifest: _manifest, ...summary } = result;
  return jsonLine({ ...summary, rate: averageRate(result), ...extra });
}

/** What a peer uploaded: `Uploaded 439.5 KiB (450028 bytes) in 4 chunks`. */
export function uploadedLine(
  uploaded: { bytes: number; chunks: number },
): string {
  const exact = uploaded.bytes < 1024
    ? plural(uploaded.bytes, "byte")
    : `${formatBytes(uploaded.bytes)} (${uploaded.bytes} bytes)`;
  return `Uploaded ${exact} in ${plural(uploaded.chunks, "chunk")}.`;
}
