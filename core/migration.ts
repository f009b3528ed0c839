/**
 * The migration request, its validation and the shapes a migration reports (progress and result).
 * Pure: imported by the workflow as well as by the client and CLI.
 */
import { SITE_ID_PATTERN } from './federation-config';

import { MODES, type Mode } from './mode-policy';
export { MODES, type Mode };

export interface MigrationRequest {
  /** The workload to move. The workflow id must be `migrate-<workloadId>`. */
  workloadId: string;
  /** Site to move it to. */
  targetSite: string;
  /** Optional: where the caller believes it runs now; checked against the federation state. */
  sourceSite?: string;
  /** Optional explicit mode, overriding the policy. */
  mode?: Mode;
}

/** A workload id becomes part of DNS-style names and workflow ids: at most 63 characters. */
export const WORKLOAD_ID_MAX = 63;
export const WORKLOAD_ID_PATTERN = /^[a-z0-9][a-z0-9-]{0,62}$/;
/** Site ids are short (`<kind>:<name>`); the bound keeps a pasted blob from reaching the pattern. */
export const SITE_ID_MAX = 100;
/** How much of a bad value a message echoes: enough to recognise it, never a pasted megabyte. */
export const ECHO_MAX = 40;

/** A bad value as a message shows it: quoted, cut to its first ECHO_MAX characters with its length. */
export function echo(value: string, quote = '"'): string {
  const shown = value.length <= ECHO_MAX ? value : `${value.slice(0, ECHO_MAX)}…(${value.length} chars)`;
  return `${quote}${shown}${quote}`;
}

function typeName(v: unknown): string {
  return v === null ? 'null' : Array.isArray(v) ? 'an array' : typeof v;
}

/**
 * Problems with one string field, in the order a person fixes them: its type first (a number is
 * not "missing"), then presence, then length (a 10,000-character id is too long whatever its
 * characters), and only then its pattern.
 */
function checkString(name: string, v: unknown, opts: { required: boolean; max: number; pattern: RegExp; patternHint: string; example: string }): string | undefined {
  if (v === undefined || v === null || v === '') {
    return opts.required ? `'${name}' is required: ${opts.example}` : v === undefined ? undefined : `'${name}' must be a string when given (${opts.example})`;
  }
  if (typeof v !== 'string') return `'${name}' must be a string, got ${typeName(v)} (${opts.example})`;
  if (v.length > opts.max) return `'${name}' ${echo(v)} is too long: at most ${opts.max} characters`;
  if (!opts.pattern.test(v)) return `'${name}' ${echo(v)} ${opts.patternHint}`;
  return undefined;
}

export const EXAMPLE_REQUEST = '{"workloadId": "kv-demo", "targetSite": "dc:frankfurt"}';

export type Parsed<T> = { ok: true; value: T } | { ok: false; problems: string[] };

/**
 * Checks the shape of a request as typed into the Temporal UI's Start Workflow form or sent by the SDK.
 * Returns every problem at once, each naming what was wrong and what would be right.
 */
export function parseMigrationRequest(input: unknown): Parsed<MigrationRequest> {
  const problems: string[] = [];
  if (typeof input === 'string') {
    // The UI sends a JSON string when its input is not parsed as an object.
    try {
      input = JSON.parse(input);
    } catch {
      return { ok: false, problems: [`input is not valid JSON; expected an object such as ${EXAMPLE_REQUEST}`] };
    }
  }
  if (input === null || typeof input !== 'object' || Array.isArray(input)) {
    return { ok: false, problems: [`input must be a JSON object such as ${EXAMPLE_REQUEST}, got ${typeName(input)}`] };
  }
  const o = input as Record<string, unknown>;
  const known = new Set(['workloadId', 'targetSite', 'sourceSite', 'mode']);
  for (const k of Object.keys(o)) {
    if (!known.has(k)) problems.push(`unknown field ${echo(k, "'")} (accepted: ${[...known].join(', ')})`);
  }
  const problem = [
    checkString('workloadId', o.workloadId, { required: true, max: WORKLOAD_ID_MAX, pattern: WORKLOAD_ID_PATTERN, patternHint: 'must be lowercase letters, digits and dashes, starting with a letter or digit', example: 'the id of the workload to move, e.g. "kv-demo"' }),
    checkString('targetSite', o.targetSite, { required: true, max: SITE_ID_MAX, pattern: SITE_ID_PATTERN, patternHint: 'is not a site id; expected <kind>:<name>, e.g. "dc:frankfurt"', example: 'a site id such as "dc:frankfurt"' }),
    checkString('sourceSite', o.sourceSite, { required: false, max: SITE_ID_MAX, pattern: SITE_ID_PATTERN, patternHint: 'is not a site id; expected <kind>:<name>, e.g. "dc:paris"', example: 'a site id such as "dc:paris"' }),
  ];
  for (const p of problem) if (p) problems.push(p);
  if (o.mode !== undefined && !(MODES as readonly unknown[]).includes(o.mode)) {
    problems.push(`'mode' ${typeof o.mode === 'string' ? echo(o.mode) : `(${typeName(o.mode)})`} is not a mode (accepted: ${MODES.join(', ')})`);
  }
  if (problems.length) return { ok: false, problems };
  const req: MigrationRequest = { workloadId: o.workloadId as string, targetSite: o.targetSite as string };
  if (o.sourceSite !== undefined) req.sourceSite = o.sourceSite as string;
  if (o.mode !== undefined) req.mode = o.mode as Mode;
  return { ok: true, value: req };
}

