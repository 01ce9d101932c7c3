// Lint rules that keep the architecture honest (docs/architecture.md §1):
//  - shared/ runs in Node, Electron and the browser: no node:* builtins, no electron, no DOM.
//  - data flows desktop -> shared <- server: shared imports neither; server and desktop never import each other.
//  - libsodium (its WASM build and sodium-native) is touched only inside shared/src/crypto/.
import js from '@eslint/js';
import tseslint from 'typescript-eslint';
import globals from 'globals';
import { builtinModules } from 'node:module';

const nodeBuiltins = [...builtinModules, ...builtinModules.map((m) => `node:${m}`)];
const sodium = { group: ['libsodium-wrappers', 'libsodium-wrappers-sumo', 'sodium-native'], message: 'Only shared/src/crypto/ may use libsodium (docs/architecture.md §1).' };
const domGlobals = ['window', 'document', 'navigator', 'localStorage', 'sessionStorage', 'location', 'fetch', 'XMLHttpRequest', 'process', 'Buffer', 'require', '__dirname', '__filename', 'global', 'setImmediate'];

export default tseslint.config(
  { ignores: ['**/dist/**', '**/node_modules/**', 'data/**', 'bench-results/**'] },
  js.configs.recommended,
  ...tseslint.configs.recommended,
  {
    languageOptions: { globals: { ...globals.node } },
    rules: {
      '@typescript-eslint/no-unused-vars': ['error', { argsIgnorePattern: '^_', varsIgnorePattern: '^_' }],
      '@typescript-eslint/consistent-type-imports': 'error',
      'no-console': 'off',
      // zod's own advice (and what esbuild can shake): the named `z` is zod's whole namespace as one value, so every
      // bundle that imports it keeps all of zod, every locale included (docs/architecture.md §4).
      'no-restricted-syntax': ['error', {
        selector: "ImportDeclaration[source.value='zod'] > ImportSpecifier[imported.name='z']",
        message: "Write import * as z from 'zod': the named z keeps all of zod (its locales too) in every bundle.",
      }],
    },
  },
  {
    files: ['shared/**/*.ts'],
    languageOptions: { globals: { ...globals['shared-node-browser'] } },
    rules: {
      'no-restricted-imports': ['error', {
        paths: nodeBuiltins.map((name) => ({ name, message: 'shared/ must run in the browser too: no Node builtins.' })),
        patterns: [
          { group: ['node:*'], message: 'shared/ must run in the browser too: no Node builtins.' },
          { group: ['electron', 'electron/*'], message: 'shared/ never imports electron.' },
          { group: ['@kluis/server', '@kluis/server/*', '@kluis/desktop', '@kluis/desktop/*', '**/server/**', '**/desktop/**'], message: 'shared/ imports nothing from server/ or desktop/.' },
        ],
      }],
      'no-restricted-globals': ['error', ...domGlobals.map((name) => ({ name, message: `shared/ must not use the host global '${name}' (no DOM, no Node).` }))],
    },
  },
  {
    files: ['shared/**/*.ts'],
    ignores: ['shared/src/crypto/**'],
    rules: {
      'no-restricted-imports': ['error', {
        paths: nodeBuiltins.map((name) => ({ name, message: 'shared/ must run in the browser too: no Node builtins.' })),
        patterns: [
          { group: ['node:*'], message: 'shared/ must run in the browser too: no Node builtins.' },
          { group: ['electron', 'electron/*'], message: 'shared/ never imports electron.' },
          { group: ['@kluis/server', '@kluis/server/*', '@kluis/desktop', '@kluis/desktop/*', '**/server/**', '**/desktop/**'], message: 'shared/ imports nothing from server/ or desktop/.' },
          sodium,
        ],
      }],
    },
  },
  {
    files: ['server/**/*.ts'],
    rules: {
      'no-restricted-imports': ['error', {
        patterns: [
          { group: ['@kluis/desktop', '@kluis/desktop/*', '**/desktop/**'], message: 'server/ never imports desktop/ (docs/architecture.md §1).' },
          { group: ['electron', 'electron/*'], message: 'server/ never imports electron.' },
          { group: ['**/shared/src/**', '**/shared/dist/**'], message: 'Import @kluis/shared, not its files.' },
          sodium,
        ],
      }],
    },
  },
  {
    files: ['desktop/**/*.ts'],
    rules: {
      'no-restricted-imports': ['error', {
        patterns: [
          { group: ['@kluis/server', '@kluis/server/*', '**/server/**'], message: 'desktop/ never imports server/ (docs/architecture.md §1).' },
          { group: ['**/shared/src/**', '**/shared/dist/**'], message: 'Import @kluis/shared, not its files.' },
          sodium,
        ],
      }],
    },
  },
  {
    // The sync engine is a plain Node library: only desktop/src/electron/ may import electron.
    files: ['desktop/**/*.ts'],
    ignores: ['desktop/src/electron/**'],
    rules: {
      'no-restricted-imports': ['error', {
        patterns: [
          { group: ['@kluis/server', '@kluis/server/*', '**/server/**'], message: 'desktop/ never imports server/ (docs/architecture.md §1).' },
          { group: ['**/shared/src/**', '**/shared/dist/**'], message: 'Import @kluis/shared, not its files.' },
          { group: ['electron', 'electron/*'], message: 'Only desktop/src/electron/ imports electron; the engine and CLI are plain Node.' },
          sodium,
        ],
      }],
    },
  },
  {
    // The link page runs in the browser: DOM globals, no Node. It uses the shared facade (@kluis/shared), never
    // libsodium, server/ or desktop/.
    files: ['web/**/*.ts'],
    languageOptions: { globals: { ...globals.browser, ...globals.serviceworker } },
    rules: {
      'no-restricted-imports': ['error', {
        paths: nodeBuiltins.map((name) => ({ name, message: 'web/ runs in the browser: no Node builtins.' })),
        patterns: [
          { group: ['node:*'], message: 'web/ runs in the browser: no Node builtins.' },
          { group: ['@kluis/server', '@kluis/server/*', '**/server/**', '@kluis/desktop', '@kluis/desktop/*', '**/desktop/**'], message: 'web/ imports only @kluis/shared.' },
          { group: ['**/shared/src/**', '**/shared/dist/**'], message: 'Import @kluis/shared, not its files.' },
          sodium,
        ],
      }],
      'no-restricted-globals': ['error', ...['process', 'Buffer', 'require', '__dirname', '__filename', 'global', 'setImmediate'].map((name) => ({ name, message: `web/ runs in the browser: no '${name}'.` }))],
    },
  },
  {
    // The desktop app's renderer (web/desktop/) also imports the IPC contract (desktop/src/electron/ipc/: zod and the
    // wire schemas only), and nothing else of desktop/.
    files: ['web/desktop/**/*.ts'],
    rules: {
      'no-restricted-imports': ['error', {
        paths: nodeBuiltins.map((name) => ({ name, message: 'web/ runs in the browser: no Node builtins.' })),
        patterns: [
          { group: ['node:*'], message: 'web/ runs in the browser: no Node builtins.' },
          { group: ['@kluis/server', '@kluis/server/*', '**/server/**', '@kluis/desktop', '@kluis/desktop/*'], message: 'web/desktop/ imports only @kluis/shared and the IPC contract.' },
          { regex: '(^|/)desktop/(?!src/electron/ipc/contract\\.js$)', message: 'web/desktop/ imports only @kluis/shared and the IPC contract.' },
          { group: ['**/shared/src/**', '**/shared/dist/**'], message: 'Import @kluis/shared, not its files.' },
          sodium,
        ],
      }],
    },
  },
  {
    files: ['test/**/*.ts', 'scripts/**/*.ts', 'scripts/**/*.mjs'],
    rules: {
      'no-restricted-imports': ['error', { patterns: [sodium] }],
    },
  },
  {
    // The independent storage reader proves docs/storage.md and docs/crypto.md, not the code: libsodium directly, and
    // nothing of Kluis (issue 20 §4).
    files: ['test/storage-reader/**/*.ts'],
    rules: {
      'no-restricted-imports': ['error', { patterns: [
        { group: ['@kluis/*', '**/shared/**', '**/server/**', '**/desktop/**', '**/helpers/**'], message: 'The storage reader is written from docs/storage.md and docs/crypto.md alone: no Kluis code.' },
      ] }],
    },
  },
);
