/**
 * The workload spec: how to run a workload per provider, its volumes, its health check, its
 * cut-over hooks (`freeze`, `thaw`, and the optional `flush` before each pre-copy capture) and its
 * verification. Pure schema (zod), so the CLI, the
 * client SDK, the agent's runner and tests share one definition; reading a YAML/JSON file is
 * agent/workload/spec-file.ts's job, and resolving volumes inside a site is the runner's.
 *
 * Times are in seconds (fractions allowed), named as Kubernetes probes name them, so a spec reads
 * like the probes and hooks its authors already know.
 */
import { z } from 'zod';

/** A workload id: it names directories, task-queue lookups and the log's entries. */
export const WORKLOAD_ID_PATTERN = /^[a-z0-9][a-z0-9-]{0,62}$/;
const VOLUME_NAME_PATTERN = /^[a-z][a-z0-9-]{0,31}$/;
/** The most bytes a spec may take as JSON: it travels in the federation log beside the placement. */
export const MAX_SPEC_BYTES = 16 * 1024;

/**
 * Templates filled in by the runner. `{volume}` is the first volume's path; `{volume.NAME}` any
 * volume's by name. `{dataDir}` is the instance's private run directory at the site (sockets, pid
 * files; never migrated). `{node}` is the agent's Node.js binary, `{fedflowRoot}` the fedflow
 * checkout (the sample's program lives there).
 */
export const TEMPLATE_NAMES = ['id', 'host', 'port', 'dataDir', 'volume', 'node', 'fedflowRoot'] as const;
/** `{name}` or `{volume.name}`: only identifiers, so JSON or SQL braces in a command are left alone. */
export const TEMPLATE_PATTERN = /\{([A-Za-z][A-Za-z0-9]*(?:\.[a-z][a-z0-9-]*)?)\}/g;

const seconds = (what: string, dflt: number, max = 3600) =>
  z
    .number({ error: `${what} must be a number of seconds` })
    .positive(`${what} must be more than 0 seconds`)
    .max(max, `${what} must be at most ${max} seconds`)
    .default(dflt);

/** A command: a string runs through /bin/sh -c; an array runs as argv, with no shell. */
const commandSchema = z.union([z.string().min(1, 'a command must not be empty'), z.array(z.string()).min(1, 'a command is a non-empty list: its program, then its arguments')], {
  error: 'a command is a non-empty string (run by /bin/sh -c) or a non-empty array of strings (argv)',
});
export type Command = z.infer<typeof commandSchema>;

const httpCallSchema = z
  .object({
    method: z.enum(['GET', 'POST', 'PUT', 'DELETE']).default('GET'),
    path: z.string().startsWith('/', 'an HTTP path starts with /'),
    body: z.string().optional(),
  })
  .strict();
export type HttpCall = z.infer<typeof httpCallSchema>;

const SIGNALS = ['SIGTERM', 'SIGINT', 'SIGQUIT', 'SIGHUP', 'SIGUSR1', 'SIGUSR2'] as const;

/** Exactly one of `keys` is set on `o`, or a problem naming them. */
function exactlyOne(o: Record<string, unknown>, keys: readonly string[], ctx: z.RefinementCtx, what: string): void {
  const set = keys.filter((k) => o[k] !== undefined);
  if (set.length === 1) return;
  ctx.addIssue({
    code: 'custom',
    path: set.length ? [set[1]!] : [],
    message: set.length ? `${what} has both '${set[0]}' and '${set[1]}'; give exactly one of ${keys.join(', ')}` : `${what} needs exactly one of ${keys.join(', ')}`,
  });
}

const HEX = /^(?:[0-9a-fA-F]{2})*$/;
const hexBytes = z
  .string()
  .min(1, 'hex bytes must not be empty (leave the field out instead)')
  .max(2048, 'at most 1024 bytes (2048 hex digits)')
  .regex(HEX, 'bytes written as hex, two digits a byte (e.g. 50494e470d0a for "PING\\r\\n")');
const textBytes = z.string().min(1, 'must not be empty (leave the field out instead)').max(1024, 'at most 1024 characters');

