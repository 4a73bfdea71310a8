// Paths, files and the CLI (issue 18, items 1, 6, 7, 12, 13, 14, 15): a name
// from skiff.yaml or a template never becomes a path outside its folder, no
// write under the repository follows a symlink the repository commits, a
// closed terminal leaves no plain secret behind, .skiff/ ignores itself, and
// the help reads as the user would type. Repositories are copies of
// fixtures/bad-inputs/base (one small image), made by the corpus's caseRepo.
import { existsSync } from 'node:fs';
import { lstat, mkdir, mkdtemp, readdir, readFile, rm, stat, symlink, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { execa } from 'execa';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { caseRepo, corpusEnv, runSkiff, type CorpusEdit } from '../../bench/reliability-corpus.mjs';
import { kubectl, requireCluster, uniqueSuffix } from '../helpers/cluster.js';
import { git, repoRoot, skiffBin, uniqueRegistry } from '../helpers/skiff.js';

const registry = uniqueRegistry();
const dirs: string[] = [];
let env: Record<string, string | undefined>;
let outside: string;
let home: string;
let key: string;
let namespace: string | undefined;

const VICTIM = 'precious, not to be overwritten\n';
const victim = () => join(outside, 'victim');

async function tempDir(prefix: string): Promise<string> {
  const dir = await mkdtemp(join(tmpdir(), prefix));
  dirs.push(dir);
  return dir;
}
function repo(id: string, edits: CorpusEdit[] = [], parent?: string): string {
  const dir = caseRepo({ id, command: [], edits, where: '-', message: '' }, parent);
  dirs.push(dir);
  return dir;
}
const run = (dir: string, args: string[], extra: Record<string, string | undefined> = {}) =>
  runSkiff(dir, args, { ...env, HOME: home, SKIFF_SECRET_KEY: key, ...extra }, 300_000);
/** The one line skiff printed last on stderr. */
const lastLine = (stderr: string) => stderr.trimEnd().split('\n').at(-1) ?? '';

beforeAll(async () => {
  env = corpusEnv(registry);
  outside = await tempDir('skiff-outside-');
  home = await tempDir('skiff-home-');
  key = run(await tempDir('skiff-key-'), ['secret', 'generate-key']).stdout.trim();
  expect(key).toMatch(/^[0-9a-f]{64}$/);
  // Render, test and deploy need the image in the registry; every repository below builds the same one.
  const built = run(repo('paths-base'), ['build', '--push']);
  expect(built.exitCode, built.stderr).toBe(0);
}, 600_000);

afterAll(async () => {
  if (namespace) await kubectl(['delete', 'namespace', namespace, '--wait=false', '--ignore-not-found'], { allowFailure: true });
  for (const d of dirs.splice(0)) await rm(d, { recursive: true, force: true });
});

/** The outside folder holding only the victim file, as it was. */
async function resetVictim() {
  await rm(outside, { recursive: true, force: true });
  await mkdir(outside);
  await writeFile(victim(), VICTIM);
}

describe('a name never becomes a path outside its folder', () => {
  it('a test named "../../..": exit 2 at skiff.yaml:8:3, and the folder it names is not removed', async () => {
    const parent = await tempDir('skiff-parent-');
    await writeFile(join(parent, 'keep'), 'still here\n');
    // .skiff/reports/../../.. is the repository's parent folder.
    const dir = repo('test-name', [{ file: 'skiff.yaml', replace: ['  unit:\n', '  "../../..":\n'] }], parent);
    const r = run(dir, ['test']);
    expect(r.exitCode, r.stderr).toBe(2);
    expect(r.stderr.trimEnd().split('\n')).toEqual([
      'error: skiff.yaml:8:3: test name "../../.." must be at most 63 letters, digits, ".", "_" or "-", starting with a letter or digit (it names .skiff/reports/<test>)',
    ]);
    expect(await readFile(join(parent, 'keep'), 'utf8')).toBe('still here\n');
    expect(existsSync(join(dir, 'skiff.yaml'))).toBe(true);
  });

  it('a kind that is a path ("../../x"), with render --output-dir: exit 2 naming the template, no file written', async () => {
    const parent = await tempDir('skiff-parent-');
    const dir = repo('kind-path', [{ file: '.kube/x.yaml', write: 'apiVersion: v1\nkind: ../../x\nmetadata: { name: web-x }\n' }], parent);
    const r = run(dir, ['render', 'staging', '--output-dir', 'out/manifests']);
    expect(r.exitCode, r.stderr).toBe(2);
    expect(lastLine(r.stderr)).toBe('error: .kube/x.yaml:1: kind "../../x" is not a kind: letters and digits, starting with a letter (e.g. ConfigMap)');
    expect(existsSync(join(dir, 'out'))).toBe(false);
    expect((await readdir(parent)).filter((f) => f.endsWith('.yaml'))).toEqual([]);
  });
});

describe('no write follows a symlink the repository commits', () => {
  it('skiff test: a symlink at .skiff/reports/junit.xml, .skiff/reports or .skiff is refused before any test runs; the outside is unchanged', async () => {
    for (const [link, target, shown] of [
      ['.skiff/reports/junit.xml', 'victim', '.skiff/reports/junit.xml'],
      ['.skiff/reports', '', '.skiff/reports'],
      ['.skiff', '', '.skiff'],
    ] as const) {
      await resetVictim();
      const dir = repo('symlink-test', [{ file: link, symlink: join(outside, target) }]);
      const r = run(dir, ['test']);
      expect(r.exitCode, r.stderr).toBe(2);
      expect(r.stderr.trimEnd().split('\n')).toEqual([
        `error: ${shown} is a symbolic link; skiff does not write through symbolic links in the repository: remove it and run again`,
      ]);
      expect(await readdir(outside)).toEqual(['victim']);
      expect(await readFile(victim(), 'utf8')).toBe(VICTIM);
    }
  });

  it('skiff render --output-dir: a folder the repository commits as a symlink is refused, also when named through a symlinked spelling of the repository', async () => {
    for (const viaLink of [false, true]) {
      await resetVictim();
      const dir = repo('symlink-render', [{ file: 'rendered', symlink: outside }]);
      let cwd = dir;
      if (viaLink) {
        cwd = join(await tempDir('skiff-spelling-'), 'repo');
        await symlink(dir, cwd);
      }
      const r = run(cwd, ['render', 'staging', '--output-dir', 'rendered']);
      expect(r.exitCode, r.stderr).toBe(2);
      expect(lastLine(r.stderr)).toBe(
        'error: rendered is a symbolic link; skiff does not write through symbolic links in the repository: remove it and run again',
      );
      expect(await readdir(outside)).toEqual(['victim']);
    }
  });

  it('skiff deploy: a symlink at .skiff/deploy.env is refused before anything is applied; the outside file is unchanged', async () => {
    await resetVictim();
    const dir = repo('symlink-deploy', [{ file: '.skiff/deploy.env', symlink: victim() }]);
    // The check comes before the cluster is contacted: an unreachable kubeconfig shows it.
    const r = run(dir, ['deploy', 'staging'], { KUBECONFIG: join(outside, 'no-such-kubeconfig') });
    expect(r.exitCode, r.stderr).toBe(2);
    expect(lastLine(r.stderr)).toBe(
      'error: .skiff/deploy.env is a symbolic link; skiff does not write through symbolic links in the repository: remove it and run again',
    );
    expect(await readFile(victim(), 'utf8')).toBe(VICTIM);
  });

  it('secret edit and rotate-key: symlinks at the old temporary names are not followed; a secret file that is a symlink is refused', async () => {
    await resetVictim();
    const dir = repo('symlink-secret', [
      { file: '.kube/secret-values.yaml', write: 'db:\n  password: plain-pass\n' },
      { file: '.kube/secret-values.yaml.skiff-tmp', symlink: victim() },
      { file: '.kube/secret-values.yaml.skiff-rotate', symlink: victim() },
    ]);
    const file = join(dir, '.kube/secret-values.yaml');
    // A plain value is encrypted on save, so `true` as the editor writes the file.
    const edited = run(dir, ['secret', 'edit', '.kube/secret-values.yaml'], { EDITOR: 'true' });
    expect(edited.exitCode, edited.stderr).toBe(0);
    expect((await lstat(file)).isFile()).toBe(true);
    const encrypted = await readFile(file, 'utf8');
    expect(encrypted).toMatch(/^ {2}password: skiff:v\d+:/m);
    expect(await readFile(victim(), 'utf8')).toBe(VICTIM);

    const newKey = run(dir, ['secret', 'generate-key']).stdout.trim();
    const rotated = run(dir, ['secret', 'rotate-key'], { SKIFF_OLD_SECRET_KEY: key, SKIFF_SECRET_KEY: newKey });
    expect(rotated.exitCode, rotated.stderr).toBe(0);
    expect((await lstat(file)).isFile()).toBe(true);
    expect(await readFile(file, 'utf8')).not.toBe(encrypted);
    expect(await readFile(victim(), 'utf8')).toBe(VICTIM);
    // The links are left as they were, and no temporary file is left beside the secret file.
    expect((await readdir(join(dir, '.kube'))).filter((f) => f.includes('.skiff-')).sort()).toEqual([
      'secret-values.yaml.skiff-rotate',
      'secret-values.yaml.skiff-tmp',
    ]);

    const linked = repo('symlink-secret-file', [{ file: '.kube/secret-values.yaml', symlink: victim() }]);
    const r = run(linked, ['secret', 'edit', '.kube/secret-values.yaml'], { EDITOR: 'true' });
    expect(r.exitCode, r.stderr).toBe(2);
    expect(lastLine(r.stderr)).toBe(
      'error: .kube/secret-values.yaml is a symbolic link; skiff does not write through symbolic links in the repository: remove it and run again',
    );
    expect(await readFile(victim(), 'utf8')).toBe(VICTIM);
  });
});

describe('secret edit: a closed terminal leaves no plain copy', () => {
  it.each(['SIGHUP', 'SIGQUIT'] as const)('%s while the editor is open: exit 130, the plain copy removed, the file untouched', async (signal) => {
    const dir = repo(`signal-${signal}`, [{ file: '.kube/secret-values.yaml', write: 'db:\n  password: plain-pass\n' }]);
    const file = join(dir, '.kube/secret-values.yaml');
    const before = await readFile(file, 'utf8');
    const shown = join(outside, `editor-file-${signal}`);
    const editor = join(outside, `slow-editor-${signal}.sh`);
    await writeFile(editor, `#!/bin/sh\necho "$1" > "${shown}"\nexec sleep 30\n`, { mode: 0o755 });
    const child = execa(skiffBin, ['secret', 'edit', '.kube/secret-values.yaml'], {
      cwd: dir,
      env: { ...env, HOME: home, SKIFF_SECRET_KEY: key, EDITOR: editor },
      extendEnv: false,
      reject: false,
      all: true,
    });
    const started = Date.now();
    while (!existsSync(shown) || !(await readFile(shown, 'utf8')).trim()) {
      if (Date.now() - started > 15_000) throw new Error('the editor did not start');
      await new Promise((r) => setTimeout(r, 50));
    }
    const copy = (await readFile(shown, 'utf8')).trim();
    expect(existsSync(copy)).toBe(true);
    child.kill(signal);
    const done = await child;
    expect(done.signal, done.all).toBeUndefined();
    expect(done.exitCode, done.all).toBe(130);
    expect(existsSync(copy)).toBe(false);
    expect(await readFile(file, 'utf8')).toBe(before);
  });
});

describe('the help', () => {
  it('the rotate-key example, run as printed, leaves the new key saved (mode 600) and the values readable with it', async () => {
    const help = runSkiff(repoRoot, ['secret', 'rotate-key', '--help'], env);
    expect(help.exitCode, help.stderr).toBe(0);
    const examples = help.stdout.split('\nExamples:\n')[1] ?? '';
    const first = examples.split('\n\n')[0]!.replace(/^ {2}/gm, '');
    expect(first).toContain('skiff secret rotate-key');

    const dir = repo('rotate-example', [{ file: '.kube/secret-values.yaml', write: 'db:\n  password: plain-pass\n' }]);
    const keyFile = join(dir, '.skiff_secret_key');
    await writeFile(keyFile, `${key}\n`, { mode: 0o600 });
    const sh = { ...env, HOME: home, SKIFF_SECRET_KEY: undefined, PATH: `${join(repoRoot, 'bin')}:${env.PATH}` };
    expect(runSkiff(dir, ['secret', 'edit', '.kube/secret-values.yaml'], { ...sh, EDITOR: 'true' }).exitCode).toBe(0);
    const r = await execa('sh', ['-ec', first], { cwd: dir, env: sh, extendEnv: false, reject: false, all: true });
    expect(r.exitCode, `${first}\n${r.all}`).toBe(0);

    const saved = (await readFile(keyFile, 'utf8')).trim();
    expect(saved).toMatch(/^[0-9a-f]{64}$/);
    expect(saved).not.toBe(key);
    expect((await stat(keyFile)).mode & 0o777).toBe(0o600);
    // Whoever has the saved key can read the rotated values.
    const ciphertext = /password: (\S+)/.exec(await readFile(join(dir, '.kube/secret-values.yaml'), 'utf8'))![1]!;
    const opened = await execa(skiffBin, ['secret', 'decrypt', 'db.password'], { cwd: dir, env: sh, extendEnv: false, input: ciphertext, reject: false });
    expect(opened.exitCode, opened.stderr).toBe(0);
    expect(opened.stdout).toBe('plain-pass');
  });

  it('the rotate-key example, run as printed, keeps the old key file when the rotation fails', async () => {
    const help = runSkiff(repoRoot, ['secret', 'rotate-key', '--help'], env);
    const first = (help.stdout.split('\nExamples:\n')[1] ?? '').split('\n\n')[0]!.replace(/^ {2}/gm, '');
    const dir = repo('rotate-example-fails', [
      { file: '.kube/secret-values.yaml', write: 'db:\n  password: plain-pass\n' },
      { file: '.kube/secret-values.staging.yaml', write: 'db:\n  password: other-pass\n' },
    ]);
    const keyFile = join(dir, '.skiff_secret_key');
    await writeFile(keyFile, `${key}\n`, { mode: 0o600 });
    const sh = { ...env, HOME: home, SKIFF_SECRET_KEY: undefined, PATH: `${join(repoRoot, 'bin')}:${env.PATH}` };
    expect(runSkiff(dir, ['secret', 'edit', '.kube/secret-values.yaml'], { ...sh, EDITOR: 'true' }).exitCode).toBe(0);
    // A value that neither the old key nor the new one opens: rotate-key refuses, and changes nothing.
    const stranger = run(dir, ['secret', 'generate-key']).stdout.trim();
    expect(runSkiff(dir, ['secret', 'edit', '.kube/secret-values.staging.yaml'], { ...sh, EDITOR: 'true', SKIFF_SECRET_KEY: stranger }).exitCode).toBe(0);
    const r = await execa('sh', ['-c', first], { cwd: dir, env: sh, extendEnv: false, reject: false, all: true });
    expect(r.exitCode, r.all).not.toBe(0);
    expect((await readFile(keyFile, 'utf8')).trim()).toBe(key);
    // The new key is still where the example saved it.
    expect((await readFile(join(home, '.skiff_new_secret_key'), 'utf8')).trim()).toMatch(/^[0-9a-f]{64}$/);
  });

  it('every command: a duration default reads as the user would type it (5m), never in milliseconds', () => {
    const helpOf = (cmd: string[]) => {
      const r = runSkiff(repoRoot, [...cmd, '--help'], env);
      expect(r.exitCode, r.stderr).toBe(0);
      return r.stdout;
    };
    const commandsIn = (help: string) =>
      // The block of command lines only: it ends at the first blank line.
      (help.split('\nCommands:\n')[1] ?? '')
        .split('\n\n')[0]!
        .split('\n')
        .map((l) => /^ {2}(\S+)/.exec(l)?.[1])
        .filter((c): c is string => c !== undefined && c !== 'help');
    const pages: Array<[string, string]> = [];
    const walk = (cmd: string[]) => {
      const help = helpOf(cmd);
      pages.push([cmd.join(' ') || 'skiff', help]);
      if (cmd.length < 2) for (const sub of commandsIn(help)) walk([...cmd, sub]);
    };
    walk([]);
    expect(pages.map(([c]) => c)).toEqual(expect.arrayContaining(['deploy', 'rollback', 'dismiss', 'secret rotate-key']));
    // One entry per option, its wrapped description lines joined (commander wraps at 80 columns).
    const options = (help: string) => {
      const out: string[] = [];
      let open = false;
      for (const line of help.split('\n')) {
        if (/^ {2}-/.test(line)) out.push(line.trim());
        else if (open && /^ {4,}\S/.test(line)) out[out.length - 1] += ` ${line.trim()}`;
        open = /^ {2}-/.test(line) || (open && /^ {4,}\S/.test(line));
      }
      return out;
    };
    const defaults = pages.flatMap(([cmd, help]) =>
      options(help).flatMap((o) => {
        const value = /\(default: ([^)]*)\)/.exec(o)?.[1];
        return value === undefined ? [] : [{ cmd, flag: o.split(/\s{2,}/)[0]!, value }];
      }),
    );
    const durations = defaults.filter((d) => d.flag.includes('<duration>'));
    expect(durations.map((d) => `${d.cmd} ${d.flag.split(' ')[0]}`)).toEqual(
      expect.arrayContaining(['deploy --lock-timeout', 'rollback --lock-timeout', 'dismiss --lock-timeout', 'cleanup --min-age']),
    );
    for (const d of durations) expect(d.value, `${d.cmd} ${d.flag}`).toMatch(/\b\d+(\.\d+)?(ms|s|m|h)\b/);
    // No default anywhere is a bare count of milliseconds (a 4+ digit number).
    for (const d of defaults) expect(d.value, `${d.cmd} ${d.flag}`).not.toMatch(/^\d{4,}$/);
  });
});

