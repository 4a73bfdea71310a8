import { InfrastructureError } from '../errors.js';
import type { RegistryCredentials } from './credentials.js';
import { isInsecureRegistry, readJson, REGISTRY_TIMEOUT_MS } from './transport.js';

/** What answering one registry's WWW-Authenticate challenge needs. */
export interface ChallengeInput {
  /** The registry host, for messages. */
  host: string;
  credentials?: RegistryCredentials;
  /** The access the request needs (repository:app:pull), asked for when the challenge names none. */
  scope: string;
  env: NodeJS.ProcessEnv;
  fetch: typeof fetch;
  /** The error for credentials the registry turned down, or for none where it needs some. */
  denied: () => InfrastructureError;
}

/** One authentication scheme: from the challenge's parameters to the Authorization header of the retried request. */
type ChallengeScheme = (params: Record<string, string>, input: ChallengeInput) => Promise<string>;

/**
 * The schemes skiff answers, by their lower-case name in WWW-Authenticate.
 * A new registry authentication method is one entry here (and, when it needs
 * a new kind of secret, a field of RegistryCredentials filled in credentials.ts).
 */
const SCHEMES: Record<string, ChallengeScheme> = {
  basic: (_params, input) => Promise.resolve(basicAuthorization(input.credentials!)),
  bearer: bearerToken,
};

/** The Authorization header that answers a registry's 401 challenge. */
export async function answerChallenge(challenge: string, input: ChallengeInput): Promise<string> {
  const name = challenge.split(' ')[0]?.toLowerCase() ?? '';
  // Only a Bearer token service may hand out anonymous (pull) tokens.
  if (!input.credentials && name !== 'bearer') throw input.denied();
  const scheme = SCHEMES[name];
  if (!scheme) throw new InfrastructureError(`registry ${input.host} asks for unsupported authentication "${name}"`);
  const params = Object.fromEntries([...challenge.matchAll(/(\w+)="([^"]*)"/g)].map((m) => [m[1]!.toLowerCase(), m[2]!]));
  return scheme(params, input);
}

function basicAuthorization(c: RegistryCredentials): string {
  return `Basic ${Buffer.from(`${c.username}:${c.password}`).toString('base64')}`;
}

/** The token service's URL from a Bearer challenge, checked before any secret is sent there. */
function tokenServiceUrl(params: Record<string, string>, input: ChallengeInput): URL {
  if (!params.realm) throw new InfrastructureError(`registry ${input.host} sent a Bearer challenge without a realm`);
  let url: URL;
  try {
    url = new URL(params.realm);
  } catch {
    throw new InfrastructureError(`registry ${input.host} sent a Bearer challenge whose realm is not a URL`);
  }
  // The realm comes from the registry's answer: a password or identity token goes there only over TLS (or to a loopback/insecure registry's own host).
  if (input.credentials && url.protocol !== 'https:' && !(url.protocol === 'http:' && isInsecureRegistry(url.host, input.env))) {
    throw new InfrastructureError(
      `registry ${input.host} asks for the password to be sent to ${url.protocol}//${url.host} without TLS; refusing (a token service must use https)`,
    );
  }
  return url;
}

/**
 * Docker's token authentication: a GET with the user and password (or none,
 * for anonymous pulls), or, with an identity token, the OAuth2 refresh-token
 * grant (a POST), as the distribution spec's token service defines it.
 */
async function bearerToken(params: Record<string, string>, input: ChallengeInput): Promise<string> {
  const url = tokenServiceUrl(params, input);
  const scope = params.scope ?? input.scope;
  const c = input.credentials;
  let res: Response;
  if (c?.identityToken) {
    const form = new URLSearchParams({ grant_type: 'refresh_token', refresh_token: c.identityToken, client_id: 'skiff', scope });
    if (params.service) form.set('service', params.service);
    res = await input.fetch(url, {
      method: 'POST',
      headers: { 'content-type': 'application/x-www-form-urlencoded' },
      body: form.toString(),
      signal: AbortSignal.timeout(REGISTRY_TIMEOUT_MS),
    });
  } else {
    if (params.service) url.searchParams.set('service', params.service);
    url.searchParams.set('scope', scope);
    res = await input.fetch(url, { headers: c ? { authorization: basicAuthorization(c) } : {}, signal: AbortSignal.timeout(REGISTRY_TIMEOUT_MS) });
  }
  if (!res.ok) {
    await res.body?.cancel();
    throw input.denied();
  }
  const body = (await readJson(res, `registry ${input.host} token service`)) as { token?: unknown; access_token?: unknown };
  const token = body.token ?? body.access_token;
  if (typeof token !== 'string' || !token) throw input.denied();
  return `Bearer ${token}`;
}
