/**
 * `fedflow ... --json`: every outcome is one JSON object on stdout, a failure included
 * (`{"error": {"type", "message"}}`), with a non-zero exit. The CLI runs as a child process, as a
 * user's script would run it. Failures of a real migration are in test/integration/bad-input.test.ts.
 */
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { freePort as closedPort, runCli } from '../helpers/cli';

/** The one JSON object on stdout, or an assertion naming what was printed instead. */
export function onlyJson(stdout: string): Record<string, unknown> {
  try {
    const v = JSON.parse(stdout) as unknown;
    assert.ok(v !== null && typeof v === 'object' && !Array.isArray(v), `stdout is JSON but not an object: ${stdout.slice(0, 200)}`);
    return v as Record<string, unknown>;
  } catch (err) {
    if (err instanceof SyntaxError) assert.fail(`stdout is not one JSON object: ${JSON.stringify(stdout.slice(0, 300))}`);
    throw err;
  }
}

describe('the CLI with --json: failures are JSON too', () => {
  let home: string;
  let env: NodeJS.ProcessEnv;
  before(async () => {
    home = mkdtempSync(join(tmpdir(), 'fedflow-cli-json-'));
    writeFileSync(join(home, 'federation.json'), JSON.stringify({ federation: 'cli-json', sites: [{ id: 'dc:paris', provider: 'local', trust: 'trusted', capacity: { instances: 2 } }] }));
    env = { FEDFLOW_HOME: home, FEDFLOW_CONFIG: join(home, 'federation.json'), TEMPORAL_ADDRESS: `127.0.0.1:${await closedPort()}` };
  });
  after(() => rmSync(home, { recursive: true, force: true }));

  it('a usage error (no --to) is {"error": {"type": "UsageError", ...}}, exit 1, nothing on stdout but it', async () => {
    const out = await runCli(env, 'migrate', 'kv-demo', '--json');
    assert.equal(out.code, 1, out.stderr);
    assert.deepEqual(onlyJson(out.stdout), { error: { type: 'UsageError', message: "required option '--to <site>' not specified" } });
  });

  it('Temporal unreachable: the error names the address and what to start', async () => {
    for (const args of [['status', 'kv-demo', '--json'], ['migrate', 'kv-demo', '--to', 'dc:paris', '--json'], ['cancel', 'kv-demo', '--json']]) {
      const out = await runCli(env, ...args);
      assert.equal(out.code, 1, `${args.join(' ')}: ${out.stderr}`);
      const { error } = onlyJson(out.stdout) as { error: { type: string; message: string } };
      assert.equal(error.type, 'ConnectionFailed', args.join(' '));
      assert.match(error.message, new RegExp(`cannot reach Temporal at ${env.TEMPORAL_ADDRESS!.replace(/\./g, '\\.')}.*fedflow up`));
    }
  });

  it('a bad federation config is a ConfigError object', async () => {
    const bad = join(home, 'bad.json');
    writeFileSync(bad, '{"federation": "x", "sites": "none"}');
    const out = await runCli({ ...env, FEDFLOW_CONFIG: bad }, 'sites', '--json');
    assert.equal(out.code, 1);
    const { error } = onlyJson(out.stdout) as { error: { type: string; message: string } };
    assert.equal(error.type, 'ConfigError');
    assert.match(error.message, /bad\.json/);
  });

  it('status with Temporal unreachable: one line naming the address and what to start, no stack, exit 1', async () => {
    const out = await runCli(env, 'status', 'kv-demo');
    assert.equal(out.code, 1);
    assert.equal(out.stdout, '');
    const lines = out.stderr.trim().split('\n');
    assert.equal(lines.length, 1, out.stderr);
    assert.match(lines[0]!, new RegExp(`^fedflow: cannot reach Temporal at ${env.TEMPORAL_ADDRESS!.replace(/\./g, '\\.')} .*Start the embedded stack with \`fedflow up\``));
    assert.doesNotMatch(out.stderr, /ServiceError|\n\s+at /);
  });

  it('without --json the same failure stays one line on stderr', async () => {
    const out = await runCli(env, 'migrate', 'kv-demo');
    assert.equal(out.code, 1);
    assert.equal(out.stdout, '');
    assert.match(out.stderr, /required option '--to <site>' not specified/);
  });
});
