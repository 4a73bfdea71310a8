// The Redactor (secrets/redact.ts): what skiff prints and stores of secret
// material. kubectl's last-applied copy of a Secret (issue 18 item 5), and
// masks keyed with a per-release salt (item 8), down to what `skiff diff`,
// `skiff history` and the stored records hold.
import { createHash } from 'node:crypto';
import { gunzipSync, gzipSync } from 'node:zlib';
import { describe, expect, it } from 'vitest';
import { runDeploy } from '../../src/actions/deploy.js';
import { runDiff } from '../../src/actions/diff.js';
import { runHistory } from '../../src/actions/history.js';
import { runStatus } from '../../src/actions/status.js';
import { maskDigest, maskToken, newMaskSalt } from '../../src/secrets/material.js';
import type { KubeObject } from '../../src/kube/objects.js';
import { LAST_APPLIED_ANNOTATION, Redactor, releaseSalt } from '../../src/secrets/redact.js';
import type { MemoryKube } from '../helpers/memory-kube.js';
import { commitFiles, orchestrationHarness, readyOnApply, skiffYaml, useFakeRegistry } from '../helpers/orchestration.js';

const b64 = (s: string) => Buffer.from(s).toString('base64');
const sha256Prefix = (s: string) => createHash('sha256').update(s).digest('hex').slice(0, 12);

const PASSWORD = 'Pw-in-annotation-31';
const PLAIN_CONF = 'conf-value-not-secret-looking-77';

/** A Secret as `kubectl apply` leaves it: its data again, in clear JSON, in an annotation. */
function kubectlAppliedSecret(name: string, data: Record<string, string>, namespace = 'ns'): KubeObject {
  const encoded = Object.fromEntries(Object.entries(data).map(([k, v]) => [k, b64(v)]));
  const applied = { apiVersion: 'v1', kind: 'Secret', metadata: { name, namespace }, data: encoded };
  return {
    ...applied,
    metadata: { ...applied.metadata, annotations: { [LAST_APPLIED_ANNOTATION]: `${JSON.stringify(applied)}\n` } },
  };
}

describe('Redactor.object: Secret metadata', () => {
  it("drops kubectl's last-applied copy of a Secret, whatever it holds", () => {
    const shown = JSON.stringify(new Redactor().object(kubectlAppliedSecret('db', { password: PASSWORD, conf: PLAIN_CONF })));
    for (const s of [PASSWORD, b64(PASSWORD), PLAIN_CONF, b64(PLAIN_CONF)]) expect(shown).not.toContain(s);
    expect(shown).not.toContain(LAST_APPLIED_ANNOTATION);
  });

  it("masks secret strings in a Secret's annotations and labels", () => {
    const secret: KubeObject = {
      apiVersion: 'v1',
      kind: 'Secret',
      metadata: { name: 'db', labels: { app: 'web', copy: 'Secret-Label-99' }, annotations: { note: `dsn postgres://a:${PASSWORD}@db`, team: 'shop' } },
      stringData: { password: PASSWORD, apiToken: 'Secret-Label-99' },
    };
    const shown = Redactor.of({}, [secret]).object(secret);
    expect(JSON.stringify(shown)).not.toContain(PASSWORD);
    expect(shown.metadata.labels).toEqual({ app: 'web', copy: expect.stringMatching(/^\(masked sha256:[0-9a-f]{12}\)$/) });
    expect(shown.metadata.annotations).toMatchObject({ team: 'shop', note: expect.stringMatching(/^dsn postgres:\/\/a:\(masked sha256:[0-9a-f]{12}\)@db$/) });
  });

  it('drops the last-applied copy of every other object, whatever it holds (an old password skiff no longer knows too)', () => {
    const configMap = (value: string): KubeObject => {
      const applied = { apiVersion: 'v1', kind: 'ConfigMap', metadata: { name: 'cfg' }, data: { url: value } };
      return { ...applied, metadata: { name: 'cfg', annotations: { team: 'shop', [LAST_APPLIED_ANNOTATION]: JSON.stringify(applied) } } };
    };
    const redactor = new Redactor().with([[PASSWORD, 'values db.password']]);
    const withSecret = redactor.object(configMap(`pg://a:${PASSWORD}@db`));
    expect(JSON.stringify(withSecret)).not.toContain(PASSWORD);
    expect(withSecret.metadata.annotations).toEqual({ team: 'shop' });
    // The live object still holds last month's password, which is in no values file any more.
    const oldPassword = configMap('pg://a:Old-Pw-no-longer-in-values-42@db');
    const shown = redactor.object({ ...oldPassword, data: { url: 'pg://a@db' } });
    expect(JSON.stringify(shown)).not.toContain('Old-Pw-no-longer-in-values-42');
    expect(shown.metadata.annotations).toEqual({ team: 'shop' });
    const clean: KubeObject = { apiVersion: 'v1', kind: 'ConfigMap', metadata: { name: 'cfg' }, data: { url: 'pg://a@db' } };
    expect(redactor.object(clean)).toBe(clean);
  });
});

