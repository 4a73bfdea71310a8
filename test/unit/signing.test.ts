// Signing and verification with cosign, the pure parts (issue 22 item 4): where
// the key comes from, cosign's command lines, its errors in one line, the
// images of a release, and deploy.verify in skiff.yaml.
import { describe, expect, it } from 'vitest';
import { cosignErrorLine, signArgs, unsignedVerdict, verifyArgs } from '../../src/adapters/cosign.js';
import { childEnv } from '../../src/adapters/child-env.js';
import { parseConfigText } from '../../src/config/load.js';
import { OWN_SECRET_VARIABLES } from '../../src/config/validate-images.js';
import { ConfigError } from '../../src/errors.js';
import type { KubeObject } from '../../src/kube/objects.js';
import { signatureTag } from '../../src/signing/sign-images.js';
import { signingKeyProblem, signingKeySource } from '../../src/signing/signing-key.js';
import { imagesToVerify, qualifiedRepository } from '../../src/signing/verify-images.js';

const PEM = '-----BEGIN ENCRYPTED SIGSTORE PRIVATE KEY-----\neyJrZGYiOnsibmFtZSI6InNjcnlwdCJ9fQ==\n-----END ENCRYPTED SIGSTORE PRIVATE KEY-----';

const thrown = (fn: () => unknown): ConfigError => {
  try {
    fn();
  } catch (e) {
    expect(e).toBeInstanceOf(ConfigError);
    return e as ConfigError;
  }
  throw new Error('expected a ConfigError');
};

describe('signingKeySource: SKIFF_COSIGN_KEY is a path or the PEM text', () => {
  it('a path, relative to the working folder', () => {
    expect(signingKeySource('keys/cosign.key', '/work/p')).toEqual({ kind: 'file', path: '/work/p/keys/cosign.key' });
    expect(signingKeySource('/etc/cosign.key', '/work/p')).toEqual({ kind: 'file', path: '/etc/cosign.key' });
  });

  it('PEM text, with a final newline added', () => {
    expect(signingKeySource(PEM, '/work/p')).toEqual({ kind: 'pem', text: `${PEM}\n` });
    expect(signingKeySource(`${PEM}\n`, '/')).toEqual({ kind: 'pem', text: `${PEM}\n` });
  });

  it('unset or blank: exit 2 naming the variable', () => {
    for (const v of [undefined, '', '  '])
      expect(thrown(() => signingKeySource(v, '/')).message).toMatch(/^--sign needs the private key: set SKIFF_COSIGN_KEY/);
  });

  it('several lines without a BEGIN line: refused without echoing the value', () => {
    const value = 'eyJrZGYiOnsibmFtZSI6InNjcnlwdCJ9fQ==\nc2VjcmV0LWtleS1ib2R5';
    const message = thrown(() => signingKeySource(value, '/')).message;
    expect(message).toMatch(/SKIFF_COSIGN_KEY is neither a file path nor PEM text/);
    for (const line of value.split('\n')) expect(message).not.toContain(line);
  });
});

describe("signingKeyProblem: cosign public-key's failure, as the variable to fix", () => {
  it('a wrong password names COSIGN_PASSWORD', () => {
    const stderr = 'Error: decrypt: encrypted: decryption failed\nerror during command execution: decrypt: encrypted: decryption failed\n';
    expect(signingKeyProblem(stderr)).toMatch(/^COSIGN_PASSWORD does not open the private key in SKIFF_COSIGN_KEY/);
  });

  it('a public key or another file names SKIFF_COSIGN_KEY', () => {
    expect(signingKeyProblem('Error: unsupported pem type: PUBLIC KEY\n')).toBe(
      'SKIFF_COSIGN_KEY is not a cosign private key (unsupported pem type: PUBLIC KEY): give cosign.key (ENCRYPTED SIGSTORE PRIVATE KEY), not cosign.pub',
    );
    expect(signingKeyProblem('Error: invalid pem block\n')).toMatch(/^SKIFF_COSIGN_KEY is not a cosign private key \(invalid pem block\)/);
  });
});

