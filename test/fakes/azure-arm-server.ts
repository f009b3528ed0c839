/**
 * A loopback HTTPS fake of Azure Resource Manager's Microsoft.Compute provider, enough for the
 * azure adapter: virtualMachines PUT/GET(+instanceView)/PATCH/DELETE and start/powerOff/deallocate,
 * disks GET/PATCH, snapshots PUT/GET, location usages, and long-running operations answered with
 * `Azure-AsyncOperation` + `Location` headers and an operation-status resource. Every request must
 * carry the expected `api-version` and a known bearer token (else 400 / 401, as ARM answers);
 * faults are injected per request key `METHOD /path`.
 *
 * For infra/ it also serves Microsoft.Resources/deployments at resource-group scope: PUT runs
 * the template (expressions evaluated by ./arm-template.ts, resources in dependsOn order, VMs
 * through the same rules as a direct PUT) and answers Succeeded or Failed with ARM's error shape,
 * whatIf compares the template with what exists, GET/DELETE, deploymentOperations list; and
 * GET/DELETE of the network, identity and authorization resources a deployment made.
 */
import { listenOnLoopback } from './listen';
import { randomUUID } from 'node:crypto';
import { createServer, type Server } from 'node:https';
import type { IncomingMessage, ServerResponse } from 'node:http';
import { FaultPlan } from './faults';
import { HttpError, delay, readBody, sendJson } from './http-util';
import type { TestCa } from './test-ca';
import { armResourceId, evaluate, TemplateError, type ArmScope } from './arm-template';

/** api-versions the fake accepts for deployments and for the resources a template makes. */
export const AZURE_DEPLOYMENT_API_VERSION = '2026-06-01';
const GENERIC_API_VERSIONS: Record<string, string[]> = {
  'microsoft.network/networksecuritygroups': ['2024-05-01'],
  'microsoft.network/virtualnetworks': ['2024-05-01'],
  'microsoft.network/publicipaddresses': ['2024-05-01'],
  'microsoft.network/networkinterfaces': ['2024-05-01'],
  'microsoft.managedidentity/userassignedidentities': ['2023-01-31'],
  'microsoft.authorization/roledefinitions': ['2022-04-01'],
  'microsoft.authorization/roleassignments': ['2022-04-01'],
  'microsoft.compute/virtualmachines': ['2024-07-01'],
};
const CIDR_RE = /^\d+\.\d+\.\d+\.\d+\/\d+$/;

interface GenericResource {
  id: string;
  type: string;
  name: string;
  location?: string;
  tags: Record<string, string>;
  properties: Record<string, unknown>;
  sku?: unknown;
}
interface DeploymentRecord {
  name: string;
  provisioningState: 'Succeeded' | 'Failed';
  outputResources: string[];
  outputs: Record<string, { type: string; value: unknown }>;
  error?: { code: string; message: string; details: { code: string; message: string; target?: string }[] };
  operations: { id: string; properties: Record<string, unknown> }[];
  timestamp: string;
}

export const AZURE_FAKE_TOKEN = 'fake-arm-access-token';
/** The api-versions @azure/arm-compute 24.1.0 sends; another version is refused like ARM does. */
export const AZURE_API_VERSIONS = { compute: '2026-03-01', disk: '2025-01-02' } as const;
export const AZURE_VM_SIZES = ['Standard_B1s', 'Standard_B2s', 'Standard_D2s_v5'];
const NAME_RE = /^[A-Za-z0-9]([A-Za-z0-9-]{0,62}[A-Za-z0-9])?$/;

type Power = 'starting' | 'running' | 'stopping' | 'stopped' | 'deallocating' | 'deallocated';

interface Vm {
  name: string;
  location: string;
  tags: Record<string, string>;
  properties: Record<string, unknown>;
  provisioningState: 'Creating' | 'Updating' | 'Succeeded' | 'Deleting';
  power: Power;
  customData?: string;
}

interface Op {
  id: string;
  family: 'operations' | 'DiskOperations';
  status: 'InProgress' | 'Succeeded' | 'Failed';
  doneAt: number;
  apply: () => void;
  startTime: string;
}

export interface AzureArmFake {
  endpoint: string;
  faults: FaultPlan;
  vms: Map<string, Vm>;
  /** Resources deployments made, other than VMs, by lower-cased id. */
  resources: Map<string, GenericResource>;
  deployments: Map<string, DeploymentRecord>;
  close(): Promise<void>;
}

