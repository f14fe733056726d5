// Typed extension settings and their mapping onto the server's `forgeai` settings.
// Pure: no `vscode` import, so it is unit-tested under plain node.

export interface ExtensionSettings {
  serverPath: string;
  pythonPath: string;
  backend: 'native' | 'docker';
  dockerHost: string | null;
  dockerPool: number;
  pool: { size: number; sizes: Record<string, number>; idleTimeout: number; memoryBudgetMb: number };
  compileCache: boolean;
  limits: { timeout: number | null; memoryMb: number | null; network: boolean };
  pluginDirs: string[];
  trust: { minimumLevel: 'official' | 'enterprise' | 'verified' | 'community'; allowUnsigned: boolean };
  replacePreviousRun: boolean;
  environment: { enabled: boolean; python: string | null; nodeModules: string | null };
  networkAllow: string[];
}

/** Reads one setting; the getter is `vscode.WorkspaceConfiguration.get` in the extension. */
export type SettingGetter = <T>(key: string, fallback: T) => T;

export function readSettings(get: SettingGetter): ExtensionSettings {
  return {
    serverPath: get('serverPath', ''),
    pythonPath: get('pythonPath', ''),
    backend: get<'native' | 'docker'>('backend', 'native'),
    dockerHost: get<string | null>('dockerHost', null),
    dockerPool: get('dockerPool', 0),
    pool: {
      size: get('pool.size', 4),
      sizes: get<Record<string, number>>('pool.sizes', {}),
      idleTimeout: get('pool.idleTimeout', 300),
      memoryBudgetMb: get('pool.memoryBudgetMb', 512),
    },
    compileCache: get('compileCache', true),
    limits: {
      timeout: get<number | null>('limits.timeout', null),
      memoryMb: get<number | null>('limits.memoryMb', null),
      network: get('limits.network', false),
    },
    pluginDirs: get<string[]>('pluginDirs', []),
    trust: {
      minimumLevel: get('trust.minimumLevel', 'community'),
      allowUnsigned: get('trust.allowUnsigned', false),
    },
    replacePreviousRun: get('replacePreviousRun', true),
    environment: {
      enabled: get('environment.enabled', true),
      python: get<string | null>('environment.python', null) || null,
      nodeModules: get<string | null>('environment.nodeModules', null) || null,
    },
    networkAllow: get<string[]>('network.allow', []),
  };
}

/** The server's settings object (initializationOptions / didChangeConfiguration). */
export function serverSettings(settings: ExtensionSettings, pythonFromEditor?: string | null): Record<string, unknown> {
  const environment: Record<string, unknown> = { enabled: settings.environment.enabled };
  if (settings.environment.python) environment.python = settings.environment.python;
  if (settings.environment.nodeModules) environment.nodeModules = settings.environment.nodeModules;
  if (pythonFromEditor) environment.pythonFromEditor = pythonFromEditor;
  const limits: Record<string, unknown> = { network: settings.limits.network };
  if (settings.limits.timeout !== null) limits.timeout = settings.limits.timeout;
  if (settings.limits.memoryMb !== null) limits.memoryMb = settings.limits.memoryMb;
  return {
    backend: settings.backend,
    ...(settings.dockerHost ? { dockerHost: settings.dockerHost } : {}),
    ...(settings.dockerPool ? { dockerPool: settings.dockerPool } : {}),
    pool: settings.pool,
    compileCache: settings.compileCache,
    limits,
    pluginDirs: settings.pluginDirs,
    trust: settings.trust,
    replacePreviousRun: settings.replacePreviousRun,
    environment,
    ...(settings.networkAllow.length ? { network: { allow: settings.networkAllow } } : {}),
  };
}

/**
 * How to start the server: an explicit path; `python -m forgeai_ls` with the configured Python;
 * else forgeai-ls on PATH. Both settings are machine-scoped (a workspace cannot set them), and
 * a forgeai-ls inside a workspace is never started on its own: opening a repository must not
 * run a program it ships.
 */
export function serverCommand(settings: ExtensionSettings): { command: string; args: string[] } {
  if (settings.serverPath) return { command: settings.serverPath, args: [] };
  if (settings.pythonPath) return { command: settings.pythonPath, args: ['-m', 'forgeai_ls'] };
  return { command: 'forgeai-ls', args: [] };
}

/** forgeai-ls executables in the workspace's virtual environments: mentioned, never run. */
export function workspaceServers(workspaceFolders: string[], exists: (path: string) => boolean): string[] {
  return workspaceFolders.flatMap((folder) =>
    ['.venv', 'venv'].map((venv) => `${folder}/${venv}/bin/forgeai-ls`).filter(exists));
}

/** Settings whose change needs a server restart (the rest apply live). */
export function needsRestart(before: ExtensionSettings, after: ExtensionSettings): boolean {
  return before.serverPath !== after.serverPath || before.pythonPath !== after.pythonPath;
}
