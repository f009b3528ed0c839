/**
 * The identity of a gcp site's agent: a service account, a custom role holding exactly the
 * Compute Engine permissions of the adapter's calls (GCP_AGENT_PERMISSIONS, docs/providers.md),
 * and the project IAM binding of the one to the other; the agent's instance runs as that account.
 *
 * `@google-cloud/compute` does not reach IAM, and no IAM client package is a dependency, so these
 * are the REST calls `gcloud iam` makes (IAM v1 `projects.serviceAccounts`, `projects.roles`;
 * Cloud Resource Manager v1 `projects.getIamPolicy` / `setIamPolicy`), sent through the same
 * google-auth client the compute clients use (its `request`, which adds the token). Like the
 * compute resources they are read first and created, patched or kept; the account and the role
 * carry `fedflow-stack=<stack>` in their description, and `down` removes only what carries it.
 *
 * IAM is eventually consistent: a service account answers its own GET at once, but Resource Manager
 * and Compute Engine may not know it for seconds to a minute or more, and refuse it as not existing
 * ("Service account ... does not exist." / "The resource '...' of type 'serviceAccount' was not
 * found."). Calls that name the account this run just created are retried on that refusal with
 * bounded backoff (`untilPropagated`, about 90 s in all); if it still does not go through, the
 * run keeps the identity (marked with its stack) out of the undo, so the next `up` finds it and
 * goes on from it, instead of deleting and re-creating it and racing again.
 */
import { createHash } from 'node:crypto';
import { InfraError, type Change, type InfraAction } from '../plan';
import { GCP_AGENT_PERMISSIONS } from '../permissions';

/** What the google-auth client (OAuth2Client, JWT, Compute, ...) offers: an authorised HTTP request. */
export interface GoogleRequester {
  request<T>(opts: { url: string; method?: string; data?: unknown }): Promise<{ data: T }>;
}

export interface GcpIdentityEndpoints {
  /** Default https://iam.googleapis.com (tests: the IAM fake). */
  iam?: string;
  /** Default https://cloudresourcemanager.googleapis.com (tests: the IAM fake). */
  resourceManager?: string;
}

/** One undo step of a failing `up`: what it removes, and whether it is part of the agent's identity. */
export interface UndoStep {
  what: string;
  run: () => Promise<void>;
  identity?: boolean;
}

/** How long calls naming a just-created account are retried while IAM propagates it. */
export interface PropagationWait {
  /** The whole budget; default 90 s. */
  timeoutMs: number;
  /** The first pause; each next one doubles, up to `maxDelayMs`. */
  firstDelayMs: number;
  maxDelayMs?: number;
}
export const DEFAULT_PROPAGATION_WAIT: PropagationWait = { timeoutMs: 90_000, firstDelayMs: 2_000, maxDelayMs: 15_000 };

/** An error that is still the not-yet-propagated refusal after the whole budget. */
export class NotPropagatedError extends InfraError {
  constructor(message: string, readonly email: string, options?: { cause?: unknown }) {
    super(message, 'StackFailed', undefined, options);
  }
}

/**
 * Whether `err` is a service's refusal of `email` as unknown: Resource Manager's 400 "Service account
 * <email> does not exist.", Compute Engine's 400/404 or operation error EXTERNAL_RESOURCE_NOT_FOUND
 * "The resource '<email>' of type 'serviceAccount' was not found.". Other errors are not retried.
 */
export function isNotPropagated(err: unknown, email: string): boolean {
  const e = err as { message?: string; httpStatus?: number };
  const m = String(e?.message ?? '');
  if (e?.httpStatus !== undefined && e.httpStatus !== 400 && e.httpStatus !== 404) return false;
  return m.includes(email) && /does not exist|was not found|EXTERNAL_RESOURCE_NOT_FOUND/.test(m);
}

/**
 * Runs `fn` until it is not refused for `email` being unknown, pausing with doubling backoff, for at
 * most `wait.timeoutMs`; then throws a NotPropagatedError naming the account and the time waited.
 */
