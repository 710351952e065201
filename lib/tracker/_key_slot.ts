/**
 * Private part of the Redis tracker store: the Redis Cluster hash slot of a
 * key (CRC16/XMODEM of its hash tag, or of the whole key, modulo 16384), as
 * Redis computes it. The store routes every index update by it; ASCII keys,
 * the common case, are hashed from their characters without encoding them.
 *
 * @module
 */

/** CRC16/XMODEM (polynomial 0x1021) of each byte. */
const TABLE = (() => {
  const table = new Uint16Array(256);
  for (let i = 0; i < 256; i++) {
    let crc = i << 8;
    for (let bit = 0; bit < 8; bit++) {
      crc = crc & 0x8000 ? (crc << 1) ^ 0x1021 : crc << 1;
    }
    table[i] = crc & 0xffff;
  }
  return table;
})();

const encoder = new TextEncoder();

/**
 * The hash slot Redis Cluster assigns a key: only the part between the first
 * `{` and the next `}` counts when that part is not empty.
 *
 * @param key The key.
 * @returns Its slot, 0 to 16383.
 */
export function keySlot(key: string): number {
  let start = 0;
  let end = key.length;
  const open = key.indexOf("{");
  if (open !== -1) {
    const close = key.indexOf("}", open + 1);
    if (close > open + 1) {
      start = open + 1;
      end = close;
    }
  }
  // `{` and `}` never occur inside a multi-byte UTF-8 sequence, so the tag
  // found in the characters is the tag Redis finds in the bytes.
  let crc = 0;
  for (let i = start; i < end; i++) {
    const c = key.charCodeAt(i);
    if (c >= 0x80) return bytesSlot(encoder.encode(key.slice(start, end)));
    crc = ((crc << 8) & 0xffff) ^ TABLE[((crc >> 8) ^ c) & 0xff]!;
  }
  return crc & 16383;
}

function bytesSlot(bytes: Uint8Array): number {
  let crc = 0;
  for (const b of bytes) {
    crc = ((crc << 8) & 0xffff) ^ TABLE[((crc >> 8) ^ b) & 0xff]!;
  }
  return crc & 16383;
}
