// Lint: type-aware rules that catch what bites Temporal code, and a fence around workflows/.
import tseslint from 'typescript-eslint';

const nodeBuiltins = ['assert', 'buffer', 'child_process', 'cluster', 'crypto', 'dgram', 'dns', 'events', 'fs', 'fs/promises', 'http', 'http2', 'https', 'net', 'os', 'path', 'perf_hooks', 'process', 'readline', 'stream', 'timers', 'tls', 'url', 'util', 'v8', 'vm', 'worker_threads', 'zlib'];

export default tseslint.config(
  { ignores: ['node_modules/**', '.fedflow/**', '.venv/**', 'dist/**', 'models/**/*.py', '**/*.js', '**/*.mjs'] },
  ...tseslint.configs.recommended,
  {
    files: ['**/*.ts'],
    languageOptions: { parserOptions: { projectService: true, tsconfigRootDir: import.meta.dirname } },
    rules: {
      '@typescript-eslint/no-floating-promises': ['error', { allowForKnownSafeCalls: [{ from: 'package', package: 'node:test', name: ['describe', 'it', 'test', 'suite', 'before', 'after'] }] }],
      '@typescript-eslint/no-unused-vars': ['error', { argsIgnorePattern: '^_', varsIgnorePattern: '^_' }],
      '@typescript-eslint/no-explicit-any': 'error',
    },
  },
  {
    // Workflow code must be deterministic: Temporal replays it. Only @temporalio/workflow, types
    // and the pure logic in core/ may be imported; Node built-ins and I/O libraries may not.
    files: ['workflows/**/*.ts', 'core/**/*.ts'],
    rules: {
      'no-restricted-imports': [
        'error',
        {
          paths: [...nodeBuiltins, ...nodeBuiltins.map((m) => `node:${m}`)].map((name) => ({ name, message: 'workflows/ and core/ must stay deterministic and free of I/O' })),
          patterns: [
            { group: ['@temporalio/client', '@temporalio/worker', '@temporalio/activity', '@temporalio/testing'], message: 'workflows import only @temporalio/workflow' },
            { group: ['**/activities/*', '**/adapters/*', '**/agent/*', '**/models/*', '**/worker/*', '**/client/*'], allowTypeImports: true, message: 'workflows and core may import only types from I/O layers' },
            { group: ['tar', 'yaml', 'lz4-napi', 'zstd-napi', 'onnxruntime-node', '@aws-sdk/*', '@azure/*', '@google-cloud/*'], message: 'no I/O libraries in workflows/ or core/' },
          ],
        },
      ],
      'no-restricted-globals': ['error', { name: 'fetch', message: 'no I/O in workflows/ or core/' }, { name: 'setTimeout', message: 'use sleep() from @temporalio/workflow' }],
      'no-restricted-properties': ['error', { object: 'Math', property: 'random', message: 'non-deterministic: pass randomness in, or use @temporalio/workflow uuid4()' }],
    },
  },
);
