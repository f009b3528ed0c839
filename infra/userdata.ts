/**
 * The user-data a site instance boots with (agent/site/cloud-init.ts): with `infra.release` it
 * fetches that release artifact, checks its sha256, installs it and starts fedflow-agent.service;
 * without, the image carries fedflow already and only the unit is enabled. infra passes the site,
 * the Temporal address and namespace, and no workload (the agent serves every workload placed on
 * its site). No secret goes in: the site's key and the transfer secret are put on the instance
 * by the operator (or a secret store), never into a template a stack keeps.
 */
import { agentCloudInit, type ReleaseRef } from '../agent/site/cloud-init';

export function siteUserData(siteId: string, temporalAddress: string | undefined, temporalNamespace: string | undefined, release?: ReleaseRef): string {
  return agentCloudInit({ siteId, workloadId: '', temporalAddress, temporalNamespace, ...(release ? { release } : {}) });
}
