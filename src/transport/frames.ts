/**
 * Wire format of every data-channel message: one CBOR frame holding a
 * protocol version and a batch of messages sent in the same tick
 * (coalescing: werift is ~20x faster with few large frames than with many
 * small ones).
 *
 *     frame = CBOR [PROTOCOL_VERSION, [[topic, body], …]]
 *
 * `topic` names the subscriber (e.g. "swim"); `body` is plain data that the
 * subscriber validates itself. Decoding never throws: a bad frame is
 * reported as an error string, counted and dropped by the caller.
 */
import { Decoder, Encoder } from 'cbor-x';
import { checkCbor } from '../core/cbor-guard';

export const PROTOCOL_VERSION = 1;
/**
 * Largest frame sent or accepted. werift drops data-channel messages over
 * 64 KiB, so a mixed mesh cannot use more; larger payloads are chunked by
 * whoever sends them.
 */
export const MAX_FRAME_BYTES = 64 * 1024;
/** Most messages one frame may carry. */
export const MAX_MESSAGES_PER_FRAME = 4096;
const TOPIC_RE = /^[a-z][a-z0-9-]{0,31}$/;

export interface WireMessage {
  topic: string;
  body: unknown;
}

const encoder = new Encoder({ useRecords: false, mapsAsObjects: true });
const decoder = new Decoder({ useRecords: false, mapsAsObjects: true });

export function encodeFrame(messages: readonly WireMessage[]): Buffer {
  return encoder.encode([PROTOCOL_VERSION, messages.map((m) => [m.topic, m.body])]);
}

export type DecodeResult = { ok: true; messages: WireMessage[] } | { ok: false; error: string };

export function decodeFrame(data: Uint8Array): DecodeResult {
  if (data.length === 0) return { ok: false, error: 'empty frame' };
  if (data.length > MAX_FRAME_BYTES) return { ok: false, error: `frame of ${data.length} bytes exceeds ${MAX_FRAME_BYTES}` };
  const malformed = checkCbor(data);
  if (malformed) return { ok: false, error: `malformed CBOR: ${malformed}` };
  let value: unknown;
  try {
    value = decoder.decode(data);
  } catch (err) {
    return { ok: false, error: `not CBOR: ${(err as Error).message}` };
  }
  if (!Array.isArray(value) || value.length !== 2) return { ok: false, error: 'frame is not [version, messages]' };
  const [version, items] = value as [unknown, unknown];
  if (version !== PROTOCOL_VERSION) return { ok: false, error: `unsupported protocol version ${String(version)}` };
  if (!Array.isArray(items) || items.length === 0 || items.length > MAX_MESSAGES_PER_FRAME) {
    return { ok: false, error: 'frame holds no message list of 1..4096 items' };
  }
  const messages: WireMessage[] = [];
  for (const item of items) {
    if (!Array.isArray(item) || item.length !== 2 || typeof item[0] !== 'string' || !TOPIC_RE.test(item[0])) {
      return { ok: false, error: 'malformed message in frame' };
    }
    messages.push({ topic: item[0], body: item[1] });
  }
  return { ok: true, messages };
}
