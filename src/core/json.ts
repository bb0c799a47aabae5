/**
 * JSON with exact integers: rqlite clients send and expect 64-bit integers
 * with every digit, and JavaScript numbers hold only 53 bits. A bigint goes
 * out as bare digits; an integer literal beyond ±(2^53 - 1) comes in as a
 * bigint.
 */
import { parse as parseLossless } from 'lossless-json';

/** A bigint leaves as a marked string that toJson turns into its bare digits (JSON.stringify knows no bigint). */
const BIGINT_MARK = `\u0000bigint-${Math.random().toString(36).slice(2)}:`;
const MARKED_BIGINT = new RegExp(`"\\\\u0000${BIGINT_MARK.slice(1)}(-?\\d+)"`, 'g');

/** JSON text of an answer: integers beyond 2^53 keep every digit, as rqlite sends them. */
export function toJson(body: unknown, replacer?: (key: string, value: unknown) => unknown, indent?: number): string {
  let big = false;
  const text = JSON.stringify(
    body,
    (key, value: unknown) => {
      if (typeof value === 'bigint') {
        big = true;
        return BIGINT_MARK + value.toString();
      }
      return replacer ? replacer(key, value) : value;
    },
    indent,
  );
  return big ? text.replace(MARKED_BIGINT, '$1') : text;
}

/** Integer literals beyond ±(2^53 - 1) become bigints (exact); every other number a number. */
function parseNumber(text: string): number | bigint {
  const n = Number(text);
  return Number.isInteger(n) && !Number.isSafeInteger(n) && /^-?\d+$/.test(text) ? BigInt(text) : n;
}

/** Parses a request body; only a body with a long digit run takes the slower exact path. */
export function parseJson(text: string): unknown {
  return /\d{16}/.test(text) ? parseLossless(text, null, parseNumber) : JSON.parse(text);
}
