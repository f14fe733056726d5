// ForgeAI in a real VS Code: code-server with the built .vsix, driven by Debian's Chromium.
// Opens a workspace Python file, clicks "Run in sandbox", checks the output view and the
// diagnostic, runs a selection through the command palette, and saves screenshots.
// With FORGEAI_E2E_SCENARIO=untrusted: workspace trust on, the folder opened in Restricted
// Mode with a hostile .vscode/settings.json (serverPath, pythonPath, pluginDirs, unsigned
// plugins) and a .venv/bin/forgeai-ls of its own; the run must still work through the
// user's server, and no program of the workspace may ever run.
// Environment: FORGEAI_PYTHON (Python with ForgeAI installed), FORGEAI_VSIX, ARTIFACTS.
import { chromium } from 'playwright-core';
import { spawn, spawnSync } from 'node:child_process';
import { chmodSync, existsSync, mkdirSync, mkdtempSync, writeFileSync } from 'node:fs';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { setTimeout as sleep } from 'node:timers/promises';

const here = dirname(fileURLToPath(import.meta.url));
const codeServer = join(here, 'node_modules', '.bin', 'code-server');
const artifacts = process.env.ARTIFACTS || join(here, 'artifacts');
mkdirSync(artifacts, { recursive: true });

function freePort() {
  return new Promise((resolve) => {
    const probe = createServer().listen(0, '127.0.0.1', () => {
      const { port } = probe.address();
      probe.close(() => resolve(port));
    });
  });
}

const untrusted = process.env.FORGEAI_E2E_SCENARIO === 'untrusted';
const root = mkdtempSync(join(tmpdir(), 'forgeai-vscode-'));
const [userDir, extensionsDir, workspace] = ['user', 'extensions', 'workspace'].map((name) => {
  mkdirSync(join(root, name, name === 'user' ? 'User' : ''), { recursive: true });
  return join(root, name);
});
writeFileSync(join(userDir, 'User', 'settings.json'), JSON.stringify({
  'forgeai.pythonPath': process.env.FORGEAI_PYTHON,
  'workbench.startupEditor': 'none',
  'security.workspace.trust.enabled': untrusted,
  'security.workspace.trust.startupPrompt': 'never',
  'security.workspace.trust.banner': 'never',
  'telemetry.telemetryLevel': 'off',
  'extensions.autoCheckUpdates': false,
  'extensions.autoUpdate': false,
}));
writeFileSync(join(workspace, 'hello.py'),
  'import sys\nprint("hello from code-server")\nraise ValueError("boom")\n');
if (!untrusted) {  // the project's own virtualenv: runs use it, and the output says so
  const venv = spawnSync(process.env.FORGEAI_PYTHON, ['-m', 'venv', '--without-pip', join(workspace, '.venv')],
    { encoding: 'utf8' });
  if (venv.status !== 0) throw new Error(`creating the workspace's venv failed: ${venv.stderr}`);
}
// A hostile repository: every program it ships leaves a mark if anything ever runs it.
const marks = join(root, 'marks');
mkdirSync(marks);
function hostileProgram(path, name) {
  mkdirSync(dirname(path), { recursive: true });
  writeFileSync(path, `#!/bin/sh\ntouch ${join(marks, name)}\nexit 1\n`);
  chmodSync(path, 0o755);
}
if (untrusted) {
  hostileProgram(join(workspace, '.venv', 'bin', 'forgeai-ls'), 'venv-server');
  hostileProgram(join(workspace, 'tools', 'evil-server'), 'server-path');
  hostileProgram(join(workspace, 'tools', 'evil-python'), 'python-path');
  mkdirSync(join(workspace, '.vscode'), { recursive: true });
  writeFileSync(join(workspace, '.vscode', 'settings.json'), JSON.stringify({
    'forgeai.serverPath': join(workspace, 'tools', 'evil-server'),
    'forgeai.pythonPath': join(workspace, 'tools', 'evil-python'),
    'forgeai.pluginDirs': [join(workspace, 'plugins')],
    'forgeai.trust.allowUnsigned': true,
    'forgeai.limits.network': true,
  }));
}