describe('.skiff/ ignores itself', () => {
  it('after render --output-dir .skiff/…, test and deploy in a repository without a .gitignore, git status shows nothing of .skiff', async () => {
    const dir = repo('gitignore');
    expect(existsSync(join(dir, '.gitignore'))).toBe(false);
    const porcelain = async () => (await git(dir, 'status', '--porcelain', '--untracked-files=all')).stdout;

    const rendered = run(dir, ['render', 'staging', '--output-dir', '.skiff/rendered']);
    expect(rendered.exitCode, rendered.stderr).toBe(0);
    expect((await readdir(join(dir, '.skiff/rendered'))).length).toBeGreaterThan(0);
    expect(await porcelain()).toBe('');

    await rm(join(dir, '.skiff'), { recursive: true });
    const tested = run(dir, ['test']);
    expect(tested.exitCode, tested.stderr).toBe(0);
    expect(existsSync(join(dir, '.skiff/reports/junit.xml'))).toBe(true);
    expect(await readFile(join(dir, '.skiff/.gitignore'), 'utf8')).toMatch(/^\*$/m);
    expect(await porcelain()).toBe('');

    await requireCluster();
    await rm(join(dir, '.skiff'), { recursive: true });
    namespace = `paths-${uniqueSuffix()}`;
    const deployed = run(dir, ['deploy', 'staging', '--namespace', namespace, '--timeout', '3m']);
    expect(deployed.exitCode, deployed.stderr).toBe(0);
    expect(await readFile(join(dir, '.skiff/deploy.env'), 'utf8')).toContain(`SKIFF_NAMESPACE=${namespace}`);
    expect(await porcelain()).toBe('');
  });
});