/** The steps a migration goes through, in order, with the words the UI shows. */
export const MIGRATION_STEPS = [
  { id: 'validate', title: 'Validate the request' },
  { id: 'reserve', title: 'Reserve capacity on the target (committed by the federation)' },
  { id: 'measure', title: 'Measure the link, predict it and choose a mode' },
  { id: 'start', title: 'Boot the target instance (standby)' },
  { id: 'sync', title: 'Pre-copy the volume while the workload serves' },
  { id: 'cutover', title: 'Pause the source, send the final delta, activate the target, check every key' },
  { id: 'commit', title: 'Commit "the workload now runs on the target" (quorum certificate)' },
  { id: 'switch', title: 'Switch the route' },
  { id: 'decommission', title: 'Stop and remove the source' },
] as const;
export type StepId = (typeof MIGRATION_STEPS)[number]['id'];

export const PHASES = ['validating', 'reserving', 'measuring', 'starting', 'syncing', 'cutting-over', 'committing', 'switching', 'decommissioning', 'compensating', 'completed', 'failed', 'cancelled'] as const;
export type Phase = (typeof PHASES)[number];

export const PHASE_OF_STEP: Record<StepId, Phase> = {
  validate: 'validating',
  reserve: 'reserving',
  measure: 'measuring',
  start: 'starting',
  sync: 'syncing',
  cutover: 'cutting-over',
  commit: 'committing',
  switch: 'switching',
  decommission: 'decommissioning',
};

export type StepStatus = 'pending' | 'running' | 'done' | 'failed' | 'compensated' | 'skipped';

export interface StepProgress {
  id: StepId;
  title: string;
  status: StepStatus;
  detail?: string;
}

/**
 * One sync round as progress and results show it (the activity's RoundFigures). A round's pull may
 * take several attempts (a worker or the Temporal server restarted under it): every figure counts
 * all of them (agent/transfer/pull-ledger.ts).
 */
export interface RoundSummary {
  round: number;
  kind: 'precopy' | 'final';
  mode: string;
  codec: string;
  bytesScanned: number;
  chunks: number;
  /** Chunks received, over every attempt (a chunk sent twice counts twice). */
  chunksSent: number;
  chunksReused: number;
  /** Raw bytes of the chunks received, over every attempt. */
  bytesSent: number;
  /** Bytes on the wire, over every attempt: what the source served for this round. */
  wireBytes: number;
  /**
   * Of wireBytes, the bytes sent a second time because an attempt ended before its chunks were
   * durable (absent in runs from before it was counted).
   */
  resentBytes?: number;
  /** Attempts the pull took (absent in runs from before it was counted). */
  attempts?: number;
  compressionRatio: number;
  throughputMBps: number;
  /** Time spent pulling, over every attempt (without the gaps between them). */
  durationMs: number;
  corruptRefetched: number;
  /**
   * How the target wrote the image into its volume directory, when it did (the final round, and
   * pre-copy rounds that lay the image down early): `patch` writes only what changed since the
   * image the volume held, `full` the whole image (with `fallback`: why it could not patch).
   */
  extract?: VolumeExtractFigures;
  /**
   * A pre-copy round at a target whose standby prepares itself from its volume (the sample reads
   * its log ahead): how long the round waited for it to catch up with what the round laid down,
   * and how far behind it was then (`pending`: its own count, e.g. full log segments not yet read).
   * Not part of `durationMs`.
   */
  standby?: { waitedMs: number; pendingBefore: number; pendingAfter: number; gaveUp?: string };
}

/** What writing an image into a volume directory cost at the target. */
export interface VolumeExtractFigures {
  method: 'patch' | 'full';
  fallback?: string;
  /** File bytes written (whole new files and changed ranges). */
  bytesWritten: number;
  filesWritten: number;
  filesKept: number;
  bytesKept: number;
  filesRemoved: number;
  dirsWritten: number;
  durationMs: number;
  /**
   * A patch's steps, ms from its start (each only when reached): `compared` (the changed ranges
   * found and staged), `staged` (staging and the journal durable), `committed` (the journal in
   * place and its directory durable), `applied` (the writes done), `durable` (the volume, its
   * record and the journal's removal durable: the end).
   */
  stepsMs?: { compared?: number; staged?: number; committed?: number; applied?: number; durable?: number };
}

