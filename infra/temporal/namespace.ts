/**
 * The Temporal target: the federation's namespace (`registerNamespace`) and the four Keyword search
 * attributes of core/search-attributes.ts (`operatorService.addSearchAttributes`).
 *
 * What `up` created is written into the namespace's own `data` map, so `down` removes exactly
 * that and nothing else: a namespace or attribute that existed before `up` is left alone. Every
 * call tolerates "already exists" / "not found", so an interrupted `up` or `down` can be rerun.
 *
 * Temporal Cloud does not take `registerNamespace` or operator calls from a namespace API key:
 * there the namespace and its attributes are made with tcld or the Cloud UI, and this target only
 * checks that they are there (README, "Temporal Cloud").
 */
import type { Connection } from '@temporalio/client';
import { msToTs } from '@temporalio/common/lib/time';
import { SEARCH_ATTRIBUTES } from '../../core/search-attributes';
import { InfraError, type Change, type InfraAction, type InfraResult } from '../plan';

/** gRPC status codes (grpc/status.h), the ones this target tells apart. */
const GrpcStatus = { NOT_FOUND: 5, ALREADY_EXISTS: 6, PERMISSION_DENIED: 7, UNAVAILABLE: 14, UNAUTHENTICATED: 16 } as const;
/** temporal.api.enums.v1.IndexedValueType, by number as the operator service answers it. */
const TYPE_NAMES = ['Unspecified', 'Text', 'Keyword', 'Int', 'Double', 'Bool', 'Datetime', 'KeywordList'];
const KEYWORD = 2;
/** temporal.api.enums.v1.NamespaceState.NAMESPACE_STATE_DELETED */
const NAMESPACE_STATE_DELETED = 3;

type DescribeNamespaceResponse = Awaited<ReturnType<Connection['workflowService']['describeNamespace']>>;

/** Keys of the namespace's `data` map that record what `up` created. */
export const DATA_CREATED_NAMESPACE = 'fedflow.infra.createdNamespace';
export const DATA_ADDED_ATTRIBUTES = 'fedflow.infra.addedSearchAttributes';

export interface TemporalTargetOptions {
  connection: Connection;
  namespace: string;
  retentionDays: number;
  /** Temporal Cloud (an address under tmprl.cloud): check only, create nothing. */
  cloud?: boolean;
  /** How long to wait for a just-registered namespace to reach the server's namespace cache. */
  namespaceReadyTimeoutMs?: number;
}

const grpcCode = (err: unknown): number | undefined => (err as { code?: number }).code;

async function describeNamespace(o: TemporalTargetOptions): Promise<DescribeNamespaceResponse | undefined> {
  try {
    return await o.connection.workflowService.describeNamespace({ namespace: o.namespace });
  } catch (err) {
    if (grpcCode(err) === GrpcStatus.NOT_FOUND) return undefined;
    throw wrap(err, `DescribeNamespace(${o.namespace})`);
  }
}

async function customAttributes(o: TemporalTargetOptions): Promise<Map<string, number>> {
  const res = await call(`ListSearchAttributes(${o.namespace})`, () => o.connection.operatorService.listSearchAttributes({ namespace: o.namespace }));
  return new Map(Object.entries(res.customAttributes ?? {}).map(([k, v]) => [k, Number(v)]));
}

function wrap(err: unknown, what: string): Error {
  const code = grpcCode(err);
  if (code === GrpcStatus.UNAUTHENTICATED || code === GrpcStatus.PERMISSION_DENIED) {
    return new InfraError(`${what}: ${(err as Error).message}; the connection comes from TEMPORAL_ADDRESS, TEMPORAL_API_KEY, TEMPORAL_TLS_* and TEMPORAL_PROFILE (@temporalio/envconfig): give credentials allowed to manage namespaces`, 'MissingCredentials', undefined, { cause: err });
  }
  if (code === GrpcStatus.UNAVAILABLE) {
    return new InfraError(`${what}: Temporal is not reachable (${(err as Error).message}); set TEMPORAL_ADDRESS to the frontend, e.g. localhost:7233`, 'ProviderError', undefined, { cause: err });
  }
  return new InfraError(`${what}: ${(err as Error).message}`, 'ProviderError', undefined, { cause: err });
}

