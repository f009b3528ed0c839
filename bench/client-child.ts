/**
 * The downtime benchmark's client, run as a process of its own by ./client-process.ts: the
 * sample's two HTTP writers (test/helpers/writer.ts) or a service's writer (./service-clients.ts).
 * It keeps its record of acknowledged writes to itself until told to stop, then sends it whole.
 *
 * Messages: in, `{ start: ClientSpec }` then `{ stopAfter: n }` (stop once n more writes are
 * acknowledged, or after 30 s without them); out, `{ started: true }` then `{ log }`.
 */
import { startWriter } from '../test/helpers/writer';
import { SERVICES, startServiceWriter } from './service-clients';
import { waitAcked, type ClientLog, type ClientSpec } from './client-process';

let stop: ((after: number) => Promise<ClientLog>) | undefined;

/** CPU time at the start of the writers: what the client costs, without its own start-up. */
let cpuAtStart = process.cpuUsage();

process.on('message', (m: { start?: ClientSpec; stopAfter?: number }) => {
  if (m.start) {
    cpuAtStart = process.cpuUsage();
    const spec = m.start;
    if (spec.kind === 'kv') {
      const w = startWriter(spec.address);
      stop = async (after) => {
        await waitAcked(() => w.log.acked.size, after);
        await w.stop();
        const { acked, ...rest } = w.log;
        return { kind: 'kv', acked: [...acked], ...rest, cpuMs: cpuMs() };
      };
    } else {
      const w = startServiceWriter(SERVICES[spec.kind], spec.hostPort);
      stop = async (after) => {
        await waitAcked(() => w.log.acked.size, after);
        await w.stop();
        return { kind: 'service', acked: [...w.log.acked], failed: w.log.failed, cpuMs: cpuMs() };
      };
    }
    process.send!({ started: true });
  } else if (m.stopAfter !== undefined && stop) {
    void stop(m.stopAfter).then((log) => process.send!({ log }, () => process.disconnect()));
  }
});
// The benchmark went away: nothing to report to.
process.on('disconnect', () => process.exit(0));

/** CPU time this process used since its writers started (user + system), ms. */
function cpuMs(): number {
  const u = process.cpuUsage(cpuAtStart);
  return Math.round((u.user + u.system) / 1000);
}
