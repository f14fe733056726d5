import { strict as assert } from 'node:assert';
import { test } from 'node:test';

import { environmentLine, formatChunk, summaryLine } from '../format';

const base = { runId: 'r', uri: 'file:///a.py', signal: null, timedOut: false, truncated: false, durationMs: 41.6 };

test('summary: exit status, limit, cancellation, signal', () => {
  assert.equal(summaryLine({ ...base, exitCode: 0, limit: null }), '── exit 0 in 42 ms ──');
  assert.equal(summaryLine({ ...base, exitCode: null, limit: 'timeout', timedOut: true }), '── stopped by the timeout limit after 42 ms ──');
  assert.equal(summaryLine({ ...base, exitCode: null, limit: null, cancelled: true }), '── stopped after 42 ms ──');
  assert.equal(summaryLine({ ...base, exitCode: null, signal: 11, limit: null }), '── killed by signal 11 after 42 ms ──');
});

test('stderr lines are marked, stdout is left alone', () => {
  assert.equal(formatChunk('stdout', 'a\nb\n', true), 'a\nb\n');
  assert.equal(formatChunk('stderr', 'Traceback\n  x\n', true), '[stderr] Traceback\n[stderr]   x\n');
  assert.equal(formatChunk('stderr', 'rest of line\nnext', false), 'rest of line\n[stderr] next');
});

test('the environment line names the folder, what it is and how it was found', () => {
  assert.equal(environmentLine(null), null);
  assert.equal(
    environmentLine({ kind: 'python-venv', path: '/p/.venv', foundBy: 'nearest .venv', version: '3.11.7', notMounted: [] }),
    'environment: /p/.venv (Python 3.11.7; nearest .venv)');
  assert.equal(
    environmentLine({ kind: 'node-modules', path: '/p/node_modules', foundBy: 'nearest node_modules' }),
    'environment: /p/node_modules (node_modules; nearest node_modules)');
  assert.equal(
    environmentLine({ kind: 'python-venv', path: '/p/.venv', foundBy: '--env', notMounted: ['/p: the project folder itself is never mounted'] }),
    'environment: /p/.venv (Python; --env; not mounted: /p: the project folder itself is never mounted)');
});
