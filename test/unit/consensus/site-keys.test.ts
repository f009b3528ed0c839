/** Ed25519 site keys: created once, private file mode 0600, public key as base64 SPKI DER. */
import assert from 'node:assert/strict';
import { createPublicKey } from 'node:crypto';
import { chmodSync, mkdtempSync, rmSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, test } from 'node:test';
import { ed25519Verifier, ensureSiteKey, loadSiteSigner, SITE_KEY_FILE } from '../../../agent/federation/site-keys';

const root = mkdtempSync(join(tmpdir(), 'fedflow-keys-'));
after(() => rmSync(root, { recursive: true, force: true }));

test('a site key is created once with mode 0600 and signs verifiably', () => {
  const dir = join(root, 'dc_paris');
  const pub = ensureSiteKey(dir);
  assert.equal(ensureSiteKey(dir), pub, 'a second call must keep the existing key');
  assert.equal(statSync(join(dir, SITE_KEY_FILE)).mode & 0o777, 0o600);
  assert.equal(createPublicKey({ key: Buffer.from(pub, 'base64'), format: 'der', type: 'spki' }).asymmetricKeyType, 'ed25519');
  const signer = loadSiteSigner(dir, 'dc:paris');
  assert.deepEqual(Object.keys(signer).sort(), ['publicKey', 'sign', 'siteId'], 'the signer exposes no key material');
  const msg = Buffer.from('vote');
  const sig = signer.sign(msg);
  const verifier = ed25519Verifier({ 'dc:paris': pub });
  assert.equal(verifier.verify('dc:paris', msg, sig), true);
  assert.equal(verifier.verify('dc:paris', Buffer.from('vote!'), sig), false);
  assert.equal(verifier.verify('dc:berlin', msg, sig), false);
  assert.equal(verifier.verify('dc:paris', msg, 'bm90IGEgc2lnbmF0dXJl'), false);
});

test('a key file readable by others is refused with the fix', () => {
  const dir = join(root, 'dc_berlin');
  ensureSiteKey(dir);
  chmodSync(join(dir, SITE_KEY_FILE), 0o644);
  assert.throws(() => loadSiteSigner(dir, 'dc:berlin'), /has mode 0644; it must be 0600 \(run: chmod 600 /);
  assert.throws(() => ed25519Verifier({ 'dc:x': 'bm9wZQ==' }), /public key of site dc:x is not a base64 SPKI DER Ed25519 key/);
});
