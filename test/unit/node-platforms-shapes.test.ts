// deploy's and plan's node-platform check on templates of the wrong shape (issue 22, review): plan
// runs it before any server-side dry run has refused them, so a list that is a mapping (or a
// mapping that is a string) is read as absent, never a crash reported as a bug in skiff.
import { describe, expect, it } from 'vitest';
import { canSchedule, imagePlacements, type NodeFacts } from '../../src/kinds/node-platforms.js';
import type { Manifest } from '../../src/kube/objects.js';

const arm: NodeFacts = { name: 'arm-1', labels: { 'kubernetes.io/arch': 'arm64', 'kubernetes.io/os': 'linux' }, taints: [], platform: 'linux/arm64' };

const pod = (spec: Record<string, unknown>): Manifest => ({
  object: { apiVersion: 'v1', kind: 'Pod', metadata: { name: 'p' }, spec },
  source: { file: '.kube/p.yaml', line: 1 },
});

describe('templates of the wrong shape', () => {
  it('lists that are mappings or strings are read as absent', () => {
    const shapes: Array<Record<string, unknown>> = [
      { affinity: { nodeAffinity: { requiredDuringSchedulingIgnoredDuringExecution: { nodeSelectorTerms: { matchExpressions: [] } } } } },
      { affinity: { nodeAffinity: { requiredDuringSchedulingIgnoredDuringExecution: { nodeSelectorTerms: [{ matchExpressions: { key: 'a' } }] } } } },
      {
        affinity: {
          nodeAffinity: {
            requiredDuringSchedulingIgnoredDuringExecution: {
              nodeSelectorTerms: [{ matchExpressions: [{ key: 'kubernetes.io/arch', operator: 'In', values: 'arm64' }] }],
            },
          },
        },
      },
      { tolerations: { key: 'x' } },
    ];
    for (const spec of shapes) expect(() => canSchedule(spec, arm), JSON.stringify(spec)).not.toThrow();
    expect(() => imagePlacements([pod({ containers: { name: 'c', image: 'x:1' }, initContainers: 'x' })], [arm])).not.toThrow();
  });
});
