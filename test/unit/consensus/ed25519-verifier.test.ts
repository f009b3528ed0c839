/**
 * The workflow-side Ed25519 verifier (pure JS) must agree with the sites' node:crypto one on
 * every signature: real keys and votes from agent/federation/site-keys.ts, then tampered ones.
 */
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, describe, it } from 'node:test';
import fc from 'fast-check';
import { ed25519Verifier, ensureSiteKey, loadSiteSigner } from '../../../agent/federation/site-keys';
import { signVote, voteSignatureValid } from '../../../core/consensus/bft-votes';
import { pureEd25519Verifier, rawEd25519PublicKey } from '../../../core/consensus/ed25519-verifier';

const home = mkdtempSync(join(tmpdir(), 'fedflow-ed25519-'));
const sites = ['dc:a', 'dc:b'];
const keys = Object.fromEntries(sites.map((s) => [s, ensureSiteKey(join(home, s))]));
const signers = Object.fromEntries(sites.map((s) => [s, loadSiteSigner(join(home, s), s)]));
const pure = pureEd25519Verifier(keys);
const node = ed25519Verifier(keys);

describe('pure Ed25519 verifier (workflow side)', () => {
  after(() => rmSync(home, { recursive: true, force: true }));

  it('accepts real votes and agrees with node:crypto on tampered ones', () => {
    fc.assert(
      fc.property(
        fc.constantFrom('prepare' as const, 'commit' as const),
        fc.nat(1000),
        fc.integer({ min: 1, max: 1_000_000 }),
        fc.uint8Array({ minLength: 32, maxLength: 32 }),
        fc.nat(63),
        (type, view, seq, d, flip) => {
          const digest = Buffer.from(d).toString('hex');
          const v = signVote(signers['dc:a']!, { type, view, seq, digest });
          assert.equal(voteSignatureValid(pure, v), true);
          const sig = Buffer.from(v.sig, 'base64');
          sig[flip] = sig[flip]! ^ 0x01;
          const variants = [
            { ...v, sig: sig.toString('base64') },
            { ...v, seq: v.seq + 1 },
            { ...v, digest: digest.replace(/^./, (c) => (c === '0' ? '1' : '0')) },
            { ...v, site: 'dc:b' },
            { ...v, site: 'dc:unknown' },
            { ...v, sig: 'not base64!' },
            { ...v, sig: Buffer.alloc(63).toString('base64') },
          ];
          for (const x of variants) {
            assert.equal(voteSignatureValid(pure, x), false, JSON.stringify(x));
            assert.equal(voteSignatureValid(node, x), voteSignatureValid(pure, x));
          }
        },
      ),
      { numRuns: 200 },
    );
  });

  it('reads the federation config key format and names what is wrong with a bad key', () => {
    assert.equal(rawEd25519PublicKey(keys['dc:a']!).length, 32);
    assert.throws(() => rawEd25519PublicKey(Buffer.alloc(44).toString('base64')), /not a base64 SPKI DER Ed25519 public key \(44 bytes; expected 44 starting 302a300506032b6570032100\)/);
    // A site whose key does not parse has no valid votes, like an unknown one.
    const broken = pureEd25519Verifier({ 'dc:a': 'AAAA' });
    assert.equal(voteSignatureValid(broken, signVote(signers['dc:a']!, { type: 'commit', view: 0, seq: 1, digest: 'ab'.repeat(32) })), false);
  });
});
