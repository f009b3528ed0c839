// Medians of `npm run bench -- downtime` lines (one file an arm): the downtime, the floor, lost
// writes, and the window's steps (each step's own ms: the target's from `window.targetSteps`, the
// source's from `window.sourceSteps`).
//   node scripts/bench-ab-summary.mjs <a.jsonl> [<b.jsonl> …]
import { readFileSync } from 'node:fs';

const median = (xs) => {
  const s = xs.filter((x) => Number.isFinite(x)).sort((a, b) => a - b);
  if (!s.length) return NaN;
  const m = s.length >> 1;
  return s.length % 2 ? s[m] : (s[m - 1] + s[m]) / 2;
};
const TARGET = ['image', 'manifest', 'pulled', 'pullAndPatch', 'started', 'verified', 'sourceDigest', 'placement'];
const SOURCE = ['freeze', 'capture', 'announce', 'verify'];
/** Each named step's own duration: its mark minus the previous mark present. */
const stepsOf = (marks, names) => {
  const out = {};
  let prev = 0;
  for (const k of names) {
    if (marks?.[k] === undefined) continue;
    out[k] = marks[k] - prev;
    prev = marks[k];
  }
  return out;
};
for (const file of process.argv.slice(2)) {
  const rows = readFileSync(file, 'utf8').split('\n').filter((l) => l.startsWith('{') && l.includes('"downtimeMs"')).map((l) => JSON.parse(l));
  const steps = (side, names) => Object.fromEntries(names.map((k) => [k, median(rows.map((r) => stepsOf(r.window?.[side], names)[k]))]));
  console.log(JSON.stringify({
    file,
    runs: rows.length,
    medianDowntimeMs: median(rows.map((r) => r.downtimeMs)),
    downtimeMs: rows.map((r) => r.downtimeMs),
    medianFloorMs: median(rows.map((r) => r.floorMs)),
    lostWrites: rows.reduce((a, r) => a + (r.lostWrites ?? 0), 0),
    targetStepsMs: steps('targetSteps', TARGET),
    sourceStepsMs: steps('sourceSteps', SOURCE),
  }));
}
