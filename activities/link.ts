/**
 * Link telemetry and prediction, at the target site's agent: probe the link from the source's
 * agent, keep recent samples per site pair (so the next prediction starts warm), and predict the
 * bandwidth ahead with the ONNX model, loaded once per worker (models/predictor.ts).
 */
import type { LinkProfile, LinkSample, LinkTelemetry } from '../agent/link-telemetry';
import { probe } from '../agent/link-telemetry';
import type { Prediction } from '../models/predictor';
import { defaultPredictor } from '../models/predictor';

export interface LinkDeps {
  site: string;
  telemetry: LinkTelemetry;
}

/** Bytes a probe transfers: enough to see a LAN's rate, little enough for a slow link (bounded by time too). */
export const PROBE_BYTES = 4 << 20;

/** What goes into history about a profile: the summary and the last few samples, not the whole ring. */
export function profileRecord(p: LinkProfile, last = 8): LinkProfile {
  return { ...p, samples: p.samples.slice(-last) };
}

export function createLinkActivities(deps: LinkDeps) {
  return {
    /** Probes the link source -> this site against the source agent's probe endpoint. */
    async probeLink(args: { source: string; endpoint: string }): Promise<LinkProfile> {
      const to = encodeURIComponent(deps.site);
      const sample = await probe({
        url: `${args.endpoint}/probe?bytes=${PROBE_BYTES}&to=${to}`,
        rttUrl: `${args.endpoint}/probe?bytes=0&to=${to}`,
      });
      return profileRecord(deps.telemetry.record(args.source, deps.site, sample));
    },

    /** Predicts source -> this site from the samples kept here. Never fails for a missing model. */
    async predictLink(args: { source: string }): Promise<Prediction> {
      const profile = deps.telemetry.profile(args.source, deps.site);
      if (!profile.samples.length) throw new Error(`no samples for link ${args.source} -> ${deps.site}; run probeLink first`);
      return defaultPredictor().predict({ samples: profile.samples });
    },
  };
}

/** A transfer round's goodput is a sample of the link too. */
export function recordTransferSample(telemetry: LinkTelemetry, from: string, to: string, bytes: number, ms: number): void {
  // Below a megabyte the per-request overheads dominate and the figure says little about the link.
  if (bytes < 1 << 20 || ms <= 0) return;
  const sample: LinkSample = { timeMs: Date.now(), throughputMbps: (bytes * 8) / (ms * 1000), rttMs: null, loss: 0 };
  telemetry.record(from, to, sample);
}

export type LinkActivities = ReturnType<typeof createLinkActivities>;
