// Registry authentication with an identity token (Docker's config.json
// `identitytoken`, a credential helper's "<token>" user): the OAuth2
// refresh-token grant at the token service, against a fake registry and token
// server on 127.0.0.1; and the forms the Engine and buildkitd are given.
import { chmod, mkdtemp, rm, writeFile } from 'node:fs/promises';
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { delimiter, join } from 'node:path';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { RegistryClient } from '../../src/registry/registry-client.js';
import { findCredentials } from '../../src/registry/credentials.js';
import { buildkitDockerConfig, engineAuth, engineRegistryConfig, redactCredentials } from '../../src/registry/docker-auth.js';
import { InfrastructureError } from '../../src/errors.js';

const servers: Server[] = [];
let dir: string;
beforeAll(async () => {
  dir = await mkdtemp(join(tmpdir(), 'skiff-registry-auth-'));
});
afterAll(async () => {
  await rm(dir, { recursive: true, force: true });
});
afterEach(async () => {
  for (const s of servers.splice(0)) await new Promise<void>((r) => s.close(() => r()));
});

async function serve(handle: (req: IncomingMessage, res: ServerResponse, body: string) => void): Promise<string> {
  const server = createServer((req, res) => {
    let body = '';
    req.on('data', (c: Buffer) => (body += c.toString()));
    req.on('end', () => handle(req, res, body));
  });
  servers.push(server);
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', () => r()));
  return `127.0.0.1:${(server.address() as AddressInfo).port}`;
}

const REFRESH = 'refresh-7f3a9c';
const ACCESS = 'access-b41d22';
const DIGEST = `sha256:${'ab'.repeat(32)}`;

interface TokenRequest {
  method: string;
  authorization?: string;
  form: Record<string, string>;
}

/** A token server that grants ACCESS for the refresh token REFRESH only, and a registry that wants ACCESS as a Bearer token. */
async function fakeRegistry(): Promise<{ host: string; tokenRequests: TokenRequest[] }> {
  const tokenRequests: TokenRequest[] = [];
  const tokens = await serve((req, res, body) => {
    const form = Object.fromEntries(new URLSearchParams(body));
    tokenRequests.push({ method: req.method ?? '', authorization: req.headers.authorization, form });
    const ok = req.method === 'POST' && form.grant_type === 'refresh_token' && form.refresh_token === REFRESH;
    res.writeHead(ok ? 200 : 401, { 'content-type': 'application/json' });
    res.end(ok ? JSON.stringify({ access_token: ACCESS, expires_in: 300 }) : '{"errors":[{"code":"UNAUTHORIZED"}]}');
  });
  const host = await serve((req, res) => {
    if (req.headers.authorization !== `Bearer ${ACCESS}`) {
      res.writeHead(401, { 'www-authenticate': `Bearer realm="http://${tokens}/token",service="fake-registry",scope="repository:app:pull"` });
      return res.end();
    }
    res.writeHead(200, { 'docker-content-digest': DIGEST, 'content-type': 'application/vnd.oci.image.manifest.v1+json' });
    res.end();
  });
  return { host, tokenRequests };
}

async function dockerConfigWith(auths: Record<string, unknown>): Promise<string> {
  const config = await mkdtemp(join(dir, 'docker-'));
  await writeFile(join(config, 'config.json'), JSON.stringify({ auths }));
  return config;
}

