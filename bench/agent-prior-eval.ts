/**
 * `npm run eval -- predictor [--seeded-orders]`: the agent-level prior's part of the eval (session
 * 11, bench/agent-prior.ts). Runs after the per-link nested leave-one-out, on the same walks (every
 * dataset walked with the model trained without it), and prints JSON lines:
 *
 *   - `agent-prior-check`: per dataset, the largest gap between this file's fast replay of the 612
 *     follow-the-leader settings without the agent's record and bench/adaptation-screen.ts's replay
 *     (they must agree: the fast replay is the same rule);
 *   - `agent-prior-nested`: per order of the links (sorted file names; with --seeded-orders, seeds 1-5 too) and dataset,
 *     the setting the nested rule chooses on the other three datasets among the 2448 agent-prior
 *     settings, and its improvementVsBestBaseline, within20 and p10 coverage on the dataset; beside
 *     it the per-link-only nested figure (order does not change it: each link starts afresh) and
 *     the figure the rule gives over both pools together (3069 settings). In sorted order the chosen
 *     setting is also walked for real (the predictor carrying the agent's record from trace to
 *     trace, as walkDir does): `walked` beside the replayed figures;
 *   - `agent-prior-summary`: per order, the four figures of each pool, and the shipping condition
 *     (every agent-prior figure >= the per-link-only one);
 *   - `agent-prior-orders`: per dataset, min / mean / max of the agent-prior figure over the orders.
 * It returns the sorted-order walks of the chosen settings: the eval's plot draws them.
 */
import { CANDIDATES, SHIPPED_CANDIDATE } from '../models/link-adaptation';
import { createPredictor } from '../models/predictor';
import { chooseAdaptation } from './adaptation-choice';
import type { WalkedDataset } from './adaptation-screen';
import {
  ORDER_SEEDS,
  agentPriorCandidates,
  medianApe,
  nestedAgentPrior,
  prepareDataset,
  replayAgent,
  scoreAgentPrior,
  seededOrder,
  sortedOrder,
  type AgentPriorParams,
  type PreparedDataset,
} from './agent-prior';
import { median, round4, walkLinks, type WalkResult } from './predictor-eval-walk';

/**
 * The real walk of one dataset with an agent-prior setting and the dataset's leave-out model: its
 * traces one agent's links in sorted order, the predictor carrying the agent's record from each to
 * the next.
 */
export async function walkAgentPrior(d: WalkedDataset, setting: AgentPriorParams): Promise<WalkResult[]> {
  const predictor = createPredictor({ modelPath: d.modelPath, adaptation: { ...setting.base, agentPrior: { k: setting.k } } });
  return walkLinks(d.traces, predictor);
}

function walkedFigures(walks: readonly WalkResult[]): { improvement: number; within20: number; p10Coverage: number } {
  const points = walks.flatMap((w) => w.points);
  const ape = points.map((p) => Math.abs(p.adaptive - p.actual) / p.actual);
  const best = Math.min(...(['last-value', 'harmonic-mean-5', 'ewma-0.5', 'ewma-0.2'] as const).map((m) => median(points.map((p) => Math.abs(p.baselines[m] - p.actual) / p.actual))));
  return {
    improvement: 1 - median(ape) / best,
    within20: ape.filter((e) => e <= 0.2).length / points.length,
    p10Coverage: points.filter((p) => p.actual >= p.adaptiveLow).length / points.length,
  };
}

