import type { BuildkitdEndpoint } from './project-config.js';
import type { ConfigReader } from './config-reader.js';

const BUILDKIT_ADDRESS = /^(tcp:\/\/[^\s/]+|unix:\/\/\/\S+)$/;

/** `builder:` one buildkitd or a list of them, each an address or {address, ca, cert, key}; absent: the Docker Engine builds. */
export function validateBuilder(r: ConfigReader, raw: unknown): BuildkitdEndpoint[] {
  const builders: BuildkitdEndpoint[] = [];
  const builderAt = (v: unknown, path: string) => {
    const entry = typeof v === 'string' ? { address: v } : r.mapping(v, path);
    if (!entry) return;
    r.knownKeys(entry, path, ['address', 'ca', 'cert', 'key']);
    const address = r.string(entry.address, `${path}.address`, {
      required: true,
      pattern: BUILDKIT_ADDRESS,
      hint: 'use tcp://host:port or unix:///path/to/buildkitd.sock',
    });
    const tls = { ca: r.string(entry.ca, `${path}.ca`), cert: r.string(entry.cert, `${path}.cert`), key: r.string(entry.key, `${path}.key`) };
    if (Boolean(tls.cert) !== Boolean(tls.key)) r.problem(path, `${path} needs both cert and key (the client certificate and its key), or neither`);
    if (address) builders.push(tls.ca || tls.cert || tls.key ? { address, tls } : { address });
  };
  if (Array.isArray(raw)) {
    if (raw.length === 0) r.problem('builder', 'builder is an empty list: name at least one buildkitd, or remove the key to build on the Docker Engine');
    raw.forEach((b: unknown, i) => builderAt(b, `builder[${i}]`));
  } else if (raw !== undefined && raw !== null) builderAt(raw, 'builder');
  return builders;
}
