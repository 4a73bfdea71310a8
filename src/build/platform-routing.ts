import { ConfigError } from '../errors.js';
import { builderOrder } from './builder-pool.js';

/** What a buildkitd builds: its worker's platforms, normalised, its native one first (the rest it emulates). */
export interface BuilderPlatforms {
  address: string;
  platforms: string[];
}

/** Where one platform of an image is built, and whether that builder runs it natively. */
export interface PlatformRoute {
  platform: string;
  address: string;
  native: boolean;
}

/** The platforms one builder builds for an image, in one `buildctl build --opt platform=a,b`. */
export interface PlatformGroup {
  address: string;
  platforms: string[];
  /** Per platform, in the order of `platforms`: built natively (else emulated). */
  native: boolean[];
}

/**
 * Each platform of an image to a builder: one whose native platform it is, else one that emulates
 * it, in the image's rendezvous order (builder-pool.ts) among those, so an image's platforms land
 * on the same builders run after run. `builders`: the reachable ones. A platform none can build
 * is a ConfigError naming it and every builder's platforms. Pure.
 */
export function routePlatforms(image: string, platforms: readonly string[], builders: readonly BuilderPlatforms[], label = image): PlatformRoute[] {
  const order = builderOrder(
    image,
    builders.map((b) => b.address),
  );
  const byAddress = new Map(builders.map((b) => [b.address, b]));
  const ranked = order.map((a) => byAddress.get(a)!);
  const routes: PlatformRoute[] = [];
  const unbuildable: string[] = [];
  for (const platform of platforms) {
    const native = ranked.find((b) => b.platforms[0] === platform);
    const emulating = native ? undefined : ranked.find((b) => b.platforms.includes(platform));
    const chosen = native ?? emulating;
    if (chosen) routes.push({ platform, address: chosen.address, native: Boolean(native) });
    else unbuildable.push(platform);
  }
  if (unbuildable.length) {
    const known = builders.map((b) => `${b.address} (${b.platforms.join(', ') || 'no platforms'})`).join('; ');
    throw new ConfigError(
      `image ${label}: no buildkitd builder can build ${unbuildable.join(', ')}: ${known || 'none is reachable'}; add a builder of that platform to builder: in skiff.yaml, or register QEMU (binfmt_misc) on one so it emulates it`,
    );
  }
  return routes;
}

/** Routes grouped by builder, in the order builders first appear; platforms sorted within a group. */
export function groupRoutes(routes: readonly PlatformRoute[]): PlatformGroup[] {
  const groups = new Map<string, PlatformRoute[]>();
  for (const r of routes) groups.set(r.address, [...(groups.get(r.address) ?? []), r]);
  return [...groups].map(([address, rs]) => {
    const sorted = [...rs].sort((a, b) => (a.platform < b.platform ? -1 : 1));
    return { address, platforms: sorted.map((r) => r.platform), native: sorted.map((r) => r.native) };
  });
}

/** `debug workers --format '{{json .}}'`: the first worker's platforms, normalised, native first. */
export function workerPlatforms(json: string, normalize: (p: { os: string; architecture: string; variant?: string }) => string): string[] {
  const workers = JSON.parse(json) as Array<{ platforms?: Array<{ os?: string; architecture?: string; variant?: string }> }>;
  const out: string[] = [];
  for (const p of workers?.[0]?.platforms ?? []) {
    if (!p.os || !p.architecture) continue;
    const name = normalize({ os: p.os, architecture: p.architecture, variant: p.variant });
    if (!out.includes(name)) out.push(name);
  }
  return out;
}
