import { strict as assert } from 'node:assert';
import { test } from 'node:test';

import { readFileSync } from 'node:fs';
import { join } from 'node:path';

import { needsRestart, readSettings, serverCommand, serverSettings, workspaceServers, type SettingGetter } from '../settings';

function getter(values: Record<string, unknown>): SettingGetter {
  return <T>(key: string, fallback: T) => (key in values ? (values[key] as T) : fallback);
}

test('defaults map to the server defaults, without unset limits', () => {
  const settings = readSettings(getter({}));
  assert.deepEqual(serverSettings(settings), {
    backend: 'native',
    pool: { size: 4, sizes: {}, idleTimeout: 300, memoryBudgetMb: 512 },
    compileCache: true,
    limits: { network: false },
    pluginDirs: [],
    trust: { minimumLevel: 'community', allowUnsigned: false },
    replacePreviousRun: true,
    environment: { enabled: true },
  });
});

test('the network allow-list is passed when set', () => {
  const settings = readSettings(getter({ 'network.allow': ['pypi.org', 'localhost:8000'] }));
  const server = serverSettings(settings) as { network: unknown };
  assert.deepEqual(server.network, { allow: ['pypi.org', 'localhost:8000'] });
});

test('the project environment: settings, and the interpreter the Python extension selected', () => {
  const settings = readSettings(getter({ 'environment.python': '.venv-dev', 'environment.nodeModules': '' }));
  const server = serverSettings(settings, '/home/u/p/.venv/bin/python') as { environment: unknown };
  assert.deepEqual(server.environment, {
    enabled: true, python: '.venv-dev', pythonFromEditor: '/home/u/p/.venv/bin/python',
  });
  const off = serverSettings(readSettings(getter({ 'environment.enabled': false })), null) as { environment: unknown };
  assert.deepEqual(off.environment, { enabled: false });
});

test('limits and trust are passed in the server\'s camelCase form', () => {
  const settings = readSettings(getter({ 'limits.timeout': 3, 'limits.memoryMb': 64, 'trust.minimumLevel': 'verified' }));
  const server = serverSettings(settings) as { limits: unknown; trust: { minimumLevel: string } };
  assert.deepEqual(server.limits, { network: false, timeout: 3, memoryMb: 64 });
  assert.equal(server.trust.minimumLevel, 'verified');
});

test('the docker backend and its engine are passed through', () => {
  const settings = readSettings(getter({ backend: 'docker', dockerHost: 'unix:///run/podman/podman.sock', dockerPool: 2 }));
  const server = serverSettings(settings) as { backend: string; dockerHost: string; dockerPool: number };
  assert.equal(server.backend, 'docker');
  assert.equal(server.dockerHost, 'unix:///run/podman/podman.sock');
  assert.equal(server.dockerPool, 2);
});

test('warm pools and the compile cache are passed through, with defaults', () => {
  const defaults = serverSettings(readSettings(getter({}))) as { pool: { size: number; idleTimeout: number }; compileCache: boolean };
  assert.equal(defaults.pool.size, 4);
  assert.equal(defaults.pool.idleTimeout, 300);
  assert.equal(defaults.compileCache, true);
  const settings = readSettings(getter({ 'pool.size': 8, 'pool.sizes': { python: 6 }, 'pool.memoryBudgetMb': 256, compileCache: false }));
  const server = serverSettings(settings) as { pool: { size: number; sizes: Record<string, number>; memoryBudgetMb: number }; compileCache: boolean };
  assert.deepEqual(server.pool.sizes, { python: 6 });
  assert.equal(server.pool.size, 8);
  assert.equal(server.pool.memoryBudgetMb, 256);
  assert.equal(server.compileCache, false);
});

test('server command: explicit path, then python -m, then PATH', () => {
  assert.deepEqual(serverCommand(readSettings(getter({ serverPath: '/x/forgeai-ls', pythonPath: '/p' }))), { command: '/x/forgeai-ls', args: [] });
  assert.deepEqual(serverCommand(readSettings(getter({ pythonPath: '/venv/bin/python' }))), { command: '/venv/bin/python', args: ['-m', 'forgeai_ls'] });
  assert.deepEqual(serverCommand(readSettings(getter({}))), { command: 'forgeai-ls', args: [] });
});

test('a forgeai-ls inside the workspace is never the server, only mentioned', () => {
  const settings = readSettings(getter({}));
  const exists = (path: string) => path === '/ws/.venv/bin/forgeai-ls';
  assert.deepEqual(serverCommand(settings), { command: 'forgeai-ls', args: [] });
  assert.deepEqual(workspaceServers(['/other', '/ws'], exists), ['/ws/.venv/bin/forgeai-ls']);
});

test('restricted mode: the settings that choose what runs are machine-scoped and restricted', () => {
  const manifest = JSON.parse(readFileSync(join(__dirname, '..', '..', 'package.json'), 'utf8'));
  const untrusted = manifest.capabilities.untrustedWorkspaces;
  assert.equal(untrusted.supported, 'limited');
  const properties: Record<string, { scope?: string }> = manifest.contributes.configuration.properties;
  for (const [key, property] of Object.entries(properties)) {
    assert.ok(property.scope, `${key} has no scope`);
  }
  for (const key of ['forgeai.serverPath', 'forgeai.pythonPath', 'forgeai.pluginDirs',
    'forgeai.trust.allowUnsigned', 'forgeai.trust.minimumLevel', 'forgeai.dockerHost']) {
    assert.equal(properties[key].scope, 'machine', key);
    assert.ok(untrusted.restrictedConfigurations.includes(key), key);
  }
  assert.ok(untrusted.restrictedConfigurations.includes('forgeai.limits.network'));
});

test('only a different server needs a restart', () => {
  const a = readSettings(getter({}));
  assert.equal(needsRestart(a, readSettings(getter({ 'limits.timeout': 5 }))), false);
  assert.equal(needsRestart(a, readSettings(getter({ pythonPath: '/other' }))), true);
});
