import type { RunContext } from '../context.js';
import { loadProject, type ProjectOptions } from '../project.js';
import { testProject, type TestRunResult, type TestStageOptions } from '../stages/run-tests.js';

export interface TestOptions extends ProjectOptions, TestStageOptions {}

export type { TestRunResult };

/** skiff test: the tests of skiff.yaml in the commit's images. Failed tests are in the result; `testsFailed` makes the error. */
export async function runTest(ctx: RunContext, opts: TestOptions): Promise<TestRunResult> {
  return testProject(ctx, await loadProject(ctx, opts), opts);
}
