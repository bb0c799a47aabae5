import { describe, expect, it } from 'vitest';
import { loadConfig, parseConfigFile, parseHostPort } from '../../../src/config/settings';

const files: Record<string, string> = {};
const load = (flags: Record<string, string> = {}, env: Record<string, string> = {}, file?: string) =>
  loadConfig({
    flags,
    env,
    configFile: file,
    readFile: (f) =>
      files[f] ??
      (() => {
        throw new Error('ENOENT: no such file');
      })(),
  });

describe('settings', () => {
  it('uses defaults when nothing is set', () => {
    const c = load();
    expect(c.dataDir).toBe('./data');
    expect(c.httpBind).toEqual({ host: '127.0.0.1', port: 8420 });
    expect(c.mgmtBind).toEqual({ host: '0.0.0.0', port: 8421 });
    expect(c.logLevel).toBe('info');
    expect(c.nodeId).toBeUndefined();
  });

  it('takes flag over environment over config file over default', () => {
    files['/c.json'] = JSON.stringify({ 'log-level': 'warn', 'data-dir': '/file', 'node-id': 'from-file' });
    expect(load({}, {}, '/c.json')).toMatchObject({ logLevel: 'warn', dataDir: '/file', nodeId: 'from-file' });
    expect(load({}, { GANDALF_LOG_LEVEL: 'debug', GANDALF_DATA_DIR: '/env' }, '/c.json')).toMatchObject({
      logLevel: 'debug',
      dataDir: '/env',
      nodeId: 'from-file',
    });
    expect(load({ 'log-level': 'error' }, { GANDALF_LOG_LEVEL: 'debug' }, '/c.json')).toMatchObject({ logLevel: 'error', dataDir: '/file' });
  });

  it('reads "name = value" config files (gandalf.conf on a boot partition)', () => {
    files['/g.conf'] = '# rack 1\nnode-id = pi-01\nhttp_bind: 0.0.0.0:9000\n\nlog-format = "json"\n';
    expect(load({}, {}, '/g.conf')).toMatchObject({ nodeId: 'pi-01', httpBind: { host: '0.0.0.0', port: 9000 }, logFormat: 'json' });
  });

  it('names the setting, its source and the accepted values in every error', () => {
    expect(() => load({ 'log-level': 'loud' })).toThrow('invalid value "loud" for --log-level: expected one of debug, info, warn, error');
    expect(() => load({}, { GANDALF_HTTP_BIND: 'localhost' })).toThrow(
      'invalid value "localhost" for --http-bind (from GANDALF_HTTP_BIND): expected HOST:PORT',
    );
    files['/bad.json'] = '{"snapshot-entries": 0}';
    expect(() => load({}, {}, '/bad.json')).toThrow(/--snapshot-entries \(from snapshot-entries in \/bad.json\): expected an integer/);
    files['/unknown.json'] = '{"colour": "red"}';
    expect(() => load({}, {}, '/unknown.json')).toThrow(/unknown setting "colour"/);
    files['/broken.json'] = '{"x":';
    expect(() => load({}, {}, '/broken.json')).toThrow(/not valid JSON/);
    expect(() => load({}, {}, '/missing.conf')).toThrow(/cannot read config file \/missing.conf/);
    expect(() => load({ 'node-id': '-bad id' })).toThrow(/--node-id/);
    try {
      load({ 'log-format': 'xml' });
    } catch (err) {
      expect((err as { code?: string }).code).toBe('invalid_config');
    }
  });

  it('reads the Gandalf roles, tenant, logical name, connector type and product (all three roles for tenant default by default)', () => {
    expect(load()).toMatchObject({
      roles: ['cluster', 'aggregator', 'connector'],
      tenant: 'default',
      logicalName: 'default',
      connectorType: 'default',
      product: undefined,
    });
    files['/r.conf'] = 'roles = connector, cluster\ntenant = acme\nlogical-name = vmware.eu\nconnector-type = vm\nproduct = vsphere\n';
    expect(load({}, {}, '/r.conf')).toMatchObject({
      roles: ['cluster', 'connector'],
      tenant: 'acme',
      logicalName: 'vmware.eu',
      connectorType: 'vm',
      product: 'vsphere',
    });
    expect(load({ roles: 'aggregator' }, { GANDALF_ROLES: 'cluster' })).toMatchObject({ roles: ['aggregator'] });
    expect(() => load({ roles: 'cluster,king' })).toThrow(
      'invalid value "cluster,king" for --roles: expected a comma-separated list of cluster, aggregator, connector',
    );
    expect(() => load({ roles: '' })).toThrow(/for --roles/);
    expect(() => load({ tenant: 'Acme' })).toThrow(
      'invalid value "Acme" for --tenant: expected 1-48 characters of a-z 0-9 _ -, starting with a letter or digit',
    );
    expect(() => load({ 'logical-name': '-x' })).toThrow(/for --logical-name/);
  });

  it('parses host:port including IPv6 and rejects bad ports', () => {
    expect(parseHostPort('[::1]:80')).toEqual({ host: '::1', port: 80 });
    expect(parseHostPort('0.0.0.0:0')).toEqual({ host: '0.0.0.0', port: 0 });
    expect(parseHostPort('host:65536')).toBeUndefined();
    expect(parseHostPort('::1:80')).toBeUndefined();
    expect(parseConfigFile('a = 1\n', 'x')).toEqual({ a: '1' });
    expect(() => parseConfigFile('not a setting line', 'x')).toThrow(/line 1/);
  });
});
