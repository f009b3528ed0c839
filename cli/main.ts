/**
 * The `fedflow` command line, built on the client SDK (client/).
 *   fedflow up [--detach] | down | worker [--control] | agent --site <id> | certs | site-key --site <id> | sites | workloads
 *   fedflow workloads add -f <spec.yaml> [--site s] | workloads remove <id> [--delete-volumes]
 *   fedflow secrets set <name> --site <id>   (value from stdin)
 *   fedflow migrate <workload> --to <site> [--wait] [--json] [--mode m]
 *   fedflow status <workload> [--json] | pause | resume | cancel <workload>
 *   fedflow infra plan|up|down --target <aws|azure|gcp|temporal> [--config f] [--json]
 *   fedflow infra package-lambda [--config f] [--out dist/lambda/control-worker.zip]
 */
import { Command, InvalidArgumentError } from 'commander';
import { readFileSync, statSync } from 'node:fs';
import { loadFederationConfig } from '../agent/site/config-file';
import { defaultConfigPath, fedflowHome, siteDir } from '../agent/site/home';
import { readAgentUrl } from '../activities/site';
import { placedWorkloads } from '../client/federation';
import { readFrontAddresses } from '../worker/fronts';
import { FedflowClient, FedflowError, type LiveProgress, type MigrationResult } from '../client';
import { errorJson, reportFailure, wantsJson } from './errors';
import { MODES, type Mode, type RoundSummary } from '../core/migration';
import { migrationWorkflowId } from '../core/contracts/task-queues';
import { formatBytes, OutageNotice, watchProgress } from './progress';

const uiBase = () => process.env.FEDFLOW_UI_URL ?? `http://localhost:${process.env.FEDFLOW_DEV_UI_PORT || 8233}`;
const namespace = () => process.env.TEMPORAL_NAMESPACE ?? 'default';
export const workflowUiUrl = (workflowId: string) => `${uiBase()}/namespaces/${namespace()}/workflows/${encodeURIComponent(workflowId)}`;

/** The spec file's text; a file that cannot be read is a clear error, not a stack. */
function readSpecFile(path: string): string {
  try {
    return readFileSync(path, 'utf8');
  } catch (err) {
    throw new FedflowError(`cannot read the workload spec ${path}: ${(err as NodeJS.ErrnoException).code ?? (err as Error).message}; give the path of a YAML or JSON spec, e.g. workloads/postgres.yaml`, 'InvalidWorkloadSpec');
  }
}

/**
 * Runs a process role or a certificate step: a wrong site, missing or bad TLS material are the
 * operator's to fix, told in one line (FedflowError), not a stack.
 */
async function expected<T>(fn: () => T | Promise<T>): Promise<T> {
  try {
    return await fn();
  } catch (err) {
    if (err instanceof Error && ['RoleError', 'CertError', 'TlsMaterialError'].includes(err.name)) throw new FedflowError(err.message, err.name);
    throw err;
  }
}

function printJson(v: unknown): void {
  process.stdout.write(JSON.stringify(v, null, 2) + '\n');
}

async function withClient<T>(fn: (c: FedflowClient) => Promise<T>): Promise<T> {
  const c = await FedflowClient.connect();
  try {
    return await fn(c);
  } finally {
    await c.close();
  }
}

/** Waits until the validate step has passed or the run has ended, so bad input is reported at once. */
async function awaitValidation(c: FedflowClient, workloadId: string): Promise<LiveProgress> {
  const deadline = Date.now() + 60_000;
  const notice = new OutageNotice((line) => console.error(line));
  for (;;) {
    const p = await c.getProgress(workloadId).then(
      (p) => (notice.answered(), p),
      (err: unknown) => void notice.failed(err),
    );
    if (p && (p.status !== 'RUNNING' || p.steps[0]?.status === 'done')) return p;
    if (Date.now() > deadline) throw notice.last ?? new FedflowError(`the migration of '${workloadId}' was not validated within 60 s: is a worker running? (\`fedflow up\`)`, 'NoWorker');
    await new Promise((r) => setTimeout(r, 150));
  }
}

/** A round whose pull was retried: how many attempts, and what was sent again. */
function retried(r: RoundSummary): string {
  if (!r.attempts || r.attempts < 2) return '';
  return ` (${r.attempts} attempts${r.resentBytes ? `, ${formatBytes(r.resentBytes)} sent again` : ''})`;
}

