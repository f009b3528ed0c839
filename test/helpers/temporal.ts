/**
 * A real Temporal dev server for tests: the same CLI binary `fedflow up` uses, started by
 * `@temporalio/testing` with the search attributes of DESIGN.md registered.
 */
import { TestWorkflowEnvironment } from '@temporalio/testing';
import { bundleWorkflowCode, type WorkflowBundleWithSourceMap } from '@temporalio/worker';
import { SEARCH_ATTRIBUTES } from '../../core/search-attributes';
import { findTemporalCli } from '../../scripts/temporal-cli';

export async function startTestServer(opts: { ui?: boolean; uiPort?: number } = {}): Promise<TestWorkflowEnvironment> {
  const cli = findTemporalCli();
  return TestWorkflowEnvironment.createLocal({
    server: {
      executable: { type: 'existing-path', path: cli.path },
      searchAttributes: [...SEARCH_ATTRIBUTES],
      ip: '127.0.0.1',
      ...(opts.ui ? { ui: true, uiPort: opts.uiPort } : {}),
      extraArgs: ['--log-level', 'error'],
    },
  });
}

let bundle: Promise<WorkflowBundleWithSourceMap> | undefined;
/** The workflow bundle, built once per test process. */
export function workflowBundle(): Promise<WorkflowBundleWithSourceMap> {
  bundle ??= bundleWorkflowCode({ workflowsPath: require.resolve('../../workflows'), logger: { info() {}, warn() {}, error: console.error, debug() {}, trace() {}, log() {} } as never });
  return bundle;
}
