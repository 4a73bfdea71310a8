import { createHash } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { Agent } from 'node:https';
import { homedir } from 'node:os';
import { join } from 'node:path';
import Docker from 'dockerode';
import { ConfigError } from '../errors.js';

/**
 * Which Docker Engine to talk to, chosen by the docker CLI's rules:
 *
 * 1. DOCKER_HOST (non-empty) wins over any context: the "default" context.
 * 2. Else DOCKER_CONTEXT, else `currentContext` in $DOCKER_CONFIG/config.json
 *    (DOCKER_CONFIG defaults to ~/.docker); none, or "default": the default context.
 * 3. The default context is DOCKER_HOST, else unix:///var/run/docker.sock. DOCKER_TLS_VERIFY
 *    (any non-empty value) or DOCKER_TLS turn TLS on, the first with verification; TLS on and
 *    no DOCKER_HOST means tcp://localhost:2376. The files are ca.pem (required), cert.pem and
 *    key.pem (both or neither) in DOCKER_CERT_PATH, else in the Docker config directory.
 * 4. A named context is $DOCKER_CONFIG/contexts/meta/<sha256 of its name>/meta.json
 *    (Endpoints.docker.Host, SkipTLSVerify) and its TLS files in
 *    contexts/tls/<sha256>/docker/{ca,cert,key}.pem; TLS when any file is there or
 *    SkipTLSVerify is set. The DOCKER_TLS* variables do not apply to it.
 *
 * tcp:// without a port means 2375 and a bare host:port means tcp://, as in the docker CLI.
 * TLS settings never apply to a socket. ssh:// (and fd://) hosts are refused.
 */
export type DockerEndpoint = (DockerSocket | DockerTcp) & {
  /** For messages: "tcp://127.0.0.1:2376 (TLS, from DOCKER_HOST)", "context colima: unix:///…". */
  describe: string;
};

export interface DockerSocket {
  /** A unix socket or a Windows named pipe. */
  socketPath: string;
}

export interface DockerTcp {
  protocol: 'http' | 'https';
  host: string;
  port: number;
  ca?: string;
  cert?: string;
  key?: string;
  /** false only for TLS without verification (DOCKER_TLS without DOCKER_TLS_VERIFY, a context's SkipTLSVerify). */
  rejectUnauthorized: boolean;
}

/** A file's text, or undefined when it does not exist. */
export type ReadFile = (path: string) => string | undefined;

export const DEFAULT_DOCKER_SOCKET = '/var/run/docker.sock';
const DEFAULT_NAMED_PIPE = '//./pipe/docker_engine';
const DEFAULT_TCP_PORT = 2375;
const DEFAULT_TLS_HOST = 'tcp://localhost:2376';
const CERT_PATH_HINT =
  'point DOCKER_CERT_PATH at the directory holding ca.pem, cert.pem and key.pem (GitLab docker:dind: "$DOCKER_TLS_CERTDIR/client", shared with the job through the runner\'s /certs/client volume)';

/** Resolves the Engine endpoint from the environment and the Docker config directory. Pure: every file is read through readFile. */
export function resolveDockerEndpoint(env: NodeJS.ProcessEnv, readFile: ReadFile): DockerEndpoint {
  if (env.DOCKER_HOST) return defaultContext(env, readFile);
  const configDir = env.DOCKER_CONFIG || join(env.HOME || homedir(), '.docker');
  let name: string;
  let origin: string;
  if (env.DOCKER_CONTEXT) {
    name = env.DOCKER_CONTEXT;
    origin = `DOCKER_CONTEXT=${name}`;
  } else {
    const file = join(configDir, 'config.json');
    const config = parseJson<{ currentContext?: unknown }>(readFile(file), file, 'or set DOCKER_HOST or DOCKER_CONTEXT');
    const current = config?.currentContext;
    if (current !== undefined && typeof current !== 'string') throw new ConfigError(`${file}: currentContext must be a string; fix the file`);
    name = current ?? '';
    origin = `${file}: currentContext "${name}"`;
  }
  if (!name || name === 'default') return defaultContext(env, readFile);
  return namedContext(name, origin, configDir, readFile);
}

/** Reads a file for resolveDockerEndpoint: its text, or undefined when it is missing. */
export function readFileIfExists(path: string): string | undefined {
  try {
    return readFileSync(path, 'utf8');
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code === 'ENOENT' || (e as NodeJS.ErrnoException).code === 'ENOTDIR') return undefined;
    throw new ConfigError(`cannot read ${path} (${(e as Error).message}); check that file`, { cause: e });
  }
}

