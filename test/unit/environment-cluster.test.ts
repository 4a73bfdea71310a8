// Environments on different clusters: skiff.yaml's kubeContext and kubeconfig
// per environment, and how flags and CI variables override them.
import { describe, expect, it } from 'vitest';
import { parseConfigText } from '../../src/config/load.js';
import { clusterLabel, environmentCluster } from '../../src/stages/release-inputs.js';

const config = parseConfigText(
  `project: shop
images:
  app: {}
environments:
  staging:
    kubeContext: skiff
  production:
    kubeContext: prod-eu
    kubeconfig: ../clusters/prod.kubeconfig
  canary:
    kubeconfig: ~/.kube/canary
`,
  'skiff.yaml',
);
const project = { root: '/work/shop' };

describe('environments.<env>.kubeconfig', () => {
  it('is read as written', () => {
    expect(config.environments.production).toMatchObject({ kubeContext: 'prod-eu', kubeconfig: '../clusters/prod.kubeconfig' });
    expect(config.environments.staging!.kubeconfig).toBeUndefined();
  });

  it('must be a string', () => {
    expect(() => parseConfigText('project: shop\nimages:\n  app: {}\nenvironments:\n  prod:\n    kubeconfig: [a, b]\n', 'skiff.yaml')).toThrow(
      /^skiff\.yaml:6:5: .*environments\.prod\.kubeconfig/,
    );
  });

  it('resolves against the repository root or the home directory; --kubeconfig and --kube-context win', () => {
    const env = config.environments;
    expect(environmentCluster(project, env.staging!)).toEqual({ kubeContext: 'skiff', kubeconfig: undefined });
    expect(environmentCluster(project, env.production!)).toEqual({ kubeContext: 'prod-eu', kubeconfig: '/work/clusters/prod.kubeconfig' });
    expect(environmentCluster(project, env.canary!, {}, {}, '/home/ci')).toEqual({ kubeContext: undefined, kubeconfig: '/home/ci/.kube/canary' });
    expect(environmentCluster(project, env.production!, { kubeconfig: '/tmp/k', kubeContext: 'other' })).toEqual({
      kubeContext: 'other',
      kubeconfig: '/tmp/k',
    });
    // GitLab's KUBE_CONTEXT names the context; the environment's file stays.
    expect(environmentCluster(project, env.production!, {}, { kubeContext: 'agent:prod' })).toEqual({
      kubeContext: 'agent:prod',
      kubeconfig: '/work/clusters/prod.kubeconfig',
    });
  });

  it('names the cluster in messages', () => {
    expect(clusterLabel({ kubeContext: 'prod-eu', kubeconfig: '/work/clusters/prod.kubeconfig' })).toBe(
      'kube context prod-eu (kubeconfig /work/clusters/prod.kubeconfig)',
    );
    expect(clusterLabel({})).toBe('kube context (current context)');
  });
});
