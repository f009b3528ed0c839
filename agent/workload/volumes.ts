/**
 * Volume paths and ownership: where a path really leads (symlinks included, for paths that do not
 * exist yet), and handing a tree to the spec's user.
 */
import { existsSync, lchownSync, lstatSync, readdirSync, realpathSync } from 'node:fs';
import { dirname, join, resolve, sep } from 'node:path';
import type { RunAs } from './exec';

/** The real path of `p`, or of its deepest existing ancestor with the rest appended (it may not exist yet). */
export function realInside(p: string): string {
  const rest: string[] = [];
  let cur = resolve(p);
  for (;;) {
    try {
      return join(realpathSync(cur), ...rest.reverse());
    } catch {
      const parent = dirname(cur);
      if (parent === cur) return resolve(p);
      rest.push(cur.slice(parent.length + (parent.endsWith(sep) ? 0 : 1)));
      cur = parent;
    }
  }
}

/** Gives `top` and everything under it to `as` (lchown: a symlink is changed, never followed), touching only what differs. */
export function chownTree(top: string, as: RunAs): void {
  if (!existsSync(top)) return;
  const walk = (p: string) => {
    const st = lstatSync(p);
    if (st.uid !== as.uid || st.gid !== as.gid) lchownSync(p, as.uid, as.gid);
    if (st.isDirectory()) for (const name of readdirSync(p)) walk(join(p, name));
  };
  walk(top);
}
