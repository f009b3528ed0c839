/**
 * The worker process: control worker plus one agent per local site of the federation config.
 * `fedflow up` runs this as a child process (and restarts it if it dies); run it alone with
 * `npm run worker` to point it at any Temporal (see README: "Pointing at a real cluster").
 * One role per process: `fedflow agent --site <id>` and `fedflow worker --control` (worker/roles.ts).
 */
import { runCombined } from './roles';

runCombined().catch((err) => {
  console.error(err instanceof Error ? err.message : err);
  process.exit(1);
});
