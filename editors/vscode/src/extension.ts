// Activation only: the server, the run view and the palette commands live in their modules.
import * as vscode from 'vscode';

import { RunView } from './runView';
import { ServerManager } from './server';

export async function activate(context: vscode.ExtensionContext): Promise<void> {
  const view = new RunView();
  const server = new ServerManager(view);
  context.subscriptions.push(view, server);

  const register = (id: string, handler: () => unknown) =>
    context.subscriptions.push(vscode.commands.registerCommand(id, handler));

  register('forgeai.command.runFile', () => {
    const editor = vscode.window.activeTextEditor;
    if (editor) return server.execute('forgeai.runFile', [editor.document.uri.toString()]);
    return undefined;
  });
  register('forgeai.command.runSelection', () => {
    const editor = vscode.window.activeTextEditor;
    if (!editor || editor.selection.isEmpty) return undefined;
    const { start, end } = editor.selection;
    return server.execute('forgeai.runSelection', [editor.document.uri.toString(), {
      start: { line: start.line, character: start.character },
      end: { line: end.line, character: end.character },
    }]);
  });
  register('forgeai.command.stop', () =>
    Promise.all(view.runIds().map((runId) => server.execute('forgeai.cancelRun', [runId]))));
  register('forgeai.command.reloadPlugins', () => server.execute('forgeai.reloadPlugins', []));
  register('forgeai.command.showLogs', () => server.log.show());

  context.subscriptions.push(vscode.workspace.onDidChangeConfiguration((event) => {
    if (event.affectsConfiguration('forgeai')) void server.onConfigurationChanged();
  }));
  await server.start();
}

export function deactivate(): void {
  // Disposables registered in activate stop the server.
}
