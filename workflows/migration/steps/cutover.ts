/**
 * Step `cutover`: the downtime window. Two activities only: freeze + capture at the source, then
 * final delta + assemble + activate + check at the target. Two shapes:
 * - `cutOverInSequence` (before fast-cutover-v1): the target is told the image once the capture returns;
 * - `cutOverTogether` (fast-cutover-v1): the target starts beside the freeze and waits for the image.
 */
import type { TransferPlan } from '../../../core/transfer-plan';
import type { Migration } from '../context';
import { cutDone, freezeAndCapture, pullArgsOf, targetToldImage, type Cutover, type CutoverResult } from './cutover-activities';
import { cutOverTogether } from './cutover-together';
import type { TargetInstance } from './start';

export function cutOver(m: Migration, plan: TransferPlan, precopyRounds: number, target: TargetInstance): Promise<CutoverResult> {
  const c: Cutover = { m, plan, pullArgs: pullArgsOf(m, plan, precopyRounds + 1, target), target };
  return m.runner.run(
    'cutover',
    m.shape.fastCutover ? () => cutOverTogether(c) : () => cutOverInSequence(c),
    (r) => `final delta ${r.figures.bytesSent} bytes; ${r.served.keys === undefined ? 'the digest matches' : `${r.served.keys} keys match`} the source`,
  );
}

async function cutOverInSequence(c: Cutover): Promise<CutoverResult> {
  const image = await freezeAndCapture(c);
  c.m.finalRoot = image.manifest.rootHash;
  return cutDone(c, image, await targetToldImage(c, image));
}
