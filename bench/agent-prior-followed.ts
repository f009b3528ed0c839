/**
 * `node --import tsx bench/agent-prior-followed.ts RECORDS.jsonl` (RECORDS from bench/adaptation-records.ts)
 *
 * What the shipped agent-level prior (models/link-adaptation.ts SHIPPED_CANDIDATE) does on each
 * dataset, its traces one agent's links in sorted order (as the eval replays them): the share of
 * points at which the links follow each expert, the share at which each expert leads the agent's
 * record (the default of a new link), and each expert's mean loss per point at the end. For reading
 * the mechanism only; the figures that count are the eval's.
 */
import { readFileSync } from 'node:fs';
import { expertLoss } from '../models/expert-weights';
import { ADAPTATION, EXPERTS, type SelectParams } from '../models/link-adaptation';
import { agentSelected, prepareDataset, sortedOrder } from './agent-prior';
import { round4, type WalkPoint } from './predictor-eval-walk';

interface RecPoint {
  index: number;
  timeMs: number;
  actual: number;
  experts: number[];
  baselines: WalkPoint['baselines'];
}

function main(file: string | undefined): void {
  if (file === undefined) throw new Error('usage: bench/agent-prior-followed.ts RECORDS.jsonl (from bench/adaptation-records.ts)');
  const byDataset = new Map<string, WalkPoint[][]>();
  for (const line of readFileSync(file, 'utf8').split('\n')) {
    if (!line.trim()) continue;
    const r = JSON.parse(line) as { dataset: string; points: RecPoint[] };
    // Only the experts, the actual and the times are read here; the rest is filled to make WalkPoints.
    const points = r.points.map((p): WalkPoint => ({ ...p, adaptive: p.experts[0] ?? 1, adaptiveLow: 0, onnx: p.experts[0] ?? 1, onnxLow: 0, lowFrom: 'model' }));
    byDataset.set(r.dataset, [...(byDataset.get(r.dataset) ?? []), points]);
  }
  const params = ADAPTATION as SelectParams;
  const k = params.agentPrior?.k ?? 0;
  const allowed = params.experts.map((e) => EXPERTS.indexOf(e));
  const E = EXPERTS.length;
  for (const [dataset, traces] of byDataset) {
    const d = prepareDataset(traces);
    const agent = { sums: new Float64Array(E), count: 0 };
    const followed = new Float64Array(E);
    const leads = new Float64Array(E);
    let n = 0;
    for (const ti of sortedOrder(d.traces.length)) {
      const t = d.traces[ti]!;
      const own = new Float64Array(E);
      let scored = 0;
      const score = (q: number) => {
        if (!t.ok[q]) return;
        for (let i = 0; i < E; i++) {
          const l = expertLoss(t.experts[q * E + i]!, t.actual[q]!, params.loss);
          own[i] = params.discount * own[i]! + l;
          agent.sums[i] = agent.sums[i]! + l;
        }
        agent.count++;
      };
      for (let j = 0; j < t.n; j++) {
        while (scored < t.scoredBefore[j]!) score(scored++);
        const f = agentSelected(own, agent, params, k, allowed);
        const lead = agentSelected(new Float64Array(E), agent, params, k, allowed);
        followed[f] = followed[f]! + 1;
        leads[lead] = leads[lead]! + 1;
        n++;
      }
      while (scored < t.n) score(scored++);
    }
    const shares = (v: Float64Array) => Object.fromEntries(EXPERTS.map((e, i) => [e, round4(v[i]! / n)]).filter(([, s]) => (s as number) > 0));
    console.log(
      JSON.stringify({
        kind: 'agent-prior-followed',
        dataset,
        setting: 'shipped',
        points: n,
        followed: shares(followed),
        agentLeader: shares(leads),
        finalMeanLoss: Object.fromEntries(EXPERTS.map((e, i) => [e, round4(agent.sums[i]! / agent.count)])),
      }),
    );
  }
}

try {
  main(process.argv[2]);
} catch (err) {
  console.error(err instanceof Error ? err.message : err);
  process.exit(1);
}
