import { createHash } from 'node:crypto';
import { describe, expect, it } from 'vitest';
import { type ReadFile, resolveDockerEndpoint } from '../../src/adapters/docker-endpoint.js';
import { ConfigError } from '../../src/errors.js';

const HOME = '/home/dev';
const CONFIG = `${HOME}/.docker`;
const id = (name: string) => createHash('sha256').update(name).digest('hex');

/** A Docker config directory in memory: config.json, contexts and TLS files. */
function disk(files: Record<string, string> = {}): ReadFile {
  return (path) => files[path];
}
function context(name: string, endpoint: Record<string, unknown>, tls: Record<string, string> = {}, dir = CONFIG): Record<string, string> {
  const files: Record<string, string> = {
    [`${dir}/contexts/meta/${id(name)}/meta.json`]: JSON.stringify({ Name: name, Metadata: {}, Endpoints: { docker: endpoint } }),
  };
  for (const [file, text] of Object.entries(tls)) files[`${dir}/contexts/tls/${id(name)}/docker/${file}`] = text;
  return files;
}
const certs = (dir: string, names = ['ca.pem', 'cert.pem', 'key.pem']) => Object.fromEntries(names.map((n) => [`${dir}/${n}`, `${n} of ${dir}`]));

function resolve(env: Record<string, string>, files: Record<string, string> = {}) {
  return resolveDockerEndpoint({ HOME, ...env }, disk(files));
}
function failure(env: Record<string, string>, files: Record<string, string> = {}): ConfigError {
  try {
    resolve(env, files);
  } catch (e) {
    expect(e).toBeInstanceOf(ConfigError);
    expect((e as ConfigError).exitCode).toBe(2);
    expect((e as Error).message).not.toContain('\n');
    return e as ConfigError;
  }
  throw new Error('expected a ConfigError');
}

