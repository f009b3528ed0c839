/**
 * Delta-sync activities, bound to one site: capture a volume image (source side) and pull what
 * the target lacks (target side). Payloads carry manifest root hashes, counts and figures only;
 * the chunks travel agent to agent over the chunk endpoint.
 */
import { Context, heartbeat, log } from '@temporalio/activity';
import { ApplicationFailure } from '@temporalio/common';
import type { LocalProvider } from '../adapters/local/provider';
import type { InstanceRef } from '../adapters/common/cloud-provider';
import { summarize, type ManifestSummary } from '../core/manifest';
import { TRANSFER_CHUNK_PRESETS, type TransferChunkPreset, type TransferPlan } from '../core/transfer-plan';
import type { RoundSummary } from '../core/migration';
import type { ChunkStore } from '../agent/store/chunk-store';
import { chooseHybridCodec } from '../agent/transfer/codec-chooser';
import type { CaptureReuse, SourceImages } from '../agent/capture/source-images';
import { TransferSampler, type LinkTelemetry } from '../agent/link/telemetry';
import { ChunkCorruptError, fetchFinalImage, fetchManifest, newPullCounters, pullMissingChunks, TransferRefusedError, type PullProgress } from '../agent/transfer/client';
import { LEDGER_WRITE_MS, memoryPullLedger, parseTotals, pullKey, totalsOf, withAttempt, type PullLedger, type PullTotals } from '../agent/transfer/pull-ledger';
import { finalSlot, type FinalImage } from '../agent/capture/final-images';
import { extractVolume, type ExtractFigures } from '../agent/capture/volume-extract';
import { onlyImagesHere, recoverVolume } from '../agent/capture/volume-journal';
import type { Manifest } from '../core/manifest';
import { currentActivity } from './activity-context';
import { proposeByUpdate, type FastProposal, type FastProposalRequest } from './federation-propose';
import { claimsFor, issueToken } from '../agent/transfer/token';
import type { WorkloadDigest } from '../agent/workload/sample-admin';
import type { SiteWorkloads } from './site-workloads';
import { asActivityFailure } from './workload';
import { FailureType } from '../core/contracts/failures';
import type { FrontHooks } from '../agent/front/front-set';
import { PeerIdentityError, TlsMaterialError, type PeerCall, type SiteTls } from '../agent/transfer/tls';

export interface SyncDeps {
  site: string;
  provider: LocalProvider;
  /** The site's workloads: the cut-over freezes the source's and activates the target's through them. */
  workloads: SiteWorkloads;
  images: SourceImages;
  store: () => Promise<ChunkStore>;
  secret: Uint8Array;
  /** This agent's TLS material: pulls and the final-image poll then use mutual TLS (absent: plain HTTP). */
  tls?: SiteTls;
  /** Where each round's goodput is kept as a link sample, for the next prediction. */
  telemetry?: LinkTelemetry;
  endpointUrl: () => string;
  /**
   * Where each attempt of a pull records what it received, so that a retry's figures count the
   * attempts before it (agent/transfer/pull-ledger.ts). In memory when not given.
   */
  ledger?: PullLedger;
  /** The workload fronts of this process (agent/front/): held at the freeze, so no poll adds to the downtime. */
  front?: FrontHooks;
}

export interface CapturedImage {
  manifest: ManifestSummary;
  scanMs: number;
  endpoint: string;
  /** Present for the cut-over capture: the source froze just before it. */
  frozenAtMs?: number;
  digest?: WorkloadDigest;
  /** Hybrid mode: the codec that maximised goodput on sample chunks of this image. */
  hybridCodec?: { codec: 'none' | 'lz4' | 'zstd'; level?: number; goodputMBps: number };
  /**
   * Where this activity's time went, ms from its start to the end of each step (freeze, capture,
   * announce, verify): read from the history by the downtime benchmark. Small, never used to decide.
   */
  phases?: Record<string, number>;
  /** What a directory capture reused from the previous round's (agent/capture/reuse-cache.ts). */
  reuse?: CaptureReuse;
  /**
   * A pre-copy capture of a spec workload with a flush hook: the hook ran first (how long it took),
   * or failed (why; the capture went on without it).
   */
  flush?: { ms: number } | { error: string };
}

/** Heartbeat details of a cut-over capture: when the first attempt froze the workload. */
interface CaptureHeartbeat {
  frozenAtMs: number;
}

/** How often a capture heartbeats while it scans (the SDK throttles to its own interval). */
const CAPTURE_HEARTBEAT_MS = 1_000;

/** One round's figures, as the progress query and the result show them. */
export type RoundFigures = RoundSummary;

