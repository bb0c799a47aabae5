// Lint rules (run by `npm test` through `npm run lint`). Besides the
// recommended TypeScript rules, two rules keep the architecture honest:
// - layers: a folder of src/ imports only from folders upstream of it, in the
//   data-flow order below (core first, the CLI last);
// - time: no global timers or wall-clock reads outside src/core/clock.ts, so
//   every wait can run in simulated time.
import js from '@eslint/js';
import tseslint from 'typescript-eslint';

/** src/ folders, upstream first; each may import only from those before it. */
const LAYERS = ['core', 'config', 'discovery', 'transport', 'membership', 'store', 'replication', 'routing', 'api', 'node', 'cli'];

const layerRules = LAYERS.map((layer, i) => {
  const downstream = LAYERS.slice(i + 1);
  return {
    files: [`src/${layer}/**/*.ts`],
    rules: {
      'no-restricted-imports':
        downstream.length === 0
          ? 'off'
          : [
              'error',
              {
                patterns: downstream.map((d) => ({
                  group: [`../${d}/*`, `../../src/${d}/*`],
                  message: `src/${layer} is upstream of src/${d}: it must not import from it (layers: ${LAYERS.join(' -> ')})`,
                })),
              },
            ],
    },
  };
});

const timeMessage = 'use the injected Clock (src/core/clock.ts), so this runs in simulated time';

export default tseslint.config(
  { ignores: ['dist/**', 'node_modules/**', 'test-results/**', 'images/**', 'platform/**', '.cache/**', 'src/**/*.d.ts'] },
  js.configs.recommended,
  ...tseslint.configs.recommended,
  {
    languageOptions: {
      ecmaVersion: 2022,
      sourceType: 'module',
      globals: {
        process: 'readonly',
        Buffer: 'readonly',
        console: 'readonly',
        URL: 'readonly',
        performance: 'readonly',
        setTimeout: 'readonly',
        clearTimeout: 'readonly',
        setImmediate: 'readonly',
        setInterval: 'readonly',
        clearInterval: 'readonly',
        queueMicrotask: 'readonly',
        TextEncoder: 'readonly',
        TextDecoder: 'readonly',
        AbortController: 'readonly',
        AbortSignal: 'readonly',
        fetch: 'readonly',
        __dirname: 'readonly',
        require: 'readonly',
        module: 'writable',
        globalThis: 'readonly',
        structuredClone: 'readonly',
        NodeJS: 'readonly',
      },
    },
    rules: {
      '@typescript-eslint/no-unused-vars': ['error', { argsIgnorePattern: '^_', varsIgnorePattern: '^_', caughtErrors: 'none' }],
      // a closure may read a variable assigned once, later (the composition root wires parts both ways)
      'prefer-const': ['error', { ignoreReadBeforeAssign: true }],
    },
  },
  // Tests and scripts read JSON bodies as `any`; bin/ is CommonJS.
  { files: ['test/**/*.ts', 'scripts/**/*.ts', 'scripts/**/*.mjs', 'examples/**/*.ts'], rules: { '@typescript-eslint/no-explicit-any': 'off' } },
  { files: ['**/*.cjs'], languageOptions: { sourceType: 'commonjs' }, rules: { '@typescript-eslint/no-require-imports': 'off' } },
  ...layerRules,
  {
    files: ['src/**/*.ts'],
    ignores: ['src/core/clock.ts'],
    rules: {
      'no-restricted-globals': ['error', ...['setTimeout', 'setInterval', 'clearTimeout', 'clearInterval'].map((name) => ({ name, message: timeMessage }))],
      'no-restricted-properties': ['error', { object: 'Date', property: 'now', message: timeMessage }],
    },
  },
);
