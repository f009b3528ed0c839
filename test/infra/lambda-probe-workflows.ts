/** The production workflows plus a probe that runs one real control activity: the Lambda test's bundle. */
import { proxyActivities } from '@temporalio/workflow';
import type { createControlActivities } from '../../activities/control';

export * from '../../workflows';

const { releaseMigration } = proxyActivities<ReturnType<typeof createControlActivities>>({ startToCloseTimeout: '30 seconds' });

export async function controlProbe(workloadId: string): Promise<string> {
  await releaseMigration({ workloadId });
  return `released ${workloadId}`;
}
