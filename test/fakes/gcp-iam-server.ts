/**
 * A loopback fake of the two Google APIs that give a site's agent its identity, in their public
 * REST shapes: IAM v1 (iam.googleapis.com) `projects.serviceAccounts` create/get/delete and
 * `projects.roles` create/get/patch/delete/undelete (custom roles are soft-deleted: a deleted role
 * still answers GET with `deleted: true`, its id cannot be created again, only undeleted), and
 * Cloud Resource Manager v1 (cloudresourcemanager.googleapis.com) `projects.getIamPolicy` /
 * `setIamPolicy` with etag concurrency (a stale etag is 409 ABORTED) and the checks the real API
 * makes on a binding (the role must exist and not be deleted; a service-account member must
 * exist). Both are served on one port, as their paths do not overlap. It checks a bearer token,
 * answers errors as `{ error: { code, message, status } }` and injects faults per `METHOD /path`.
 *
 * IAM is eventually consistent: a new service account answers its own GET at once, but other
 * services may not know it for seconds to minutes. `propagation` models that lag per consumer: for
 * `resourceManagerMs` after its creation, setIamPolicy refuses a binding of the account with the
 * same 400 INVALID_ARGUMENT "Service account ... does not exist." it gives for an account that is
 * not there; `propagated(email, 'compute')` tells the compute fake whether Compute Engine knows it.
 */
import { listenOnLoopback } from './listen';
import { createHash, randomUUID } from 'node:crypto';
import { createServer } from 'node:http';
import { FaultPlan } from './faults';
import { HttpError, readBody, sendJson } from './http-util';

const ACCOUNT_ID_RE = /^[a-z]([-a-z0-9]{4,28}[a-z0-9])$/;
const ROLE_ID_RE = /^[a-zA-Z0-9_.]{3,64}$/;
const PERMISSION_RE = /^[a-z][a-zA-Z0-9]*\.[a-zA-Z0-9]+\.[a-zA-Z0-9]+$/;

export interface ServiceAccount {
  name: string;
  projectId: string;
  uniqueId: string;
  email: string;
  displayName?: string;
  description?: string;
  etag: string;
  oauth2ClientId: string;
}

export interface Role {
  name: string;
  title?: string;
  description?: string;
  includedPermissions: string[];
  stage?: string;
  etag: string;
  deleted?: boolean;
}

export interface Binding {
  role: string;
  members: string[];
}

/** How long after its creation a new account stays unknown to each consumer (0: at once). */
export interface IamPropagation {
  resourceManagerMs: number;
  computeMs: number;
}

export interface GcpIamFake {
  endpoint: string;
  faults: FaultPlan;
  serviceAccounts: Map<string, ServiceAccount>;
  /** Mutable: tests set the lag before a run. */
  propagation: IamPropagation;
  /** Whether the account exists and `consumer` knows it yet; counts each refusal in `unpropagatedRefusals`. */
  propagated(email: string, consumer: 'resourceManager' | 'compute'): boolean;
  /** How many calls each consumer refused because an existing account had not propagated to it yet. */
  unpropagatedRefusals: { resourceManager: number; compute: number };
  roles: Map<string, Role>;
  policy: { version: number; etag: string; bindings: Binding[] };
  close(): Promise<void>;
}

const etag = () => Buffer.from(randomUUID()).toString('base64').slice(0, 12);

