import { statSync } from 'node:fs';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { DockerEngine } from './docker.js';

/**
 * How long a CI job gives a Docker Engine that is still starting. A job's Docker-in-Docker service
 * (docker:dind) first writes its TLS certificates (RSA keys: seconds each) and then starts dockerd;
 * GitLab's runner waits for a service's ports only on a network of its own, not with
 * network_mode = "host" nor for the Kubernetes executor's service containers, so the job often
 * starts first. GitLab's own wait for services is 30 s by default.
 */
export const ENGINE_START_WAIT_MS = 60_000;

export interface OpenEngineOptions {
  /** Wait for an Engine that is starting (a CI run); elsewhere a missing Engine fails at once. */
  wait: boolean;
  /** Told when it starts waiting (for the certificates or the answer), and how long the Engine took then. */
  onWait: (message: string) => void;
  signal: AbortSignal;
  waitMs?: number;
  pollMs?: number;
  /** For tests: the Engine client to make (the real one by default). */
  make?: (env: NodeJS.ProcessEnv) => DockerEngine;
}

const TLS_FILES = ['ca.pem', 'cert.pem', 'key.pem'];
const REFUSED = new Set(['ECONNREFUSED', 'ECONNRESET', 'EHOSTUNREACH', 'ENOTFOUND', 'EAI_AGAIN']);

/**
 * The run's Docker Engine. In a CI run whose DOCKER_HOST is a TCP address, first waits (up to
 * ENGINE_START_WAIT_MS in all) until DOCKER_CERT_PATH holds ca.pem, cert.pem and key.pem (with TLS),
 * then until the Engine answers: a connection refused, reset or a name not resolved yet is a service
 * still starting. Any other failure, and whatever is still missing at the end, is the usual error.
 */
export async function openDockerEngine(env: NodeJS.ProcessEnv, opts: OpenEngineOptions): Promise<DockerEngine> {
  const make = opts.make ?? ((e: NodeJS.ProcessEnv) => new DockerEngine(e));
  if (!opts.wait || !isTcpHost(env.DOCKER_HOST)) return make(env);
  const started = Date.now();
  const deadline = started + (opts.waitMs ?? ENGINE_START_WAIT_MS);
  const poll = opts.pollMs ?? 500;
  const certDir = env.DOCKER_CERT_PATH;
  let waited = false;
  if ((env.DOCKER_TLS_VERIFY || env.DOCKER_TLS) && certDir && !tlsFilesPresent(certDir)) {
    waited = true;
    opts.onWait(`waiting for the Docker Engine's client certificates in ${certDir} (DOCKER_CERT_PATH): a Docker-in-Docker service still starting?`);
    while (!tlsFilesPresent(certDir) && Date.now() < deadline) await sleep(poll, undefined, { signal: opts.signal });
  }
  const engine = make(env);
  for (;;) {
    try {
      await engine.api.ping();
      break;
    } catch (e) {
      const code = (e as NodeJS.ErrnoException).code;
      if (!code || !REFUSED.has(code) || Date.now() >= deadline) break; // engine.ping() below says why
      if (!waited) opts.onWait(`waiting for the Docker Engine at ${engine.endpoint.describe} to answer (${code}): a Docker-in-Docker service still starting?`);
      waited = true;
      await sleep(poll, undefined, { signal: opts.signal });
    }
  }
  await engine.ping();
  if (waited) opts.onWait(`Docker Engine at ${engine.endpoint.describe} answered after ${((Date.now() - started) / 1000).toFixed(1)}s`);
  return engine;
}

/** DOCKER_HOST names a TCP address (tcp://…, or host:port as the docker CLI reads it). */
function isTcpHost(host: string | undefined): boolean {
  if (!host) return false;
  const cut = host.indexOf('://');
  return cut < 0 || host.slice(0, cut) === 'tcp';
}

function tlsFilesPresent(dir: string): boolean {
  return TLS_FILES.every((f) => {
    try {
      return statSync(join(dir, f)).size > 0;
    } catch {
      return false;
    }
  });
}