/**
 * Heartbeat details of a pull: the resume cursor (contiguous batches verified) and figures.
 * `cursor`, `batches`, `chunksDone` and `queued` are this attempt's; `rawBytes` and `wireBytes`,
 * like `totals`, count every attempt of the pull so far, so that live progress and a retry that
 * finds no ledger record start from them.
 */
export interface PullHeartbeat extends PullProgress {
  root: string;
  /** Every attempt so far, this one included (absent in heartbeats of earlier versions). */
  totals?: PullTotals;
}

export interface PullArgs {
  endpoint: string;
  source: string;
  root: string;
  plan: TransferPlan;
  round: number;
  kind: 'precopy' | 'final';
  /** Token lifetime the workflow grants this transfer. */
  ttlSeconds: number;
  assembleVolumeId?: string;
}

export function createSyncActivities(deps: SyncDeps) {
  const ledger = deps.ledger ?? memoryPullLedger();
  /** How this agent calls `source`'s agent: with its TLS material, the server checked to be that site. */
  const peerOf = (source: string): PeerCall => ({ site: source, ...(deps.tls ? { tls: deps.tls } : {}) });
  /** Pulls running in this process, by pull key: the attempt, and how to stop it. */
  const pulling = new Map<string, { attempt: number; stop: AbortController; done: Promise<void> }>();
  const activities = {
    /** Source: archive, chunk and hash the volume into an image; at cut-over, freeze the workload first. */
    async captureImage(args: {
      volumeId: string;
      preset: TransferChunkPreset;
      freeze?: InstanceRef;
      hybridBandwidthMbps?: number;
      /** Cut-over key: announce the frozen image to the target waiting on GET /finals/<slot>. */
      publishAs?: string;
    }): Promise<CapturedImage> {
      // Alive from start to end (the freeze, the scan, the codec sample, the announcement): a
      // cut-over capture has a short heartbeat timeout, so that after a crash it is retried within
      // seconds, not minutes, while the source is frozen.
      // A cut-over capture keeps the time of its first freeze: an attempt retried after a crash
      // freezes again (a no-op on a frozen workload) but the downtime counts from the first. The
      // heartbeats carry it too (every one: one without would erase it).
      const prior = args.freeze ? (Context.current().info.heartbeatDetails as CaptureHeartbeat | undefined) : undefined;
      let details: CaptureHeartbeat | undefined = prior?.frozenAtMs !== undefined ? { frozenAtMs: prior.frozenAtMs } : undefined;
      heartbeat(details);
      const beat = setInterval(() => heartbeat(details), CAPTURE_HEARTBEAT_MS);
      const t0 = performance.now();
      const phases: Record<string, number> = {};
      const mark = (step: string) => void (phases[step] = Math.round(performance.now() - t0));
      try {
        let frozenAtMs: number | undefined;
        let digest: WorkloadDigest | undefined;
        let verifyLater: (() => Promise<WorkloadDigest>) | undefined;
        // A pre-copy round: the service first writes down what it holds only in memory (its spec's
        // flush hook, e.g. PostgreSQL's CHECKPOINT), so this round carries it and the freeze's clean
        // stop has less to write, the final round less to send. Never at the cut-over: the freeze does it.
        // The files it wrote are within the reuse rule's racy window when this capture stats them
        // (agent/capture/reuse-rule.ts), so the cut-over's capture reads them again; their chunks
        // are then found unchanged and not sent. Waiting that window out (1 s) before capturing
        // was measured no better: more changes pile up meanwhile (docs/workloads.md).
        const flush = args.freeze ? undefined : await deps.workloads.flushVolume(args.volumeId);
        if (flush && 'error' in flush) log.warn(`the flush hook before the capture of ${args.volumeId} did not run through; this round captures without it (the cut-over is unaffected, only heavier)`, { error: flush.error });
        if (flush) mark('flush');
        if (args.freeze) {
          const st = await deps.workloads.view(args.freeze);
          // Frozen already: an earlier attempt froze it (a freeze that stops the service leaves it
          // not running); its digest is taken again on the frozen data.
          if (!(st.running || st.status === 'frozen') || !st.address) {
            // Retrying cannot help: the instance must be started again by whoever stopped it, and a
            // cut-over from a source that serves nothing would lose its unflushed writes.
            throw ApplicationFailure.nonRetryable(
              `source instance '${args.freeze.id}' on '${deps.site}' is ${st.status}; it must be running to be frozen for the cut-over (start it and migrate again)`,
              'SourceNotRunning',
            );
          }
          // The first freeze's time, kept across attempts: written down at the source before the
          // freeze (the fast cut-over's slot), else carried in the heartbeat details.
          const firstMs = prior?.frozenAtMs ?? Date.now();
          frozenAtMs = args.publishAs ? deps.images.finals.firstFreeze(finalSlot(args.publishAs), firstMs) : firstMs;
          // New connections are held at the front from here: none reaches the source while it freezes.
          deps.front?.freezing(st.address);
          const frozen = await deps.workloads.freeze(args.freeze, st.address).catch(asActivityFailure);
          if ('digest' in frozen) digest = frozen.digest;
          else verifyLater = frozen.verify;
          mark('freeze');
        }
        if (frozenAtMs !== undefined) heartbeat((details = { frozenAtMs }));
        // A retry of a cut-over capture whose image was announced already (the process died after
        // the announcement) takes that image again: the target may be pulling or running it, and
        // the volume may have changed since (a verification's private boot writes its checkpoint).
        // (A slot belongs to one cut-over of one run: an image in it was announced by an earlier
        // attempt of this very capture, also one that died before its first heartbeat.)
        const slot = args.publishAs && args.freeze ? finalSlot(args.publishAs) : undefined;
        const announced = slot ? deps.images.finals.get(slot) : undefined;
        if (announced && deps.images.get(announced.manifest.rootHash)) {
          digest ??= announced.digest;
          if (!digest && verifyLater) digest = await verifyLater().catch(asActivityFailure);
          if (!announced.digest && digest) await deps.images.finals.publish(slot!, { ...announced, digest });
          // As below: written down before this activity completes.
          await deps.images.persist(announced.manifest.rootHash);
          return { manifest: announced.manifest, scanMs: 0, endpoint: deps.endpointUrl(), frozenAtMs, digest, hybridCodec: announced.hybridCodec };
        }
        const volume = deps.provider.volumePath(args.volumeId);
        const { manifest, scanMs, reuse } = await deps.images.capture(args.volumeId, volume, TRANSFER_CHUNK_PRESETS[args.preset], { frozen: !!args.freeze });
        mark('capture');
        let hybridCodec: CapturedImage['hybridCodec'];
        if (args.hybridBandwidthMbps) {
          // Sample up to 8 chunks spread over the image: the codec is chosen on this volume's data.
          // Read synchronously (the page cache: microseconds each), as the chunk endpoint reads:
          // an async read queues on the thread pool behind whatever fsyncs this process has in flight.
          const step = Math.max(1, Math.floor(manifest.chunks.length / 8));
          const samples: Uint8Array[] = [];
          for (let i = 0; i < manifest.chunks.length && samples.length < 8; i += step) samples.push(deps.images.readChunkSync(manifest.rootHash, manifest.chunks[i]!.hash)!);
          if (samples.length) {
            const best = chooseHybridCodec(samples, args.hybridBandwidthMbps).best;
            hybridCodec = { codec: best.spec.codec, ...(best.spec.codec === 'zstd' ? { level: best.spec.level } : {}), goodputMBps: best.goodput / 1e6 };
          }
        }
        const summary = summarize(manifest);
        if (args.publishAs && frozenAtMs !== undefined && (digest || verifyLater)) {
          const slot = finalSlot(args.publishAs);
          const image = { manifest: summary, frozenAtMs, ...(hybridCodec ? { hybridCodec } : {}) };
          // Announced at once; a digest still to be taken follows in a second announcement.
          await deps.images.finals.publish(slot, { ...image, ...(digest ? { digest } : {}) });
          mark('announce');
          if (verifyLater) {
            digest = await verifyLater().catch(asActivityFailure);
            await deps.images.finals.publish(slot, { ...image, digest });
            mark('verify');
            // Written down before this activity completes (it was 2 s after the capture): an agent
            // that died after that, before the write, came back without the image, and with the
            // capture complete nothing announced another, so the target's pull was refused and the
            // cut-over rolled back. Here the window is already the target's (its start, its check).
            await deps.images.persist(manifest.rootHash);
          }
        } else if (verifyLater) {
          digest = await verifyLater().catch(asActivityFailure);
          mark('verify');
        }
        return { manifest: summary, scanMs, endpoint: deps.endpointUrl(), frozenAtMs, digest, hybridCodec, phases, ...(reuse ? { reuse } : {}), ...(flush ? { flush } : {}) };
      } finally {
        clearInterval(beat);
      }
    },

    /** Source: drop an image once its round is over. */
    async releaseImage(args: { root: string }): Promise<void> {
      await deps.images.release(args.root);
    },

    /**
     * Target: pulls the chunks of a manifest that the local store lacks, verified, and (for the
     * final round) writes them out as the volume. Heartbeats its cursor; a retry resumes from it
     * and never fetches a verified chunk again (those are in the store). `mark` (the cut-over's;
     * Temporal never passes it) is told when the manifest is fetched and when the chunks are pulled.
     */
    async pullDelta(args: PullArgs, mark?: (step: string) => void): Promise<RoundFigures> {
      const ctx = Context.current();
      const { info } = ctx;
      const key = pullKey(info.workflowExecution?.workflowId ?? info.activityType, info.workflowExecution?.runId ?? '', info.activityId, args.root);
      // An earlier attempt of this pull may still run here: the server gave it up (its heartbeats
      // did not reach it through an outage) but nothing told this process yet. Stop it before
      // diffing against the store, or both attempts fetch the same chunks.
      const orphan = pulling.get(key);
      if (orphan && orphan.attempt < info.attempt) {
        log.info(`pull: attempt ${orphan.attempt} of this pull still runs here; stopping it for attempt ${info.attempt}`, { root: args.root });
        orphan.stop.abort(new Error(`superseded by attempt ${info.attempt}`));
        // Its commits in flight settle in moments; a final round's volume write may take longer. Bounded
        // under the heartbeat timeout: going on beside it costs bytes, never correctness.
        let timer: NodeJS.Timeout | undefined;
        const stopped = await Promise.race([orphan.done.then(() => true), new Promise<boolean>((r) => (timer = setTimeout(() => r(false), ORPHAN_WAIT_MS)))]);
        clearTimeout(timer);
        if (!stopped) log.warn(`pull: attempt ${orphan.attempt} did not stop within ${ORPHAN_WAIT_MS} ms; going on beside it`, { root: args.root });
      }
      const stop = new AbortController();
      const signal = AbortSignal.any([ctx.cancellationSignal, stop.signal]);
      let settled!: () => void;
      const me = { attempt: info.attempt, stop, done: new Promise<void>((resolve) => (settled = resolve)) };
      pulling.set(key, me);
      try {
        return await pullAttempt(args, key, signal, mark);
      } finally {
        if (pulling.get(key) === me) pulling.delete(key);
        settled();
      }
    },
  };

  /** One attempt of pullDelta: its figures count the attempts before it, from the ledger or the last heartbeat. */
  async function pullAttempt(args: PullArgs, key: string, signal: AbortSignal, mark?: (step: string) => void): Promise<RoundFigures> {
    const ctx = Context.current();
    const { info } = ctx;
    const prior = info.heartbeatDetails as PullHeartbeat | undefined;
    const store = await deps.store();
    let lastBeat: PullHeartbeat | undefined;
    // The workflow decided the token's scope and lifetime; this agent holds the key that signs it.
    const token = issueToken(deps.secret, claimsFor(args.root, args.source, deps.site, Date.now(), args.ttlSeconds));
    // What the earlier attempts of this pull received: the ledger (written as they went, also
    // through a server outage), or the last heartbeat that reached the server if that says more.
    const ledgerEarlier = () => totalsOf(ledger.records(key).filter((r) => r.attempt < info.attempt));
    const beat = prior?.root === args.root ? parseTotals(prior.totals) : undefined;
    const fromLedger = ledgerEarlier();
    const useBeat = !!beat && beat.wireBytes > fromLedger.wireBytes;
    const earlier = useBeat ? beat : fromLedger;
    const counters = newPullCounters();
    const t0 = performance.now();
    const record = (ended: boolean) => {
      try {
        ledger.write(key, { attempt: info.attempt, ...counters, durationMs: Math.round(performance.now() - t0), ended });
      } catch (err) {
        log.warn('pull ledger: could not record this attempt; a retry would count its bytes from the heartbeat only', { error: String(err) });
      }
    };
    const recorder = setInterval(() => record(false), LEDGER_WRITE_MS);
    recorder.unref();
    try {
      // Name the manifests this store holds: the source answers with a delta against one it knows.
      const manifest = await fetchManifest(args.endpoint, args.root, token, signal, { bases: store.recentManifestRoots(), loadBase: (r) => store.getManifest(r), peer: peerOf(args.source) });
      mark?.('manifest');
      const spec = args.plan.codec === 'zstd' ? { codec: 'zstd' as const, level: args.plan.level ?? 3 } : { codec: args.plan.codec };
      // The transfer is a measurement of the link too: its batches, in half-second slices. Best
      // effort: a telemetry file that cannot be written must not fail the transfer.
      const telemetry = deps.telemetry;
      let telemetryFailed = false;
      const sampler =
        telemetry &&
        new TransferSampler((s) => {
          try {
            telemetry.record(args.source, deps.site, s);
          } catch (err) {
            if (!telemetryFailed) log.warn(`link telemetry: could not record a transfer sample in ${telemetry.file}; going on without`, { error: String(err) });
            telemetryFailed = true;
          }
        });
      let figures;
      try {
        figures = await pullMissingChunks({
          endpoint: args.endpoint,
          root: args.root,
          token,
          manifest,
          store,
          plan: { codec: spec, streams: args.plan.streams, batchBytes: args.plan.batchBytes },
          to: deps.site,
          peer: peerOf(args.source),
          resumeCursor: prior?.root === args.root ? prior.cursor : 0,
          counters,
          onProgress: (p) => {
            sampler?.progress(p.wireBytes, p.queued > 0);
            const totals = withAttempt(earlier, counters, performance.now() - t0);
            heartbeat((lastBeat = { ...p, rawBytes: totals.rawBytes, wireBytes: totals.wireBytes, totals, root: args.root } satisfies PullHeartbeat));
          },
          signal,
        });
      } finally {
        clearInterval(recorder);
        record(true);
      }
      mark?.('pulled');
      // An earlier attempt may have gone on beside this one for a moment: count it as it ended.
      const totals = withAttempt(useBeat ? earlier : ledgerEarlier(), counters, figures.durationMs);
      lastBeat = { ...(lastBeat ?? { cursor: 0, batches: 0, chunksDone: 0, queued: 0 }), rawBytes: totals.rawBytes, wireBytes: totals.wireBytes, totals, root: args.root };
      // Keep this round's chunks as baseline for the next round and later syncs. A pre-copy round's:
      // written beside the volume's write (its file write and fsync overlap the patch), durable
      // before this activity returns, so before any later round can rely on it. The final round's
      // (inside the cut-over window): a moment after the window (baselineLater).
      const keep = args.kind === 'final' ? baselineLater : keepingBaseline;
      const extract = await keep(store, manifest, async (): Promise<ExtractFigures | undefined> => {
        if (args.assembleVolumeId) {
          // Patched in place from the image the volume holds (an earlier round's), or streamed
          // whole from the store, made durable and swapped in by rename. Heartbeats as it goes
          // (the same resume cursor): a big volume takes a while to write.
          return extractVolume(store, manifest, deps.provider.volumePath(args.assembleVolumeId), () => heartbeat(lastBeat));
        }
        if (args.kind === 'precopy') return layDownEarly(store, manifest, () => heartbeat(lastBeat));
        return undefined;
      });
      // A pre-copy round that laid its image down gives the standby on that volume (if it
      // prepares itself from it) time to catch up, so the cut-over's activation does not have to.
      const standby = args.kind === 'precopy' && extract ? await deps.workloads.settleStandby(manifest.volumeId, () => heartbeat(lastBeat), signal) : undefined;
      const codec = spec.codec === 'zstd' ? `zstd-${spec.level}` : spec.codec;
      const seconds = Math.max(totals.durationMs / 1000, 1e-6);
      // Chunks the earlier attempts stored are in this attempt's baseline: they were sent, not reused.
      const reused = figures.delta.baselineChunks + figures.delta.repeatChunks + figures.skippedVerified;
      return {
        round: args.round,
        kind: args.kind,
        mode: args.plan.mode,
        codec,
        bytesScanned: manifest.totalBytes,
        chunks: manifest.chunks.length,
        chunksSent: totals.chunks,
        chunksReused: Math.max(0, reused - (totals.storedChunks - counters.storedChunks)),
        bytesSent: totals.rawBytes,
        wireBytes: totals.wireBytes,
        resentBytes: totals.resentBytes,
        attempts: info.attempt,
        compressionRatio: totals.wireBytes ? totals.rawBytes / totals.wireBytes : 1,
        throughputMBps: totals.rawBytes / 1e6 / seconds,
        durationMs: Math.round(totals.durationMs),
        corruptRefetched: figures.corruptRefetched,
        ...(extract ? { extract } : {}),
        ...(standby ? { standby } : {}),
      };
    } catch (err) {
      if (err instanceof TransferRefusedError && (err.status === 401 || err.status === 403 || err.status === 404)) {
        throw ApplicationFailure.nonRetryable(err.message, FailureType.TransferRefused);
      }
      // A URL of the wrong scheme, or a peer whose certificate is not the source's: no retry helps.
      if (err instanceof TlsMaterialError || err instanceof PeerIdentityError) throw ApplicationFailure.nonRetryable(err.message, FailureType.TransferRefused);
      if (err instanceof ChunkCorruptError) throw ApplicationFailure.retryable(err.message, FailureType.ChunkCorrupt);
      throw err;
    }
  }

  /**
   * A pre-copy round writes its image into the target's volume directory too, outside the
   * downtime window, so that the final round only patches what changed since (volume-patch.ts).
   * Only where nothing but fedflow has written (onlyImagesHere): never over a volume something
   * else uses. Best effort: if it fails, the final round extracts the whole image as before.
   */
  async function layDownEarly(store: ChunkStore, manifest: Manifest, onBatch: () => void): Promise<ExtractFigures | undefined> {
    // The manifest names its volume; only a plain name is taken as one (never a path).
    if (!/^[A-Za-z0-9][A-Za-z0-9._-]*$/.test(manifest.volumeId)) return undefined;
    const volume = deps.provider.volumePath(manifest.volumeId);
    try {
      await recoverVolume(volume);
      if (!onlyImagesHere(volume)) return undefined;
      return await extractVolume(store, manifest, volume, onBatch);
    } catch (err) {
      log.warn(`pre-copy: could not write the image of ${manifest.volumeId} into ${volume} early; the final round writes it whole`, { error: String(err) });
      return undefined;
    }
  }

  return {
    ...activities,
    /**
     * Target, at cut-over (the source is frozen): pull the final delta, write the volume, activate
     * the standby instance on it and check it serves exactly what the source held at the freeze.
     * One activity instead of three, because every hop through the workflow adds to the downtime.
     */
    async cutoverTarget(args: CutoverArgs): Promise<{
      figures: RoundFigures;
      served: WorkloadDigest;
      servingAtMs: number;
      image?: { root: string; frozenAtMs: number; digest: WorkloadDigest };
      /** The federation's answer to the placement this attempt proposed (`args.placement`). */
      placement?: FastProposal;
      /** ms from this activity's start to the end of each step (read by the downtime benchmark). */
      phases?: Record<string, number>;
    }> {
      const t0 = performance.now();
      const phases: Record<string, number> = {};
      const mark = (step: string) => void (phases[step] = Math.round(performance.now() - t0));
      let root: string;
      let expected: Promise<WorkloadDigest>;
      let found: FinalImage | undefined;
      if ('awaitFinal' in args) {
        // Started beside the source's freeze: wait for the final image it announces.
        found = await awaitFinalImage(args.endpoint, args.source, args.awaitFinal, args.ttlSeconds);
        root = found.manifest.rootHash;
        mark('image');
      } else {
        root = args.root;
      }
      // A service an earlier attempt of this cut-over started here is stopped before its volume is written.
      await deps.workloads.quiesce(args.instance).catch(asActivityFailure);
      mark('quiesced');
      // The pull marks its own steps (manifest fetched and checked, chunks pulled) in `phases`.
      const figures = await activities.pullDelta({ ...args, root, kind: 'final', assembleVolumeId: args.volumeId }, mark).catch(async (err: unknown) => {
        // The source announced this image and no longer holds it: most likely its agent restarted
        // before writing the image down (SourceImages.capture). If its capture is retried, it
        // announces another image: waited for (bounded), then this attempt fails as retryable and
        // the next one takes it. If none comes (the capture had already ended), the cut-over fails
        // as before, and rolls back.
        if (found && err instanceof ApplicationFailure && err.type === FailureType.TransferRefused && / answered 404: manifest [0-9a-f]{64} is not held by site /.test(err.message)) {
          const awaitFinal = (args as { awaitFinal: string }).awaitFinal;
          const lost = () => ApplicationFailure.nonRetryable(`${err.message}; ${args.source} had announced it, and announced no other image within ${LOST_IMAGE_WAIT_MS / 1000} s`, FailureType.TransferRefused);
          const next = await awaitFinalImage(args.endpoint, args.source, awaitFinal, args.ttlSeconds, { lost: root, untilMs: Date.now() + LOST_IMAGE_WAIT_MS, onTimeout: lost });
          throw ApplicationFailure.retryable(`${args.source} no longer held the final image ${root.slice(0, 12)} it announced, and holds ${next.manifest.rootHash.slice(0, 12)} now (its capture was retried): ${err.message}`, FailureType.TransferRefused);
        }
        throw err;
      });
      mark('pullAndPatch');
      if (found) {
        // The source may announce the image before its digest (it verifies beside this pull):
        // asked for after the pull, while the workload starts.
        const awaitFinal = (args as { awaitFinal: string }).awaitFinal;
        expected = found.digest ? Promise.resolve(found.digest) : awaitFinalDigest(args.endpoint, args.source, awaitFinal, args.ttlSeconds, root);
        expected.catch(() => undefined);
      } else {
        expected = Promise.resolve((args as { expected: WorkloadDigest }).expected);
      }
      // The final round's baseline manifest is stored BASELINE_LATER_MS after the volume's write
      // (baselineLater); the start and the verification below are still inside the window and may
      // take longer than that (a big database): held until this activity ends, and until a retried
      // attempt of it that holds it too ends. (Kept in memory meanwhile: an agent that dies before
      // it is written has lost it, and its next round to this volume extracts whole.)
      const store = await deps.store();
      const releaseBaseline = store.holdManifestLater(root, BASELINE_LATER_MS, ACTIVATION_MAX_MS);
      try {
        // The workload serves on the target only once it verified to the source's digest; only then
        // is the placement proposed. Proposed earlier (beside the activation), a front that follows
        // the log could route clients to a target whose check then fails: their writes would be lost
        // when the cut-over rolls back to the source.
        // A start and a verification take a while (a big database): alive meanwhile.
        const beat = setInterval(() => heartbeat({ activating: root }), 1000);
        let served: WorkloadDigest;
        try {
          served = await deps.workloads.activate(args.instance, args.address, expected, (step) => mark(step)).catch(asActivityFailure);
        } finally {
          clearInterval(beat);
        }
        mark('activated');
        let placement: FastProposal | undefined;
        if (args.placement) {
          // The workflow's commit step is answered from this proposal. An attempt already told it is
          // cancelled (or timed out) does not propose.
          const ctx = Context.current();
          ctx.heartbeat({ proposing: 'placement' });
          if (ctx.cancellationSignal.aborted) throw ctx.cancellationSignal.reason;
          placement = await proposeByUpdate(currentActivity()?.client, args.placement);
          mark('placement');
          // The fronts are not switched here, though the log has the placement: until the workflow
          // checks this activity's result against the source's image and rolls forward, the cut-over
          // may still roll back (a mismatch, a cancel), and writes a front had sent to the target
          // meanwhile would be lost with it. The route step switches them (docs/workloads.md).
        }
        const servingAtMs = Date.now();
        const image = found ? { root, frozenAtMs: found.frozenAtMs, digest: await expected } : undefined;
        return { figures, served, servingAtMs, ...(image ? { image } : {}), ...(placement ? { placement } : {}), phases };
      } finally {
        // Whatever the outcome: the window ends with this activity (or its failure).
        releaseBaseline();
      }
    },
  };

  /**
   * Long-polls the source for the digest of the final image `root` of `cutoverKey`, announced
   * after the image itself. An image with another root means the source's capture was retried:
   * this attempt's pull is of an older image, so it fails and is retried.
   */
  async function awaitFinalDigest(endpoint: string, source: string, cutoverKey: string, ttlSeconds: number, root: string): Promise<WorkloadDigest> {
    for (;;) {
      const again = await awaitFinalImage(endpoint, source, cutoverKey, ttlSeconds, { digestOf: root });
      if (again.manifest.rootHash !== root) {
        throw ApplicationFailure.retryable(`${source} announced another final image (${again.manifest.rootHash.slice(0, 12)}) than the one pulled (${root.slice(0, 12)}): its capture was retried`, FailureType.DataMismatch);
      }
      if (again.digest) return again.digest;
      // An agent from before the digest long poll answers at once: ask again a little later.
      await new Promise((r) => setTimeout(r, FINAL_DIGEST_POLL_MS));
    }
  }

  /**
   * Long-polls the source for the final image of `cutoverKey`, heartbeating between polls (a cancel
   * ends the wait). `digestOf`, `lost`: as fetchFinalImage's. At `untilMs`, throws what `onTimeout` gives.
   */
  async function awaitFinalImage(
    endpoint: string,
    source: string,
    cutoverKey: string,
    ttlSeconds: number,
    opts: { digestOf?: string; lost?: string; untilMs?: number; onTimeout?: () => Error } = {},
  ): Promise<FinalImage> {
    const ctx = Context.current();
    const slot = finalSlot(cutoverKey);
    for (;;) {
      ctx.heartbeat({ waitingFor: 'final image' });
      if (ctx.cancellationSignal.aborted) throw ctx.cancellationSignal.reason;
      const left = opts.untilMs !== undefined ? opts.untilMs - Date.now() : FINAL_POLL_MS;
      if (left <= 0) throw opts.onTimeout?.() ?? new Error(`no final image from ${source} in time`);
      const token = issueToken(deps.secret, claimsFor(slot, source, deps.site, Date.now(), ttlSeconds));
      try {
        const found = await fetchFinalImage(endpoint, slot, token, Math.min(FINAL_POLL_MS, left), ctx.cancellationSignal, peerOf(source), opts.digestOf, opts.lost);
        if (found) return found;
      } catch (err) {
        if (ctx.cancellationSignal.aborted) throw ctx.cancellationSignal.reason;
        if (err instanceof TransferRefusedError && (err.status === 401 || err.status === 403)) throw ApplicationFailure.nonRetryable(err.message, FailureType.TransferRefused);
        if (err instanceof TlsMaterialError || err instanceof PeerIdentityError) throw ApplicationFailure.nonRetryable(err.message, FailureType.TransferRefused);
        if (err instanceof TransferRefusedError && err.status === 404) {
          // Only an agent without the route answers 404 here (one that has it answers 204 until
          // the image comes): waiting cannot help.
          throw ApplicationFailure.nonRetryable(
            `${err.message}: the agent of ${source} at ${endpoint} does not announce final images; upgrade it to this version of fedflow (or migrate with a worker that runs the previous cut-over)`,
            FailureType.TransferRefused,
          );
        }
        throw err;
      }
    }
  }
}

