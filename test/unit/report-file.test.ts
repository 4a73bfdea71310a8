import { mkdir, mkdtemp, readFile, symlink, writeFile, lstat } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { checkReportPaths, historyReportPath, reportPath, revisionReportPath, writeReportFile } from '../../src/report/release-report.js';

const target = (env: string, slug = env) => ({ env, slug });

describe('the report file', () => {
  it('is .skiff/report/<env>.html, a dynamic environment by its slug; a name that is no file name is refused', () => {
    expect(reportPath(target('staging'))).toBe('.skiff/report/staging.html');
    expect(revisionReportPath(target('staging'), 7)).toBe('.skiff/report/staging/7.html');
    expect(historyReportPath(target('staging'))).toBe('.skiff/report/staging/history.html');
    expect(reportPath(target('review/feature-x', 'review-feature-x-3k2j'))).toBe('.skiff/report/review-feature-x-3k2j.html');
    expect(() => reportPath(target('../../etc', '..'))).toThrow(/gives no file name for its report/);
    expect(() => reportPath(target('.hidden', ''))).toThrow(/gives no file name/);
  });

  it('is written inside the repository, never through a symlink; a symlink, a folder on the way or a folder there is refused (exit 2)', async () => {
    const root = await mkdtemp(join(tmpdir(), 'skiff-report-'));
    const outside = await mkdtemp(join(tmpdir(), 'skiff-outside-'));
    await writeReportFile(root, reportPath(target('staging')), '<p>one</p>');
    expect(await readFile(join(root, '.skiff/report/staging.html'), 'utf8')).toBe('<p>one</p>');
    // .skiff ignores itself, so a report is never committed.
    expect(await readFile(join(root, '.skiff/.gitignore'), 'utf8')).toContain('*');

    await symlink(join(outside, 'prod.html'), join(root, '.skiff/report/prod.html'));
    await expect(writeReportFile(root, reportPath(target('prod')), 'x')).rejects.toMatchObject({ exitCode: 2 });
    await expect(checkReportPaths(root, target('prod'))).rejects.toThrow(/symbolic link|symlink/);
    await expect(lstat(join(outside, 'prod.html'))).rejects.toThrow();

    await symlink(outside, join(root, '.skiff/report/dev'));
    await expect(checkReportPaths(root, target('dev'))).rejects.toMatchObject({ exitCode: 2 });

    await mkdir(join(root, '.skiff/report/qa.html'));
    await expect(checkReportPaths(root, target('qa'))).rejects.toThrow(/not a regular file/);

    const repo2 = await mkdtemp(join(tmpdir(), 'skiff-report-'));
    await symlink(outside, join(repo2, '.skiff'));
    await expect(writeReportFile(repo2, reportPath(target('staging')), 'x')).rejects.toMatchObject({ exitCode: 2 });
    await writeFile(join(outside, 'keep'), 'k');
    await expect(lstat(join(outside, 'report'))).rejects.toThrow();
  });
});
