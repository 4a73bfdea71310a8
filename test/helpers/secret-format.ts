// Why a pure reader of secrets (skiff's format, werf's) refuses a ciphertext or a key.
import { SecretFormatError } from '../../src/secrets/crypto.js';

/** The SecretFormatError `fn` throws, as its problem and message; another error is rethrown, and no error fails the test. */
export function formatProblem(fn: () => unknown): { problem: string; message: string } {
  try {
    fn();
  } catch (e) {
    if (e instanceof SecretFormatError) return { problem: e.problem, message: e.message };
    throw e;
  }
  throw new Error('no error');
}