async function call<T>(what: string, fn: () => Promise<T>): Promise<T> {
  try {
    return await fn();
  } catch (err) {
    throw wrap(err, what);
  }
}

/** Registers the namespace; "already exists" (a rerun, or a race) is success. Returns whether this call made it. */
async function registerNamespace(o: TemporalTargetOptions): Promise<boolean> {
  try {
    await o.connection.workflowService.registerNamespace({
      namespace: o.namespace,
      description: 'fedflow federation namespace (fedflow infra up --target temporal)',
      workflowExecutionRetentionPeriod: msToTs(`${o.retentionDays} days`),
      data: { [DATA_CREATED_NAMESPACE]: 'true' },
    });
    return true;
  } catch (err) {
    if (grpcCode(err) === GrpcStatus.ALREADY_EXISTS) return false;
    throw wrap(err, `RegisterNamespace(${o.namespace})`);
  }
}

/**
 * Adds the attributes. A namespace registered a moment ago may not be in the frontend's namespace
 * cache yet (NOT_FOUND), so that is retried until namespaceReadyTimeoutMs; "already exists" is success.
 */
async function addSearchAttributes(o: TemporalTargetOptions, names: string[]): Promise<void> {
  const deadline = Date.now() + (o.namespaceReadyTimeoutMs ?? 60_000);
  for (;;) {
    try {
      await o.connection.operatorService.addSearchAttributes({ namespace: o.namespace, searchAttributes: Object.fromEntries(names.map((n) => [n, KEYWORD])) });
      return;
    } catch (err) {
      if (grpcCode(err) === GrpcStatus.ALREADY_EXISTS) return;
      if (grpcCode(err) === GrpcStatus.NOT_FOUND && Date.now() < deadline) {
        await new Promise((r) => setTimeout(r, 500));
        continue;
      }
      throw wrap(err, `AddSearchAttributes(${o.namespace}: ${names.join(', ')})`);
    }
  }
}

/** The attributes of core/search-attributes.ts that exist with another type: no call can fix those. */
function typeConflicts(existing: Map<string, number>): string[] {
  return SEARCH_ATTRIBUTES.filter((k) => existing.has(k.name) && existing.get(k.name) !== KEYWORD).map(
    (k) => `search attribute ${k.name} exists as ${TYPE_NAMES[existing.get(k.name)!] ?? existing.get(k.name)}, fedflow needs Keyword: remove it (temporal operator search-attribute remove --name ${k.name}) or use another namespace`,
  );
}

export async function temporalTarget(action: InfraAction, o: TemporalTargetOptions): Promise<InfraResult> {
  if (action === 'down') return temporalDown(o);
  const ns = await describeNamespace(o);
  const existing = ns ? await customAttributes(o) : new Map<string, number>();
  const conflicts = typeConflicts(existing);
  if (conflicts.length) throw new InfraError(`namespace '${o.namespace}' has search attributes of the wrong type:\n${conflicts.map((c) => `  - ${c}`).join('\n')}`, 'InvalidInfraConfig', conflicts);
  const missing = SEARCH_ATTRIBUTES.map((k) => k.name).filter((n) => !existing.has(n));
  const changes: Change[] = [
    { action: ns ? 'keep' : 'create', kind: 'namespace', name: o.namespace, detail: ns ? undefined : `retention ${o.retentionDays} d` },
    ...SEARCH_ATTRIBUTES.map((k): Change => ({ action: missing.includes(k.name) ? 'create' : 'keep', kind: 'search attribute', name: k.name, detail: 'Keyword' })),
  ];
  const result: InfraResult = { target: 'temporal', action, changes };
  if (action === 'plan' || (ns && !missing.length)) return result;
  if (o.cloud) {
    throw new InfraError(
      `Temporal Cloud: namespaces and search attributes are made with tcld or the Cloud UI, not the open API; missing: ${changes.filter((c) => c.action === 'create').map((c) => `${c.kind} ${c.name}`).join(', ')} (see the README, "Temporal Cloud")`,
      'NotSupported',
    );
  }
  const created = await registerNamespace(o);
  await addSearchAttributes(o, missing);
  // Record what this run made, so that `down` removes that and nothing else. Data merges with
  // what is there: a second `up` that adds nothing leaves the record as it was.
  const data: Record<string, string> = { [DATA_ADDED_ATTRIBUTES]: [...new Set([...recordedAttributes(ns), ...missing])].join(',') };
  if (created) data[DATA_CREATED_NAMESPACE] = 'true';
  await call(`UpdateNamespace(${o.namespace})`, () => o.connection.workflowService.updateNamespace({ namespace: o.namespace, updateInfo: { data } }));
  return result;
}

