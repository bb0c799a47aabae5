/**
 * Connector types: versions of a type with their commands' payload schemas,
 * in the key/value container; what a connector checks a command against, and
 * what a worker must implement to register.
 */
import { describe, expect, it } from 'vitest';
import { silentLogger } from '../../../src/core/logger';
import { ConnectorTypes, TYPE_PREFIX } from '../../../src/routing/connector-types';
import { memoryKv } from '../../helpers/memory-kv';
import { parseEnvelope, type CommandMessage } from '../../../src/routing/envelope';
import { SimClock } from '../../helpers/sim/sim-clock';

const command = (name: string, payload: unknown, major = 0, minor = 0): CommandMessage => {
  const r = parseEnvelope({
    uuid: '00000000-0000-4000-8000-000000000001',
    tenant: 't',
    kind: 'command',
    command: name,
    payload,
    major,
    minor,
    timestamp: 0,
    source: { node: 'n', role: 'connector', logical_name: 'l' },
  });
  if (!r.ok) throw new Error(r.error);
  return r.envelope as CommandMessage;
};

const VM_1_0 = {
  commands: {
    CREATE: { type: 'object', required: ['cpus'], properties: { cpus: { type: 'integer', minimum: 1 } }, additionalProperties: false },
    DELETE: { type: 'object', required: ['id'] },
  },
};

describe('ConnectorTypes', () => {
  it('lets anything through for a type with no version registered', async () => {
    const types = new ConnectorTypes(memoryKv(), new SimClock(), silentLogger);
    await types.refresh();
    expect(types.check('vm', command('WHATEVER', 'x'), [])).toEqual({ ok: true });
    expect(types.refusal('vm', 1, 0, [])).toBeUndefined();
  });

  it('checks the command and its payload against the version, with the schema errors', async () => {
    const kv = memoryKv();
    const types = new ConnectorTypes(kv, new SimClock(), silentLogger);
    await types.put('vm', '1.0', VM_1_0);
    await types.put('vm', '2.0', { commands: { ...VM_1_0.commands, RESIZE: { type: 'object' } } });
    expect(kv.data.has(`${TYPE_PREFIX}vm/1.0`)).toBe(true);
    expect(types.check('vm', command('CREATE', { cpus: 2 }, 1, 0), [])).toEqual({ ok: true });
    expect(types.check('vm', command('CREATE', { cpus: 0, x: 1 }, 1, 0), [])).toEqual({
      ok: false,
      error: 'the payload does not match the schema of CREATE (vm 1.0)',
      details: [
        { path: '/', message: 'must NOT have additional properties' },
        { path: '/cpus', message: 'must be >= 1' },
      ],
    });
    expect(types.check('vm', command('RESIZE', {}, 1, 0), [])).toMatchObject({
      ok: false,
      error: 'RESIZE is not a command of vm 1.0 (its commands: CREATE, DELETE)',
    });
    expect(types.check('vm', command('CREATE', { cpus: 1 }, 3, 0), [])).toMatchObject({ ok: false, error: 'connector type vm has no version 3.0' });
    // major 0: the highest version a worker serves (else the highest registered)
    expect(types.check('vm', command('RESIZE', {}), [{ major: 1, minor: 0 }])).toMatchObject({ ok: false });
    expect(types.check('vm', command('RESIZE', {}), [{ major: 2, minor: 0 }])).toEqual({ ok: true });
    expect(types.check('vm', command('RESIZE', {}), [])).toEqual({ ok: true });
  });

  it('refuses a worker of an unregistered version or without every command of its version', async () => {
    const types = new ConnectorTypes(memoryKv(), new SimClock(), silentLogger);
    await types.put('vm', '1.0', VM_1_0);
    expect(types.refusal('vm', 1, 0, ['CREATE', 'DELETE'])).toBeUndefined();
    expect(types.refusal('vm', 1, 0, ['CREATE'])).toBe('a worker of vm 1.0 must implement DELETE (missing)');
    expect(types.refusal('vm', 1, 1, ['CREATE', 'DELETE'])).toBe('version 1.1 of connector type vm is not registered (registered: 1.0)');
  });

  it('refuses what is not a version of a type, and follows changes in the container', async () => {
    const kv = memoryKv();
    const types = new ConnectorTypes(kv, new SimClock(), silentLogger);
    await expect(types.put('vm', '1', VM_1_0)).rejects.toThrow(/version must be MAJOR.MINOR/);
    await expect(types.put('vm', '1.0', { commands: [] })).rejects.toThrow(/the body must be/);
    await expect(types.put('vm', '1.0', { commands: { X: { type: 'nonsense' } } })).rejects.toThrow(/the schema of X is not a valid JSON Schema/);
    await expect(types.put('v m', '1.0', VM_1_0)).rejects.toThrow(/type must be a name/);
    await types.put('vm', '1.0', VM_1_0);
    expect(types.check('vm', command('CREATE', { cpus: 8 }, 1, 0), [])).toEqual({ ok: true });
    // another node tightens the schema: seen at the next refresh, with a validator compiled anew
    kv.data.set(`${TYPE_PREFIX}vm/1.0`, JSON.stringify({ commands: { ...VM_1_0.commands, CREATE: { type: 'object', properties: { cpus: { maximum: 4 } } } } }));
    await types.refresh();
    expect(types.check('vm', command('CREATE', { cpus: 8 }, 1, 0), [])).toMatchObject({ ok: false });
    kv.data.set(`${TYPE_PREFIX}vm/9.0`, '{not json');
    await types.refresh();
    expect((await types.list()).map((v) => `${v.type} ${v.major}.${v.minor}`)).toEqual(['vm 1.0']);
    await types.delete('vm', '1.0');
    expect(types.check('vm', command('ANY', null), [])).toEqual({ ok: true });
  });
});
