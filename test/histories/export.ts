/** Writes a workflow's history as test/histories/<workflowId>.<tag>-<name>.json, for the replay test. */
import { execFile } from 'node:child_process';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { findTemporalCli } from '../../scripts/temporal-cli';

export async function exportHistory(address: string, workflowId: string, tag: string, name: string): Promise<void> {
  // The CLI's JSON export is the format Worker.runReplayHistory documents.
  const { stdout } = await promisify(execFile)(findTemporalCli().path, ['workflow', 'show', '--workflow-id', workflowId, '--output', 'json', '--address', address], { maxBuffer: 64 << 20 });
  const path = join(__dirname, `${workflowId}.${tag}-${name}.json`);
  writeFileSync(path, stdout);
  console.log(`wrote ${path} (${(JSON.parse(stdout) as { events: unknown[] }).events.length} events)`);
}