/** Why the migration runs in its mode: the policy's decision and what it was made from. */
export interface ModeRecord {
  mode: Mode;
  /** True when the request's `mode` chose it, not the policy. */
  override: boolean;
  /** What the link alone said, before trust and hysteresis. */
  linkMode: Mode;
  reason: string;
  prediction: { meanMbps: number; lowMbps: number; rttMs: number | null; source: string; fallbackReason?: string; sampleCount: number };
  plan: { codec: string; level?: number; streams: number; chunkPreset: string; estimatedSeconds: number };
}

export interface ModeSwitch {
  /** The switch applies from this round on. */
  round: number;
  from: Mode;
  to: Mode;
  reason: string;
}

/**
 * A change the federation log committed for a migration, with its proof: who acked it (CFT) or
 * signed its commit (BFT). Signatures stay in the sites' logs; `quorum` says how many were needed.
 */
export interface FederationCommitRecord {
  protocol: 'cft' | 'bft';
  certificate:
    | { protocol: 'cft'; term: number; index: number; ackedBy: string[] }
    | { protocol: 'bft'; view: number; seq: number; digest: string; signers: string[] };
  quorum: { needed: number; total: number; got: number };
  /** True if the commit had to wait for quorum; `lastStatus` is the last thing it said then. */
  waited: boolean;
  lastStatus?: string;
  waitedMs: number;
  round: number;
  requestId: string;
}

/** The migration's dealings with the federation log. */
export interface MigrationConsensus {
  /** The target's capacity, held for this migration. */
  reservation?: FederationCommitRecord;
  /** "The workload now runs on the target": after it, the migration rolls forward. */
  placement?: FederationCommitRecord;
  /** While a commit waits: e.g. `waiting for quorum: 2 of 4 sites reachable, need 3`. */
  status?: string;
}

export interface MigrationProgress {
  workloadId: string;
  phase: Phase;
  paused: boolean;
  source?: string;
  target: string;
  steps: StepProgress[];
  /** Mode of the transfer. */
  mode?: Mode;
  /** The first mode decision, with its inputs. */
  decision?: ModeRecord;
  /** Mode changes between pre-copy rounds. */
  modeSwitches: ModeSwitch[];
  /** Per-round figures of the volume sync, as rounds finish. */
  rounds: RoundSummary[];
  /** Volume size in the last finished round. */
  bytesTotal?: number;
  /** Bytes on the wire in finished rounds (live bytes come from the pull's heartbeat). */
  bytesTransferred: number;
  /** Of bytesTransferred, bytes sent again after an attempt of a pull ended early (absent in runs from before it was counted). */
  resentBytes?: number;
  /** 'pre-copy', 'converged', 'not converging', 'final'. */
  syncStatus?: string;
  /** Reservation and placement commits (absent in runs from before they existed). */
  consensus?: MigrationConsensus;
  error?: string;
}

/**
 * A digest of a workload's data: equal digests mean equal data. The sample gives its keys and a
 * sha256 over the sorted key=value pairs; a workload added from a spec gives the sha256 of what
 * its verification printed, and no keys (activities/site-workloads.ts).
 */
export interface WorkloadDigest {
  keys?: number;
  sha256: string;
}

/** "12 keys (sha256 0123456789ab)" for the sample, "digest 0123456789ab" for a spec workload. */
export function digestText(d: WorkloadDigest): string {
  return d.keys === undefined ? `digest ${d.sha256.slice(0, 12)}` : `${d.keys} keys (sha256 ${d.sha256.slice(0, 12)})`;
}

export interface MigrationResult {
  workflowId: string;
  workloadId: string;
  status: 'completed';
  source: string;
  target: string;
  /** Where the workload is served now. */
  address: string;
  /** Bytes on the wire over every round and every attempt of its pull. */
  bytesTransferred: number;
  /**
   * Of bytesTransferred, bytes sent a second time: chunks an attempt of a pull received but had not
   * made durable when it ended (a crash, a timeout), fetched again by the next attempt. Absent in
   * runs from before it was counted.
   */
  resentBytes?: number;
  /** Size of the volume image at cut-over. */
  volumeBytes: number;
  /** Manifest root hash of the volume at cut-over (the target verified every chunk against it). */
  rootHash: string;
  mode: Mode;
  decision: ModeRecord;
  modeSwitches: ModeSwitch[];
  rounds: RoundSummary[];
  precopyRounds: number;
  converged: boolean;
  notConverging: boolean;
  /** Keys the target served at the health check, equal to the source's at the freeze (the sample's only). */
  keys?: number;
  /** The digest both ends verified to (the sample's sha256; a spec workload's: of what its verification printed). */
  digest?: string;
  verified: boolean;
  startedAtMs: number;
  finishedAtMs: number;
  durationMs: number;
  /** From the source's freeze until the route pointed at the serving target. */
  downtimeMs: number;
  /** The committed reservation and placement with their certificates (absent in runs from before they existed). */
  consensus?: { reservation: FederationCommitRecord; placement: FederationCommitRecord };
}
