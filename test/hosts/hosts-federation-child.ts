/**
 * Run by hosts-federation.test.ts as a process of its own: starts a two-site hosts federation
 * (test/helpers/hosts-federation.ts) with dc:paris's link shaped and delayed, prints what it made as one JSON
 * line, then waits to be interrupted.
 */
import { startHostsFederation } from '../helpers/hosts-federation';

async function run(): Promise<void> {
  const fed = await startHostsFederation({ sites: ['dc:paris', 'dc:frankfurt'], capacity: 1, delayMs: { 'dc:paris': 5 } });
  fed.shape('dc:paris', 50);
  const made = {
    root: fed.root,
    bridge: fed.net.bridge,
    namespaces: Object.values(fed.net.hosts).map((h) => h.ns),
    pids: [...Object.values(fed.agents), ...Object.values(fed.delayProxies), fed.control].map((p) => p.child.pid),
  };
  process.stdout.write(`${JSON.stringify(made)}\n`);
  setInterval(() => undefined, 60_000);
}

run().catch((err) => {
  console.error(err);
  process.exit(1);
});
