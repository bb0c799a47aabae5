/**
 * Every message entering the routing layer is checked by parseEnvelope: the
 * first wrong field is named, defaults are filled, and nothing unchecked or
 * secret passes.
 */
import { describe, expect, it } from 'vitest';
import { DEFAULT_HOP_LIMIT, DEFAULT_TIMEOUT_MS, MAX_BODY_BYTES, parseEnvelope } from '../../../src/routing/envelope';

const base = {
  uuid: '0b7c4a52-1f3e-4d7a-9a31-5c2e8f9d6b10',
  tenant: 'acme',
  kind: 'command',
  command: 'CREATE_VM',
  timestamp: 1_767_225_600_000,
  source: { node: 'rack1.pi3', role: 'connector', logical_name: 'vmware', worker: 'w1' },
};

const error = (input: unknown) => {
  const r = parseEnvelope(input);
  return r.ok ? 'ok' : r.error;
};

describe('parseEnvelope', () => {
  it('accepts a command and fills the defaults', () => {
    const r = parseEnvelope({ ...base, payload: { cpus: 2 }, unknown_field: 'dropped' });
    expect(r.ok).toBe(true);
    if (!r.ok) return;
    expect(r.envelope).toMatchObject({
      kind: 'command',
      timeout: DEFAULT_TIMEOUT_MS,
      major: 0,
      minor: 0,
      attempt: 1,
      hops: 0,
      hop_limit: DEFAULT_HOP_LIMIT,
      context: {},
    });
    expect(r.envelope).not.toHaveProperty('unknown_field');
    expect(r.envelope.payload).toEqual({ cpus: 2 });
  });

  it('accepts events with a reference and a destination, and the config kinds', () => {
    const event = { ...base, kind: 'event', topic: 'vm', event: 'SUCCESS', reference_uuid: base.uuid.toUpperCase(), destination: { node: 'n1', worker: 'w2' } };
    const r = parseEnvelope(event);
    expect(r.ok && r.envelope.kind === 'event' && r.envelope.reference_uuid).toBe(base.uuid);
    for (const kind of ['config', 'configuration', 'secret']) expect(error({ ...base, kind })).toBe('ok');
  });

  it.each([
    [{ ...base, uuid: 'x' }, /uuid must be a UUID/],
    [{ ...base, tenant: 'a b' }, /tenant must be 1-48 characters of a-z 0-9 _ -/],
    [{ ...base, tenant: 'Acme' }, /tenant must be 1-48 characters/],
    [{ ...base, tenant: undefined }, /tenant is missing/],
    [{ ...base, kind: 'gossip' }, /kind must be one of command, event, config, configuration, secret/],
    [{ ...base, timeout: 0 }, /timeout must be an integer from 1 to 3600000/],
    [{ ...base, timeout: 1.5 }, /timeout must be an integer/],
    [{ ...base, timestamp: undefined }, /timestamp is missing/],
    [{ ...base, major: -1 }, /major must be an integer from 0 to 65535/],
    [{ ...base, source: { ...base.source, role: 'king' } }, /source.role must be one of cluster, aggregator, connector/],
    [{ ...base, source: { ...base.source, node: '~x' } }, /source.node must be a node id/],
    [{ ...base, source: 'me' }, /source must be an object/],
    [{ ...base, command: '' }, /command must be 1-128 characters/],
    [{ ...base, command: undefined }, /command is missing/],
    [{ ...base, kind: 'event' }, /topic is missing/],
    [{ ...base, kind: 'event', topic: 't', event: 'e', reference_uuid: 'r' }, /reference_uuid must be a UUID/],
    [{ ...base, kind: 'event', topic: 't', event: 'e', destination: { node: '' } }, /destination.node must be a node id/],
    [{ ...base, context: [] }, /context must be an object/],
    [{ ...base, hops: 9, hop_limit: 8 }, /hops \(9\) is past hop_limit \(8\)/],
    [{ ...base, hop_limit: 17 }, /hop_limit must be an integer from 1 to 16/],
    [{ ...base, target: 'no spaces' }, /target must be a name/],
    [{ ...base, token: 'abc' }, /must not carry a token or secret/],
    [{ ...base, secret: 'abc' }, /must not carry a token or secret/],
    [{ ...base, payload: 'x'.repeat(MAX_BODY_BYTES) }, /more than 262144/],
    ['a string', /a message must be an object/],
    [null, /a message must be an object/],
  ])('refuses %j with a precise error', (input, expected) => {
    expect(error(input)).toMatch(expected);
  });

  it('refuses payloads that are not JSON data', () => {
    const cyclic: Record<string, unknown> = {};
    cyclic.self = cyclic;
    expect(error({ ...base, payload: cyclic })).toMatch(/payload and context must be JSON data/);
    expect(error({ ...base, payload: 10n })).toMatch(/payload and context must be JSON data/);
  });
});
