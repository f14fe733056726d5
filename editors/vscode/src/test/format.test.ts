import { strict as assert } from 'node:assert';
import { test } from 'node:test';

import { artifactLines, environmentLine, formatChunk, images, summaryLine } from '../format';

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

test('files out are listed, images picked for the preview', () => {
  const artifacts = [
    { name: 'plot.png', size: 2048, mime: 'image/png', path: '/h/.forgeai/artifacts/r/plot.png' },
    { name: 'data.csv', size: 10, mime: 'text/csv', path: '/h/.forgeai/artifacts/r/data.csv' },
  ];
  const summary = { ...base, exitCode: 0, limit: null, artifacts, artifactsSkipped: ['link: a symbolic link, not followed'] };
  assert.deepEqual(artifactLines(summary), [
    'file out: plot.png (image/png, 2048 bytes) → /h/.forgeai/artifacts/r/plot.png',
    'file out: data.csv (text/csv, 10 bytes) → /h/.forgeai/artifacts/r/data.csv',
    'not copied: link: a symbolic link, not followed',
  ]);
  assert.deepEqual(images(artifacts).map((a) => a.name), ['plot.png']);
  assert.deepEqual(artifactLines({ ...base, exitCode: 0, limit: null }), []);
});
