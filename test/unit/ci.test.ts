import { describe, expect, it } from 'vitest';
import { readCiContext } from '../../src/gitlab/ci-variables.js';

describe('readCiContext: every CI variable, read once', () => {
  it('reads a GitLab job', () => {
    const ci = readCiContext({
      CI: 'true',
      GITLAB_CI: 'true',
      GITLAB_USER_LOGIN: 'alice',
      CI_REGISTRY: 'registry.example.com',
      CI_REGISTRY_IMAGE: 'registry.example.com/group/app',
      CI_REGISTRY_USER: 'gitlab-ci-token',
      CI_REGISTRY_PASSWORD: 'job-token',
      CI_JOB_URL: 'https://gitlab.example.com/group/app/-/jobs/7',
      CI_PIPELINE_URL: 'https://gitlab.example.com/group/app/-/pipelines/3',
      CI_COMMIT_REF_NAME: 'feature/x',
      CI_ENVIRONMENT_NAME: 'review/feature-x',
      CI_ENVIRONMENT_SLUG: 'review-feature-x-1a2b3c',
      KUBE_CONTEXT: 'group/agent-project:review-agent',
    });
    expect(ci).toMatchObject({
      active: true,
      gitlab: true,
      actor: 'alice',
      registryImage: 'registry.example.com/group/app',
      registryLogin: { host: 'registry.example.com', username: 'gitlab-ci-token', password: 'job-token' },
      jobUrl: 'https://gitlab.example.com/group/app/-/jobs/7',
      pipelineUrl: 'https://gitlab.example.com/group/app/-/pipelines/3',
      commitBranch: 'feature/x',
      environmentName: 'review/feature-x',
      environmentSlug: 'review-feature-x-1a2b3c',
      kubeContext: 'group/agent-project:review-agent',
    });
  });

  it('is not CI on a laptop, nor with CI=false; the registry image is GitLab only', () => {
    expect(readCiContext({ USER: 'bob' })).toMatchObject({ active: false, gitlab: false, actor: 'bob', registryImage: undefined });
    expect(readCiContext({ CI: 'false', CI_REGISTRY_IMAGE: 'r/x' })).toMatchObject({ active: false, registryImage: undefined });
    expect(readCiContext({ CI: 'true', CI_COMMIT_TAG: 'v1', CI_COMMIT_REF_NAME: 'v1' })).toMatchObject({
      active: true,
      commitTag: 'v1',
      commitBranch: undefined,
    });
  });
});
