/**
 * Private: the peer's state as the dashboard shows it. Follows the tracker
 * connection through the peer's events and measures upload rates from byte
 * counts a second apart.
 *
 * @module
 */
import type { Peer, PeerEventMap } from "../peer/node.ts";
import type { DashboardStatus } from "./types.ts";

/** Tracker state and upload rates of one peer, for `GET /api/status`. */
export class StatusView {
  readonly #peer: Peer;
  readonly #changed: (urgent: boolean) => void;
  #trackerError: string | null = null;
  #trackerSettled = false;
  readonly #uploadSeen = new Map<string, { bytes: number; at: number }>();
  readonly #uploadRates = new Map<string, number>();

  /**
   * Follows `peer`'s tracker events until {@linkcode StatusView.close}.
   *
   * @param peer The peer shown.
   * @param changed Called when the state changed (`urgent`: publish now).
   */
  constructor(peer: Peer, changed: (urgent: boolean) => void) {
    this.#peer = peer;
    this.#changed = changed;
    peer.addEventListener("progress", this.#onProgress);
    peer.addEventListener("registered", this.#onRegistered);
    peer.addEventListener("tracker-error", this.#onTrackerError);
  }

  /** The state now. */
  status(): DashboardStatus {
    const peer = this.#peer;
    const s = peer.status();
    return {
      id: s.id,
      address: s.address,
      port: peer.port,
      tracker: s.trackerConnected
        ? "connected"
        : this.#trackerError !== null || this.#trackerSettled
        ? "unreachable"
        : "connecting",
      trackerError: s.trackerConnected ? null : this.#trackerError,
      shared: s.shared,
      sharedVersion: peer.shares.version,
      uploads: s.uploads.map((u) => ({
        ...u,
        rate: this.#uploadRates.get(u.remote) ?? 0,
      })),
    };
  }

  /** Measures upload rates since the last call (call it every second). */
  measureUploads(): void {
    const now = performance.now();
    const current = new Set<string>();
    for (const u of this.#peer.status().uploads) {
      current.add(u.remote);
      const seen = this.#uploadSeen.get(u.remote);
      if (seen && now > seen.at) {
        this.#uploadRates.set(
          u.remote,
          Math.max(0, (u.bytes - seen.bytes) / ((now - seen.at) / 1000)),
        );
      }
      this.#uploadSeen.set(u.remote, { bytes: u.bytes, at: now });
    }
    for (const remote of this.#uploadSeen.keys()) {
      if (!current.has(remote)) {
        this.#uploadSeen.delete(remote);
        this.#uploadRates.delete(remote);
      }
    }
  }

  /** Stops following the peer's events. */
  close(): void {
    this.#peer.removeEventListener("progress", this.#onProgress);
    this.#peer.removeEventListener("registered", this.#onRegistered);
    this.#peer.removeEventListener("tracker-error", this.#onTrackerError);
  }

  #onProgress = () => this.#changed(false);

  #onRegistered = () => {
    this.#trackerError = null;
    this.#trackerSettled = true;
    this.#changed(true);
  };

  #onTrackerError = (event: PeerEventMap["tracker-error"]) => {
    this.#trackerError = String(event.detail.message).split("\n")[0]!;
    this.#trackerSettled = true;
    this.#changed(true);
  };
}
