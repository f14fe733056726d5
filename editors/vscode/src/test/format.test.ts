import { strict as assert } from 'node:assert';
import { test } from 'node:test';

import { formatChunk, summaryLine } from '../format';

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
