import { mkdir, mkdtemp, readFile, rm, stat } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { pathToFileURL } from 'node:url';
import { chromium, type BrowserContext, type Page } from 'playwright-core';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { kubeconfigPath, kubectl, requireCluster, uniqueSuffix } from '../helpers/cluster.js';
import { committedProject, skiff, uniqueRegistry } from '../helpers/skiff.js';
import { renderReportHtml } from '../../src/report/render-html.js';
import type { ReleaseReport, TreeNode } from '../../src/report/report-model.js';
import { writeFile } from 'node:fs/promises';

// A deploy that succeeds and one whose worker crash-loops, each report opened in Debian's headless
// Chromium from disk: no console error, no request but the file itself, every workload on the
// timeline, the failed pod's cause on the page, the Secret's value nowhere in the file.
const CHROMIUM = '/usr/bin/chromium';
const OUT = resolve('test-output/report');
const PASSWORD = `report-pw-${uniqueSuffix()}-Zq8`;
const namespace = `report-${uniqueSuffix()}`;
const registry = uniqueRegistry();
const env = () => ({ KUBECONFIG: kubeconfigPath(), SKIFF_REGISTRY: registry, CI_JOB_URL: 'https://gitlab.example/shop/-/jobs/42' });
let dir: string;
let browser: BrowserContext;
let profile: string;

const deployment = (name: string) => `apiVersion: apps/v1
kind: Deployment
metadata: { name: ${name} }
spec:
  replicas: 2
  selector: { matchLabels: { app: ${name} } }
  template:
    metadata: { labels: { app: ${name} } }
    spec:
      terminationGracePeriodSeconds: 0
      containers:
        - name: ${name}
          image: <%= images.web %>
<% if (values.crash && '${name}' === 'worker') { -%>
          command: ["sh", "-c", "echo worker cannot reach the queue at amqp://queue:5672; exit 3"]
<% } -%>
          env:
            - name: DB_PASSWORD
              valueFrom: { secretKeyRef: { name: db, key: password } }
          readinessProbe: { httpGet: { path: /, port: 8080 }, periodSeconds: 1 }
`;

beforeAll(async () => {
  await requireCluster();
  await mkdir(OUT, { recursive: true });
  dir = await committedProject(
    'report',
    {
      'skiff.yaml': 'project: shop\nimages:\n  web: {}\nenvironments:\n  staging: {}\n',
      Dockerfile: 'FROM skiff-base/busybox:1\nRUN mkdir /www && echo ok > /www/index.html\nCMD ["httpd", "-f", "-p", "8080", "-h", "/www"]\n',
      '.dockerignore': '.kube/\n',
      '.kube/values.yaml': `crash: false\ndb:\n  password: ${PASSWORD}\n`,
      '.kube/db-secret.yaml.ejs': 'apiVersion: v1\nkind: Secret\nmetadata: { name: db }\nstringData:\n  password: <%= quote(values.db.password) %>\n',
      '.kube/web.yaml.ejs': deployment('web'),
      '.kube/worker.yaml.ejs': deployment('worker'),
      '.kube/service.yaml':
        'apiVersion: v1\nkind: Service\nmetadata: { name: web }\nspec:\n  selector: { app: web }\n  ports: [{ port: 80, targetPort: 8080 }]\n',
    },
    'shop',
  );
  const build = await skiff(['build', '--push'], { cwd: dir, env: env() });
  expect(build.exitCode, build.all).toBe(0);
  profile = await mkdtemp(join(tmpdir(), 'skiff-chromium-'));
  // A fresh profile (Playwright's persistent context takes the --user-data-dir).
  browser = await chromium.launchPersistentContext(profile, {
    executablePath: CHROMIUM,
    headless: true,
    viewport: { width: 1280, height: 900 },
    // The machine's network is closed: nothing in the browser may try another address.
    args: [
      '--headless',
      '--no-sandbox',
      '--disable-gpu',
      '--disable-quic',
      '--no-first-run',
      '--disable-background-networking',
      '--disable-component-update',
      '--disable-sync',
    ],
  });
}, 300_000);

afterAll(async () => {
  await browser?.close();
  await kubectl(['delete', 'namespace', namespace, '--wait=false', '--ignore-not-found'], { allowFailure: true });
  if (dir) await rm(dir, { recursive: true, force: true });
  if (profile) await rm(profile, { recursive: true, force: true });
});

/** Opens a file in the browser: every request but the file's own aborted and counted; console errors kept. */
async function open(file: string): Promise<{ page: Page; errors: string[]; requests: string[]; ms: number }> {
  const page = await browser.newPage();
  const url = pathToFileURL(file).href;
  const errors: string[] = [];
  const requests: string[] = [];
  page.on('console', (m) => m.type() === 'error' && errors.push(m.text()));
  page.on('pageerror', (e) => errors.push(e.message));
  await page.route('**/*', (route) => {
    if (route.request().url() === url) return route.continue();
    requests.push(route.request().url());
    return route.abort();
  });
  const started = Date.now();
  await page.goto(url, { waitUntil: 'load' });
  return { page, errors, requests, ms: Date.now() - started };
}

async function checkNoSecret(file: string) {
  const html = await readFile(file, 'utf8');
  expect(html).not.toContain(PASSWORD);
  expect(html).not.toContain(Buffer.from(PASSWORD).toString('base64'));
  return html;
}