/**
 * A TCP check: the port accepts a connection (Kubernetes' tcpSocket). With `send` and `expect`,
 * also an exchange, as HAProxy's `tcp-check send` / `expect` (and its `pgsql-check`,
 * `redis-check`): the bytes of `send` go out, and the answer must begin with `expect`. So a
 * service that accepts connections before it can serve (PostgreSQL during its recovery answers
 * "starting up", Redis during its AOF load "LOADING") is checked by its own protocol, in process,
 * with no command to spawn. Text (UTF-8) or hex for each; `expect` alone for a service that speaks first.
 */
const tcpCheckSchema = z
  .object({
    send: textBytes.optional(),
    sendHex: hexBytes.optional(),
    expect: textBytes.optional(),
    expectHex: hexBytes.optional(),
  })
  .strict()
  .superRefine((t, ctx) => {
    if (t.send !== undefined && t.sendHex !== undefined) ctx.addIssue({ code: 'custom', path: ['sendHex'], message: "a TCP check has both 'send' and 'sendHex'; give at most one" });
    if (t.expect !== undefined && t.expectHex !== undefined) ctx.addIssue({ code: 'custom', path: ['expectHex'], message: "a TCP check has both 'expect' and 'expectHex'; give at most one" });
    if ((t.send !== undefined || t.sendHex !== undefined) && t.expect === undefined && t.expectHex === undefined) {
      ctx.addIssue({ code: 'custom', path: [], message: 'a TCP check that sends needs expect (or expectHex): what the answer must begin with' });
    }
  });
export type TcpCheck = z.infer<typeof tcpCheckSchema>;

const probeSchema = z
  .object({
    http: httpCallSchema.optional(),
    tcp: tcpCheckSchema.optional(),
    command: commandSchema.optional(),
    initialDelaySeconds: z.number().min(0, 'initialDelaySeconds must be 0 or more').max(3600).default(0),
    periodSeconds: seconds('periodSeconds', 1),
    timeoutSeconds: seconds('timeoutSeconds', 1),
    failureThreshold: z.number().int('failureThreshold must be a whole number').min(1, 'failureThreshold must be at least 1').max(1000).default(3),
    /** How long a start may take to pass its first check (Kubernetes: a startup probe's threshold × period). */
    startTimeoutSeconds: seconds('startTimeoutSeconds', 60),
  })
  .strict()
  .superRefine((p, ctx) => exactlyOne(p, ['http', 'tcp', 'command'], ctx, 'a health check'));
export type HealthCheck = z.infer<typeof probeSchema>;

const freezeSchema = z
  .object({
    command: commandSchema.optional(),
    http: httpCallSchema.optional(),
    /** A clean stop: send `signal` to the instance and wait for it to exit. */
    stop: z.object({ signal: z.enum(SIGNALS).default('SIGTERM') }).strict().optional(),
    /** The command or call stops the instance itself (pg_ctl stop, SHUTDOWN): the runner waits for the exit. */
    stopsInstance: z.boolean().default(false),
    timeoutSeconds: seconds('timeoutSeconds', 30),
  })
  .strict()
  .superRefine((h, ctx) => exactlyOne(h, ['command', 'http', 'stop'], ctx, 'the freeze hook'));
export type FreezeHook = z.infer<typeof freezeSchema>;

const thawSchema = z
  .object({
    command: commandSchema.optional(),
    http: httpCallSchema.optional(),
    /** Start the instance again (after a freeze that stopped it). */
    start: z.literal(true, { error: "thaw.start is `true` (start the instance again)" }).optional(),
    timeoutSeconds: seconds('timeoutSeconds', 30),
  })
  .strict()
  .superRefine((h, ctx) => exactlyOne(h, ['command', 'http', 'start'], ctx, 'the thaw hook'));
export type ThawHook = z.infer<typeof thawSchema>;

/** The longest a flush hook may take (its timeoutSeconds). */
export const FLUSH_MAX_SECONDS = 300;