function defaultContext(env: NodeJS.ProcessEnv, readFile: ReadFile): DockerEndpoint {
  const verify = Boolean(env.DOCKER_TLS_VERIFY);
  const tls = verify || Boolean(env.DOCKER_TLS);
  const fromEnv = Boolean(env.DOCKER_HOST);
  const raw = env.DOCKER_HOST || (tls ? DEFAULT_TLS_HOST : `unix://${DEFAULT_DOCKER_SOCKET}`);
  const target = parseHost(raw, `DOCKER_HOST=${raw}`);
  const source = fromEnv ? 'from DOCKER_HOST' : 'default';
  if ('socketPath' in target) return { socketPath: target.socketPath, describe: `${target.url} (${source})` };
  if (!tls) return { protocol: 'http', host: target.host, port: target.port, rejectUnauthorized: true, describe: `${target.url} (${source})` };

  const tlsVariable = verify ? 'DOCKER_TLS_VERIFY' : 'DOCKER_TLS';
  const dir = env.DOCKER_CERT_PATH || env.DOCKER_CONFIG || join(env.HOME || homedir(), '.docker');
  const where = env.DOCKER_CERT_PATH ? `DOCKER_CERT_PATH=${dir}` : `${tlsVariable} is set and DOCKER_CERT_PATH is not, so the TLS files come from ${dir}`;
  const files = readTlsFiles(dir, readFile);
  if (files.ca === undefined) throw new ConfigError(`${where}: ca.pem is missing; ${CERT_PATH_HINT}`);
  checkPair(files, where, CERT_PATH_HINT);
  return {
    protocol: 'https',
    host: target.host,
    port: target.port,
    ...files,
    rejectUnauthorized: verify,
    describe: `${target.url} (${verify ? 'TLS' : 'TLS without verification'}, ${fromEnv ? 'from DOCKER_HOST' : `default for ${tlsVariable}`})`,
  };
}

function namedContext(name: string, origin: string, configDir: string, readFile: ReadFile): DockerEndpoint {
  const id = createHash('sha256').update(name).digest('hex');
  const metaFile = join(configDir, 'contexts', 'meta', id, 'meta.json');
  const text = readFile(metaFile);
  if (text === undefined) {
    const fix = origin.startsWith('DOCKER_CONTEXT=')
      ? `create it with "docker context create ${name}" or unset DOCKER_CONTEXT`
      : 'run "docker context use default" or set DOCKER_CONTEXT or DOCKER_HOST';
    throw new ConfigError(`${origin}: no such Docker context (${metaFile} does not exist); ${fix}`);
  }
  const meta = parseJson<{ Endpoints?: { docker?: { Host?: unknown; SkipTLSVerify?: unknown } } } | null>(
    text,
    metaFile,
    `or recreate the context with "docker context create ${name}"`,
  );
  const endpoint = meta?.Endpoints?.docker;
  if (!endpoint)
    throw new ConfigError(`context ${name}: ${metaFile} has no docker endpoint (Endpoints.docker); recreate it with "docker context create ${name}"`);
  const host = typeof endpoint.Host === 'string' && endpoint.Host ? endpoint.Host : `unix://${DEFAULT_DOCKER_SOCKET}`;
  const target = parseHost(host, `context ${name} (${metaFile}): Host ${host}`);
  if ('socketPath' in target) return { socketPath: target.socketPath, describe: `context ${name}: ${target.url}` };

  const tlsDir = join(configDir, 'contexts', 'tls', id, 'docker');
  const files = readTlsFiles(tlsDir, readFile);
  const skipVerify = endpoint.SkipTLSVerify === true;
  if (files.ca === undefined && files.cert === undefined && files.key === undefined && !skipVerify) {
    return { protocol: 'http', host: target.host, port: target.port, rejectUnauthorized: true, describe: `context ${name}: ${target.url}` };
  }
  checkPair(files, `context ${name}: ${tlsDir}`, `recreate the context with "docker context create ${name} --docker host=…,ca=…,cert=…,key=…"`);
  return {
    protocol: 'https',
    host: target.host,
    port: target.port,
    ...files,
    rejectUnauthorized: !skipVerify,
    describe: `context ${name}: ${target.url} (${skipVerify ? 'TLS without verification' : 'TLS'})`,
  };
}

type Target = { url: string; socketPath: string } | { url: string; host: string; port: number };