describe('the release report in a browser', () => {
  it('a successful deploy: every workload on the timeline, the tree healthy, no request, no secret', async () => {
    const r = await skiff(['deploy', 'staging', '--namespace', namespace, '--timeout', '2m'], { cwd: dir, env: env() });
    expect(r.exitCode, r.all).toBe(0);
    expect(r.stderr).toMatch(/release report: \.skiff\/report\/staging\.html/);
    const file = join(dir, '.skiff/report/staging.html');
    await checkNoSecret(file);
    const { page, errors, requests } = await open(file);
    expect(errors).toEqual([]);
    expect(requests).toEqual([]);
    expect(await page.locator('#result').textContent()).toBe('deployed');
    for (const w of ['Deployment/web', 'Deployment/worker', 'Service/web', 'Secret/db'])
      expect(await page.locator(`#timeline tr[data-subject="${w}"]`).count(), w).toBe(1);
    expect(await page.locator('#tree').textContent()).toMatch(/Deployment\/web\s*healthy/);
    await page.screenshot({ path: join(OUT, 'deployed.png'), fullPage: true });
    await page.close();
  }, 300_000);

  it('a failed deploy: its report is written, the crash-looping pod and its cause are shown, the worker marked as holding the release back', async () => {
    const r = await skiff(['deploy', 'staging', '--namespace', namespace, '--timeout', '2m', '--set', 'crash=true', '--no-auto-rollback'], {
      cwd: dir,
      env: env(),
    });
    expect(r.exitCode, r.all).toBe(1);
    const file = join(dir, '.skiff/report/staging.html');
    const html = await checkNoSecret(file);
    expect(html).toContain('https://gitlab.example/shop/-/jobs/42');
    const { page, errors, requests } = await open(file);
    expect(errors).toEqual([]);
    expect(requests).toEqual([]);
    expect(await page.locator('#result').textContent()).toBe('failed');
    expect(await page.locator('#timeline tr.held').getAttribute('data-subject')).toBe('Deployment/worker');
    const failures = await page.locator('#failures').innerText();
    expect(failures).toMatch(/CrashLoopBackOff|Error/);
    expect(failures).toContain('worker cannot reach the queue');
    expect(await page.locator('#changes').innerText()).toMatch(/Deployment\/worker/);
    await page.screenshot({ path: join(OUT, 'failed.png'), fullPage: true });
    // The README's picture: a real failed deploy's report, made again on demand.
    if (process.env.SKIFF_UPDATE_SCREENSHOT === '1') await page.screenshot({ path: resolve('docs/report.png'), fullPage: false });
    await page.close();
    // The revision's own copy is kept, and history --html links it.
    const h = await skiff(['history', 'staging', '--namespace', namespace, '--html'], { cwd: dir, env: env() });
    expect(h.exitCode, h.all).toBe(0);
    const hist = await open(join(dir, '.skiff/report/staging/history.html'));
    expect(hist.errors).toEqual([]);
    expect(await hist.page.locator('a[href="./2.html"]').count()).toBe(2);
    await hist.page.close();
  }, 300_000);

  it('skiff report renders a revision from the history and says what the history does not know', async () => {
    await rm(join(dir, '.skiff/report/staging/1.html'));
    const r = await skiff(['report', 'staging', '--namespace', namespace, '--revision', '1'], { cwd: dir, env: env() });
    expect(r.exitCode, r.all).toBe(0);
    const file = join(dir, '.skiff/report/staging/1.html');
    await checkNoSecret(file);
    const { page, errors, requests } = await open(file);
    expect(errors).toEqual([]);
    expect(requests).toEqual([]);
    expect(await page.locator('.note').innerText()).toMatch(/timeline: the history keeps/);
    await page.close();
  }, 120_000);

  it('renders the report of 50 workloads and 1,500 pods, under 2 MB, in under 2 s', async () => {
    const tree: TreeNode[] = [];
    const timeline: NonNullable<ReleaseReport['timeline']> = [];
    for (let w = 0; w < 50; w++) {
      const pods: TreeNode[] = Array.from({ length: 30 }, (_, p) => ({
        ref: `Pod/load-${w}-6b7c9d-${p}`,
        health: p % 7 ? 'healthy' : 'failed',
        detail: p % 7 ? 'ready' : 'CrashLoopBackOff, exit 1',
        children: [],
      }));
      tree.push({
        ref: `Deployment/load-${w}`,
        health: 'degraded',
        detail: '26/30 ready',
        children: [{ ref: `ReplicaSet/load-${w}-6b7c9d`, health: 'degraded', detail: '26/30 ready', children: pods }],
      });
      timeline.push({
        kind: 'object',
        subject: `Deployment/load-${w}`,
        startMs: w * 200,
        endMs: 20_000 + w * 500,
        state: 'ready',
        progress: { ready: 30, want: 30 },
      });
    }
    const html = renderReportHtml({
      action: 'deploy',
      release: 'load',
      environment: 'bench',
      namespace: 'bench',
      project: 'load',
      result: 'deployed',
      description: 'install complete',
      generatedAt: new Date().toISOString(),
      durationMs: 45_000,
      timeline,
      tree,
      unknown: [],
    });
    expect(Buffer.byteLength(html)).toBeLessThan(2 * 1024 * 1024);
    const file = join(OUT, 'large.html');
    await writeFile(file, html);
    const { page, errors, requests, ms } = await open(file);
    expect(errors).toEqual([]);
    expect(requests).toEqual([]);
    expect(await page.locator('#timeline tr.object').count()).toBe(50);
    expect(await page.locator('#tree li').count()).toBe(50 + 50 + 1_500);
    console.log(`report of 1,500 pods: ${(Buffer.byteLength(html) / 1024).toFixed(0)} KiB, loaded and rendered in ${ms} ms`);
    expect(ms).toBeLessThan(2_000);
    expect((await stat(file)).size).toBe(Buffer.byteLength(html));
    await page.close();
  }, 60_000);
});
