/**
 * The workflow tier's server: Temporal's time-skipping test server (the Java build from Maven
 * Central, see scripts/temporal-test-server.ts), started by `@temporalio/testing` as an
 * existing executable instead of its download, which this machine cannot reach. The search
 * attributes of DESIGN.md are registered, as the dev server's flags do for the other tiers.
 */
import { TestWorkflowEnvironment } from '@temporalio/testing';
import { findTemporalTestServer } from '../../scripts/temporal-test-server';
import { SEARCH_ATTRIBUTES } from '../../core/search-attributes';
import { quietRuntime } from './temporal';

/** temporal.api.enums.v1.IndexedValueType.INDEXED_VALUE_TYPE_KEYWORD (every fedflow attribute is a Keyword). */
const INDEXED_VALUE_TYPE_KEYWORD = 2;

export async function startTimeSkippingServer(): Promise<TestWorkflowEnvironment> {
  quietRuntime();
  const server = findTemporalTestServer();
  const env = await TestWorkflowEnvironment.createTimeSkipping({ server: { executable: { type: 'existing-path', path: server.path } } });
  try {
    await env.connection.operatorService.addSearchAttributes({
      namespace: env.namespace ?? 'default',
      searchAttributes: Object.fromEntries(SEARCH_ATTRIBUTES.map((a) => [a.name, INDEXED_VALUE_TYPE_KEYWORD])),
    });
  } catch (err) {
    await env.teardown();
    throw err;
  }
  return env;
}
