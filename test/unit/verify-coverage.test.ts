// deploy.verify reads every image a release runs (issue 22, review): not only the pod templates of
// the kinds skiff has a row for, but a ReplicationController's and a custom resource's that embed a
// pod spec (a chart's Argo Rollout, a Knative Service): their images are pulled and run as well.
import { describe, expect, it } from 'vitest';
import type { KubeObject } from '../../src/kube/objects.js';
import { imagesToVerify } from '../../src/signing/verify-images.js';

describe('the images deploy.verify checks', () => {
  it('a ReplicationController, a custom resource with a pod template, and ephemeral containers are not skipped', () => {
    const objects: KubeObject[] = [
      {
        apiVersion: 'v1',
        kind: 'ReplicationController',
        metadata: { name: 'legacy' },
        spec: { template: { spec: { containers: [{ name: 'c', image: '127.0.0.1:5000/evil/unsigned:1' }] } } },
      },
      {
        apiVersion: 'argoproj.io/v1alpha1',
        kind: 'Rollout',
        metadata: { name: 'canary' },
        spec: {
          template: {
            spec: {
              initContainers: [{ name: 'i', image: 'reg.example.com/init:1' }],
              containers: [{ name: 'c', image: 'reg.example.com/app:1' }],
            },
          },
        },
      },
      {
        apiVersion: 'v1',
        kind: 'Pod',
        metadata: { name: 'p' },
        spec: { containers: [], ephemeralContainers: [{ name: 'dbg', image: 'reg.example.com/dbg:1' }] },
      },
      // Data that merely mentions an image runs nothing.
      { apiVersion: 'v1', kind: 'ConfigMap', metadata: { name: 'cm' }, data: { image: 'not-a-container:1', containers: 'x' } },
    ];
    expect(imagesToVerify(objects, 'ns')).toEqual([
      { image: '127.0.0.1:5000/evil/unsigned:1', workloads: ['ReplicationController/legacy'] },
      { image: 'reg.example.com/init:1', workloads: ['Rollout/canary'] },
      { image: 'reg.example.com/app:1', workloads: ['Rollout/canary'] },
      { image: 'reg.example.com/dbg:1', workloads: ['Pod/p'] },
    ]);
  });
});