describe("cosign's command lines: offline, by digest, argv arrays", () => {
  const ref = { host: '127.0.0.1:5000', name: '127.0.0.1:5000/p/app@sha256:' + 'a'.repeat(64) };
  it('sign: the key file, no transparency-log upload, no prompt; plain HTTP only where skiff speaks it', () => {
    expect(signArgs(ref, '/tmp/k/cosign.key', {})).toEqual([
      'sign',
      '--key',
      '/tmp/k/cosign.key',
      '--tlog-upload=false',
      '--yes',
      '--allow-http-registry=true',
      '--',
      ref.name,
    ]);
    const remote = { host: 'registry.example.com', name: 'registry.example.com/p/app@sha256:' + 'b'.repeat(64) };
    expect(signArgs(remote, '/k', {})).not.toContain('--allow-http-registry=true');
    expect(signArgs(remote, '/k', { SKIFF_INSECURE_REGISTRIES: 'registry.example.com' })).toContain('--allow-http-registry=true');
  });

  it('verify: the public key, the empty trusted root (no TUF fetch), no tlog or SCT required', () => {
    const args = verifyArgs(ref, '/tmp/k/verify.pub', '/tmp/k/trusted_root.json', {});
    expect(args).toEqual([
      'verify',
      '--key',
      '/tmp/k/verify.pub',
      '--trusted-root',
      '/tmp/k/trusted_root.json',
      '--insecure-ignore-tlog=true',
      '--insecure-ignore-sct=true',
      '--offline=true',
      '--allow-http-registry=true',
      '--',
      ref.name,
    ]);
    // Never a public Sigstore service on the command line.
    expect(args.join(' ')).not.toMatch(/rekor|fulcio|sigstore\.dev/);
  });

  it('a reference that looks like a flag comes after "--", so cosign never reads it as one', () => {
    for (const args of [signArgs({ host: 'x', name: '--key=evil' }, '/k', {}), verifyArgs({ host: 'x', name: '--key=evil' }, '/k', '/t', {})])
      expect(args.slice(-2)).toEqual(['--', '--key=evil']);
  });
});

describe("cosignErrorLine: cosign's error in one short line", () => {
  it('the Error: line, without the tlog warning or the repeat', () => {
    const stderr = [
      'WARNING: Skipping tlog verification is an insecure practice that lacks transparency and auditability verification for the signature.',
      'Error: no matching signatures: invalid signature when validating ASN.1 encoded signature',
      'error during command execution: no matching signatures: invalid signature when validating ASN.1 encoded signature',
      '',
    ].join('\n');
    expect(cosignErrorLine(stderr)).toBe('no matching signatures: invalid signature when validating ASN.1 encoded signature');
  });

  it('without an Error: line, the last line; cut at the limit', () => {
    expect(cosignErrorLine('something\nerror during command execution: GET http://x: connection refused\n')).toBe('GET http://x: connection refused');
    const long = cosignErrorLine(`Error: ${'x'.repeat(500)}`, 50);
    expect(long).toHaveLength(50);
    expect(long.endsWith('…')).toBe(true);
  });

  it('the verdicts: unsigned (exit 10) and another key (exit 12); anything else is not one', () => {
    expect(unsignedVerdict(10, 'Error: no signatures found')).toBe('unsigned');
    expect(unsignedVerdict(12, 'Error: no matching signatures: invalid signature')).toBe('other-key');
    expect(unsignedVerdict(1, 'Error: GET http://127.0.0.1:5000/v2/: connection refused')).toBeUndefined();
  });
});

