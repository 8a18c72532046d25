// Runs the built command line (dist/src/cli.js) in a child process from the repository root, as a user would, and checks that a run succeeded.
import { spawnSync } from 'node:child_process';
import { join } from 'node:path';
import { expect } from 'vitest';

const root = new URL('..', import.meta.url).pathname;
const cli = join(root, 'dist/src/cli.js');

export interface Result {
  status: number | null;
  stdout: string;
  stderr: string;
}

/** Runs `weft ARGS`, with `input` as its standard input (default: none). */
export function runWeft(args: readonly string[], timeoutMs: number, input?: string): Result {
  const r = spawnSync(process.execPath, [cli, ...args], {
    cwd: root,
    env: process.env,
    encoding: 'utf8',
    timeout: timeoutMs,
    ...(input !== undefined ? { input } : {}),
  });
  if (r.error) throw r.error;
  return { status: r.status, stdout: r.stdout, stderr: r.stderr };
}

/** The result of a command that must succeed: exit 0 and no `weft: ` line on stderr. */
export function succeeded(r: Result): Result {
  expect(r.stderr.split('\n').filter((line) => line.startsWith('weft: '))).toEqual([]);
  expect(r.status).toBe(0);
  return r;
}
