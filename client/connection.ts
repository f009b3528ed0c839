/**
 * Temporal connection settings, resolved the way every Temporal tool resolves them
 * (`@temporalio/envconfig`): TEMPORAL_ADDRESS, TEMPORAL_NAMESPACE, TEMPORAL_API_KEY, TLS variables,
 * TEMPORAL_PROFILE and the TOML config file. With nothing set, that is the local dev server.
 */
import { loadClientConnectConfig } from '@temporalio/envconfig';
import type { NativeConnectionOptions } from '@temporalio/worker';

export interface ResolvedConnection {
  connectionOptions: NativeConnectionOptions;
  namespace: string;
  address: string;
}

export function resolveConnection(env: NodeJS.ProcessEnv = process.env): ResolvedConnection {
  const cfg = loadClientConnectConfig({ overrideEnvVars: env as Record<string, string> });
  const connectionOptions = { ...cfg.connectionOptions };
  if (!connectionOptions.address) connectionOptions.address = 'localhost:7233';
  return { connectionOptions, namespace: cfg.namespace ?? 'default', address: connectionOptions.address };
}