/**
 * Optional, run at the source before each pre-copy capture while the instance serves: asks the
 * service to write down what it holds only in memory (PostgreSQL: `CHECKPOINT`), so that the
 * pre-copy round carries those writes and the freeze's clean stop has less to write and the final
 * round less to send. An optimisation only: a flush that fails or times out is logged and the
 * round captures anyway (the freeze and the verification decide what is correct, not the flush).
 * It may run more than once for a round (a retried capture): it must be idempotent, and must not
 * hold the service's writes.
 */
const flushSchema = z
  .object({
    command: commandSchema.optional(),
    http: httpCallSchema.optional(),
    // Bounded well inside a pre-copy capture's own limit: a flush that hangs costs a round this much, not the migration.
    timeoutSeconds: seconds('timeoutSeconds', 30, FLUSH_MAX_SECONDS),
  })
  .strict()
  .superRefine((h, ctx) => exactlyOne(h, ['command', 'http'], ctx, 'the flush hook'));
export type FlushHook = z.infer<typeof flushSchema>;

const verifySchema = z
  .object({
    command: commandSchema.optional(),
    http: httpCallSchema.optional(),
    timeoutSeconds: seconds('timeoutSeconds', 30),
  })
  .strict()
  .superRefine((h, ctx) => exactlyOne(h, ['command', 'http'], ctx, 'verify'));
export type VerifyHook = z.infer<typeof verifySchema>;

const volumeSchema = z
  .object({
    name: z.string().regex(VOLUME_NAME_PATTERN, 'a volume name is lowercase letters, digits and dashes, starting with a letter (at most 32)'),
    kind: z.enum(['directory', 'image']).default('directory'),
    /**
     * Where it lives, relative to the workload's volume root at the site (default: its name). The
     * runner refuses a path that resolves outside that root (which is inside the site's directory):
     * that check needs the site, so it is not made here.
     */
    path: z.string().min(1, 'a volume path must not be empty').optional(),
    /**
     * The permissions of the volume's top directory or file, as octal ("0700"), set at install and
     * at every start: PostgreSQL refuses a data directory others can read, and a volume synced from
     * another site may arrive with the agent's default mode.
     */
    mode: z.string().regex(/^0?[0-7]{3}$/, 'mode is octal permissions such as "0700" or "750"').optional(),
    /** For `image`: the size of the disk-image file created when it is missing (sparse). */
    sizeMiB: z.number().int().positive().max(1024 * 1024).optional(),
    /** Run once, when the volume is new (empty): `initdb`, say. */
    init: z.object({ command: commandSchema, timeoutSeconds: seconds('timeoutSeconds', 120) }).strict().optional(),
  })
  .strict()
  .superRefine((v, ctx) => {
    if (v.kind === 'image' && v.sizeMiB === undefined) ctx.addIssue({ code: 'custom', path: ['sizeMiB'], message: 'an image volume needs sizeMiB (the size of its disk-image file)' });
    if (v.kind === 'directory' && v.sizeMiB !== undefined) ctx.addIssue({ code: 'custom', path: ['sizeMiB'], message: 'sizeMiB is for image volumes; a directory volume grows as it needs' });
  });
export type VolumeSpec = z.infer<typeof volumeSchema>;

const ENV_NAME = /^[A-Za-z_][A-Za-z0-9_]*$/;
/** A workload secret's name: the file's name under the site's `secrets/workloads/`. */
export const SECRET_NAME = /^[a-z0-9][a-z0-9._-]{0,62}$/;
export const SECRET_NAME_RULE = 'a secret name is lowercase letters, digits, dots, dashes and underscores (at most 63), e.g. pg-password';
/**
 * Environment names whose value is a secret (PGPASSWORD, REDISCLI_AUTH, AWS_SECRET_ACCESS_KEY, API_TOKEN ...):
 * given as a literal in `env`, the value would be written into the federation log and every history.
 */
const SECRET_ENV = /pass(word|wd)?$|secret|token|credential|private_?key|api_?key|access_?key|_auth$|^auth$/i;

