import { describe, expect, it } from 'vitest';
import { ConfigError } from '../../src/errors.js';
import { apiGroup, describeObject, objectKey } from '../../src/kube/object-key.js';
import { applyPhases, hookOf, phaseIndex, splitHooks } from '../../src/kinds/apply-order.js';
import { podTemplatePath } from '../../src/kinds/table.js';
import type { KubeObject, Manifest } from '../../src/kube/objects.js';

function obj(apiVersion: string, kind: string, name: string, namespace?: string, annotations?: Record<string, string>): KubeObject {
  return { apiVersion, kind, metadata: { name, ...(namespace ? { namespace } : {}), ...(annotations ? { annotations } : {}) } };
}

const m = (o: KubeObject, line = 1): Manifest => ({ object: o, source: { file: '.kube/all.yaml', line } });
const names = (phases: Manifest[][]) =>
  phases.map((p) => p.map(({ object: o }) => `${o.kind}/${o.metadata.name}${o.metadata.namespace ? `@${o.metadata.namespace}` : ''}`));

describe('objectKey', () => {
  it('is group/kind/namespace/name, the version left out', () => {
    expect(apiGroup('v1')).toBe('');
    expect(apiGroup('apps/v1')).toBe('apps');
    expect(apiGroup('rbac.authorization.k8s.io/v1')).toBe('rbac.authorization.k8s.io');
    expect(objectKey(obj('v1', 'ConfigMap', 'cfg', 'shop'))).toBe('/ConfigMap/shop/cfg');
    expect(objectKey(obj('apps/v1', 'Deployment', 'web', 'shop'))).toBe(objectKey(obj('apps/v1beta2', 'Deployment', 'web', 'shop')));
    expect(objectKey(obj('rbac.authorization.k8s.io/v1', 'ClusterRole', 'reader'))).toBe('rbac.authorization.k8s.io/ClusterRole//reader');
    expect(describeObject(obj('apps/v1', 'Deployment', 'web', 'shop'))).toBe('Deployment "web" in namespace "shop"');
    expect(describeObject(obj('v1', 'Namespace', 'shop'))).toBe('Namespace "shop"');
  });
});

describe('applyPhases', () => {
  it('applies in dependency order, custom resources last, empty phases left out', () => {
    const all = [
      obj('example.com/v1', 'Widget', 'w'),
      obj('networking.k8s.io/v1', 'Ingress', 'web', 'shop'),
      obj('apps/v1', 'Deployment', 'web', 'shop'),
      obj('batch/v1', 'CronJob', 'nightly', 'shop'),
      obj('v1', 'Service', 'web', 'shop'),
      obj('v1', 'PersistentVolumeClaim', 'data', 'shop'),
      obj('v1', 'Secret', 'db', 'shop'),
      obj('v1', 'ConfigMap', 'cfg', 'shop'),
      obj('rbac.authorization.k8s.io/v1', 'RoleBinding', 'rb', 'shop'),
      obj('v1', 'ServiceAccount', 'sa', 'shop'),
      obj('apiextensions.k8s.io/v1', 'CustomResourceDefinition', 'widgets.example.com'),
      obj('v1', 'Namespace', 'shop'),
      obj('admissionregistration.k8s.io/v1', 'ValidatingWebhookConfiguration', 'hook'),
      obj('apps/v1', 'StatefulSet', 'db', 'shop'),
      obj('scheduling.k8s.io/v1', 'PriorityClass', 'high'),
    ].map((o) => m(o));
    expect(names(applyPhases(all))).toEqual([
      ['Namespace/shop'],
      ['CustomResourceDefinition/widgets.example.com'],
      ['PriorityClass/high', 'RoleBinding/rb@shop', 'ServiceAccount/sa@shop'],
      ['ConfigMap/cfg@shop', 'Secret/db@shop'],
      ['PersistentVolumeClaim/data@shop'],
      ['Service/web@shop'],
      ['Deployment/web@shop', 'StatefulSet/db@shop'],
      ['CronJob/nightly@shop', 'Ingress/web@shop'],
      ['ValidatingWebhookConfiguration/hook', 'Widget/w'],
    ]);
  });

  it('orders within a phase by kind, name, namespace, then input order, and keeps every object', () => {
    const input = [
      m(obj('v1', 'Secret', 'b', 'x'), 1),
      m(obj('v1', 'ConfigMap', 'b', 'y'), 2),
      m(obj('v1', 'ConfigMap', 'b', 'x'), 3),
      m(obj('v1', 'ConfigMap', 'a', 'z'), 4),
    ];
    const [phase] = applyPhases(input);
    expect(phase!.map((x) => x.source.line)).toEqual([4, 3, 2, 1]);
    expect(applyPhases([])).toEqual([]);
    expect(applyPhases(input.slice().reverse())).toEqual(applyPhases(input));
  });

  it('gives each kind a phase index, unknown kinds the last', () => {
    expect(phaseIndex('Namespace')).toBe(0);
    expect(phaseIndex('Deployment')).toBeLessThan(phaseIndex('HorizontalPodAutoscaler'));
    expect(phaseIndex('Service')).toBeLessThan(phaseIndex('Deployment'));
    expect(phaseIndex('Certificate')).toBeGreaterThan(phaseIndex('NetworkPolicy'));
  });
});

describe('hooks', () => {
  it('reads the skiff.io/hook annotation', () => {
    expect(hookOf(obj('batch/v1', 'Job', 'migrate', 'shop', { 'skiff.io/hook': 'pre-deploy' }))).toBe('pre-deploy');
    expect(hookOf(obj('batch/v1', 'Job', 'smoke', 'shop', { 'skiff.io/hook': 'post-deploy' }))).toBe('post-deploy');
    expect(hookOf(obj('batch/v1', 'Job', 'plain', 'shop'))).toBeUndefined();
  });

  it('names the object with an unknown hook', () => {
    const bad = obj('batch/v1', 'Job', 'migrate', 'shop', { 'skiff.io/hook': 'pre-upgrade' });
    expect(() => hookOf(bad)).toThrow(ConfigError);
    expect(() => hookOf(bad)).toThrowErrorMatchingInlineSnapshot(
      `[ConfigError: Job "migrate" in namespace "shop": annotation skiff.io/hook: "pre-upgrade" is not a hook; use "pre-deploy" or "post-deploy", or remove the annotation]`,
    );
  });

  it('splits a release into pre hooks, the rest, and post hooks', () => {
    const pre = m(obj('batch/v1', 'Job', 'migrate', 'shop', { 'skiff.io/hook': 'pre-deploy' }));
    const post = m(obj('batch/v1', 'Job', 'smoke', 'shop', { 'skiff.io/hook': 'post-deploy' }));
    const web = m(obj('apps/v1', 'Deployment', 'web', 'shop'));
    expect(splitHooks([post, web, pre])).toEqual({ pre: [pre], main: [web], post: [post] });
  });
});

describe('podTemplatePath', () => {
  it('finds the pod template of each workload kind from its row of the kinds table', () => {
    expect(podTemplatePath('Pod')).toEqual([]);
    for (const kind of ['Deployment', 'StatefulSet', 'DaemonSet', 'ReplicaSet', 'Job']) expect(podTemplatePath(kind)).toEqual(['spec', 'template']);
    expect(podTemplatePath('CronJob')).toEqual(['spec', 'jobTemplate', 'spec', 'template']);
    expect(podTemplatePath('ConfigMap')).toBeUndefined();
    expect(podTemplatePath('Widget')).toBeUndefined();
  });
});