export async function untilPropagated<T>(email: string, wait: PropagationWait, fn: () => Promise<T>): Promise<T> {
  const started = Date.now();
  let pause = wait.firstDelayMs;
  for (;;) {
    try {
      return await fn();
    } catch (err) {
      if (!isNotPropagated(err, email)) throw err;
      const waited = Date.now() - started;
      if (waited + pause > wait.timeoutMs) {
        throw new NotPropagatedError(`${(err as Error).message} (the service account ${email}, created by this run, was still unknown to it after ${Math.round(waited / 1000)} s of retries: IAM had not propagated it yet)`, email, { cause: err });
      }
      await new Promise((r) => setTimeout(r, pause));
      pause = Math.min(pause * 2, wait.maxDelayMs ?? pause * 2);
    }
  }
}

/** The scope the instance's token gets; what it may do is the role's, not the scope's. */
export const CLOUD_PLATFORM_SCOPE = 'https://www.googleapis.com/auth/cloud-platform';

const marker = (stack: string) => `fedflow-stack=${stack}`;

/** The account, role and member names of one stack: deterministic, so `up` finds what it made. */
export function gcpIdentityDesired(project: string, stack: string, site: string) {
  // An account id is 6-30 characters; a stack name may be 50, so a digest of it keeps ids unique.
  const accountId = `fedflow-agent-${createHash('sha256').update(stack).digest('hex').slice(0, 12)}`;
  const email = `${accountId}@${project}.iam.gserviceaccount.com`;
  const roleId = `fedflowAgent_${stack.replace(/[^a-zA-Z0-9]/g, '_')}`.slice(0, 64);
  return {
    project,
    stack,
    accountId,
    email,
    member: `serviceAccount:${email}`,
    roleId,
    roleName: `projects/${project}/roles/${roleId}`,
    permissions: [...GCP_AGENT_PERMISSIONS],
    accountDescription: `${marker(stack)} fedflow agent of ${site}`,
    roleDescription: `${marker(stack)} the fedflow agent's Compute Engine calls (docs/infra-permissions.md)`,
  };
}
export type GcpIdentityDesired = ReturnType<typeof gcpIdentityDesired>;

interface ServiceAccount {
  email?: string;
  description?: string;
}
interface Role {
  name?: string;
  description?: string;
  includedPermissions?: string[];
  deleted?: boolean;
  etag?: string;
}
interface Policy {
  version?: number;
  etag?: string;
  bindings?: { role: string; members: string[]; condition?: unknown }[];
}

export class GcpIdentity {
  private readonly iam: string;
  private readonly crm: string;
  /** Set by `up` when it created the account: only then are its refusals as unknown waited out. */
  createdAccount = false;

  constructor(
    private readonly auth: GoogleRequester,
    private readonly d: GcpIdentityDesired,
    private readonly site: string,
    endpoints: GcpIdentityEndpoints = {},
    readonly propagation: PropagationWait = DEFAULT_PROPAGATION_WAIT,
  ) {
    this.iam = (endpoints.iam ?? 'https://iam.googleapis.com').replace(/\/$/, '');
    this.crm = (endpoints.resourceManager ?? 'https://cloudresourcemanager.googleapis.com').replace(/\/$/, '');
  }

  private async call<T>(what: string, method: string, url: string, data?: unknown): Promise<T> {
    try {
      return (await this.auth.request<T>({ url, method, ...(data !== undefined ? { data } : {}) })).data;
    } catch (err) {
      throw this.error(err, what);
    }
  }

  private error(err: unknown, what: string): InfraError {
    const e = err as { status?: number; response?: { status?: number; data?: { error?: { message?: string; status?: string } } }; message?: string };
    const status = e.response?.status ?? e.status;
    const body = e.response?.data?.error;
    const detail = body?.message ? `${status} ${body.status ?? ''}: ${body.message}`.replace(' :', ':') : (e.message ?? String(err));
    return Object.assign(new InfraError(`gcp ${what} for site '${this.site}' failed: ${detail}`, 'ProviderError', undefined, { cause: err }), { httpStatus: status });
  }

  /** The resource, or undefined on 404. */
  private async get<T>(what: string, url: string): Promise<T | undefined> {
    try {
      return await this.call<T>(what, 'GET', url);
    } catch (err) {
      if ((err as { httpStatus?: number }).httpStatus === 404) return undefined;
      throw err;
    }
  }

  private get accountUrl() {
    return `${this.iam}/v1/projects/${this.d.project}/serviceAccounts/${encodeURIComponent(this.d.email)}`;
  }
  private get roleUrl() {
    return `${this.iam}/v1/${this.d.roleName}`;
  }

