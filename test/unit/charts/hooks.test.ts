// Which hooks run on a deploy: skiff's own hooks always; a chart's Helm hook
// by its install/upgrade kinds (a first deploy is Helm's install, a later one
// its upgrade); and which outcomes delete a hook once it has run.
import { describe, expect, it } from 'vitest';
import { helmHookRuns, hookDeletedAfter, hookOf, splitHooks } from '../../../src/kinds/apply-order.js';
import { ConfigError, ExitCode } from '../../../src/errors.js';
import type { KubeObject, Manifest } from '../../../src/kube/objects.js';

function object(kind: string, name: string, annotations?: Record<string, string>): KubeObject {
  return { apiVersion: kind === 'Job' ? 'batch/v1' : 'v1', kind, metadata: { name, ...(annotations ? { annotations } : {}) } };
}

const manifest = (o: KubeObject, line = 1): Manifest => ({ object: o, source: { file: `chart web: templates/${o.metadata.name}.yaml`, line } });

/** A chart's Helm hook as chartObjects leaves it: Helm's annotation, and skiff's hook. */
const helmHook = (name: string, kinds: string, as: 'pre-deploy' | 'post-deploy') =>
  manifest(object('Job', name, { 'helm.sh/hook': kinds, 'skiff.io/hook': as }));
const skiffHook = (name: string, as: 'pre-deploy' | 'post-deploy') => manifest(object('Job', name, { 'skiff.io/hook': as }));
const plain = (name: string) => manifest(object('ConfigMap', name));

/** The names in each part of splitHooks' result. */
function parts(manifests: Manifest[], upgrade: boolean): { pre: string[]; main: string[]; post: string[] } {
  const r = splitHooks(manifests, upgrade);
  const names = (l: Manifest[]) => l.map((m) => m.object.metadata.name);
  return { pre: names(r.pre), main: names(r.main), post: names(r.post) };
}

const RELEASE = [
  plain('config'),
  helmHook('migrate', 'pre-install,pre-upgrade', 'pre-deploy'),
  helmHook('create-db', 'pre-install', 'pre-deploy'),
  helmHook('backup', 'pre-upgrade', 'pre-deploy'),
  skiffHook('check', 'pre-deploy'),
  helmHook('welcome', 'post-install', 'post-deploy'),
  helmHook('notify', 'post-upgrade', 'post-deploy'),
  helmHook('smoke', 'post-install, post-upgrade', 'post-deploy'),
  skiffHook('report', 'post-deploy'),
  plain('settings'),
];

describe('splitHooks', () => {
  it("on a first deploy (Helm's install): install hooks and skiff's hooks, not upgrade-only ones", () => {
    expect(parts(RELEASE, false)).toEqual({
      pre: ['migrate', 'create-db', 'check'],
      main: ['config', 'settings'],
      post: ['welcome', 'smoke', 'report'],
    });
  });

  it("on a later deploy (Helm's upgrade): upgrade hooks and skiff's hooks, not install-only ones", () => {
    expect(parts(RELEASE, true)).toEqual({
      pre: ['migrate', 'backup', 'check'],
      main: ['config', 'settings'],
      post: ['notify', 'smoke', 'report'],
    });
  });

  it('is a first deploy unless told otherwise', () => {
    expect(splitHooks(RELEASE).pre.map((m) => m.object.metadata.name)).toEqual(['migrate', 'create-db', 'check']);
  });

  it('keeps the manifests themselves, in input order within each part', () => {
    const r = splitHooks(RELEASE, true);
    expect(r.pre[0]).toBe(RELEASE[1]);
    expect(r.main).toEqual([RELEASE[0], RELEASE[9]]);
  });

  it('refuses a skiff.io/hook that is not a hook, naming the object and the value', () => {
    const bad = manifest(object('Job', 'typo', { 'skiff.io/hook': 'pre-install' }));
    let error: unknown;
    try {
      splitHooks([bad]);
    } catch (e) {
      error = e;
    }
    expect(error).toBeInstanceOf(ConfigError);
    expect((error as ConfigError).exitCode).toBe(ExitCode.badInput);
    expect((error as ConfigError).message).toBe(
      'Job "typo": annotation skiff.io/hook: "pre-install" is not a hook; use "pre-deploy" or "post-deploy", or remove the annotation',
    );
  });
});

describe('helmHookRuns', () => {
  const withHelmHook = (kinds: string) => object('Job', 'h', { 'helm.sh/hook': kinds, 'skiff.io/hook': 'pre-deploy' });

  it('a skiff hook (no helm.sh/hook) runs on every deploy', () => {
    expect([
      helmHookRuns(object('Job', 's', { 'skiff.io/hook': 'pre-deploy' }), false),
      helmHookRuns(object('Job', 's', { 'skiff.io/hook': 'pre-deploy' }), true),
    ]).toEqual([true, true]);
    expect([helmHookRuns(object('ConfigMap', 'c'), false), helmHookRuns(object('ConfigMap', 'c'), true)]).toEqual([true, true]);
  });

  it.each([
    ['pre-install', true, false],
    ['post-install', true, false],
    ['pre-upgrade', false, true],
    ['post-upgrade', false, true],
    ['pre-install,pre-upgrade', true, true],
    [' post-upgrade , post-install ', true, true],
    // A hook set by hand as skiff's whose Helm kinds skiff does not run (a chart's test Job made a post-deploy hook).
    ['test', true, true],
    ['pre-delete', true, true],
  ])('helm.sh/hook: %s runs on install %s, on upgrade %s', (kinds, install, upgrade) => {
    expect(helmHookRuns(withHelmHook(kinds), false)).toBe(install);
    expect(helmHookRuns(withHelmHook(kinds), true)).toBe(upgrade);
  });
});

describe('hookDeletedAfter', () => {
  const policy = (p?: string) =>
    hookDeletedAfter(object('Job', 'h', p === undefined ? { 'skiff.io/hook': 'pre-deploy' } : { 'helm.sh/hook-delete-policy': p }));

  it.each([
    [undefined, false, false],
    ['before-hook-creation', false, false],
    ['hook-succeeded', true, false],
    ['hook-failed', false, true],
    ['before-hook-creation,hook-succeeded', true, false],
    [' hook-succeeded , hook-failed ', true, true],
  ])('helm.sh/hook-delete-policy: %s deletes it after success %s, after failure %s', (p, succeeded, failed) => {
    expect(policy(p)).toEqual({ succeeded, failed });
  });

  it('an object without annotations is never deleted after it ran', () => {
    expect(hookDeletedAfter(object('Job', 'h'))).toEqual({ succeeded: false, failed: false });
  });
});

describe('hookOf', () => {
  it('reads skiff.io/hook, and nothing for an ordinary object or a Helm annotation alone', () => {
    expect(hookOf(object('Job', 'a', { 'skiff.io/hook': 'post-deploy' }))).toBe('post-deploy');
    expect(hookOf(object('Job', 'b'))).toBeUndefined();
    expect(hookOf(object('Job', 'c', { 'helm.sh/hook': 'pre-install' }))).toBeUndefined();
  });
});