export interface AzureArmFakeOptions {
  tls: TestCa;
  subscriptionId: string;
  resourceGroup: string;
  location: string;
  /** How long an LRO stays InProgress. */
  lroDelayMs?: number;
  vmQuota?: number;
  /** Real subscriptions do not always list a virtualMachines usage; false leaves it out. */
  reportVmUsage?: boolean;
}

export async function startAzureArmFake(o: AzureArmFakeOptions): Promise<AzureArmFake> {
  const faults = new FaultPlan();
  const lroDelayMs = o.lroDelayMs ?? 100;
  const vms = new Map<string, Vm>();
  const disks = new Map<string, { name: string; tags: Record<string, string>; sizeGb: number }>();
  const snapshots = new Map<string, Record<string, unknown>>();
  const ops = new Map<string, Op>();
  const rgBase = `/subscriptions/${o.subscriptionId}/resourceGroups/${o.resourceGroup}/providers/Microsoft.Compute`;
  const locBase = `/subscriptions/${o.subscriptionId}/providers/Microsoft.Compute/locations/${o.location}`;
  let origin = '';
  const resources = new Map<string, GenericResource>();
  const deployments = new Map<string, DeploymentRecord>();
  const rgId = `/subscriptions/${o.subscriptionId}/resourceGroups/${o.resourceGroup}`;
  const vmIdOf = (name: string) => `${rgBase}/virtualMachines/${name}`;
  const armScope = (): ArmScope => ({
    subscriptionId: o.subscriptionId,
    resourceGroup: o.resourceGroup,
    location: o.location,
    lookup: (id) => resources.get(id)?.properties,
  });
  const exists = (id: string) => {
    const l = id.toLowerCase();
    if (resources.has(l)) return true;
    const vm = /\/providers\/microsoft\.compute\/virtualmachines\/([^/]+)$/.exec(l);
    return !!vm && vms.has(vm[1]!);
  };
  const subnetExists = (id: string) => {
    const m = /^(.*\/virtualnetworks\/[^/]+)\/subnets\/([^/]+)$/.exec(id.toLowerCase());
    const vnet = m && resources.get(m[1]!);
    return !!vnet && ((vnet.properties.subnets ?? []) as { name: string }[]).some((sn) => sn.name.toLowerCase() === m![2]);
  };

  const settle = () => {
    const now = Date.now();
    for (const op of ops.values()) {
      if (op.status === 'InProgress' && now >= op.doneAt) {
        op.apply();
        op.status = 'Succeeded';
      }
    }
  };

  /** Starts an LRO and returns the headers ARM sends with a 201/202. */
  const startOp = (family: Op['family'], apply: () => void): Record<string, string> => {
    const op: Op = { id: randomUUID(), family, status: 'InProgress', doneAt: Date.now() + lroDelayMs, apply, startTime: new Date().toISOString() };
    ops.set(op.id, op);
    const v = family === 'operations' ? AZURE_API_VERSIONS.compute : AZURE_API_VERSIONS.disk;
    return {
      'Azure-AsyncOperation': `${origin}${locBase}/${family}/${op.id}?api-version=${v}`,
      Location: `${origin}${locBase}/${family}/${op.id}?monitor=true&api-version=${v}`,
      'Retry-After': '0',
    };
  };

  const notFound = (type: string, name: string) =>
    new HttpError(404, 'ResourceNotFound', `The Resource 'Microsoft.Compute/${type}/${name}' under resource group '${o.resourceGroup}' was not found. For more details please go to https://aka.ms/ARMResourceNotFoundFix`);

  const vmJson = (vm: Vm, expand: boolean) => ({
    id: `${rgBase}/virtualMachines/${vm.name}`,
    name: vm.name,
    type: 'Microsoft.Compute/virtualMachines',
    location: vm.location,
    tags: vm.tags,
    properties: {
      ...vm.properties,
      provisioningState: vm.provisioningState,
      ...(expand
        ? {
            instanceView: {
              statuses: [
                { code: `ProvisioningState/${vm.provisioningState.toLowerCase()}`, level: 'Info', displayStatus: vm.provisioningState },
                ...(vm.provisioningState === 'Creating' ? [] : [{ code: `PowerState/${vm.power}`, level: 'Info', displayStatus: `VM ${vm.power}` }]),
              ],
            },
          }
        : {}),
    },
  });

  const diskJson = (d: { name: string; tags: Record<string, string>; sizeGb: number }) => ({
    id: `${rgBase}/disks/${d.name}`,
    name: d.name,
    type: 'Microsoft.Compute/disks',
    location: o.location,
    tags: d.tags,
    properties: { diskSizeGB: d.sizeGb, diskSizeBytes: d.sizeGb * 1024 ** 3, provisioningState: 'Succeeded', diskState: 'Attached' },
  });

  const putVm = (name: string, body: Record<string, unknown>): [number, unknown, Record<string, string>?] => {
    if (!NAME_RE.test(name)) throw new HttpError(400, 'InvalidResourceName', `The resource name '${name}' is invalid. It must be 1-64 letters, digits or dashes.`);
    const props = (body.properties ?? {}) as Record<string, Record<string, unknown> | undefined>;
    if (body.location !== o.location) throw new HttpError(400, 'InvalidParameter', `The location '${String(body.location)}' is not valid for this fake; use '${o.location}'.`);
    const size = String(props.hardwareProfile?.vmSize ?? '');
    if (!AZURE_VM_SIZES.includes(size)) {
      throw new HttpError(400, 'InvalidParameter', `The value '${size}' provided for the VM size is not valid. Valid sizes in ${o.location}: ${AZURE_VM_SIZES.join(', ')}. Target: 'hardwareProfile.vmSize'.`);
    }
    const storage = props.storageProfile as { imageReference?: unknown; osDisk?: { name?: string } } | undefined;
    if (!storage?.imageReference) throw new HttpError(400, 'InvalidParameter', "Required parameter 'storageProfile.imageReference' is missing (null).");
    const net = props.networkProfile as { networkInterfaces?: unknown[]; networkInterfaceConfigurations?: unknown[] } | undefined;
    if (!net?.networkInterfaces?.length && !net?.networkInterfaceConfigurations?.length) {
      throw new HttpError(400, 'InvalidParameter', "Required parameter 'networkProfile.networkInterfaces' or 'networkProfile.networkInterfaceConfigurations' is missing.");
    }
    const osProfile = (props.osProfile ?? {}) as Record<string, unknown>;
    const customData = osProfile.customData as string | undefined;
    if (customData !== undefined && (!/^[A-Za-z0-9+/]*={0,2}$/.test(customData) || customData.length % 4 !== 0)) {
      throw new HttpError(400, 'InvalidParameter', "The value of parameter 'osProfile.customData' is invalid: it must be base64 encoded.");
    }
    const existing = vms.get(name.toLowerCase());
    if (existing) {
      // ARM's PUT is idempotent by name: the same VM is updated, no second one appears.
      existing.tags = (body.tags ?? existing.tags) as Record<string, string>;
      return [200, vmJson(existing, false)];
    }
    if (o.vmQuota !== undefined && vms.size >= o.vmQuota) {
      throw new HttpError(409, 'OperationNotAllowed', `Operation could not be completed as it results in exceeding approved Total Regional Cores quota. Location: ${o.location}, Current Limit: ${o.vmQuota * 2}.`);
    }
    const { customData: _hidden, ...shownOs } = osProfile;
    const diskName = storage.osDisk?.name ?? `${name}_OsDisk_1`;
    const vm: Vm = {
      name,
      location: o.location,
      tags: (body.tags ?? {}) as Record<string, string>,
      properties: {
        vmId: randomUUID(),
        hardwareProfile: props.hardwareProfile,
        storageProfile: { ...storage, osDisk: { ...storage.osDisk, name: diskName, managedDisk: { id: `${rgBase}/disks/${diskName}` } } },
        osProfile: shownOs,
        networkProfile: net,
      },
      provisioningState: 'Creating',
      power: 'starting',
      ...(customData !== undefined ? { customData } : {}),
    };
    vms.set(name.toLowerCase(), vm);
    disks.set(diskName.toLowerCase(), { name: diskName, tags: {}, sizeGb: 30 });
    const headers = startOp('operations', () => {
      vm.provisioningState = 'Succeeded';
      vm.power = 'running';
    });
    return [201, vmJson(vm, false), headers];
  };

  /** Checks what a resource of a template needs to exist first, as ARM's providers do. */
  const validateGeneric = (r: GenericResource) => {
    const t = r.type.toLowerCase();
    const props = r.properties;
    if (t === 'microsoft.network/networksecuritygroups') {
      for (const rule of (props.securityRules ?? []) as { name: string; properties: Record<string, unknown> }[]) {
        if (!CIDR_RE.test(String(rule.properties.sourceAddressPrefix))) throw new HttpError(400, 'SecurityRuleInvalidAddressPrefix', `Security rule ${rule.name} has invalid Address prefix '${String(rule.properties.sourceAddressPrefix)}'.`);
      }
    }
    if (t === 'microsoft.network/virtualnetworks') {
      for (const sn of (props.subnets ?? []) as { name: string; properties: { networkSecurityGroup?: { id: string } } }[]) {
        if (sn.properties.networkSecurityGroup && !exists(sn.properties.networkSecurityGroup.id)) throw new HttpError(404, 'InvalidResourceReference', `Resource ${sn.properties.networkSecurityGroup.id} referenced by resource ${r.id} was not found.`);
      }
    }
    if (t === 'microsoft.network/networkinterfaces') {
      for (const ipc of (props.ipConfigurations ?? []) as { properties: { subnet?: { id: string }; publicIPAddress?: { id: string } } }[]) {
        if (!ipc.properties.subnet || !subnetExists(ipc.properties.subnet.id)) throw new HttpError(404, 'InvalidResourceReference', `Resource ${ipc.properties.subnet?.id ?? '(no subnet)'} referenced by resource ${r.id} was not found.`);
        if (ipc.properties.publicIPAddress && !exists(ipc.properties.publicIPAddress.id)) throw new HttpError(404, 'InvalidResourceReference', `Resource ${ipc.properties.publicIPAddress.id} referenced by resource ${r.id} was not found.`);
      }
    }
    if (t === 'microsoft.authorization/roleassignments') {
      if (!exists(String(props.roleDefinitionId))) throw new HttpError(400, 'RoleDefinitionDoesNotExist', `The specified role definition with ID '${String(props.roleDefinitionId)}' does not exist.`);
      if (!props.principalId) throw new HttpError(400, 'InvalidPrincipalId', 'A valid principal ID must be provided for role assignment.');
    }
  };

  /** Evaluates one template resource: its id and body. */
  const evalResource = (raw: Record<string, unknown>) => {
    const scope = armScope();
    const type = String(evaluate(raw.type, scope));
    const name = String(evaluate(raw.name, scope));
    const id = armResourceId(scope, type, name.split('/'));
    return { type, name, id, body: evaluate(raw, scope) as Record<string, unknown> };
  };

  /** Runs a deployment: each resource once its dependsOn exist; the first failure stops it (ARM keeps what it made). */
  const runDeployment = (name: string, template: Record<string, unknown>): DeploymentRecord => {
    const pending = [...((template.resources ?? []) as Record<string, unknown>[])];
    const rec: DeploymentRecord = { name, provisioningState: 'Succeeded', outputResources: [], outputs: {}, operations: [], timestamp: new Date().toISOString() };
    const done = new Set<string>();
    while (pending.length) {
      const idx = pending.findIndex((r) => ((r.dependsOn ?? []) as string[]).every((d) => done.has(String(evaluate(d, armScope())).toLowerCase())));
      if (idx < 0) throw new HttpError(400, 'InvalidTemplate', `Deployment template validation failed: circular or missing dependsOn among ${pending.map((r) => String(r.name)).join(', ')}.`);
      const raw = pending.splice(idx, 1)[0]!;
      let target = { id: '', resourceType: String(raw.type), resourceName: String(raw.name) };
      try {
        const r = evalResource(raw);
        target = { id: r.id, resourceType: r.type, resourceName: r.name };
        if (r.type === 'Microsoft.Compute/virtualMachines') {
          putVm(r.name, { location: r.body.location, tags: r.body.tags, properties: r.body.properties });
        } else {
          const prior = resources.get(r.id.toLowerCase());
          const res: GenericResource = { id: r.id, type: r.type, name: r.name, location: r.body.location as string | undefined, tags: (r.body.tags ?? {}) as Record<string, string>, properties: (r.body.properties ?? {}) as Record<string, unknown>, sku: r.body.sku };
          if (r.type === 'Microsoft.ManagedIdentity/userAssignedIdentities') res.properties = { ...res.properties, principalId: prior?.properties.principalId ?? randomUUID(), clientId: prior?.properties.clientId ?? randomUUID(), tenantId: '00000000-0000-4000-8000-0000000000aa' };
          validateGeneric(res);
          resources.set(r.id.toLowerCase(), res);
        }
        done.add(r.id.toLowerCase());
        rec.outputResources.push(r.id);
        rec.operations.push({ id: randomUUID(), properties: { provisioningOperation: 'Create', provisioningState: 'Succeeded', targetResource: target, statusCode: 'OK' } });
      } catch (err) {
        const e = err instanceof HttpError ? { code: err.code, message: err.message } : err instanceof TemplateError ? { code: 'InvalidTemplate', message: err.message } : { code: 'InternalServerError', message: String(err) };
        rec.operations.push({ id: randomUUID(), properties: { provisioningOperation: 'Create', provisioningState: 'Failed', targetResource: target, statusCode: 'BadRequest', statusMessage: { status: 'Failed', error: e } } });
        rec.provisioningState = 'Failed';
        rec.error = { code: 'DeploymentFailed', message: `At least one resource deployment operation failed. Please list deployment operations for details.`, details: [{ ...e, target: target.id || undefined }] };
        return rec;
      }
    }
    for (const [k, v] of Object.entries((template.outputs ?? {}) as Record<string, { type: string; value: unknown }>)) rec.outputs[k] = { type: v.type, value: evaluate(v.value, armScope()) };
    return rec;
  };

  /** what-if: the template against what exists, without changing anything. */
  const whatIf = (template: Record<string, unknown>) => {
    const changes: Record<string, unknown>[] = [];
    for (const raw of (template.resources ?? []) as Record<string, unknown>[]) {
      // reference() to a resource that does not exist yet is unknown before the deployment, as in ARM's what-if.
      const scope = { ...armScope(), lookup: (id: string) => resources.get(id)?.properties ?? { principalId: '[unknown]' } };
      const type = String(evaluate(raw.type, scope));
      const id = armResourceId(scope, type, String(evaluate(raw.name, scope)).split('/'));
      const after = evaluate(raw, scope) as Record<string, unknown>;
      let changeType = 'Create';
      if (type === 'Microsoft.Compute/virtualMachines') {
        const vm = vms.get(String(after.name).toLowerCase());
        if (vm) {
          const props = after.properties as { hardwareProfile?: { vmSize?: string }; osProfile?: { customData?: string } };
          const same = (vm.properties.hardwareProfile as { vmSize?: string }).vmSize === props.hardwareProfile?.vmSize && vm.customData === props.osProfile?.customData && JSON.stringify(vm.tags) === JSON.stringify(after.tags ?? {});
          changeType = same ? 'NoChange' : 'Modify';
        }
      } else {
        const cur = resources.get(id.toLowerCase());
        if (cur) {
          const want = { ...((after.properties ?? {}) as Record<string, unknown>) };
          const have = { ...cur.properties };
          if (type === 'Microsoft.ManagedIdentity/userAssignedIdentities') for (const k of ['principalId', 'clientId', 'tenantId']) delete have[k];
          changeType = JSON.stringify(have) === JSON.stringify(want) && JSON.stringify(cur.tags) === JSON.stringify(after.tags ?? {}) ? 'NoChange' : 'Modify';
        }
      }
      changes.push({ resourceId: id, changeType, after });
    }
    return { status: 'Succeeded', properties: { changes } };
  };

  const deploymentJson = (d: DeploymentRecord) => ({
    id: `${rgId}/providers/Microsoft.Resources/deployments/${d.name}`,
    name: d.name,
    type: 'Microsoft.Resources/deployments',
    properties: {
      provisioningState: d.provisioningState,
      mode: 'Incremental',
      timestamp: d.timestamp,
      outputResources: d.outputResources.map((id) => ({ id })),
      outputs: d.outputs,
      ...(d.error ? { error: d.error } : {}),
    },
  });

  /** Deployments and template-made resources; undefined when the path is neither. */
  const deploymentsRoute = (m: string, p: string, url: URL, json: () => Record<string, unknown>): [number, unknown, Record<string, string>?] | undefined => {
    // The SDK lists deployment operations at .../resourcegroups/{rg}/deployments/{name}/operations
    // (no provider segment), which ARM accepts as the same resource.
    const lp = p.toLowerCase().replace(`${rgId}/deployments/`.toLowerCase(), `${rgId}/providers/Microsoft.Resources/deployments/`.toLowerCase());
    const depBase = `${rgId}/providers/Microsoft.Resources/deployments/`.toLowerCase();
    const got = url.searchParams.get('api-version');
    if (lp.startsWith(depBase)) {
      if (got !== AZURE_DEPLOYMENT_API_VERSION) throw new HttpError(400, 'InvalidApiVersionParameter', `The api-version '${got ?? ''}' is invalid. The supported versions are '${AZURE_DEPLOYMENT_API_VERSION}'.`);
      const rest = p.slice(p.toLowerCase().indexOf('/deployments/') + '/deployments/'.length).split('/');
      const name = decodeURIComponent(rest[0]!);
      if (m === 'POST' && rest[1] === 'whatIf') {
        const b = json() as { properties?: { template?: Record<string, unknown>; mode?: string } };
        if (!b.properties?.template) throw new HttpError(400, 'InvalidRequestContent', 'The request content was invalid: properties.template is required.');
        try {
          return [200, whatIf(b.properties.template)];
        } catch (err) {
          if (err instanceof TemplateError) throw new HttpError(400, 'InvalidTemplate', err.message);
          throw err;
        }
      }
      if (m === 'GET' && rest[1] === 'operations') {
        const d = deployments.get(name.toLowerCase());
        if (!d) throw new HttpError(404, 'DeploymentNotFound', `Deployment '${name}' could not be found.`);
        return [200, { value: d.operations.map((op) => ({ id: `${rgId}/providers/Microsoft.Resources/deployments/${d.name}/operations/${op.id}`, operationId: op.id, properties: op.properties })) }];
      }
      if (rest.length !== 1) return undefined;
      if (m === 'PUT') {
        const b = json() as { properties?: { template?: Record<string, unknown>; mode?: string } };
        if (!b.properties?.template) throw new HttpError(400, 'InvalidRequestContent', 'The request content was invalid: properties.template is required.');
        if (b.properties.mode !== 'Incremental') throw new HttpError(400, 'InvalidDeploymentMode', `The fake runs Incremental deployments only, not '${b.properties.mode ?? ''}'.`);
        const rec = runDeployment(name, b.properties.template);
        deployments.set(name.toLowerCase(), rec);
        return [200, deploymentJson(rec)];
      }
      const d = deployments.get(name.toLowerCase());
      if (m === 'GET') {
        if (!d) throw new HttpError(404, 'DeploymentNotFound', `Deployment '${name}' could not be found.`);
        return [200, deploymentJson(d)];
      }
      if (m === 'DELETE') {
        // Deleting a deployment removes its record only; ARM never deletes resources with it.
        deployments.delete(name.toLowerCase());
        return [d ? 200 : 204, undefined];
      }
      return undefined;
    }
    const gm = /^\/subscriptions\/[^/]+\/resourcegroups\/[^/]+\/providers\/(microsoft\.(?:network|managedidentity|authorization)\/[^/]+)\/[^/]+$/.exec(lp);
    if (gm && lp.startsWith(rgId.toLowerCase())) {
      const accepted = GENERIC_API_VERSIONS[gm[1]!] ?? [];
      if (!accepted.includes(got ?? '')) throw new HttpError(400, 'InvalidApiVersionParameter', `The api-version '${got ?? ''}' is invalid. The supported versions are '${accepted.join("', '")}'.`);
      const r = resources.get(lp);
      if (m === 'GET') {
        if (!r) throw new HttpError(404, 'ResourceNotFound', `The Resource '${gm[1]}/${p.split('/').pop()}' under resource group '${o.resourceGroup}' was not found.`);
        return [200, { id: r.id, name: r.name, type: r.type, location: r.location, tags: r.tags, properties: r.properties }];
      }
      if (m === 'DELETE') {
        if (!r) return [204, undefined];
        const users = [...resources.values()].filter((x) => x !== r && JSON.stringify(x.properties).toLowerCase().includes(`"${lp}`));
        const vmUsers = [...vms.values()].filter((vm) => JSON.stringify(vm.properties).toLowerCase().includes(`"${lp}`));
        if (users.length || vmUsers.length) throw new HttpError(400, 'InUseResourceCannotBeDeleted', `Resource ${r.id} is in use by ${users[0]?.id ?? vmIdOf(vmUsers[0]!.name)} and cannot be deleted.`);
        resources.delete(lp);
        return [200, undefined];
      }
    }
    return undefined;
  };

  const route = async (req: IncomingMessage, url: URL, body: string): Promise<[number, unknown, Record<string, string>?]> => {
    const m = req.method ?? 'GET';
    const p = url.pathname;
    const json = () => (body ? (JSON.parse(body) as Record<string, unknown>) : {});
    let mm: RegExpMatchArray | null;
    const dep = deploymentsRoute(m, p, url, json);
    if (dep) return dep;

    const family = p.startsWith(locBase) && /\/DiskOperations\/|^.*\/(disks|snapshots)\//.test(p) ? 'disk' : p.includes('/disks/') || p.includes('/snapshots/') ? 'disk' : 'compute';
    const want = AZURE_API_VERSIONS[family];
    const got = url.searchParams.get('api-version');
    if (!got) throw new HttpError(400, 'MissingApiVersionParameter', "The api-version query parameter (?api-version=) is required for all requests.");
    if (got !== want) throw new HttpError(400, 'InvalidApiVersionParameter', `The api-version '${got}' is invalid. The supported versions are '${want}'.`);

    if (m === 'GET' && p === `${locBase}/usages`) {
      const vmUsage = { name: { value: 'virtualMachines', localizedValue: 'Virtual Machines' }, currentValue: vms.size, limit: o.vmQuota ?? 25000, unit: 'Count' };
      const cores = { name: { value: 'cores', localizedValue: 'Total Regional vCPUs' }, currentValue: vms.size * 2, limit: (o.vmQuota ?? 50) * 2, unit: 'Count' };
      return [200, { value: o.reportVmUsage === false ? [cores] : [vmUsage, cores] }];
    }
    if (m === 'GET' && (mm = p.match(/\/(operations|DiskOperations)\/([^/]+)$/)) && p.startsWith(locBase)) {
      const op = ops.get(mm[2]!);
      if (!op) throw new HttpError(404, 'NotFound', `operation '${mm[2]}' was not found`);
      if (url.searchParams.get('monitor') === 'true') {
        // The Location URL: 202 while running, then the (empty) result of the action.
        return op.status === 'InProgress' ? [202, undefined, { Location: `${origin}${p}${url.search}`, 'Retry-After': '0' }] : [200, undefined];
      }
      return [200, { name: op.id, status: op.status, startTime: op.startTime, ...(op.status !== 'InProgress' ? { endTime: new Date().toISOString() } : {}) }];
    }
    if (!p.startsWith(rgBase)) throw new HttpError(404, 'ResourceGroupNotFound', `Resource group or subscription in '${p}' could not be found (fake serves ${o.subscriptionId}/${o.resourceGroup}).`);
    const rest = p.slice(rgBase.length);

    if (m === 'GET' && rest === '/virtualMachines') return [200, { value: [...vms.values()].map((vm) => vmJson(vm, false)) }];
    if ((mm = rest.match(/^\/virtualMachines\/([^/]+)$/))) {
      const name = decodeURIComponent(mm[1]!);
      if (m === 'PUT') return putVm(name, json());
      const vm = vms.get(name.toLowerCase());
      if (m === 'DELETE') {
        if (!vm) return [204, undefined];
        vm.provisioningState = 'Deleting';
        return [202, undefined, startOp('operations', () => {
          vms.delete(name.toLowerCase());
          const d = (vm.properties.storageProfile as { osDisk?: { name?: string } }).osDisk?.name;
          if (d) disks.delete(d.toLowerCase());
        })];
      }
      if (!vm) throw notFound('virtualMachines', name);
      if (m === 'GET') return [200, vmJson(vm, url.searchParams.get('$expand') === 'instanceView')];
      if (m === 'PATCH') {
        const b = json() as { tags?: Record<string, string> };
        if (b.tags) vm.tags = { ...b.tags };
        return [200, vmJson(vm, false)];
      }
    }
    if (m === 'POST' && (mm = rest.match(/^\/virtualMachines\/([^/]+)\/(start|powerOff|deallocate)$/))) {
      const name = decodeURIComponent(mm[1]!);
      const vm = vms.get(name.toLowerCase());
      if (!vm) throw notFound('virtualMachines', name);
      if (vm.provisioningState === 'Deleting') throw new HttpError(409, 'OperationNotAllowed', `Operation '${mm[2]}' is not allowed since the VM '${name}' is marked for deletion.`);
      const [during, after]: [Power, Power] = mm[2] === 'start' ? ['starting', 'running'] : mm[2] === 'powerOff' ? ['stopping', 'stopped'] : ['deallocating', 'deallocated'];
      if (vm.power !== after) vm.power = during;
      return [202, undefined, startOp('operations', () => { vm.power = after; })];
    }
    if ((mm = rest.match(/^\/disks\/([^/]+)$/))) {
      const d = disks.get(decodeURIComponent(mm[1]!).toLowerCase());
      if (!d) throw notFound('disks', mm[1]!);
      if (m === 'GET') return [200, diskJson(d)];
      if (m === 'PATCH') {
        const b = json() as { tags?: Record<string, string> };
        if (b.tags) d.tags = { ...b.tags };
        return [200, diskJson(d)];
      }
    }
    if ((mm = rest.match(/^\/snapshots\/([^/]+)$/))) {
      const name = decodeURIComponent(mm[1]!);
      const existing = snapshots.get(name.toLowerCase());
      if (m === 'GET') {
        if (!existing) throw notFound('snapshots', name);
        return [200, existing];
      }
      if (m === 'PUT') {
        if (existing) return [200, existing];
        const b = json() as { location?: string; tags?: Record<string, string>; properties?: { creationData?: { createOption?: string; sourceResourceId?: string } } };
        const cd = b.properties?.creationData;
        if (cd?.createOption !== 'Copy' || !cd.sourceResourceId) throw new HttpError(400, 'InvalidParameter', "creationData must have createOption 'Copy' and a sourceResourceId.");
        const src = disks.get((cd.sourceResourceId.split('/').pop() ?? '').toLowerCase());
        if (!src || !cd.sourceResourceId.startsWith(`${rgBase}/disks/`)) throw new HttpError(404, 'NotFound', `Source disk '${cd.sourceResourceId}' was not found.`);
        const snap: Record<string, unknown> = {
          id: `${rgBase}/snapshots/${name}`,
          name,
          type: 'Microsoft.Compute/snapshots',
          location: b.location,
          tags: b.tags ?? {},
          properties: { creationData: cd, diskSizeGB: src.sizeGb, diskSizeBytes: src.sizeGb * 1024 ** 3, provisioningState: 'Creating', incremental: true },
        };
        snapshots.set(name.toLowerCase(), snap);
        return [201, snap, startOp('DiskOperations', () => { (snap.properties as Record<string, unknown>).provisioningState = 'Succeeded'; })];
      }
    }
    throw new HttpError(404, 'NotFound', `The fake has no route for ${m} ${p}`);
  };

  const handler = (req: IncomingMessage, res: ServerResponse) => {
    void (async () => {
      const url = new URL(req.url ?? '/', origin);
      const body = await readBody(req);
      const fault = faults.take(`${req.method} ${url.pathname}`);
      try {
        if (fault?.kind === 'slow') await delay(fault.delayMs ?? 1_000);
        // ARM's throttling answer carries Retry-After; the ms variant keeps the tests fast.
        else if (fault?.kind === 'throttle') return sendJson(res, 429, { error: { code: 'TooManyRequests', message: 'The request is being throttled as the limit has been reached for operation type - Read_30Min.' } }, { 'Retry-After': '1', 'retry-after-ms': '20' });
        else if (fault?.kind === 'unavailable') throw new HttpError(500, 'InternalServerError', 'An internal server error occurred. Please try again.');
        else if (fault?.kind === 'auth') throw new HttpError(403, 'AuthorizationFailed', `The client does not have authorization to perform action 'Microsoft.Compute/virtualMachines/read' over scope '${url.pathname}' or the scope is invalid.`);
        if (req.headers.authorization !== `Bearer ${AZURE_FAKE_TOKEN}`) throw new HttpError(401, 'InvalidAuthenticationToken', 'The access token is invalid.');
        settle();
        const [status, out, headers] = await route(req, url, body);
        if (res.destroyed) return;
        if (out === undefined) {
          res.writeHead(status, { 'content-length': '0', ...headers });
          res.end();
        } else sendJson(res, status, out, headers);
      } catch (err) {
        if (res.destroyed) return;
        if (err instanceof HttpError) sendJson(res, err.status, { error: { code: err.code, message: err.message } });
        else sendJson(res, 500, { error: { code: 'InternalServerError', message: `fake crashed: ${(err as Error).message}` } });
      }
    })();
  };

  const server: Server = createServer({ cert: o.tls.cert, key: o.tls.key }, handler);
  const { endpoint, close } = await listenOnLoopback(server, 'https');
  origin = endpoint;
  return { endpoint, faults, vms, resources, deployments, close };
}
