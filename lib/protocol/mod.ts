/**
 * Shoal's messages, for writing another client or server: the typed tracker
 * and peer requests with their validators, the private-swarm handshake and
 * the seed-compatible JSON-line protocol.
 *
 * @example Validating an untrusted request
 * ```ts
 * import { ProtocolError, validateTrackerRequest } from "@shoal/shoal/protocol";
 *
 * const request = validateTrackerRequest({ type: "list", rid: 1 });
 * if (request.type !== "list") throw new Error("wrong type");
 * try {
 *   validateTrackerRequest({ type: "launch", rid: 2 });
 *   throw new Error("accepted an unknown request");
 * } catch (error) {
 *   if (!(error instanceof ProtocolError)) throw error;
 * }
 * ```
 *
 * @module
 */
export {
  type CancelRequest,
  type ChunkRequest,
  type FileAnnouncement,
  type FilesReply,
  type GetPeersRequest,
  type HaveReply,
  type HaveRequest,
  type HeartbeatRequest,
  type HelloRequest,
  type ListedFile,
  type ListRequest,
  type ManifestReply,
  type ManifestRequest,
  MAX_HAVE_ADDED,
  MAX_HAVE_WAIT_MS,
  MAX_RETRY_AFTER_MS,
  type OkReply,
  type PeerInfo,
  type PeerReplies,
  peerReplies,
  type PeerRequest,
  type PeersReply,
  type PingRequest,
  type Pong,
  type RegisteredReply,
  type RegisterRequest,
  type ReplyValidators,
  type TrackerReplies,
  trackerReplies,
  type TrackerRequest,
  type UnregisterRequest,
  validatePeerRequest,
  validateTrackerRequest,
} from "./messages.ts";
export {
  acceptAuthentication,
  type AcceptAuthenticationOptions,
  authenticate,
  AuthenticationError,
  type AuthTransport,
  PRIVATE_SWARM_STATUS,
  privateSwarmTransport,
  swarmKey,
  validateSecret,
} from "./auth.ts";
export { type Reply, RpcClient, type RpcClientOptions } from "./rpc.ts";
export { RemoteError } from "../errors.ts";
export {
  legacyDownload,
  type LegacyDownloadOptions,
  type LegacyRequest,
  legacyRequest,
  type LegacyRequestOptions,
  validateLegacyRequest,
} from "./legacy.ts";
export { ProtocolError } from "../errors.ts";
