/**
 * `gandalf-node connector-type put|list|delete`: the versions of Gandalf
 * connector types and their commands' payload schemas, through any node's
 * /gandalf/connector-types (put and delete: permission admin).
 */
import { readFileSync } from 'node:fs';
import { request, type ClientTarget } from './api-client';
import { failure, type CliIo } from './coordination-commands';
import { CommandFailed, UsageError } from './errors';
import { renderTable } from './table';

const path = (type: string, version: string) => `/gandalf/connector-types/${encodeURIComponent(type)}/${encodeURIComponent(version)}`;

export async function runConnectorType(
  bind: ClientTarget,
  sub: string,
  args: string[],
  options: { json?: boolean; file?: string },
  io: CliIo,
): Promise<number> {
  const json = options.json === true || !io.isTTY;
  const [type, version] = args;
  switch (sub) {
    case 'put': {
      if (!type || !version || !options.file) throw new UsageError('usage: gandalf-node connector-type put TYPE MAJOR.MINOR --file COMMANDS.json');
      let body: unknown;
      try {
        body = JSON.parse(readFileSync(options.file === '-' ? 0 : options.file, 'utf8'));
      } catch (err) {
        throw new CommandFailed(`--file ${options.file}: ${(err as Error).message}`);
      }
      const r = await request(bind, 'PUT', path(type, version), body);
      if (r.status !== 200) throw failure(`connector-type put ${type} ${version}`, r);
      io.out(json ? `${JSON.stringify(r.body)}\n` : `registered ${type} ${version}: ${(r.body as { commands: string[] }).commands.join(', ')}\n`);
      return 0;
    }
    case 'list': {
      const r = await request(bind, 'GET', '/gandalf/connector-types');
      if (r.status !== 200) throw failure('connector-type list', r);
      const types = (r.body as { types: { type: string; version: string; commands: Record<string, unknown> }[] }).types;
      io.out(
        json
          ? `${JSON.stringify(r.body)}\n`
          : renderTable(
              ['type', 'version', 'commands'],
              types.map((t) => [t.type, t.version, Object.keys(t.commands).join(', ')]),
            ),
      );
      return 0;
    }
    case 'delete': {
      if (!type || !version) throw new UsageError('usage: gandalf-node connector-type delete TYPE MAJOR.MINOR');
      const r = await request(bind, 'DELETE', path(type, version));
      if (r.status !== 200) throw failure(`connector-type delete ${type} ${version}`, r);
      io.out(json ? `${JSON.stringify(r.body)}\n` : `deleted ${type} ${version}\n`);
      return 0;
    }
    default:
      throw new UsageError(`unknown connector-type command "${sub}": put, list or delete`);
  }
}
