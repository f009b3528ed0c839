/**
 * Link telemetry and prediction, at the target site's agent: probe the link from the source's
 * agent, keep recent samples per site pair (so the next prediction starts warm), and predict the
 * bandwidth ahead with the ONNX model, loaded once per worker (models/predictor.ts).
 */
import { setTimeout as sleep } from 'node:timers/promises';
import { currentActivity } from './activity-context';
import type { LinkProfile, LinkTelemetry } from '../agent/link/telemetry';
import { probe } from '../agent/link/telemetry';
import { endpointToken } from '../agent/transfer/token';
import { peerFetch } from '../agent/transfer/client';
import type { SiteTls } from '../agent/transfer/tls';
import { MIN_SAMPLES } from '../models/features';
import { mergeAgentPrior } from '../models/agent-prior';
import { parseAdaptation, parseAgentRecord } from '../models/link-adaptation';
import type { Prediction, Predictor } from '../models/predictor';
import { defaultPredictor } from '../models/predictor';

export interface LinkDeps {
  site: string;
  telemetry: LinkTelemetry;
  /** The federation's transfer secret: the source's /probe wants a token signed with it. */
  secret: Uint8Array;
  /** This agent's TLS material: probes then go over mutual TLS to the source (absent: plain HTTP). */
  tls?: SiteTls;
  /** How a cold link is warmed up; defaults in WARM_UP. */
  warmUp?: Partial<WarmUp>;
  /** Default: the process-wide predictor (model loaded once per worker). */
  predictor?: Predictor;
  /** Where a stored adaptation state that cannot be used is reported; default console.warn. */
  log?: (line: string) => void;
}

/**
 * A link with fewer samples than the model reads (models/features.ts MIN_SAMPLES) would be
 * predicted by the harmonic-mean fallback. The first probe of such a link takes a short series
 * instead, so the first migration between two sites is decided by the model too.
 */
export interface WarmUp {
  /** Samples to reach before the prediction. */
  samples: number;
  /** Between the starts of two probes (the model was trained on 0.3-5 s spacing). */
  spacingMs: number;
  /** The series stops here, whatever it reached; the prediction then says it fell back. */
  budgetMs: number;
}
export const WARM_UP: WarmUp = { samples: MIN_SAMPLES, spacingMs: 400, budgetMs: 15_000 };

/** Bytes a probe transfers: enough to see a LAN's rate, little enough for a slow link (bounded by time too). */
export const PROBE_BYTES = 4 << 20;

/** What goes into history about a profile: the summary and the last few samples, not the whole ring. */
export function profileRecord(p: LinkProfile, last = 8): LinkProfile {
  return { ...p, samples: p.samples.slice(-last) };
}

export function createLinkActivities(deps: LinkDeps) {
  return {
    /**
     * Probes the link source -> this site against the source agent's probe endpoint: one sample,
     * or a short series while the link has fewer samples than the model needs (WarmUp). Each
     * sample is kept as it is taken, so a retried activity goes on from what it already has.
     */
    async probeLink(args: { source: string; endpoint: string }): Promise<LinkProfile> {
      const warm = { ...WARM_UP, ...deps.warmUp };
      const signal = currentActivity()?.cancellationSignal;
      // One connection pool for the series (the server checked to be the source's agent); a
      // probe's handshake is then paid once, not counted in every round trip.
      const peer = peerFetch(args.endpoint, { site: args.source, ...(deps.tls ? { tls: deps.tls } : {}) });
      try {
        // A fresh token per probe: a warm-up series may outlast one, and the token names this site
        // as the target, so the source shapes the filler over the link to here.
        const once = () =>
          probe({
            url: `${args.endpoint}/probe?bytes=${PROBE_BYTES}`,
            rttUrl: `${args.endpoint}/probe?bytes=0`,
            headers: { authorization: `Bearer ${endpointToken(deps.secret, 'probe', args.source, deps.site)}` },
            fetch: peer.fetch,
            ...(signal ? { signal } : {}),
          });
        const started = Date.now();
        let profile = deps.telemetry.record(args.source, deps.site, await once());
        let lastStart = started;
        while (profile.samples.length < warm.samples && Date.now() - started + warm.spacingMs < warm.budgetMs) {
          currentActivity()?.heartbeat({ samples: profile.samples.length, of: warm.samples });
          await sleep(Math.max(0, lastStart + warm.spacingMs - Date.now()), undefined, signal ? { signal } : {});
          lastStart = Date.now();
          profile = deps.telemetry.record(args.source, deps.site, await once());
        }
        return profileRecord(profile);
      } finally {
        peer.close();
      }
    },

    /** Predicts source -> this site from the samples kept here. Never fails for a missing model. */
    async predictLink(args: { source: string }): Promise<Prediction> {
      const profile = deps.telemetry.profile(args.source, deps.site);
      if (!profile.samples.length) throw new Error(`no samples for link ${args.source} -> ${deps.site}; run probeLink first`);
      // The link's adaptation lives beside its samples, so it survives an agent restart; a state that
      // no longer parses (another set of experts) is reported and the link starts afresh.
      const stored = parseAdaptation(deps.telemetry.adaptation(args.source, deps.site));
      if (stored.problem) (deps.log ?? console.warn)(`fedflow predictor: adaptation state of ${args.source} -> ${deps.site} dropped: ${stored.problem}`);
      // The agent-level record (every link into this site) sets a new link's default; kept in the same file.
      const agentStored = parseAgentRecord(deps.telemetry.agentPrior());
      if (agentStored.problem) (deps.log ?? console.warn)(`fedflow predictor: agent-level record of ${deps.site} dropped: ${agentStored.problem}`);
      const predictor = deps.predictor ?? defaultPredictor();
      const { prediction, adaptation, agent } = await predictor.predictAdaptive({ samples: profile.samples, adaptation: stored.state, agent: agentStored.state });
      // Best effort, like transfer samples: a telemetry file that cannot be written must not fail the decision.
      if (adaptation !== null && adaptation !== stored.state) {
        try {
          // Another link's call may have stored the record while this one awaited the model: add
          // what this call learnt to what is stored now, rather than overwrite it.
          const merged = agent === null ? undefined : mergeAgentPrior(parseAgentRecord(deps.telemetry.agentPrior()).state, agentStored.state, agent);
          deps.telemetry.setAdaptation(args.source, deps.site, adaptation, merged);
        } catch (err) {
          (deps.log ?? console.warn)(`fedflow predictor: could not store the adaptation of ${args.source} -> ${deps.site}: ${String(err)}`);
        }
      }
      return prediction;
    },
  };
}

export type LinkActivities = ReturnType<typeof createLinkActivities>;
