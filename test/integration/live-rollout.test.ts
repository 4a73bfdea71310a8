import { execa } from 'execa';
import { afterAll, beforeAll, expect, it } from 'vitest';
import { kubeconfigPath, kubectl, requireCluster, uniqueSuffix } from '../helpers/cluster.js';
import { committedProject, removeTempDirs, skiff, skiffBin, uniqueRegistry } from '../helpers/skiff.js';

// The live table of a large rollout, on a real terminal: `skiff deploy` of 12
// Deployments under a pseudo-terminal (util-linux `script`) against the real
// cluster, and the same deploy without a terminal, as in CI.
let dir: string;
const namespace = `live-${uniqueSuffix()}`;
const registry = uniqueRegistry();
const WORKLOADS = 12;
const COLUMNS = 100;
const ROWS = 12;
const env = { KUBECONFIG: kubeconfigPath(), SKIFF_REGISTRY: registry };

// eslint-disable-next-line no-control-regex
const ESCAPE = /\x1b/;
// eslint-disable-next-line no-control-regex
const REDRAW = /\x1b\[(\d+)A\x1b\[0J/g;
// eslint-disable-next-line no-control-regex
const plain = (text: string) => text.replace(/\x1b\[[0-9;?]*[A-Za-z]/g, '');

/** Each pod turns ready a few seconds after it starts, so the rollout takes long enough to be drawn more than once. */
const deployments = `<% for (let i = 0; i < ${WORKLOADS}; i++) { %>
---
apiVersion: apps/v1
kind: Deployment
metadata:
  name: web-<%= i %>
spec:
  replicas: 1
  selector: {matchLabels: {app: web-<%= i %>}}
  template:
    metadata:
      labels: {app: web-<%= i %>}
      annotations: {rev: "<%= values.rev %>"}
    spec:
      terminationGracePeriodSeconds: 0
      containers:
      - name: app
        image: <%= images.app %>
        command: [sh, -c, "sleep <%= 1 + i % 4 %>; <% if (values.never !== 'web-' + i) { %>touch /tmp/ready; <% } %>exec sleep 3600"]
        resources: {requests: {cpu: 5m, memory: 8Mi}}
        readinessProbe:
          exec: {command: [test, -f, /tmp/ready]}
          periodSeconds: 1
<% } %>
`;

/** `skiff <args>` on a pseudo-terminal as onTerminal, sent SIGINT once what it printed passes `until`. */
async function interruptedOnTerminal(args: string[], until: (text: string) => boolean) {
  const command = `stty cols ${COLUMNS} rows ${ROWS} && exec ${[skiffBin, ...args].map(quote).join(' ')}`;
  const child = execa('script', ['-qfec', command, '/dev/null'], {
    cwd: dir,
    env: { ...process.env, CI: undefined, GITLAB_CI: undefined, NO_COLOR: undefined, TERM: 'xterm', ...env },
    extendEnv: false,
    reject: false,
    timeout: 300_000,
  });
  let text = '';
  let sent = false;
  child.stdout.on('data', (chunk: Buffer) => {
    text += chunk.toString();
    if (sent || !until(text)) return;
    sent = true;
    // script's child is skiff itself (the shell exec'd it): Ctrl-C as the terminal would send it, to skiff alone.
    void execa('pgrep', ['-P', String(child.pid)]).then((r) => process.kill(Number(r.stdout.trim().split('\n')[0]), 'SIGINT'));
  });
  const r = await child;
  return { exitCode: r.exitCode ?? -1, sent, text: String(r.stdout).replaceAll('\r\n', '\n') };
}

/** A shell word: the command line `script -c` runs is the test's own, but quoted all the same. */
const quote = (word: string) => `'${word.replaceAll("'", `'\\''`)}'`;

/** `skiff <args>` on a pseudo-terminal of COLUMNS×ROWS; what the terminal received (stdout and stderr, \r\n as \n). */
async function onTerminal(args: string[], extraEnv: Record<string, string> = {}) {
  const command = `stty cols ${COLUMNS} rows ${ROWS} && exec ${[skiffBin, ...args].map(quote).join(' ')}`;
  const r = await execa('script', ['-qfec', command, '/dev/null'], {
    cwd: dir,
    env: { ...process.env, CI: undefined, GITLAB_CI: undefined, NO_COLOR: undefined, TERM: 'xterm', ...env, ...extraEnv },
    extendEnv: false,
    reject: false,
    timeout: 300_000,
  });
  return { exitCode: r.exitCode ?? -1, text: String(r.stdout).replaceAll('\r\n', '\n') };
}

beforeAll(async () => {
  await requireCluster();
  dir = await committedProject(
    'live',
    {
      'skiff.yaml': `project: live\nimages:\n  app: {}\nenvironments:\n  testing:\n    namespace: ${namespace}\n`,
      Dockerfile: 'FROM skiff-base/busybox:1\n',
      '.kube/web.yaml.ejs': deployments,
      '.kube/values.yaml': 'rev: "1"\nnever: none\n',
    },
    'twelve deployments',
  );
  const build = await skiff(['build', '--push'], { cwd: dir, env });
  expect(build.exitCode, build.all).toBe(0);
}, 600_000);

afterAll(async () => {
  await kubectl(['delete', 'namespace', namespace, '--wait=false', '--ignore-not-found'], { allowFailure: true });
  await removeTempDirs();
});

it('on a terminal: a table redrawn in place that fits the terminal, then printed once as plain lines, and the cursor shown again', async () => {
  const r = await onTerminal(['deploy', 'testing']);
  expect(r.exitCode, r.text).toBe(0);
  const redraws = [...r.text.matchAll(REDRAW)];
  expect(redraws.length, r.text).toBeGreaterThanOrEqual(2);
  // The block never outgrows the screen (the cursor could not move back over it), nor a line its width.
  for (const [, lines] of redraws) expect(Number(lines)).toBeLessThanOrEqual(ROWS - 1);
  // A redraw moves up over the block drawn before it: the last lines before it (scrolled lines may come first).
  const blocks = redraws.slice(1).map((m, i) => {
    const before = plain(r.text.slice(redraws[i]!.index + redraws[i]![0].length, m.index)).split('\n');
    return before.slice(0, -1).slice(-Number(m[1]));
  });
  for (const line of blocks.flat()) expect(line.length, line).toBeLessThan(COLUMNS);
  const drawn = blocks.flat();
  expect(drawn.some((l) => /^\[[#-]+\] \d+% {2}\d+\/12 objects ready; pods \d+\/12 ready/.test(l))).toBe(true);
  // 12 objects in 11 rows: unready first, the rest on one line.
  expect(drawn.some((l) => /^\+\d+ (ready|more: \d+ not ready, \d+ ready)$/.test(l))).toBe(true);
  expect(drawn.some((l) => /^Deployment\/web-\d+ +0\/1 +waiting +\S/.test(l))).toBe(true);

  // After the last redraw: the final table as plain lines, every object, then the verdict.
  const last = redraws.at(-1)!;
  const tail = r.text.slice(last.index + last[0].length);
  const tailLines = tail.split('\n');
  expect(tailLines[0]).toMatch(/^OBJECT +READY +STATE +CAUSE$/);
  const rows = tailLines.slice(1, 1 + WORKLOADS);
  for (const row of rows) expect(row).toMatch(/^Deployment\/web-\d+ +\d\/1 +ready$/);
  expect(new Set(rows.map((l) => l.split(' ')[0])).size).toBe(WORKLOADS);
  expect(plain(tail)).toMatch(/^release: ready \(12\/12 objects ready; /m);
  expect(plain(tail)).toMatch(/^release live-testing revision 1 deployed/m);
  // The cursor hidden while the table was up, shown again after it.
  expect(r.text.lastIndexOf('\x1b[?25h')).toBeGreaterThan(r.text.lastIndexOf('\x1b[?25l'));
  expect(r.text.indexOf('\x1b[?25l')).toBeGreaterThan(-1);
});

it('without a terminal (CI, a file): the status lines as before, no escape codes', async () => {
  const r = await skiff(['deploy', 'testing', '--set', 'rev=2'], { cwd: dir, env: { ...env, NO_COLOR: undefined, TERM: 'xterm' } });
  expect(r.exitCode, r.all).toBe(0);
  expect(r.all).not.toMatch(ESCAPE);
  const lines = r.stderr.split('\n');
  expect(lines.filter((l) => /^Deployment\/web-\d+: ready \(1\/1 updated, 1\/1 available\)$/.test(l))).toHaveLength(WORKLOADS);
  expect(lines).toContainEqual(expect.stringMatching(/^release: ready \(12\/12 objects ready; pods \d+\/12 ready, 12\/12 updated\)$/));
  expect(lines.some((l) => l.startsWith('OBJECT'))).toBe(false);
});

it('on a terminal with TERM=dumb or NO_COLOR: plain lines, as in a log', async () => {
  for (const [rev, extra] of [
    ['3', { TERM: 'dumb' }],
    ['4', { NO_COLOR: '1' }],
  ] as const) {
    const r = await onTerminal(['deploy', 'testing', '--set', `rev=${rev}`], extra);
    expect(r.exitCode, r.text).toBe(0);
    expect(r.text, JSON.stringify(extra)).not.toMatch(ESCAPE);
    expect(r.text.split('\n').filter((l) => /^Deployment\/web-\d+: ready/.test(l))).toHaveLength(WORKLOADS);
  }
});

it('on a terminal, Ctrl-C during the rollout: the last state printed once as plain lines, the cursor shown, exit 130', async () => {
  // Interrupted once every object but web-3 (whose pods never turn ready; its old pod stays) is ready.
  const r = await interruptedOnTerminal(['deploy', 'testing', '--set', 'rev=5', '--set', 'never=web-3'], (text) => / 11\/12 objects ready;/.test(plain(text)));
  expect(r.sent, r.text).toBe(true);
  expect(r.exitCode, r.text).toBe(130);
  const last = [...r.text.matchAll(REDRAW)].at(-1)!;
  const tail = r.text.slice(last.index + last[0].length);
  // The warning that skiff is stopping may come first (a line scrolls above the block).
  const all = tail.split('\n');
  const lines = all.slice(all.findIndex((l) => l.startsWith('OBJECT')));
  expect(lines[0]).toMatch(/^OBJECT +READY +STATE +CAUSE$/);
  // What held the release back comes first, with why.
  expect(lines[1]).toMatch(/^Deployment\/web-3 +\d\/1 +waiting +.*readiness probe failing/);
  expect(lines.slice(1, 1 + WORKLOADS).every((l) => /^Deployment\/web-\d+ +\d\/1 +(ready|waiting)/.test(l))).toBe(true);
  expect(r.text.lastIndexOf('\x1b[?25h')).toBeGreaterThan(r.text.lastIndexOf('\x1b[?25l'));
});
