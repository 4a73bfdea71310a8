// Secret values and files from the repository to a render, a deploy record, and
// back through `skiff secret edit` and `rotate-key`: the stage and the actions
// on committed projects in temp dirs, the cluster a MemoryKube.
import { createCipheriv } from 'node:crypto';
import { existsSync } from 'node:fs';
import { readdir, readFile, stat, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { gunzipSync } from 'node:zlib';
import { describe, expect, it } from 'vitest';
import { runDeploy } from '../../src/actions/deploy.js';
import { runInit } from '../../src/actions/init.js';
import { runRender } from '../../src/actions/render.js';
import { runDecrypt } from '../../src/secrets/decrypt.js';
import { runEdit } from '../../src/secrets/edit.js';
import { runEncrypt } from '../../src/secrets/encrypt.js';
import { runRotateKey } from '../../src/secrets/rotate-key.js';
import { encryptSecret, parseSecretKey } from '../../src/secrets/crypto.js';
import { ConfigError } from '../../src/errors.js';
import type { ReleaseRecord } from '../../src/release/release-record.js';
import { Redactor } from '../../src/secrets/redact.js';
import { configFailure, failure } from '../helpers/failure.js';
import { commitFiles, orchestrationHarness, readyOnApply, skiffYaml, useFakeRegistry } from '../helpers/orchestration.js';

const KEY_HEX = '5a'.repeat(32);
const OTHER_HEX = '6b'.repeat(32);
const key = parseSecretKey(KEY_HEX, 'test');
const other = parseSecretKey(OTHER_HEX, 'test');
const enc = (plain: string, path: Array<string | number>, k = key, valuesFile = '.kube/secret-values.yaml') =>
  encryptSecret(plain, k, { value: path, valuesFile });

/** A value as skiff wrote it before files were bound (skiff:v1: its key path only). */
const encV1 = (plain: string, path: Array<string | number>) => {
  const nonce = Buffer.alloc(12, 9);
  const c = createCipheriv('aes-256-gcm', key.bytes, nonce);
  c.setAAD(Buffer.from(`skiff:v1:${key.id}:value ${JSON.stringify(path)}`));
  const body = Buffer.concat([c.update(plain), c.final()]);
  return `skiff:v1:${key.id}:${Buffer.concat([nonce, body, c.getAuthTag()]).toString('base64url')}`;
};
const DB_PASSWORD = 'pg-Secret-Value-1';
const API_TOKEN = 'tok_9f8e7d6c5b4a';
// Made with OpenSSL (test/unit/werf-secret.test.ts): AES-128-CBC, werf's "1000" format.
const WERF_KEY = '00112233445566778899aabbccddeeff';
const WERF_VALUE = '10000f0e0d0c0b0a090807060504030201000cbf7bed3ea988e9afa0d832e65e08de90a903584d4fc7304c1dee430a0f4557';
const WERF_PLAIN = 'postgres-pass-from-werf';

const SKIFF_YAML = skiffYaml('sv', { staging: { namespace: 'sv-staging' } });

const TEMPLATES = {
  'skiff.yaml': SKIFF_YAML,
  '.kube/values.yaml': 'db:\n  password: from-plain-values\n  host: db.local\nfeature: plain\n',
  '.kube/secret.yaml.ejs': [
    'apiVersion: v1',
    'kind: Secret',
    'metadata:',
    '  name: app',
    'stringData:',
    '  DATABASE_PASSWORD: <%= quote(values.db.password) %>',
    '  TLS_KEY: <%= quote(secretFile("tls/key.pem")) %>',
    '',
  ].join('\n'),
  // A template that leaks a value whose key does not look secret: masked anyway.
  '.kube/config.yaml.ejs':
    'apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: app\ndata:\n  endpoint: "https://api.example.com/?t=<%= values.upstream.auth %>"\n',
};

const secretValues = () =>
  [
    '# secrets of every environment',
    'db:',
    `  password: ${enc(DB_PASSWORD, ['db', 'password'])}`,
    'upstream:',
    `  auth: ${enc(API_TOKEN, ['upstream', 'auth'])}`,
    'nothing:',
    '',
  ].join('\n');

const TLS_KEY = '-----BEGIN PRIVATE KEY-----\nMIIEvQIBADANBgkqhkiG9w0BAQEFAASC\n-----END PRIVATE KEY-----\n';

const registry = useFakeRegistry();

async function project(files: Record<string, string> = {}, env: NodeJS.ProcessEnv = { SKIFF_SECRET_KEY: KEY_HEX }) {
  const h = await orchestrationHarness(
    {
      ...TEMPLATES,
      '.kube/secret-values.yaml': secretValues(),
      '.kube/secret/tls/key.pem': `${encryptSecret(TLS_KEY, key, { file: 'tls/key.pem' })}\n`,
      ...files,
    },
    { registry, repository: 'sv' },
  );
  readyOnApply(h.kube);
  Object.assign(h.ctx.env, { HOME: join(h.dir, '.no-home') }, env);
  return h;
}

const renderOf = async (ctx: Awaited<ReturnType<typeof project>>['ctx'], showSecrets = false) => runRender(ctx, { env: 'staging', showSecrets });

describe('secret values in a render', () => {
  it('merges decrypted values after the plain values and before --set, and secretFile() reads .kube/secret/', async () => {
    const { ctx } = await project();
    const shown = await renderOf(ctx, true);
    const secret = shown.manifests.find((m) => m.object.kind === 'Secret')!.object;
    expect(secret.stringData).toEqual({ DATABASE_PASSWORD: DB_PASSWORD, TLS_KEY });
    const cm = shown.manifests.find((m) => m.object.kind === 'ConfigMap')!.object;
    expect(cm.data).toEqual({ endpoint: `https://api.example.com/?t=${API_TOKEN}` });
    const set = await runRender(ctx, { env: 'staging', showSecrets: true, set: ['db.password=overridden'] });
    expect((set.manifests.find((m) => m.object.kind === 'Secret')!.object.stringData as Record<string, string>).DATABASE_PASSWORD).toBe('overridden');
    // Neither a template nor a plain values file: nothing of them is rendered as an object.
    expect(shown.manifests.map((m) => `${m.object.kind}/${m.object.metadata.name}`).sort()).toEqual(['ConfigMap/app', 'Secret/app']);
  });

  it('masks decrypted values everywhere without --show-secrets, also under keys that do not look secret, and warns where one is in clear', async () => {
    const { ctx, reporter } = await project();
    const r = await renderOf(ctx);
    const text = JSON.stringify(r);
    for (const plain of [DB_PASSWORD, API_TOKEN, 'MIIEvQIBADANBgkqhkiG9w0BAQEFAASC']) expect(text).not.toContain(plain);
    expect((r.manifests.find((m) => m.object.kind === 'ConfigMap')!.object.data as Record<string, string>).endpoint).toMatch(
      /^https:\/\/api\.example\.com\/\?t=\(masked sha256:[0-9a-f]{12}\)$/,
    );
    expect(reporter.warnings.join('\n')).toContain('ConfigMap/app data.endpoint holds secret-values .kube/secret-values.yaml upstream.auth in clear');
  });

  it('a project with no secret files needs no key', async () => {
    const { ctx } = await project({ '.kube/secret.yaml.ejs': 'apiVersion: v1\nkind: Secret\nmetadata:\n  name: x\nstringData:\n  a: b\n' }, {});
    await commitFiles(ctx.cwd, { '.kube/secret-values.yaml': null, '.kube/secret/tls/key.pem': null, '.kube/config.yaml.ejs': null });
    delete ctx.env.SKIFF_SECRET_KEY;
    expect((await renderOf(ctx)).manifests).toHaveLength(1);
  });

  it('no key: exit 2 naming the file that needs it and where the key is looked for', async () => {
    const { ctx } = await project({}, {});
    expect(await configFailure(renderOf(ctx))).toBe(
      '.kube/secret-values.yaml needs the secret key, and there is none: set SKIFF_SECRET_KEY, or write the key to .skiff_secret_key at the repository root (mode 600, not committed) or to ~/.skiff/secret_key',
    );
  });

  it('without a key, a secret file fails only the template that reads it', async () => {
    const { ctx } = await project({}, {});
    await commitFiles(ctx.cwd, { '.kube/secret-values.yaml': null, '.kube/config.yaml.ejs': null });
    const reads = await configFailure(renderOf(ctx));
    expect(reads).toMatch(/^\.kube\/secret\.yaml\.ejs:7: \.kube\/secret\/tls\/key\.pem needs the secret key, and there is none: set SKIFF_SECRET_KEY/);
    await commitFiles(ctx.cwd, {
      '.kube/secret.yaml.ejs':
        'apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: x\n<% if (env === "production") { %>data:\n  k: <%= quote(secretFile("tls/key.pem")) %>\n<% } %>\n',
    });
    expect((await renderOf(ctx)).manifests).toHaveLength(1);
  });

  it('a value that fails authentication names the file, the line and the key path', async () => {
    const edited = secretValues().replace(/(password: skiff:v2:[0-9a-f]{8}:)(.)/, (_, p: string, c: string) => p + (c === 'A' ? 'B' : 'A'));
    const { ctx } = await project({ '.kube/secret-values.yaml': edited });
    expect(await configFailure(renderOf(ctx))).toBe(
      `.kube/secret-values.yaml:3: db.password: it fails authentication: the ciphertext was edited or cut short, or copied here from another key path or another secret-values file (each environment's file has its own values); restore it from Git, or set the value again with "skiff secret edit .kube/secret-values.yaml"`,
    );
  });

  it("a value copied from staging's secret-values file into production's, at the same key path, fails: exit 2 naming the file and key path", async () => {
    const stagingValue = enc('staging-only-password', ['db', 'password'], key, '.kube/secret-values.staging.yaml');
    const { ctx } = await project({ '.kube/secret-values.production.yaml': `# pasted from staging\ndb:\n  password: ${stagingValue}\n` });
    await commitFiles(ctx.cwd, { 'skiff.yaml': SKIFF_YAML.replace('environments:\n', 'environments:\n  production:\n    namespace: sv-production\n') });
    expect(await configFailure(runRender(ctx, { env: 'production' }))).toMatch(
      /^\.kube\/secret-values\.production\.yaml:3: db\.password: it fails authentication: .*copied here from another key path or another secret-values file/,
    );
  });

  it('a value written before files were bound (skiff:v1:) still decrypts, with a warning naming it; secret edit writes it again bound to its file', async () => {
    const v1File = ['db:', `  password: ${encV1(DB_PASSWORD, ['db', 'password'])}`, 'upstream:', `  auth: ${encV1(API_TOKEN, ['upstream', 'auth'])}`, ''].join(
      '\n',
    );
    const { ctx, dir, reporter } = await project({ '.kube/secret-values.yaml': v1File });
    const rendered = await renderOf(ctx, true);
    expect((rendered.manifests.find((m) => m.object.kind === 'Secret')!.object.stringData as Record<string, string>).DATABASE_PASSWORD).toBe(DB_PASSWORD);
    expect(reporter.lines.filter((l) => l.includes('skiff:v1'))).toEqual([
      expect.stringContaining(
        '.kube/secret-values.yaml:2: db.password is an old skiff:v1 value, not bound to its file; run skiff secret edit .kube/secret-values.yaml or skiff secret rotate-key to upgrade it',
      ),
      expect.stringContaining('.kube/secret-values.yaml:4: upstream.auth is an old skiff:v1 value, not bound to its file'),
    ]);
    // Saved as it was, the old values are upgraded.
    const r = await runEdit(ctx, { file: '.kube/secret-values.yaml', editor: scriptedEditor((t) => t) });
    expect(r).toMatchObject({ unchanged: false, encrypted: ['db.password', 'upstream.auth'], kept: 0 });
    const after = await readFile(join(dir, '.kube/secret-values.yaml'), 'utf8');
    expect(after).toMatch(/^ {2}password: skiff:v2:/m);
    expect(after).not.toContain('skiff:v1:');
  });

  it("a skiff:v1 value in a file that holds skiff:v2 values (another environment's old value pasted here) is refused, exit 2; secret edit upgrades it", async () => {
    const { ctx, dir, kube } = await project({
      '.kube/secret-values.yaml': secretValues().replace(/password: .*/, `password: ${encV1('staging-pw-from-history', ['db', 'password'])}`),
    });
    expect(await configFailure(renderOf(ctx))).toMatch(
      /^\.kube\/secret-values\.yaml:3: db\.password is an old skiff:v1 value, not bound to its file, in a file that holds skiff:v2 values: .* "skiff secret edit \.kube\/secret-values\.yaml"/,
    );
    expect(await configFailure(runDeploy(ctx, { env: 'staging' }))).toMatch(/^\.kube\/secret-values\.yaml:3: db\.password is an old skiff:v1 value/);
    expect(kube.objects('Secret')).toEqual([]);
    // If it is this file's own value after all, secret edit binds it to the file.
    expect(await runEdit(ctx, { file: '.kube/secret-values.yaml', editor: scriptedEditor((t) => t) })).toMatchObject({ encrypted: ['db.password'], kept: 1 });
    const upgraded = await readFile(join(dir, '.kube/secret-values.yaml'), 'utf8');
    expect(upgraded).not.toContain('skiff:v1:');
    await commitFiles(dir, { '.kube/secret-values.yaml': upgraded });
    await renderOf(ctx);
  });

  it('a value copied to another key path fails authentication', async () => {
    const moved = secretValues().replace(/auth: .*/, `auth: ${enc(DB_PASSWORD, ['db', 'password'])}`);
    const { ctx } = await project({ '.kube/secret-values.yaml': moved });
    expect(await configFailure(renderOf(ctx))).toMatch(/^\.kube\/secret-values\.yaml:5: upstream\.auth: it fails authentication/);
  });

  it("a file of another project's key says so, with both key ids", async () => {
    const { ctx } = await project({ '.kube/secret-values.yaml': `db:\n  password: ${enc('x-secret-x', ['db', 'password'], other)}\n` });
    expect(await configFailure(renderOf(ctx))).toBe(
      `.kube/secret-values.yaml:2: db.password: it was encrypted with another key (key id ${other.id}; this key's id is ${key.id}); set SKIFF_SECRET_KEY to the key it was encrypted with (or rotate it: skiff secret rotate-key)`,
    );
  });

  it('a plain value is an error that names the fix', async () => {
    const { ctx } = await project({ '.kube/secret-values.yaml': `${secretValues()}extra:\n  port: 5432\n` });
    expect(await configFailure(renderOf(ctx))).toBe(
      '.kube/secret-values.yaml:8: extra.port: the value is not encrypted (a plain value in a secret-values file); encrypt it with "skiff secret edit .kube/secret-values.yaml"',
    );
  });

  it('truncated and non-base64 values, an empty file, a wrong key length: one line each', async () => {
    const token = enc(DB_PASSWORD, ['db', 'password']);
    const cases: Array<[Record<string, string>, NodeJS.ProcessEnv, RegExp]> = [
      [
        { '.kube/secret-values.yaml': `db:\n  password: ${token.slice(0, 24)}\n` },
        { SKIFF_SECRET_KEY: KEY_HEX },
        /:2: db\.password: the ciphertext is truncated/,
      ],
      [
        { '.kube/secret-values.yaml': `db:\n  password: "${token.slice(0, 20)}*&^%"\n` },
        { SKIFF_SECRET_KEY: KEY_HEX },
        /:2: db\.password: not a valid skiff ciphertext \(expected skiff:v2:/,
      ],
      [
        { '.kube/secret-values.yaml': `db:\n  password: ${WERF_VALUE.slice(0, -3)}\n` },
        { SKIFF_SECRET_KEY: KEY_HEX, WERF_SECRET_KEY: WERF_KEY },
        /:2: db\.password: the werf ciphertext is truncated/,
      ],
      [{ '.kube/secret-values.yaml': '# nothing yet\n' }, { SKIFF_SECRET_KEY: KEY_HEX }, /^\.kube\/secret-values\.yaml: the file is empty/],
      [{ '.kube/secret/tls/key.pem': '' }, { SKIFF_SECRET_KEY: KEY_HEX }, /^\.kube\/secret\/tls\/key\.pem: the file is empty/],
      [{ '.kube/secret/tls/key.pem': TLS_KEY }, { SKIFF_SECRET_KEY: KEY_HEX }, /^\.kube\/secret\/tls\/key\.pem: the file is not encrypted/],
      [{}, { SKIFF_SECRET_KEY: KEY_HEX.slice(2) }, /^SKIFF_SECRET_KEY has 62 hex characters; a skiff key is 64/],
    ];
    for (const [files, env, expected] of cases) {
      const { ctx } = await project(files, env);
      expect(await configFailure(renderOf(ctx)), JSON.stringify(files)).toMatch(expected);
    }
  });

  it("reads werf's values with WERF_SECRET_KEY", async () => {
    const { ctx } = await project(
      { '.kube/secret-values.yaml': `db:\n  password: ${WERF_VALUE}\nupstream:\n  auth: ${enc(API_TOKEN, ['upstream', 'auth'])}\n` },
      { SKIFF_SECRET_KEY: KEY_HEX, WERF_SECRET_KEY: WERF_KEY },
    );
    const r = await renderOf(ctx, true);
    expect((r.manifests.find((m) => m.object.kind === 'Secret')!.object.stringData as Record<string, string>).DATABASE_PASSWORD).toBe(WERF_PLAIN);
  });

  it('secretFile() of a path that does not exist is a template error naming it', async () => {
    const { ctx } = await project({
      '.kube/other.yaml.ejs': 'apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: o\ndata:\n  x: <%= quote(secretFile("nope.pem")) %>\n',
    });
    expect(await configFailure(renderOf(ctx))).toBe(
      '.kube/other.yaml.ejs:6: secretFile("nope.pem"): no such file under .kube/secret/ (the secret files are "tls/key.pem"); add it with "skiff secret edit .kube/secret/nope.pem"',
    );
  });
});

describe('what a deploy stores', () => {
  it('the release record holds no decrypted value, whatever its key; the Secret in the cluster has them', async () => {
    const { ctx, kube, reporter } = await project();
    const result = await runDeploy(ctx, { env: 'staging' });
    expect(result.status).toBe('deployed');
    const records = kube.objects('Secret').filter((s) => s.metadata.labels?.owner === 'skiff');
    expect(records.length).toBeGreaterThan(0);
    const stored = records
      .map((s) =>
        Object.values(s.data as Record<string, string>)
          .map((v) => gunzipSync(Buffer.from(v, 'base64')).toString())
          .join(''),
      )
      .join('');
    const record = JSON.parse(stored) as ReleaseRecord;
    for (const plain of [DB_PASSWORD, API_TOKEN, 'MIIEvQIBADANBgkqhkiG9w0BAQEFAASC']) {
      expect(stored).not.toContain(plain);
      expect(JSON.stringify(result)).not.toContain(plain);
      expect(reporter.lines.join('\n')).not.toContain(plain);
    }
    expect((record.values as { upstream: { auth: string } }).upstream.auth).toMatch(/^\(masked sha256:[0-9a-f]{12}\)$/);
    const live = kube.objects('Secret').find((s) => s.metadata.name === 'app')!;
    expect(
      live.stringData ??
        Object.fromEntries(Object.entries(live.data as Record<string, string>).map(([k, v]) => [k, Buffer.from(String(v), 'base64').toString()])),
    ).toMatchObject({
      DATABASE_PASSWORD: DB_PASSWORD,
    });
  });
});

describe('Redactor.record', () => {
  const record = (values: Record<string, unknown>): ReleaseRecord =>
    ({ name: 'r', namespace: 'n', revision: 1, status: 'deployed', description: 'upgrade', manifests: [], values }) as unknown as ReleaseRecord;

  it('masks the strings the redactor knows in the values, under any key, and short values known whole', () => {
    const plainKey = { upstream: { auth: 'tok_9f8e7d6c5b4a', url: 'https://x/?t=tok_9f8e7d6c5b4a', short: 'abc', other: 'abc-public' }, replicas: 2 };
    const before = new Redactor().record(record(plainKey));
    expect(before.values).toEqual(plainKey); // today's rule alone: nothing there looks secret
    const redactor = new Redactor().with([['tok_9f8e7d6c5b4a', 'secret-values .kube/secret-values.yaml upstream.auth']], ['tok_9f8e7d6c5b4a', 'abc']);
    const masked = redactor.record(record(plainKey)).values as typeof plainKey;
    expect(masked.upstream.auth).toMatch(/^\(masked sha256:[0-9a-f]{12}\)$/);
    expect(masked.upstream.url).toMatch(/^https:\/\/x\/\?t=\(masked sha256:[0-9a-f]{12}\)$/);
    expect(masked.upstream.short).toMatch(/^\(masked sha256:[0-9a-f]{12}\)$/);
    expect(masked.upstream.other).toBe('abc-public');
    expect(masked.replicas).toBe(2);
    expect(redactor.record(redactor.record(record(plainKey)))).toEqual(redactor.record(record(plainKey)));
  });
});

describe('skiff secret encrypt / decrypt', () => {
  it('a value is bound to its key path, a file to its path; werf values decrypt without one', async () => {
    const { ctx } = await project();
    const v = await runEncrypt(ctx, { keyPath: 'db.password', input: Buffer.from('from-stdin-1\n') });
    expect(v.keyId).toBe(key.id);
    expect((await runDecrypt(ctx, { keyPath: 'db.password', input: `${v.ciphertext}\n` })).plaintext).toBe('from-stdin-1');
    expect(await configFailure(runDecrypt(ctx, { keyPath: 'db.user', input: v.ciphertext }))).toMatch(/^stdin: db\.user: it fails authentication/);
    const f = await runEncrypt(ctx, { file: '.kube/secret/tls/key.pem', input: Buffer.from(TLS_KEY) });
    expect((await runDecrypt(ctx, { file: 'tls/key.pem', input: f.ciphertext })).plaintext).toBe(TLS_KEY);
    ctx.env.WERF_SECRET_KEY = WERF_KEY;
    expect((await runDecrypt(ctx, { input: WERF_VALUE })).plaintext).toBe(WERF_PLAIN);
    expect(await configFailure(runEncrypt(ctx, { input: Buffer.from('x') }))).toMatch(/say where the value goes/);
    expect(await configFailure(runEncrypt(ctx, { keyPath: 'a..b', input: Buffer.from('x') }))).toMatch(/"a\.\.b" is not a key path/);
    expect(await configFailure(runEncrypt(ctx, { file: '../x', input: Buffer.from('x') }))).toMatch(/is not a path under \.kube\/secret\//);
  });
});

/** An editor for tests: records what it was shown, where, and with which mode, then writes `edit(text)`. */
function scriptedEditor(edit: (text: string) => string, seen: Array<{ file: string; text: string; mode: number }> = []) {
  return async (file: string) => {
    const text = await readFile(file, 'utf8');
    seen.push({ file, text, mode: (await stat(file)).mode & 0o777 });
    await writeFile(file, edit(text));
  };
}

describe('skiff secret edit', () => {
  it('shows the decrypted values in a private copy and encrypts only what changed; unchanged values keep their ciphertext', async () => {
    const { ctx, dir } = await project();
    const before = await readFile(join(dir, '.kube/secret-values.yaml'), 'utf8');
    const seen: Array<{ file: string; text: string; mode: number }> = [];
    const r = await runEdit(ctx, {
      file: '.kube/secret-values.yaml',
      editor: scriptedEditor((t) => `${t.replace(API_TOKEN, 'tok_new_value_2')}cache:\n  password: added-value-3\n`, seen),
    });
    expect(r).toMatchObject({ file: '.kube/secret-values.yaml', unchanged: false, encrypted: ['upstream.auth', 'cache.password'], kept: 1 });
    expect(seen[0]!.text).toBe(`# secrets of every environment\ndb:\n  password: ${DB_PASSWORD}\nupstream:\n  auth: ${API_TOKEN}\nnothing:\n`);
    expect(seen[0]!.mode).toBe(0o600);
    if (existsSync('/dev/shm')) expect(seen[0]!.file.startsWith('/dev/shm/')).toBe(true);
    expect(existsSync(seen[0]!.file)).toBe(false);
    const after = await readFile(join(dir, '.kube/secret-values.yaml'), 'utf8');
    const line = (text: string, k: string) => text.split('\n').find((l) => l.trimStart().startsWith(`${k}:`));
    expect(line(after, 'password')).toBe(line(before, 'password')); // db.password: same ciphertext
    expect(line(after, 'auth')).not.toBe(line(before, 'auth'));
    expect(after).toContain('# secrets of every environment');
    for (const plain of ['tok_new_value_2', 'added-value-3', DB_PASSWORD]) expect(after).not.toContain(plain);
    const values = await runRender({ ...ctx, env: { ...ctx.env } }, { env: 'staging', showSecrets: true, dev: true });
    expect((values.manifests.find((m) => m.object.kind === 'ConfigMap')!.object.data as Record<string, string>).endpoint).toContain('tok_new_value_2');
  });

  it('saving without a change leaves the file alone; a plain value is encrypted even then', async () => {
    const { ctx, dir } = await project();
    const file = join(dir, '.kube/secret-values.yaml');
    const before = await readFile(file, 'utf8');
    expect(await runEdit(ctx, { file: '.kube/secret-values.yaml', editor: scriptedEditor((t) => t) })).toMatchObject({ unchanged: true });
    expect(await readFile(file, 'utf8')).toBe(before);
    await writeFile(file, `${before}plain:\n  port: 5432\n`);
    expect(await runEdit(ctx, { file: '.kube/secret-values.yaml', editor: scriptedEditor((t) => t) })).toMatchObject({ encrypted: ['plain.port'], kept: 2 });
    expect(await readFile(file, 'utf8')).toMatch(/^ {2}port: skiff:v2:/m);
  });

  it('a file that changed while the editor was open is left as it is now; the edit is kept, encrypted, beside it (exit 2)', async () => {
    const { ctx, dir } = await project();
    const file = join(dir, '.kube/secret-values.yaml');
    const pulled = `${await readFile(file, 'utf8')}# a change that came with a git pull\n`;
    const editor = async (copy: string) => {
      await writeFile(file, pulled); // meanwhile, in the repository
      await writeFile(copy, `${await readFile(copy, 'utf8')}cache:\n  password: typed-meanwhile-4\n`);
    };
    const { message } = await failure(runEdit(ctx, { file: '.kube/secret-values.yaml', editor }), ConfigError);
    expect(message).toMatch(
      /^\.kube\/secret-values\.yaml changed while the editor was open; it is left as it is now, and your edit is saved, encrypted, in \.kube\/secret-values\.yaml\.skiff-conflict-[0-9a-f]{12}: /,
    );
    expect(await readFile(file, 'utf8')).toBe(pulled);
    const kept = join(dir, /in (\S+): /.exec(message)![1]!);
    const saved = await readFile(kept, 'utf8');
    expect(saved).toMatch(/^ {2}password: skiff:v2:/m);
    expect(saved).not.toContain('typed-meanwhile-4');
  });

  it('removes the plain copy when the editor fails, and writes nothing', async () => {
    const { ctx, dir } = await project();
    const file = join(dir, '.kube/secret-values.yaml');
    const before = await readFile(file, 'utf8');
    let copy = '';
    const failing = async (f: string) => {
      copy = f;
      await writeFile(f, 'db:\n  password: half-typed\n');
      throw new ConfigError('the editor "vi" exited with code 1; nothing was written');
    };
    expect(await configFailure(runEdit(ctx, { file: '.kube/secret-values.yaml', editor: failing }))).toMatch(/exited with code 1/);
    expect(existsSync(copy)).toBe(false);
    expect(await readFile(file, 'utf8')).toBe(before);
  });

  it('removes the plain copy when skiff is interrupted, and writes nothing', async () => {
    const { ctx, dir } = await project();
    const before = await readFile(join(dir, '.kube/secret-values.yaml'), 'utf8');
    const abort = new AbortController();
    let copy = '';
    const interrupted = runEdit(
      { ...ctx, signal: abort.signal },
      {
        file: '.kube/secret-values.yaml',
        editor: async (f) => {
          copy = f;
          await writeFile(f, 'db:\n  password: changed\n');
          abort.abort(new Error('SIGINT'));
        },
      },
    );
    await expect(interrupted).rejects.toMatchObject({ exitCode: 130 });
    expect(existsSync(copy)).toBe(false);
    expect(await readFile(join(dir, '.kube/secret-values.yaml'), 'utf8')).toBe(before);
  });

  it("runs $EDITOR without the key variables in its environment, and its arguments hold only the copy's path", async () => {
    const { ctx, dir } = await project();
    const script = join(dir, 'editor.sh');
    await writeFile(script, `#!/bin/sh\nenv > "${dir}/editor-env"\necho "$@" > "${dir}/editor-args"\nprintf 'db:\\n  password: via-editor-42\\n' > "$1"\n`, {
      mode: 0o755,
    });
    Object.assign(ctx.env, { EDITOR: script, SKIFF_OLD_SECRET_KEY: OTHER_HEX, WERF_SECRET_KEY: WERF_KEY });
    const r = await runEdit(ctx, { file: '.kube/secret-values.yaml' });
    expect(r.encrypted).toEqual(['db.password']);
    const env = await readFile(join(dir, 'editor-env'), 'utf8');
    for (const k of [KEY_HEX, OTHER_HEX, WERF_KEY]) expect(env).not.toContain(k);
    expect(env).not.toMatch(/SECRET_KEY/);
    const args = (await readFile(join(dir, 'editor-args'), 'utf8')).trim();
    expect(args).toMatch(/\/skiff-secret-[^/]+\/secret-values\.yaml$/);
    expect(existsSync(args)).toBe(false);
  });

  it('creates a secret file, and re-encrypts it only when its text changes', async () => {
    const { ctx, dir } = await project();
    const r = await runEdit(ctx, { file: '.kube/secret/app.conf', editor: scriptedEditor(() => 'password = conf-secret-7\n') });
    expect(r).toMatchObject({ created: true, encrypted: ['.kube/secret/app.conf'] });
    const stored = await readFile(join(dir, '.kube/secret/app.conf'), 'utf8');
    expect(stored).toMatch(/^skiff:v2:[0-9a-f]{8}:[A-Za-z0-9_-]+\n$/);
    expect(await runEdit(ctx, { file: '.kube/secret/app.conf', editor: scriptedEditor((t) => t) })).toMatchObject({ unchanged: true });
    expect(await readFile(join(dir, '.kube/secret/app.conf'), 'utf8')).toBe(stored);
    expect(await configFailure(runEdit(ctx, { file: '.kube/values.yaml', editor: scriptedEditor((t) => t) }))).toMatch(
      /^\.kube\/values\.yaml: not a secret file/,
    );
  });

  it('invalid YAML from the editor writes nothing, unless the user fixes it when asked', async () => {
    const { ctx, dir } = await project();
    const before = await readFile(join(dir, '.kube/secret-values.yaml'), 'utf8');
    expect(await configFailure(runEdit(ctx, { file: '.kube/secret-values.yaml', editor: scriptedEditor(() => 'db: [unclosed\n') }))).toMatch(
      /^\.kube\/secret-values\.yaml:\d+: invalid YAML/,
    );
    expect(await readFile(join(dir, '.kube/secret-values.yaml'), 'utf8')).toBe(before);
    let round = 0;
    const r = await runEdit(ctx, {
      file: '.kube/secret-values.yaml',
      editor: scriptedEditor(() => (++round === 1 ? 'db: [unclosed\n' : 'db:\n  password: fixed-value-9\n')),
      retry: async () => true,
    });
    expect(round).toBe(2);
    expect(r.encrypted).toEqual(['db.password']);
  });
});

describe('skiff secret rotate-key', () => {
  async function secretFiles(dir: string): Promise<Record<string, string>> {
    const out: Record<string, string> = {};
    const walk = async (rel: string) => {
      for (const e of await readdir(join(dir, rel), { withFileTypes: true })) {
        if (e.isDirectory()) await walk(`${rel}/${e.name}`);
        else if (/secret/.test(`${rel}/${e.name}`)) out[`${rel}/${e.name}`] = await readFile(join(dir, rel, e.name), 'utf8');
      }
    };
    await walk('.kube');
    return out;
  }

  it('re-encrypts every secret file with the new key; a redeploy renders the same objects', async () => {
    const { ctx, dir } = await project({
      '.kube/secret-values.production.yaml': `db:\n  password: ${enc('prod-password-1', ['db', 'password'], key, '.kube/secret-values.production.yaml')}\n`,
    });
    const before = await renderOf(ctx, true);
    Object.assign(ctx.env, { SKIFF_OLD_SECRET_KEY: KEY_HEX, SKIFF_SECRET_KEY: OTHER_HEX });
    const r = await runRotateKey(ctx, {});
    expect(r).toEqual({
      keyId: other.id,
      files: [
        { file: '.kube/secret-values.production.yaml', rotated: 1 },
        { file: '.kube/secret-values.yaml', rotated: 2 },
        { file: '.kube/secret/tls/key.pem', rotated: 1 },
      ],
    });
    const files = await secretFiles(dir);
    expect(Object.values(files).join('')).not.toContain(`:${key.id}:`);
    expect(files['.kube/secret-values.yaml']).toContain('# secrets of every environment');
    await commitFiles(dir, {}, 'rotate');
    delete ctx.env.SKIFF_OLD_SECRET_KEY;
    const after = await renderOf(ctx, true);
    expect(after.manifests.map((m) => m.object)).toEqual(
      before.manifests.map((m) => m.object).map((o) => ({ ...o, metadata: { ...o.metadata, annotations: expect.any(Object) } })),
    );
    // Run again: nothing left on the old key.
    Object.assign(ctx.env, { SKIFF_OLD_SECRET_KEY: KEY_HEX });
    expect((await runRotateKey(ctx, {})).files.every((f) => f.rotated === 0)).toBe(true);
  });

  it('all or nothing: a value no key opens leaves every file as it was', async () => {
    const { ctx, dir } = await project({
      '.kube/secret-values.production.yaml': `db:\n  password: ${enc('x-other-key', ['db', 'password'], parseSecretKey('7c'.repeat(32), 't'))}\n`,
    });
    const before = await secretFiles(dir);
    Object.assign(ctx.env, { SKIFF_OLD_SECRET_KEY: KEY_HEX, SKIFF_SECRET_KEY: OTHER_HEX });
    expect(await configFailure(runRotateKey(ctx, {}))).toMatch(
      /^\.kube\/secret-values\.production\.yaml:2: db\.password: encrypted with a key that is neither the new key .* nor SKIFF_OLD_SECRET_KEY .*; nothing was rotated$/,
    );
    expect(await secretFiles(dir)).toEqual(before);
  });

  it('all or nothing: a file that cannot be written leaves every file as it was', async () => {
    // The last file's name leaves no room for the staging copy's random suffix (255 bytes at most): its staging write fails.
    const long = `tls/${'z'.repeat(244)}.pem`;
    const { ctx, dir } = await project({ [`.kube/secret/${long}`]: `${encryptSecret(TLS_KEY, key, { file: long })}\n` });
    const before = await secretFiles(dir);
    Object.assign(ctx.env, { SKIFF_OLD_SECRET_KEY: KEY_HEX, SKIFF_SECRET_KEY: OTHER_HEX });
    expect(await configFailure(runRotateKey(ctx, {}))).toMatch(/^cannot write \.kube\/secret\/tls\/z+\.pem: .*; every secret file was left as it was$/);
    // Every file as it was, and no staging copy left beside any.
    expect(await secretFiles(dir)).toEqual(before);
  });

  it("--from-werf converts werf's values to skiff's format", async () => {
    const { ctx, dir } = await project({
      '.kube/secret-values.yaml': `db:\n  password: ${WERF_VALUE}\nupstream:\n  auth: ${enc(API_TOKEN, ['upstream', 'auth'])}\n`,
    });
    Object.assign(ctx.env, { WERF_SECRET_KEY: WERF_KEY });
    expect(await configFailure(runRotateKey(ctx, {}))).toMatch(/SKIFF_OLD_SECRET_KEY/);
    const r = await runRotateKey(ctx, { fromWerf: true });
    expect(r.files.find((f) => f.file === '.kube/secret-values.yaml')).toEqual({ file: '.kube/secret-values.yaml', rotated: 1 });
    const text = await readFile(join(dir, '.kube/secret-values.yaml'), 'utf8');
    expect(text).not.toContain(WERF_VALUE);
    delete ctx.env.WERF_SECRET_KEY;
    await commitFiles(dir, {}, 'from werf');
    const shown = await renderOf(ctx, true);
    expect((shown.manifests.find((m) => m.object.kind === 'Secret')!.object.stringData as Record<string, string>).DATABASE_PASSWORD).toBe(WERF_PLAIN);
  });
});

describe('skiff init', () => {
  it('adds .skiff_secret_key to .gitignore once', async () => {
    const { ctx, dir } = await project({ '.gitignore': 'node_modules/' });
    expect((await runInit(ctx, {})).written).toContain('.gitignore');
    expect(await readFile(join(dir, '.gitignore'), 'utf8')).toBe('node_modules/\n.skiff_secret_key\n.skiff/\n');
    expect((await runInit(ctx, {})).kept).toContain('.gitignore');
    expect(await readFile(join(dir, '.gitignore'), 'utf8')).toBe('node_modules/\n.skiff_secret_key\n.skiff/\n');
  });
});
