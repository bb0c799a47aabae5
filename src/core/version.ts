/** Build identity, injected by the bundler (scripts/bundle.mjs); source runs report "dev". */
declare const __GANDALF_VERSION__: string | undefined;
declare const __GANDALF_COMMIT__: string | undefined;

export const VERSION: string = typeof __GANDALF_VERSION__ === 'string' ? __GANDALF_VERSION__ : '0.0.0-dev';
export const COMMIT: string = typeof __GANDALF_COMMIT__ === 'string' ? __GANDALF_COMMIT__ : 'dev';
