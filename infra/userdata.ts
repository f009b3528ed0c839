/**
 * The user-data a site instance boots with: what agent/site/cloud-init.ts writes today (the
 * agent's environment and `systemctl enable --now fedflow-agent.service`). The release artifact
 * and the unit file are the real-hosts issue's (#15); infra passes the site, the Temporal address
 * and namespace, and no workload (the agent serves every workload placed on its site).
 */
import { agentCloudInit } from '../agent/site/cloud-init';

export function siteUserData(siteId: string, temporalAddress: string | undefined, temporalNamespace: string | undefined): string {
  return agentCloudInit({ siteId, workloadId: '', temporalAddress, temporalNamespace });
}
