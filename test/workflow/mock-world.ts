/**
 * Mocked activities for the workflow tier: the control worker's, each site's (site, sync, link)
 * and the fake federation's, behind the same names and shapes as the real ones, with no agents,
 * files or processes behind them.
 *
 * Every call is written to its migration's call log (one per workload: the calling workflow is
 * `migrate-<workload>` or its child `migrate-<workload>-sync`), one line per call in the order the
 * activities ran, e.g. `dc:frankfurt startInstance` or `federation release dc:frankfurt`. A test
 * scripts a migration before it starts: fail one call (non-retryable, and a `✗` line follows it
 * in the log), hold one until the test lets it go, or leave one proposal unanswered.
 *
 * The federation log is faked behind the one way a migration proposes (`proposeFast`, and the
 * target's cut-over, which sends the placement the same way): a request id is logged when it first
 * arrives (`federation place dc:frankfurt`), answered the same each time it is sent again (logged
 * `(resent)`), or, when held, left without an answer however often it is sent (logged once).
 */
import { EventEmitter, once } from 'node:events';
import { Context } from '@temporalio/activity';
import { ApplicationFailure } from '@temporalio/common';
import type { ControlActivities, ValidatedMigration } from '../../activities/control';
import type { SiteActivities } from '../../activities/site';
import type { CapturedImage, RoundFigures, SyncActivities } from '../../activities/sync';
import type { LinkActivities } from '../../activities/link';
import type { FederationEntry } from '../../core/consensus/entries';
import type { ProposalResult } from '../../core/contracts/federation';
import type { FastProposal, FastProposalRequest } from '../../activities/federation-propose';

export const SOURCE = 'dc:paris';
export const TARGET = 'dc:frankfurt';
export const FEDERATION = 'wf-tier';
export const MEMBERS = [SOURCE, TARGET, 'dc:madrid'];
export const INJECTED = 'InjectedFailure';

const SOURCE_ENDPOINT = 'http://source-agent.invalid:1';
const DIGEST = { keys: 42, sha256: 'ab'.repeat(32) };
export const FINAL_ROOT = 'final-image';
export const PRECOPY_ROOT = 'precopy-image';

export interface Script {
  /** The call (its log line) that fails; a federation line is rejected by the log instead. */
  failOn?: string;
  /** A federation proposal (its log line) left unanswered, as without quorum. */
  holdOn?: string;
  /** The call (its log line) that waits until the test calls `release(line)`. */
  gateOn?: string;
  /** A federation proposal (its log line) the federation refuses outright, as its validator would. */
  refuseOn?: string;
  /** From this prediction on (1 = the measure step's), the link predicts as a slow, far one. */
  slowLinkFrom?: number;
  /** Bytes each pre-copy round sends, by round (default 4 KiB: converged at once). */
  preCopyBytes?: number[];
}

export class MigrationRun {
  readonly lines: string[] = [];
  finalImage?: CapturedImage;
  /** The fake log's answers by request id, and the request ids it holds unanswered. */
  private readonly answered = new Map<string, Omit<ProposalResult, 'certificate'>>();
  private readonly held = new Set<string>();
  private quorumBack = false;
  /** The chunk preset of every capture, in order. */
  readonly presets: string[] = [];
  predictions = 0;
  private round = 0;
  private readonly events = new EventEmitter();
  private readonly gate: { opened: boolean; open: () => void; wait: Promise<void> };

  constructor(readonly script: Script) {
    let open!: () => void;
    const wait = new Promise<void>((r) => (open = r));
    this.gate = { opened: false, open, wait };
  }

  record(line: string): void {
    this.lines.push(line);
    this.events.emit('line', line);
  }

  /** Resolves once `line` is in the log (an event, not a poll). */
  async seen(line: string): Promise<void> {
    while (!this.lines.includes(line)) await once(this.events, 'line');
  }

  release(): void {
    this.gate.opened = true;
    this.gate.open();
  }

