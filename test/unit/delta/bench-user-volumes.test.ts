/**
 * `npm run bench -- delta --old PATH --new PATH [--mode m]`: fedflow and rsync on the user's own
 * two files (or directories), run as the generated scenarios are, printing the same JSON lines.
 * The benchmark runs as a child process, as a user runs it; its argument errors are checked in
 * process (they are thrown before anything is created).
 */
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { cpSync, mkdirSync, mkdtempSync, rmSync, symlinkSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { REPO_ROOT } from '../../../agent/site/home';
import { main } from '../../../bench/run';

const T = { timeout: 120_000 };
type Line = Record<string, unknown>;

function bench(...args: string[]): Promise<Line[]> {
  return new Promise((resolve, reject) => {
    execFile(process.execPath, ['--import', 'tsx', join(REPO_ROOT, 'bench', 'run.ts'), 'delta', ...args], { cwd: REPO_ROOT, encoding: 'utf8', timeout: 110_000 }, (err, stdout, stderr) => {
      if (err) return reject(new Error(`bench delta ${args.join(' ')} failed: ${err.message}\n${stderr}`));
      // stdout is JSON lines and nothing else.
      resolve(stdout.trim().split('\n').map((l) => JSON.parse(l) as Line));
    });
  });
}

const keys = (l: Line | undefined) => Object.keys(l ?? {}).sort();
const byTool = (lines: Line[], tool?: string) => lines.find((l) => l.tool === tool);

describe('bench delta on the user\'s own volumes', () => {
  let dir: string;
  const SIZE = 4 << 20;

  before(() => {
    dir = mkdtempSync(join(tmpdir(), 'fedflow-bench-user-'));
    // Random bytes: nothing compresses, so a small wire is the delta's doing, not the codec's.
    const old = randomBytes(SIZE);
    const neu = Buffer.from(old);
    neu.write('a small edit in the middle', SIZE / 2);
    writeFileSync(join(dir, 'old.img'), old);
    writeFileSync(join(dir, 'new.img'), neu);
    mkdirSync(join(dir, 'old-tree', 'sub'), { recursive: true });
    writeFileSync(join(dir, 'old-tree', 'data.bin'), old.subarray(0, 2 << 20));
    writeFileSync(join(dir, 'old-tree', 'sub', 'notes.txt'), 'first version\n');
    writeFileSync(join(dir, 'old-tree', 'removed.txt'), 'gone in the new version\n');
    symlinkSync('data.bin', join(dir, 'old-tree', 'link'));
    cpSync(join(dir, 'old-tree'), join(dir, 'new-tree'), { recursive: true, verbatimSymlinks: true });
    // Same size, same second: only a comparison by content finds this edit.
    writeFileSync(join(dir, 'new-tree', 'data.bin'), Buffer.concat([old.subarray(0, 1 << 20), Buffer.from('edited'), old.subarray((1 << 20) + 6, 2 << 20)]));
    writeFileSync(join(dir, 'new-tree', 'sub', 'added.txt'), 'new in the new version\n');
    rmSync(join(dir, 'new-tree', 'removed.txt'));
  });
  after(() => rmSync(dir, { recursive: true, force: true }));

  it('two files: the same three lines as a generated scenario, a small edit costs a small wire', T, async () => {
    const [mine, generated] = [await bench('--old', join(dir, 'old.img'), '--new', join(dir, 'new.img'), '--mode', 'datacenter'), await bench('--size-mib', '4', '--scenario', 'scattered', '--mode', 'datacenter')];
    assert.equal(mine.length, 3, JSON.stringify(mine));
    for (const tool of ['fedflow', 'rsync', undefined]) assert.deepEqual(keys(byTool(mine, tool)), keys(byTool(generated, tool)), `the ${tool ?? 'summary'} line has the generated scenarios' shape`);
    const fed = byTool(mine, 'fedflow')!;
    const rsync = byTool(mine, 'rsync')!;
    const summary = byTool(mine)!;
    for (const l of mine) {
      assert.equal(l.scenario, 'user');
      assert.equal(l.mode, 'datacenter');
    }
    assert.equal(fed.volumeBytes, SIZE);
    assert.match(String(fed.change), /^file .*old\.img -> .*new\.img$/);
    assert.equal(rsync.command, 'rsync --ignore-times --no-whole-file --stats NEW DEST');
    for (const [tool, l] of [['fedflow', fed], ['rsync', rsync]] as const) {
      const wire = l.wireBytes as number;
      assert.ok(wire > 0 && wire < SIZE, `${tool} sent ${wire} bytes for a 26-byte edit of a ${SIZE}-byte file`);
    }
    // One chunk holds the edit (16 KiB on average in datacenter mode); the rest is found at the target.
    assert.ok((fed.chunksSent as number) >= 1 && (fed.chunksSent as number) <= 2, `chunks sent: ${fed.chunksSent} of ${fed.chunks}`);
    assert.equal(summary.wireRatio, Math.round(((fed.wireBytes as number) / (rsync.wireBytes as number)) * 1000) / 1000);
    assert.equal(summary.sizeMiB, 4);
  });

  it('two directories: archived by fedflow, `rsync -a --delete --ignore-times` by rsync, both checked against the new tree', T, async () => {
    const lines = await bench('--old', join(dir, 'old-tree'), '--new', join(dir, 'new-tree'), '--mode', 'internet');
    assert.equal(lines.length, 3, JSON.stringify(lines));
    const fed = byTool(lines, 'fedflow')!;
    const rsync = byTool(lines, 'rsync')!;
    assert.match(String(fed.change), /^directory /);
    assert.equal(rsync.command, 'rsync -a --delete --ignore-times --no-whole-file --stats -z NEW/ DEST');
    for (const l of [fed, rsync]) assert.ok((l.wireBytes as number) > 0 && (l.wireBytes as number) < 2 << 20, `${l.tool} sent ${l.wireBytes} bytes`);
  });

  it('refuses bad arguments with a message that names the problem', async () => {
    const file = join(dir, 'old.img');
    const refused = async (args: string[], message: RegExp) => assert.rejects(main(['delta', ...args]), { message });
    await refused(['--old', file], /^--old needs --new: the two versions to compare\nusage: npm run bench -- delta/);
    await refused(['--new', file], /^--new needs --old/);
    await refused(['--old', join(dir, 'missing.img'), '--new', file], /^--old .*missing\.img: no such file or directory$/);
    await refused(['--old', file, '--new', join(dir, 'old-tree')], /is a file and --new .* a directory: give two files or two directories$/);
    await refused(['--old', file, '--new', join(dir, 'new.img'), '--mode', 'hybrid'], /^--mode is 'hybrid'; expected one of datacenter, internet$/);
    await refused(['--old', file, '--new', join(dir, 'new.img'), '--scenario', 'insert'], /^--scenario shapes a generated volume; with --old and --new the volume is yours/);
    await refused(['--old', file, '--new', file], /^--old and --new are the same file/);
    await refused(['--old'], /^--old needs a value/);
  });
});
