// Text shown in the output channel and status bar. Pure, unit-tested.

export interface RunSummary {
  runId: string;
  uri: string;
  exitCode: number | null;
  signal: number | null;
  timedOut: boolean;
  limit: string | null;
  truncated: boolean;
  durationMs: number;
  cancelled?: boolean;
}

export function sectionHeader(runId: string, fileLabel: string): string {
  return `── ForgeAI run ${runId}: ${fileLabel} ──`;
}

/** stderr is marked line by line so it stays distinguishable in a plain-text channel. */
export function formatChunk(stream: 'stdout' | 'stderr', text: string, atLineStart: boolean): string {
  if (stream === 'stdout') return text;
  const lines = text.split('\n');
  return lines
    .map((line, index) => ((index > 0 || atLineStart) && line !== '' ? `[stderr] ${line}` : line))
    .join('\n');
}

export function summaryLine(summary: RunSummary): string {
  const time = `${Math.round(summary.durationMs)} ms`;
  if (summary.cancelled) return `── stopped after ${time} ──`;
  if (summary.limit) {
    return `── stopped by the ${summary.limit} limit after ${time}${summary.truncated ? ' (output truncated)' : ''} ──`;
  }
  if (summary.exitCode === null) return `── killed by signal ${summary.signal} after ${time} ──`;
  return `── exit ${summary.exitCode} in ${time} ──`;
}

export function statusText(running: number): string {
  return running === 1 ? '$(sync~spin) ForgeAI: running (click to stop)' : `$(sync~spin) ForgeAI: ${running} runs (click to stop)`;
}
