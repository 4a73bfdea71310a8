import { posix } from 'node:path';
import { WorkFailedError } from '../../errors.js';
import type { BuildStepFailure } from '../build-failure.js';
import { cleanBuildError, parseErrorLine } from '../buildkit-trace.js';
import { lineOfStep, type DockerfileInstruction } from '../dockerfile.js';
import type { ImagePlan } from '../image-plan.js';

/** What a failed build leaves for the log after its (folded) section: the failing step's output. */
export interface BuildFailureDetail {
  image: string;
  dockerfile: string;
  line?: number;
  step?: { number: number; text: string };
  output?: string[];
}

/** The Dockerfile as the messages name it: relative to the project root. */
export function dockerfilePath(plan: ImagePlan): string {
  return posix.join(plan.config.context || '.', plan.dockerfile);
}

/**
 * The error of a build that failed at a step, from the builder's own message: the file and line
 * of the step (or of the parse error), in the project's Dockerfile. `projectLine` maps a line of
 * the Dockerfile the builder got to the project's (the classic builder's has skiff's LABEL step).
 */
export function stepFailure(
  plan: ImagePlan,
  e: BuildStepFailure,
  instructions: DockerfileInstruction[],
  projectLine: (line: number) => number | undefined = (line) => line,
): WorkFailedError {
  const dockerfile = dockerfilePath(plan);
  const message = cleanBuildError(e.message);
  const parseLine = parseErrorLine(message);
  const line = e.step ? lineOfStep(instructions, e.step.number, e.step.text) : parseLine !== undefined ? projectLine(parseLine) : undefined;
  const shown = parseLine !== undefined && line !== undefined ? message.replace(/(parse error (?:on )?line )\d+/i, `$1${line}`) : message;
  const at = e.step ? `${dockerfile}${line ? `:${line}` : ''}: step ${e.step.number} "${e.step.text}" failed: ` : `${dockerfile}${line ? `:${line}` : ''}: `;
  return new WorkFailedError('build', `image ${plan.name}: ${at}${shown}`, {
    detail: { image: plan.name, dockerfile, line, step: e.step } satisfies BuildFailureDetail,
  });
}
