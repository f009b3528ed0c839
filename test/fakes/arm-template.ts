/**
 * A small evaluator of ARM template expressions for the fake ARM server: the functions fedflow's
 * templates use (resourceId, resourceGroup, subscription, guid, reference, concat, base64) and
 * property access on their results. A string is an expression when it is wrapped in [ ] (and
 * does not start with [[, ARM's escape). Object keys are evaluated too, as ARM does.
 */
import { createHash } from 'node:crypto';

export interface ArmScope {
  subscriptionId: string;
  resourceGroup: string;
  location: string;
  /** The properties of a resource by id (lower-cased), for reference(); undefined when absent. */
  lookup(id: string): Record<string, unknown> | undefined;
}

export class TemplateError extends Error {}

type Val = unknown;

/** resourceId('A/b/c', 'n1', 'n2') = /subscriptions/S/resourceGroups/G/providers/A/b/n1/c/n2 */
export function armResourceId(scope: ArmScope, type: string, names: string[]): string {
  const [ns, ...types] = type.split('/');
  if (!ns || types.length !== names.length) throw new TemplateError(`resourceId('${type}', ...): the type has ${types.length} segment(s) after its namespace but ${names.length} name(s) were given`);
  const tail = types.map((t, i) => `${t}/${names[i]}`).join('/');
  return `/subscriptions/${scope.subscriptionId}/resourceGroups/${scope.resourceGroup}/providers/${ns}/${tail}`;
}

/** ARM's guid(): a deterministic UUID from its arguments (the exact hash differs; its stability is what matters). */
function guid(args: string[]): string {
  const h = createHash('sha1').update(args.join('-')).digest('hex');
  return `${h.slice(0, 8)}-${h.slice(8, 12)}-5${h.slice(13, 16)}-8${h.slice(17, 20)}-${h.slice(20, 32)}`;
}

class Parser {
  private i = 0;
  constructor(
    private readonly s: string,
    private readonly scope: ArmScope,
  ) {}

  parse(): Val {
    const v = this.expr();
    this.ws();
    if (this.i !== this.s.length) throw new TemplateError(`unexpected '${this.s.slice(this.i)}' in expression [${this.s}]`);
    return v;
  }

  private ws(): void {
    while (this.s[this.i] === ' ') this.i++;
  }

  private expr(): Val {
    let v = this.primary();
    for (;;) {
      this.ws();
      if (this.s[this.i] !== '.') return v;
      this.i++;
      const name = this.ident();
      if (v === null || typeof v !== 'object' || !(name in v)) throw new TemplateError(`property '${name}' does not exist in [${this.s}]`);
      v = (v as Record<string, unknown>)[name];
    }
  }

  private ident(): string {
    const m = /^[A-Za-z_][A-Za-z0-9_]*/.exec(this.s.slice(this.i));
    if (!m) throw new TemplateError(`expected a name at '${this.s.slice(this.i)}' in [${this.s}]`);
    this.i += m[0].length;
    return m[0];
  }

  private primary(): Val {
    this.ws();
    if (this.s[this.i] === "'") {
      let out = '';
      this.i++;
      for (;;) {
        const c = this.s[this.i++];
        if (c === undefined) throw new TemplateError(`unterminated string in [${this.s}]`);
        if (c === "'") {
          if (this.s[this.i] === "'") {
            out += "'";
            this.i++;
            continue;
          }
          return out;
        }
        out += c;
      }
    }
    const num = /^-?\d+/.exec(this.s.slice(this.i));
    if (num) {
      this.i += num[0].length;
      return Number(num[0]);
    }
    const fn = this.ident();
    this.ws();
    if (this.s[this.i] !== '(') throw new TemplateError(`expected ( after ${fn} in [${this.s}]`);
    this.i++;
    const args: Val[] = [];
    this.ws();
    if (this.s[this.i] === ')') this.i++;
    else {
      for (;;) {
        args.push(this.expr());
        this.ws();
        const c = this.s[this.i++];
        if (c === ')') break;
        if (c !== ',') throw new TemplateError(`expected , or ) in [${this.s}]`);
      }
    }
    return this.call(fn, args);
  }

  private call(fn: string, args: Val[]): Val {
    const strs = () => args.map((a) => {
      if (typeof a !== 'string') throw new TemplateError(`${fn}() takes strings, got ${JSON.stringify(a)}`);
      return a;
    });
    switch (fn) {
      case 'resourceId': {
        const [type, ...names] = strs();
        return armResourceId(this.scope, type!, names);
      }
      case 'resourceGroup':
        return { id: `/subscriptions/${this.scope.subscriptionId}/resourceGroups/${this.scope.resourceGroup}`, name: this.scope.resourceGroup, location: this.scope.location };
      case 'subscription':
        return { id: `/subscriptions/${this.scope.subscriptionId}`, subscriptionId: this.scope.subscriptionId };
      case 'guid':
        return guid(strs());
      case 'concat':
        return strs().join('');
      case 'base64':
        return Buffer.from(strs()[0] ?? '', 'utf8').toString('base64');
      case 'reference': {
        const [id] = strs();
        const props = this.scope.lookup(id!.toLowerCase());
        if (!props) throw new TemplateError(`The Resource '${id}' is not defined in the template or does not exist (reference)`);
        return props;
      }
      default:
        throw new TemplateError(`The template function '${fn}' is not valid (the fake evaluates resourceId, resourceGroup, subscription, guid, concat, base64, reference)`);
    }
  }
}

export function evaluate(v: Val, scope: ArmScope): Val {
  if (typeof v === 'string') {
    if (v.startsWith('[[')) return v.slice(1);
    if (v.startsWith('[') && v.endsWith(']')) return new Parser(v.slice(1, -1), scope).parse();
    return v;
  }
  if (Array.isArray(v)) return v.map((x) => evaluate(x, scope));
  if (v && typeof v === 'object') {
    return Object.fromEntries(Object.entries(v).map(([k, x]) => [String(evaluate(k, scope)), evaluate(x, scope)]));
  }
  return v;
}
