/**
 * The tracker's parts, for embedding or extending one: the server, the
 * request logic without sockets, a client for its requests, and the storage
 * seam (the store interface and its in-memory default; the Redis store is
 * `@shoal/shoal/tracker/redis`).
 *
 * @example Asking a tracker what it knows
 * ```ts
 * import { startTracker, TrackerClient } from "@shoal/shoal/tracker";
 *
 * await using tracker = await startTracker({ port: 0, hostname: "127.0.0.1" });
 * const files = await new TrackerClient(tracker.address).list();
 * if (files.length !== 0) throw new Error("expected an empty network");
 * ```
 *
 * @module
 */
export {
  startTracker,
  type Tracker,
  type TrackerEventMap,
  type TrackerOptions,
} from "./server.ts";
export {
  type Registration,
  TrackerClient,
  type TrackerClientOptions,
  type TrackerProtocol,
} from "./client.ts";
export {
  SEED_EXPIRY_MS,
  SEED_HEARTBEAT_INTERVAL_MS,
  type SeedRegistration,
  SeedTrackerClient,
  type SeedTrackerClientOptions,
} from "./seed_client.ts";
export {
  type SeedReply,
  type TrackerEmit,
  type TrackerErrorCode,
  type TrackerReply,
  TrackerService,
  type TrackerServiceOptions,
} from "./service.ts";
export {
  type ApplyChangesReply,
  type ApplyChangesResult,
  type Clock,
  type FileChanges,
  type PeerQuery,
  type PeerRecord,
  type PeerRegistration,
  type SearchOptions,
  type SearchResult,
  type SeedAnnouncement,
  type SeedList,
  type SeedListOptions,
  type StoredFile,
  StoreUnavailableError,
  systemClock,
  type TrackerStore,
} from "./store.ts";
export { MemoryStore, type MemoryStoreOptions } from "./memory_store.ts";
