// Deterministic pseudo-random bytes, identical to test/fixtures/server.js:
// keystream(seed) = AES-128-CTR over zeros, key = sha256(seed)[0..16], iv = 0.
import * as crypto from 'node:crypto';

/** Returns a generator: each call yields the next `n` bytes of keystream(seed). */
export function keystream(seed: string): (n: number) => Buffer {
  const key = crypto.createHash('sha256').update(seed).digest().subarray(0, 16);
  const cipher = crypto.createCipheriv('aes-128-ctr', key, Buffer.alloc(16));
  return (n: number) => cipher.update(Buffer.alloc(n));
}

/** The first n bytes of keystream(seed) in one buffer. */
export function keystreamBytes(seed: string, n: number): Buffer {
  return keystream(seed)(n);
}

export function sha256(b: Buffer | string): string {
  return crypto.createHash('sha256').update(b).digest('hex');
}

/** A fresh random seed (hex), so that every run moves different bytes. */
export function randomSeed(prefix = ''): string {
  return `${prefix}${crypto.randomBytes(8).toString('hex')}`;
}

/** The keystream block `close-first` mode sends after `BYE\n`. */
export const CLOSE_FIRST_BYTES = 1024 * 1024;
export function closeFirstExpected(): Buffer {
  return Buffer.concat([Buffer.from('BYE\n'), keystreamBytes('close-first', CLOSE_FIRST_BYTES)]);
}
