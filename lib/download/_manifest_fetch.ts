/**
 * Fetching a download's manifest: holders asked a few at a time in random
 * order, the first manifest matching the content id (and the size limit)
 * wins.
 *
 * @module
 */
import { RpcClient } from "../protocol/rpc.ts";
import { type Manifest, validateManifest } from "../content/manifest.ts";
import type { PeerInfo } from "../protocol/messages.ts";
import { ProtocolError } from "../net/wire.ts";
import { keyFromHex } from "../net/identity.ts";
import {
  DEFAULT_MAX_FILE_SIZE,
  DEFAULT_STALL_TIMEOUT_MS,
  type DownloadOptions,
} from "./options.ts";

/** Holders asked for the manifest at once. */
const MANIFEST_CONCURRENCY = 4;

/**
 * Asks holders for the manifest of `id`, a few at a time in random order
 * (dead or silent addresses listed first cannot hold the download up), and
 * returns the first one that matches the id. Bounded by the stall timeout.
 */
export async function fetchManifest(
  holders: PeerInfo[],
  id: string,
  options: DownloadOptions,
): Promise<Manifest> {
  const errors: string[] = [];
  const queue = shuffle([...holders]);
  const found = new AbortController();
  const deadline = AbortSignal.timeout(
    options.stallTimeoutMs ?? DEFAULT_STALL_TIMEOUT_MS,
  );
  const signal = AbortSignal.any([
    found.signal,
    deadline,
    ...(options.signal ? [options.signal] : []),
  ]);
  let manifest: Manifest | undefined;
  let fatal: unknown;
  const worker = async () => {
    for (let holder = queue.shift(); holder; holder = queue.shift()) {
      if (signal.aborted) return;
      try {
        const candidate = await askManifest(holder, id, options, signal);
        manifest ??= candidate;
        found.abort();
        return;
      } catch (error) {
        if (error instanceof RangeError) {
          fatal ??= error;
          found.abort();
          return;
        }
        if (!signal.aborted) {
          errors.push(`${holder.address}: ${(error as Error).message}`);
        }
      }
    }
  };
  await Promise.all(
    Array.from({ length: MANIFEST_CONCURRENCY }, () => worker()),
  );
  if (fatal) throw fatal;
  if (manifest) return manifest;
  options.signal?.throwIfAborted();
  if (deadline.aborted) errors.push("no holder answered in time");
  throw new Deno.errors.NotFound(
    `Cannot fetch the manifest of ${
      id.slice(0, 12)
    }… from any of ${holders.length} holders (${errors.slice(-3).join("; ")})`,
  );
}

async function askManifest(
  holder: PeerInfo,
  id: string,
  options: DownloadOptions,
  signal: AbortSignal,
): Promise<Manifest> {
  await using rpc = await RpcClient.connect(holder.address, {
    requestTimeoutMs: options.requestTimeoutMs ?? 15_000,
    ...(options.secret !== undefined ? { secret: options.secret } : {}),
    ...(options.transport ? { transport: options.transport } : {}),
    ...(options.identity ? { identity: options.identity } : {}),
    ...(options.encryption === false ? { encryption: false } : {}),
    ...(holder.key ? { remoteKey: keyFromHex(holder.key) } : {}),
  });
  const reply = await rpc.request({ type: "manifest", id }, undefined, signal);
  if (reply instanceof Uint8Array || reply.type !== "manifest") {
    throw new ProtocolError("Cannot accept reply to manifest: wrong type");
  }
  const manifest = validateManifest(reply.manifest, id);
  const limit = options.maxFileSize ?? DEFAULT_MAX_FILE_SIZE;
  if (manifest.size > limit) {
    throw new RangeError(
      `Cannot download ${manifest.name}: its ${manifest.size} bytes exceed the ${limit}-byte limit`,
    );
  }
  return manifest;
}

export function shuffle<T>(items: T[]): T[] {
  for (let i = items.length - 1; i > 0; i--) {
    const j = Math.floor(Math.random() * (i + 1));
    [items[i], items[j]] = [items[j]!, items[i]!];
  }
  return items;
}