function printResult(r: MigrationResult): void {
  console.log(`migrated ${r.workloadId}: ${r.source} -> ${r.target}`);
  console.log(`  served at      ${r.address}`);
  if (r.keys !== undefined) console.log(`  keys verified  ${r.keys} (volume root ${r.rootHash.slice(0, 16)}…)`);
  else console.log(`  verified       digest ${(r.digest ?? '').slice(0, 16)}… on both ends (volume root ${r.rootHash.slice(0, 16)}…)`);
  console.log(`  mode           ${r.decision.reason}`);
  for (const s of r.modeSwitches) console.log(`                 round ${s.round}: ${s.from} -> ${s.to} (${s.reason})`);
  console.log(`  rounds         ${r.precopyRounds} pre-copy${r.notConverging ? ' (not converging)' : ''} + final`);
  for (const x of r.rounds) console.log(`    ${String(x.round).padStart(2)} ${x.kind.padEnd(8)} sent ${formatBytes(x.bytesSent).padStart(10)} of ${formatBytes(x.bytesScanned).padStart(10)}, wire ${formatBytes(x.wireBytes).padStart(10)}${retried(x)}, ${x.chunksReused} chunks reused, ${x.codec}, ${x.durationMs} ms`);
  console.log(`  bytes on wire  ${formatBytes(r.bytesTransferred)} for a ${formatBytes(r.volumeBytes)} volume${r.resentBytes ? ` (${formatBytes(r.resentBytes)} of it sent again after a retry)` : ''}`);
  console.log(`  duration       ${(r.durationMs / 1000).toFixed(2)} s`);
  console.log(`  downtime       ${r.downtimeMs} ms`);
  if (r.consensus) {
    for (const [what, c] of [['reserved', r.consensus.reservation], ['placed', r.consensus.placement]] as const) {
      const cert = c.certificate;
      const proof = cert.protocol === 'cft' ? `term ${cert.term} index ${cert.index}, acked by ${cert.ackedBy.join(', ')}` : `view ${cert.view} seq ${cert.seq}, signed by ${cert.signers.join(', ')} (digest ${cert.digest.slice(0, 16)}…)`;
      console.log(`  ${what.padEnd(14)} ${c.protocol.toUpperCase()} ${c.quorum.got}/${c.quorum.total} (need ${c.quorum.needed}): ${proof}`);
    }
  }
}