function recordedAttributes(ns: DescribeNamespaceResponse | undefined): string[] {
  return (ns?.namespaceInfo?.data?.[DATA_ADDED_ATTRIBUTES] ?? '').split(',').filter(Boolean);
}

async function temporalDown(o: TemporalTargetOptions): Promise<InfraResult> {
  const ns = await describeNamespace(o);
  if (!ns || ns.namespaceInfo?.state === NAMESPACE_STATE_DELETED) return { target: 'temporal', action: 'down', changes: [{ action: 'keep', kind: 'namespace', name: o.namespace, detail: 'not there' }] };
  if (o.cloud) throw new InfraError('Temporal Cloud: remove the namespace with tcld or the Cloud UI (see the README, "Temporal Cloud")', 'NotSupported');
  const createdNs = ns.namespaceInfo?.data?.[DATA_CREATED_NAMESPACE] === 'true';
  const added = recordedAttributes(ns);
  const changes: Change[] = [];
  if (createdNs) {
    // Deleting the namespace takes its search attributes with it.
    await call(`DeleteNamespace(${o.namespace})`, async () => {
      try {
        await o.connection.operatorService.deleteNamespace({ namespace: o.namespace });
      } catch (err) {
        if (grpcCode(err) !== GrpcStatus.NOT_FOUND) throw err;
      }
    });
    changes.push({ action: 'delete', kind: 'namespace', name: o.namespace, detail: 'created by fedflow infra up' });
    for (const n of added) changes.push({ action: 'delete', kind: 'search attribute', name: n, detail: 'with its namespace' });
    return { target: 'temporal', action: 'down', changes };
  }
  const existing = await customAttributes(o);
  const toRemove = added.filter((n) => existing.has(n));
  if (toRemove.length) {
    await call(`RemoveSearchAttributes(${o.namespace}: ${toRemove.join(', ')})`, async () => {
      try {
        await o.connection.operatorService.removeSearchAttributes({ namespace: o.namespace, searchAttributes: toRemove });
      } catch (err) {
        if (grpcCode(err) !== GrpcStatus.NOT_FOUND) throw err;
      }
    });
  }
  if (added.length) await call(`UpdateNamespace(${o.namespace})`, () => o.connection.workflowService.updateNamespace({ namespace: o.namespace, updateInfo: { data: { [DATA_ADDED_ATTRIBUTES]: '' } } }));
  changes.push({ action: 'keep', kind: 'namespace', name: o.namespace, detail: 'existed before fedflow infra up' });
  for (const k of SEARCH_ATTRIBUTES) {
    const mine = added.includes(k.name);
    changes.push({ action: mine && toRemove.includes(k.name) ? 'delete' : 'keep', kind: 'search attribute', name: k.name, detail: mine ? undefined : existing.has(k.name) ? 'existed before fedflow infra up' : 'not there' });
  }
  return { target: 'temporal', action: 'down', changes };
}
