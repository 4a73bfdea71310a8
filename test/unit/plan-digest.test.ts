// The digest a plan records of the rendered objects: the same for two renders
// of one commit in different CI jobs (trace annotations, key order), different
// when anything applied differs, and never holding a secret value.
import { describe, expect, it } from 'vitest';
import { TRACE_ANNOTATIONS, type KubeObject } from '../../src/kube/objects.js';
import { maskDigest, secretStrings } from '../../src/secrets/material.js';
import { canonicalObject, digestChanges, renderedDigest } from '../../src/stages/plan-digest.js';

const PASSWORD = 'hunter2-very-secret';
const b64 = (s: string) => Buffer.from(s).toString('base64');

function objects(trace: Record<string, string>, opts: { replicas?: number; password?: string; reorder?: boolean } = {}): KubeObject[] {
  const password = opts.password ?? PASSWORD;
  const meta = (name: string) => ({ name, namespace: 'shop', labels: { app: name }, annotations: { ...trace, 'skiff.io/release-namespace': 'shop' } });
  const deployment: KubeObject = {
    apiVersion: 'apps/v1',
    kind: 'Deployment',
    metadata: meta('web'),
    spec: {
      replicas: opts.replicas ?? 1,
      template: { spec: { containers: [{ name: 'web', image: 'r/web@sha256:aa', env: [{ name: 'DB_URL', value: `postgres://app:${password}@db/app` }] }] } },
    },
  };
  const secret: KubeObject = { apiVersion: 'v1', kind: 'Secret', metadata: meta('db'), stringData: { DATABASE_PASSWORD: password } };
  if (opts.reorder) {
    // The same objects with their keys in another order, and listed the other way round.
    const d = JSON.parse(
      JSON.stringify({ spec: deployment.spec, metadata: deployment.metadata, kind: deployment.kind, apiVersion: deployment.apiVersion }),
    ) as KubeObject;
    return [{ stringData: secret.stringData, metadata: secret.metadata, kind: 'Secret', apiVersion: 'v1' }, d];
  }
  return [deployment, secret];
}

const secretsOf = (objs: KubeObject[], password = PASSWORD) => secretStrings({ db: { password } }, objs);
const CI_A = {
  [TRACE_ANNOTATIONS.commit]: 'c'.repeat(40),
  [TRACE_ANNOTATIONS.pipelineUrl]: 'https://gitlab.example/p/-/pipelines/812',
  [TRACE_ANNOTATIONS.jobUrl]: 'https://gitlab.example/p/-/jobs/5001',
};
const CI_B = {
  ...CI_A,
  [TRACE_ANNOTATIONS.pipelineUrl]: 'https://gitlab.example/p/-/pipelines/813',
  [TRACE_ANNOTATIONS.jobUrl]: 'https://gitlab.example/p/-/jobs/5077',
};
const salt = Buffer.alloc(32, 7);

describe('renderedDigest', () => {
  it('is the same for two renders of one commit in different pipelines and jobs, and whatever the key order', () => {
    const a = renderedDigest(objects(CI_A), secretsOf(objects(CI_A)), salt);
    const b = renderedDigest(objects(CI_B, { reorder: true }), secretsOf(objects(CI_B)), salt);
    const local = renderedDigest(objects({ [TRACE_ANNOTATIONS.commit]: 'c'.repeat(40) }), secretsOf(objects(CI_A)), salt);
    expect(a.digest).toMatch(/^sha256:[0-9a-f]{64}$/);
    expect(b).toEqual(a);
    expect(local).toEqual(a);
  });

  it('changes when a field changes, and names the object that did', () => {
    const a = renderedDigest(objects(CI_A), secretsOf(objects(CI_A)), salt);
    const b = renderedDigest(objects(CI_A, { replicas: 3 }), secretsOf(objects(CI_A)), salt);
    expect(b.digest).not.toBe(a.digest);
    expect(digestChanges(a.objects, b.objects)).toEqual(['Deployment/web changed']);
  });

  it('changes when a secret value changes, though the value never enters the canonical form', () => {
    const other = 'another-secret-value';
    const a = renderedDigest(objects(CI_A), secretsOf(objects(CI_A)), salt);
    const b = renderedDigest(objects(CI_A, { password: other }), secretsOf(objects(CI_A, { password: other }), other), salt);
    expect(b.digest).not.toBe(a.digest);
    expect(digestChanges(a.objects, b.objects).sort()).toEqual(['Deployment/web changed', 'Secret/db changed']);
    const digest = maskDigest(salt);
    for (const o of objects(CI_A)) {
      const text = JSON.stringify(canonicalObject(o, secretsOf(objects(CI_A)), digest));
      expect(text).not.toContain(PASSWORD);
      expect(text).not.toContain(b64(PASSWORD));
    }
  });

  it("reads a Secret's data and stringData alike (the server merges them), and is keyed with the release's salt", () => {
    const [d, s] = objects(CI_A);
    const asData: KubeObject = { ...s!, stringData: undefined, data: { DATABASE_PASSWORD: b64(PASSWORD) } };
    delete asData.stringData;
    const secrets = secretsOf([d!, s!]);
    expect(renderedDigest([d!, asData], secrets, salt)).toEqual(renderedDigest([d!, s!], secrets, salt));
    expect(renderedDigest([d!, s!], secrets, Buffer.alloc(32, 9)).digest).not.toBe(renderedDigest([d!, s!], secrets, salt).digest);
    // No salt yet (a release's first deploy): secret values left out, still the same from render to render.
    expect(renderedDigest([d!, s!], secrets, undefined)).toEqual(renderedDigest([d!, asData], secrets, undefined));
    const other = objects(CI_A, { password: 'another-secret-value' });
    expect(renderedDigest(other, secretsOf(other, 'another-secret-value'), undefined)).toEqual(renderedDigest([d!, s!], secrets, undefined));
  });

  it('names objects added and gone', () => {
    const [d, s] = objects(CI_A);
    const both = renderedDigest([d!, s!], new Map(), salt).objects;
    const one = renderedDigest([d!], new Map(), salt).objects;
    expect(digestChanges(both, one)).toEqual(['Secret/db gone']);
    expect(digestChanges(one, both)).toEqual(['Secret/db added']);
    expect(digestChanges(both, both)).toEqual([]);
  });
});