describe('the images of a release', () => {
  const deployment = (name: string, containers: string[], init: string[] = []): KubeObject => ({
    apiVersion: 'apps/v1',
    kind: 'Deployment',
    metadata: { name },
    spec: {
      template: {
        metadata: { labels: { app: name } },
        spec: { initContainers: init.map((image, i) => ({ name: `i${i}`, image })), containers: containers.map((image, i) => ({ name: `c${i}`, image })) },
      },
    },
  });
  const cronJob: KubeObject = {
    apiVersion: 'batch/v1',
    kind: 'CronJob',
    metadata: { name: 'nightly' },
    spec: { jobTemplate: { spec: { template: { spec: { containers: [{ name: 'c', image: 'reg.example.com/tools/backup:2' }] } } } } },
  };

  it('every container and init container image, each once, with the workloads that run it', () => {
    const objects = [
      deployment('web', ['127.0.0.1:5000/p/app:abc', 'nginx:1.27'], ['127.0.0.1:5000/p/migrate@sha256:' + 'c'.repeat(64)]),
      deployment('worker', ['127.0.0.1:5000/p/app:abc']),
      cronJob,
      { apiVersion: 'v1', kind: 'ConfigMap', metadata: { name: 'cm' }, data: { image: 'not-a-container:1' } },
    ];
    expect(imagesToVerify(objects, 'ns')).toEqual([
      { image: `127.0.0.1:5000/p/migrate@sha256:${'c'.repeat(64)}`, workloads: ['Deployment/web'] },
      { image: '127.0.0.1:5000/p/app:abc', workloads: ['Deployment/web', 'Deployment/worker'] },
      { image: 'nginx:1.27', workloads: ['Deployment/web'] },
      { image: 'reg.example.com/tools/backup:2', workloads: ['CronJob/nightly'] },
    ]);
  });

  it('where each is verified: Docker Hub official images under library/, no tag meaning latest, a digest kept', () => {
    expect(qualifiedRepository('nginx')).toEqual({
      host: 'docker.io',
      path: 'library/nginx',
      repository: 'docker.io/library/nginx',
      tag: 'latest',
      digest: undefined,
    });
    expect(qualifiedRepository('127.0.0.1:5000/p/app:abc@sha256:' + 'd'.repeat(64))).toMatchObject({
      repository: '127.0.0.1:5000/p/app',
      digest: 'sha256:' + 'd'.repeat(64),
    });
    expect(signatureTag('127.0.0.1:5000/p/app', 'sha256:' + 'e'.repeat(64))).toBe(`127.0.0.1:5000/p/app:sha256-${'e'.repeat(64)}.sig`);
  });
});

describe('deploy.verify in skiff.yaml', () => {
  const config = (verify: string) => `project: p\nimages:\n  app: {}\ndeploy:\n  verify:\n${verify}\nenvironments:\n  staging:\n    namespace: s\n`;
  const errorOf = (text: string) => thrown(() => parseConfigText(text, 'skiff.yaml')).message;

  it('a key path inside the repository, normalised', () => {
    expect(parseConfigText(config('    key: ./keys/cosign.pub'), 'skiff.yaml').deploy.verify).toEqual({ key: 'keys/cosign.pub' });
    expect(parseConfigText('project: p\nimages:\n  app: {}\nenvironments:\n  staging:\n    namespace: s\n', 'skiff.yaml').deploy.verify).toBeUndefined();
  });

  it('outside the repository, absolute, missing or an unknown key: exit 2 at its line', () => {
    expect(errorOf(config('    key: ../cosign.pub'))).toMatch(/^skiff\.yaml:6:\d+: deploy\.verify\.key "\.\.\/cosign\.pub" points outside the repository/);
    expect(errorOf(config('    key: keys/../../cosign.pub'))).toMatch(/^skiff\.yaml:6:\d+: .*points outside the repository/);
    expect(errorOf(config('    key: /etc/cosign.pub'))).toMatch(/^skiff\.yaml:6:\d+: deploy\.verify\.key must be a relative path inside the repository/);
    expect(errorOf('project: p\nimages:\n  app: {}\ndeploy:\n  verify:\nenvironments:\n  staging:\n    namespace: s\n')).toMatch(
      /^skiff\.yaml:5:\d+: deploy\.verify needs key/,
    );
    expect(errorOf(config('    keys: cosign.pub'))).toMatch(/^skiff\.yaml:5:\d+: deploy\.verify needs key: .*\(and 1 more problem\)$/);
  });
});

describe('the signing secrets stay with skiff and cosign', () => {
  it('no other child process gets SKIFF_COSIGN_KEY or COSIGN_PASSWORD, and a build secret may not read them', () => {
    expect(childEnv({ PATH: '/bin', SKIFF_COSIGN_KEY: PEM, COSIGN_PASSWORD: 'pw-123456' })).toEqual({ PATH: '/bin' });
    expect(OWN_SECRET_VARIABLES).toEqual(expect.arrayContaining(['SKIFF_COSIGN_KEY', 'COSIGN_PASSWORD']));
  });
});
