import { describe, expect, it } from 'vitest';
import { identityFromMeta, identityMeta, parseRoles, type RoutingIdentity } from '../../../src/core/routing-identity';

describe('routing identity', () => {
  it('round-trips through membership metadata, and a node without one (or with a bad one) has none', () => {
    const id: RoutingIdentity = { roles: ['aggregator', 'connector'], tenant: 'acme', logicalName: 'l1', connectorType: 'vm', product: 'vsphere' };
    expect(identityMeta(id)).toEqual({ roles: 'aggregator,connector', tenant: 'acme', lname: 'l1', ctype: 'vm', product: 'vsphere' });
    expect(identityFromMeta({ ...identityMeta(id), arch: 'arm' })).toEqual(id);
    expect(identityFromMeta(identityMeta({ ...id, product: undefined }))).toEqual({ ...id, product: undefined });
    expect(identityFromMeta({ arch: 'arm' })).toBeUndefined();
    expect(identityFromMeta({ ...identityMeta(id), tenant: 'a b' })).toBeUndefined();
    expect(identityFromMeta({ ...identityMeta(id), roles: 'root' })).toBeUndefined();
  });

  it('parses roles in a fixed order without repeats', () => {
    expect(parseRoles('connector,cluster,connector')).toEqual(['cluster', 'connector']);
    expect(parseRoles(' , ')).toBeUndefined();
    expect(parseRoles('cluster,x')).toBeUndefined();
  });
});
