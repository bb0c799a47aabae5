// Debian's apt sources of this build host, as deb822 stanzas, for building
// foreign-architecture roots: the same mirrors the host uses (never a
// hard-coded host), with the components a board needs added.
import { existsSync, readFileSync, readdirSync } from 'node:fs';
import * as path from 'node:path';

function stanzas(text) {
  return text
    .split(/\n\s*\n/)
    .map((block) => {
      const fields = {};
      for (const line of block.split('\n')) {
        const m = /^([A-Za-z-]+):\s*(.*)$/.exec(line.trim());
        if (m) fields[m[1].toLowerCase()] = m[2];
      }
      return fields;
    })
    .filter((f) => f.uris && f.suites && (f.types ?? 'deb').split(/\s+/).includes('deb') && f.enabled !== 'no');
}

function oneLineEntries(text) {
  return text
    .split('\n')
    .map((l) => /^deb\s+(?:\[([^\]]*)\]\s+)?(\S+)\s+(\S+)\s+(.*)$/.exec(l.trim()))
    .filter(Boolean)
    .map((m) => ({ uris: m[2], suites: m[3], components: m[4], 'signed-by': /signed-by=(\S+)/.exec(m[1] ?? '')?.[1] }));
}

/** deb822 sources for `suite` (and its -updates / -security) with `components`. */
export function hostDebianSources(suite, components) {
  const found = [];
  const dir = '/etc/apt/sources.list.d';
  if (existsSync(dir)) {
    for (const f of readdirSync(dir).filter((n) => n.endsWith('.sources'))) found.push(...stanzas(readFileSync(path.join(dir, f), 'utf8')));
    for (const f of readdirSync(dir).filter((n) => n.endsWith('.list'))) found.push(...oneLineEntries(readFileSync(path.join(dir, f), 'utf8')));
  }
  if (existsSync('/etc/apt/sources.list')) found.push(...oneLineEntries(readFileSync('/etc/apt/sources.list', 'utf8')));
  const debian = found
    .map((f) => ({ ...f, suites: f.suites.split(/\s+/).filter((s) => s === suite || s.startsWith(`${suite}-`)) }))
    .filter((f) => f.suites.length > 0);
  if (debian.length === 0) throw new Error(`no apt source for Debian ${suite} on this host`);
  return (
    debian
      .map((f) =>
        [
          'Types: deb',
          `URIs: ${f.uris}`,
          `Suites: ${f.suites.join(' ')}`,
          `Components: ${components.join(' ')}`,
          ...(f['signed-by'] ? [`Signed-By: ${f['signed-by']}`] : []),
        ].join('\n'),
      )
      .join('\n\n') + '\n'
  );
}
