import { describe, expect, it } from 'vitest';
import { parseConfigText } from '../../src/config/load.js';
import { ConfigError, ExitCode } from '../../src/errors.js';
import { contentTag, digestInputs, explainChange, labelsToDigests, digestsToLabels } from '../../src/build/content-inputs.js';
import { fromRawJson } from '../../src/build/buildkitd-client.js';
import { BuildTrace, locateStep } from '../../src/build/buildkit-trace.js';
import { parseDockerfile } from '../../src/build/dockerfile.js';

const yaml = (...lines: string[]) => `${lines.join('\n')}\n`;
function errorOf(text: string): string {
  try {
    parseConfigText(text, 'skiff.yaml');
  } catch (e) {
    expect(e).toBeInstanceOf(ConfigError);
    expect((e as ConfigError).exitCode).toBe(ExitCode.badInput);
    return (e as Error).message;
  }
  throw new Error('expected a ConfigError');
}

describe('skiff.yaml builder:', () => {
  it('takes one address, or a list of addresses and {address, ca, cert, key}', () => {
    expect(parseConfigText(yaml('project: p', 'builder: unix:///run/buildkit/buildkitd.sock', 'images:', '  app: {}'), 'skiff.yaml').builders).toEqual([
      { address: 'unix:///run/buildkit/buildkitd.sock' },
    ]);
    const c = parseConfigText(
      yaml(
        'project: p',
        'builder:',
        '  - tcp://10.0.0.1:1234',
        '  - address: tcp://127.0.0.1:1235',
        '    ca: certs/ca.pem',
        '    cert: certs/cert.pem',
        '    key: certs/key.pem',
        'images:',
        '  app: {}',
      ),
      'skiff.yaml',
    );
    expect(c.builders).toEqual([
      { address: 'tcp://10.0.0.1:1234' },
      { address: 'tcp://127.0.0.1:1235', tls: { ca: 'certs/ca.pem', cert: 'certs/cert.pem', key: 'certs/key.pem' } },
    ]);
    expect(parseConfigText(yaml('project: p', 'images:', '  app: {}'), 'skiff.yaml').builders).toEqual([]);
  });

  it('names the line of a bad address, an unknown key, a cert without its key', () => {
    expect(errorOf(yaml('project: p', 'builder: http://127.0.0.1:1234', 'images:', '  app: {}'))).toMatch(
      /^skiff\.yaml:2:\d+: builder\.address "http:\/\/127\.0\.0\.1:1234" is not valid: use tcp:\/\/host:port/,
    );
    expect(errorOf(yaml('project: p', 'builder:', '  - address: tcp://a:1', '    tls: x', 'images:', '  app: {}'))).toMatch(
      /^skiff\.yaml:4:5: unknown key "tls" in builder\[0\]/,
    );
    expect(errorOf(yaml('project: p', 'builder:', '  - address: tcp://a:1', '    cert: c.pem', 'images:', '  app: {}'))).toMatch(
      /^skiff\.yaml:3:\d+: builder\[0\] needs both cert and key/,
    );
    expect(errorOf(yaml('project: p', 'builder: []', 'images:', '  app: {}'))).toMatch(/^skiff\.yaml:2:\d+: builder is an empty list/);
  });
});

describe('skiff.yaml images.<name>.secrets', () => {
  it('takes {id, env} and {id, file}', () => {
    const c = parseConfigText(
      yaml('project: p', 'images:', '  app:', '    secrets:', '      - id: npm', '        env: NPM_TOKEN', '      - {id: netrc, file: /run/netrc}'),
      'skiff.yaml',
    );
    expect(c.images.app!.secrets).toEqual([
      { id: 'npm', env: 'NPM_TOKEN' },
      { id: 'netrc', file: '/run/netrc' },
    ]);
  });

  it('rejects an unknown key, a missing source, two sources and a repeated id, at their lines', () => {
    expect(errorOf(yaml('project: p', 'images:', '  app:', '    secrets:', '      - id: npm', '        env: NPM_TOKEN', '        value: hunter2'))).toMatch(
      /^skiff\.yaml:7:9: unknown key "value" in images\.app\.secrets\[0\]/,
    );
    expect(errorOf(yaml('project: p', 'images:', '  app:', '    secrets:', '      - id: npm'))).toMatch(
      /^skiff\.yaml:5:\d+: images\.app\.secrets\[0\] needs a source: env \(an environment variable\) or file \(a path\)/,
    );
    expect(errorOf(yaml('project: p', 'images:', '  app:', '    secrets:', '      - {id: a, env: A, file: f}'))).toMatch(
      /^skiff\.yaml:5:\d+: images\.app\.secrets\[0\] has both env and file/,
    );
    expect(errorOf(yaml('project: p', 'images:', '  app:', '    secrets:', '      - {id: a, env: A}', '      - {id: a, env: B}'))).toMatch(
      /^skiff\.yaml:6:\d+: images\.app\.secrets\[1\]\.id "a" is already a secret/,
    );
    expect(errorOf(yaml('project: p', 'images:', '  app:', '    secrets:', '      - {env: A}'))).toMatch(
      /^skiff\.yaml:5:\d+: images\.app\.secrets\[0\]\.id is required/,
    );
  });
});