const installed = spawnSync(codeServer, ['--user-data-dir', userDir, '--extensions-dir', extensionsDir,
  '--install-extension', process.env.FORGEAI_VSIX], { encoding: 'utf8' });
if (installed.status !== 0) throw new Error(`installing the .vsix failed: ${installed.stderr}`);

const port = await freePort();
const server = spawn(codeServer, ['--auth', 'none', '--bind-addr', `127.0.0.1:${port}`,
  '--disable-telemetry', '--disable-update-check',
  ...(untrusted ? [] : ['--disable-workspace-trust']),
  '--user-data-dir', userDir, '--extensions-dir', extensionsDir, workspace], { stdio: 'ignore' });
const browser = await chromium.launch({
  executablePath: process.env.CHROMIUM || '/usr/bin/chromium',
  args: ['--no-sandbox', '--disable-gpu', '--disable-background-networking',
    '--disable-component-update', '--disable-sync', '--no-first-run'],
});
const checks = [];
const page = await browser.newPage({ viewport: { width: 1400, height: 900 } });
try {
  for (let attempt = 0; ; attempt++) {
    try {
      await page.goto(`http://127.0.0.1:${port}/?folder=${encodeURIComponent(workspace)}`);
      break;
    } catch (error) {
      if (attempt > 150) throw error;
      await sleep(200);
    }
  }
  await page.waitForSelector('.monaco-workbench', { timeout: 60000 });
  await page.locator('.explorer-folders-view .monaco-list-row', { hasText: 'hello.py' }).first().click();

  const lens = page.locator('.codelens-decoration a', { hasText: 'Run in sandbox' }).first();
  await lens.waitFor({ timeout: 60000 });
  checks.push('lens shown');
  await lens.click();
  const output = page.locator('.output-view, .panel .monaco-editor', { hasText: 'hello from code-server' }).first();
  await output.waitFor({ timeout: 30000 });
  await page.locator('.panel .monaco-editor', { hasText: 'exit 1 in' }).first().waitFor({ timeout: 30000 });
  checks.push('output streamed with summary');
  if (!untrusted) {
    await page.locator('.panel .monaco-editor', { hasText: `environment: ${join(workspace, '.venv')} (Python` })
      .first().waitFor({ timeout: 30000 });
    checks.push("the run's header names the workspace's venv");
  }
  await page.locator('.squiggly-error').first().waitFor({ timeout: 30000 });
  checks.push('diagnostic shown');
  await page.screenshot({ path: join(artifacts, `vscode-run-file${untrusted ? '-untrusted' : ''}.png`) });

  // Select lines 1-2 of the editor and run them through the command palette.
  await page.locator('.monaco-editor .view-lines').first().click();
  await page.keyboard.press('Control+Home');
  await page.keyboard.press('Shift+ArrowDown');
  await page.keyboard.press('Shift+End');
  await page.keyboard.press('Control+Shift+P');
  await page.keyboard.type('ForgeAI: Run Selection');
  await page.locator('.quick-input-list .monaco-list-row', { hasText: 'ForgeAI: Run Selection' }).first().waitFor();
  await page.keyboard.press('Enter');
  await page.locator('.panel .monaco-editor', { hasText: 'exit 0 in' }).first().waitFor({ timeout: 30000 });
  checks.push('selection ran from the palette');
  await page.screenshot({ path: join(artifacts, `vscode-run-selection${untrusted ? '-untrusted' : ''}.png`) });
  if (untrusted) {
    await page.locator('.statusbar', { hasText: 'Restricted Mode' }).first().waitFor({ timeout: 30000 });
    const ran = ['venv-server', 'server-path', 'python-path'].filter((name) => existsSync(join(marks, name)));
    if (ran.length) throw new Error(`programs of the untrusted workspace ran: ${ran.join(', ')}`);
    checks.push('in Restricted Mode, no program of the untrusted workspace ran');
  }
  console.log(JSON.stringify({ ok: true, checks }));
} catch (error) {
  await page.screenshot({ path: join(artifacts, 'vscode-failure.png') }).catch(() => {});
  console.log(JSON.stringify({ ok: false, checks, error: String(error) }));
  process.exitCode = 1;
} finally {
  await browser.close();
  server.kill();
}
