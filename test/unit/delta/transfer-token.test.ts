import { test } from 'node:test';
import assert from 'node:assert/strict';
import { createHmac } from 'node:crypto';
import { claimsFor, issueToken, verifyToken, VerifyResult } from '../../../agent/transfer/token';

const secret = 'a'.repeat(16) + 'fedflow-test-secret-0123';
const other = 'b'.repeat(16) + 'fedflow-test-secret-0123';
const root = 'ab'.repeat(32);
const root2 = 'cd'.repeat(32);
const t0 = Date.UTC(2025, 0, 1, 12, 0, 0);
const token = issueToken(secret, claimsFor(root, 'dc:paris', 'aws:us-east-1', t0, 600));
const reason = (r: VerifyResult) => (r.ok ? 'ok' : r.reason);

test('a fresh token for the right manifest and sites is accepted with its claims', () => {
  const r = verifyToken(secret, token, { manifest: root, now: t0 + 1000, source: 'dc:paris', target: 'aws:us-east-1' });
  assert.deepEqual(r, { ok: true, claims: { manifest: root, source: 'dc:paris', target: 'aws:us-east-1', iat: t0 / 1000, exp: t0 / 1000 + 600 } });
  assert.ok(token.length < 300, `token is ${token.length} characters; it must stay header-sized`);
});

test('expired tokens are refused once past exp plus the skew', () => {
  assert.equal(reason(verifyToken(secret, token, { manifest: root, now: t0 + 604_000 })), 'ok'); // within 5 s skew
  const r = verifyToken(secret, token, { manifest: root, now: t0 + 605_000 });
  assert.equal(reason(r), 'expired');
  assert.match((r as { message: string }).message, /expired at 2025-01-01T12:10:00.000Z/);
  assert.equal(reason(verifyToken(secret, token, { manifest: root, now: t0 - 60_000 })), 'not-yet-valid');
});

test('forged tokens are refused: another secret, altered claims, re-signed claims without the secret', () => {
  assert.equal(reason(verifyToken(other, token, { manifest: root, now: t0 })), 'bad-signature');
  const [p, body, sig] = token.split('.') as [string, string, string];
  const claims = JSON.parse(Buffer.from(body, 'base64url').toString());
  const widened = Buffer.from(JSON.stringify({ ...claims, m: root2, exp: claims.exp + 86_400 })).toString('base64url');
  assert.equal(reason(verifyToken(secret, `${p}.${widened}.${sig}`, { manifest: root2, now: t0 })), 'bad-signature');
  const guessed = createHmac('sha256', 'guess').update(`${p}.${widened}`).digest('base64url');
  assert.equal(reason(verifyToken(secret, `${p}.${widened}.${guessed}`, { manifest: root2, now: t0 })), 'bad-signature');
  assert.equal(reason(verifyToken(secret, `${p}.${body}.${sig.slice(0, -2)}`, { manifest: root, now: t0 })), 'bad-signature');
});

test('a valid token for another manifest or other sites is refused', () => {
  const r = verifyToken(secret, token, { manifest: root2, now: t0 });
  assert.equal(reason(r), 'wrong-manifest');
  assert.match((r as { message: string }).message, new RegExp(`for manifest ${root}, not ${root2}`));
  assert.equal(reason(verifyToken(secret, token, { manifest: root, now: t0, target: 'gcp:europe-west1-b' })), 'wrong-site');
  assert.equal(reason(verifyToken(secret, token, { manifest: root, now: t0, source: 'aws:us-east-1' })), 'wrong-site');
});

test('malformed tokens are refused as malformed', () => {
  for (const bad of ['', 'ft1', 'ft1..', 'jwt.a.b', `ft2.${token.slice(4)}`, 'ft1.a.b.c']) {
    assert.equal(reason(verifyToken(secret, bad, { manifest: root, now: t0 })), 'malformed', `token '${bad}'`);
  }
  // Validly signed but not JSON: only someone with the secret could make this; still refused cleanly.
  const body = Buffer.from('not json').toString('base64url');
  const sig = createHmac('sha256', secret).update(`ft1.${body}`).digest('base64url');
  assert.equal(reason(verifyToken(secret, `ft1.${body}.${sig}`, { manifest: root, now: t0 })), 'malformed');
});

test('issuing refuses short secrets and bad claims, naming them', () => {
  assert.throws(() => issueToken('short', claimsFor(root, 'a', 'b', t0, 60)), /secret is 5 bytes; it must be at least 32/);
  assert.throws(() => issueToken(secret, claimsFor('xyz', 'a', 'a', t0, 0)), (err: unknown) => {
    const m = (err as Error).message;
    assert.match(m, /manifest is 'xyz'; expected a root hash/);
    assert.match(m, /source and target are both 'a'/);
    assert.match(m, /exp - iat is 0 s; expected 1..86400/);
    return true;
  });
});