describe("skiff.yaml images.<name>.secrets: skiff's own credentials", () => {
  it.each(['SKIFF_SECRET_KEY', 'SKIFF_OLD_SECRET_KEY', 'WERF_SECRET_KEY', 'WERF_OLD_SECRET_KEY', 'SKIFF_REGISTRY_PASSWORD'])(
    "refuses %s as a build secret's env (exit 2, at its line)",
    (name) => {
      expect(errorOf(yaml('project: p', 'images:', '  app:', '    secrets:', '      - id: k', `        env: ${name}`))).toMatch(
        new RegExp(`^skiff\\.yaml:6:\\d+: images\\.app\\.secrets\\[0\\]\\.env is ${name}, one of skiff's own credentials`),
      );
    },
  );

  it("still takes the job's own tokens (CI_JOB_TOKEN, CI_REGISTRY_PASSWORD)", () => {
    const c = parseConfigText(
      yaml('project: p', 'images:', '  app:', '    secrets:', '      - {id: a, env: CI_JOB_TOKEN}', '      - {id: b, env: CI_REGISTRY_PASSWORD}'),
      'skiff.yaml',
    );
    expect(c.images.app!.secrets).toEqual([
      { id: 'a', env: 'CI_JOB_TOKEN' },
      { id: 'b', env: 'CI_REGISTRY_PASSWORD' },
    ]);
  });
});

describe('build secrets in the content tag', () => {
  const inputs = { dockerfile: { path: 'Dockerfile', oid: 'a'.repeat(40) }, entries: [], args: {}, dependencyTags: {} };
  it('leaves images without secrets tagged as before, and tags by secret ids only', () => {
    const plain = digestInputs(inputs);
    expect(plain).not.toHaveProperty('secrets');
    expect(contentTag(digestInputs({ ...inputs, secretIds: [] }))).toBe(contentTag(plain));
    const withSecret = digestInputs({ ...inputs, secretIds: ['npm'] });
    expect(contentTag(withSecret)).not.toBe(contentTag(plain));
    expect(contentTag(digestInputs({ ...inputs, secretIds: ['npm', 'npm'] }))).toBe(contentTag(withSecret));
    expect(labelsToDigests(digestsToLabels(withSecret))).toEqual(withSecret);
    expect(explainChange(plain, withSecret)).toEqual(['build secret ids changed (none → npm)']);
  });
});

describe('buildctl --progress rawjson', () => {
  it('feeds the same trace as the Engine: steps, cache hits, the failing step with its output and Dockerfile line', () => {
    const dockerfile = 'FROM base AS deps\nRUN make deps\nFROM deps\nCOPY . /src\nRUN make\n';
    const trace = new BuildTrace((step) => locateStep(parseDockerfile(dockerfile), step));
    const t = '2026-11-27T18:56:01.000000000Z';
    const events = [
      { vertexes: [{ digest: 'sha256:1', name: '[deps 1/2] FROM base', started: t, completed: t, cached: true }] },
      { vertexes: [{ digest: 'sha256:2', name: '[deps 2/2] RUN make deps', started: t, completed: t, cached: true }] },
      { vertexes: [{ digest: 'sha256:3', name: '[stage-1 2/3] COPY . /src', started: t, completed: t }] },
      { vertexes: [{ digest: 'sha256:4', name: '[stage-1 3/3] RUN make', started: t }] },
      { logs: [{ vertex: 'sha256:4', stream: 2, data: Buffer.from('cc: error\n').toString('base64'), timestamp: t }] },
      {
        vertexes: [
          {
            digest: 'sha256:4',
            name: '[stage-1 3/3] RUN make',
            started: t,
            completed: t,
            error: 'process "/bin/sh -c make" did not complete successfully: exit code: 2',
          },
        ],
      },
    ].flatMap((raw) => trace.update(fromRawJson(raw)));
    expect(events.filter((e) => e.type === 'step').map((e) => (e.type === 'step' ? `${e.step.name.text}:${e.state}` : ''))).toEqual([
      'FROM base:cached',
      'RUN make deps:cached',
      'COPY . /src:running',
      'RUN make:running',
    ]);
    expect(trace.counts).toEqual({ steps: 4, cachedSteps: 2 });
    expect(trace.failure).toMatchObject({ step: { location: { line: 5 } }, output: ['cc: error'] });
  });
});
