/**
 * Reading a server-sent event stream from a node (`/kv/KEY?watch`,
 * `/gandalf/events`): one block at a time, with its id, event, data and
 * comment lines.
 */
import { openRequest, type ClientTarget } from './api-client';

export interface SseBlock {
  id?: string;
  event?: string;
  data?: string;
  /** The block's comment lines (": …"), without the colon. */
  comments: string[];
}

/** How a stream ended: dropped (`retry`: connect again, with Last-Event-ID) or refused (`error`), or stopped by the reader. */
export type SseEnd = { retry: boolean; error?: string };

/** Streams `path`, handing each block to `onBlock` (which may return an SseEnd to stop); resolves when the stream ends. */
export function readSse(bind: ClientTarget, path: string, lastId: string | undefined, onBlock: (b: SseBlock) => SseEnd | void): Promise<SseEnd> {
  return new Promise<SseEnd>((resolve) => {
    const req = openRequest(
      bind,
      {
        method: 'GET',
        path,
        headers: { ...(lastId ? { 'last-event-id': lastId } : {}), ...(bind.authorization ? { authorization: bind.authorization } : {}) },
      },
      (res) => {
        if (res.statusCode !== 200) {
          let text = '';
          res.on('data', (c: Buffer) => (text += c.toString('utf8')));
          res.on('end', () => resolve({ retry: false, error: `${res.statusCode}: ${text}` }));
          return;
        }
        let buf = '';
        res.on('data', (c: Buffer) => {
          buf += c.toString('utf8');
          let cut: number;
          while ((cut = buf.indexOf('\n\n')) >= 0) {
            const text = buf.slice(0, cut);
            buf = buf.slice(cut + 2);
            const block: SseBlock = { comments: [] };
            for (const line of text.split('\n')) {
              if (line.startsWith(':')) {
                block.comments.push(line.slice(1).trimStart());
                continue;
              }
              const i = line.indexOf(':');
              if (i <= 0) continue;
              const field = line.slice(0, i);
              const value = line.slice(i + 1).trimStart();
              if (field === 'id' || field === 'event' || field === 'data') block[field] = value;
            }
            const stop = onBlock(block);
            if (stop) {
              req.destroy();
              return resolve(stop);
            }
          }
        });
        res.on('end', () => resolve({ retry: true }));
        res.on('error', () => resolve({ retry: true }));
      },
    );
    req.on('error', (err) => resolve({ retry: true, error: err.message }));
    req.end();
  });
}
