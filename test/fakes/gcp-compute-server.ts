/**
 * A loopback fake of the Compute Engine v1 REST API, enough for the gcp adapter: instances
 * insert/get/list/delete/start/stop/setLabels, zoneOperations get/wait, disks get/setLabels/
 * createSnapshot, snapshots get and regions get; and for infra/: networks, subnetworks and
 * firewalls (get/insert/patch/delete, global and region operations), instances setMetadata and
 * setServiceAccount (only on a stopped, TERMINATED instance, as Compute Engine asks), an instance's
 * service account checked against the IAM fake (test/fakes/gcp-iam-server.ts). An account IAM has
 * made but not yet propagated to Compute Engine is accepted by the call and fails its operation with
 * EXTERNAL_RESOURCE_NOT_FOUND "The resource '<email>' of type 'serviceAccount' was not found.", as
 * GCE reports it. It follows the public JSON shapes (operations
 * with status PENDING/RUNNING/DONE, GCE's TERMINATED for a stopped instance, error bodies with
 * `code`, `status` and `errors[].reason`), honours `requestId` idempotency, checks a bearer token,
 * and injects faults per request key `METHOD /path`.
 */
import { listenOnLoopback } from './listen';
import { randomUUID } from 'node:crypto';
import { createServer, type IncomingMessage } from 'node:http';
import { FaultPlan } from './faults';
import { HttpError, delay, readBody, sendJson } from './http-util';

export const GCP_FAKE_TOKEN = 'fake-gcp-access-token';
export const GCP_MACHINE_TYPES = ['e2-micro', 'e2-small', 'e2-medium', 'n2-standard-2'];
const NAME_RE = /^[a-z]([-a-z0-9]{0,61}[a-z0-9])?$/;
const LABEL_KEY_RE = /^[a-z][a-z0-9_-]{0,62}$/;
const LABEL_VALUE_RE = /^[a-z0-9_-]{0,63}$/;
const BASE = 'https://www.googleapis.com/compute/v1';

interface Op {
  name: string;
  id: string;
  operationType: string;
  targetLink: string;
  status: 'PENDING' | 'RUNNING' | 'DONE';
  insertTime: string;
  doneAt: number;
  apply: () => void;
  error?: { errors: { code: string; message: string }[] };
}

interface Inst {
  name: string;
  id: string;
  status: string;
  machineType: string;
  labels: Record<string, string>;
  labelFingerprint: string;
  disks: { source: string; boot: boolean; deviceName: string; autoDelete: boolean }[];
  networkInterfaces: { network: string; networkIP: string }[];
  metadata?: { items?: { key: string; value: string }[] };
  serviceAccounts?: { email: string; scopes: string[] }[];
}

interface Disk {
  name: string;
  sizeGb: string;
  sourceImage: string;
  labels: Record<string, string>;
  labelFingerprint: string;
  users: string[];
}

export interface GcpComputeFake {
  endpoint: string;
  faults: FaultPlan;
  instances: Map<string, Inst>;
  disks: Map<string, Disk>;
  networks: Map<string, Record<string, unknown>>;
  subnetworks: Map<string, Record<string, unknown>>;
  firewalls: Map<string, Record<string, unknown>>;
  close(): Promise<void>;
}

export interface GcpComputeFakeOptions {
  project: string;
  zone: string;
  /** How long an operation stays RUNNING before it is DONE. */
  opDelayMs?: number;
  instanceQuota?: number;
  /** Whether a service account exists (the IAM fake's), for an instance that names one; absent: any. */
  serviceAccountExists?: (email: string) => boolean;
  /** Whether an existing account has propagated to Compute Engine yet (the IAM fake's `propagated`); absent: at once. */
  serviceAccountPropagated?: (email: string) => boolean;
}

const fingerprint = () => Buffer.from(randomUUID()).toString('base64').slice(0, 12);