  /** The fake federation log: commits, rejects (a scripted failOn) or holds (holdOn) a proposal. */
  propose(args: FastProposalRequest): FastProposal {
    const { requestId, entries } = args.proposal;
    const line = `federation ${describe(entries)}`;
    const first = this.answered.get(requestId);
    if (first) {
      this.record(`${line} (resent)`);
      return { result: first };
    }
    if (this.script.refuseOn === line) {
      this.record(`✗ ${line} (refused)`);
      return { pending: 'the federation refused the proposal: injected', refused: true };
    }
    if (this.held.has(requestId) && !this.quorumBack) return { pending: `no answer within ${args.waitMs} ms`, status: HELD_STATUS };
    // A held proposal that is answered at last was logged when it first came.
    if (!this.held.delete(requestId)) this.record(line);
    if (this.script.holdOn === line && !this.quorumBack) {
      this.held.add(requestId);
      return { pending: `no answer within ${args.waitMs} ms`, status: HELD_STATUS };
    }
    const rejected = this.script.failOn === line;
    if (rejected) this.record(`✗ ${line}`);
    const round = ++this.round;
    const result = {
      requestId,
      protocol: 'cft' as const,
      round,
      summary: { protocol: 'cft' as const, term: 1, index: round, ackedBy: MEMBERS },
      quorum: { needed: Math.floor(MEMBERS.length / 2) + 1, total: MEMBERS.length, got: MEMBERS.length },
      waitedMs: 0,
      rejected: rejected ? entries.map((_, position) => ({ position, reason: 'injected: the log refuses it' })) : [],
    };
    this.answered.set(requestId, result);
    return { result };
  }

  /** The quorum is back: held proposals are answered the next time they are sent. */
  restoreQuorum(): void {
    this.quorumBack = true;
  }

  /** What ran after the injected failure: the saga's compensations. */
  afterFailure(): string[] {
    const i = this.lines.findIndex((l) => l.startsWith('✗'));
    if (i < 0) throw new Error(`no failure in the call log: ${this.lines.join(' | ')}`);
    return this.lines.slice(i + 1);
  }

  /** Logs the call; fails it or holds it as scripted. */
  async call(line: string): Promise<void> {
    this.record(line);
    if (this.script.gateOn === line && !this.gate.opened) {
      const ctx = Context.current();
      // Heartbeats while held, so the activity is seen alive (and can be cancelled).
      const beat = setInterval(() => ctx.heartbeat(), 200);
      try {
        await this.gate.wait;
      } finally {
        clearInterval(beat);
      }
    }
    if (this.script.failOn === line) {
      this.record(`✗ ${line}`);
      throw ApplicationFailure.nonRetryable(`injected failure at '${line}'`, INJECTED);
    }
  }
}

export class MockWorld {
  readonly runs = new Map<string, MigrationRun>();

  /** Scripts the migration of `workloadId`; call before starting it. */
  script(workloadId: string, script: Script = {}): MigrationRun {
    const run = new MigrationRun(script);
    this.runs.set(workloadId, run);
    return run;
  }

  private runOf(workflowId: string | undefined): MigrationRun {
    // The migration itself first: a workload may be named `...-sync` too.
    const workload = workflowId?.startsWith('migrate-') ? workflowId.slice('migrate-'.length) : undefined;
    const run = workload === undefined ? undefined : (this.runs.get(workload) ?? this.runs.get(workload.replace(/-sync$/, '')));
    // Not retryable: a call nobody scripted is a bug in the test, and time skipping would retry it fast forever.
    if (!run) throw ApplicationFailure.nonRetryable(`no scripted migration for workflow '${workflowId}' (scripted: ${[...this.runs.keys()].join(', ')})`, 'UnscriptedCall');
    return run;
  }

  private current(): MigrationRun {
    return this.runOf(Context.current().info.workflowExecution?.workflowId);
  }

  control(): ControlActivities {
    return {
      validateMigration: async (req): Promise<ValidatedMigration> => {
        await this.current().call('control validateMigration');
        return {
          workloadId: req.workloadId,
          source: SOURCE,
          target: req.targetSite,
          image: 'kv-service',
          instance: { provider: 'local', site: SOURCE, id: 'i-source' },
          volume: { provider: 'local', site: SOURCE, id: `${req.workloadId}-data` },
          sourceTrust: 'trusted',
          targetTrust: 'trusted',
          federation: FEDERATION,
        };
      },
      releaseMigration: async () => this.current().call('control releaseMigration'),
      proposeFast: async (args) => this.current().propose(args),
      ensureFederation: async () => {
        await this.current().call('control ensureFederation');
        return FEDERATION;
      },
      switchRoute: async () => {
        await this.current().call('control switchRoute');
        return Date.now();
      },
    };
  }

