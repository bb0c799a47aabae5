/** Random choices from an injected uniform source in [0, 1), so simulations replay from a seed. */

/** A shuffled copy of `items` (Fisher-Yates). */
export function shuffle<T>(items: readonly T[], random: () => number): T[] {
  const out = [...items];
  for (let i = out.length - 1; i > 0; i--) {
    const j = randomIndex(i + 1, random);
    [out[i], out[j]] = [out[j] as T, out[i] as T];
  }
  return out;
}

/** Up to `k` distinct items chosen uniformly. */
export function sample<T>(items: readonly T[], k: number, random: () => number): T[] {
  return shuffle(items, random).slice(0, Math.max(0, k));
}

/** A uniform integer in [0, n). */
export function randomIndex(n: number, random: () => number): number {
  return Math.min(n - 1, Math.floor(random() * n));
}
