// ESLint with typed rules from typescript-eslint: the promise rules catch a
// forgotten await or a promise handed to something that ignores it; the
// no-unsafe-* rules keep `any` from spreading; the size rules keep modules and
// functions small enough to read in one sitting (ARCHITECTURE.md).
import eslint from '@eslint/js';
import tseslint from 'typescript-eslint';

// The Node globals bench/ uses (it is plain ESM outside every tsconfig).
const nodeGlobals = Object.fromEntries(
  [
    'process',
    'console',
    'Buffer',
    'setTimeout',
    'clearTimeout',
    'setInterval',
    'clearInterval',
    'setImmediate',
    'fetch',
    'URL',
    'URLSearchParams',
    'AbortController',
    'AbortSignal',
    'performance',
    'structuredClone',
    'queueMicrotask',
  ].map((name) => [name, 'readonly']),
);

export default tseslint.config(
  { ignores: ['dist/', 'node_modules/', '.skiff/', 'fixtures/', 'templates/', 'test/cluster/'] },
  eslint.configs.recommended,
  ...tseslint.configs.recommendedTypeChecked,
  {
    languageOptions: {
      parserOptions: { projectService: { allowDefaultProject: ['eslint.config.js', 'vitest.config.ts'] }, tsconfigRootDir: import.meta.dirname },
    },
    rules: {
      '@typescript-eslint/no-floating-promises': 'error',
      '@typescript-eslint/no-misused-promises': 'error',
      '@typescript-eslint/no-unused-vars': ['error', { argsIgnorePattern: '^_', varsIgnorePattern: '^_', ignoreRestSiblings: true }],
      '@typescript-eslint/consistent-type-imports': ['error', { fixStyle: 'inline-type-imports' }],
      // An interface's async method may be implemented without awaiting (in-memory drivers).
      '@typescript-eslint/require-await': 'off',
    },
  },
  {
    files: ['src/**/*.ts'],
    rules: {
      'max-lines': ['error', { max: 400 }],
      'max-lines-per-function': ['error', { max: 80, skipBlankLines: true, skipComments: true }],
    },
  },
  {
    // The one place `any` is allowed: objects from the API server are untyped JSON
    // (kube/objects.ts ApiFields) whose shape is the server's, read field by field with
    // fallbacks by each kind's rules and by the lint checks. Everywhere else the
    // no-unsafe-* rules hold.
    files: ['src/kinds/**/*.ts', 'src/lint/checks/**/*.ts'],
    rules: {
      '@typescript-eslint/no-unsafe-member-access': 'off',
      '@typescript-eslint/no-unsafe-assignment': 'off',
      '@typescript-eslint/no-unsafe-argument': 'off',
      '@typescript-eslint/no-unsafe-call': 'off',
      '@typescript-eslint/no-unsafe-return': 'off',
    },
  },
  {
    // bench/ is plain Node ESM in no tsconfig: linted without type information.
    files: ['bench/**/*.mjs', 'bench/**/*.d.mts'],
    ...tseslint.configs.disableTypeChecked,
    languageOptions: { parserOptions: { program: null, project: false, projectService: false }, globals: nodeGlobals },
  },
  {
    // Tests build loosely typed API objects as fixtures and read the API server's JSON
    // (kubectl -o json, MemoryKube) in their assertions: the same exception as src/kinds/.
    files: ['test/**/*.ts'],
    rules: {
      '@typescript-eslint/no-explicit-any': 'off',
      '@typescript-eslint/no-unsafe-member-access': 'off',
      '@typescript-eslint/no-unsafe-assignment': 'off',
      '@typescript-eslint/no-unsafe-argument': 'off',
      '@typescript-eslint/no-unsafe-call': 'off',
      '@typescript-eslint/no-unsafe-return': 'off',
    },
  },
);
