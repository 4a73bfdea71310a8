// Types of bench/reliability-corpus.mjs, for test/integration/bad-inputs.test.ts.
export interface CorpusEdit {
  file: string;
  replace?: [string, string];
  write?: string;
  remove?: boolean;
  symlink?: string;
  bytes?: number;
  fill?: 'binary' | 'yaml-comment' | 'zero';
}
export interface CorpusCase {
  id: string;
  command: string[];
  edits: CorpusEdit[];
  where: string;
  message: string;
}
export interface SkiffResult {
  exitCode: number;
  stdout: string;
  stderr: string;
  signal: string | null;
}
export const repoRoot: string;
export const corpusDir: string;
export function loadCorpus(): CorpusCase[];
export function caseRepo(c: CorpusCase, parent?: string): string;
export function corpusEnv(registry: string): Record<string, string | undefined>;
export function runSkiff(dir: string, args: string[], env: Record<string, string | undefined>, timeout?: number): SkiffResult;
export function judgeCase(c: CorpusCase, r: SkiffResult): string | undefined;
export function clusterState(): string[];
export function registryState(prefix: string): Promise<string[]>;
export function stateDiff(before: string[], after: string[]): string[];
