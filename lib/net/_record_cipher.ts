/**
 * Private: the transport records of a secure connection, sealed and opened
 * in bulk: a run of records is ChaCha20-Poly1305 with consecutive Noise
 * nonces, each record at most 65535 bytes.
 *
 * @module
 */
import { createCipheriv, createDecipheriv } from "node:crypto";

/** Plaintext bytes per record: a Noise message is at most 65535 bytes. */
export const RECORD_PLAIN = 65535 - 16;

/**
 * Seals `plaintext` as records `[u16 length][ciphertext][tag]` with nonces
 * `nonce`, `nonce + 1`, ….
 */
export function sealRecords(
  key: Uint8Array,
  nonce: number,
  plaintext: Uint8Array,
): Uint8Array {
  const per = 65535 - 16;
  const records = Math.ceil(plaintext.length / per);
  const out = new Uint8Array(plaintext.length + records * 18);
  const iv = new Uint8Array(12);
  const view = new DataView(iv.buffer);
  let o = 0;
  for (let i = 0; i < records; i++) {
    const part = plaintext.subarray(
      i * per,
      Math.min((i + 1) * per, plaintext.length),
    );
    const n = nonce + i;
    view.setUint32(4, n % 0x100000000, true);
    view.setUint32(8, Math.floor(n / 0x100000000), true);
    const cipher = createCipheriv("chacha20-poly1305", key, iv, {
      authTagLength: 16,
    });
    const body = cipher.update(part);
    cipher.final();
    const length = part.length + 16;
    out[o] = length >> 8;
    out[o + 1] = length & 0xff;
    out.set(body, o + 2);
    out.set(cipher.getAuthTag(), o + 2 + part.length);
    o += 2 + length;
  }
  return out;
}

/**
 * Opens whole records (as {@linkcode sealRecords} makes them) with nonces
 * from `nonce` on.
 *
 * @returns Their plaintexts, in order (empty records left out).
 * @throws {Error} `record N failed authentication` at the first bad record.
 */
export function openRecords(
  key: Uint8Array,
  nonce: number,
  records: Uint8Array,
): Uint8Array[] {
  const out: Uint8Array[] = [];
  const iv = new Uint8Array(12);
  const view = new DataView(iv.buffer);
  for (let o = 0, i = 0; o < records.length; i++) {
    const length = (records[o]! << 8) | records[o + 1]!;
    if (length < 16) throw new Error(`record ${i} is shorter than a tag`);
    const end = o + 2 + length;
    const n = nonce + i;
    view.setUint32(4, n % 0x100000000, true);
    view.setUint32(8, Math.floor(n / 0x100000000), true);
    const decipher = createDecipheriv("chacha20-poly1305", key, iv, {
      authTagLength: 16,
    });
    decipher.setAuthTag(records.subarray(end - 16, end));
    const body = decipher.update(records.subarray(o + 2, end - 16));
    try {
      decipher.final();
    } catch {
      throw new Error(`record ${i} failed authentication`);
    }
    if (body.length > 0) out.push(body);
    o = end;
  }
  return out;
}

/** Counts the whole records at the start of `bytes` and their length. */
export function wholeRecords(
  bytes: Uint8Array,
): { count: number; length: number } {
  let o = 0, count = 0;
  while (o + 2 <= bytes.length) {
    const end = o + 2 + ((bytes[o]! << 8) | bytes[o + 1]!);
    if (end > bytes.length) break;
    o = end;
    count++;
  }
  return { count, length: o };
}