export function buildCli(): Command {
  const json = wantsJson();
  const program = new Command('fedflow').description('Move workloads between sites of a federation, orchestrated by Temporal.').showHelpAfterError(!json);
  // Usage errors are thrown, not printed and exited on, so that with --json they come out as
  // JSON too; subcommands made below inherit both settings.
  program.exitOverride();
  if (json) program.configureOutput({ outputError: () => undefined });

  program
    .command('up')
    .description('bring up the embedded stack: Temporal dev server + UI, workers, local federation, sample workload')
    .option('--detach', 'start everything in the background and return; a supervisor restarts the worker if it dies (FEDFLOW_HOME/supervisor.log)')
    .option('--no-sample', 'do not deploy the sample workload')
    .action(async (opts: { detach?: boolean; sample: boolean }) => {
      const { up } = await import('../scripts/stack');
      const stack = await up({ detach: opts.detach, sample: opts.sample });
      console.log(`\nTemporal Web UI: ${stack.uiUrl}/namespaces/default/workflows`);
      if (opts.detach) {
        console.log('running in the background; stop it with `fedflow down`');
        return;
      }
      console.log('serving; press Ctrl-C to stop');
      await new Promise<void>((resolve) => {
        const stop = () => resolve();
        process.once('SIGINT', stop);
        process.once('SIGTERM', stop);
      });
      console.log('\nstopping ...');
      await stack.stop();
    });

  program
    .command('down')
    .description('stop what `fedflow up` started (state and volumes are kept)')
    .option('--json', 'print JSON')
    .action(async (opts: { json?: boolean }) => {
      const { down } = await import('../scripts/stack');
      // With --json, stdout carries the one JSON object; the running commentary goes to stderr.
      await down(opts.json ? (l) => console.error(l) : console.log);
      if (opts.json) printJson({ stopped: true });
    });

  program
    .command('worker')
    .description('run the control worker and the local site agents in the foreground (--control: the control worker only)')
    .option('--control', 'run the control worker only: no site agent, no chunk endpoint (with `fedflow agent --site <id>` per site elsewhere)')
    .action(async (opts: { control?: boolean }) => {
      const { runCombined, runControl } = await import('../worker/roles');
      await expected(() => (opts.control ? runControl() : runCombined()));
    });

  program
    .command('agent')
    .description("run one site's agent: its worker on fedflow-site-<id> and its chunk endpoint (mutual TLS), as the systemd unit deploy/fedflow-agent.service does")
    .option('--site <id>', 'the site this agent is, e.g. dc:paris (default: $FEDFLOW_SITE, as in the container image)', process.env.FEDFLOW_SITE)
    .action(async (opts: { site?: string }) => {
      const { runAgent } = await import('../worker/roles');
      await expected(() => runAgent(opts.site));
    });

  program
    .command('certs')
    .description("make the federation's CA and a key and certificate per site (kept when present); keys are written 0600")
    .option('--out <dir>', 'where to write them (default: FEDFLOW_HOME/tls, where agents look by default)')
    .option('--site <id...>', 'only these sites (default: every site of the federation config)')
    .action(async (opts: { out?: string; site?: string[] }) => {
      const { makeFederationCerts, tlsDir } = await import('../agent/transfer/certs');
      const config = loadFederationConfig();
      const dir = opts.out ?? tlsDir(fedflowHome());
      for (const line of await expected(() => makeFederationCerts(dir, config, opts.site))) console.log(line);
      console.log(`each site's certificate names it as URI:spiffe://${config.federation}/site/<kind>/<name> (and DNS:<name>.<kind>.${config.federation}.fedflow); copy ca.pem and sites/<site>/ to that site's agent, never ca.key`);
    });

  program
    .command('site-key')
    .description("print a site's Ed25519 public key for `sites[].publicKey` (the federation log's votes), making the key pair (0600, in the site's directory under FEDFLOW_HOME) on first use; run it on the site's host")
    .requiredOption('--site <id>', 'the site, e.g. dc:paris')
    .action(async (opts: { site: string }) => {
      const { publishSiteKey } = await import('../activities/consensus-keys');
      const config = loadFederationConfig();
      if (!config.sites.some((s) => s.id === opts.site)) throw new FedflowError(`site '${opts.site}' is not in federation '${config.federation}' (its sites: ${config.sites.map((s) => s.id).join(', ')})`, 'RoleError');
      console.log(publishSiteKey(siteDir(opts.site)));
    });

  program
    .command('secrets')
    .description("store a workload secret at a site (a value a spec's run.local.secretEnv names): read from stdin, written 0600 in the site's directory under FEDFLOW_HOME, never into the federation log or a history; run it on each site's host that may run the workload")
    .command('set <name>')
    .description('store the secret <name> at --site, its value read from stdin (one trailing newline dropped)')
    .requiredOption('--site <id>', 'the site, e.g. dc:paris')
    .action(async (name: string, opts: { site: string }) => {
      const { writeWorkloadSecret } = await import('../agent/workload/secrets');
      const config = loadFederationConfig();
      if (!config.sites.some((s) => s.id === opts.site)) throw new FedflowError(`site '${opts.site}' is not in federation '${config.federation}' (its sites: ${config.sites.map((s) => s.id).join(', ')})`, 'RoleError');
      if (process.stdin.isTTY) throw new FedflowError(`fedflow secrets set reads the value from stdin, which is a terminal here; pipe it in, e.g. \`printf %s "$PGPASSWORD" | fedflow secrets set ${name} --site ${opts.site}\` or \`fedflow secrets set ${name} --site ${opts.site} < file\``, 'InvalidArgument');
      const chunks: Buffer[] = [];
      for await (const c of process.stdin) chunks.push(c as Buffer);
      const value = Buffer.concat(chunks).toString('utf8').replace(/\r?\n$/, '');
      if (!value) throw new FedflowError(`secret '${name}': stdin was empty; pipe the value in (nothing was written)`, 'InvalidArgument');
      let file: string;
      try {
        // Run as root on an installed host: the file goes to the home's owner, the agent's user.
        const home = statSync(fedflowHome(), { throwIfNoEntry: false });
        file = writeWorkloadSecret(siteDir(opts.site), name, value, home ? { uid: home.uid, gid: home.gid } : undefined);
      } catch (err) {
        throw new FedflowError((err as Error).message, 'InvalidArgument');
      }
      console.log(`stored secret '${name}' for site ${opts.site} in ${file} (0600, ${Buffer.byteLength(value)} bytes)`);
    });

  program
    .command('sites')
    .description("list the federation's sites, with the instances the federation log counts on each")
    .option('--json', 'print JSON')
    .action(async (opts: { json?: boolean }) => {
      const config = loadFederationConfig();
      const { committed } = await withClient((c) => c.federation(config.federation).view());
      const rows = config.sites.map((s) => {
        const member = committed.members[s.id];
        return {
          id: s.id,
          provider: s.provider,
          trust: s.trust,
          member: !!member,
          capacity: member?.capacity ?? s.capacity.instances,
          used: committed.used[s.id] ?? 0,
          labels: s.labels,
          agent: s.provider === 'local' ? readAgentUrl(siteDir(s.id)) ?? null : s.agentUrl ?? null,
        };
      });
      if (opts.json) return printJson(rows);
      console.log(`federation '${config.federation}'`);
      for (const r of rows) {
        const labels = Object.entries(r.labels).map(([k, v]) => `${k}=${v}`).join(',');
        console.log(`  ${r.id.padEnd(18)} ${r.provider.padEnd(6)} ${r.trust.padEnd(10)} ${String(r.used)}/${r.capacity} instances  ${labels}${r.member ? '' : '  (not a member of the log yet)'}`);
      }
    });

  const workloads = program
    .command('workloads')
    .description('list workloads, where each runs and where it is served (from the federation log), with the stable address of each (its front); add or remove one')
    .option('--json', 'print JSON');
  workloads.action(async (opts: { json?: boolean }) => {
    const config = loadFederationConfig();
    const { committed } = await withClient((c) => c.federation(config.federation).view());
    const migrating = new Map(Object.values(committed.reservations).map((r) => [r.workload, r.site]));
    // The stable address (the front the local worker runs) beside where the log places it now.
    const fronts = readFrontAddresses(fedflowHome());
    const rows = placedWorkloads(committed).map((w) => ({ id: w.id, site: w.site, address: w.address, front: fronts[w.id] ?? null, migrating: migrating.has(w.id) ? `to ${migrating.get(w.id)}` : null }));
    if (opts.json) return printJson(rows);
    if (!rows.length) return console.log('no workloads; `fedflow up` deploys the sample workload kv-demo, `fedflow workloads add -f workloads/postgres.yaml` adds PostgreSQL');
    for (const r of rows) console.log(`  ${r.id.padEnd(14)} on ${r.site.padEnd(16)} ${r.address}${r.front ? `  stable address ${r.front}` : ''}${r.migrating ? `  (migrating ${r.migrating})` : ''}`);
  });

  workloads
    .command('add')
    .description('add a workload from its spec (YAML or JSON): validated, started at the site, committed to the federation log')
    .requiredOption('-f, --file <spec>', 'the workload spec, e.g. workloads/postgres.yaml')
    .option('--site <site>', 'where to place it (default: the first trusted site with room)')
    .option('--json', 'print JSON')
    .action(async (opts: { file: string; site?: string }) => {
      const config = loadFederationConfig();
      const text = readSpecFile(opts.file);
      const added = await withClient((c) => c.addWorkload(text, { config, site: opts.site, source: opts.file }));
      if (json) return printJson(added);
      console.log(`added ${added.id} on ${added.site}: serving at ${added.address} (healthy after ${added.startMs} ms)`);
      console.log(`  volumes in ${added.volumeRoot}`);
    });

  workloads
    .command('remove <id>')
    .description('take a workload out of the federation log and stop it (its volumes are kept unless --delete-volumes)')
    .option('--delete-volumes', 'delete its volumes too')
    .option('--json', 'print JSON')
    .action(async (id: string, opts: { deleteVolumes?: boolean }) => {
      const config = loadFederationConfig();
      const removed = await withClient((c) => c.removeWorkload(id, { config, deleteVolumes: opts.deleteVolumes }));
      if (json) return printJson(removed);
      console.log(`removed ${removed.id} from ${removed.site}${removed.volumesDeleted ? ' (volumes deleted)' : ' (volumes kept)'}`);
    });

  program
    .command('migrate <workload>')
    .description('move a workload to another site')
    .requiredOption('--to <site>', 'target site id, e.g. dc:frankfurt')
    .option('--mode <mode>', `force a mode (${MODES.join(', ')})`, (v: string) => {
      if (!(MODES as readonly string[]).includes(v)) throw new InvalidArgumentError(`'${v}' is not a mode (accepted: ${MODES.join(', ')})`);
      return v as Mode;
    })
    .option('--wait', 'wait for the end, with a live progress bar on a terminal')
    .option('--json', 'print JSON (with --wait: the result)')
    .action(async (workload: string, opts: { to: string; mode?: Mode; wait?: boolean; json?: boolean }) => {
      await withClient(async (c) => {
        const { workflowId } = await c.startMigration({ workloadId: workload, targetSite: opts.to, ...(opts.mode ? { mode: opts.mode } : {}) });
        const validated = await awaitValidation(c, workload);
        if (validated.status !== 'RUNNING' && validated.phase !== 'completed') {
          await c.waitForResult(workload); // throws the root cause
        }
        if (!opts.wait) {
          if (opts.json) return printJson({ workflowId, status: 'RUNNING', source: validated.source, target: opts.to, ui: workflowUiUrl(workflowId) });
          console.log(`started ${workflowId}: ${workload} ${validated.source} -> ${opts.to}`);
          console.log(`  watch: fedflow status ${workload}    UI: ${workflowUiUrl(workflowId)}`);
          return;
        }
        if (!opts.json) console.log(`migrating ${workload}: ${validated.source} -> ${opts.to}  (UI: ${workflowUiUrl(workflowId)})`);
        await watchProgress(c, workload, !opts.json && !!process.stderr.isTTY);
        try {
          const r = await c.waitForResult(workload);
          if (opts.json) printJson(r);
          else printResult(r);
        } catch (err) {
          if (opts.json && err instanceof FedflowError) {
            printJson({ ...errorJson(err), workflowId, status: 'failed', source: validated.source, target: opts.to });
            process.exitCode = 1;
            return;
          }
          throw err;
        }
      });
    });

  program
    .command('status <workload>')
    .description('show where a workload\'s migration stands')
    .option('--json', 'print JSON')
    .action(async (workload: string, opts: { json?: boolean }) => {
      await withClient(async (c) => {
        const p = await c.getProgress(workload);
        // A migration that ended without completing is a failure of what the user asked for:
        // scripts that run `fedflow status` must see it in the exit code, not only in the text.
        const ended = p.failure !== undefined || p.phase === 'failed' || p.phase === 'cancelled';
        if (ended) process.exitCode = 1;
        const cause = p.failure ?? (p.error ? { type: p.phase === 'cancelled' ? 'Cancelled' : 'MigrationFailed', message: p.error } : undefined);
        // With --json the cause sits where every CLI failure puts it: `error: {type, message}`.
        if (opts.json) return printJson(ended && cause ? { ...p, error: cause } : p);
        console.log(`${p.workflowId}: ${p.status.toLowerCase()}, phase ${p.phase}${p.paused ? ' (paused)' : ''}`);
        console.log(`  ${p.source ?? '(source not known: the request was not validated)'} -> ${p.target}${p.mode ? ` in ${p.mode} mode` : ''}${p.syncStatus ? `, sync ${p.syncStatus}` : ''}`);
        if (p.decision) console.log(`  mode decision: ${p.decision.reason}${p.decision.prediction.fallbackReason ? ` [fallback: ${p.decision.prediction.fallbackReason}]` : ''}`);
        for (const s of p.modeSwitches) console.log(`  mode switch at round ${s.round}: ${s.from} -> ${s.to} (${s.reason})`);
        for (const s of p.steps) console.log(`  [${s.status.padEnd(11)}] ${s.title}${s.detail ? `: ${s.detail}` : ''}`);
        for (const r of p.rounds) console.log(`      round ${r.round} ${r.kind}: sent ${formatBytes(r.bytesSent)} of ${formatBytes(r.bytesScanned)}, wire ${formatBytes(r.wireBytes)}${retried(r)}, ${r.chunksReused} chunks reused, ${r.codec}, ${r.throughputMBps.toFixed(1)} MB/s, ${r.durationMs} ms`);
        if (p.live) {
          const again = p.live.attempts && p.live.attempts > 1 ? ` (attempt ${p.live.attempts}${p.live.resentBytes ? `, ${formatBytes(p.live.resentBytes)} sent again` : ''})` : '';
          console.log(`      round ${p.live.round} running: ${formatBytes(p.live.bytesSent)} sent, wire ${formatBytes(p.live.wireBytes)}, batch ${p.live.batchesDone}/${p.live.batches}${again}`);
        }
        if (cause) console.log(`  ${ended ? 'failed' : 'error'}: ${cause.message} [${cause.type}]`);
        console.log(`  UI: ${workflowUiUrl(p.workflowId)}`);
      });
    });

  for (const [name, verb] of [['pause', 'hold the migration before its next step'], ['resume', 'let a paused migration go on']] as const) {
    program
      .command(`${name} <workload>`)
      .description(verb)
      .option('--json', 'print JSON')
      .action(async (workload: string, opts: { json?: boolean }) => {
        await withClient((c) => (name === 'pause' ? c.pause(workload) : c.resume(workload)));
        if (opts.json) return printJson({ workflowId: migrationWorkflowId(workload), sent: name });
        console.log(`${name} sent to ${migrationWorkflowId(workload)}`);
      });
  }
  program
    .command('cancel <workload>')
    .description('roll a migration back (before its route switch); the source keeps serving')
    .option('--reason <text>', 'why, recorded in the workflow')
    .option('--json', 'print JSON')
    .action(async (workload: string, opts: { reason?: string; json?: boolean }) => {
      await withClient((c) => c.cancel(workload, opts.reason));
      if (opts.json) return printJson({ workflowId: migrationWorkflowId(workload), sent: 'cancel' });
      console.log(`cancel sent to ${migrationWorkflowId(workload)}`);
    });

  program
    .command('infra <action>')
    .description('deploy the federation into its clouds: plan (what would change), up (create or update; a second run changes nothing), down (remove what up created); package-lambda builds the serverless control worker\'s zip')
    .option('--target <target>', 'aws, azure, gcp or temporal (plan, up, down)')
    .option('--config <path>', 'the federation config (default: FEDFLOW_CONFIG or config/federation.yaml)')
    .option('--out <zip>', 'package-lambda: the zip to write', 'dist/lambda/control-worker.zip')
    .option('--json', 'print JSON')
    .action(async (action: string, opts: { target?: string; config?: string; out: string; json?: boolean }) => {
      const { INFRA_ACTIONS, INFRA_TARGETS, formatResult } = await import('../infra/plan');
      if (action === 'package-lambda') {
        const { packageControlWorker } = await import('../infra/lambda-package');
        const configFile = opts.config ?? defaultConfigPath();
        loadFederationConfig(configFile); // a config the function could not load is refused before building
        const r = await packageControlWorker({ outFile: opts.out, configFile });
        if (opts.json) return printJson(r);
        console.log(`wrote ${r.outFile}: ${r.zipBytes} bytes zipped, ${r.unzippedBytes} unzipped, ${r.files} files, ${r.packages.length} packages; build id ${r.buildId}`);
        console.log(`upload it to the S3 bucket and key of infra.controlWorker (codeBucket, codeKey), e.g. aws s3 cp ${r.outFile} s3://<codeBucket>/<codeKey>, then fedflow infra up --target aws`);
        return;
      }
      if (!(INFRA_ACTIONS as readonly string[]).includes(action)) throw new InvalidArgumentError(`infra action '${action}' is unknown (known: ${INFRA_ACTIONS.join(', ')}, package-lambda)`);
      if (!opts.target) throw new InvalidArgumentError(`infra ${action} needs --target (known: ${INFRA_TARGETS.join(', ')})`);
      if (!(INFRA_TARGETS as readonly string[]).includes(opts.target)) throw new InvalidArgumentError(`--target '${opts.target}' is unknown (known: ${INFRA_TARGETS.join(', ')})`);
      const { runInfra } = await import('../infra/run');
      const config = loadFederationConfig(opts.config);
      const result = await runInfra(action as never, opts.target as never, config);
      if (opts.json) return printJson(result);
      console.log(formatResult(result));
    });

  program.addHelpText('after', `\nState: ${fedflowHome()} (FEDFLOW_HOME). Temporal: TEMPORAL_ADDRESS / TEMPORAL_NAMESPACE / TEMPORAL_PROFILE.`);
  return program;
}

if (require.main === module) {
  buildCli()
    .parseAsync(process.argv)
    .catch((err: unknown) => {
      process.exit(reportFailure(err, wantsJson()));
    });
}