/** Prints the lines above; returns, per dataset, the real walk (sorted order) of the setting chosen on the other datasets. */
export async function runAgentPrior(
  walked: ReadonlyMap<string, WalkedDataset>,
  datasets: readonly string[],
  perLinkChoice: ReadonlyMap<string, string>,
  seededOrders: boolean,
): Promise<Map<string, WalkResult[]>> {
  const sortedWalks = new Map<string, WalkResult[]>();
  const candidates = agentPriorCandidates();
  const prepared = new Map<string, PreparedDataset>();
  for (const dataset of datasets) {
    const w = walked.get(dataset)!;
    const d = prepareDataset(w.walks.map((r) => r.points));
    prepared.set(dataset, d);
    let gap = 0;
    for (const [name, params] of Object.entries(CANDIDATES)) {
      if (params.kind !== 'select') continue;
      const r = replayAgent(d, sortedOrder(d.traces.length), params, { k: null });
      gap = Math.max(gap, Math.abs(1 - medianApe(r.mean, r.actual) / d.bestBaseline - w.screened.get(name)!));
    }
    console.log(JSON.stringify({ kind: 'agent-prior-check', dataset, settings: 612, maxGapToScreen: gap }));
  }
  const perLink = new Map(datasets.map((d) => [d, walked.get(d)!.screened.get(perLinkChoice.get(d)!)!]));
  const seeded = seededOrders ? ORDER_SEEDS.map((s): [string, (n: number) => number[]] => [`seed-${s}`, (n) => seededOrder(n, s)]) : [];
  const orders: [string, (n: number) => number[]][] = [['sorted', sortedOrder], ...seeded];
  const byDataset = new Map(datasets.map((d) => [d, [] as number[]]));
  for (const [orderName, orderOf] of orders) {
    const started = Date.now();
    const { improvements: agentImprovements, ...agentChoice } = nestedAgentPrior(prepared, datasets, orderOf, candidates);
    const union = new Map(datasets.map((d) => [d, new Map([...walked.get(d)!.screened, ...agentImprovements.get(d)!])]));
    const unionChoice = chooseAdaptation(union, [...datasets], [...union.get(datasets[0]!)!.keys()]);
    const figures: Record<string, { agentPrior: number; perLinkOnly: number; union: number }> = {};
    for (const dataset of datasets) {
      const d = prepared.get(dataset)!;
      const chosen = agentChoice.perDataset.get(dataset)!;
      const c = candidates.get(chosen)!;
      const s = scoreAgentPrior(d, orderOf(d.traces.length), c.base, c.k);
      const unionChosen = unionChoice.perDataset.get(dataset)!;
      figures[dataset] = { agentPrior: round4(s.improvement), perLinkOnly: round4(perLink.get(dataset)!), union: round4(union.get(dataset)!.get(unionChosen)!) };
      byDataset.get(dataset)!.push(s.improvement);
      const walks = orderName === 'sorted' ? await walkAgentPrior(walked.get(dataset)!, c) : null;
      if (walks) sortedWalks.set(dataset, walks);
      const real = walks ? walkedFigures(walks) : null;
      console.log(
        JSON.stringify({
          kind: 'agent-prior-nested',
          order: orderName,
          dataset,
          chosenOnOthers: chosen,
          improvementVsBestBaseline: round4(s.improvement),
          screened: round4(agentImprovements.get(dataset)!.get(chosen)!),
          within20: round4(s.within20),
          p10Coverage: round4(s.p10Coverage),
          onOthers: Object.fromEntries(datasets.filter((o) => o !== dataset).map((o) => [o, round4(agentImprovements.get(o)!.get(chosen)!)])),
          perLinkOnly: { chosenOnOthers: perLinkChoice.get(dataset), improvementVsBestBaseline: round4(perLink.get(dataset)!) },
          bothPools: { chosenOnOthers: unionChosen, improvementVsBestBaseline: round4(union.get(dataset)!.get(unionChosen)!) },
          replayed: true,
          ...(real ? { walked: { improvementVsBestBaseline: round4(real.improvement), within20: round4(real.within20), p10Coverage: round4(real.p10Coverage) } } : {}),
        }),
      );
    }
    const overall = candidates.get(agentChoice.overall)!;
    console.log(
      JSON.stringify({
        kind: 'agent-prior-summary',
        order: orderName,
        figures,
        onAllDatasets: agentChoice.overall,
        onAllDatasetsFigures: Object.fromEntries(datasets.map((d) => [d, round4(agentImprovements.get(d)!.get(agentChoice.overall)!)])),
        priorWeight: overall.k,
        shipped: SHIPPED_CANDIDATE,
        shippedIsTheChoice: agentChoice.overall === SHIPPED_CANDIDATE,
        everyDatasetAtLeastPerLinkOnly: datasets.every((d) => figures[d]!.agentPrior >= figures[d]!.perLinkOnly),
        seconds: Math.round((Date.now() - started) / 1000),
      }),
    );
  }
  for (const dataset of datasets) {
    const v = byDataset.get(dataset)!;
    console.log(JSON.stringify({ kind: 'agent-prior-orders', dataset, orders: v.length, min: round4(Math.min(...v)), mean: round4(v.reduce((a, b) => a + b, 0) / v.length), max: round4(Math.max(...v)), perLinkOnly: round4(perLink.get(dataset)!) }));
  }
  return sortedWalks;
}
