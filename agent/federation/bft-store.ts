/**
 * A site's durable BFT state, next to its federation log: the votes it signed and the sequences
 * it committed, per view, in one append-only file of checksummed records (the framing of
 * log-records.ts). The order of BftReady holds here too: every step's records are
 * written with one fsync before its messages leave the site. What this file buys after a crash:
 * the site never signs a second digest for a (view, sequence) it already voted on (that would be
 * equivocation), and it keeps its committed prefix without asking anyone.
 */
import { closeSync, existsSync, fstatSync, fsyncSync, ftruncateSync, mkdirSync, openSync, readFileSync, writeSync } from 'node:fs';
import { join } from 'node:path';
import type { BftCommitted, SignedRecord } from '../../core/consensus/bft-types';
import { encodeRecord, scanRecords } from './log-records';

export const BFT_STORE_FILE = 'bft.log';

export type BftRecord<T> = { t: 'signed'; view: number; rec: SignedRecord<T> } | { t: 'committed'; view: number; c: BftCommitted<T> };

export interface BftViewState<T> {
  signed: SignedRecord<T>[];
  committed: BftCommitted<T>[];
}

export class BftStore<T> {
  private readonly fd: number;
  private readonly views = new Map<number, BftViewState<T>>();
  readonly recoveredTornTail: boolean;

  private constructor(readonly path: string) {
    this.fd = openSync(path, existsSync(path) ? 'r+' : 'a+');
    const scan = scanRecords<BftRecord<T>>(readFileSync(path), path);
    for (const r of scan.records) this.remember(r);
    this.recoveredTornTail = scan.tornTail;
    if (scan.tornTail) {
      ftruncateSync(this.fd, scan.goodBytes);
      fsyncSync(this.fd);
    }
  }

  /** Opens (or creates) the store in `siteDir`. */
  static open<T>(siteDir: string): BftStore<T> {
    mkdirSync(siteDir, { recursive: true });
    return new BftStore<T>(join(siteDir, BFT_STORE_FILE));
  }

  /** What this site signed and committed in `view` (empty for a view it never took part in). */
  view(view: number): BftViewState<T> {
    const v = this.views.get(view);
    return { signed: [...(v?.signed ?? [])], committed: [...(v?.committed ?? [])] };
  }

  /** Highest view with any record, or undefined. */
  get lastView(): number | undefined {
    return this.views.size ? Math.max(...this.views.keys()) : undefined;
  }

  /** Appends one step's records with a single fsync; returns once they are durable. */
  append(view: number, signed: readonly SignedRecord<T>[], committed: readonly BftCommitted<T>[]): void {
    const records: BftRecord<T>[] = [
      ...signed.map((rec) => ({ t: 'signed', view, rec }) as const),
      ...committed.map((c) => ({ t: 'committed', view, c }) as const),
    ];
    if (records.length === 0) return;
    const buf = Buffer.concat(records.map((r) => encodeRecord(r)));
    const at = fstatSync(this.fd).size;
    let off = 0;
    while (off < buf.length) off += writeSync(this.fd, buf, off, buf.length - off, at + off);
    fsyncSync(this.fd);
    for (const r of records) this.remember(r);
  }

  close(): void {
    closeSync(this.fd);
  }

  private remember(r: BftRecord<T>): void {
    let v = this.views.get(r.view);
    if (!v) this.views.set(r.view, (v = { signed: [], committed: [] }));
    if (r.t === 'signed') v.signed.push(r.rec);
    else v.committed.push(r.c);
  }
}