/**
 * Stores `manifest` as a baseline in `store` while `work` runs (the volume's write, which reads
 * the manifest's chunks, never the stored manifest): the manifest is checked and serialised at
 * once, its file written and fsynced on the thread pool beside the work. Returns once both are
 * done, the manifest durable; throws the work's error first, else the store's. (Nothing in
 * fedflow collects unreferenced chunks while a pull runs: gc() is never called by an agent, and
 * the size bound's eviction ignores baselines anyway.)
 */
export async function keepingBaseline<T>(store: ChunkStore, manifest: Manifest, work: () => Promise<T>): Promise<T> {
  const baseline = store.putManifest(manifest, 'baseline');
  const [stored, done] = await Promise.allSettled([baseline, work()]);
  if (done.status === 'rejected') throw done.reason;
  if (stored.status === 'rejected') throw stored.reason;
  return done.value;
}

/** How long after a final round's volume write (a cut-over's: after its activity) its baseline manifest is stored. */
export const BASELINE_LATER_MS = 2_000;
/**
 * While a cut-over's target starts and verifies its workload, its baseline manifest waits at most
 * this long (then it is written, window or not): a failed activation is ended by its own timeouts
 * well before, and the activity's end releases its hold (BASELINE_LATER_MS after the last one).
 */
const ACTIVATION_MAX_MS = 10 * 60_000;

