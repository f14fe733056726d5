// The output channel (one section per run) and the status bar item while runs are going.
import * as vscode from 'vscode';

import { artifactLines, environmentLine, formatChunk, images, sectionHeader, statusText, summaryLine, type RunEnvironment, type RunSummary } from './format';

interface OutputParams { runId: string; uri: string; stream: 'stdout' | 'stderr'; text: string }
interface StartedParams { runId: string; uri: string; environment?: RunEnvironment | null }

export class RunView implements vscode.Disposable {
  private readonly channel = vscode.window.createOutputChannel('ForgeAI');
  private readonly status = vscode.window.createStatusBarItem(vscode.StatusBarAlignment.Left, 100);
  private readonly running = new Map<string, { atLineStart: boolean }>();

  constructor() {
    this.status.command = 'forgeai.command.stop';
  }

  runIds(): string[] {
    return [...this.running.keys()];
  }

  /** forgeai/runStarted: the header, and the environment the run uses. */
  started(params: StartedParams): void {
    this.begin(params.runId, params.uri, params.environment);
  }

  private begin(runId: string, uri: string, environment?: RunEnvironment | null): void {
    if (this.running.has(runId)) return;
    this.running.set(runId, { atLineStart: true });
    this.channel.appendLine(sectionHeader(runId, vscode.workspace.asRelativePath(vscode.Uri.parse(uri))));
    const line = environmentLine(environment);
    if (line) this.channel.appendLine(line);
    this.channel.show(true);
    this.update();
  }

  output(params: OutputParams): void {
    this.begin(params.runId, params.uri);
    const run = this.running.get(params.runId)!;
    this.channel.append(formatChunk(params.stream, params.text, run.atLineStart));
    run.atLineStart = params.text.endsWith('\n');
  }

  finished(summary: RunSummary): void {
    this.begin(summary.runId, summary.uri, summary.environment);
    const run = this.running.get(summary.runId)!;
    if (!run.atLineStart) this.channel.appendLine('');
    for (const line of artifactLines(summary)) this.channel.appendLine(line);
    this.channel.appendLine(summaryLine(summary));
    for (const image of images(summary.artifacts)) {  // plots and pictures: shown at once
      void vscode.commands.executeCommand('vscode.open', vscode.Uri.file(image.path),
        { preview: true, preserveFocus: true, viewColumn: vscode.ViewColumn.Beside });
    }
    this.running.delete(summary.runId);
    this.update();
  }

  private update(): void {
    void vscode.commands.executeCommand('setContext', 'forgeai.running', this.running.size > 0);
    if (this.running.size === 0) {
      this.status.hide();
      return;
    }
    this.status.text = statusText(this.running.size);
    this.status.show();
  }

  dispose(): void {
    this.channel.dispose();
    this.status.dispose();
  }
}