const localRunSchema = z
  .object({
    command: commandSchema,
    env: z.record(z.string().regex(ENV_NAME, 'an environment variable name is letters, digits and underscores, not starting with a digit'), z.string()).default({}),
    /**
     * Environment variables whose values are secrets: NAME -> the name of a file the operator put in
     * the site's `secrets/workloads/` directory (0600; `fedflow secrets set <name> --site <id>`).
     * The spec travels in the federation log and in Temporal's history, so it holds only the name;
     * the runner reads the value at the site, for the instance, its hooks and its checks.
     */
    secretEnv: z.record(z.string().regex(ENV_NAME, 'an environment variable name is letters, digits and underscores, not starting with a digit'), z.string().regex(SECRET_NAME, SECRET_NAME_RULE)).default({}),
    /** When the agent runs as root: run the instance and its hooks as this user (PostgreSQL refuses root). */
    user: z.string().regex(/^[a-z_][a-z0-9_-]{0,31}$/, 'a user is a login name such as nobody or postgres').optional(),
    /** A fixed port; by default the runner picks a free one and keeps it across restarts. */
    port: z.number().int().min(1).max(65535).optional(),
    /** What the log records as the workload's address. */
    address: z.string().default('tcp://{host}:{port}'),
  })
  .strict();
export type LocalRun = z.infer<typeof localRunSchema>;

const cloudRunSchema = z
  .object({
    image: z.string().min(1, 'image must name an AMI, an image URN or an image self-link'),
    size: z.string().min(1, 'size must name an instance type, VM size or machine type'),
    userData: z.string().max(16 * 1024).optional(),
  })
  .strict();

const runSchema = z
  .object({ local: localRunSchema.optional(), aws: cloudRunSchema.optional(), azure: cloudRunSchema.optional(), gcp: cloudRunSchema.optional() })
  .strict()
  .superRefine((r, ctx) => {
    if (!r.local && !r.aws && !r.azure && !r.gcp) ctx.addIssue({ code: 'custom', path: [], message: 'run needs at least one provider: local, aws, azure or gcp' });
  });

export const workloadSpecSchema = z
  .object({
    id: z.string().regex(WORKLOAD_ID_PATTERN, 'a workload id is lowercase letters, digits and dashes (at most 63), e.g. pg-orders'),
    run: runSchema,
    volumes: z.array(volumeSchema).min(1, 'a workload needs at least one volume (its data moves with it)'),
    health: probeSchema,
    hooks: z.object({ freeze: freezeSchema, thaw: thawSchema, flush: flushSchema.optional() }).strict(),
    verify: verifySchema,
  })
  .strict();
export type WorkloadSpec = z.infer<typeof workloadSpecSchema>;

const isObj = (v: unknown): v is Record<string, unknown> => !!v && typeof v === 'object' && !Array.isArray(v);

/**
 * Checks across fields: unique volume names and paths, known templates, a thaw that fits the
 * freeze. They read the raw value (guarding every type) rather than run as a zod refinement, so
 * they are reported even when some other field is wrong: a spec's author sees every problem at once.
 */
