import { describe, expect, it } from 'vitest';
import { parseConfigText } from '../../src/config/load.js';
import { ConfigError, ExitCode } from '../../src/errors.js';
import { hostPlatform, parsePlatform } from '../../src/config/platform.js';
import { contentTag, digestInputs, explainChange, labelsToDigests, digestsToLabels, type ImageInputs } from '../../src/build/content-inputs.js';
import { narrowPlatforms, parsePlatformFlag } from '../../src/build/image-plan.js';

const yaml = (...lines: string[]) => `${lines.join('\n')}\n`;
function errorOf(text: string): string {
  try {
    parseConfigText(text, 'skiff.yaml');
  } catch (e) {
    expect(e).toBeInstanceOf(ConfigError);
    expect((e as ConfigError).exitCode).toBe(ExitCode.badInput);
    return (e as Error).message;
  }
  throw new Error('expected a ConfigError');
}

describe('parsePlatform', () => {
  it('normalises as containerd does', () => {
    expect(parsePlatform('linux/amd64')).toEqual({ platform: 'linux/amd64' });
    expect(parsePlatform('Linux/ARM64/v8')).toEqual({ platform: 'linux/arm64' });
    expect(parsePlatform('linux/arm')).toEqual({ platform: 'linux/arm/v7' });
    expect(parsePlatform('linux/arm/v6')).toEqual({ platform: 'linux/arm/v6' });
  });

  it('refuses what is no platform, saying why', () => {
    expect(parsePlatform('amd64')).toMatchObject({ problem: expect.stringContaining('os/arch[/variant]') });
    expect(parsePlatform('linux/amd64/v2/x')).toMatchObject({ problem: expect.stringContaining('os/arch[/variant]') });
    expect(parsePlatform('plan9/amd64')).toMatchObject({ problem: expect.stringContaining('unknown OS "plan9"') });
    expect(parsePlatform('linux/x86')).toMatchObject({ problem: expect.stringContaining('unknown architecture "x86"') });
    expect(parsePlatform('linux/arm64/v7')).toMatchObject({ problem: expect.stringContaining('variant "v7"') });
    expect(parsePlatform('linux/amd64;rm -rf')).toMatchObject({ problem: expect.any(String) });
  });

  it('names the machine skiff runs on in OCI words', () => {
    expect(hostPlatform('x64')).toBe('linux/amd64');
    expect(hostPlatform('arm64')).toBe('linux/arm64');
  });
});

describe('skiff.yaml platforms:', () => {
  it('is a top-level default each image may override; normalised and sorted', () => {
    const c = parseConfigText(
      yaml('project: p', 'platforms: [linux/arm64, linux/amd64]', 'images:', '  app: {}', '  tool:', '    platforms: [linux/arm/v7]', '  other: {}'),
      'skiff.yaml',
    );
    expect(c.images.app!.platforms).toEqual(['linux/amd64', 'linux/arm64']);
    expect(c.images.other!.platforms).toEqual(['linux/amd64', 'linux/arm64']);
    expect(c.images.tool!.platforms).toEqual(['linux/arm/v7']);
  });

  it('leaves images without platforms: as they were (no platforms field)', () => {
    const c = parseConfigText(yaml('project: p', 'images:', '  app: {}'), 'skiff.yaml');
    expect(c.images.app).not.toHaveProperty('platforms');
  });

  it('names file:line:col of a bad or repeated platform', () => {
    expect(errorOf(yaml('project: p', 'images:', '  app:', '    platforms:', '      - linux/amd64', '      - linux/x86'))).toBe(
      'skiff.yaml:6:9: images.app.platforms[1] "linux/x86" names an unknown architecture "x86" (known: 386, amd64, arm64, arm, ppc64le, s390x, riscv64, mips64le, loong64)',
    );
    expect(errorOf(yaml('project: p', 'platforms: [linux/arm64, linux/arm64/v8]', 'images:', '  app: {}'))).toMatch(
      /^skiff\.yaml:2:\d+: platforms\[1\] "linux\/arm64\/v8" is linux\/arm64 again \(platforms\[0\]\); list each platform once$/,
    );
    expect(errorOf(yaml('project: p', 'platforms: []', 'images:', '  app: {}'))).toMatch(/^skiff\.yaml:2:\d+: platforms must be a non-empty list/);
    expect(errorOf(yaml('project: p', 'images:', '  app:', '    platforms: linux/amd64'))).toMatch(
      /^skiff\.yaml:4:\d+: images\.app\.platforms must be a non-empty list.*got a string/,
    );
  });
});

