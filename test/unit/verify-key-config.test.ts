// deploy.verify in skiff.yaml (issue 22, review): a key path that names no file is a problem at its
// line, never a verification silently switched off.
import { describe, expect, it } from 'vitest';
import { parseConfigText } from '../../src/config/load.js';
import { ConfigError } from '../../src/errors.js';

describe('deploy.verify.key that names no file', () => {
  it('"." or "" is exit 2 at its line, never a silently switched-off verification', () => {
    for (const key of ['.', '""', 'a/..']) {
      const text = `project: p\nimages:\n  app: {}\ndeploy:\n  verify:\n    key: ${key}\nenvironments:\n  staging:\n    namespace: s\n`;
      let error: unknown;
      try {
        parseConfigText(text, 'skiff.yaml');
      } catch (e) {
        error = e;
      }
      expect(error, key).toBeInstanceOf(ConfigError);
      expect((error as ConfigError).message).toMatch(/^skiff\.yaml:6:\d+: deploy\.verify\.key /);
    }
  });
});
