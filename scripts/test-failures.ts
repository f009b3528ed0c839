/** What `npm test` (scripts/test.ts) repeats of each tier's failures at the end of its output. */

/**
 * The causes in a tier's "failing tests" block (node's spec reporter prints it at the tier's end):
 * per failed test its file, name and the first lines of its error, so that the end of the whole
 * run's output, which is what a CI log's tail shows, names every failure of every tier.
 */
export function failureDigest(tierOutput: string, linesPerTest = 8): string[] {
  const at = tierOutput.lastIndexOf('✖ failing tests:');
  if (at < 0) return [];
  const out: string[] = [];
  let kept = 0;
  for (const line of tierOutput.slice(at).split('\n').slice(1)) {
    if (/^test at /.test(line)) kept = 0;
    if (!line.trim() || kept >= linesPerTest) continue;
    out.push(line);
    kept++;
  }
  return out;
}