  private readPolicy = () => this.call<Policy>('projects.getIamPolicy', 'POST', `${this.crm}/v1/projects/${this.d.project}:getIamPolicy`, { options: { requestedPolicyVersion: 3 } });

  /**
   * Read-modify-write of the project's policy, as IAM asks: the etag read is sent back, and a
   * concurrent change (409 ABORTED) means read again and retry.
   */
  private async editPolicy(what: string, edit: (p: Policy) => boolean): Promise<void> {
    for (let attempt = 1; ; attempt++) {
      const policy = await this.readPolicy();
      if (!edit(policy)) return;
      try {
        await this.call('projects.setIamPolicy', 'POST', `${this.crm}/v1/projects/${this.d.project}:setIamPolicy`, { policy });
        return;
      } catch (err) {
        if ((err as { httpStatus?: number }).httpStatus !== 409 || attempt >= 5) throw Object.assign(new InfraError(`${(err as Error).message} (${what})`, 'ProviderError', undefined, { cause: err }), { httpStatus: (err as { httpStatus?: number }).httpStatus });
        await new Promise((r) => setTimeout(r, 200 * attempt));
      }
    }
  }

  /** Runs a call that names the account: waited out while IAM propagates it, if this run created it. */
  usingAccount<T>(fn: () => Promise<T>): Promise<T> {
    return this.createdAccount ? untilPropagated(this.d.email, this.propagation, fn) : fn();
  }

  private bound = (p: Policy) => !!p.bindings?.some((b) => b.role === this.d.roleName && !b.condition && b.members.includes(this.d.member));

  /**
   * Plans or makes the role, the account and the binding, in that order; each create pushes its
   * undo onto `undo`, so a failure later in the run removes what this run made.
   */
  async up(action: Exclude<InfraAction, 'down'>, changes: Change[], undo: UndoStep[]): Promise<void> {
    const d = this.d;
    const mine = (desc: string | undefined) => String(desc ?? '').includes(marker(d.stack));
    const role = await this.get<Role>(`roles.get(${d.roleId})`, this.roleUrl);
    if (role && !mine(role.description)) throw new InfraError(`gcp role ${d.roleName} exists but was not made by stack ${d.stack} (its description lacks ${marker(d.stack)}); choose another infra.stack`, 'InvalidInfraConfig');
    const have = [...(role?.includedPermissions ?? [])].sort().join(',');
    const permsDiffer = !!role && have !== [...d.permissions].sort().join(',');
    if (!role) changes.push({ action: 'create', kind: 'iam#role', name: d.roleName, detail: `${d.permissions.length} permissions` });
    else if (role.deleted) changes.push({ action: 'create', kind: 'iam#role', name: d.roleName, detail: 'undelete (IAM keeps a deleted custom role, and its id, for a while)' });
    else changes.push({ action: permsDiffer ? 'update' : 'keep', kind: 'iam#role', name: d.roleName, detail: permsDiffer ? 'permissions' : undefined });
    if (action === 'up') {
      if (!role) {
        await this.call(`roles.create(${d.roleId})`, 'POST', `${this.iam}/v1/projects/${d.project}/roles`, { roleId: d.roleId, role: { title: `fedflow agent (${d.stack})`, description: d.roleDescription, includedPermissions: d.permissions, stage: 'GA' } });
        undo.push({ what: `role ${d.roleName}`, run: () => this.deleteRole(), identity: true });
      } else if (role.deleted) {
        const back = await this.call<Role>(`roles.undelete(${d.roleId})`, 'POST', `${this.roleUrl}:undelete`, { etag: role.etag });
        undo.push({ what: `role ${d.roleName}`, run: () => this.deleteRole(), identity: true });
        if (have !== [...d.permissions].sort().join(',')) await this.patchRole(back.etag);
      } else if (permsDiffer) await this.patchRole(role.etag);
    }

    const account = await this.get<ServiceAccount>(`serviceAccounts.get(${d.email})`, this.accountUrl);
    if (account && !mine(account.description)) throw new InfraError(`gcp service account ${d.email} exists but was not made by stack ${d.stack} (its description lacks ${marker(d.stack)}); choose another infra.stack`, 'InvalidInfraConfig');
    changes.push({ action: account ? 'keep' : 'create', kind: 'iam#serviceAccount', name: d.email });
    if (action === 'up' && !account) {
      await this.call(`serviceAccounts.create(${d.accountId})`, 'POST', `${this.iam}/v1/projects/${d.project}/serviceAccounts`, { accountId: d.accountId, serviceAccount: { displayName: `fedflow agent (${d.stack})`, description: d.accountDescription } });
      this.createdAccount = true;
      undo.push({ what: `service account ${d.email}`, run: () => this.deleteAccount().then(() => undefined), identity: true });
    }

    const isBound = account && role && !role.deleted ? this.bound(await this.readPolicy()) : false;
    changes.push({ action: isBound ? 'keep' : 'create', kind: 'cloudresourcemanager#binding', name: `${d.roleName} → ${d.member}` });
    if (action === 'up' && !isBound) {
      await this.usingAccount(() =>
        this.editPolicy('binding the agent role', (p) => {
          if (this.bound(p)) return false;
          const b = p.bindings?.find((x) => x.role === d.roleName && !x.condition);
          if (b) b.members.push(d.member);
          else p.bindings = [...(p.bindings ?? []), { role: d.roleName, members: [d.member] }];
          return true;
        }),
      );
      undo.push({ what: `binding ${d.roleName} → ${d.member}`, run: () => this.unbind().then(() => undefined), identity: true });
    }
  }