describe('resolveDockerEndpoint: DOCKER_HOST', () => {
  it('nothing set: the local socket', () => {
    expect(resolve({})).toEqual({ socketPath: '/var/run/docker.sock', describe: 'unix:///var/run/docker.sock (default)' });
  });

  it('a unix socket, and unix:// alone meaning the default socket', () => {
    expect(resolve({ DOCKER_HOST: 'unix:///run/user/1000/docker.sock' })).toEqual({
      socketPath: '/run/user/1000/docker.sock',
      describe: 'unix:///run/user/1000/docker.sock (from DOCKER_HOST)',
    });
    expect(resolve({ DOCKER_HOST: 'unix://' })).toMatchObject({ socketPath: '/var/run/docker.sock' });
  });

  it('plain tcp: port 2375 by default, a bare host:port is tcp, TLS settings never apply to a socket', () => {
    expect(resolve({ DOCKER_HOST: 'tcp://127.0.0.1:2375' })).toEqual({
      protocol: 'http',
      host: '127.0.0.1',
      port: 2375,
      rejectUnauthorized: true,
      describe: 'tcp://127.0.0.1:2375 (from DOCKER_HOST)',
    });
    expect(resolve({ DOCKER_HOST: 'tcp://docker' })).toMatchObject({ protocol: 'http', host: 'docker', port: 2375 });
    expect(resolve({ DOCKER_HOST: 'docker:2376' })).toMatchObject({ protocol: 'http', host: 'docker', port: 2376 });
    expect(resolve({ DOCKER_HOST: 'tcp://[::1]:2375' })).toMatchObject({ host: '::1', port: 2375, describe: 'tcp://[::1]:2375 (from DOCKER_HOST)' });
    expect(resolve({ DOCKER_HOST: 'tcp://:2375' })).toMatchObject({ host: 'localhost', port: 2375 });
    expect(resolve({ DOCKER_HOST: 'unix:///var/run/docker.sock', DOCKER_TLS_VERIFY: '1', DOCKER_CERT_PATH: '/nowhere' })).toEqual({
      socketPath: '/var/run/docker.sock',
      describe: 'unix:///var/run/docker.sock (from DOCKER_HOST)',
    });
  });

  it("tcp with TLS, as GitLab's docker:dind sets it: DOCKER_TLS_VERIFY and DOCKER_CERT_PATH", () => {
    const env = { DOCKER_HOST: 'tcp://docker:2376', DOCKER_TLS_VERIFY: '1', DOCKER_CERT_PATH: '/certs/client' };
    expect(resolve(env, certs('/certs/client'))).toEqual({
      protocol: 'https',
      host: 'docker',
      port: 2376,
      ca: 'ca.pem of /certs/client',
      cert: 'cert.pem of /certs/client',
      key: 'key.pem of /certs/client',
      rejectUnauthorized: true,
      describe: 'tcp://docker:2376 (TLS, from DOCKER_HOST)',
    });
  });

  it('DOCKER_TLS_VERIFY alone: any non-empty value verifies, the files come from the Docker config directory, the host is tcp://localhost:2376', () => {
    expect(resolve({ DOCKER_TLS_VERIFY: '0' }, certs(CONFIG))).toMatchObject({
      protocol: 'https',
      host: 'localhost',
      port: 2376,
      ca: `ca.pem of ${CONFIG}`,
      rejectUnauthorized: true,
      describe: 'tcp://localhost:2376 (TLS, default for DOCKER_TLS_VERIFY)',
    });
    expect(resolve({ DOCKER_TLS_VERIFY: '1', DOCKER_HOST: 'tcp://h:2376', DOCKER_CONFIG: '/cfg' }, certs('/cfg'))).toMatchObject({ ca: 'ca.pem of /cfg' });
    // An empty value is unset.
    expect(resolve({ DOCKER_TLS_VERIFY: '', DOCKER_HOST: 'tcp://h:2375' })).toMatchObject({ protocol: 'http' });
  });

  it('DOCKER_TLS without DOCKER_TLS_VERIFY: TLS without verification; no client certificate when neither file is there', () => {
    expect(resolve({ DOCKER_HOST: 'tcp://h:2376', DOCKER_TLS: '1', DOCKER_CERT_PATH: '/c' }, certs('/c', ['ca.pem']))).toEqual({
      protocol: 'https',
      host: 'h',
      port: 2376,
      ca: 'ca.pem of /c',
      rejectUnauthorized: false,
      describe: 'tcp://h:2376 (TLS without verification, from DOCKER_HOST)',
    });
  });

  it('DOCKER_TLS_VERIFY with a missing file: one line naming the variable and the file', () => {
    const env = { DOCKER_HOST: 'tcp://docker:2376', DOCKER_TLS_VERIFY: '1', DOCKER_CERT_PATH: '/x' };
    expect(failure(env).message).toMatch(
      /^DOCKER_CERT_PATH=\/x: ca\.pem is missing; point DOCKER_CERT_PATH at the directory holding ca\.pem, cert\.pem and key\.pem/,
    );
    expect(failure(env, certs('/x', ['ca.pem', 'cert.pem'])).message).toMatch(/^DOCKER_CERT_PATH=\/x: cert\.pem is there but key\.pem is missing; /);
    expect(failure(env, certs('/x', ['ca.pem', 'key.pem'])).message).toMatch(/^DOCKER_CERT_PATH=\/x: key\.pem is there but cert\.pem is missing; /);
    expect(failure({ DOCKER_HOST: 'tcp://docker:2376', DOCKER_TLS_VERIFY: '1' }).message).toMatch(
      /^DOCKER_TLS_VERIFY is set and DOCKER_CERT_PATH is not, so the TLS files come from \/home\/dev\/\.docker: ca\.pem is missing; /,
    );
  });

  it('an unparsable DOCKER_HOST names the variable and the forms that work', () => {
    for (const bad of ['http://docker:2375', 'tcp://docker:port', 'tcp://docker:99999', 'tcp://a b', 'tcp://user@docker:2376', '://x']) {
      expect(failure({ DOCKER_HOST: bad }).message).toBe(
        `DOCKER_HOST=${bad}: not a Docker host address; use unix:///path/to/docker.sock or tcp://host:port (with DOCKER_TLS_VERIFY and DOCKER_CERT_PATH for TLS)`,
      );
    }
    expect(failure({ DOCKER_HOST: 'tcp://docker:2375/v1' }).message).toMatch(/^DOCKER_HOST=tcp:\/\/docker:2375\/v1: a path after host:port is not supported/);
  });

  it('ssh:// is refused with the way out', () => {
    expect(failure({ DOCKER_HOST: 'ssh://me@build-box' }).message).toBe(
      'DOCKER_HOST=ssh://me@build-box: ssh:// Docker hosts are not supported by skiff; use a tcp:// endpoint with TLS (DOCKER_HOST=tcp://host:2376 with DOCKER_TLS_VERIFY=1 and DOCKER_CERT_PATH) or a Docker context with one',
    );
  });
});

