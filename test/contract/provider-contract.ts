/**
 * The provider contract: what every CloudProvider must do, written once and run against each
 * adapter with its own backend (moto for aws, the loopback fakes for azure and gcp, a temp
 * directory for local). A harness supplies the provider plus the few backend-specific facts the
 * contract cannot know: a valid spec, a spec the backend rejects, and a way to inject faults.
 */
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { ProviderError, ProviderErrorType } from '../../adapters/common/provider-error';
import type { CloudProvider, InstanceRef, InstanceSpec, InstanceState, VolumeRef } from '../../adapters/common/cloud-provider';
import type { FaultPlan } from '../fakes/faults';

export interface ContractFaults {
  plan: FaultPlan;
  /** Matches the backend requests that describeInstance makes. */
  describeMatch: string | RegExp;
  /** A delay longer than the provider's per-request timeout, to provoke timeouts. */
  slowDelayMs: number;
}

export interface ContractHarness {
  provider: CloudProvider;
  /** A spec the backend accepts. */
  spec: InstanceSpec;
  /** A spec the backend rejects as an invalid parameter (HTTP 400 class). */
  invalidSpec: InstanceSpec;
  /** An instance that does not exist. */
  missingRef: InstanceRef;
  /** Poll interval for waits, small so the suite stays fast. */
  pollMs: number;
  /** The volume to snapshot for an instance. */
  volumeOf(state: InstanceState): VolumeRef;
  /** Absent for providers with no remote API to fail (local). */
  faults?: ContractFaults;
  /** Returns the user-data the backend recorded for the instance, when the backend exposes it. */
  userDataOf?(ref: InstanceRef): Promise<string | undefined>;
  close(): Promise<void>;
}

async function rejectsWith(p: Promise<unknown>, type: ProviderErrorType, retryable: boolean): Promise<ProviderError> {
  try {
    await p;
  } catch (err) {
    assert.ok(err instanceof ProviderError, `expected a ProviderError, got ${String(err)}`);
    assert.equal(err.type, type, `expected ${type}, got ${err.type}: ${err.message}`);
    assert.equal(err.retryable, retryable);
    return err;
  }
  assert.fail(`expected a ${type} ProviderError, but the call succeeded`);
}

/**
 * `opts.faults: false` for a provider with no remote API to fail (local): its fault-injection
 * cases do not apply, so they are not registered at all rather than skipped.
 */
