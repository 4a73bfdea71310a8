/** Owns running the user's editor for `skiff secret edit`: $VISUAL or $EDITOR on the terminal, stopped with skiff, without the key variables. */
import { spawn } from 'node:child_process';
import { childEnv } from '../adapters/child-env.js';
import { ConfigError, ExitCode, SkiffError } from '../errors.js';

/** Runs an editor on a file until it exits; rejects when it fails or `signal` stops it. */
export type FileEditor = (file: string, signal: AbortSignal) => Promise<void>;

/** The edit was stopped (Ctrl-C, a closed terminal): exit 130, and nothing was written. */
export function editInterrupted(): SkiffError {
  return new SkiffError('interrupted', ExitCode.interrupted, 'interrupted: nothing was written, and the plain copy was removed');
}

/** $VISUAL or $EDITOR (with its arguments, through sh), else vi, on the terminal; the key variables are not passed on. */
export function terminalEditor(env: NodeJS.ProcessEnv): FileEditor {
  const editor = env.VISUAL?.trim() || env.EDITOR?.trim() || 'vi';
  const editorEnv = childEnv(env); // no keys, no registry passwords
  return (file, signal) =>
    new Promise((resolvePromise, reject) => {
      // exec: the editor replaces the shell, so stopping it reaches the editor itself.
      const child = spawn('sh', ['-c', `exec ${editor} "$1"`, 'skiff-edit', file], { stdio: 'inherit', env: editorEnv });
      const stop = () => child.kill('SIGTERM');
      signal.addEventListener('abort', stop, { once: true });
      child.on('error', (e) => reject(new ConfigError(`cannot start the editor "${editor}": ${e.message}; set EDITOR`)));
      child.on('exit', (code, sig) => {
        signal.removeEventListener('abort', stop);
        if (signal.aborted) return reject(editInterrupted());
        if (code === 0) return resolvePromise();
        reject(new ConfigError(`the editor "${editor}" ${sig ? `was stopped by ${sig}` : `exited with code ${code}`}; nothing was written`));
      });
    });
}
