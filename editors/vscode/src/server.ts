// Starting, restarting and configuring forgeai-ls.
import { existsSync } from 'node:fs';
import * as vscode from 'vscode';
import { LanguageClient, State, TransportKind, type LanguageClientOptions, type ServerOptions } from 'vscode-languageclient/node';

import { needsRestart, readSettings, serverCommand, serverSettings, workspaceServers, type ExtensionSettings } from './settings';
import type { RunView } from './runView';

const LANGUAGES = ['python', 'javascript', 'shellscript', 'perl', 'c', 'cpp', 'rust', 'java',
  'typescript', 'ruby', 'go', 'lua', 'php', 'markdown'];

/** The part of the Python extension's API (ms-python.python) that says which interpreter
 * the user selected. */
interface PythonExtensionApi {
  environments: {
    getActiveEnvironmentPath(resource?: vscode.Uri): { path: string };
    onDidChangeActiveEnvironmentPath: vscode.Event<unknown>;
  };
}

async function pythonExtension(): Promise<PythonExtensionApi | undefined> {
  const extension = vscode.extensions.getExtension<PythonExtensionApi>('ms-python.python');
  if (!extension) return undefined;
  try {
    const api = extension.isActive ? extension.exports : await extension.activate();
    return api?.environments ? api : undefined;
  } catch {
    return undefined;
  }
}

function currentSettings(): ExtensionSettings {
  const config = vscode.workspace.getConfiguration('forgeai');
  return readSettings(<T>(key: string, fallback: T) => config.get<T>(key, fallback));
}

export class ServerManager implements vscode.Disposable {
  private client: LanguageClient | undefined;
  private settings = currentSettings();
  private pythonFromEditor: string | null = null;
  private pythonWatch: vscode.Disposable | undefined;
  readonly log = vscode.window.createOutputChannel('ForgeAI Language Server', { log: true });

  constructor(private readonly view: RunView) {}

  async start(): Promise<void> {
    this.settings = currentSettings();
    const folders = (vscode.workspace.workspaceFolders ?? []).map((folder) => folder.uri.fsPath);
    const { command, args } = serverCommand(this.settings);
    for (const found of workspaceServers(folders, existsSync)) {
      this.log.info(`${found} is not started: a server inside the workspace runs only if you ` +
        'choose it (set forgeai.serverPath in your user settings).');
    }
    const serverOptions: ServerOptions = { command, args, transport: TransportKind.stdio };
    const clientOptions: LanguageClientOptions = {
      documentSelector: LANGUAGES.map((language) => ({ language })),
      initializationOptions: { forgeai: serverSettings(this.settings, this.pythonFromEditor) },
      outputChannel: this.log,
    };
    this.client = new LanguageClient('forgeai', 'ForgeAI', serverOptions, clientOptions);
    this.client.onNotification('forgeai/runStarted', (params) => this.view.started(params));
    this.client.onNotification('forgeai/output', (params) => this.view.output(params));
    this.client.onNotification('forgeai/runFinished', (params) => this.view.finished(params));
    try {
      await this.client.start();
    } catch (error) {
      const choice = await vscode.window.showErrorMessage(
        `ForgeAI: could not start the language server '${command}': ${String(error)}. ` +
          'Install ForgeAI (pip install forgeai-ls) or set forgeai.serverPath / forgeai.pythonPath.',
        'Show Logs');
      if (choice === 'Show Logs') this.log.show();
      return;
    }
    void this.followPythonSelection();
  }

  /** Tell the server which interpreter the Python extension selected, now and on change
   * (never waited for: the Python extension may take a while to activate). */
  private async followPythonSelection(): Promise<void> {
    const api = await pythonExtension();
    if (!api) return;
    const update = async (): Promise<void> => {
      const resource = vscode.workspace.workspaceFolders?.[0]?.uri;
      const selected = api.environments.getActiveEnvironmentPath(resource)?.path || null;
      if (selected === this.pythonFromEditor) return;
      this.pythonFromEditor = selected;
      await this.sendSettings();
    };
    this.pythonWatch ??= api.environments.onDidChangeActiveEnvironmentPath(() => void update());
    await update();
  }

  private async sendSettings(): Promise<void> {
    if (!this.client || this.client.state !== State.Running) return;
    await this.client.sendNotification('workspace/didChangeConfiguration', {
      settings: { forgeai: serverSettings(this.settings, this.pythonFromEditor) },
    });
  }

  async onConfigurationChanged(): Promise<void> {
    const next = currentSettings();
    if (needsRestart(this.settings, next)) {
      await this.restart();
      return;
    }
    this.settings = next;
    await this.sendSettings();
  }

  async restart(): Promise<void> {
    await this.stop();
    await this.start();
  }

  async stop(): Promise<void> {
    if (this.client && this.client.state === State.Running) await this.client.stop();
    this.client = undefined;
  }

  async execute(command: string, args: unknown[]): Promise<unknown> {
    if (!this.client || this.client.state !== State.Running) {
      void vscode.window.showErrorMessage('ForgeAI: the language server is not running.', 'Show Logs')
        .then((choice) => choice && this.log.show());
      return undefined;
    }
    return this.client.sendRequest('workspace/executeCommand', { command, arguments: args });
  }

  dispose(): void {
    this.pythonWatch?.dispose();
    void this.stop();
    this.log.dispose();
  }
}
