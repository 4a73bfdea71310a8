// The registry client against a registry on 127.0.0.1 that is down, answers
// 500, rejects the password, sends an oversized answer or asks for the
// password to go to a plain-HTTP token service elsewhere.
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { afterEach, describe, expect, it } from 'vitest';
import { RegistryClient } from '../../src/registry/registry-client.js';
import { ExitCode, InfrastructureError } from '../../src/errors.js';

const servers: Server[] = [];
afterEach(async () => {
  for (const s of servers.splice(0)) await new Promise<void>((r) => s.close(() => r()));
});

async function registry(handle: (req: IncomingMessage, res: ServerResponse) => void): Promise<string> {
  const server = createServer(handle);
  servers.push(server);
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', () => r()));
  return `127.0.0.1:${(server.address() as AddressInfo).port}`;
}

const creds = { username: 'ci-bot', password: 'hunter2-secret', origin: 'SKIFF_REGISTRY_USER/SKIFF_REGISTRY_PASSWORD' };

async function failure(p: Promise<unknown>): Promise<InfrastructureError> {
  const e = await p.then(
    () => undefined,
    (err: unknown) => err,
  );
  expect(e).toBeInstanceOf(InfrastructureError);
  const err = e as InfrastructureError;
  expect(err.exitCode).toBe(ExitCode.infrastructure);
  expect(err.message).not.toContain('\n');
  expect(err.message).not.toContain(creds.password);
  return err;
}

describe('registry faults: exit 3 with a clear one-line message, the password never in it', () => {
  it('registry down (connection refused)', async () => {
    const host = await registry(() => {});
    await new Promise<void>((r) => servers.pop()!.close(() => r()));
    const err = await failure(new RegistryClient(host, creds).manifest('app', 'v1'));
    expect(err.message).toMatch(new RegExp(`^registry ${host.replace(/\./g, '\\.')} is unreachable: .*ECONNREFUSED`));
  });

  it('registry answering 500', async () => {
    const host = await registry((_req, res) => {
      res.writeHead(500);
      res.end('storage backend down');
    });
    const err = await failure(new RegistryClient(host, creds).manifest('app', 'v1'));
    expect(err.message).toBe(`registry ${host} answered 500 for app:v1`);
  });

  it('wrong password', async () => {
    const host = await registry((_req, res) => {
      res.writeHead(401, { 'www-authenticate': 'Basic realm="registry"' });
      res.end();
    });
    const err = await failure(new RegistryClient(host, creds).manifest('app', 'v1'));
    expect(err.message).toBe(
      `registry ${host} denied access as "ci-bot" (credentials from SKIFF_REGISTRY_USER/SKIFF_REGISTRY_PASSWORD); check the user and password`,
    );
    expect(err.kind).toBe('auth');
  });
});

describe('registry answers are not trusted', () => {
  it('a Bearer realm on another host over plain HTTP never receives the password', async () => {
    const asked: string[] = [];
    const host = await registry((_req, res) => {
      res.writeHead(401, { 'www-authenticate': 'Bearer realm="http://tokens.example.test/token",service="registry"' });
      res.end();
    });
    const spy: typeof fetch = (input, init) => {
      asked.push(input instanceof Request ? input.url : input.toString());
      return fetch(input, init);
    };
    const err = await failure(new RegistryClient(host, creds, { fetch: spy }).manifest('app', 'v1'));
    expect(err.message).toBe(
      `registry ${host} asks for the password to be sent to http://tokens.example.test without TLS; refusing (a token service must use https)`,
    );
    expect(asked.every((u) => u.startsWith(`http://${host}/`))).toBe(true);
  });

  it('a tag list larger than 16 MiB is refused instead of read into memory', async () => {
    const host = await registry((_req, res) => {
      res.writeHead(200, { 'content-type': 'application/json' });
      const chunk = Buffer.alloc(1024 * 1024, 0x20);
      res.write('{"tags":[');
      let sent = 0;
      const more = () => {
        while (sent < 20) {
          sent++;
          if (!res.write(chunk)) return res.once('drain', more);
        }
        res.end(']}');
      };
      more();
    });
    const err = await failure(new RegistryClient(host).tags('app'));
    expect(err.message).toBe(`registry ${host} tag list of app is larger than ${16 * 1024 * 1024} bytes; refusing it`);
  });
});

describe('plain HTTP only where the run says so', () => {
  it("SKIFF_INSECURE_REGISTRIES comes from the run's environment, not process.env", async () => {
    const asked: string[] = [];
    const spy: typeof fetch = (input) => {
      asked.push(input instanceof Request ? input.url : input.toString());
      return Promise.resolve(new Response(null, { status: 404 }));
    };
    const host = 'registry.internal:5000';
    process.env.SKIFF_INSECURE_REGISTRIES = host;
    try {
      await new RegistryClient(host, undefined, { fetch: spy }).manifest('app', 'v1');
      await new RegistryClient(host, undefined, { fetch: spy, env: { SKIFF_INSECURE_REGISTRIES: `other:1,${host}` } }).manifest('app', 'v1');
    } finally {
      delete process.env.SKIFF_INSECURE_REGISTRIES;
    }
    expect(asked).toEqual([`https://${host}/v2/app/manifests/v1`, `http://${host}/v2/app/manifests/v1`]);
  });
});