export function providerContract(name: string, makeHarness: () => Promise<ContractHarness>, opts: { faults?: boolean } = {}): void {
  describe(`provider contract: ${name}`, () => {
    let h: ContractHarness;
    const run = `${name}-${process.pid}-${Date.now().toString(36)}`;

    before(async () => {
      h = await makeHarness();
    });
    after(async () => {
      await h?.close();
    });

    it('describeSite reports a limit and a usage that is not above it', async () => {
      const cap = await h.provider.describeSite();
      assert.ok(cap.instances.limit > 0, `limit ${cap.instances.limit}`);
      assert.ok(cap.instances.used >= 0 && cap.instances.used <= cap.instances.limit);
      assert.ok(cap.source === 'provider' || cap.source === 'config');
    });

    it('create → wait running → tag → snapshot → stop → terminate', async () => {
      const p = h.provider;
      const ref = await p.createInstance({ ...h.spec, tags: { ...h.spec.tags, suite: 'contract' } }, `${run}/lifecycle`);
      assert.equal(ref.provider, p.kind);
      assert.equal(ref.site, p.site);

      const polls: InstanceState[] = [];
      const up = await p.waitFor(ref, 'running', { timeoutMs: 30_000, pollMs: h.pollMs, onPoll: (s) => polls.push(s) });
      assert.equal(up.status, 'running');
      assert.ok(polls.length >= 1, 'onPoll was never called, so the activity could not heartbeat');
      assert.equal(up.tags.suite, 'contract');

      if (h.userDataOf && h.spec.userData) assert.equal(await h.userDataOf(ref), h.spec.userData);

      await p.tag(ref, { stage: 'tagged' });
      const tagged = await p.describeInstance(ref);
      assert.equal(tagged.tags.stage, 'tagged');
      assert.equal(tagged.tags.suite, 'contract', 'tagging must add to the existing tags, not replace them');

      const vol = h.volumeOf(tagged);
      const snap = await p.snapshotVolume(vol, `${run}/snap`);
      assert.ok(snap.id.length > 0);
      assert.equal(snap.site, p.site);
      const again = await p.snapshotVolume(vol, `${run}/snap`);
      assert.equal(again.id, snap.id, 'the same idempotency key must give the same snapshot');
      await p.tag(vol, { stage: 'snapshotted' });

      await p.stopInstance(ref);
      const down = await p.waitFor(ref, 'stopped', { timeoutMs: 30_000, pollMs: h.pollMs });
      assert.equal(down.status, 'stopped');

      await p.terminateInstance(ref);
      const gone = await p.waitFor(ref, 'terminated', { timeoutMs: 30_000, pollMs: h.pollMs });
      assert.equal(gone.status, 'terminated');
    });

    it('the same idempotency key twice gives one instance; another key gives another', async () => {
      const p = h.provider;
      const a = await p.createInstance(h.spec, `${run}/idem`);
      const b = await p.createInstance(h.spec, `${run}/idem`);
      assert.equal(b.id, a.id);
      const c = await p.createInstance(h.spec, `${run}/idem-other`);
      assert.notEqual(c.id, a.id);
      // A compensation finds what a create with its key made, and nothing once it is terminated.
      assert.equal((await p.findInstance(h.spec.name, `${run}/idem`))?.id, a.id);
      assert.equal(await p.findInstance(h.spec.name, `${run}/never-created`), undefined);
      for (const r of [a, c]) {
        await p.terminateInstance(r);
        await p.waitFor(r, 'terminated', { timeoutMs: 30_000, pollMs: h.pollMs });
      }
      assert.equal(await p.findInstance(h.spec.name, `${run}/idem`), undefined);
    });

    it('not found is a non-retryable ProviderNotFound', async () => {
      const err = await rejectsWith(h.provider.describeInstance(h.missingRef), ProviderErrorType.NotFound, false);
      assert.match(err.message, new RegExp(h.missingRef.id.replace(/[.*+?^${}()|[\]\\]/g, '\\$&')));
    });

    it('an invalid parameter is a non-retryable ProviderInvalidParameter', async () => {
      await rejectsWith(h.provider.createInstance(h.invalidSpec, `${run}/invalid`), ProviderErrorType.InvalidParameter, false);
    });

    it('a wait is cancelled through its AbortSignal, and times out with a retryable ProviderTimeout', async () => {
      const p = h.provider;
      const ref = await p.createInstance(h.spec, `${run}/cancel`);
      await p.waitFor(ref, 'running', { timeoutMs: 30_000, pollMs: h.pollMs });

      const ctl = new AbortController();
      const reason = new Error('activity cancelled');
      const t0 = Date.now();
      setTimeout(() => ctl.abort(reason), 300);
      // 'terminated' never comes: nothing deletes the instance, so only the signal ends the wait.
      await assert.rejects(p.waitFor(ref, 'terminated', { timeoutMs: 60_000, pollMs: h.pollMs, signal: ctl.signal }), (err) => err === reason);
      assert.ok(Date.now() - t0 < 5_000, `cancellation took ${Date.now() - t0} ms`);

      await rejectsWith(p.waitFor(ref, 'stopped', { timeoutMs: 700, pollMs: h.pollMs }), ProviderErrorType.Timeout, true);

      await p.terminateInstance(ref);
      await p.waitFor(ref, 'terminated', { timeoutMs: 30_000, pollMs: h.pollMs });
    });

    if (opts.faults !== false) describe('fault injection', () => {
      let ref: InstanceRef;
      const faults = () => {
        if (!h.faults) throw new Error(`${name}: the harness has no fault injection, so pass { faults: false } to providerContract`);
        return h.faults;
      };

      before(async () => {
        if (!h.faults) return;
        ref = await h.provider.createInstance(h.spec, `${run}/faults`);
      });
      after(async () => {
        if (!h.faults || !ref) return;
        h.faults.plan.clear();
        await h.provider.terminateInstance(ref);
      });

      it('a throttled call is retried and then succeeds', async () => {
        const f = faults();
        const before = f.plan.count(f.describeMatch);
        f.plan.inject({ kind: 'throttle', match: f.describeMatch, times: 1 });
        const s = await h.provider.describeInstance(ref);
        assert.equal(s.ref.id, ref.id);
        assert.ok(f.plan.count(f.describeMatch) - before >= 2, 'the throttled request was not retried');
      });

      it('a 5xx is retried and then succeeds', async () => {
        const f = faults();
        const before = f.plan.count(f.describeMatch);
        f.plan.inject({ kind: 'unavailable', match: f.describeMatch, times: 1 });
        await h.provider.describeInstance(ref);
        assert.ok(f.plan.count(f.describeMatch) - before >= 2);
      });

      it('throttling that outlasts the retries surfaces as a retryable ProviderThrottled', async () => {
        const f = faults();
        f.plan.inject({ kind: 'throttle', match: f.describeMatch, times: 50 });
        try {
          await rejectsWith(h.provider.describeInstance(ref), ProviderErrorType.Throttled, true);
        } finally {
          f.plan.clear();
        }
      });

      it('an auth failure (403) is not retried and is non-retryable', async () => {
        const f = faults();
        const before = f.plan.count(f.describeMatch);
        f.plan.inject({ kind: 'auth', match: f.describeMatch, times: 5 });
        try {
          await rejectsWith(h.provider.describeInstance(ref), ProviderErrorType.Auth, false);
          assert.equal(f.plan.count(f.describeMatch) - before, 1, 'an auth failure must not be retried');
        } finally {
          f.plan.clear();
        }
      });

      it('a response slower than the request timeout becomes a retryable ProviderTimeout', async () => {
        const f = faults();
        f.plan.inject({ kind: 'slow', match: f.describeMatch, times: 50, delayMs: f.slowDelayMs });
        try {
          await rejectsWith(h.provider.describeInstance(ref), ProviderErrorType.Timeout, true);
        } finally {
          f.plan.clear();
        }
      });
    });
  });
}