function crossFieldProblems(raw: unknown): string[] {
  if (!isObj(raw)) return [];
  const problems: string[] = [];
  const names = new Set<string>();
  const paths = new Set<string>();
  (Array.isArray(raw.volumes) ? raw.volumes : []).forEach((v: unknown, i: number) => {
    if (!isObj(v) || typeof v.name !== 'string') return;
    if (names.has(v.name)) {
      problems.push(`volumes.${i}.name: volume name '${short(v.name)}' is used twice; names are unique within a workload`);
      return;
    }
    names.add(v.name);
    const p = (typeof v.path === 'string' ? v.path : v.name).replace(/\/+$/, '');
    if (paths.has(p)) problems.push(`volumes.${i}.path: volume path '${short(p)}' is used by another volume; each volume needs its own`);
    paths.add(p);
  });
  for (const [path, text] of templatedStrings(raw)) {
    for (const m of text.matchAll(TEMPLATE_PATTERN)) {
      const name = m[1]!;
      const [head, vol] = name.split('.');
      const known = (TEMPLATE_NAMES as readonly string[]).includes(head!) && (vol === undefined || (head === 'volume' && names.has(vol)));
      if (!known) {
        problems.push(
          `${path.join('.')}: unknown template {${short(name, 30)}}; known: ${TEMPLATE_NAMES.map((t) => `{${t}}`).join(', ')}, {volume.NAME} with NAME one of ${[...names].join(', ') || '(no volumes)'}`,
        );
      }
    }
  }
  const local = isObj(raw.run) && isObj(raw.run.local) ? raw.run.local : {};
  const env = isObj(local.env) ? local.env : {};
  const secretEnv = isObj(local.secretEnv) ? local.secretEnv : {};
  for (const k of Object.keys(env)) {
    if (SECRET_ENV.test(k)) {
      problems.push(
        `run.local.env.${short(k, 40)}: looks like a secret, and the spec is written into the federation log and Temporal's history; put the value at each site with \`fedflow secrets set <name> --site <id>\` and name it in run.local.secretEnv: { ${short(k, 40)}: <name> }`,
      );
    }
    if (k in secretEnv) problems.push(`run.local.env.${short(k, 40)}: also set by run.local.secretEnv; give each variable once`);
  }
  const hooks = isObj(raw.hooks) ? raw.hooks : {};
  const freeze = isObj(hooks.freeze) ? hooks.freeze : undefined;
  const thaw = isObj(hooks.thaw) ? hooks.thaw : undefined;
  if (freeze && thaw) {
    const stops = freeze.stop !== undefined || freeze.stopsInstance === true;
    if (thaw.start === true && !stops) problems.push('hooks.thaw.start: thaw.start restarts an instance the freeze stopped, but this freeze does not stop it; use freeze.stop, or set freeze.stopsInstance: true');
    if (stops && thaw.start === undefined) problems.push('hooks.thaw: this freeze stops the instance, so thaw must start it again: thaw: { start: true }');
  }
  return problems;
}

/** Every string of a (raw) spec where templates are filled in, with its path. */
function templatedStrings(s: Record<string, unknown>): [(string | number)[], string][] {
  const out: [(string | number)[], string][] = [];
  const cmd = (path: (string | number)[], c: unknown) => {
    if (typeof c === 'string') out.push([path, c]);
    else if (Array.isArray(c)) c.forEach((a: unknown, i) => typeof a === 'string' && out.push([[...path, i], a]));
  };
  const call = (path: (string | number)[], h: unknown) => {
    if (!isObj(h)) return;
    if (typeof h.path === 'string') out.push([[...path, 'path'], h.path]);
    if (typeof h.body === 'string') out.push([[...path, 'body'], h.body]);
  };
  const run = isObj(s.run) ? s.run : {};
  const local = isObj(run.local) ? run.local : undefined;
  if (local) {
    cmd(['run', 'local', 'command'], local.command);
    if (isObj(local.env)) for (const [k, v] of Object.entries(local.env)) cmd(['run', 'local', 'env', k], v);
    cmd(['run', 'local', 'address'], local.address);
  }
  if (Array.isArray(s.volumes)) s.volumes.forEach((v: unknown, i) => isObj(v) && isObj(v.init) && cmd(['volumes', i, 'init', 'command'], v.init.command));
  const health = isObj(s.health) ? s.health : {};
  cmd(['health', 'command'], health.command);
  call(['health', 'http'], health.http);
  const hooks = isObj(s.hooks) ? s.hooks : {};
  for (const hook of ['freeze', 'thaw', 'flush'] as const) {
    const h = isObj(hooks[hook]) ? (hooks[hook] as Record<string, unknown>) : {};
    cmd(['hooks', hook, 'command'], h.command);
    call(['hooks', hook, 'http'], h.http);
  }
  const verify = isObj(s.verify) ? s.verify : {};
  cmd(['verify', 'command'], verify.command);
  call(['verify', 'http'], verify.http);
  return out;
}

/** A value echoed in a message: at most a short prefix, so a pasted secret or blob is not repeated whole. */
export function short(v: unknown, max = 40): string {
  let s: string;
  try {
    s = typeof v === 'string' ? v : JSON.stringify(v) ?? String(v);
  } catch {
    s = String(v);
  }
  return s.length > max ? `${s.slice(0, max)}…` : s;
}