  private async patchRole(etag: string | undefined): Promise<void> {
    await this.call(`roles.patch(${this.d.roleId})`, 'PATCH', `${this.roleUrl}?updateMask=includedPermissions,description`, { includedPermissions: this.d.permissions, description: this.d.roleDescription, etag });
  }

  /** Removes the account from the role's binding (also as IAM renames it once the account is deleted). */
  private async unbind(): Promise<boolean> {
    let removed = false;
    const ours = (m: string) => m === this.d.member || m.startsWith(`deleted:${this.d.member}?`);
    await this.editPolicy('unbinding the agent role', (p) => {
      const before = JSON.stringify(p.bindings ?? []);
      p.bindings = (p.bindings ?? []).map((b) => (b.role === this.d.roleName ? { ...b, members: b.members.filter((m) => !ours(m)) } : b)).filter((b) => b.members.length > 0);
      removed = JSON.stringify(p.bindings) !== before;
      return removed;
    });
    return removed;
  }

  private async deleteAccount(): Promise<boolean> {
    try {
      await this.call(`serviceAccounts.delete(${this.d.email})`, 'DELETE', this.accountUrl);
      return true;
    } catch (err) {
      if ((err as { httpStatus?: number }).httpStatus === 404) return false;
      throw err;
    }
  }

  private async deleteRole(): Promise<void> {
    await this.call(`roles.delete(${this.d.roleId})`, 'DELETE', this.roleUrl);
  }

  /** After the instance is gone: the binding, the account, then the role, each only if this stack made it. */
  async down(changes: Change[]): Promise<void> {
    const d = this.d;
    const mine = (desc: string | undefined) => String(desc ?? '').includes(marker(d.stack));
    const role = await this.get<Role>(`roles.get(${d.roleId})`, this.roleUrl);
    const roleMine = !!role && mine(role.description);
    const unbound = roleMine ? await this.unbind() : false;
    changes.push({ action: unbound ? 'delete' : 'keep', kind: 'cloudresourcemanager#binding', name: `${d.roleName} → ${d.member}`, detail: unbound ? undefined : 'not there' });
    const account = await this.get<ServiceAccount>(`serviceAccounts.get(${d.email})`, this.accountUrl);
    const accountMine = !!account && mine(account.description);
    if (accountMine) await this.deleteAccount();
    changes.push({ action: accountMine ? 'delete' : 'keep', kind: 'iam#serviceAccount', name: d.email, detail: account && !accountMine ? `not made by stack ${d.stack}` : account ? undefined : 'not there' });
    const live = roleMine && !role.deleted;
    if (live) await this.deleteRole();
    changes.push({ action: live ? 'delete' : 'keep', kind: 'iam#role', name: d.roleName, detail: role && !roleMine ? `not made by stack ${d.stack}` : live ? undefined : 'not there' });
  }
}
