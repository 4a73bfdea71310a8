import { userInfo } from 'node:os';

/**
 * What the CI system says about this run, read once from the environment when
 * the command starts. Nothing else in skiff reads CI variables: the rest of
 * the code asks this object.
 */
export interface CiContext {
  /** Under any CI system (CI set, or GITLAB_CI). */
  active: boolean;
  /** Under GitLab CI: CI_* variables are GitLab's. */
  gitlab: boolean;
  /** Who runs the command: the GitLab user, else the login name. */
  actor: string;
  /** GitLab's image repository of the project, e.g. registry.example.com/group/app. */
  registryImage?: string;
  /** The job's own registry credentials (CI_REGISTRY_USER / CI_REGISTRY_PASSWORD) and the host they are for. */
  registryLogin?: { host?: string; username: string; password: string };
  jobUrl?: string;
  pipelineUrl?: string;
  /** CI checkouts are detached: the branch or tag being built, from CI_COMMIT_*. */
  commitBranch?: string;
  commitTag?: string;
  /** CI_COMMIT_REF_NAME: the branch or tag the pipeline runs for. */
  refName?: string;
  /** CI_PIPELINE_ID: GitLab numbers pipelines in the order they are created, so a smaller id is an older pipeline. */
  pipelineId?: number;
  /** CI_JOB_ID: the job, as a plan file names the job that made it. */
  jobId?: number;
  projectUrl?: string;
  /** The job's environment (CI_ENVIRONMENT_NAME) and GitLab's slug of it (CI_ENVIRONMENT_SLUG). */
  environmentName?: string;
  environmentSlug?: string;
  /** KUBE_CONTEXT: the kubeconfig context to use, e.g. a GitLab agent's `group/project:agent`. */
  kubeContext?: string;
}

const truthy = (v: string | undefined) => Boolean(v && v !== 'false' && v !== '0');

export function readCiContext(env: NodeJS.ProcessEnv): CiContext {
  const gitlab = truthy(env.GITLAB_CI);
  let actor = env.GITLAB_USER_LOGIN || env.USER || '';
  if (!actor) {
    try {
      actor = userInfo().username;
    } catch {
      actor = 'unknown'; // no passwd entry in some containers
    }
  }
  return {
    active: truthy(env.CI) || gitlab,
    gitlab,
    actor,
    registryImage: gitlab ? env.CI_REGISTRY_IMAGE || undefined : undefined,
    registryLogin:
      env.CI_REGISTRY_USER && env.CI_REGISTRY_PASSWORD !== undefined
        ? { host: env.CI_REGISTRY || undefined, username: env.CI_REGISTRY_USER, password: env.CI_REGISTRY_PASSWORD }
        : undefined,
    jobUrl: env.CI_JOB_URL || undefined,
    pipelineUrl: env.CI_PIPELINE_URL || undefined,
    commitBranch: env.CI_COMMIT_BRANCH || (env.CI_COMMIT_TAG ? undefined : env.CI_COMMIT_REF_NAME) || undefined,
    commitTag: env.CI_COMMIT_TAG || undefined,
    refName: env.CI_COMMIT_REF_NAME || undefined,
    pipelineId: /^[1-9]\d{0,14}$/.test(env.CI_PIPELINE_ID ?? '') ? Number(env.CI_PIPELINE_ID) : undefined,
    jobId: /^[1-9]\d{0,14}$/.test(env.CI_JOB_ID ?? '') ? Number(env.CI_JOB_ID) : undefined,
    projectUrl: env.CI_PROJECT_URL || undefined,
    environmentName: env.CI_ENVIRONMENT_NAME || undefined,
    environmentSlug: env.CI_ENVIRONMENT_SLUG || undefined,
    kubeContext: env.KUBE_CONTEXT || undefined,
  };
}
