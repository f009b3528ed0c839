/**
 * The reuse rule of the final capture (agent/capture/reuse-rule.ts): which files' bytes a capture
 * may take from the previous round's by their stat tuple, and the spans that gives.
 */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { RACY_MS, reuseSpans, trustworthy, unchanged, type NowItem, type ReuseItem } from '../../../agent/capture/reuse-rule';
import type { StatTuple } from '../../../agent/capture/volume-tar';

const T0 = 1_700_000_000_000; // ms
const ns = (ms: number) => String(BigInt(ms) * 1_000_000n);
const tuple = (over: Partial<StatTuple> = {}): StatTuple => ({ size: 1000, mtimeNs: ns(T0), ctimeNs: ns(T0), ino: '42', dev: '2049', ...over });
const prevFile = (over: Partial<StatTuple> = {}, reusable = true): ReuseItem => ({ path: 'base/1', type: 'file', off: 0, len: 1536, hdr: 'h', stat: tuple(over), reusable });
const nowFile = (over: Partial<StatTuple> = {}): NowItem => ({ path: 'base/1', type: 'file', off: 0, len: 1536, hdr: 'h', stat: tuple(over) });

describe('reuse rule: a file is reused only if its stat tuple is the one recorded when it was read', () => {
  it('an unchanged tuple is reused', () => {
    assert.equal(unchanged(prevFile(), nowFile()), true);
  });

  it('a changed size, mtime, ctime, inode or device is read again', () => {
    assert.equal(unchanged(prevFile(), nowFile({ size: 1001 })), false, 'size');
    assert.equal(unchanged(prevFile(), nowFile({ mtimeNs: ns(T0 + 5) })), false, 'mtime');
    assert.equal(unchanged(prevFile(), nowFile({ ctimeNs: ns(T0 + 5) })), false, 'ctime');
    assert.equal(unchanged(prevFile(), nowFile({ ino: '43' })), false, 'inode (the file was replaced)');
    assert.equal(unchanged(prevFile(), nowFile({ dev: '2050' })), false, 'device');
  });

  it('a write whose mtime was touched back (same size, same mtime) is read again: its ctime moved', () => {
    assert.equal(unchanged(prevFile(), nowFile({ ctimeNs: ns(T0 + 60_000) })), false);
  });

  it('a record taken too soon after the last write (racy) is never reused, even with the same tuple', () => {
    assert.equal(unchanged(prevFile({}, false), nowFile()), false);
    // Stat'ed within RACY_MS of its ctime: a write in the same clock tick could follow unseen.
    assert.equal(trustworthy(tuple(), T0 + RACY_MS - 1), false);
    assert.equal(trustworthy(tuple(), T0 + RACY_MS + 1), true);
    // A mtime set into the future (touch -d) is racy too.
    assert.equal(trustworthy(tuple({ mtimeNs: ns(T0 + 3_600_000) }), T0 + 10_000), false);
  });

  it('another header (mode, name, entry length) is read again; directories and links compare headers only', () => {
    assert.equal(unchanged(prevFile(), { ...nowFile(), hdr: 'other' }), false);
    assert.equal(unchanged(prevFile(), { ...nowFile(), len: 2048 }), false);
    assert.equal(unchanged({ path: 'd', type: 'dir', off: 0, len: 512, hdr: 'x' }, { path: 'd', type: 'dir', off: 0, len: 512, hdr: 'x' }), true);
    assert.equal(unchanged({ path: 'd', type: 'dir', off: 0, len: 512, hdr: 'x' }, { path: 'd', type: 'dir', off: 0, len: 512, hdr: 'y' }), false);
  });
});

describe('reuse spans', () => {
  const item = (path: string, off: number, len: number, size = 1000): ReuseItem => ({ path, type: 'file', off, len, hdr: path, stat: tuple({ size }), reusable: true });
  const now = (p: ReuseItem, off: number, over: Partial<StatTuple> = {}): NowItem => ({ path: p.path, type: p.type, off, len: p.len, hdr: p.hdr, stat: { ...p.stat!, ...over } });

  it('merges consecutive unchanged entries, breaks at a changed one, and joins the trailer', () => {
    const a = item('a', 0, 1536);
    const b = item('b', 1536, 1536);
    const c = item('c', 3072, 1536);
    const prev = [a, b, c];
    // b changed (same length), a and c did not.
    const spans = reuseSpans(prev, 4608 + 1024, [now(a, 0), now(b, 1536, { ctimeNs: ns(T0 + 9) }), now(c, 3072)], 4608 + 1024);
    assert.deepEqual(spans, [
      { newStart: 0, newEnd: 1536, oldStart: 0 },
      { newStart: 3072, newEnd: 4608 + 1024, oldStart: 3072 },
    ]);
  });

  it('an entry inserted before others shifts them: the spans map new offsets to old ones', () => {
    const a = item('a', 0, 1536);
    const c = item('c', 1536, 1536);
    const b = item('b', 0, 1024);
    const spans = reuseSpans([a, c], 3072 + 1024, [now(a, 0), { ...now(b, 1536), stat: tuple({ size: 500 }) }, now(c, 2560)], 4096 + 1024);
    // b is new (no record): read; a and c (with the trailer) reused, c shifted by b's 1024 bytes.
    assert.deepEqual(spans, [
      { newStart: 0, newEnd: 1536, oldStart: 0 },
      { newStart: 2560, newEnd: 4096 + 1024, oldStart: 1536 },
    ]);
  });
});