describe('identity token (OAuth2 refresh token)', () => {
  it('config.json identitytoken: exchanged at the token service with the refresh-token grant, never sent as a password', async () => {
    const { host, tokenRequests } = await fakeRegistry();
    const user = '00000000-0000-0000-0000-000000000000';
    const config = await dockerConfigWith({ [host]: { auth: Buffer.from(`${user}:`).toString('base64'), identitytoken: REFRESH } });
    const credentials = await findCredentials(host, { DOCKER_CONFIG: config }, {});
    expect(credentials).toEqual({ username: user, password: '', identityToken: REFRESH, origin: `${join(config, 'config.json')} auths` });

    expect(await new RegistryClient(host, credentials).manifest('app', 'v1')).toMatchObject({ digest: DIGEST });
    expect(tokenRequests).toEqual([
      {
        method: 'POST',
        authorization: undefined,
        form: { grant_type: 'refresh_token', refresh_token: REFRESH, client_id: 'skiff', scope: 'repository:app:pull', service: 'fake-registry' },
      },
    ]);
  });

  it('a refused identity token is exit 3 naming where it came from, without the token', async () => {
    const { host } = await fakeRegistry();
    const config = await dockerConfigWith({ [host]: { identitytoken: 'expired-token' } });
    const credentials = await findCredentials(host, { DOCKER_CONFIG: config }, {});
    expect(credentials).toMatchObject({ username: '', password: '', identityToken: 'expired-token' });
    const e = await new RegistryClient(host, credentials).manifest('app', 'v1').catch((x: unknown) => x);
    expect(e).toBeInstanceOf(InfrastructureError);
    expect((e as InfrastructureError).kind).toBe('auth');
    expect((e as Error).message).toBe(
      `registry ${host} denied access with the identity token from ${join(config, 'config.json')} auths; log in again ("docker login ${host}"): the token may have expired or been revoked`,
    );
  });

  it('a credential helper answering user "<token>" gives an identity token, not a password', async () => {
    const bin = await mkdtemp(join(dir, 'bin-'));
    await writeFile(join(bin, 'docker-credential-fake'), `#!/bin/sh\necho '{"Username":"<token>","Secret":"${REFRESH}"}'\n`);
    await chmod(join(bin, 'docker-credential-fake'), 0o755);
    const config = await mkdtemp(join(dir, 'docker-'));
    await writeFile(join(config, 'config.json'), JSON.stringify({ credHelpers: { 'registry.example.com': 'fake' } }));
    const env = { PATH: `${bin}${delimiter}${process.env.PATH}`, DOCKER_CONFIG: config };
    expect(await findCredentials('registry.example.com', env, {})).toEqual({
      username: '',
      password: '',
      identityToken: REFRESH,
      origin: 'docker-credential-fake',
    });
  });

  it('a plain-HTTP token service on another host never receives the identity token', async () => {
    const asked: string[] = [];
    const host = await serve((_req, res) => {
      res.writeHead(401, { 'www-authenticate': 'Bearer realm="http://tokens.example.test/token",service="registry"' });
      res.end();
    });
    const spy: typeof fetch = (input, init) => {
      asked.push(input instanceof Request ? input.url : input.toString());
      return fetch(input, init);
    };
    const credentials = { username: '', password: '', identityToken: REFRESH, origin: 'test' };
    const e = await new RegistryClient(host, credentials, { fetch: spy }).manifest('app', 'v1').catch((x: unknown) => x);
    expect((e as Error).message).toMatch(/without TLS; refusing/);
    expect(asked.every((u) => u.startsWith(`http://${host}/`))).toBe(true);
  });
});

describe('what the Engine and buildkitd are given', () => {
  const password = { username: 'ci-bot', password: 'pa55', origin: 'test' };
  const token = { username: '', password: '', identityToken: REFRESH, origin: 'test' };

  it('X-Registry-Auth: user and password, or the identity token', () => {
    expect(engineAuth(password, 'r.example')).toEqual({ username: 'ci-bot', password: 'pa55', serveraddress: 'r.example' });
    expect(engineAuth(token, 'r.example')).toEqual({ username: '', password: '', identitytoken: REFRESH, serveraddress: 'r.example' });
    expect(engineAuth(undefined, 'r.example')).toBeUndefined();
    expect(engineRegistryConfig({ a: password, b: token })).toEqual({
      a: { username: 'ci-bot', password: 'pa55' },
      b: { username: '', password: '', identitytoken: REFRESH },
    });
  });

  it("buildkitd's Docker config: auth, and identitytoken without an auth the docker CLI would refuse (no user name)", () => {
    expect(buildkitDockerConfig({ a: password, b: token, c: { ...token, username: 'u' } })).toEqual({
      auths: {
        a: { auth: Buffer.from('ci-bot:pa55').toString('base64') },
        b: { identitytoken: REFRESH },
        c: { auth: Buffer.from('u:').toString('base64'), identitytoken: REFRESH },
      },
    });
  });

  it('messages lose the password and the identity token', () => {
    expect(redactCredentials(`denied pa55 ${REFRESH}`, { ...password, identityToken: REFRESH })).toBe('denied *** ***');
  });
});
