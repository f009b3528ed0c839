/** The pure part of `npm run bench -- hosts` (bench/hosts-figures.ts): arguments, figures, lines. */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { linkLine, median, parseHostsArgs, runFigures, sampleKeys, tlsLine, type RunFigures } from '../../bench/hosts-figures';
import type { RoundSummary } from '../../core/migration';

function round(over: Partial<RoundSummary>): RoundSummary {
  return { round: 1, kind: 'precopy', mode: 'datacenter', codec: 'lz4', bytesScanned: 0, chunks: 0, chunksSent: 0, chunksReused: 0, bytesSent: 0, wireBytes: 0, compressionRatio: 1, throughputMBps: 0, durationMs: 0, corruptRefetched: 0, ...over };
}

function figures(transferMBps: number, durationMs = 1000, mode = 'datacenter'): RunFigures {
  return { durationMs, downtimeMs: durationMs / 10, wireBytes: durationMs * 1000, volumeBytes: 64 << 20, mode, codecs: ['lz4'], transferMs: 500, transferMBps };
}

describe('bench hosts: arguments', () => {
  it('defaults to three runs of a 64 MiB sample in 64 KiB values, and takes --flag N and --flag=N', () => {
    assert.deepEqual(parseHostsArgs([]), { runs: 3, volumeMiB: 64, valueKiB: 64 });
    assert.deepEqual(parseHostsArgs(['--runs', '3', '--volume-mib=128']), { runs: 3, volumeMiB: 128, valueKiB: 64 });
    assert.deepEqual(parseHostsArgs(['--mode', 'internet']), { runs: 3, volumeMiB: 64, valueKiB: 64, mode: 'internet' });
    assert.equal(sampleKeys({ volumeMiB: 64, valueKiB: 64 }), 1024);
    assert.equal(sampleKeys({ volumeMiB: 1, valueKiB: 1024 }), 1);
  });

  it('refuses an unknown flag, a count that is not a positive integer, and a value larger than the volume, naming what is wrong', () => {
    assert.throws(() => parseHostsArgs(['--link', '1gbit']), /unknown argument '--link'; usage: npm run bench -- hosts/);
    assert.throws(() => parseHostsArgs(['--mode', 'fast']), /--mode is 'fast'; expected one of datacenter, internet, hybrid/);
    assert.throws(() => parseHostsArgs(['--runs', '0']), /--runs is '0'; expected an integer >= 1/);
    assert.throws(() => parseHostsArgs(['--runs', '2.5']), /--runs is '2.5'/);
    assert.throws(() => parseHostsArgs(['--volume-mib']), /--volume-mib is 'undefined'/);
    assert.throws(() => parseHostsArgs(['--volume-mib', '1', '--value-kib', '2048']), /--value-kib 2048 is more than the whole volume \(--volume-mib 1\)/);
  });
});

describe('bench hosts: figures', () => {
  it('takes the median (the mean of the middle two for an even count) and refuses none', () => {
    assert.equal(median([5, 1, 3]), 3);
    assert.equal(median([4, 1, 3, 10]), 3.5);
    assert.throws(() => median([]), /median of no values/);
  });

  it("a run's throughput is its wire bytes over its pulling time, summed over every round", () => {
    const f = runFigures({
      durationMs: 9000,
      downtimeMs: 300,
      bytesTransferred: 30_000_000,
      volumeBytes: 64 << 20,
      mode: 'datacenter',
      rounds: [round({ wireBytes: 20_000_000, durationMs: 1500 }), round({ round: 2, kind: 'final', codec: 'zstd-3', wireBytes: 10_000_000, durationMs: 500 })],
    });
    assert.equal(f.transferMs, 2000);
    assert.equal(f.transferMBps, 15); // 30 MB in 2 s
    assert.deepEqual(f.codecs, ['lz4', 'zstd-3']);
    assert.equal(f.wireBytes, 30_000_000);
    assert.throws(() => runFigures({ durationMs: 1, downtimeMs: 1, bytesTransferred: 0, volumeBytes: 0, mode: 'datacenter', rounds: [] }), /no pulling time \(0 round\(s\)\)/);
  });

  it('a link line has the medians of durationMs, downtimeMs and wireBytes, and every run beside them', () => {
    const line = linkLine('50mbit', [figures(5, 3000), figures(6, 1000), figures(7, 2000)], { layout: 'hosts' });
    assert.equal(line.link, '50mbit');
    assert.equal(line.rateMbps, 50);
    assert.equal(line.durationMs, 2000);
    assert.equal(line.downtimeMs, 200);
    assert.equal(line.wireBytes, 2_000_000);
    assert.equal(line.runs, 3);
    assert.equal(line.layout, 'hosts');
    assert.equal((line.perRun as unknown[]).length, 3);
    assert.equal(linkLine('loopback', [figures(1)]).rateMbps, null);
    assert.throws(() => linkLine('1gbit', []), /link 1gbit: no runs/);
  });

  it('tlsThroughputRatio is the median throughput with TLS over the median without', () => {
    const line = tlsLine([figures(80), figures(100), figures(90)], [figures(120), figures(100), figures(110)]);
    assert.equal(line.tlsThroughputRatio, 0.818); // 90 / 110
    assert.equal(line.tlsTransferMBps, 90);
    assert.equal(line.plainTransferMBps, 110);
    assert.equal(line.sameModes, true);
    assert.deepEqual(line.tlsPerRunMBps, [80, 100, 90]);
    assert.equal(tlsLine([figures(50, 1000, 'hybrid')], [figures(100)]).sameModes, false);
    assert.throws(() => tlsLine([figures(1)], []), /needs runs with and without TLS \(1 with, 0 without\)/);
    assert.throws(() => tlsLine([figures(1)], [figures(0)]), /moved nothing/);
  });
});
