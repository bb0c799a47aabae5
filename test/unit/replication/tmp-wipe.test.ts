import { it } from 'vitest';
import { runChaos } from '../../helpers/raft-sim/chaos';
it('wipe', () => {
  const fails: string[] = [];
  for (let s = 1; s <= 300; s++) {
    try { runChaos(s, { size: 3, unsafeWipe: true }); } catch (e) { fails.push(`${s}: ${String(e).slice(0, 150)}`); }
  }
  console.log(fails.length, fails.slice(0, 8).join('\n'));
});