/** Parses a Docker host address the way the docker CLI does; `where` names its origin in errors. */
function parseHost(raw: string, where: string): Target {
  const value = raw.trim();
  const cut = value.indexOf('://');
  const scheme = cut < 0 ? 'tcp' : value.slice(0, cut);
  const rest = cut < 0 ? value : value.slice(cut + 3);
  const invalid = () =>
    new ConfigError(
      `${where}: not a Docker host address; use unix:///path/to/docker.sock or tcp://host:port (with DOCKER_TLS_VERIFY and DOCKER_CERT_PATH for TLS)`,
    );
  switch (scheme) {
    case 'unix':
    case 'npipe': {
      if (rest.includes('://')) throw invalid();
      const path = rest || (scheme === 'unix' ? DEFAULT_DOCKER_SOCKET : DEFAULT_NAMED_PIPE);
      return { url: `${scheme}://${path}`, socketPath: path };
    }
    case 'tcp':
      return parseTcp(rest, where, invalid);
    case 'ssh':
      throw new ConfigError(
        `${where}: ssh:// Docker hosts are not supported by skiff; use a tcp:// endpoint with TLS (DOCKER_HOST=tcp://host:2376 with DOCKER_TLS_VERIFY=1 and DOCKER_CERT_PATH) or a Docker context with one`,
      );
    case 'fd':
      throw new ConfigError(`${where}: fd:// Docker hosts are not supported by skiff; use a unix:// socket or a tcp:// endpoint`);
    default:
      throw invalid();
  }
}

function parseTcp(rest: string, where: string, invalid: () => ConfigError): Target {
  if (rest.includes('://') || /\s/.test(rest)) throw invalid();
  const slash = rest.indexOf('/');
  const authority = slash < 0 ? rest : rest.slice(0, slash);
  const path = slash < 0 ? '' : rest.slice(slash);
  if (path && path !== '/') throw new ConfigError(`${where}: a path after host:port is not supported; use tcp://host:port`);
  const m = /^\[([0-9A-Fa-f:.]+(?:%[\w.-]+)?)\](?::(\d*))?$/.exec(authority) ?? /^([^:@[\]]*)(?::(\d*))?$/.exec(authority);
  if (!m) throw invalid();
  const host = m[1] || 'localhost';
  const port = m[2] ? Number(m[2]) : DEFAULT_TCP_PORT;
  if (!Number.isInteger(port) || port < 1 || port > 65535) throw invalid();
  return { url: `tcp://${host.includes(':') ? `[${host}]` : host}:${port}`, host, port };
}

function readTlsFiles(dir: string, readFile: ReadFile): { ca?: string; cert?: string; key?: string } {
  const files: { ca?: string; cert?: string; key?: string } = {};
  for (const name of ['ca', 'cert', 'key'] as const) {
    const text = readFile(join(dir, `${name}.pem`));
    if (text !== undefined) files[name] = text;
  }
  return files;
}

/** A client certificate without its key (or the reverse) is a half-copied directory: say so rather than connect without one. */
function checkPair(files: { cert?: string; key?: string }, where: string, fix: string) {
  if ((files.cert === undefined) === (files.key === undefined)) return;
  const [there, missing] = files.cert === undefined ? ['key.pem', 'cert.pem'] : ['cert.pem', 'key.pem'];
  throw new ConfigError(`${where}: ${there} is there but ${missing} is missing; ${fix}`);
}

function parseJson<T>(text: string | undefined, file: string, fix: string): T | undefined {
  if (text === undefined) return undefined;
  try {
    return JSON.parse(text) as T;
  } catch (e) {
    throw new ConfigError(`${file} is not valid JSON (${(e as Error).message}); fix it, ${fix}`);
  }
}

/** A dockerode client for the endpoint. */
export function dockerClient(endpoint: DockerEndpoint): Docker {
  let options: Docker.DockerOptions & { agent?: Agent };
  if ('socketPath' in endpoint) options = { socketPath: endpoint.socketPath };
  else if (endpoint.protocol === 'http') options = { protocol: 'http', host: endpoint.host, port: endpoint.port };
  else {
    const { host, port, ca, cert, key, rejectUnauthorized } = endpoint;
    // The agent carries rejectUnauthorized, which docker-modem does not pass on by itself.
    options = { protocol: 'https', host, port, ca, cert, key, agent: new Agent({ ca, cert, key, rejectUnauthorized }) };
  }
  // docker-modem also reads DOCKER_HOST (and then DOCKER_TLS_VERIFY, DOCKER_CERT_PATH) from process.env, lays
  // them under these options and throws on a missing cert file: hide it while the client is made, so the
  // endpoint resolved by the docker CLI's rules is the only source.
  const host = process.env.DOCKER_HOST;
  delete process.env.DOCKER_HOST;
  try {
    return new Docker(options);
  } finally {
    if (host !== undefined) process.env.DOCKER_HOST = host;
  }
}
