import { execa } from 'execa';
import { describe, expect, it } from 'vitest';
import {
  LABEL_PREFIX,
  contentTag,
  digestInputs,
  digestsToLabels,
  explainChange,
  gitBlobId,
  labelsToDigests,
  sanitizeTag,
  type ImageInputs,
  type InputDigests,
} from '../../src/build/content-inputs.js';

const oid = (c: string) => c.repeat(40);

function inputs(): ImageInputs {
  return {
    dockerfile: { path: 'Dockerfile', oid: oid('d') },
    entries: [
      { path: 'Dockerfile', mode: '100644', oid: oid('d') },
      { path: 'src/main.js', mode: '100644', oid: oid('1') },
      { path: 'start', mode: '100755', oid: oid('2') },
      { path: 'www/index.html', mode: '100644', oid: oid('3') },
    ],
    args: { APP_ENV: 'production', PORT: '8080' },
    target: undefined,
    dependencyTags: { base: 'a'.repeat(32) },
  };
}

const tagOf = (i: ImageInputs) => contentTag(digestInputs(i));

/** A copy of the baseline inputs with one change applied. */
function changed(edit: (i: ImageInputs) => void): ImageInputs {
  const i = structuredClone(inputs());
  edit(i);
  return i;
}

describe('digestInputs and contentTag', () => {
  it('are deterministic: 32 hex characters, equal for equal inputs', () => {
    const tag = tagOf(inputs());
    expect(tag).toMatch(/^[0-9a-f]{32}$/);
    expect(tagOf(inputs())).toBe(tag);
    expect(digestInputs(inputs())).toEqual(digestInputs(inputs()));
  });

  it('do not depend on the order of entries, args or dependencies', () => {
    const shuffled = changed((i) => {
      i.entries.reverse();
      i.args = { PORT: '8080', APP_ENV: 'production' };
      i.dependencyTags = { base: 'a'.repeat(32) };
    });
    expect(tagOf(shuffled)).toBe(tagOf(inputs()));
    const twoDeps = (order: string[]) =>
      tagOf(
        changed((i) => {
          i.dependencyTags = Object.fromEntries(order.map((n) => [n, n.repeat(32).slice(0, 32)]));
        }),
      );
    expect(twoDeps(['base', 'tools'])).toBe(twoDeps(['tools', 'base']));
  });

  const changes: Array<[string, (i: ImageInputs) => void]> = [
    [
      'a file oid',
      (i) => {
        i.entries[1]!.oid = oid('9');
      },
    ],
    [
      'a file mode',
      (i) => {
        i.entries[1]!.mode = '100755';
      },
    ],
    [
      'a path rename',
      (i) => {
        i.entries[1]!.path = 'src/index.js';
      },
    ],
    [
      'an added file',
      (i) => {
        i.entries.push({ path: 'extra', mode: '100644', oid: oid('4') });
      },
    ],
    [
      'a removed file',
      (i) => {
        i.entries.pop();
      },
    ],
    [
      'the Dockerfile oid',
      (i) => {
        i.dockerfile.oid = oid('e');
      },
    ],
    [
      'the Dockerfile path',
      (i) => {
        i.dockerfile.path = 'Dockerfile.prod';
      },
    ],
    [
      'an arg value',
      (i) => {
        i.args.PORT = '9090';
      },
    ],
    [
      'an added arg',
      (i) => {
        i.args.DEBUG = '1';
      },
    ],
    [
      'a removed arg',
      (i) => {
        delete i.args.PORT;
      },
    ],
    [
      'an arg renamed, same value',
      (i) => {
        i.args = { APP_ENV: 'production', PORT2: '8080' };
      },
    ],
    [
      'the target',
      (i) => {
        i.target = 'runtime';
      },
    ],
    [
      'a dependency tag',
      (i) => {
        i.dependencyTags.base = 'b'.repeat(32);
      },
    ],
    [
      'an added dependency',
      (i) => {
        i.dependencyTags.tools = 'c'.repeat(32);
      },
    ],
  ];
  it.each(changes)('changing %s changes the tag', (_what, edit) => {
    expect(tagOf(changed(edit))).not.toBe(tagOf(inputs()));
  });

  it('gives every single change above a tag of its own', () => {
    const tags = new Set([tagOf(inputs()), ...changes.map(([, edit]) => tagOf(changed(edit)))]);
    expect(tags.size).toBe(changes.length + 1);
  });

  it('keeps arg values out of the digests (only a hash of name=value)', () => {
    const d = digestInputs(
      changed((i) => {
        i.args.SECRETISH = 'hunter2-value';
      }),
    );
    expect(Object.keys(d.args)).toEqual(['APP_ENV', 'PORT', 'SECRETISH']);
    expect(JSON.stringify(d)).not.toContain('hunter2-value');
  });
});

