/**
 * The Lambda function's archive, written with fflate (a maintained, dependency-free ZIP and
 * DEFLATE library). Entries are deflated at level 9, carry Unix permissions in the external
 * attributes (made by Unix: Lambda reads the files as another user, so they must be
 * world-readable), and a fixed timestamp, so the same input gives the same bytes. fflate writes
 * no ZIP64, so more than 65,535 entries is refused here with what to do (Lambda's own limit is
 * 250 MB unzipped).
 */
import { zipSync, type Zippable } from 'fflate';

export interface ZipEntry {
  /** Path inside the archive, with forward slashes. */
  name: string;
  data: Buffer;
  /** Unix mode bits (default 0o644). */
  mode?: number;
}

// 1980-01-01 00:00, the earliest MS-DOS date (fflate takes it in local time, as DOS did): the
// archive does not depend on when it was built.
const EPOCH = new Date(1980, 0, 1, 0, 0, 0);
const UNIX = 3;

export function zipBytes(entries: ZipEntry[]): Buffer {
  if (entries.length > 0xffff) throw new Error(`zip: ${entries.length} entries; without ZIP64 at most 65535 fit: leave files out of the package`);
  const files: Zippable = {};
  for (const e of entries) {
    if (e.name in files) throw new Error(`zip: '${e.name}' is given twice`);
    files[e.name] = [e.data, { level: 9, mtime: EPOCH, os: UNIX, attrs: ((0o100000 | (e.mode ?? 0o644)) << 16) >>> 0 }];
  }
  return Buffer.from(zipSync(files));
}
