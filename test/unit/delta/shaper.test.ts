import { test } from 'node:test';
import assert from 'node:assert/strict';
import { Readable, Writable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { LinkDropError, LinkShaper, LinkShaperSet, TokenBucket, seededRandom } from '../../../agent/link/shaper';
import { FakeClock } from './fake-clock';

const profile = { rateMbps: 80, burstBytes: 64 * 1024, delayMs: 0, jitterMs: 0, loss: 0 }; // 80 Mbit/s = 10 MB/s

test('token bucket: a full burst passes at once, then bytes wait rate-long', () => {
  const clock = new FakeClock();
  const b = new TokenBucket(10_000_000, 65_536, clock);
  assert.equal(b.reserve(65_536), 0);
  assert.equal(b.reserve(10_000), 1); // 10 kB at 10 MB/s = 1 ms of debt
  assert.equal(b.reserve(20_000), 3); // queued behind the first: 30 kB of debt
});

test('pace(): 10 MB through an 80 Mbit/s link takes (10 MB - burst) / 10 MB/s of virtual time', async () => {
  const clock = new FakeClock();
  const shaper = new LinkShaper(profile, { clock });
  const total = 10_000_000;
  let received = 0;
  const source = Readable.from(
    (function* () {
      for (let i = 0; i < total; i += 100_000) yield Buffer.alloc(100_000, 1);
    })(),
  );
  const sink = new Writable({
    write(chunk: Buffer, _e, cb) {
      received += chunk.length;
      cb();
    },
  });
  await clock.runUntil(pipeline(source, shaper.pace(), sink));
  assert.equal(received, total);
  const expectedMs = ((total - profile.burstBytes) / 10_000_000) * 1000;
  assert.ok(Math.abs(clock.now() - expectedMs) < 2, `took ${clock.now()} virtual ms; expected ${expectedMs} ± 2`);
});

test('two concurrent streams share one link: together they take as long as one of double size', async () => {
  const clock = new FakeClock();
  const shaper = new LinkShaper(profile, { clock });
  const send = async (bytes: number) => {
    for (let i = 0; i < bytes; i += 50_000) await shaper.acquire(50_000);
  };
  await clock.runUntil(Promise.all([send(5_000_000), send(5_000_000)]));
  const expectedMs = ((10_000_000 - profile.burstBytes) / 10_000_000) * 1000;
  assert.ok(Math.abs(clock.now() - expectedMs) < 2, `took ${clock.now()} virtual ms; expected ${expectedMs} ± 2`);
});

test('transmit(): delay and jitter stay within bounds, loss is near its rate, and a seed replays', async () => {
  const lossy = { ...profile, delayMs: 40, jitterMs: 10, loss: 0.1 };
  const run = async (seed: number) => {
    const clock = new FakeClock();
    const shaper = new LinkShaper(lossy, { clock, random: seededRandom(seed), from: 'dc:paris', to: 'aws:us-east-1' });
    const outcomes: string[] = [];
    for (let k = 0; k < 2000; k++) {
      const t0 = clock.now();
      try {
        await clock.runUntil(shaper.transmit(100, async () => 'ok'));
        outcomes.push(`ok@${(clock.now() - t0).toFixed(3)}`);
      } catch (err) {
        assert.ok(err instanceof LinkDropError);
        assert.match(err.message, /dc:paris -> aws:us-east-1 dropped/);
        outcomes.push(`drop@${(clock.now() - t0).toFixed(3)}`);
      }
    }
    return outcomes;
  };
  const a = await run(7);
  assert.deepEqual(await run(7), a, 'same seed, same decisions');
  assert.notDeepEqual(await run(8), a, 'another seed, other decisions');
  const delays = a.map((o) => Number(o.split('@')[1]));
  assert.ok(Math.min(...delays) >= 30 && Math.max(...delays) <= 50, `delays span ${Math.min(...delays)}..${Math.max(...delays)} ms; expected 30..50`);
  const drops = a.filter((o) => o.startsWith('drop')).length;
  // Binomial(2000, 0.1): mean 200, sd 13.4; a fixed seed makes this exact, the bound says why it is right.
  assert.ok(drops > 150 && drops < 250, `${drops} of 2000 dropped; expected about 200`);
});

test('LinkShaperSet keeps a separate link per ordered pair and refuses a self-link', () => {
  const clock = new FakeClock();
  const set = new LinkShaperSet({ clock, seed: 1 });
  set.set('a', 'b', profile);
  assert.equal(set.get('a', 'b').profile.rateMbps, 80);
  assert.equal(set.get('b', 'a').profile.rateMbps, Number.POSITIVE_INFINITY);
  assert.notEqual(set.get('a', 'b'), set.get('b', 'a'));
  assert.throws(() => set.get('a', 'a'), /no link from site 'a' to itself/);
  assert.throws(() => new LinkShaper({ ...profile, loss: 2 }), /loss is 2; expected a probability in \[0, 1\]/);
});
