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
  type DataFrame,
  DEFAULT_MAX_FRAME_SIZE,
  encodeDataHeader,
  encodeFrame,
  encodeJsonFrame,
  type Frame,
  FrameDecoder,
  type FrameDecoderOptions,
  FrameDecoderStream,
  FrameEncoderStream,
  type JsonFrame,
  MAX_CHUNK_SIZE,
  ProtocolError,
} from "./lib/net/wire.ts";
export {
  connectWithTimeout,
  formatHostPort,
  FrameConnection,
  type FrameConnectionOptions,
  type HostPort,
  parseHostPort,
  RemoteError,
  type Reply,
  RpcClient,
  type RpcClientOptions,
  TimeoutError,
} from "./lib/net/connection.ts";
export {
  acceptAuthentication,
  type AcceptAuthenticationOptions,
  authenticate,
  AuthenticationError,
  type AuthTransport,
  PRIVATE_SWARM_STATUS,
  validateSecret,
} from "./lib/protocol/auth.ts";
export {
  isInside,
  MAX_NAME_BYTES,
  resolveForRead,
  resolveForWrite,
  validateName,
} from "./lib/content/names.ts";
export {
  chunkCount,
  chunkLength,
  contentId,
  DEFAULT_CHUNK_SIZE,
  hashFile,
  type HashFileOptions,
  type Manifest,
  MAX_CHUNKS,
  MIN_CHUNK_SIZE,
  validateManifest,
} from "./lib/content/manifest.ts";
export {
  type CancelRequest,
  type ChunkRequest,
  type FileAnnouncement,
  type GetPeersRequest,
  type HaveRequest,
  type HeartbeatRequest,
  type ListedFile,
  type ListRequest,
  type ManifestRequest,
  type PeerInfo,
  type PeerRequest,
  type PingRequest,
  type RegisterRequest,
  type TrackerRequest,
  type UnregisterRequest,
  validatePeerRequest,
  validateTrackerRequest,
} from "./lib/protocol/messages.ts";
export {
  legacyDownload,
  type LegacyDownloadOptions,
  type LegacyRequest,
  legacyRequest,
  validateLegacyRequest,
} from "./lib/protocol/legacy.ts";
export {
  type ApplyChangesResult,
  type PeerRecord,
  Registry,
  type RegistryOptions,
  type StoredFile,
} from "./lib/tracker/registry.ts";
export {
  startTracker,
  type Tracker,
  type TrackerEventMap,
  type TrackerOptions,
} from "./lib/tracker/server.ts";
export {
  type Registration,
  TrackerClient,
  type TrackerClientOptions,
} from "./lib/tracker/client.ts";
export {
  diffAnnouncements,
  type ScanProgress,
  type SettledCheck,
  type SharedFile,
  ShareIndex,
  type ShareIndexOptions,
  type UpdateResult,
} from "./lib/share/share.ts";
export {
  ShareWatcher,
  type ShareWatcherEventMap,
  type ShareWatcherOptions,
} from "./lib/share/watch.ts";
export {
  IGNORE_FILE_NAME,
  IgnoreRules,
  type IgnoreRulesOptions,
} from "./lib/share/ignore.ts";
export {
  type ActiveDownload,
  download,
  type DownloadOptions,
  type DownloadProgress,
  type DownloadResult,
  UnverifiedSourceError,
} from "./lib/download/transfer.ts";
export {
  type Dashboard,
  type DashboardDownload,
  type DashboardDownloadState,
  type DashboardOptions,
  type DashboardStatus,
  type DashboardUpload,
  startDashboard,
} from "./lib/dashboard/dashboard.ts";
export {
  type Peer,
  type PeerEventMap,
  type PeerOptions,
  type PeerStatus,
  startPeer,
  type UploadStatus,
} from "./lib/peer/node.ts";
export {
  ChunkVerificationError,
  runSwarm,
  type SwarmOptions,
} from "./lib/download/swarm.ts";
export { TokenBucket } from "./lib/net/rate_limit.ts";
export {
  ChunkPicker,
  hasBit,
  packBitfield,
  type Pick,
  type SourceView,
} from "./lib/download/scheduler.ts";
