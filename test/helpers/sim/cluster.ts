/**
 * Shared steps of the membership simulation tests.
 */
import { SimNetwork, type ChangeEvent, type SimOptions } from './sim-network';

/** Nodes in the simulated clusters. */
export const CLUSTER_SIZE = 8;
/** Every node sees all members alive within this after joining through n0 (simulated ms). */
export const JOIN_BOUND_MS = 10_000;

/** A cluster of CLUSTER_SIZE nodes, each joined through n0 and converged (fails otherwise); then `settleMs` more. */
export function convergedCluster(seed: number, options: Omit<SimOptions, 'seed' | 'size'> = {}, settleMs = 2_000): SimNetwork {
  const sim = new SimNetwork({ seed, size: CLUSTER_SIZE, ...options });
  sim.startAndJoinViaFirst();
  const took = sim.runUntil(() => sim.converged(), JOIN_BOUND_MS);
  if (took === undefined) throw new Error(`cluster did not converge within ${JOIN_BOUND_MS} ms:\n${sim.describe()}`);
  sim.run(settleMs);
  return sim;
}

/** Events since index `from` in which someone marked a member dead. */
export function deaths(sim: SimNetwork, from = 0): ChangeEvent[] {
  return sim.events.slice(from).filter((e) => e.state === 'dead');
}

/** One readable line per event (assert `toEqual([])` to get them all in the failure). */
export function formatEvents(events: ChangeEvent[]): string[] {
  return events.map((e) => `t=${Math.round(e.at)} ${e.observer}: ${e.member} ${e.previous ?? 'new'} -> ${e.state}@${e.incarnation}`);
}
