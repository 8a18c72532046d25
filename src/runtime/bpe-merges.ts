// Byte-pair merges of one word over integer ids: the lowest-ranked adjacent pair first, the leftmost on ties,
// as @huggingface/tokenizers' BPE.bpe does with strings; the same symbols come out, in O(n log n) for a word of n chars.

/** What this module reads of the library's BPE model (dist/tokenizers.mjs, class BPE). */
export interface LibraryBpeModel {
  merges: readonly (readonly [string, string])[];
  end_of_word_suffix?: string | null;
  continuing_subword_suffix?: string | null;
  bpe(token: string): string[];
}

/** left id * PAIR_SHIFT + right id: a pair's key; ids stay below it */
const PAIR_SHIFT = 0x400000;
/** rank * POSITION_SHIFT + position: a heap entry; positions stay below it */
const POSITION_SHIFT = 0x4000000;
const UNKNOWN = -1;
const MERGED_AWAY = -2;

/** The merges as integer tables: every string a merge reads or makes gets an id of its own. */
export class MergeTable {
  private constructor(
    private readonly idOf: ReadonlyMap<string, number>,
    private readonly names: readonly string[],
    /** pair key -> rank (the last of duplicate merges wins, as in the library's Map) */
    private readonly rankOf: ReadonlyMap<number, number>,
    /** rank -> id of the merged string */
    private readonly mergedId: Int32Array,
    private readonly endOfWordSuffix: string,
    private readonly continuingSuffix: string,
  ) {}

  /** undefined when the merges need more ids or ranks than the keys hold */
  static build(model: LibraryBpeModel): MergeTable | undefined {
    const idOf = new Map<string, number>();
    const names: string[] = [];
    const intern = (s: string): number => {
      let id = idOf.get(s);
      if (id === undefined) {
        id = names.length;
        idOf.set(s, id);
        names.push(s);
      }
      return id;
    };
    const { merges } = model;
    if (merges.length * POSITION_SHIFT > Number.MAX_SAFE_INTEGER) return undefined;
    const rankOf = new Map<number, number>();
    const mergedId = new Int32Array(merges.length);
    for (let rank = 0; rank < merges.length; rank++) {
      const [a, b] = merges[rank];
      rankOf.set(intern(a) * PAIR_SHIFT + intern(b), rank);
      mergedId[rank] = intern(a + b);
    }
    if (names.length > PAIR_SHIFT) return undefined;
    return new MergeTable(idOf, names, rankOf, mergedId, model.end_of_word_suffix ?? '', model.continuing_subword_suffix ?? '');
  }

  /** The symbols of `token` after every merge; undefined for words too long for the heap keys. */
  merge(token: string): string[] | undefined {
    const chars = Array.from(token);
    const n = chars.length;
    if (n >= POSITION_SHIFT) return undefined;
    if (this.endOfWordSuffix) chars[n - 1] += this.endOfWordSuffix;
    const sym = new Int32Array(n);
    const prev = new Int32Array(n);
    const next = new Int32Array(n);
    for (let i = 0; i < n; i++) {
      sym[i] = this.idOf.get(chars[i]) ?? UNKNOWN;
      prev[i] = i - 1;
      next[i] = i + 1 < n ? i + 1 : -1;
    }
    const heap = new MinHeap(3 * n);
    const rankAt = (i: number): number | undefined => {
      const j = next[i];
      return j < 0 || sym[i] < 0 || sym[j] < 0 ? undefined : this.rankOf.get(sym[i] * PAIR_SHIFT + sym[j]);
    };
    const add = (i: number): void => {
      const rank = rankAt(i);
      if (rank !== undefined) heap.push(rank * POSITION_SHIFT + i);
    };
    for (let i = 0; i + 1 < n; i++) add(i);
    while (heap.size > 0) {
      const key = heap.pop();
      const rank = Math.floor(key / POSITION_SHIFT);
      const i = key - rank * POSITION_SHIFT;
      // stale: the pair at i changed since this entry was pushed
      if (sym[i] < 0 || rankAt(i) !== rank) continue;
      const j = next[i];
      sym[i] = this.mergedId[rank];
      sym[j] = MERGED_AWAY;
      next[i] = next[j];
      if (next[j] >= 0) prev[next[j]] = i;
      if (prev[i] >= 0) add(prev[i]);
      add(i);
    }
    const out: string[] = [];
    for (let i = 0; i >= 0; i = next[i]) out.push(sym[i] === UNKNOWN ? chars[i] : this.names[sym[i]]);
    if (this.continuingSuffix) for (let k = 0; k + 1 < out.length; k++) out[k] += this.continuingSuffix;
    return out;
  }
}

/** Binary min-heap of non-negative integers below 2^53. */
class MinHeap {
  private keys: Float64Array;
  size = 0;

  constructor(capacity: number) {
    this.keys = new Float64Array(Math.max(capacity, 16));
  }

  push(key: number): void {
    if (this.size === this.keys.length) {
      const grown = new Float64Array(this.keys.length * 2);
      grown.set(this.keys);
      this.keys = grown;
    }
    const keys = this.keys;
    let i = this.size++;
    while (i > 0) {
      const parent = (i - 1) >> 1;
      if (keys[parent] <= key) break;
      keys[i] = keys[parent];
      i = parent;
    }
    keys[i] = key;
  }

  pop(): number {
    const keys = this.keys;
    const top = keys[0];
    const last = keys[--this.size];
    let i = 0;
    for (;;) {
      let child = 2 * i + 1;
      if (child >= this.size) break;
      if (child + 1 < this.size && keys[child + 1] < keys[child]) child++;
      if (keys[child] >= last) break;
      keys[i] = keys[child];
      i = child;
    }
    keys[i] = last;
    return top;
  }
}

/**
 * Words of at least `minLength` chars go through a MergeTable (built on the first such word); shorter ones stay
 * on the library's own cached path. The library's merge loop costs 55-70 ms for one 20,000-letter word
 * (a JSON.stringify per pair looked up, an object spread per merge); the table does the whole encode in ~15 ms.
 */
export function installLongWordMerges(model: LibraryBpeModel, minLength = 64): void {
  const libraryBpe = model.bpe.bind(model);
  let table: MergeTable | undefined | null = null;
  model.bpe = (token: string): string[] => {
    if (token.length < minLength) return libraryBpe(token);
    if (table === null) table = MergeTable.build(model);
    return table?.merge(token) ?? libraryBpe(token);
  };
}