describe('--platform', () => {
  it('parses a comma-separated list, normalised, and refuses a bad entry', () => {
    expect(parsePlatformFlag(undefined)).toBeUndefined();
    expect(parsePlatformFlag('linux/arm64/v8, linux/amd64')).toEqual(['linux/amd64', 'linux/arm64']);
    expect(() => parsePlatformFlag('linux/amd64,arm64')).toThrow(/--platform: "arm64" is not os\/arch/);
    expect(() => parsePlatformFlag(' , ')).toThrow(ConfigError);
  });

  it('narrows the configured platforms; one not configured names the image and its list', () => {
    expect(narrowPlatforms('app', ['linux/amd64', 'linux/arm64'], ['linux/arm64'], 'skiff.yaml:5:5')).toEqual(['linux/arm64']);
    expect(narrowPlatforms('app', ['linux/amd64'], undefined, 'x')).toEqual(['linux/amd64']);
    expect(() => narrowPlatforms('app', ['linux/amd64'], ['linux/arm64'], 'skiff.yaml:5:5')).toThrow(
      'skiff.yaml:5:5: --platform linux/arm64: image app is not built for linux/arm64 (configured: linux/amd64); name only configured platforms, or add them to platforms: in skiff.yaml',
    );
    expect(() => narrowPlatforms('app', undefined, ['linux/amd64'], 'skiff.yaml:3:3')).toThrow(
      /image app is not built for linux\/amd64 \(it has no platforms:/,
    );
  });
});

describe('platforms in the content tag', () => {
  const oid = (c: string) => c.repeat(40);
  const base: ImageInputs = {
    dockerfile: { path: 'Dockerfile', oid: oid('d') },
    entries: [
      { path: 'Dockerfile', mode: '100644', oid: oid('d') },
      { path: 'a.txt', mode: '100644', oid: oid('1') },
    ],
    args: { A: '1' },
    target: undefined,
    dependencyTags: {},
  };
  const tag = (platforms?: string[]) => contentTag(digestInputs({ ...base, platforms }));

  it('leaves the tag of an image without platforms as it was before platforms existed', () => {
    // Computed with the content-tag code of the commit before platforms (985e0bd): existing images must not rebuild.
    expect(tag()).toBe('cc3a8d92d53d2012d4feff4eddfccbd0');
    expect(tag([])).toBe('cc3a8d92d53d2012d4feff4eddfccbd0');
  });

  it('changes it with the platform list, not with its order', () => {
    const both = tag(['linux/amd64', 'linux/arm64']);
    expect(both).not.toBe(tag());
    expect(tag(['linux/arm64', 'linux/amd64'])).toBe(both);
    expect(tag(['linux/arm64'])).not.toBe(both);
    expect(tag(['linux/amd64'])).not.toBe(tag());
  });

  it('is explained by build --why, and survives the label round trip', () => {
    const before = digestInputs({ ...base, platforms: ['linux/amd64'] });
    const after = digestInputs({ ...base, platforms: ['linux/amd64', 'linux/arm64'] });
    expect(explainChange(before, after)).toEqual(['platforms changed (linux/amd64 → linux/amd64, linux/arm64)']);
    expect(explainChange(digestInputs(base), after)).toEqual(["platforms changed (the builder's own → linux/amd64, linux/arm64)"]);
    expect(labelsToDigests(digestsToLabels(after))).toEqual(after);
  });
});
