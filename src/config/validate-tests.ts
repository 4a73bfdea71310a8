import type { ImageConfig, TestConfig } from './project-config.js';
import { ENV_VAR, type ConfigReader, type Plain } from './config-reader.js';

/** A test name is also a folder (.skiff/reports/<test>) and a GitLab log section: no "/", no leading ".". */
const TEST_NAME = /^[A-Za-z0-9][A-Za-z0-9._-]{0,62}$/;

/** `tests.<name>`: the image each test runs in, its command, and the reports it leaves. */
export function validateTests(r: ConfigReader, raw: unknown, images: Record<string, ImageConfig>): Record<string, TestConfig> {
  const tests: Record<string, TestConfig> = {};
  for (const [name, value] of Object.entries(r.mapping(raw, 'tests') ?? {})) {
    const path = `tests.${name}`;
    if (!TEST_NAME.test(name))
      r.problem(
        path,
        `test name "${name}" must be at most 63 letters, digits, ".", "_" or "-", starting with a letter or digit (it names .skiff/reports/<test>)`,
      );
    else if (name.toLowerCase() === 'junit.xml')
      r.problem(path, `test name "${name}" is taken: .skiff/reports/junit.xml is the JUnit report of all tests; rename the test`);
    tests[name] = validateTest(r, r.mapping(value, path) ?? {}, name, images);
  }
  return tests;
}

function validateTest(r: ConfigReader, t: Plain, name: string, images: Record<string, ImageConfig>): TestConfig {
  const path = `tests.${name}`;
  r.knownKeys(t, path, ['image', 'command', 'env', 'workdir', 'timeout', 'reports', 'network']);
  const image = r.string(t.image, `${path}.image`, { required: true, hint: 'name an image from the images section' }) ?? '';
  if (image && !images[image])
    r.problem(`${path}.image`, `${path}.image names "${image}", which is not an image in skiff.yaml (images: ${Object.keys(images).join(', ')})`);
  let command: string[] = [];
  if (typeof t.command === 'string') command = ['sh', '-c', t.command];
  else if (t.command === undefined) r.problem(path, `${path}.command is required, e.g. command: ["sh", "-c", "./run-tests"]`);
  else command = r.stringList(t.command, `${path}.command`);
  if (Array.isArray(t.command) && t.command.length === 0) r.problem(`${path}.command`, `${path}.command is empty`);
  const network = r.string(t.network, `${path}.network`) ?? 'none';
  if (network !== 'none' && network !== 'host') r.problem(`${path}.network`, `${path}.network must be "none" or "host", got "${network}"`);
  const reports = r.stringList(t.reports, `${path}.reports`);
  reports.forEach((report, i) => {
    const at = `${path}.reports[${i}]`;
    if (!report.startsWith('/')) r.problem(at, `${at} must be an absolute path inside the container, got "${report}"`);
    // Reports are copied below .skiff/reports/<test>/: a ".." could name something outside it.
    else if (report.split('/').includes('..')) r.problem(at, `${at} "${report}" has a ".." segment; name the file by its plain absolute path`);
  });
  const workdir = r.string(t.workdir, `${path}.workdir`);
  if (workdir !== undefined && !workdir.startsWith('/')) r.problem(`${path}.workdir`, `${path}.workdir must be an absolute path, got "${workdir}"`);
  return {
    name,
    image,
    command,
    env: r.stringMap(t.env, `${path}.env`, ENV_VAR),
    workdir,
    timeoutMs: r.duration(t.timeout, `${path}.timeout`, 10 * 60_000),
    reports,
    network: network === 'host' ? 'host' : 'none',
  };
}
