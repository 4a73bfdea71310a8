import { WorkFailedError } from '../../errors.js';
import type { Reporter } from '../../context.js';
import { BuildStepFailure } from '../build-failure.js';
import { BuildTrace, cleanBuildError, locateStep, parseErrorLine, type TracedStep } from '../buildkit-trace.js';
import type { StatusResponse } from '../buildkit-status.js';
import { parseDockerfile } from '../dockerfile.js';
import type { ImagePlan } from '../image-plan.js';
import { dockerfilePath, stepFailure, type BuildFailureDetail } from './step-failure.js';

/** A step as its status line reads: "[stage ]step 2/5 RUN make" (long or multi-line text cut). */
function stepState(step: TracedStep): string {
  const first = step.name.text.split('\n')[0]!;
  const text = first.length > 100 || first !== step.name.text ? `${first.slice(0, 99)}…` : first;
  return `${step.name.stage ? `${step.name.stage} ` : ''}step ${step.name.index}/${step.name.total} ${text}`;
}

/**
 * One BuildKit build's progress (the Engine's BuildKit or a buildkitd): each step's state as a
 * status line, vertex output to the debug log, steps and cache hits counted, and a failure told
 * by the step that failed, with what it printed.
 */
export class BuildKitProgress {
  private readonly instructions;
  private readonly trace;

  constructor(
    private readonly plan: ImagePlan,
    private readonly reporter: Reporter,
  ) {
    this.instructions = parseDockerfile(plan.dockerfileText);
    this.trace = new BuildTrace((step) => locateStep(this.instructions, step));
  }

  readonly onTrace = (status: StatusResponse): void => {
    const { plan, reporter } = this;
    for (const ev of this.trace.update(status)) {
      if (ev.type === 'step') reporter.status(plan.name, stepState(ev.step), ev.state === 'cached' ? 'cached' : undefined);
      else if (ev.type === 'internal') reporter.debug(`[${plan.name}] ${ev.name}`);
      else reporter.debug(`[${plan.name}] ${ev.line}`);
    }
  };

  /** After the build: the output lines still held back, and the step counts. */
  finish(): { steps: number; cachedSteps: number } {
    for (const ev of this.trace.finish()) if (ev.type === 'output') this.reporter.debug(`[${this.plan.name}] ${ev.line}`);
    return this.trace.counts;
  }

  /** The error to throw for what a build threw: a failed step told with its place and output; anything else as it is. */
  failure(e: unknown): unknown {
    if (!(e instanceof BuildStepFailure)) return e;
    const { plan } = this;
    const failed = this.trace.failure;
    // A Dockerfile that does not parse fails BuildKit's "load build definition", not a step: its line is in the message.
    if (!failed || (!failed.step && parseErrorLine(failed.error) !== undefined)) return stepFailure(plan, e, this.instructions);
    const dockerfile = dockerfilePath(plan);
    const location = failed.step?.location;
    const text = location?.text ?? failed.step?.name.text ?? failed.vertex;
    const step = location ? { number: location.number, text } : undefined;
    const at = location
      ? `${dockerfile}:${location.line}: step ${location.number} "${text}" failed: `
      : `${dockerfile}: ${failed.step ? `step "${text}"` : `"${failed.vertex}"`} failed: `;
    return new WorkFailedError('build', `image ${plan.name}: ${at}${cleanBuildError(failed.error)}`, {
      detail: { image: plan.name, dockerfile, line: location?.line, step, output: failed.output } satisfies BuildFailureDetail,
    });
  }
}