describe('explainChange', () => {
  const explain = (edit: (i: ImageInputs) => void) => explainChange(digestInputs(inputs()), digestInputs(changed(edit)));

  it('says nothing when nothing changed', () => {
    expect(explain(() => {})).toEqual([]);
  });

  it('names exactly what changed', () => {
    expect(
      explain((i) => {
        i.dockerfile.oid = oid('e');
      }),
    ).toEqual(['Dockerfile changed']);
    expect(
      explain((i) => {
        i.args.PORT = '9090';
      }),
    ).toEqual(['build arg PORT changed']);
    expect(
      explain((i) => {
        i.args.DEBUG = '1';
      }),
    ).toEqual(['build arg DEBUG added']);
    expect(
      explain((i) => {
        delete i.args.APP_ENV;
      }),
    ).toEqual(['build arg APP_ENV removed']);
    expect(
      explain((i) => {
        i.target = 'runtime';
      }),
    ).toEqual(['target changed (none → runtime)']);
    expect(
      explain((i) => {
        i.dependencyTags.base = 'b'.repeat(32);
      }),
    ).toEqual([`base image base changed (${'a'.repeat(32)} → ${'b'.repeat(32)})`]);
    expect(
      explain((i) => {
        i.dependencyTags.tools = 'c'.repeat(32);
      }),
    ).toEqual([`base image tools changed (none → ${'c'.repeat(32)})`]);
    expect(
      explain((i) => {
        i.entries[1]!.oid = oid('9');
      }),
    ).toEqual(['context files changed']);
    expect(
      explain((i) => {
        i.entries[2]!.mode = '100644';
      }),
    ).toEqual(['context files changed']);
  });

  it('lists several changes in a fixed order', () => {
    expect(
      explain((i) => {
        i.entries[1]!.oid = oid('9');
        i.args = { PORT: '1', ZED: 'z' };
        i.target = 'dev';
        i.dockerfile.oid = oid('e');
      }),
    ).toEqual([
      'Dockerfile changed',
      'target changed (none → dev)',
      'build arg APP_ENV removed',
      'build arg PORT changed',
      'build arg ZED added',
      'context files changed',
    ]);
  });
});

describe('digestsToLabels and labelsToDigests', () => {
  it('round-trip through one label', () => {
    const d = digestInputs(
      changed((i) => {
        i.target = 'runtime';
      }),
    );
    const labels = digestsToLabels(d);
    expect(Object.keys(labels)).toEqual([LABEL_PREFIX]);
    expect(labelsToDigests(labels)).toEqual(d);
    // Labels travel as strings through the Engine and back.
    expect(labelsToDigests(JSON.parse(JSON.stringify({ other: 'x', ...labels })))).toEqual(d);
  });

  it('tolerate missing and garbage labels', () => {
    expect(labelsToDigests(undefined)).toBeUndefined();
    expect(labelsToDigests(null)).toBeUndefined();
    expect(labelsToDigests({})).toBeUndefined();
    expect(labelsToDigests({ 'org.opencontainers.image.revision': 'abc' })).toBeUndefined();
    expect(labelsToDigests({ [LABEL_PREFIX]: '' })).toBeUndefined();
    expect(labelsToDigests({ [LABEL_PREFIX]: '{not json' })).toBeUndefined();
    expect(labelsToDigests({ [LABEL_PREFIX]: 'null' })).toBeUndefined();
    expect(labelsToDigests({ [LABEL_PREFIX]: '42' })).toBeUndefined();
    expect(labelsToDigests({ [LABEL_PREFIX]: '{"dockerfile":"x"}' })).toBeUndefined();
  });

  it('fill in fields an older label lacks', () => {
    const old = labelsToDigests({ [LABEL_PREFIX]: '{"files":"f00d"}' });
    expect(old).toEqual<InputDigests>({ dockerfile: '', files: 'f00d', args: {}, target: '', deps: {} });
    // And such a label still explains a change rather than throwing.
    expect(explainChange(old!, digestInputs(inputs()))).toContain('context files changed');
  });
});

describe('gitBlobId', () => {
  const cases: Array<[string, Buffer]> = [
    ['empty', Buffer.alloc(0)],
    ['text', Buffer.from('hello, skiff\n')],
    ['binary with NUL bytes', Buffer.from([0, 1, 2, 255, 0, 10, 13])],
    ['multi-byte UTF-8', Buffer.from('grüße → 世界\n')],
  ];
  it.each(cases)('equals git hash-object for %s content', async (_what, content) => {
    const r = await execa('git', ['hash-object', '--stdin'], { input: content });
    expect(gitBlobId(content)).toBe(r.stdout.trim());
  });
});

describe('sanitizeTag', () => {
  it.each([
    ['feature/Foo bar', 'feature-Foo-bar'],
    ['main', 'main'],
    ['v1.2.3', 'v1.2.3'],
    ['release_2024.01', 'release_2024.01'],
    ['.hidden', 'hidden'],
    ['-x', 'x'],
    ['/feature', 'feature'],
    ['fix#12@home', 'fix-12-home'],
    ['ünïcode', 'n-code'],
    ['', 'untagged'],
    ['...', 'untagged'],
  ])('%j → %j', (input, expected) => {
    expect(sanitizeTag(input)).toBe(expected);
  });

  it('produces names Docker accepts, at most 128 characters', () => {
    const dockerTag = /^[A-Za-z0-9_][A-Za-z0-9_.-]{0,127}$/;
    for (const name of ['feature/Foo bar', 'a'.repeat(300), `-${'b/'.repeat(100)}`, '..--..x', 'ünïcode']) {
      expect(sanitizeTag(name)).toMatch(dockerTag);
    }
    expect(sanitizeTag('a'.repeat(300))).toHaveLength(128);
  });
});
