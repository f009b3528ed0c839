/**
 * `fedflow infra plan|up|down --target <aws|azure|gcp|temporal>`: reads the federation config
 * (validated in full before any call, so bad input creates nothing) and runs one target.
 * Endpoints and credentials for tests come in through `overrides`, never through the YAML.
 */
import { Connection } from '@temporalio/client';
import { resolveConnection } from '../client/connection';
import type { FederationConfig } from '../core/federation-config';
import { InfraError, type InfraAction, type InfraResult, type InfraTarget } from './plan';
import { temporalTarget } from './temporal/namespace';
import { awsTarget } from './aws/target';
import { gcpTarget, type GcpTargetOptions } from './gcp/target';
import { azureTarget, type AzureTargetOptions } from './azure/target';

export interface InfraOverrides {
  env?: NodeJS.ProcessEnv;
  /** An open Temporal connection to use instead of the environment's. */
  temporalConnection?: Connection;
  /** Google auth client instead of Application Default Credentials (tests: the fake's token). */
  gcpAuthClient?: GcpTargetOptions['authClient'];
  /** IAM and Resource Manager endpoints instead of Google's (tests: the IAM fake). */
  gcpIamEndpoints?: GcpTargetOptions['iamEndpoints'];
  /** How long gcp calls naming a just-created service account wait for IAM to propagate it (default about 90 s). */
  gcpPropagation?: GcpTargetOptions['propagation'];
  /** Azure credential and TLS agent instead of DefaultAzureCredential and the system CAs (tests: the fake's). */
  azureCredential?: AzureTargetOptions['credential'];
  azureAgent?: AzureTargetOptions['agent'];
  /** Poll interval of long-running provider operations (tests shorten it). */
  pollMs?: number;
}

/**
 * The Temporal address and namespace the sites' agents are given: this environment's. A loopback
 * address would send every cloud agent to itself, so it is refused before any call.
 */
function agentTemporal(config: FederationConfig, o: InfraOverrides): { temporalAddress: string; temporalNamespace: string } {
  const resolved = resolveConnection(o.env ?? process.env);
  if (/^(localhost|127\.|\[::1\]|::1)/.test(resolved.address)) {
    throw new InfraError(
      `the sites' agents would connect to Temporal at ${resolved.address}, which is this machine: set TEMPORAL_ADDRESS (or a TEMPORAL_PROFILE) to a frontend the cloud instances can reach, e.g. my-ns.a1b2c.tmprl.cloud:7233`,
      'InvalidInfraConfig',
    );
  }
  return { temporalAddress: resolved.address, temporalNamespace: config.infra?.temporal?.namespace ?? resolved.namespace };
}

export async function runInfra(action: InfraAction, target: InfraTarget, config: FederationConfig, o: InfraOverrides = {}): Promise<InfraResult> {
  switch (target) {
    case 'temporal':
      return runTemporal(action, config, o);
    case 'aws':
      return awsTarget(action, config, { ...agentTemporal(config, o), pollMs: o.pollMs });
    case 'azure':
      return azureTarget(action, config, { ...agentTemporal(config, o), credential: o.azureCredential, agent: o.azureAgent });
    case 'gcp':
      return gcpTarget(action, config, { ...agentTemporal(config, o), pollMs: o.pollMs, authClient: o.gcpAuthClient, iamEndpoints: o.gcpIamEndpoints, propagation: o.gcpPropagation });
  }
}

async function runTemporal(action: InfraAction, config: FederationConfig, o: InfraOverrides): Promise<InfraResult> {
  const resolved = resolveConnection(o.env ?? process.env);
  const namespace = config.infra?.temporal?.namespace ?? resolved.namespace;
  const retentionDays = config.infra?.temporal?.retentionDays ?? 7;
  const cloud = /\.tmprl\.cloud(:\d+)?$/.test(resolved.address);
  let connection = o.temporalConnection;
  if (!connection) {
    try {
      connection = await Connection.connect({ ...resolved.connectionOptions, connectTimeout: '10s' } as never);
    } catch (err) {
      throw new InfraError(`cannot reach Temporal at ${resolved.address}: ${(err as Error).message}; set TEMPORAL_ADDRESS (and TEMPORAL_API_KEY or TEMPORAL_TLS_* for a secured cluster)`, 'ProviderError', undefined, { cause: err });
    }
  }
  try {
    return await temporalTarget(action, { connection, namespace, retentionDays, cloud });
  } finally {
    if (!o.temporalConnection) await connection.close();
  }
}
