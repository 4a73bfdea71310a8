// Encrypted secret values on the real cluster: a copy of fixtures/hello whose
// db.password and upstream.auth live in an encrypted .kube/secret-values.yaml
// and whose app.conf is an encrypted file under .kube/secret/. The tests run
// in order, like a team's day: deploy, a tampered file, a key rotation, a
// werf value, a rollback; then everything the cycle wrote is searched for the
// key and the plain values.
import { randomBytes } from 'node:crypto';
import { existsSync } from 'node:fs';
import { lstat, mkdir, readdir, readFile, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { gunzipSync } from 'node:zlib';
import { execa } from 'execa';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { kubeconfigPath, kubectl, kubectlJson, requireCluster, uniqueSuffix } from '../helpers/cluster.js';
import { commitAll, editFile, fixtureRepo, git, removeTempDirs, skiff, skiffBin, uniqueRegistry, type SkiffRun } from '../helpers/skiff.js';

const random = () => randomBytes(9).toString('base64url');
const DB_PASSWORD = `db-pass-${random()}`;
const UPSTREAM_AUTH = `upstream-${random()}`; // under a key that does not look secret
const APP_CONF = `token=conf-${random()}\n`;
// werf's format (version 16, AES-128-CBC), made with OpenSSL:
//   K=00112233445566778899aabbccddeeff IV=0f0e0d0c0b0a09080706050403020100
//   echo "1000$IV$(printf %s 'postgres-pass-from-werf' | openssl enc -aes-128-cbc -K $K -iv $IV | xxd -p | tr -d '\n')"
const WERF_KEY = '00112233445566778899aabbccddeeff';
const WERF_VALUE = '10000f0e0d0c0b0a090807060504030201000cbf7bed3ea988e9afa0d832e65e08de90a903584d4fc7304c1dee430a0f4557';
const WERF_PLAIN = 'postgres-pass-from-werf';

let dir: string;
let home: string;
let registry: string;
let namespace: string;
let key: string;
let newKey = '';
const outputs: string[] = [];
const startedAt = Date.now();
let tempBefore: Set<string>;
let stopWatching: () => Promise<string[]>;

/** Samples every process's command line until stopped, and returns those that held one of the needles. */
function watchCommandLines(needles: () => string[]): () => Promise<string[]> {
  const hits = new Set<string>();
  let stop = false;
  const loop = (async () => {
    while (!stop) {
      for (const pid of await readdir('/proc').catch(() => [] as string[])) {
        if (!/^\d+$/.test(pid) || String(process.pid) === pid) continue;
        const cmd = await readFile(`/proc/${pid}/cmdline`, 'utf8').catch(() => '');
        for (const n of needles()) if (n && cmd.includes(n)) hits.add(cmd.replace(/\0/g, ' ').slice(0, 60));
      }
      await new Promise((r) => setTimeout(r, 100));
    }
  })();
  return async () => {
    stop = true;
    await loop;
    return [...hits];
  };
}

const env = (extra: Record<string, string | undefined> = {}) => ({
  KUBECONFIG: kubeconfigPath(),
  SKIFF_REGISTRY: registry,
  SKIFF_SECRET_KEY: key,
  HOME: home,
  ...extra,
});
async function run(args: string[], extra: Record<string, string | undefined> = {}, input?: string): Promise<SkiffRun> {
  let r: SkiffRun;
  if (input === undefined) r = await skiff(args, { cwd: dir, env: env(extra) });
  else {
    const e = await execa(skiffBin, args, {
      cwd: dir,
      env: { ...process.env, CI: undefined, GITLAB_CI: undefined, NO_COLOR: '1', ...env(extra) },
      extendEnv: false,
      input,
      reject: false,
      all: true,
    });
    r = { exitCode: e.exitCode ?? -1, stdout: e.stdout, stderr: e.stderr, all: e.all ?? '' };
  }
  outputs.push(r.all);
  return r;
}
const deploy = (...args: string[]) => run(['deploy', 'staging', '--namespace', namespace, '--timeout', '3m', ...args]);
const secretData = async () => {
  const s = await kubectlJson(['-n', namespace, 'get', 'secret', 'hello-db']);
  return Object.fromEntries(Object.entries(s.data as Record<string, string>).map(([k, v]) => [k, Buffer.from(v, 'base64').toString()]));
};
const history = async () => {
  const r = await run(['history', 'staging', '--namespace', namespace, '-o', 'json']);
  expect(r.exitCode, r.all).toBe(0);
  return JSON.parse(r.stdout) as Array<{ revision: number; status: string }>;
};
async function encrypt(keyPath: string, value: string, extra: Record<string, string> = {}): Promise<string> {
  const r = await run(['secret', 'encrypt', keyPath], extra, value);
  expect(r.exitCode, r.all).toBe(0);
  return r.stdout.trim();
}

async function topLevel(path: string): Promise<string[]> {
  try {
    return (await readdir(path)).map((n) => join(path, n));
  } catch {
    return [];
  }
}

beforeAll(async () => {
  await requireCluster();
  tempBefore = new Set([...(await topLevel(tmpdir())), ...(await topLevel('/dev/shm'))]);
  dir = await fixtureRepo('hello');
  home = join(dir, '.test-home'); // no ~/.skiff/secret_key of the machine's user
  registry = uniqueRegistry();
  namespace = `hello-${uniqueSuffix()}`;
  const generated = await skiff(['secret', 'generate-key'], { cwd: dir, env: { HOME: home } });
  expect(generated.exitCode, generated.all).toBe(0);
  key = generated.stdout.trim();
  expect(key).toMatch(/^[0-9a-f]{64}$/);
  stopWatching = watchCommandLines(() => [key, newKey, DB_PASSWORD, UPSTREAM_AUTH, APP_CONF.trim(), WERF_KEY, WERF_PLAIN]);
  await writeFile(
    join(dir, '.kube', 'secret-values.yaml'),
    `# encrypted: skiff secret edit .kube/secret-values.yaml\ndb:\n  password: ${await encrypt('db.password', DB_PASSWORD)}\nupstream:\n  auth: ${await encrypt('upstream.auth', UPSTREAM_AUTH)}\n`,
  );
  const conf = await run(['secret', 'encrypt', '--file', 'app.conf'], {}, APP_CONF);
  expect(conf.exitCode, conf.all).toBe(0);
  await mkdir(join(dir, '.kube', 'secret'));
  await writeFile(join(dir, '.kube', 'secret', 'app.conf'), conf.stdout);
  await editFile(
    dir,
    '.kube/secret.yaml.ejs',
    (t) => `${t}  UPSTREAM_AUTH: <%= quote(values.upstream.auth) %>\n  APP_CONF: <%= quote(secretFile('app.conf')) %>\n`,
  );
  // A test that prints its container's environment.
  await editFile(dir, 'skiff.yaml', (t) =>
    t.replace('\nenvironments:', '\n  envdump:\n    image: app\n    command: ["sh", "-c", "env; echo envdump-done"]\n\nenvironments:'),
  );
  await commitAll(dir, 'secrets');
  const build = await run(['build', '--push']);
  expect(build.exitCode, build.all).toBe(0);
});

afterAll(async () => {
  await stopWatching?.();
  await kubectl(['delete', 'namespace', namespace, '--wait=false', '--ignore-not-found'], { allowFailure: true });
  await removeTempDirs();
});

describe('secret values on a real cluster', () => {
  it('the repository holds ciphertext only', async () => {
    const values = (await git(dir, 'show', 'HEAD:.kube/secret-values.yaml')).stdout;
    expect(values).toMatch(/^ {2}password: skiff:v2:[0-9a-f]{8}:[A-Za-z0-9_-]+$/m);
    const all = (await git(dir, 'log', '-p', '--all')).stdout;
    for (const plain of [DB_PASSWORD, UPSTREAM_AUTH, APP_CONF.trim(), key]) expect(all).not.toContain(plain);
  });

  it('without a key: exit 2 naming the file and where the key is looked for; nothing is rendered or applied', async () => {
    const r = await run(['deploy', 'staging', '--namespace', namespace], { SKIFF_SECRET_KEY: undefined });
    expect(r.exitCode, r.all).toBe(2);
    expect(r.stderr.trim().split('\n').at(-1)).toBe(
      'error: .kube/secret-values.yaml needs the secret key, and there is none: set SKIFF_SECRET_KEY, or write the key to .skiff_secret_key at the repository root (mode 600, not committed) or to ~/.skiff/secret_key',
    );
    expect((await kubectl(['get', 'namespace', namespace], { allowFailure: true })).exitCode).not.toBe(0);
  });

  it('deploys the decrypted values into the Secret; render masks them unless --show-secrets', async () => {
    const r = await deploy();
    expect(r.exitCode, r.all).toBe(0);
    expect((await history()).map((h) => `${h.revision} ${h.status}`)).toEqual(['1 deployed']);
    expect(await secretData()).toEqual({ DATABASE_PASSWORD: DB_PASSWORD, UPSTREAM_AUTH, APP_CONF });
    const masked = await run(['render', 'staging', '--namespace', namespace]);
    expect(masked.exitCode, masked.all).toBe(0);
    expect(masked.stdout).toMatch(/UPSTREAM_AUTH: \(masked sha256:[0-9a-f]{12}\)/);
    const shown = await run(['render', 'staging', '--namespace', namespace, '--show-secrets']);
    expect(shown.stdout).toContain(DB_PASSWORD);
    outputs.pop(); // the one output that prints them, on purpose
  });

  it('a tampered value: exit 2 naming file, line and key path; nothing is applied', async () => {
    const file = join(dir, '.kube', 'secret-values.yaml');
    const good = await readFile(file, 'utf8');
    await writeFile(
      file,
      good.replace(/(auth: skiff:v2:[0-9a-f]{8}:.{10})(.)/, (_, p: string, c: string) => p + (c === 'x' ? 'y' : 'x')),
    );
    await commitAll(dir, 'tampered');
    const r = await deploy();
    expect(r.exitCode, r.all).toBe(2);
    expect(r.stderr.trim().split('\n').at(-1)).toMatch(/^error: \.kube\/secret-values\.yaml:5: upstream\.auth: it fails authentication: /);
    expect((await history()).map((h) => h.revision)).toEqual([1]);
    await writeFile(file, good);
    await commitAll(dir, 'restored');
  });

  it('skiff secret edit through $EDITOR: the changed value only, the plain copy gone; an interrupted edit leaves nothing', async () => {
    const file = join(dir, '.kube/secret-values.yaml');
    const before = await readFile(file, 'utf8');
    const editor = join(dir, '.test-editor.sh');
    const slow = join(dir, '.test-slow-editor.sh');
    const shown = join(dir, '.test-editor-file');
    try {
      // The new value reaches the editor in its environment, so no file of the test holds it.
      await writeFile(editor, `#!/bin/sh\necho "$1" > "${shown}"\nsed -i "s/^  auth: .*/  auth: $NEW_AUTH/" "$1"\n`, { mode: 0o755 });
      const r = await run(['secret', 'edit', '.kube/secret-values.yaml'], { EDITOR: editor, NEW_AUTH: `${UPSTREAM_AUTH}-v2` });
      expect(r.exitCode, r.all).toBe(0);
      expect(r.stderr).toMatch(/\.kube\/secret-values\.yaml: encrypted upstream\.auth; 1 unchanged value kept its ciphertext/);
      const after = await readFile(file, 'utf8');
      const lineOf = (t: string, k: string) => t.split('\n').find((l) => l.startsWith(`  ${k}:`));
      expect(lineOf(after, 'password')).toBe(lineOf(before, 'password'));
      expect(lineOf(after, 'auth')).not.toBe(lineOf(before, 'auth'));
      expect(after).not.toContain(UPSTREAM_AUTH);
      const copy = (await readFile(shown, 'utf8')).trim();
      if (existsSync('/dev/shm')) expect(copy).toMatch(/^\/dev\/shm\/skiff-secret-/);
      expect(existsSync(copy)).toBe(false);
      await writeFile(file, before);

      // SIGTERM while the editor is open: the editor is stopped, the copy removed, the file untouched.
      await writeFile(slow, `#!/bin/sh\necho "$1" > "${shown}"\nexec sleep 30\n`, { mode: 0o755 });
      const child = execa(skiffBin, ['secret', 'edit', '.kube/secret-values.yaml'], {
        cwd: dir,
        env: { ...process.env, ...env({ EDITOR: slow }) },
        reject: false,
        all: true,
      });
      const started = Date.now();
      while ((await readFile(shown, 'utf8')).trim() === copy) {
        if (Date.now() - started > 15_000) throw new Error('the editor did not start');
        await new Promise((r) => setTimeout(r, 50));
      }
      const slowCopy = (await readFile(shown, 'utf8')).trim();
      expect(existsSync(slowCopy)).toBe(true);
      child.kill('SIGTERM');
      const done = await child;
      outputs.push(done.all ?? '');
      expect(done.exitCode, done.all).toBe(130);
      expect(existsSync(slowCopy)).toBe(false);
      expect(Date.now() - started).toBeLessThan(20_000); // the editor was stopped, not waited for
      expect(await readFile(file, 'utf8')).toBe(before);
    } finally {
      await writeFile(file, before);
      await execa('rm', ['-f', editor, slow, shown]);
    }
  });

  it('rotate-key, then a redeploy changes nothing in the cluster', async () => {
    // A deploy of HEAD first (the tests before moved it): the pod template carries the commit.
    const baseline = await deploy();
    expect(baseline.exitCode, baseline.all).toBe(0);
    const generated = await run(['secret', 'generate-key']);
    newKey = generated.stdout.trim();
    outputs.pop(); // prints the new key, on purpose
    const secretBefore = await kubectlJson(['-n', namespace, 'get', 'secret', 'hello-db']);
    const configBefore = await kubectlJson(['-n', namespace, 'get', 'configmap', 'hello-config']);
    const deploymentBefore = await kubectlJson(['-n', namespace, 'get', 'deployment', 'hello-app']);
    const rotated = await run(['secret', 'rotate-key'], { SKIFF_OLD_SECRET_KEY: key, SKIFF_SECRET_KEY: newKey });
    expect(rotated.exitCode, rotated.all).toBe(0);
    expect(rotated.stderr).toMatch(/\.kube\/secret-values\.yaml: 2 re-encrypted/);
    expect(rotated.stderr).toMatch(/\.kube\/secret\/app\.conf: 1 re-encrypted/);
    const changed = (await git(dir, 'status', '--porcelain')).stdout;
    expect(changed).toMatch(/\.kube\/secret-values\.yaml/);
    // The old key opens nothing any more.
    const old = await run(['render', 'staging', '--namespace', namespace, '--dev']);
    expect(old.exitCode).toBe(2);
    expect(old.stderr).toMatch(/encrypted with another key/);
    // The working tree (--dev) with the rotated files: the same objects, the same commit.
    const diff = await run(['diff', 'staging', '--namespace', namespace, '--dev', '--exit-code'], { SKIFF_SECRET_KEY: newKey });
    expect(diff.exitCode, diff.all).toBe(0);
    const r = await run(['deploy', 'staging', '--namespace', namespace, '--timeout', '3m', '--dev'], { SKIFF_SECRET_KEY: newKey });
    expect(r.exitCode, r.all).toBe(0);
    const secretAfter = await kubectlJson(['-n', namespace, 'get', 'secret', 'hello-db']);
    expect(secretAfter.data).toEqual(secretBefore.data);
    expect(secretAfter.metadata.resourceVersion).toBe(secretBefore.metadata.resourceVersion);
    expect((await kubectlJson(['-n', namespace, 'get', 'configmap', 'hello-config'])).metadata.resourceVersion).toBe(configBefore.metadata.resourceVersion);
    expect((await kubectlJson(['-n', namespace, 'get', 'deployment', 'hello-app'])).metadata.generation).toBe(deploymentBefore.metadata.generation);
    await commitAll(dir, 'rotated');
    key = newKey;
  });

  it("a werf value deploys with WERF_SECRET_KEY, and rotate-key --from-werf makes it skiff's", async () => {
    await writeFile(join(dir, '.kube', 'secret-values.staging.yaml'), `db:\n  password: ${WERF_VALUE}\n`);
    await commitAll(dir, 'a value from werf');
    const r = await run(['deploy', 'staging', '--namespace', namespace, '--timeout', '3m'], { WERF_SECRET_KEY: WERF_KEY });
    expect(r.exitCode, r.all).toBe(0);
    expect((await secretData()).DATABASE_PASSWORD).toBe(WERF_PLAIN);
    const converted = await run(['secret', 'rotate-key', '--from-werf'], { WERF_SECRET_KEY: WERF_KEY });
    expect(converted.exitCode, converted.all).toBe(0);
    expect(await readFile(join(dir, '.kube/secret-values.staging.yaml'), 'utf8')).toMatch(/^ {2}password: skiff:v2:/m);
    await commitAll(dir, 'werf value converted');
    const again = await deploy();
    expect(again.exitCode, again.all).toBe(0);
    expect((await secretData()).DATABASE_PASSWORD).toBe(WERF_PLAIN);
  });

  it('rollback and history work, and hold no secret', async () => {
    const r = await run(['rollback', 'staging', '--namespace', namespace, '--timeout', '3m']);
    expect(r.exitCode, r.all).toBe(0);
    const h = await history();
    expect(h.at(-1)!.status).toBe('deployed');
    const status = await run(['status', 'staging', '--namespace', namespace, '-o', 'json']);
    expect(status.exitCode, status.all).toBe(0);
  });

  it('no container of a test sees the key', async () => {
    const r = await run(['test', 'envdump']);
    expect(r.exitCode, r.all).toBe(0);
    expect(r.all).toContain('envdump-done');
  });

  it('nothing the cycle wrote holds the key or a plain value: outputs, history, the cluster, files, temporary files', async () => {
    // This run's own values, and for what skiff writes also werf's test vector.
    const unique = [key, DB_PASSWORD, UPSTREAM_AUTH, `${UPSTREAM_AUTH}-v2`, APP_CONF.trim()];
    const forms = (needles: string[]) => needles.flatMap((n) => [n, Buffer.from(n).toString('base64')]);
    const leaksOf = (needles: string[]) => (where: string, text: string) =>
      forms(needles)
        .filter((f) => text.includes(f))
        .map((f) => `${where}: ${f.slice(0, 8)}…`);
    const leaks = leaksOf([...unique, WERF_PLAIN, WERF_KEY]);
    const found: string[] = [];
    // Every stdout and stderr of the run.
    outputs.forEach((o, i) => found.push(...leaks(`output ${i}`, o)));
    // The release records, decompressed, and every other object of the namespace but the Secret that is meant to hold them.
    const all = await kubectlJson(['-n', namespace, 'get', 'secrets,configmaps,leases,events,jobs,deployments,statefulsets,cronjobs,pods']);
    for (const o of all.items as Array<{ kind: string; type?: string; metadata: { name: string }; data?: Record<string, string> }>) {
      if (o.kind === 'Secret' && o.metadata.name === 'hello-db') continue;
      const where = `${o.kind}/${o.metadata.name}`;
      found.push(...leaks(where, JSON.stringify(o)));
      if (o.type === 'skiff.io/release.v1') {
        for (const v of Object.values(o.data ?? {})) {
          let text = '';
          try {
            text = gunzipSync(Buffer.from(v, 'base64')).toString();
          } catch {
            continue; // a part of a chunked record: none is at this size
          }
          found.push(...leaks(`${where} (record)`, text));
        }
      }
    }
    // The checkout (its .skiff/ included; Git's history was searched above) and every new temporary file.
    const tempAfter = [...(await topLevel(tmpdir())), ...(await topLevel('/dev/shm'))].filter((p) => !tempBefore.has(p));
    expect(tempAfter.filter((p) => /skiff-secret-/.test(p))).toEqual([]);
    await scan(dir, (path, text) => found.push(...leaks(path, text)));
    for (const root of tempAfter) await scan(root, (path, text) => found.push(...leaksOf(unique)(path, text)));
    expect(found).toEqual([]);
    // No process of the whole run had one in its arguments.
    expect(await stopWatching()).toEqual([]);
  });
});

/** Every regular file under root (not .git, nothing over 4 MiB, nothing older than the run), read as text. */
async function scan(root: string, check: (path: string, text: string) => void): Promise<void> {
  let s;
  try {
    s = await lstat(root);
  } catch {
    return; // removed meanwhile (another test's temporary folder)
  }
  if (s.isDirectory()) {
    if (root.endsWith('/.git')) return;
    for (const name of await readdir(root).catch(() => [] as string[])) await scan(join(root, name), check);
  } else if (s.isFile() && s.size < 4 * 1024 * 1024 && s.mtimeMs >= startedAt - 1000) {
    const text = await readFile(root, 'utf8').catch(() => '');
    check(root, text);
  }
}
