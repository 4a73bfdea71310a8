import { TRACE_ANNOTATIONS } from '../kube/objects.js';
import type { CiContext } from './ci-variables.js';

/** Where every deployed object came from: the commit, and in CI the pipeline and job (werf's ci.werf.io annotations). */
export function traceAnnotations(commit: string, ci: Pick<CiContext, 'pipelineUrl' | 'jobUrl'>): Record<string, string> {
  const out: Record<string, string> = { [TRACE_ANNOTATIONS.commit]: commit };
  if (ci.pipelineUrl) out[TRACE_ANNOTATIONS.pipelineUrl] = ci.pipelineUrl;
  if (ci.jobUrl) out[TRACE_ANNOTATIONS.jobUrl] = ci.jobUrl;
  return out;
}
