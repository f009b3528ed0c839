/**
 * A real Temporal dev server for tests: the same CLI binary `fedflow up` uses, started by
 * `@temporalio/testing` with the search attributes of DESIGN.md registered.
 */
import { TestWorkflowEnvironment } from '@temporalio/testing';
import { bundleWorkflowCode, DefaultLogger, Runtime, type WorkflowBundleWithSourceMap } from '@temporalio/worker';

let runtimeInstalled = false;
/** Tests fail on purpose a lot: keep the SDK's per-failure warnings out of the test output. */
export function quietRuntime(): void {
  if (runtimeInstalled) return;
  runtimeInstalled = true;
  try {
    Runtime.install({ logger: new DefaultLogger((process.env.FEDFLOW_TEST_LOG_LEVEL as never) || 'ERROR') });
  } catch {
    // Already installed by this process: keep it.
  }
}
import { SEARCH_ATTRIBUTES } from '../../core/search-attributes';
import { findTemporalCli } from '../../scripts/temporal-cli';
import { extraDevServerArgs } from '../../scripts/dev-server';

export async function startTestServer(opts: { ui?: boolean; uiPort?: number } = {}): Promise<TestWorkflowEnvironment> {
  quietRuntime();
  const cli = findTemporalCli();
  return TestWorkflowEnvironment.createLocal({
    server: {
      executable: { type: 'existing-path', path: cli.path },
      searchAttributes: [...SEARCH_ATTRIBUTES],
      ip: '127.0.0.1',
      ...(opts.ui ? { ui: true, uiPort: opts.uiPort } : {}),
      extraArgs: ['--log-level', 'error', ...extraDevServerArgs()],
    },
  });
}

const bundles = new Map<string, Promise<WorkflowBundleWithSourceMap>>();
/**
 * The workflow bundle, built once per test process: production's workflows plus the probes that
 * tests and the benchmark use (./probe-workflows.ts), or with `production`, exactly what the
 * control worker registers (replay tests check that bundle), or the module at `workflowsPath`.
 */
export function workflowBundle(opts: { production?: boolean; workflowsPath?: string } = {}): Promise<WorkflowBundleWithSourceMap> {
  quietRuntime();
  const path = opts.workflowsPath ?? (opts.production ? require.resolve('../../workflows') : require.resolve('./probe-workflows'));
  let b = bundles.get(path);
  if (!b) {
    b = bundleWorkflowCode({ workflowsPath: path, logger: { info() {}, warn() {}, error: console.error, debug() {}, trace() {}, log() {} } as never });
    bundles.set(path, b);
  }
  return b;
}