function validateLabels(labels: Record<string, string>): void {
  for (const [k, v] of Object.entries(labels)) {
    if (!LABEL_KEY_RE.test(k)) throw new HttpError(400, 'INVALID_ARGUMENT', `Invalid value for field 'labels': '${k}'. Label keys must start with a lowercase letter and contain only lowercase letters, digits, '_' and '-'.`, 'invalid');
    if (!LABEL_VALUE_RE.test(v)) throw new HttpError(400, 'INVALID_ARGUMENT', `Invalid value for field 'labels.${k}': '${v}'. Label values may contain only lowercase letters, digits, '_' and '-'.`, 'invalid');
  }
}

export async function startGcpComputeFake(o: GcpComputeFakeOptions): Promise<GcpComputeFake> {
  const faults = new FaultPlan();
  const opDelayMs = o.opDelayMs ?? 100;
  const instances = new Map<string, Inst>();
  const disks = new Map<string, Disk>();
  const snapshots = new Map<string, Record<string, unknown>>();
  const ops = new Map<string, Op>();
  const networks = new Map<string, Record<string, unknown>>();
  const subnetworks = new Map<string, Record<string, unknown>>();
  const firewalls = new Map<string, Record<string, unknown>>();
  const byRequestId = new Map<string, Op>();
  const zonePath = `projects/${o.project}/zones/${o.zone}`;
  const region = o.zone.replace(/-[a-z]$/, '');
  let seq = 0;

  const settle = () => {
    const now = Date.now();
    for (const op of ops.values()) {
      if (op.status !== 'DONE' && now >= op.doneAt) {
        op.apply();
        op.status = 'DONE';
      } else if (op.status === 'PENDING') op.status = 'RUNNING';
    }
  };

  const opJson = (op: Op) => ({
    kind: 'compute#operation',
    id: op.id,
    name: op.name,
    operationType: op.operationType,
    targetLink: op.targetLink,
    status: op.status,
    insertTime: op.insertTime,
    zone: `${BASE}/${zonePath}`,
    selfLink: `${BASE}/${zonePath}/operations/${op.name}`,
    ...(op.error ? { error: op.error } : {}),
  });

  /** Starts an operation, or returns the earlier one for a repeated requestId. */
  const startOp = (requestId: string | null, type: string, target: string, apply: () => void, delayMs = opDelayMs): Op => {
    if (requestId) {
      const prior = byRequestId.get(requestId);
      if (prior) return prior;
    }
    const op: Op = {
      name: `operation-${Date.now()}-${++seq}`,
      id: String(1_000_000 + seq),
      operationType: type,
      targetLink: target,
      status: 'PENDING',
      insertTime: new Date().toISOString(),
      doneAt: Date.now() + delayMs,
      apply,
    };
    ops.set(op.name, op);
    if (requestId) byRequestId.set(requestId, op);
    return op;
  };

  const mustInstance = (name: string): Inst => {
    const i = instances.get(name);
    if (!i) throw new HttpError(404, 'NOT_FOUND', `The resource '${zonePath}/instances/${name}' was not found`, 'notFound');
    return i;
  };
  const mustDisk = (name: string): Disk => {
    const d = disks.get(name);
    if (!d) throw new HttpError(404, 'NOT_FOUND', `The resource '${zonePath}/disks/${name}' was not found`, 'notFound');
    return d;
  };
  const instLink = (n: string) => `${BASE}/${zonePath}/instances/${n}`;

  const checkServiceAccount = (email: string, field: string) => {
    if (o.serviceAccountExists && !o.serviceAccountExists(email)) {
      throw new HttpError(400, 'INVALID_ARGUMENT', `Invalid value for field '${field}': '${email}'. The user does not have access to service account '${email}'. Ask a project owner to grant you the iam.serviceAccountUser role on the service account.`, 'invalid');
    }
  };
  const saPropagated = (email: string) => !o.serviceAccountPropagated || o.serviceAccountPropagated(email);
  const saNotFound = (email: string): Op['error'] => ({ errors: [{ code: 'EXTERNAL_RESOURCE_NOT_FOUND', message: `The resource '${email}' of type 'serviceAccount' was not found.` }] });

  const insert = (body: Record<string, unknown>, requestId: string | null): Op => {
    if (requestId && byRequestId.has(requestId)) return byRequestId.get(requestId)!;
    const name = String(body.name ?? '');
    if (!NAME_RE.test(name)) throw new HttpError(400, 'INVALID_ARGUMENT', `Invalid value for field 'resource.name': '${name}'. Must be a match of regex '(?:[a-z](?:[-a-z0-9]{0,61}[a-z0-9])?)'`, 'invalid');
    const mt = String(body.machineType ?? '');
    const mtName = mt.split('/').pop() ?? '';
    if (!GCP_MACHINE_TYPES.includes(mtName)) {
      throw new HttpError(400, 'INVALID_ARGUMENT', `Invalid value for field 'resource.machineType': '${mt}'. Machine type with name '${mtName}' does not exist in zone '${o.zone}'.`, 'invalid');
    }
    const labels = (body.labels ?? {}) as Record<string, string>;
    validateLabels(labels);
    const bootSpec = ((body.disks ?? []) as { boot?: boolean; initializeParams?: { sourceImage?: string; diskName?: string } }[]).find((d) => d.boot);
    if (!bootSpec?.initializeParams?.sourceImage) throw new HttpError(400, 'INVALID_ARGUMENT', "Invalid value for field 'resource.disks[0].initializeParams.sourceImage': ''. A boot disk with a source image is required.", 'invalid');
    if (instances.has(name)) throw new HttpError(409, 'ALREADY_EXISTS', `The resource '${zonePath}/instances/${name}' already exists`, 'alreadyExists');
    const live = [...instances.values()].length;
    if (o.instanceQuota !== undefined && live >= o.instanceQuota) throw new HttpError(403, 'PERMISSION_DENIED', `Quota 'INSTANCES' exceeded. Limit: ${o.instanceQuota} in region ${region}.`, 'quotaExceeded');
    const nic0 = (body.networkInterfaces as { network?: string; subnetwork?: string }[] | undefined)?.[0];
    if (nic0?.subnetwork) requireLink('subnetwork', nic0.subnetwork, subnetworks, 'resource.networkInterfaces[0].subnetwork');
    const sas = (body.serviceAccounts ?? []) as { email?: string; scopes?: string[] }[];
    if (sas.length > 1) throw new HttpError(400, 'INVALID_ARGUMENT', "Invalid value for field 'resource.serviceAccounts': an instance can have at most one service account.", 'invalid');
    for (const sa of sas) checkServiceAccount(String(sa.email ?? ''), 'resource.serviceAccounts[0].email');
    const unknownSa = sas.map((sa) => String(sa.email)).find((e) => !saPropagated(e));
    if (unknownSa) {
      // Compute Engine takes the call, then the operation fails; no instance or disk is made.
      const op: Op = startOp(requestId, 'insert', instLink(name), () => {
        op.error = saNotFound(unknownSa);
      });
      return op;
    }
    const diskName = bootSpec.initializeParams.diskName ?? name;
    disks.set(diskName, { name: diskName, sizeGb: '10', sourceImage: bootSpec.initializeParams.sourceImage, labels: {}, labelFingerprint: fingerprint(), users: [instLink(name)] });
    const inst: Inst = {
      name,
      id: String(5_000_000 + ++seq),
      status: 'PROVISIONING',
      machineType: `${BASE}/${zonePath}/machineTypes/${mtName}`,
      labels,
      labelFingerprint: fingerprint(),
      disks: [{ source: `${BASE}/${zonePath}/disks/${diskName}`, boot: true, deviceName: 'boot', autoDelete: true }],
      networkInterfaces: [{ network: String(nic0?.network ?? 'global/networks/default'), ...(nic0?.subnetwork ? { subnetwork: nic0.subnetwork } : {}), networkIP: `10.128.0.${seq % 250}` }],
      ...(body.tags ? { tags: body.tags } : {}),
      ...(body.metadata ? { metadata: body.metadata as Inst['metadata'] } : {}),
      ...(sas.length ? { serviceAccounts: sas.map((sa) => ({ email: String(sa.email), scopes: sa.scopes ?? [] })) } : {}),
    };
    instances.set(name, inst);
    return startOp(requestId, 'insert', instLink(name), () => {
      inst.status = 'RUNNING';
    });
  };

  const projectBase = `/compute/v1/projects/${o.project}`;
  const globalOpJson = (op: Op, scope: string) => ({ ...opJson(op), zone: undefined, ...(scope === 'global' ? {} : { region: `${BASE}/projects/${o.project}/regions/${region}` }), selfLink: `${BASE}/projects/${o.project}/${scope === 'global' ? 'global' : `regions/${region}`}/operations/${op.name}` });
  const scopeOf = new Map<string, string>();
  const startScoped = (scope: 'global' | 'region', requestId: string | null, type: string, target: string, apply: () => void): Op => {
    const op = startOp(requestId, type, target, apply);
    scopeOf.set(op.name, scope);
    return op;
  };
  const requireLink = (what: string, link: unknown, table: Map<string, unknown>, field: string): string => {
    const name = String(link ?? '').split('/').pop() ?? '';
    if (!table.has(name)) throw new HttpError(400, 'INVALID_ARGUMENT', `Invalid value for field '${field}': '${String(link ?? '')}'. The referenced ${what} resource cannot be found.`, 'invalid');
    return name;
  };
  /** A collection of global or regional VPC resources: get, insert, patch, delete, each an operation. */
  const collection = (scope: 'global' | 'region', kind: string, table: Map<string, Record<string, unknown>>, base: string, validate: (b: Record<string, unknown>, existing?: Record<string, unknown>) => void, beforeDelete: (name: string) => void = () => undefined) => {
    const link = (n: string) => `${BASE}/projects/${o.project}/${base}/${n}`;
    return (m: string, rest: string, rid: string | null, json: () => Record<string, unknown>): [number, unknown] | undefined => {
      const mm = rest.match(/^\/?([^/]*)$/);
      if (!mm) return undefined;
      const name = mm[1]!;
      if (m === 'POST' && !name) {
        if (rid && byRequestId.has(rid)) return [200, globalOpJson(byRequestId.get(rid)!, scope)];
        const b = json();
        const n = String(b.name ?? '');
        if (!NAME_RE.test(n)) throw new HttpError(400, 'INVALID_ARGUMENT', `Invalid value for field 'resource.name': '${n}'. Must be a match of regex '(?:[a-z](?:[-a-z0-9]{0,61}[a-z0-9])?)'`, 'invalid');
        if (table.has(n)) throw new HttpError(409, 'ALREADY_EXISTS', `The resource 'projects/${o.project}/${base}/${n}' already exists`, 'alreadyExists');
        validate(b);
        const item = { ...b, kind: `compute#${kind}`, id: String(7_000_000 + ++seq), selfLink: link(n), creationTimestamp: new Date().toISOString() };
        return [200, globalOpJson(startScoped(scope, rid, 'insert', link(n), () => void table.set(n, item)), scope)];
      }
      if (!name) return m === 'GET' ? [200, { kind: `compute#${kind}List`, items: [...table.values()] }] : undefined;
      const item = table.get(name);
      if (!item) throw new HttpError(404, 'NOT_FOUND', `The resource 'projects/${o.project}/${base}/${name}' was not found`, 'notFound');
      if (m === 'GET') return [200, item];
      if (m === 'PATCH') {
        const b = json();
        validate({ ...item, ...b }, item);
        return [200, globalOpJson(startScoped(scope, rid, 'patch', link(name), () => void table.set(name, { ...item, ...b, name })), scope)];
      }
      if (m === 'DELETE') {
        beforeDelete(name);
        return [200, globalOpJson(startScoped(scope, rid, 'delete', link(name), () => void table.delete(name)), scope)];
      }
      return undefined;
    };
  };
  const inUse = (what: string, name: string, users: string[]) => {
    if (users.length) throw new HttpError(400, 'RESOURCE_IN_USE_BY_ANOTHER_RESOURCE', `The ${what} resource 'projects/${o.project}/${what === 'network' ? 'global/networks' : `regions/${region}/subnetworks`}/${name}' is already being used by '${users[0]}'`, 'resourceInUseByAnotherResource');
  };
  const networksRoute = collection('global', 'network', networks, 'global/networks', (b) => {
    if (b.autoCreateSubnetworks !== false) throw new HttpError(400, 'INVALID_ARGUMENT', "Invalid value for field 'resource.autoCreateSubnetworks': the fake serves custom-mode networks only (false).", 'invalid');
  }, (name) => {
    inUse('network', name, [
      ...[...subnetworks.values()].filter((s) => String(s.network).endsWith(`/networks/${name}`)).map((s) => String(s.selfLink)),
      ...[...firewalls.values()].filter((f) => String(f.network).endsWith(`/networks/${name}`)).map((f) => String(f.selfLink)),
    ]);
  });
  const subnetworksRoute = collection('region', 'subnetwork', subnetworks, `regions/${region}/subnetworks`, (b, existing) => {
    requireLink('network', b.network, networks, 'resource.network');
    if (!/^\d+\.\d+\.\d+\.\d+\/\d+$/.test(String(b.ipCidrRange ?? ''))) throw new HttpError(400, 'INVALID_ARGUMENT', `Invalid value for field 'resource.ipCidrRange': '${String(b.ipCidrRange ?? '')}'. Invalid IPCidrRange.`, 'invalid');
    if (existing && existing.ipCidrRange !== b.ipCidrRange) throw new HttpError(400, 'INVALID_ARGUMENT', "Invalid value for field 'resource.ipCidrRange': a subnetwork's range can only be expanded with expandIpCidrRange.", 'invalid');
  }, (name) => {
    inUse('subnetwork', name, [...instances.values()].filter((i) => i.networkInterfaces.some((n) => String((n as { subnetwork?: string }).subnetwork ?? '').endsWith(`/subnetworks/${name}`))).map((i) => instLink(i.name)));
  });
  const firewallsRoute = collection('global', 'firewall', firewalls, 'global/firewalls', (b) => {
    requireLink('network', b.network, networks, 'resource.network');
    const ranges = (b.sourceRanges ?? []) as string[];
    if (!ranges.length) throw new HttpError(400, 'INVALID_ARGUMENT', "Invalid value for field 'resource.sourceRanges': an INGRESS rule needs source ranges or source tags.", 'invalid');
  });
  /** Networks, subnetworks, firewalls and their operations; undefined when the path is not one of them. */
  const vpcRoute = (m: string, p: string, url: URL, rid: string | null, json: () => Record<string, unknown>): [number, unknown] | undefined => {
    let mm: RegExpMatchArray | null;
    if ((mm = p.match(new RegExp(`^${projectBase}/global/networks(/[^/]+)?$`)))) return networksRoute(m, mm[1] ?? '', rid, json);
    if ((mm = p.match(new RegExp(`^${projectBase}/global/firewalls(/[^/]+)?$`)))) return firewallsRoute(m, mm[1] ?? '', rid, json);
    if ((mm = p.match(new RegExp(`^${projectBase}/regions/([^/]+)/subnetworks(/[^/]+)?$`)))) {
      if (mm[1] !== region) throw new HttpError(404, 'NOT_FOUND', `The fake serves region '${region}' only, not '${mm[1]}'`, 'notFound');
      return subnetworksRoute(m, mm[2] ?? '', rid, json);
    }
    if (m === 'GET' && (mm = p.match(new RegExp(`^${projectBase}/(global|regions/[^/]+)/operations/([^/]+)$`)))) {
      const op = ops.get(mm[2]!);
      if (!op || !scopeOf.has(op.name)) throw new HttpError(404, 'NOT_FOUND', `The resource '${p}' was not found`, 'notFound');
      return [200, globalOpJson(op, scopeOf.get(op.name)!)];
    }
    void url;
    return undefined;
  };

  const route = async (req: IncomingMessage, url: URL, body: string): Promise<[number, unknown]> => {
    const m = req.method ?? 'GET';
    const p = url.pathname;
    const rid = url.searchParams.get('requestId');
    const json = () => (body ? (JSON.parse(body) as Record<string, unknown>) : {});
    const prefix = `/compute/v1/${zonePath}`;
    let mm: RegExpMatchArray | null;

    if (m === 'GET' && p === `/compute/v1/projects/${o.project}/regions/${region}`) {
      const used = instances.size;
      return [200, { kind: 'compute#region', name: region, status: 'UP', quotas: [{ metric: 'CPUS', limit: 24, usage: used * 2 }, { metric: 'INSTANCES', limit: o.instanceQuota ?? 24, usage: used }] }];
    }
    if (m === 'GET' && (mm = p.match(/^\/compute\/v1\/projects\/[^/]+\/global\/snapshots\/([^/]+)$/))) {
      const s = snapshots.get(mm[1]!);
      if (!s) throw new HttpError(404, 'NOT_FOUND', `The resource 'projects/${o.project}/global/snapshots/${mm[1]}' was not found`, 'notFound');
      return [200, s];
    }
    const vpc = vpcRoute(m, p, url, rid, json);
    if (vpc) return vpc;
    if (!p.startsWith(prefix)) throw new HttpError(404, 'NOT_FOUND', `The resource '${p}' was not found (fake serves project '${o.project}', zone '${o.zone}')`, 'notFound');
    const rest = p.slice(prefix.length);

    if (m === 'POST' && rest === '/instances') return [200, opJson(insert(json(), rid))];
    if (m === 'GET' && rest === '/instances') {
      const filter = url.searchParams.get('filter');
      let items = [...instances.values()];
      if (filter) {
        const f = filter.match(/^labels\.([a-z0-9_-]+)\s*=\s*"?([^"]*)"?$/);
        if (!f) throw new HttpError(400, 'INVALID_ARGUMENT', `Invalid value for field 'filter': '${filter}'. The fake understands labels.KEY = "VALUE" only.`, 'invalid');
        items = items.filter((i) => i.labels[f[1]!] === f[2]);
      }
      return [200, { kind: 'compute#instanceList', items: items.map((i) => ({ kind: 'compute#instance', ...i })) }];
    }
    if ((mm = rest.match(/^\/instances\/([^/]+)$/))) {
      const inst = mustInstance(mm[1]!);
      if (m === 'GET') return [200, { kind: 'compute#instance', ...inst, selfLink: instLink(inst.name) }];
      if (m === 'DELETE') {
        inst.status = 'STOPPING';
        return [200, opJson(startOp(rid, 'delete', instLink(inst.name), () => {
          instances.delete(inst.name);
          for (const d of inst.disks) if (d.autoDelete) disks.delete(d.source.split('/').pop()!);
        }))];
      }
    }
    if (m === 'POST' && (mm = rest.match(/^\/instances\/([^/]+)\/setMetadata$/))) {
      const inst = mustInstance(mm[1]!);
      const b = json() as { items?: { key: string; value: string }[]; fingerprint?: string };
      if (rid && byRequestId.has(rid)) return [200, opJson(byRequestId.get(rid)!)];
      const current = inst.metadata as { fingerprint?: string } | undefined;
      if ((current?.fingerprint ?? '') !== (b.fingerprint ?? '')) throw new HttpError(412, 'FAILED_PRECONDITION', `Supplied fingerprint does not match current metadata fingerprint (sent '${b.fingerprint ?? ''}')`, 'conditionNotMet');
      return [200, opJson(startOp(rid, 'setMetadata', instLink(inst.name), () => {
        inst.metadata = { items: b.items ?? [], fingerprint: fingerprint() } as Inst['metadata'];
      }, 0))];
    }
    if (m === 'POST' && (mm = rest.match(/^\/instances\/([^/]+)\/setServiceAccount$/))) {
      const inst = mustInstance(mm[1]!);
      if (rid && byRequestId.has(rid)) return [200, opJson(byRequestId.get(rid)!)];
      const b = json() as { email?: string; scopes?: string[] };
      // The account of a running instance is in its metadata server's tokens: GCE changes it only while stopped.
      // (The condition is GCE's; the wording of this message is the fake's own.)
      if (inst.status !== 'TERMINATED') throw new HttpError(400, 'FAILED_PRECONDITION', `The instance '${zonePath}/instances/${inst.name}' is ${inst.status}: its service account can only be changed while it is stopped (TERMINATED).`, 'resourceNotReady');
      const email = String(b.email ?? '');
      if (!email) throw new HttpError(400, 'INVALID_ARGUMENT', "Invalid value for field 'resource.email': ''. A service account email is required.", 'invalid');
      checkServiceAccount(email, 'resource.email');
      const op: Op = startOp(rid, 'setServiceAccount', instLink(inst.name), () => {
        if (!saPropagated(email)) op.error = saNotFound(email);
        else inst.serviceAccounts = [{ email, scopes: b.scopes ?? [] }];
      });
      return [200, opJson(op)];
    }
    if (m === 'POST' && (mm = rest.match(/^\/instances\/([^/]+)\/(start|stop|setLabels)$/))) {
      const inst = mustInstance(mm[1]!);
      const verb = mm[2]!;
      if (verb === 'stop') {
        if (inst.status !== 'TERMINATED') inst.status = 'STOPPING';
        return [200, opJson(startOp(rid, 'stop', instLink(inst.name), () => { inst.status = 'TERMINATED'; }))];
      }
      if (verb === 'start') {
        if (inst.status !== 'RUNNING') inst.status = 'STAGING';
        return [200, opJson(startOp(rid, 'start', instLink(inst.name), () => { inst.status = 'RUNNING'; }))];
      }
      const b = json() as { labels?: Record<string, string>; labelFingerprint?: string };
      if (rid && byRequestId.has(rid)) return [200, opJson(byRequestId.get(rid)!)];
      if (b.labelFingerprint !== inst.labelFingerprint) {
        throw new HttpError(412, 'FAILED_PRECONDITION', `Labels fingerprint either invalid or resource labels have changed (sent '${b.labelFingerprint ?? ''}', current '${inst.labelFingerprint}')`, 'conditionNotMet');
      }
      validateLabels(b.labels ?? {});
      inst.labels = { ...(b.labels ?? {}) };
      inst.labelFingerprint = fingerprint();
      return [200, opJson(startOp(rid, 'setLabels', instLink(inst.name), () => undefined, 0))];
    }
    if ((mm = rest.match(/^\/disks\/([^/]+)(\/setLabels|\/createSnapshot)?$/))) {
      const disk = mustDisk(mm[1]!);
      if (m === 'GET' && !mm[2]) return [200, { kind: 'compute#disk', ...disk }];
      if (m === 'POST' && mm[2] === '/setLabels') {
        const b = json() as { labels?: Record<string, string>; labelFingerprint?: string };
        if (rid && byRequestId.has(rid)) return [200, opJson(byRequestId.get(rid)!)];
        if (b.labelFingerprint !== disk.labelFingerprint) throw new HttpError(412, 'FAILED_PRECONDITION', 'Labels fingerprint either invalid or resource labels have changed', 'conditionNotMet');
        validateLabels(b.labels ?? {});
        disk.labels = { ...(b.labels ?? {}) };
        disk.labelFingerprint = fingerprint();
        return [200, opJson(startOp(rid, 'setLabels', `${BASE}/${zonePath}/disks/${disk.name}`, () => undefined, 0))];
      }
      if (m === 'POST' && mm[2] === '/createSnapshot') {
        if (rid && byRequestId.has(rid)) return [200, opJson(byRequestId.get(rid)!)];
        const b = json() as { name?: string; labels?: Record<string, string> };
        const name = String(b.name ?? '');
        if (!NAME_RE.test(name)) throw new HttpError(400, 'INVALID_ARGUMENT', `Invalid value for field 'resource.name': '${name}'.`, 'invalid');
        if (snapshots.has(name)) throw new HttpError(409, 'ALREADY_EXISTS', `The resource 'projects/${o.project}/global/snapshots/${name}' already exists`, 'alreadyExists');
        validateLabels(b.labels ?? {});
        const snap: Record<string, unknown> = { kind: 'compute#snapshot', name, status: 'CREATING', sourceDisk: `${BASE}/${zonePath}/disks/${disk.name}`, diskSizeGb: disk.sizeGb, labels: b.labels ?? {} };
        snapshots.set(name, snap);
        return [200, opJson(startOp(rid, 'createSnapshot', `${BASE}/${zonePath}/disks/${disk.name}`, () => {
          snap.status = 'READY';
          snap.storageBytes = String(Number(disk.sizeGb) * 1024 ** 3);
        }))];
      }
    }
    if ((mm = rest.match(/^\/operations\/([^/]+)(\/wait)?$/))) {
      const op = ops.get(mm[1]!);
      if (!op) throw new HttpError(404, 'NOT_FOUND', `The resource '${zonePath}/operations/${mm[1]}' was not found`, 'notFound');
      if (m === 'POST' && mm[2]) {
        // Like GCE, wait returns when the operation is DONE or after a while (2 s here, not 2 min).
        const until = Date.now() + 2_000;
        while (op.status !== 'DONE' && Date.now() < until) {
          await delay(20);
          settle();
        }
      }
      if (m === 'GET' || mm[2]) return [200, opJson(op)];
    }
    throw new HttpError(404, 'NOT_FOUND', `The fake has no route for ${m} ${p}`, 'notFound');
  };

  const server = createServer((req, res) => {
    void (async () => {
      const url = new URL(req.url ?? '/', 'http://fake');
      const body = await readBody(req);
      const fault = faults.take(`${req.method} ${url.pathname}`);
      try {
        if (fault?.kind === 'slow') await delay(fault.delayMs ?? 1_000);
        else if (fault?.kind === 'throttle') throw new HttpError(429, 'RESOURCE_EXHAUSTED', 'Rate Limit Exceeded', 'rateLimitExceeded');
        else if (fault?.kind === 'unavailable') throw new HttpError(500, 'INTERNAL', 'Internal error. Please try again or contact Google Support.', 'backendError');
        else if (fault?.kind === 'auth') throw new HttpError(403, 'PERMISSION_DENIED', `Required 'compute.instances.get' permission for '${url.pathname}'`, 'forbidden');
        if (req.headers.authorization !== `Bearer ${GCP_FAKE_TOKEN}`) {
          throw new HttpError(401, 'UNAUTHENTICATED', 'Request had invalid authentication credentials. Expected OAuth 2 access token.', 'authError');
        }
        settle();
        const [status, out] = await route(req, url, body);
        settle();
        if (!res.destroyed) sendJson(res, status, out);
      } catch (err) {
        if (res.destroyed) return;
        if (err instanceof HttpError) {
          sendJson(res, err.status, { error: { code: err.status, message: err.message, status: err.code, errors: [{ message: err.message, domain: 'global', reason: err.reason ?? 'error' }] } });
        } else {
          sendJson(res, 500, { error: { code: 500, message: `fake crashed: ${(err as Error).message}`, status: 'INTERNAL' } });
        }
      }
    })();
  });
  const { endpoint, close } = await listenOnLoopback(server);
  return { endpoint, faults, instances, disks, networks, subnetworks, firewalls, close };
}
