// The parallelism class of every op (see `Parallelism`): a property of the op alone, so every dump can
// show it and the fusion and barrier passes can rely on it.
import { match } from 'ts-pattern';
import type { Op, Parallelism } from './types.js';

export function parallelismOf(node: Op): Parallelism {
  return match<Op, Parallelism>(node)
    .with(
      { op: 'embed' },
      { op: 'rope' },
      { op: 'kv_write' },
      { op: 'add' },
      { op: 'mul' },
      { op: 'silu' },
      { op: 'slice' },
      { op: 'gelu' },
      { op: 'add_bias' },
      () => 'token-parallel',
    )
    .with({ op: 'rmsnorm' }, { op: 'head_rmsnorm' }, { op: 'layernorm' }, { op: 'softmax' }, { op: 'matmul' }, { op: 'argmax' }, () => 'row-reduction')
    .with({ op: 'attn_scores' }, { op: 'attn_mix' }, { op: 'take_rows' }, () => 'cross-token')
    .exhaustive();
}
