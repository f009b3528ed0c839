/**
 * The rsync side of the delta benchmark: `rsync --ignore-times --no-whole-file --stats [-z] NEW DEST`
 * with the old version already at DEST (--ignore-times: see runRsync; for a file too, since a small
 * one generated within the same second as DEST, at the same size, was skipped unread). Local-to-local rsync would copy whole files by default, which is not
 * the delta algorithm we compare against, hence --no-whole-file. Wire bytes are rsync's own
 * "Total bytes sent" + "Total bytes received": everything its sender and receiver exchanged.
 */
import { spawn } from 'node:child_process';

export interface RsyncFigures {
  wireBytes: number;
  sentBytes: number;
  receivedBytes: number;
  literalBytes: number;
  matchedBytes: number;
  wallMs: number;
  command: string;
}

function stat(out: string, label: string): number {
  const m = new RegExp(`${label}: ([\\d,.]+)`).exec(out);
  if (!m) throw new Error(`rsync --stats output has no '${label}' line:\n${out}`);
  return Number(m[1]!.replace(/,/g, ''));
}

/**
 * `directory`: NEW and DEST are trees: `-a --delete --ignore-times` (recursive, links, permissions
 * and times kept, files gone from NEW removed), with NEW's trailing slash (its contents, not NEW
 * itself). --ignore-times turns off rsync's quick check, which skips a file whose size and mtime
 * match DEST's without reading it: every file is then compared by content, as fedflow's capture
 * reads every byte, and a file rewritten within the same second at the same size is not missed
 * (the result is checked against NEW, and the quick check would fail that check).
 */
export async function runRsync(src: string, dest: string, compress: boolean, directory = false): Promise<RsyncFigures> {
  const args = [...(directory ? ['-a', '--delete'] : []), '--ignore-times', '--no-whole-file', '--stats', ...(compress ? ['-z'] : []), directory ? `${src.replace(/\/+$/, '')}/` : src, dest];
  const t0 = performance.now();
  const child = spawn('/usr/bin/rsync', args, { stdio: ['ignore', 'pipe', 'pipe'] });
  let out = '';
  let err = '';
  child.stdout.on('data', (d: Buffer) => (out += d.toString()));
  child.stderr.on('data', (d: Buffer) => (err += d.toString()));
  const code = await new Promise<number | null>((resolve) => child.on('close', resolve));
  const wallMs = performance.now() - t0;
  if (code !== 0) throw new Error(`rsync ${args.join(' ')} exited ${code}: ${err}`);
  const sentBytes = stat(out, 'Total bytes sent');
  const receivedBytes = stat(out, 'Total bytes received');
  return {
    wireBytes: sentBytes + receivedBytes,
    sentBytes,
    receivedBytes,
    literalBytes: stat(out, 'Literal data'),
    matchedBytes: stat(out, 'Matched data'),
    wallMs: Math.round(wallMs),
    command: `rsync ${args.slice(0, -2).join(' ')} ${directory ? 'NEW/ DEST' : 'NEW DEST'}`,
  };
}
