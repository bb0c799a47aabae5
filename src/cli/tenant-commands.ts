/**
 * `gandalf-node tenant create|list|delete` and `gandalf-node secret
 * create|list|revoke`: the tenants and their secrets, through any node's
 * /gandalf/tenants and /gandalf/secrets (permission admin). A secret's text
 * is printed once, when it is created; nothing can show it again.
 */
import { request, type ClientTarget } from './api-client';
import { failure, type CliIo } from './coordination-commands';
import { UsageError } from './errors';
import { renderTable } from './table';

const when = (ms: unknown) => (typeof ms === 'number' && ms > 0 ? new Date(ms).toISOString() : '');

function print(io: CliIo, json: boolean, body: unknown, text: () => string): void {
  io.out(json || !io.isTTY ? `${JSON.stringify(body)}\n` : text());
}

export async function runTenant(bind: ClientTarget, sub: string, args: string[], options: { json?: boolean }, io: CliIo): Promise<number> {
  const json = options.json === true;
  const name = args[0];
  switch (sub) {
    case 'create': {
      if (!name) throw new UsageError('usage: gandalf-node tenant create NAME');
      const r = await request(bind, 'POST', '/gandalf/tenants', { tenant: name });
      if (r.status !== 201) throw failure(`tenant create ${name}`, r);
      print(io, json, r.body, () => `created tenant ${name}: from now on only created tenants route, and their nodes and workers need secrets\n`);
      return 0;
    }
    case 'list': {
      const r = await request(bind, 'GET', '/gandalf/tenants');
      if (r.status !== 200) throw failure('tenant list', r);
      const body = r.body as { admission_required: boolean; tenants: { tenant: string; created_at: number; secrets: number }[] };
      print(io, json, body, () =>
        body.tenants.length === 0
          ? 'no tenant created: the cluster is open (every board routes for the tenant it publishes)\n'
          : renderTable(
              ['tenant', 'created', 'secrets'],
              body.tenants.map((t) => [t.tenant, when(t.created_at), t.secrets]),
            ),
      );
      return 0;
    }
    case 'delete': {
      if (!name) throw new UsageError('usage: gandalf-node tenant delete NAME');
      const r = await request(bind, 'DELETE', `/gandalf/tenants/${encodeURIComponent(name)}`);
      if (r.status !== 200) throw failure(`tenant delete ${name}`, r);
      print(io, json, r.body, () => `deleted tenant ${name} and its ${(r.body as { secrets_revoked: number }).secrets_revoked} secret(s)\n`);
      return 0;
    }
    default:
      throw new UsageError(`unknown tenant command "${sub}": create, list or delete`);
  }
}

export async function runSecret(
  bind: ClientTarget,
  sub: string,
  args: string[],
  options: { json?: boolean; roles?: string; 'expires-in'?: string },
  io: CliIo,
): Promise<number> {
  const json = options.json === true;
  switch (sub) {
    case 'create': {
      const tenant = args[0];
      if (!tenant) throw new UsageError('usage: gandalf-node secret create TENANT [--roles aggregator,connector,worker] [--expires-in 90d]');
      const body: Record<string, unknown> = { tenant };
      if (options.roles !== undefined) body.roles = options.roles.split(',').map((r) => r.trim());
      if (options['expires-in'] !== undefined) body.expires_in = options['expires-in'];
      const r = await request(bind, 'POST', '/gandalf/secrets', body);
      if (r.status !== 201) throw failure(`secret create ${tenant}`, r);
      const s = r.body as { id: string; roles: string[]; expires_at: number | null; secret: string };
      // the bare secret on stdout (so `> file` makes a --secret-file), the rest on stderr; --json: all as JSON
      if (json) io.out(`${JSON.stringify(s)}\n`);
      else {
        io.out(`${s.secret}\n`);
        io.err(
          `secret ${s.id} of tenant ${tenant} for ${s.roles.join(', ')}${s.expires_at ? `, expires ${when(s.expires_at)}` : ''}: shown once, store it now\n`,
        );
      }
      return 0;
    }
    case 'list': {
      const tenant = args[0];
      const r = await request(bind, 'GET', `/gandalf/secrets${tenant ? `?tenant=${encodeURIComponent(tenant)}` : ''}`);
      if (r.status !== 200) throw failure('secret list', r);
      const body = r.body as { secrets: { tenant: string; id: string; roles: string[]; created_at: number; expires_at: number | null }[] };
      print(io, json, body, () =>
        renderTable(
          ['tenant', 'id', 'roles', 'created', 'expires'],
          body.secrets.map((s) => [s.tenant, s.id, s.roles.join(','), when(s.created_at), s.expires_at ? when(s.expires_at) : 'never']),
        ),
      );
      return 0;
    }
    case 'revoke': {
      const [tenant, id] = args;
      if (!tenant || !id) throw new UsageError('usage: gandalf-node secret revoke TENANT ID');
      const r = await request(bind, 'DELETE', `/gandalf/secrets/${encodeURIComponent(tenant)}/${encodeURIComponent(id)}`);
      if (r.status !== 200) throw failure(`secret revoke ${tenant} ${id}`, r);
      print(io, json, r.body, () => `revoked secret ${id} of tenant ${tenant}: what it admitted is cut off within seconds\n`);
      return 0;
    }
    default:
      throw new UsageError(`unknown secret command "${sub}": create, list or revoke`);
  }
}
