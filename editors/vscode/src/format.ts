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
  environment?: RunEnvironment | null;
  artifacts?: RunArtifact[];
  artifactsSkipped?: string[];
}

/** A file the program wrote to its output directory, as the server saved it. */
export interface RunArtifact { name: string; size: number; mime: string; path: string }

const IMAGE_TYPES = new Set(['image/png', 'image/jpeg', 'image/gif', 'image/svg+xml', 'image/webp']);

/** Artifacts VS Code shows itself (its image preview). */
export function images(artifacts: RunArtifact[] | undefined): RunArtifact[] {
  return (artifacts ?? []).filter((artifact) => IMAGE_TYPES.has(artifact.mime));
}

/** Lines listing a run's files out (and what was not copied). */
export function artifactLines(summary: RunSummary): string[] {
  const lines = (summary.artifacts ?? []).map((artifact) =>
    `file out: ${artifact.name} (${artifact.mime}, ${artifact.size} bytes) → ${artifact.path}`);
  return [...lines, ...(summary.artifactsSkipped ?? []).map((reason) => `not copied: ${reason}`)];
}

/** The project environment a run used (the server's `environment` object). */
export interface RunEnvironment {
  kind: 'python-venv' | 'python-prefix' | 'node-modules';
  path: string;
  foundBy: string;
  interpreter?: string | null;
  version?: string | null;
  notMounted?: string[];
}

export function sectionHeader(runId: string, fileLabel: string): string {
  return `── ForgeAI run ${runId}: ${fileLabel} ──`;
}

/** One line under the header saying which environment ran, e.g.
 * `environment: /p/.venv (Python 3.11.7; nearest .venv)`. */
export function environmentLine(environment: RunEnvironment | null | undefined): string | null {
  if (!environment) return null;
  const what = environment.kind === 'node-modules'
    ? 'node_modules'
    : `Python${environment.version ? ` ${environment.version}` : ''}`;
  const skipped = environment.notMounted?.length ? `; not mounted: ${environment.notMounted.join(', ')}` : '';
  return `environment: ${environment.path} (${what}; ${environment.foundBy}${skipped})`;
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