describe('resolveDockerEndpoint: contexts', () => {
  const colima = context('colima', { Host: `unix://${HOME}/.colima/default/docker.sock`, SkipTLSVerify: false });
  const remote = context('remote', { Host: 'tcp://10.0.0.5:2376', SkipTLSVerify: false }, { 'ca.pem': 'CA', 'cert.pem': 'CERT', 'key.pem': 'KEY' });

  it('DOCKER_CONTEXT names a context: its endpoint, found under the sha256 of its name', () => {
    expect(resolve({ DOCKER_CONTEXT: 'colima' }, colima)).toEqual({
      socketPath: `${HOME}/.colima/default/docker.sock`,
      describe: `context colima: unix://${HOME}/.colima/default/docker.sock`,
    });
  });

  it("a context's TLS files make it TLS; SkipTLSVerify turns verification off; DOCKER_TLS_VERIFY does not apply to it", () => {
    expect(resolve({ DOCKER_CONTEXT: 'remote', DOCKER_CERT_PATH: '/elsewhere', DOCKER_TLS_VERIFY: '1' }, remote)).toEqual({
      protocol: 'https',
      host: '10.0.0.5',
      port: 2376,
      ca: 'CA',
      cert: 'CERT',
      key: 'KEY',
      rejectUnauthorized: true,
      describe: 'context remote: tcp://10.0.0.5:2376 (TLS)',
    });
    const insecure = context('lab', { Host: 'tcp://lab:2376', SkipTLSVerify: true });
    expect(resolve({ DOCKER_CONTEXT: 'lab' }, insecure)).toMatchObject({
      protocol: 'https',
      rejectUnauthorized: false,
      describe: 'context lab: tcp://lab:2376 (TLS without verification)',
    });
    const plain = context('plain', { Host: 'tcp://lab:2375' });
    expect(resolve({ DOCKER_CONTEXT: 'plain' }, plain)).toMatchObject({ protocol: 'http', host: 'lab', port: 2375 });
  });

  it('currentContext in $DOCKER_CONFIG/config.json (default ~/.docker) when DOCKER_CONTEXT is unset', () => {
    const files = { ...colima, [`${CONFIG}/config.json`]: JSON.stringify({ auths: {}, currentContext: 'colima' }) };
    expect(resolve({}, files)).toMatchObject({ socketPath: `${HOME}/.colima/default/docker.sock` });
    const moved = { ...context('remote', { Host: 'tcp://10.0.0.5:2375' }, {}, '/cfg'), '/cfg/config.json': '{"currentContext":"remote"}' };
    expect(resolve({ DOCKER_CONFIG: '/cfg' }, moved)).toMatchObject({ host: '10.0.0.5', describe: 'context remote: tcp://10.0.0.5:2375' });
    // DOCKER_CONTEXT beats currentContext.
    expect(resolve({ DOCKER_CONTEXT: 'remote' }, { ...files, ...remote })).toMatchObject({ host: '10.0.0.5' });
  });

  it('DOCKER_HOST beats DOCKER_CONTEXT and currentContext, as in the docker CLI', () => {
    const files = { ...remote, [`${CONFIG}/config.json`]: '{"currentContext":"remote"}' };
    expect(resolve({ DOCKER_HOST: 'unix:///tmp/d.sock', DOCKER_CONTEXT: 'remote' }, files)).toEqual({
      socketPath: '/tmp/d.sock',
      describe: 'unix:///tmp/d.sock (from DOCKER_HOST)',
    });
    expect(resolve({ DOCKER_HOST: 'unix:///tmp/d.sock' }, files)).toMatchObject({ socketPath: '/tmp/d.sock' });
    // Even a DOCKER_CONTEXT that does not exist is never looked at.
    expect(resolve({ DOCKER_HOST: 'unix:///tmp/d.sock', DOCKER_CONTEXT: 'gone' })).toMatchObject({ socketPath: '/tmp/d.sock' });
  });

  it('the "default" context is the local socket (or the DOCKER_TLS* settings), whether named or current', () => {
    expect(resolve({ DOCKER_CONTEXT: 'default' })).toEqual({ socketPath: '/var/run/docker.sock', describe: 'unix:///var/run/docker.sock (default)' });
    expect(resolve({}, { [`${CONFIG}/config.json`]: '{"currentContext":"default"}' })).toMatchObject({ socketPath: '/var/run/docker.sock' });
    expect(resolve({}, { [`${CONFIG}/config.json`]: '{"auths":{}}' })).toMatchObject({ socketPath: '/var/run/docker.sock' });
    expect(resolve({ DOCKER_CONTEXT: 'default', DOCKER_TLS_VERIFY: '1' }, certs(CONFIG))).toMatchObject({ host: 'localhost', port: 2376 });
  });

  it('a context that does not exist names the variable or the file that asked for it', () => {
    expect(failure({ DOCKER_CONTEXT: 'gone' }).message).toBe(
      `DOCKER_CONTEXT=gone: no such Docker context (${CONFIG}/contexts/meta/${id('gone')}/meta.json does not exist); create it with "docker context create gone" or unset DOCKER_CONTEXT`,
    );
    expect(failure({}, { [`${CONFIG}/config.json`]: '{"currentContext":"gone"}' }).message).toMatch(
      /^\/home\/dev\/\.docker\/config\.json: currentContext "gone": no such Docker context \(.*\); run "docker context use default"/,
    );
  });

  it('broken files name themselves: config.json, meta.json, a half TLS pair, an ssh context', () => {
    expect(failure({}, { [`${CONFIG}/config.json`]: '{"currentContext": ' }).message).toMatch(/^\/home\/dev\/\.docker\/config\.json is not valid JSON \(/);
    const broken = { [`${CONFIG}/contexts/meta/${id('x')}/meta.json`]: '{' };
    expect(failure({ DOCKER_CONTEXT: 'x' }, broken).message).toMatch(new RegExp(`^${CONFIG}/contexts/meta/${id('x')}/meta\\.json is not valid JSON`));
    const noDocker = { [`${CONFIG}/contexts/meta/${id('k8s')}/meta.json`]: '{"Name":"k8s","Endpoints":{}}' };
    expect(failure({ DOCKER_CONTEXT: 'k8s' }, noDocker).message).toMatch(/^context k8s: .* has no docker endpoint/);
    const half = context('half', { Host: 'tcp://h:2376' }, { 'ca.pem': 'CA', 'cert.pem': 'CERT' });
    expect(failure({ DOCKER_CONTEXT: 'half' }, half).message).toMatch(/^context half: .*\/docker: cert\.pem is there but key\.pem is missing; /);
    const ssh = context('box', { Host: 'ssh://me@box' });
    expect(failure({ DOCKER_CONTEXT: 'box' }, ssh).message).toMatch(
      /^context box \(.*meta\.json\): Host ssh:\/\/me@box: ssh:\/\/ Docker hosts are not supported by skiff; /,
    );
  });
});
