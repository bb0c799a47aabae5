/**
 * Polls `probe` until it returns something truthy (and returns that), for at
 * most `ms`. A probe that throws counts as "not yet"; the last error is named
 * if time runs out.
 */
export async function until<T>(what: string, probe: () => Promise<T | undefined | false> | T | undefined | false, ms: number, everyMs = 200): Promise<T> {
  const deadline = Date.now() + ms;
  let last: unknown;
  while (Date.now() < deadline) {
    try {
      const v = await probe();
      if (v) return v;
    } catch (err) {
      last = err;
    }
    await new Promise((r) => setTimeout(r, everyMs));
  }
  throw new Error(`timed out after ${ms} ms waiting for ${what}${last ? ` (last error: ${(last as Error).message})` : ''}`);
}
