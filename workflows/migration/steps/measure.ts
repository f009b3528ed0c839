/** Step `measure`: probe and predict the link, then let the policy (trust + prediction) choose the mode. */
import { upsertSearchAttributes } from '@temporalio/workflow';
import type { Mode } from '../../../core/migration';
import { FedMode } from '../../../core/search-attributes';
import type { Migration } from '../context';
import { measureAndDecide, type PolicyContext } from '../mode-decision';
import { atSite } from '../proxies';

export type Measured = Awaited<ReturnType<typeof measureAndDecide>> & {
  /** Handed on to the sync, which re-decides between pre-copy rounds. */
  policy: PolicyContext;
  mode: Mode;
};

export async function measure(m: Migration): Promise<Measured> {
  const { req, v, runner } = m;
  const policy: PolicyContext = {
    source: { id: v.source, trust: v.sourceTrust },
    target: { id: v.target, trust: v.targetTrust },
    ...(req.mode ? { override: req.mode } : {}),
  };
  const measured = await runner.run(
    'measure',
    async () => {
      const endpoint = await atSite(v.source, `Find the agent endpoint of ${v.source}`).agentEndpoint();
      return measureAndDecide(policy, { probeEndpoint: endpoint, bytes: 0 });
    },
    (m) => m.decision.reason,
  );
  const mode: Mode = measured.decision.mode;
  runner.progress.mode = mode;
  runner.progress.decision = measured.record;
  upsertSearchAttributes([{ key: FedMode, value: mode }]);
  return { ...measured, policy, mode };
}