function typeName(v: unknown): string {
  if (v === null) return 'null';
  if (Array.isArray(v)) return 'an array';
  if (v === undefined) return 'nothing';
  return typeof v === 'object' ? 'an object' : `${typeof v} ${short(v)}`;
}

const EXPECTED: Record<string, string> = {
  string: 'a string',
  number: 'a number',
  boolean: 'true or false',
  object: 'an object (a mapping)',
  array: 'a list',
  int: 'a whole number',
};

/** One zod issue as a sentence: where, what was wrong, what is expected. */
function describeIssue(iss: z.core.$ZodIssue): string {
  const where = iss.path.length ? iss.path.map(String).join('.') : '(top level)';
  const input = (iss as { input?: unknown }).input;
  switch (iss.code) {
    case 'invalid_type': {
      if (input === undefined) return `${where}: is required; expected ${EXPECTED[iss.expected] ?? iss.expected}`;
      return `${where}: got ${typeName(input)}; expected ${EXPECTED[iss.expected] ?? iss.expected}`;
    }
    case 'unrecognized_keys':
      return `${where}: unknown field${iss.keys.length > 1 ? 's' : ''} ${iss.keys.map((k) => `'${short(k, 30)}'`).join(', ')}; remove ${iss.keys.length > 1 ? 'them' : 'it'} (is it misspelt?)`;
    case 'invalid_value':
      return `${where}: got ${short(input)}; expected one of ${iss.values.map((v) => JSON.stringify(v)).join(', ')}`;
    case 'invalid_union':
      return `${where}: got ${typeName(input)}; ${iss.message.startsWith('Invalid') ? 'it matches none of the accepted forms' : iss.message}`;
    case 'invalid_key': {
      const inner = (iss as { issues?: { message: string }[] }).issues?.[0]?.message;
      return `${where}: the name is not valid${inner && !inner.startsWith('Invalid') ? `: ${inner}` : ''}`;
    }
    case 'too_small':
    case 'too_big':
    case 'invalid_format':
    case 'custom':
      return `${where}: ${iss.message}${input !== undefined && iss.code !== 'custom' && typeof input !== 'object' ? ` (got ${short(input)})` : ''}`;
    default:
      return `${where}: ${iss.message}`;
  }
}

export type SpecParse = { ok: true; spec: WorkloadSpec } | { ok: false; problems: string[] };

/** Validates a parsed YAML/JSON value; on failure, every problem at once, one line each. */
export function parseWorkloadSpec(raw: unknown): SpecParse {
  const res = workloadSpecSchema.safeParse(raw, { reportInput: true });
  const cross = crossFieldProblems(raw);
  if (!res.success || cross.length) return { ok: false, problems: [...(res.success ? [] : res.error.issues.map(describeIssue)), ...cross] };
  const bytes = new TextEncoder().encode(JSON.stringify(res.data)).length;
  if (bytes > MAX_SPEC_BYTES) return { ok: false, problems: [`(top level): the spec takes ${bytes} bytes as JSON; at most ${MAX_SPEC_BYTES} (it travels in the federation log: keep data and scripts out of it)`] };
  return { ok: true, spec: res.data };
}

/** The values of the templates for one instance. */
export interface TemplateValues {
  id: string;
  host: string;
  port: number;
  dataDir: string;
  node: string;
  fedflowRoot: string;
  /** Volume name → its absolute path, in spec order. */
  volumes: [string, string][];
}

/** Fills `{name}` templates; a name the spec validation let through always has a value. */
export function fillTemplates(text: string, v: TemplateValues): string {
  return text.replace(TEMPLATE_PATTERN, (whole, name: string) => {
    const [head, vol] = name.split('.');
    if (head === 'volume') {
      const found = vol === undefined ? v.volumes[0] : v.volumes.find(([n]) => n === vol);
      return found ? found[1] : whole;
    }
    const direct: Record<string, string> = { id: v.id, host: v.host, port: String(v.port), dataDir: v.dataDir, node: v.node, fedflowRoot: v.fedflowRoot };
    return direct[head!] ?? whole;
  });
}
