/**
 * scrypt password hashes, `scrypt$N$r$p$salt$hash` (salt and hash in base64):
 * the client API's auth file and the routing layer's tenant secrets store
 * only these. Hashing and verifying run on libuv's thread pool, never on the
 * event loop.
 */
import { randomBytes, scrypt, timingSafeEqual } from 'node:crypto';

export interface ScryptHash {
  N: number;
  r: number;
  p: number;
  salt: Buffer;
  hash: Buffer;
}

const DEFAULT = { N: 16384, r: 8, p: 1, keylen: 32 };
const FORM = /^scrypt\$(\d+)\$(\d+)\$(\d+)\$([A-Za-z0-9+/=]+)\$([A-Za-z0-9+/=]+)$/;

function derive(text: string, salt: Buffer, N: number, r: number, p: number, keylen: number): Promise<Buffer> {
  return new Promise((resolve, reject) =>
    scrypt(text, salt, keylen, { N, r, p, maxmem: 128 * N * r * 2 + 1024 * 1024 }, (err, key) => (err ? reject(err) : resolve(key))),
  );
}

export async function hashScrypt(text: string): Promise<string> {
  const salt = randomBytes(16);
  const hash = await derive(text, salt, DEFAULT.N, DEFAULT.r, DEFAULT.p, DEFAULT.keylen);
  return `scrypt$${DEFAULT.N}$${DEFAULT.r}$${DEFAULT.p}$${salt.toString('base64')}$${hash.toString('base64')}`;
}

export function isScryptForm(raw: string): boolean {
  return raw.startsWith('scrypt$');
}

/** The hash's parts, or undefined when it is not one `hashScrypt` makes (bounded parameters: a stored hash cannot make a board spend unbounded memory). */
export function parseScrypt(raw: string): ScryptHash | undefined {
  const m = FORM.exec(raw);
  if (!m) return undefined;
  const [N, r, p] = [Number(m[1]), Number(m[2]), Number(m[3])];
  if (N < 2 || (N & (N - 1)) !== 0 || N > 2 ** 20 || r < 1 || r > 32 || p < 1 || p > 16) return undefined;
  const hash = Buffer.from(m[5]!, 'base64');
  if (hash.length < 16 || hash.length > 64) return undefined;
  return { N, r, p, salt: Buffer.from(m[4]!, 'base64'), hash };
}

export async function verifyScrypt(text: string, h: ScryptHash): Promise<boolean> {
  return equalBytes(await derive(text, h.salt, h.N, h.r, h.p, h.hash.length), h.hash);
}

export function equalBytes(a: Buffer, b: Buffer): boolean {
  return a.length === b.length && timingSafeEqual(a, b);
}
