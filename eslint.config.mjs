// Lint: type-aware rules that catch what bites Temporal code, and a fence around workflows/.
import tseslint from 'typescript-eslint';

const nodeBuiltins = ['assert', 'buffer', 'child_process', 'cluster', 'crypto', 'dgram', 'dns', 'events', 'fs', 'fs/promises', 'http', 'http2', 'https', 'net', 'os', 'path', 'perf_hooks', 'process', 'readline', 'stream', 'timers', 'tls', 'url', 'util', 'v8', 'vm', 'worker_threads', 'zlib'];

// The floors, lowest first. A folder may import only folders on lower floors (and itself).
// Workflows sit above activities but may import only their types (Temporal runs activities
// by name; the code must not be in the workflow bundle). bench/ and test/ stand outside: they
// may import anything.
const FLOORS = [['core'], ['adapters', 'agent', 'models'], ['activities'], ['workflows'], ['client'], ['worker'], ['scripts', 'infra'], ['cli']];
const ALL = FLOORS.flat();
// Import strings are matched, not resolved: a file `depth` folders below the root reaches another
// top-level folder only as `../` repeated `depth` times, then the folder's name.
const MAX_DEPTH = 5;
const reachingFrom = (depth, dirs) => `^(\\./)?(\\.\\./){${depth}}(${dirs.join('|')})(/|$)`;
// The same for a dynamic import(), which no-restricted-imports does not see: an esquery selector.
const dynamicImportFrom = (depth, dirs) => `ImportExpression[source.value=/^(\\.\\/)?(\\.\\.\\/){${depth}}(${dirs.join('|')})(\\/|$)/]`;

// Workflow code must be deterministic: Temporal replays it. core/ is imported by workflows, so the
// same holds there. Only @temporalio/workflow, types and core/ may be imported; no Node built-ins
// and no I/O libraries.
const deterministic = {
  paths: [...nodeBuiltins, ...nodeBuiltins.map((m) => `node:${m}`)].map((name) => ({ name, message: 'workflows/ and core/ must stay deterministic and free of I/O' })),
  patterns: [
    { group: ['@temporalio/client', '@temporalio/worker', '@temporalio/activity', '@temporalio/testing'], message: 'workflows and core import only @temporalio/workflow (and @temporalio/common)' },
    { group: ['tar', 'yaml', 'lz4', 'lz4-napi', 'onnxruntime-node', '@aws-sdk/*', '@azure/*', '@google-cloud/*'], message: 'no I/O libraries in workflows/ or core/' },
  ],
};

function layerConfigs() {
  return FLOORS.flatMap((floor, level) =>
    floor.flatMap((dir) => {
      const below = FLOORS.slice(0, level).flat();
      const upward = ALL.filter((d) => d !== dir && !below.includes(d));
      const message = `${dir}/ may import only from lower floors (${below.join(', ') || 'nothing of the project'}); shared names belong in core/contracts`;
      return Array.from({ length: MAX_DEPTH }, (_, i) => {
        const depth = i + 1;
        const patterns = [];
        if (dir === 'workflows') {
          // Only core/, and the types of activities (Temporal runs activities by name; their code
          // must not enter the workflow bundle).
          patterns.push({ regex: reachingFrom(depth, ALL.filter((d) => !['core', 'workflows', 'activities'].includes(d))), message: 'workflows/ import only core/ and the types of activities/' });
          patterns.push({ regex: reachingFrom(depth, ['activities']), allowTypeImports: true, message: 'workflows import only the types of activities' });
        } else if (upward.length) {
          patterns.push({ regex: reachingFrom(depth, upward), message });
        }
        const restricted = { patterns };
        const rules = {};
        if (dir === 'workflows' || dir === 'core') {
          restricted.paths = deterministic.paths;
          patterns.push(...deterministic.patterns);
          rules['no-restricted-globals'] = ['error', { name: 'fetch', message: 'no I/O in workflows/ or core/' }, { name: 'setTimeout', message: 'use sleep() from @temporalio/workflow' }];
          rules['no-restricted-properties'] = ['error', { object: 'Math', property: 'random', message: 'non-deterministic: pass randomness in, or use @temporalio/workflow uuid4()' }];
        }
        if (patterns.length) rules['no-restricted-imports'] = ['error', restricted];
        const forbidden = dir === 'workflows' ? ALL.filter((d) => !['core', 'workflows'].includes(d)) : upward;
        if (forbidden.length) rules['no-restricted-syntax'] = ['error', { selector: dynamicImportFrom(depth, forbidden), message: `${dir}/ may import only from lower floors, dynamically too` }];
        return { files: [`${dir}/${'*/'.repeat(depth - 1)}*.ts`], rules };
      });
    }),
  );
}

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
  // Every import runs downward (../shared/DESIGN.md, Layout). Each floor may import the floors
  // below it and its own folder, never a floor above or beside it; an upward import fails lint and CI.
  ...layerConfigs(),
);
