/** Step `decommission`: the source's instance, volume and final image go. */
import { CancellationScope } from '@temporalio/workflow';
import type { Migration } from '../context';
import { atSite, atSync, TIMEOUTS } from '../proxies';
import type { CutoverResult } from './cutover-activities';

/** Returns when the source was removed (the end of the migration). */
export function decommission(m: Migration, cut: CutoverResult): Promise<number> {
  const { req, v } = m;
  // Past the switch the migration rolls forward: a cancel no longer reaches the last step.
  return CancellationScope.nonCancellable(() =>
    m.runner.run('decommission', async () => {
      // The final image was kept out of the downtime window; it goes now, with the source.
      await atSync(v.source, `Release the final image on ${v.source}`, TIMEOUTS.quick).releaseImage({ root: cut.image.manifest.rootHash });
      return atSite(v.source, `Remove ${req.workloadId} from ${v.source}`).decommission({ instance: v.instance, volumeId: v.volume.id });
    }),
  );
}