describe('masks keyed with a salt', () => {
  it('a 4-digit PIN is not masked as its plain SHA-256 (which a CI log reader recovers in milliseconds)', () => {
    const salt = newMaskSalt();
    const masked = maskToken('1234', maskDigest(salt));
    expect(masked).not.toBe(`(masked sha256:${sha256Prefix('1234')})`);
    // Trying every PIN against the plain checksum finds nothing.
    const guesses = Array.from({ length: 10_000 }, (_, i) => String(i).padStart(4, '0'));
    expect(guesses.filter((g) => masked === `(masked sha256:${sha256Prefix(g)})`)).toEqual([]);
    // Records written before salts still read: no salt is the plain SHA-256.
    expect(maskToken('1234', maskDigest(undefined))).toBe(`(masked sha256:${sha256Prefix('1234')})`);
  });

  it('a release salt is the newest that a revision has; records without one are skipped', () => {
    const a = newMaskSalt();
    const b = newMaskSalt();
    expect(releaseSalt([])).toBeUndefined();
    expect(releaseSalt([{ maskSalt: a.toString('base64') }, {}])).toEqual(a);
    expect(releaseSalt([{ maskSalt: a.toString('base64') }, { maskSalt: b.toString('base64') }])).toEqual(b);
    expect(releaseSalt([{ maskSalt: 'c2hvcnQ=' }])).toBeUndefined();
  });
});

// ---- against the in-memory cluster ------------------------------------------

const registry = useFakeRegistry();

const SKIFF_YAML = skiffYaml(
  'salty',
  {
    staging: { namespace: 'salty-staging', values: '{ db: { password: "1234" } }' },
    production: { namespace: 'salty-production', values: '{ db: { password: "1234" } }' },
  },
  {},
);

const configMap = (greeting: string) => `apiVersion: v1
kind: ConfigMap
metadata:
  name: settings
data:
  greeting: ${greeting}
`;

const dbSecret = `apiVersion: v1
kind: Secret
metadata:
  name: db
stringData:
  password: <%= values.db.password %>
`;

async function harness(files: Record<string, string>) {
  const h = await orchestrationHarness({ 'skiff.yaml': SKIFF_YAML, ...files }, { registry, repository: 'salty' });
  readyOnApply(h.kube);
  return h;
}

/** The stored records of a release, as the cluster holds them (salt included). */
function storedRecords(kube: MemoryKube, release: string): Array<Record<string, unknown>> {
  return kube
    .objects('Secret')
    .filter((s) => s.metadata.labels?.owner === 'skiff' && s.metadata.labels?.name === release)
    .map((s) => JSON.parse(gunzipSync(Buffer.from(s.data.release as string, 'base64')).toString()) as Record<string, unknown>)
    .sort((x, y) => (x.revision as number) - (y.revision as number));
}

