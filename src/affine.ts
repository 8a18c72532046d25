// Affine expressions over named symbols (c + Σ coef·sym): symbolic tensor dimensions in the IR
// and buffer sizes / dispatch counts in compiled plans. Terms are kept sorted by symbol, no zero coefficients.

export interface Affine {
  readonly c: number;
  readonly terms: readonly (readonly [symbol: string, coef: number])[];
}

export type Env = Readonly<Record<string, number>>;

export function constant(c: number): Affine {
  return { c, terms: [] };
}

export function sym(name: string, coef = 1): Affine {
  return { c: 0, terms: coef === 0 ? [] : [[name, coef]] };
}

function normalize(c: number, coefs: Map<string, number>): Affine {
  const terms = [...coefs.entries()].filter(([, k]) => k !== 0).sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0));
  return { c, terms };
}

export function add(...xs: readonly Affine[]): Affine {
  const coefs = new Map<string, number>();
  let c = 0;
  for (const x of xs) {
    c += x.c;
    for (const [s, k] of x.terms) coefs.set(s, (coefs.get(s) ?? 0) + k);
  }
  return normalize(c, coefs);
}

export function scale(x: Affine, k: number): Affine {
  return normalize(x.c * k, new Map(x.terms.map(([s, v]) => [s, v * k])));
}

export function isConstant(x: Affine): boolean {
  return x.terms.length === 0;
}

export function equal(a: Affine, b: Affine): boolean {
  return format(a) === format(b);
}

export function evaluate(x: Affine, env: Env): number {
  let v = x.c;
  for (const [s, k] of x.terms) {
    const e = env[s];
    if (e === undefined) throw new Error(`symbol ${s} has no value`);
    v += k * e;
  }
  return v;
}

export function symbols(x: Affine): string[] {
  return x.terms.map(([s]) => s);
}

/** Canonical text: symbols in order, then the constant: `P+T`, `2*T+1`, `64`. */
export function format(x: Affine): string {
  const parts: string[] = [];
  for (const [s, k] of x.terms) {
    const mag = Math.abs(k) === 1 ? s : `${Math.abs(k)}*${s}`;
    parts.push(parts.length === 0 ? (k < 0 ? `-${mag}` : mag) : k < 0 ? `-${mag}` : `+${mag}`);
  }
  if (x.c !== 0 || parts.length === 0) {
    parts.push(parts.length === 0 ? `${x.c}` : x.c < 0 ? `${x.c}` : `+${x.c}`);
  }
  return parts.join('');
}

/** Parses the text that `format` prints (and any sum of `k*S`, `S`, `k` terms). */
export function parse(text: string): Affine {
  const src = text.replace(/\s+/g, '');
  const re = /([+-]?)(?:(\d+)\*)?([A-Za-z_][A-Za-z0-9_]*)|([+-]?)(\d+)/y;
  const coefs = new Map<string, number>();
  let c = 0;
  let at = 0;
  if (src.length === 0) throw new Error(`empty dimension`);
  while (at < src.length) {
    re.lastIndex = at;
    const m = re.exec(src);
    if (!m || (at > 0 && !/^[+-]/.test(m[0]))) throw new Error(`malformed dimension '${text}'`);
    if (m[3] !== undefined) {
      const k = (m[1] === '-' ? -1 : 1) * (m[2] !== undefined ? Number(m[2]) : 1);
      coefs.set(m[3], (coefs.get(m[3]) ?? 0) + k);
    } else {
      c += (m[4] === '-' ? -1 : 1) * Number(m[5]);
    }
    at = re.lastIndex;
  }
  return normalize(c, coefs);
}