  /** The activities of one site's agent: its task queue is `fedflow-site-<site>`. */
  site(site: string): SiteActivities & SyncActivities & LinkActivities {
    const at = (what: string) => this.current().call(`${site} ${what}`);
    return {
      agentEndpoint: async () => {
        await at('agentEndpoint');
        return SOURCE_ENDPOINT;
      },
      thawWorkload: async () => at('thawWorkload'),
      startInstance: async (args) => {
        await at('startInstance');
        return { instance: { provider: 'local', site, id: `i-${args.name}` }, address: '127.0.0.1:1' };
      },
      removeTargetCopy: async () => at('removeTargetCopy'),
      decommission: async () => {
        await at('decommission');
        return Date.now();
      },
      probeLink: async (args) => {
        await at('probeLink');
        return { from: args.source, to: site, samples: [], summary: {} } as unknown as Awaited<ReturnType<LinkActivities['probeLink']>>;
      },
      predictLink: async () => {
        const run = this.current();
        await at('predictLink');
        const slow = run.script.slowLinkFrom !== undefined && ++run.predictions >= run.script.slowLinkFrom;
        const [meanMbps, lowMbps, rttMs] = slow ? [20, 10, 120] : [900, 800, 1];
        return { meanMbps, lowMbps, rttMs, source: 'onnx', inputs: { sampleCount: 8, lastMbps: meanMbps, features: null, modelPath: 'mock', adaptation: null } };
      },
      captureImage: async (args) => {
        const final = args.freeze !== undefined;
        this.current().presets.push(args.preset);
        await at(final ? 'captureImage (freeze)' : 'captureImage');
        const root = final ? FINAL_ROOT : PRECOPY_ROOT;
        const image: CapturedImage = {
          manifest: { volumeId: args.volumeId, rootHash: root, paramsId: 'mock', chunkCount: 4, totalBytes: 4096 },
          scanMs: 1,
          endpoint: SOURCE_ENDPOINT,
          ...(final ? { frozenAtMs: Date.now(), digest: DIGEST } : {}),
        };
        // The cut-over's capture announces the image to the target waiting for it.
        if (args.publishAs) this.current().finalImage = image;
        return image;
      },
      releaseImage: async (args) => at(`releaseImage ${args.root}`),
      pullDelta: async (args) => {
        const run = this.current();
        await at('pullDelta');
        const sent = args.kind === 'precopy' ? run.script.preCopyBytes?.[args.round - 1] : undefined;
        return { ...figures(args.round, args.kind), mode: args.plan.mode, ...(sent !== undefined ? { bytesSent: sent, wireBytes: sent } : {}) };
      },
      cutoverTarget: async (args) => {
        const run = this.current();
        await at('cutoverTarget');
        let root: string;
        if ('awaitFinal' in args) {
          // Waits for the source's final image as the real one long-polls for it; a cancel (the
          // capture failed) ends the wait.
          const ctx = Context.current();
          while (!run.finalImage) {
            ctx.heartbeat();
            await ctx.sleep(10);
          }
          root = run.finalImage.manifest.rootHash;
        } else root = args.root;
        // A failure scripted here comes once the target holds the frozen image (the placement may
        // then have been proposed, so the saga must settle it).
        await at('cutoverTarget: image received');
        // Holding the image, the target proposes the placement (as the real one does).
        const placement = args.placement ? run.propose(args.placement) : undefined;
        return { figures: { ...figures(args.round, 'final'), mode: args.plan.mode }, served: DIGEST, servingAtMs: Date.now(), image: { root, frozenAtMs: Date.now(), digest: DIGEST }, ...(placement ? { placement } : {}) };
      },
    };
  }
}

const HELD_STATUS = 'waiting for quorum: 1 of 3 sites reachable, need 2';

/** `reserve dc:frankfurt`, `release dc:frankfurt`, `place dc:frankfurt`. */
function describe(entries: FederationEntry[]): string {
  return entries
    .map((e) => {
      if (e.kind === 'reservation') return `${e.op} ${e.site}`;
      if (e.kind === 'placement') return `place ${e.site}`;
      return e.kind;
    })
    .join(', ');
}

function figures(round: number, kind: 'precopy' | 'final'): RoundFigures {
  // 4 KiB sent: under the 4 MiB a pre-copy round needs to count as converged, so one round does.
  return {
    round,
    kind,
    mode: 'datacenter',
    codec: 'lz4',
    bytesScanned: 4096,
    chunks: 4,
    chunksSent: 4,
    chunksReused: 0,
    bytesSent: 4096,
    wireBytes: 2048,
    compressionRatio: 2,
    throughputMBps: 100,
    durationMs: 1,
    corruptRefetched: 0,
  };
}
