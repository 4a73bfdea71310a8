import { describe, expect, it } from 'vitest';
import { NS, checks, deployment, m } from './fixtures.js';

describe('pdb-blocks-eviction', () => {
  it('warns of one replica and a PodDisruptionBudget allowing no disruption', () => {
    const pdb = (spec: Record<string, unknown>) =>
      m({
        apiVersion: 'policy/v1',
        kind: 'PodDisruptionBudget',
        metadata: { name: 'web', namespace: NS },
        spec: { selector: { matchLabels: { app: 'web' } }, ...spec },
      });
    expect(checks([deployment('web', { replicas: 2 }), pdb({ minAvailable: 1 })])).toEqual([]);
    expect(checks([deployment('web', { replicas: 1 }), pdb({ maxUnavailable: 1 })])).toEqual([]);
    expect(checks([deployment('web', { replicas: 1 }), pdb({ minAvailable: 1 })])).toEqual(['pdb-blocks-eviction Deployment/web spec.replicas']);
    expect(checks([deployment('web', { replicas: 1 }), pdb({ maxUnavailable: 0 })])).toEqual(['pdb-blocks-eviction Deployment/web spec.replicas']);
  });
});