describe('release masks', () => {
  it('one salt per release: the same value masks alike across its revisions and differently in another release; the salt is never printed', async () => {
    const h = await harness({ '.kube/settings.yaml': configMap('hello') });
    expect(await runDeploy(h.ctx, { env: 'staging' })).toMatchObject({ revision: 1, status: 'deployed' });
    await commitFiles(h.dir, { '.kube/settings.yaml': configMap('hi') });
    expect(await runDeploy(h.ctx, { env: 'staging' })).toMatchObject({ revision: 2, status: 'deployed' });
    expect(await runDeploy(h.ctx, { env: 'production' })).toMatchObject({ revision: 1, status: 'deployed' });

    const staging = await runHistory(h.ctx, { env: 'staging' });
    const production = await runHistory(h.ctx, { env: 'production' });
    const mask = (r: { values: Record<string, unknown> }) => (r.values.db as { password: string }).password;
    expect(mask(staging[0]!)).toMatch(/^\(masked sha256:[0-9a-f]{12}\)$/);
    expect(mask(staging[0]!)).not.toBe(`(masked sha256:${sha256Prefix('1234')})`);
    expect(mask(staging[1]!)).toBe(mask(staging[0]!));
    expect(mask(production[0]!)).not.toBe(mask(staging[0]!));

    // The salt is kept in the cluster, one per release, and never shown.
    const stored = storedRecords(h.kube, 'salty-staging');
    expect(stored.map((r) => r.maskSalt)).toEqual([expect.any(String), stored[0]!.maskSalt]);
    expect(Buffer.from(stored[0]!.maskSalt as string, 'base64')).toHaveLength(32);
    expect(storedRecords(h.kube, 'salty-production')[0]!.maskSalt).not.toBe(stored[0]!.maskSalt);
    const shown = JSON.stringify([staging, production]) + h.reporter.lines.join('\n');
    expect(shown).not.toContain('maskSalt');
    expect(shown).not.toContain(stored[0]!.maskSalt as string);
  });

  it("status masks a readiness probe's output that quotes a live Secret's value, as deploy does, with the release's salt", async () => {
    const token = 'Tok-status-leak-4711';
    const apiSecret = `apiVersion: v1\nkind: Secret\nmetadata:\n  name: api\nstringData:\n  apiToken: ${token}\n`;
    const web = [
      'apiVersion: apps/v1',
      'kind: Deployment',
      'metadata: { name: web }',
      'spec:',
      '  replicas: 1',
      '  selector: { matchLabels: { app: web } }',
      '  template:',
      '    metadata: { labels: { app: web } }',
      '    spec:',
      '      containers:',
      '        - name: app',
      '          image: <%= images.app %>',
      '          readinessProbe: { exec: { command: [check] } }',
      '',
    ].join('\n');
    const h = await harness({ '.kube/api.yaml': apiSecret, '.kube/web.yaml': web });
    expect(await runDeploy(h.ctx, { env: 'staging' })).toMatchObject({ revision: 1, status: 'deployed' });
    // Later its pod stops being ready, and the probe prints the token.
    const ns = 'salty-staging';
    const deployment = h.kube.object('Deployment', ns, 'web')!;
    h.kube.seed({
      ...deployment,
      status: { observedGeneration: deployment.metadata.generation, replicas: 1, updatedReplicas: 1, readyReplicas: 0, availableReplicas: 0 },
    });
    const rs = h.kube.seed({
      apiVersion: 'apps/v1',
      kind: 'ReplicaSet',
      metadata: { name: 'web-1', namespace: ns, ownerReferences: [{ apiVersion: 'apps/v1', kind: 'Deployment', name: 'web', uid: deployment.metadata.uid }] },
    });
    h.kube.seed({
      apiVersion: 'v1',
      kind: 'Pod',
      metadata: { name: 'web-1-a', namespace: ns, ownerReferences: [{ apiVersion: 'apps/v1', kind: 'ReplicaSet', name: 'web-1', uid: rs.metadata.uid }] },
      spec: { containers: [{ name: 'app', readinessProbe: { exec: { command: ['check'] } } }] },
      status: { phase: 'Running', conditions: [{ type: 'Ready', status: 'False' }] },
    });
    h.kube.seed({
      apiVersion: 'v1',
      kind: 'Event',
      metadata: { name: 'web-1-a.1', namespace: ns },
      type: 'Warning',
      reason: 'Unhealthy',
      message: `Readiness probe failed: upstream refused token ${token}`,
      involvedObject: { kind: 'Pod', name: 'web-1-a', namespace: ns, fieldPath: 'spec.containers{app}' },
      count: 3,
    });
    const status = await runStatus(h.ctx, { env: 'staging' });
    const shown = JSON.stringify(status);
    expect(shown).toContain('readiness probe failed 3 times');
    expect(shown).not.toContain(token);
    // The mask is the release's: the one its history would show for the same value.
    const salt = Buffer.from(storedRecords(h.kube, ns)[0]!.maskSalt as string, 'base64');
    expect(shown).toContain(maskToken(token, maskDigest(salt)));
  });

  it('history shows the masks of a record written before salts without their plain checksum', async () => {
    const h = await harness({ '.kube/settings.yaml': configMap('hello') });
    expect(await runDeploy(h.ctx, { env: 'staging' })).toMatchObject({ revision: 1, status: 'deployed' });
    // The record as an older skiff wrote it: no salt, the password masked as its plain SHA-256.
    const unsalted = `(masked sha256:${sha256Prefix('1234')})`;
    const stored = h.kube.objects('Secret').find((o) => o.metadata.labels?.owner === 'skiff' && o.metadata.labels?.name === 'salty-staging')!;
    const { maskSalt: _salt, ...old } = storedRecords(h.kube, 'salty-staging')[0]!;
    const oldRecord = { ...old, values: { db: { password: unsalted } } };
    h.kube.seed({ ...stored, data: { ...stored.data, release: gzipSync(JSON.stringify(oldRecord)).toString('base64') } });
    const history = await runHistory(h.ctx, { env: 'staging' });
    expect((history[0]!.values.db as { password: string }).password).toBe('(masked)');
    expect(JSON.stringify(history)).not.toContain(sha256Prefix('1234'));
  });

  it("diff never prints a Secret's data from kubectl's last-applied annotation, for a Secret it updates or prunes", async () => {
    const h = await harness({ '.kube/settings.yaml': configMap('hello'), '.kube/db.yaml': dbSecret });
    expect(await runDeploy(h.ctx, { env: 'staging' })).toMatchObject({ revision: 1, status: 'deployed' });
    // Someone runs `kubectl apply` on the release's Secret, and on another one of it.
    for (const name of ['db', 'legacy']) {
      const live = h.kube.object('Secret', 'salty-staging', name);
      const applied = kubectlAppliedSecret(name, { password: PASSWORD, conf: PLAIN_CONF }, 'salty-staging');
      h.kube.seed({ ...applied, metadata: { ...applied.metadata, labels: live?.metadata.labels } });
    }
    const diff = await runDiff(h.ctx, { env: 'staging' });
    expect(diff.changes.map((c) => `${c.change} ${c.object}`)).toContain('update Secret/db');
    // And a revision that no longer has the Secret: its whole live object is shown as pruned.
    await commitFiles(h.dir, { '.kube/db.yaml': null });
    const pruning = await runDiff(h.ctx, { env: 'staging' });
    expect(pruning.changes.map((c) => `${c.change} ${c.object}`)).toContain('delete Secret/db');
    const shown = JSON.stringify([diff, pruning]);
    for (const s of [PASSWORD, b64(PASSWORD), PLAIN_CONF, b64(PLAIN_CONF)]) expect(shown).not.toContain(s);
    expect(shown).not.toContain('last-applied-configuration');
  });

  it("diff never prints kubectl's last-applied copy of a ConfigMap, even when it holds an old password skiff no longer knows", async () => {
    const h = await harness({ '.kube/settings.yaml': configMap('hello') });
    expect(await runDeploy(h.ctx, { env: 'staging' })).toMatchObject({ revision: 1, status: 'deployed' });
    // `kubectl apply` of an older ConfigMap, whose password is in no values file any more.
    const live = h.kube.object('ConfigMap', 'salty-staging', 'settings')!;
    const applied = {
      apiVersion: 'v1',
      kind: 'ConfigMap',
      metadata: { name: 'settings', namespace: 'salty-staging' },
      data: { greeting: 'pg://a:Old-Pw-77@db' },
    };
    h.kube.seed({
      ...applied,
      metadata: { ...applied.metadata, labels: live.metadata.labels, annotations: { [LAST_APPLIED_ANNOTATION]: JSON.stringify(applied) } },
    });
    const diff = await runDiff(h.ctx, { env: 'staging' });
    expect(diff.changes.map((c) => `${c.change} ${c.object}`)).toEqual(['update ConfigMap/settings']);
    const shown = JSON.stringify(diff);
    expect(shown).not.toContain('last-applied-configuration');
    // The live field itself is the diff's to show; the annotation's copy of it is not.
    expect(shown.split('Old-Pw-77').length - 1).toBe(1);
  });
});
