/**
 * Node's single-executable-application API (`node:sea`), when this process is
 * one. The bundle is CommonJS, so `require` reaches the builtin; Node before
 * 20.12 (the official armv7l 20.11) has no `node:sea`.
 */
export interface SeaApi {
  isSea(): boolean;
  getAsset(key: string): ArrayBuffer;
}

function seaModule(): SeaApi | undefined {
  try {
    // eslint-disable-next-line @typescript-eslint/no-require-imports
    return require('node:sea') as SeaApi;
  } catch {
    return undefined; // not CommonJS (tests), or a Node without node:sea
  }
}

/** The SEA API when this process runs as a single executable, else undefined. */
export function runningSea(): SeaApi | undefined {
  const sea = seaModule();
  return sea?.isSea() ? sea : undefined;
}

export function isSingleExecutable(): boolean {
  const sea = seaModule();
  // Without node:sea, a single executable still shows itself: argv[1] is the executable.
  return sea ? sea.isSea() : process.argv[1] === process.execPath;
}
