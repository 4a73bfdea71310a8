// The error an action fails with, for tests that assert what the user would be
// told: its class (hence exit code) and its message.
import { expect } from 'vitest';
import { ConfigError, ExitCode } from '../../src/errors.js';

/** The error `p` rejects with, checked to be a `type`; a `p` that resolves fails the test. */
export async function failure<E extends Error>(p: Promise<unknown>, type: abstract new (...args: never[]) => E): Promise<E> {
  const e = await p.then(
    () => undefined,
    (err: unknown) => err,
  );
  expect(e).toBeInstanceOf(type);
  return e as E;
}

/** The message of the ConfigError `p` rejects with: exit 2 and one line, as every refusal of bad input is. */
export async function configFailure(p: Promise<unknown>): Promise<string> {
  const e = await failure(p, ConfigError);
  expect(e.exitCode).toBe(ExitCode.badInput);
  expect(e.message).not.toContain('\n');
  return e.message;
}
