/**
 * A build that the Engine ran and that failed at a step. Kept apart from the
 * Engine client so that code which only needs to recognise the failure does
 * not load the client (and its many modules) on every run.
 */
export class BuildStepFailure extends Error {
  constructor(
    message: string,
    readonly step?: { number: number; text: string },
  ) {
    super(message);
  }
}

/** The Engine turned down BuildKit itself (not a build that failed under it). */
export class BuildKitRefused extends Error {}
