import { describe, expect, it } from 'vitest';
import { DockerIgnore, patternToRegExp } from '../../src/build/dockerignore.js';

/** The paths of `files` that the rules leave out of the context. */
const excluded = (rules: string, files: string[]) => {
  const ignore = new DockerIgnore(rules);
  return files.filter((f) => ignore.excludes(f));
};

describe('DockerIgnore', () => {
  it('has no rules for an empty file, comments or blank lines', () => {
    for (const text of ['', '\n\n', '# just a comment\n\n   \n#*.md', '.', '/']) {
      const ignore = new DockerIgnore(text);
      expect(ignore.empty).toBe(true);
      expect(ignore.excludes('README.md')).toBe(false);
    }
    expect(new DockerIgnore('# comment\r\n*.md\r\n').empty).toBe(false);
  });

  it('`*.md` matches at the context root only, as in Docker (not like .gitignore)', () => {
    expect(excluded('*.md', ['README.md', 'CHANGES.md', 'docs/guide.md', 'README.markdown', 'md'])).toEqual(['README.md', 'CHANGES.md']);
  });

  it('`**/*.log` matches at any depth, the root included', () => {
    expect(excluded('**/*.log', ['app.log', 'logs/app.log', 'a/b/c/d.log', 'app.log.1', 'logs/app.txt'])).toEqual(['app.log', 'logs/app.log', 'a/b/c/d.log']);
  });

  it('`**` in the middle spans zero or more directories', () => {
    expect(excluded('src/**/test', ['src/test', 'src/test/a.js', 'src/a/b/test/c.js', 'src/atest', 'lib/test/a.js'])).toEqual([
      'src/test',
      'src/test/a.js',
      'src/a/b/test/c.js',
    ]);
  });

  it('excluding a directory excludes everything below it', () => {
    expect(
      excluded('node_modules', [
        'node_modules/a/index.js',
        'node_modules/.bin/x',
        'node_modules',
        'node_modules_backup/x',
        'pkg/node_modules/y.js',
        'src/app.js',
      ]),
    ).toEqual(['node_modules/a/index.js', 'node_modules/.bin/x', 'node_modules']);
    expect(excluded('**/node_modules', ['node_modules/a.js', 'pkg/node_modules/y.js', 'pkg/src/y.js'])).toEqual(['node_modules/a.js', 'pkg/node_modules/y.js']);
  });

  it('`!` re-includes: *.md then !README.md', () => {
    expect(excluded('*.md\n!README.md', ['README.md', 'CHANGES.md', 'NOTES.md', 'main.go'])).toEqual(['CHANGES.md', 'NOTES.md']);
  });

  it('an exception inside an excluded directory re-includes that file only', () => {
    expect(excluded('vendor\n!vendor/keep.txt', ['vendor/keep.txt', 'vendor/drop.txt', 'vendor/sub/keep.txt'])).toEqual([
      'vendor/drop.txt',
      'vendor/sub/keep.txt',
    ]);
  });

  it('the last matching rule wins (Docker documentation examples)', () => {
    const files = ['README.md', 'README-secret.md', 'README-public.md', 'CHANGES.md'];
    // "No markdown files are included in the context except README files other than README-secret.md."
    expect(excluded('*.md\n!README*.md\nREADME-secret.md', files)).toEqual(['README-secret.md', 'CHANGES.md']);
    // "All of the README files are included. The middle line has no effect because !README*.md matches README-secret.md and comes last."
    expect(excluded('*.md\nREADME-secret.md\n!README*.md', files)).toEqual(['CHANGES.md']);
  });

  it('`*` then exceptions lists what goes in (Docker documentation)', () => {
    expect(excluded('*\n!src\n!package.json', ['package.json', 'src/index.js', 'src/lib/a.js', 'test/a.test.js', '.env', 'Makefile'])).toEqual([
      'test/a.test.js',
      '.env',
      'Makefile',
    ]);
  });

  it('Docker documentation: */temp*, */*/temp*, temp?', () => {
    const files = ['somedir/temporary.txt', 'somedir/temp/x', 'temporary.txt', 'somedir/subdir/temporary.txt', 'tempa', 'tempb', 'temp', 'tempab', 'a/tempa'];
    expect(excluded('*/temp*', files)).toEqual(['somedir/temporary.txt', 'somedir/temp/x', 'a/tempa']);
    expect(excluded('*/*/temp*', files)).toEqual(['somedir/subdir/temporary.txt']);
    expect(excluded('temp?', files)).toEqual(['tempa', 'tempb']);
  });

  it('a leading "/" and a trailing "/" change nothing', () => {
    const files = ['build/out.js', 'build', 'src/build/x.js', 'foo/bar', 'foo/bar/baz', 'bar'];
    expect(excluded('/build', files)).toEqual(excluded('build', files));
    expect(excluded('build/', files)).toEqual(['build/out.js', 'build']);
    expect(excluded('/foo/bar/', files)).toEqual(['foo/bar', 'foo/bar/baz']);
    // Cleaned like Go's filepath.Clean: "./" and ".." elements are resolved.
    expect(excluded('./foo//bar/../bar', files)).toEqual(['foo/bar', 'foo/bar/baz']);
  });

  it('`?` matches one character but never "/"; [a-c] is a class', () => {
    expect(excluded('file?.txt', ['file1.txt', 'fileA.txt', 'file.txt', 'file12.txt', 'file/.txt'])).toEqual(['file1.txt', 'fileA.txt']);
    expect(excluded('log[a-c].txt', ['loga.txt', 'logb.txt', 'logc.txt', 'logd.txt', 'logA.txt'])).toEqual(['loga.txt', 'logb.txt', 'logc.txt']);
    expect(excluded('log[!a-c].txt', ['loga.txt', 'logd.txt'])).toEqual(['logd.txt']);
    expect(excluded('*', ['a', 'dir/b'])).toEqual(['a', 'dir/b']);
  });

  it('`docs/**` excludes what is inside docs; `docs` also a file named docs', () => {
    const files = ['docs/index.md', 'docs/api/v1.md', 'docs', 'docs.txt', 'src/docs/x'];
    expect(excluded('docs/**', files)).toEqual(['docs/index.md', 'docs/api/v1.md']);
    expect(excluded('docs', files)).toEqual(['docs/index.md', 'docs/api/v1.md', 'docs']);
  });

  it('treats regular-expression characters in names literally', () => {
    expect(excluded('a+b.(c)', ['a+b.(c)', 'aab.(c)', 'a+bx(c)'])).toEqual(['a+b.(c)']);
    expect(excluded('\\*.txt', ['*.txt', 'x.txt'])).toEqual(['*.txt']);
  });

  it('trims spaces around patterns and after "!"', () => {
    expect(excluded('  *.md  \n!  README.md ', ['README.md', 'a.md'])).toEqual(['a.md']);
  });
});

describe('patternToRegExp', () => {
  it('compiles the glob forms', () => {
    expect(patternToRegExp('*.md').source).toBe('^[^/]*\\.md$');
    expect(patternToRegExp('**/*.log').test('x/y/z.log')).toBe(true);
    expect(patternToRegExp('a/**').test('a/b/c')).toBe(true);
    expect(patternToRegExp('a/**').test('a')).toBe(false);
    expect(patternToRegExp('[abc').test('[abc')).toBe(true);
  });
});