export async function startGcpIamFake(o: { project: string; token: string }): Promise<GcpIamFake> {
  const faults = new FaultPlan();
  const serviceAccounts = new Map<string, ServiceAccount>();
  const roles = new Map<string, Role>();
  const createdAt = new Map<string, number>();
  const propagation: IamPropagation = { resourceManagerMs: 0, computeMs: 0 };
  const unpropagatedRefusals = { resourceManager: 0, compute: 0 };
  const propagated = (email: string, consumer: 'resourceManager' | 'compute'): boolean => {
    if (!serviceAccounts.has(email)) return false;
    // An account put in the map by a test (no creation time) is an old one: known everywhere.
    if (Date.now() >= (createdAt.get(email) ?? 0) + propagation[`${consumer}Ms`]) return true;
    unpropagatedRefusals[consumer]++;
    return false;
  };
  // A project's policy is never empty: its owner is bound from the start.
  const policy = { version: 1, etag: etag(), bindings: [{ role: 'roles/owner', members: ['user:owner@example.com'] }] as Binding[] };
  const p = o.project;

  const route = (m: string, path: string, url: URL, json: () => Record<string, unknown>): [number, unknown] => {
    let mm: RegExpMatchArray | null;
    // Cloud Resource Manager v1.
    if (m === 'POST' && path === `/v1/projects/${p}:getIamPolicy`) return [200, policy];
    if (m === 'POST' && path === `/v1/projects/${p}:setIamPolicy`) {
      const next = (json().policy ?? {}) as { etag?: string; bindings?: Binding[]; version?: number };
      if (next.etag !== undefined && next.etag !== policy.etag) throw new HttpError(409, 'ABORTED', 'There were concurrent policy changes. Please retry the whole read-modify-write with exponential backoff.');
      for (const b of next.bindings ?? []) {
        if (!b.members?.length) throw new HttpError(400, 'INVALID_ARGUMENT', `Binding for role ${b.role} has no members.`);
        if (b.role.startsWith(`projects/${p}/roles/`)) {
          const r = roles.get(b.role);
          if (!r || r.deleted) throw new HttpError(400, 'INVALID_ARGUMENT', `Role (${b.role}) does not exist in the resource's hierarchy.`);
        }
        for (const mem of b.members) {
          const sa = /^serviceAccount:(.+@.+\.iam\.gserviceaccount\.com)$/.exec(mem)?.[1];
          if (sa && sa.endsWith(`@${p}.iam.gserviceaccount.com`) && !propagated(sa, 'resourceManager')) throw new HttpError(400, 'INVALID_ARGUMENT', `Service account ${sa} does not exist.`);
        }
      }
      policy.bindings = structuredClone(next.bindings ?? []);
      policy.version = next.version ?? 1;
      policy.etag = etag();
      return [200, policy];
    }
    // IAM v1: service accounts.
    if (m === 'POST' && path === `/v1/projects/${p}/serviceAccounts`) {
      const b = json() as { accountId?: string; serviceAccount?: { displayName?: string; description?: string } };
      const id = String(b.accountId ?? '');
      if (!ACCOUNT_ID_RE.test(id)) throw new HttpError(400, 'INVALID_ARGUMENT', `Invalid account ID '${id}': it must be 6-30 characters long and match [a-z]([-a-z0-9]*[a-z0-9]).`);
      const email = `${id}@${p}.iam.gserviceaccount.com`;
      if (serviceAccounts.has(email)) throw new HttpError(409, 'ALREADY_EXISTS', `Service account ${id} already exists within project projects/${p}.`);
      const uniqueId = BigInt(`0x${createHash('sha256').update(email).digest('hex').slice(0, 15)}`).toString();
      const sa: ServiceAccount = { name: `projects/${p}/serviceAccounts/${email}`, projectId: p, uniqueId, email, displayName: b.serviceAccount?.displayName, description: b.serviceAccount?.description, etag: 'MDEwMjE5MjA=', oauth2ClientId: uniqueId };
      serviceAccounts.set(email, sa);
      createdAt.set(email, Date.now());
      return [200, sa];
    }
    if ((mm = path.match(new RegExp(`^/v1/projects/(?:${p}|-)/serviceAccounts/([^/:]+)$`)))) {
      const key = decodeURIComponent(mm[1]!);
      const sa = serviceAccounts.get(key) ?? [...serviceAccounts.values()].find((s) => s.uniqueId === key);
      if (!sa) throw new HttpError(404, 'NOT_FOUND', `Unknown service account`);
      if (m === 'GET') return [200, sa];
      if (m === 'DELETE') {
        serviceAccounts.delete(sa.email);
        createdAt.delete(sa.email);
        // A deleted account's bindings stay, renamed, until removed (as IAM shows them).
        for (const b of policy.bindings) b.members = b.members.map((x) => (x === `serviceAccount:${sa.email}` ? `deleted:serviceAccount:${sa.email}?uid=${sa.uniqueId}` : x));
        return [200, {}];
      }
    }
    // IAM v1: custom roles of the project.
    if (m === 'POST' && path === `/v1/projects/${p}/roles`) {
      const b = json() as { roleId?: string; role?: Partial<Role> };
      const id = String(b.roleId ?? '');
      if (!ROLE_ID_RE.test(id)) throw new HttpError(400, 'INVALID_ARGUMENT', `The role_id (${id}) is invalid: it must match [a-zA-Z0-9_\\.]{3,64}.`);
      const name = `projects/${p}/roles/${id}`;
      const prior = roles.get(name);
      if (prior?.deleted) throw new HttpError(400, 'FAILED_PRECONDITION', `You can't create a role with role_id (${id}) where there is an existing role with that role_id in a deleted state.`);
      if (prior) throw new HttpError(409, 'ALREADY_EXISTS', `A role named ${id} in projects/${p} already exists.`);
      const perms = b.role?.includedPermissions ?? [];
      const bad = perms.filter((x) => !PERMISSION_RE.test(x));
      if (bad.length) throw new HttpError(400, 'INVALID_ARGUMENT', `Permission ${bad[0]} is not valid.`);
      const role: Role = { name, title: b.role?.title, description: b.role?.description, includedPermissions: [...perms], stage: b.role?.stage ?? 'ALPHA', etag: etag() };
      roles.set(name, role);
      return [200, role];
    }
    if ((mm = path.match(new RegExp(`^/v1/(projects/${p}/roles/[^/:]+)(:undelete)?$`)))) {
      const role = roles.get(mm[1]!);
      if (!role) throw new HttpError(404, 'NOT_FOUND', `The role named ${mm[1]} was not found.`);
      if (m === 'GET' && !mm[2]) return [200, role];
      if (m === 'POST' && mm[2]) {
        if (!role.deleted) throw new HttpError(400, 'FAILED_PRECONDITION', `The role ${role.name} is not deleted.`);
        delete role.deleted;
        role.etag = etag();
        return [200, role];
      }
      if (m === 'DELETE' && !mm[2]) {
        if (role.deleted) throw new HttpError(400, 'FAILED_PRECONDITION', `The role ${role.name} is already deleted.`);
        role.deleted = true;
        role.etag = etag();
        return [200, role];
      }
      if (m === 'PATCH' && !mm[2]) {
        if (role.deleted) throw new HttpError(400, 'FAILED_PRECONDITION', `You can't update the deleted role ${role.name}; undelete it first.`);
        const b = json() as Partial<Role>;
        if (b.etag && b.etag !== role.etag) throw new HttpError(409, 'ABORTED', 'There were concurrent policy changes. Please retry the whole read-modify-write with exponential backoff.');
        const mask = (url.searchParams.get('updateMask') ?? 'title,description,includedPermissions,stage').split(',');
        for (const f of mask) {
          if (!['title', 'description', 'includedPermissions', 'stage'].includes(f)) throw new HttpError(400, 'INVALID_ARGUMENT', `Invalid update mask field: ${f}`);
          (role as unknown as Record<string, unknown>)[f] = (b as Record<string, unknown>)[f];
        }
        role.etag = etag();
        return [200, role];
      }
    }
    throw new HttpError(404, 'NOT_FOUND', `The fake has no route for ${m} ${path}`);
  };

  const server = createServer((req, res) => {
    void (async () => {
      const url = new URL(req.url ?? '/', 'http://fake');
      const body = await readBody(req);
      const fault = faults.take(`${req.method} ${url.pathname}`);
      try {
        if (fault?.kind === 'auth') throw new HttpError(403, 'PERMISSION_DENIED', `Permission denied on resource (or it may not exist): ${url.pathname}`);
        if (fault?.kind === 'unavailable') throw new HttpError(503, 'UNAVAILABLE', 'The service is currently unavailable.');
        if (req.headers.authorization !== `Bearer ${o.token}`) throw new HttpError(401, 'UNAUTHENTICATED', 'Request had invalid authentication credentials. Expected OAuth 2 access token.');
        const [status, out] = route(req.method ?? 'GET', url.pathname, url, () => (body ? (JSON.parse(body) as Record<string, unknown>) : {}));
        sendJson(res, status, out);
      } catch (err) {
        if (err instanceof HttpError) sendJson(res, err.status, { error: { code: err.status, message: err.message, status: err.code } });
        else sendJson(res, 500, { error: { code: 500, message: `fake crashed: ${(err as Error).message}`, status: 'INTERNAL' } });
      }
    })();
  });
  const { endpoint, close } = await listenOnLoopback(server);
  return { endpoint, faults, serviceAccounts, propagation, propagated, unpropagatedRefusals, roles, policy, close };
}
