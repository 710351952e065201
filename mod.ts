/**
 * Shoal: peer-to-peer file sharing for Deno. A tracker keeps the live peers
 * and what they share; peers serve their shared directory and download from
 * each other in verified chunks, identified by content (SHA-256).
 *
 * @example Share a file and download it from another peer
 * ```ts
 * import { startPeer, startTracker } from "@shoal/shoal";
 *
 * const a = await Deno.makeTempDir();
 * const b = await Deno.makeTempDir();
 * await Deno.writeTextFile(`${a}/hello.txt`, "hello, shoal");
 *
 * await using tracker = await startTracker({ port: 0, hostname: "127.0.0.1" });
 * await using seeder = await startPeer({ tracker: tracker.address, shared: a, hostname: "127.0.0.1" });
 * await using leecher = await startPeer({ tracker: tracker.address, shared: b, hostname: "127.0.0.1" });
 * await seeder.refresh();
 *
 * const result = await leecher.download("hello.txt");
 * if (await Deno.readTextFile(result.path) !== "hello, shoal") throw new Error("corrupt");
 *
 * await leecher.close();
 * await seeder.close();
 * await Deno.remove(a, { recursive: true });
 * await Deno.remove(b, { recursive: true });
 * ```
 *
 * @module
 */
export {
  startTracker,
  type Tracker,
  type TrackerEventMap,
  type TrackerOptions,
} from "./lib/tracker/server.ts";
export {
  type DownloadSwarm,
  type Peer,
  type PeerEventMap,
  type PeerOptions,
  type PeerStatus,
  startPeer,
  type SwarmPeer,
  type UploadStatus,
} from "./lib/peer/node.ts";
export {
  type ActiveDownload,
  download,
  type DownloadOptions,
  type DownloadProgress,
  type DownloadResult,
  type SourceTally,
  UnverifiedSourceError,
} from "./lib/download/transfer.ts";
export { ChunkVerificationError } from "./lib/download/swarm.ts";
export type { ListedFile, PeerInfo } from "./lib/protocol/messages.ts";
export { ProtocolError } from "./lib/errors.ts";
export { RemoteError, TimeoutError } from "./lib/errors.ts";
export { AuthenticationError } from "./lib/protocol/auth.ts";
export { KeyMismatchError } from "./lib/net/secure.ts";
export {
  generateIdentity,
  type Identity,
  peerIdOf,
} from "./lib/net/identity.ts";
export type { Manifest } from "./lib/content/manifest.ts";
export type { ScanProgress } from "./lib/share/share.ts";
export type { TypedEventTarget } from "./lib/events.ts";
