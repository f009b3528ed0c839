/** Task queue names of DESIGN.md: `fedflow` for control, `fedflow-site-<siteId>` per site agent. */
export const CONTROL_TASK_QUEUE = 'fedflow';
export const siteTaskQueue = (siteId: string) => `fedflow-site-${siteId}`;