/**
 * The final round's baseline: `work` (the volume's write) first, and the manifest stored as
 * baseline BASELINE_LATER_MS after it ends, whatever its outcome (ChunkStore.putManifestLater;
 * at the store's close at the latest). Not beside the work, as keepingBaseline does: checking
 * and serialising a manifest holds the event loop (a 1 GiB volume's ~60 000 chunks: ~60 ms,
 * `npm run bench -- final-round --sequential`), and in a cut-over that is window time, on the
 * loop the patch, the fronts and the source's chunk endpoint share. Until it is written the store
 * answers getManifest with it from memory: a retried cut-over patches from it as before. A write
 * that fails is logged, not thrown; an agent that dies before it loses it, and the next round to
 * this volume extracts it whole (or fetches its manifest against an older base): a cost, never a
 * wrong byte.
 */
export async function baselineLater<T>(store: ChunkStore, manifest: Manifest, work: () => Promise<T>, delayMs = BASELINE_LATER_MS): Promise<T> {
  let logger: { warn: (m: string, a?: Record<string, unknown>) => void };
  try {
    // The activity may have ended when the write fails: its context's logger, taken now, still writes.
    logger = Context.current().log;
  } catch {
    logger = { warn: (m, a) => console.warn(m, a ?? '') };
  }
  try {
    return await work();
  } finally {
    store.putManifestLater(manifest, 'baseline', delayMs, (err) =>
      logger.warn(`could not keep the final image ${manifest.rootHash.slice(0, 12)} as baseline; the next round to this volume extracts it whole`, { error: String(err) }),
    );
  }
}

/** How long a pull's new attempt waits for an earlier one still running in this process to stop. */
const ORPHAN_WAIT_MS = 10_000;

/** How long the target waits before asking again an agent that does not long-poll for the digest. */
const FINAL_DIGEST_POLL_MS = 25;

/** One long poll for the final image; the waiting activity heartbeats between them. */
const FINAL_POLL_MS = 5_000;

/**
 * How long a target whose announced final image the source no longer holds waits for another
 * (its capture retried: after the capture's heartbeat timeout, 10 s, and the agent's restart).
 */
const LOST_IMAGE_WAIT_MS = 60_000;

/** The target's cut-over: either told the final image, or told to wait for the source to announce it. */
export type CutoverArgs = Omit<PullArgs, 'kind' | 'assembleVolumeId' | 'root'> & { volumeId: string; instance: InstanceRef; address: string } & (
    | { root: string; expected: WorkloadDigest }
    | { awaitFinal: string }
  ) & {
    /** Propose this placement once the volume is verified and on disk (the fast cut-over). */
    placement?: FastProposalRequest;
  };

export type SyncActivities = ReturnType<typeof createSyncActivities>;
