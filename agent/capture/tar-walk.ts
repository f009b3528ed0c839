/**
 * The entries of a volume image (the deterministic tar tarStream writes), with where each lies in
 * the image: what the target needs to patch a volume in place (volume-patch.ts). Fed bytes in
 * order, from any header boundary: the whole image as it is extracted, or one entry read from the
 * store at a time.
 *
 * Only what tarStream writes is understood: files, directories, symbolic links, and pax extended
 * headers for long names. Anything else (hard links, devices, global or GNU headers) throws
 * UnsupportedImageError, and the caller falls back to a whole extraction, which node-tar handles.
 */
import * as tar from 'tar';

export type EntryType = 'file' | 'dir' | 'symlink';

/** One entry of an image: its span (extended headers, header, data and padding) and what it says. */
export interface TarEntry {
  /** Offset of the entry's first header block (an extended header, if it has one). */
  off: number;
  /** Bytes from `off` to the end of the data's padding: the next entry starts at off + len. */
  len: number;
  /** Offset of the file's first data byte. */
  dataOff: number;
  /** Relative to the volume, without a trailing slash. */
  path: string;
  type: EntryType;
  /** The header's mode bits (& 0o7777). */
  mode: number;
  size: number;
  linkpath?: string;
  /** Header mtime, ms since the epoch (tarStream writes 0). */
  mtimeMs: number;
}

export class UnsupportedImageError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'UnsupportedImageError';
  }
}

const BLOCK = 512;

/** A path inside the volume: relative, no `..`, no empty parts. Throws otherwise (never written outside the volume). */
export function safeEntryPath(raw: string): string {
  const path = raw.replace(/\/+$/, '');
  const parts = path.split('/');
  if (!path || path.startsWith('/') || parts.some((p) => p === '' || p === '.' || p === '..')) throw new UnsupportedImageError(`entry path ${JSON.stringify(raw)} is not a plain relative path`);
  return path;
}

/**
 * Walks tar entries from byte `start` (a header boundary). feed() the bytes that follow, in order;
 * `onEntry` is called as each entry's span ends. `ended` turns true at the end-of-archive block.
 */
export class TarWalker {
  pos: number;
  ended = false;
  private readonly header = Buffer.alloc(BLOCK);
  private headerGot = 0;
  private entryStart = -1;
  private pax: tar.Pax | undefined;
  private bodyLeft = 0;
  private padLeft = 0;
  private paxBody: Buffer[] | undefined;
  private pending: TarEntry | undefined;

  constructor(
    start: number,
    private readonly onEntry: (e: TarEntry) => void,
  ) {
    this.pos = start;
  }

  /** The entry whose header has been read and whose data is being fed, if any. */
  get current(): TarEntry | undefined {
    return this.pending;
  }

  feed(buf: Uint8Array): void {
    let i = 0;
    while (i < buf.length && !this.ended) {
      if (this.bodyLeft > 0) {
        const n = Math.min(this.bodyLeft, buf.length - i);
        if (this.paxBody) this.paxBody.push(Buffer.from(buf.subarray(i, i + n)));
        this.bodyLeft -= n;
        i += n;
        this.pos += n;
        if (this.bodyLeft === 0 && this.padLeft === 0) this.bodyDone();
      } else if (this.padLeft > 0) {
        const n = Math.min(this.padLeft, buf.length - i);
        this.padLeft -= n;
        i += n;
        this.pos += n;
        if (this.padLeft === 0) this.bodyDone();
      } else {
        const n = Math.min(BLOCK - this.headerGot, buf.length - i);
        this.header.set(buf.subarray(i, i + n), this.headerGot);
        this.headerGot += n;
        i += n;
        this.pos += n;
        if (this.headerGot === BLOCK) {
          this.headerGot = 0;
          this.onHeader();
        }
      }
    }
  }

  private onHeader(): void {
    if (this.header.every((b) => b === 0)) {
      if (this.entryStart >= 0) throw new UnsupportedImageError(`the image ends inside an entry at ${this.entryStart}`);
      this.ended = true;
      return;
    }
    const h = new tar.Header(this.header);
    if (!h.cksumValid) throw new UnsupportedImageError(`bad tar header checksum at ${this.pos - BLOCK}`);
    if (this.entryStart < 0) this.entryStart = this.pos - BLOCK;
    const size = h.size ?? 0;
    const pad = (BLOCK - (size % BLOCK)) % BLOCK;
    if (h.type === 'ExtendedHeader') {
      this.paxBody = [];
      this.setBody(size, pad);
      return;
    }
    let type: EntryType;
    if (h.type === 'File' || h.type === 'OldFile' || h.type === 'ContiguousFile') type = 'file';
    else if (h.type === 'Directory') type = 'dir';
    else if (h.type === 'SymbolicLink') type = 'symlink';
    else throw new UnsupportedImageError(`tar entry type ${String(h.type)} at ${this.pos - BLOCK} (${String(h.path)})`);
    const ex = this.pax;
    const realSize = type === 'file' ? (ex?.size ?? size) : 0;
    const mtime = ex?.mtime ?? h.mtime;
    this.pending = {
      off: this.entryStart,
      len: 0,
      dataOff: this.pos,
      path: safeEntryPath(String(ex?.path ?? h.path ?? '')),
      type,
      mode: (ex?.mode ?? h.mode ?? 0) & 0o7777,
      size: realSize,
      ...(type === 'symlink' ? { linkpath: String(ex?.linkpath ?? h.linkpath ?? '') } : {}),
      mtimeMs: mtime ? mtime.getTime() : 0,
    };
    this.pax = undefined;
    // A directory's or link's size field is 0 in what tarStream writes; a non-zero one is skipped as node-tar does.
    const bodySize = type === 'file' ? realSize : size;
    const bodyPad = (BLOCK - (bodySize % BLOCK)) % BLOCK;
    this.pending.len = this.pos + bodySize + bodyPad - this.entryStart;
    this.setBody(bodySize, bodyPad);
  }

  private setBody(size: number, pad: number): void {
    this.bodyLeft = size;
    this.padLeft = pad;
    if (size === 0 && pad === 0) this.bodyDone();
  }

  private bodyDone(): void {
    if (this.paxBody) {
      const body = Buffer.concat(this.paxBody);
      this.paxBody = undefined;
      this.pax = tar.Pax.parse(body.toString('utf8'), undefined, false);
      return;
    }
    const e = this.pending;
    if (!e) return;
    this.pending = undefined;
    this.entryStart = -1;
    this.onEntry(e);
  }
}

/**
 * The entry whose headers start at `off`, reading only its header blocks (not its data) through
 * `read`; undefined at the end-of-archive block.
 */
export async function readEntryAt(read: (off: number, len: number) => Promise<Buffer>, off: number): Promise<TarEntry | undefined> {
  let found: TarEntry | undefined;
  const w = new TarWalker(off, (e) => (found = e));
  for (;;) {
    w.feed(await read(w.pos, BLOCK));
    if (w.ended) return undefined;
    const e = found ?? w.current;
    if (e) return e;
  }
}
