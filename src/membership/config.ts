/**
 * Membership settings and their defaults, sized for a LAN of up to 64 boards
 * probed once a second. See DESIGN.md for what each one bounds.
 */
import { ConfigError } from '../core/errors';
import { MAX_UPDATES } from './messages';

export interface SwimConfig {
  /** One member is probed per interval (scaled by Lifeguard health). */
  probeIntervalMs: number;
  /** Wait this long for a direct ack before asking helpers (scaled by health); must be < probeIntervalMs. */
  probeTimeoutMs: number;
  /** k: helpers asked to probe indirectly; also the confirmations that shorten a suspicion the most. */
  indirectChecks: number;
  /** Minimum suspicion timeout = suspicionMult * max(1, log10(n)) * probeIntervalMs. */
  suspicionMult: number;
  /** Maximum suspicion timeout = suspicionMaxTimeoutMult * minimum. */
  suspicionMaxTimeoutMult: number;
  /** Each update is piggybacked at most retransmitMult * ceil(log10(n + 1)) times. */
  retransmitMult: number;
  /** Full state exchange with one random alive member this often. */
  pushPullIntervalMs: number;
  /** Dead and left members stay listed (and the dead are told so) this long, then are forgotten. */
  gossipToTheDeadMs: number;
  /** Lifeguard local health ranges over [0, awarenessMaxMultiplier - 1]; timeouts are multiplied by health + 1. */
  awarenessMaxMultiplier: number;
  /** Most updates piggybacked on one message. */
  maxPiggyback: number;
}

export const DEFAULT_SWIM_CONFIG: SwimConfig = Object.freeze({
  probeIntervalMs: 1000,
  probeTimeoutMs: 500,
  indirectChecks: 3,
  suspicionMult: 4,
  suspicionMaxTimeoutMult: 6,
  retransmitMult: 4,
  pushPullIntervalMs: 30_000,
  gossipToTheDeadMs: 30_000,
  awarenessMaxMultiplier: 8,
  maxPiggyback: 8,
});

type Rule = (value: number) => boolean;
const positiveInteger: Rule = (v) => Number.isSafeInteger(v) && v >= 1;
const nonNegativeInteger: Rule = (v) => Number.isSafeInteger(v) && v >= 0;

const RULES: { [K in keyof SwimConfig]: [Rule, string] } = {
  probeIntervalMs: [positiveInteger, 'an integer >= 1'],
  probeTimeoutMs: [positiveInteger, 'an integer >= 1'],
  indirectChecks: [nonNegativeInteger, 'an integer >= 0'],
  suspicionMult: [(v) => Number.isFinite(v) && v > 0, 'a number > 0'],
  suspicionMaxTimeoutMult: [(v) => Number.isFinite(v) && v >= 1, 'a number >= 1'],
  retransmitMult: [positiveInteger, 'an integer >= 1'],
  pushPullIntervalMs: [positiveInteger, 'an integer >= 1'],
  gossipToTheDeadMs: [nonNegativeInteger, 'an integer >= 0'],
  awarenessMaxMultiplier: [positiveInteger, 'an integer >= 1'],
  maxPiggyback: [(v) => positiveInteger(v) && v <= MAX_UPDATES, `an integer from 1 to ${MAX_UPDATES}`],
};

/** Defaults overlaid with the given settings (undefined ones ignored); throws ConfigError naming the first invalid one. */
export function resolveSwimConfig(overrides: Partial<SwimConfig> = {}): SwimConfig {
  const config: SwimConfig = { ...DEFAULT_SWIM_CONFIG };
  for (const key of Object.keys(RULES) as (keyof SwimConfig)[]) {
    const value = overrides[key];
    if (value !== undefined) config[key] = value;
    const [valid, accepted] = RULES[key];
    if (typeof config[key] !== 'number' || !valid(config[key])) {
      throw new ConfigError(`membership setting ${key} is ${String(config[key])}; accepted: ${accepted}`);
    }
  }
  if (config.probeTimeoutMs >= config.probeIntervalMs) {
    throw new ConfigError(`membership setting probeTimeoutMs (${config.probeTimeoutMs}) must be less than probeIntervalMs (${config.probeIntervalMs})`);
  }
  return config;
}
