/**
 * Private: a download's swarm as the page shows it: the chunk map folded to
 * at most 1024 cells (each the majority of its chunks), base64, and the first
 * sources by name with their rates, the rest lumped together.
 *
 * @module
 */
import { Buffer } from "node:buffer";
import type { DownloadSwarm, SwarmPeer } from "../peer/node.ts";
import type { DashboardSwarm, DashboardSwarmPeer } from "./types.ts";

/** Most cells in a page's chunk map. */
export const MAX_CELLS = 1024;
/** Sources named (and coloured) on the page; the rest are "other". */
export const MAX_PAGE_SOURCES = 12;
/** Upload peers listed per download. */
export const MAX_PAGE_UPLOADS = 12;
/** A cell whose chunks came mostly from sources past the named ones. */
export const CELL_OTHER = 254;
/** A cell whose chunks were mostly verified before this run. */
export const CELL_EARLIER = 255;

// The peer's chunk codes (see lib/peer/_swarm.ts): 0 missing, 1–250 a
// source, 251 other, 252 verified before this run.
const PEER_EARLIER = 252;

/** The page's cell code of a peer chunk code. */
function cellCode(code: number): number {
  if (code === 0 || code <= MAX_PAGE_SOURCES) return code;
  return code === PEER_EARLIER ? CELL_EARLIER : CELL_OTHER;
}

/**
 * Folds a chunk map to at most `cells` cells, each the most frequent code
 * of its chunks (missing counts as a code: a cell fills once most of it
 * did), ties going to a source.
 *
 * @param map One code per chunk.
 * @param cells Most cells.
 * @returns One code per cell.
 */
export function foldMap(map: Uint8Array, cells = MAX_CELLS): Uint8Array {
  const n = map.length;
  const count = Math.min(n, cells);
  const out = new Uint8Array(count);
  const tally = new Uint32Array(256);
  const touched: number[] = [];
  for (let c = 0; c < count; c++) {
    const start = Math.floor((c * n) / count);
    const end = Math.floor(((c + 1) * n) / count);
    let best = 0;
    let bestCount = -1;
    for (let i = start; i < end; i++) {
      const code = cellCode(map[i]!);
      if (tally[code] === 0) touched.push(code);
      tally[code]!++;
    }
    for (const code of touched) {
      const k = tally[code]!;
      if (k > bestCount || (k === bestCount && best === 0)) {
        best = code;
        bestCount = k;
      }
      tally[code] = 0;
    }
    touched.length = 0;
    out[c] = best;
  }
  return out;
}

const pagePeer = (p: SwarmPeer): DashboardSwarmPeer => ({
  address: p.address,
  bytes: p.bytes,
  rate: p.rate,
});

/**
 * A download's swarm for the page, bounded whatever the file's size: at most
 * {@linkcode MAX_CELLS} cells, {@linkcode MAX_PAGE_SOURCES} named sources
 * and {@linkcode MAX_PAGE_UPLOADS} upload peers.
 *
 * @param swarm The peer's swarm of the download.
 * @returns What the page draws.
 */
export function pageSwarm(swarm: DownloadSwarm): DashboardSwarm {
  const named = swarm.sources.slice(0, MAX_PAGE_SOURCES).map(pagePeer);
  const rest = swarm.sources.slice(MAX_PAGE_SOURCES);
  let other: DashboardSwarm["other"] = null;
  if (rest.length || swarm.other) {
    other = { bytes: 0, rate: 0 };
    for (const p of [...rest, ...(swarm.other ? [swarm.other] : [])]) {
      other.bytes += p.bytes;
      other.rate += p.rate;
    }
  }
  const cells = foldMap(swarm.map);
  return {
    chunks: swarm.chunks,
    cells: cells.length,
    map: Buffer.from(cells).toString("base64"),
    sources: named,
    other,
    uploads: [...swarm.uploads]
      .sort((a, b) => b.rate - a.rate || b.bytes - a.bytes)
      .slice(0, MAX_PAGE_UPLOADS)
      .map(pagePeer),
  };
}
