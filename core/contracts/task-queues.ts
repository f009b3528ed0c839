/**
 * Task queues and workflow ids of DESIGN.md ("Temporal conventions"): `fedflow` for control,
 * `fedflow-site-<siteId>` per site agent; `migrate-<workloadId>` per migration, so Temporal itself
 * refuses a second concurrent migration of one workload; `federation-<name>` per federation.
 */
export const CONTROL_TASK_QUEUE = 'fedflow';
export const siteTaskQueue = (siteId: string) => `fedflow-site-${siteId}`;

export function migrationWorkflowId(workloadId: string): string {
  return `migrate-${workloadId}`;
}

/** A federation's workflow id: one entity workflow per federation. */
export const federationWorkflowId = (name: string) => `federation-${name}`;
