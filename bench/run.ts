/**
 * `npm run bench -- <name> [args]`: dispatches to one benchmark module. Each module exports
 * `run(args: string[]): Promise<void>`, prints JSON lines (and nothing else) to stdout and its
 * progress to stderr. Modules are loaded lazily: a benchmark another engineer has not written yet
 * (its file is absent) is reported as such instead of breaking the others.
 */
import { existsSync } from 'node:fs';
import { join } from 'node:path';

type BenchModule = { run(args: string[]): Promise<void> };

/** Name -> module file (relative to bench/, without extension). */
const BENCHES: Record<string, string> = {
  delta: 'delta',
  'delta-micro': 'delta-micro',
  predictor: 'predictor',
  consensus: 'consensus',
  downtime: 'downtime',
  'patch-extract': 'patch-extract',
  'final-round': 'final-round',
  'capture-reuse': 'capture-reuse',
  'spawn-cost': 'spawn-cost',
  hosts: 'hosts',
  'kv-readahead': 'kv-readahead',
  'agent-footprint': 'agent-footprint',
  'peer-pool': 'peer-pool',
};

function usage(): string {
  const known = Object.keys(BENCHES).map((n) => `${n}${existsSync(join(__dirname, `${BENCHES[n]}.ts`)) ? '' : ' (not written yet)'}`);
  return `known benchmarks: ${known.join(', ')}; usage: npm run bench -- <name> [args]`;
}

export async function main(argv: string[]): Promise<void> {
  const [name, ...rest] = argv;
  const file = name === undefined ? undefined : BENCHES[name];
  if (name === undefined || file === undefined) throw new Error(`unknown benchmark '${name ?? ''}'; ${usage()}`);
  const path = join(__dirname, `${file}.ts`);
  if (!existsSync(path)) throw new Error(`benchmark '${name}' has no module yet (${path} is missing); ${usage()}`);
  // eslint-disable-next-line @typescript-eslint/no-require-imports
  const mod = require(path) as Partial<BenchModule>;
  if (typeof mod.run !== 'function') throw new Error(`${path} does not export run(args: string[]): Promise<void>`);
  await mod.run(rest);
}

if (require.main === module) {
  main(process.argv.slice(2)).catch((err: unknown) => {
    console.error(err instanceof Error ? err.message : err);
    process.exit(1);
  });
}
