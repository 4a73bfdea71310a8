/**
 * Image platforms as OCI names them ("os/arch[/variant]"): parsed, normalised the way containerd
 * does (linux/arm64/v8 is linux/arm64, linux/arm is linux/arm/v7), compared. Pure.
 */

export interface Platform {
  os: string;
  architecture: string;
  variant?: string;
}

const OS = new Set(['linux', 'windows', 'darwin', 'freebsd']);
const ARCH_VARIANTS: Record<string, readonly string[]> = {
  amd64: ['v1', 'v2', 'v3', 'v4'],
  arm64: ['v8', 'v9'],
  arm: ['v5', 'v6', 'v7', 'v8'],
  '386': [],
  ppc64le: [],
  s390x: [],
  riscv64: [],
  mips64le: [],
  loong64: [],
};

/** A platform name in its normal form, or a reason it is not one (for the message). */
export function parsePlatform(text: string): { platform: string } | { problem: string } {
  const parts = text.trim().toLowerCase().split('/');
  if (parts.length < 2 || parts.length > 3 || parts.some((p) => !/^[a-z0-9_]+$/.test(p)))
    return { problem: 'is not os/arch[/variant], e.g. linux/amd64, linux/arm64 or linux/arm/v7' };
  const [os, arch, given] = parts as [string, string, string | undefined];
  if (!OS.has(os)) return { problem: `names an unknown OS "${os}" (known: ${[...OS].join(', ')})` };
  const variants = ARCH_VARIANTS[arch];
  if (!variants) return { problem: `names an unknown architecture "${arch}" (known: ${Object.keys(ARCH_VARIANTS).join(', ')})` };
  if (given && !variants.includes(given))
    return { problem: `names variant "${given}", which ${arch} does not have${variants.length ? ` (${variants.join(', ')})` : ''}` };
  return { platform: formatPlatform(normalizePlatform({ os, architecture: arch, variant: given })) };
}

/** containerd's normalisation: arm64's v8 and amd64's v1 are the default; a bare arm is arm/v7. */
export function normalizePlatform(p: Platform): Platform {
  const { os, architecture } = p;
  let variant = p.variant || undefined;
  if ((architecture === 'arm64' && variant === 'v8') || (architecture === 'amd64' && variant === 'v1')) variant = undefined;
  if (architecture === 'arm' && !variant) variant = 'v7';
  return variant ? { os, architecture, variant } : { os, architecture };
}

export function formatPlatform(p: Platform): string {
  return [p.os, p.architecture, p.variant].filter(Boolean).join('/');
}

/** The OCI form of a platform name that parsePlatform accepted. */
export function platformOf(name: string): Platform {
  const [os = '', architecture = '', variant] = name.split('/');
  return normalizePlatform({ os, architecture, variant });
}

/** Whether two platforms are the same after normalisation. */
export function samePlatform(a: Platform, b: Platform): boolean {
  return formatPlatform(normalizePlatform(a)) === formatPlatform(normalizePlatform(b));
}

/** Node's process.arch in OCI's words, for the platform of the machine skiff runs on. */
export function hostPlatform(arch: string = process.arch): string {
  const map: Record<string, string> = { x64: 'amd64', arm64: 'arm64', arm: 'arm/v7', ia32: '386', ppc64: 'ppc64le', s390x: 's390x', riscv64: 'riscv64' };
  return `linux/${map[arch] ?? arch}`;
}
