// The bad-input corpus (fixtures/bad-inputs/manifest.yaml), one test per case:
// each exits 2 with one line naming file:line (or the object and field), and
// leaves the cluster and both registries exactly as they were.
import { rmSync } from 'node:fs';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import {
  caseRepo,
  clusterState,
  corpusEnv,
  judgeCase,
  loadCorpus,
  registryState,
  runSkiff,
  stateDiff,
  type CorpusCase,
} from '../../bench/reliability-corpus.mjs';
import { kubectl, requireCluster } from '../helpers/cluster.js';
import { uniqueRegistry } from '../helpers/skiff.js';

const cases = loadCorpus();
const registry = uniqueRegistry();
const env = corpusEnv(registry);
const dirs: string[] = [];
let cluster: string[];
let images: string[];

function repo(c: CorpusCase): string {
  const dir = caseRepo(c);
  dirs.push(dir);
  return dir;
}

beforeAll(async () => {
  await requireCluster();
  // The base project's image in the registry: without it every deploy would stop at "not in the registry yet".
  const base = repo({ id: 'base', command: [], edits: [], where: '-', message: '' });
  const build = runSkiff(base, ['build', '--push'], env, 300_000);
  expect(build.exitCode, build.stderr).toBe(0);
  cluster = clusterState();
  images = await registryState(registry);
  expect(images.some((i) => i.startsWith(`${registry}/web:`))).toBe(true);
});

afterAll(async () => {
  for (const d of dirs.splice(0)) rmSync(d, { recursive: true, force: true });
  await kubectl(['delete', 'namespace', 'badin-control', '--ignore-not-found', '--wait=false'], { allowFailure: true });
});

describe('bad inputs: exit 2, file:line, nothing touched', () => {
  it('the corpus has at least 60 cases, each with a file:line or object to name', () => {
    expect(cases.length).toBeGreaterThanOrEqual(60);
  });

  it.each(cases.map((c) => [c.id, c] as const))('%s', async (_id, c) => {
    const r = runSkiff(repo(c), c.command, env);
    expect(judgeCase(c, r), r.stderr).toBeUndefined();
    const [clusterAfter, imagesAfter] = [clusterState(), await registryState(registry)];
    const changed = { cluster: stateDiff(cluster, clusterAfter), registry: stateDiff(images, imagesAfter) };
    // The next case compares with this state, so one failure is reported once.
    [cluster, images] = [clusterAfter, imagesAfter];
    expect(changed).toEqual({ cluster: [], registry: [] });
  });

  it('control: the base project deploys, and the state check sees that write', async () => {
    const base = repo({ id: 'control', command: [], edits: [], where: '-', message: '' });
    const r = runSkiff(base, ['deploy', 'staging', '--namespace', 'badin-control'], env, 300_000);
    expect(r.exitCode, r.stderr).toBe(0);
    expect(stateDiff(cluster, clusterState())).toEqual(expect.arrayContaining([expect.stringMatching(/^\+Namespace\/\/badin-control /)]));
  });
});
