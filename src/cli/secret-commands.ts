import { createInterface } from 'node:readline/promises';
import type { Command } from 'commander';
import type { RunContext } from '../context.js';
import { ParsedFlags } from './flags.js';
import { printJson, run } from './session.js';

async function readStdin(ctx: RunContext, what: string): Promise<Buffer> {
  if (process.stdin.isTTY) ctx.reporter.info(`reading ${what} from the terminal: type it, then Ctrl-D (or pipe it in)`);
  const chunks: Buffer[] = [];
  for await (const chunk of process.stdin) chunks.push(typeof chunk === 'string' ? Buffer.from(chunk) : (chunk as Buffer));
  return Buffer.concat(chunks);
}

/** On a terminal, asks whether to fix an invalid edit in the editor again; elsewhere the edit fails. */
async function askRetry(problem: string): Promise<boolean> {
  if (!process.stdin.isTTY || !process.stderr.isTTY) return false;
  const rl = createInterface({ input: process.stdin, output: process.stderr });
  try {
    const answer = await rl.question(`${problem}\nopen the editor again to fix it? [Y/n] `);
    return !/^n/i.test(answer.trim());
  } finally {
    rl.close();
  }
}

/** A file or value to encrypt or decrypt: a value is bound to its key path and its secret-values file. */
interface SecretTarget {
  keyPath?: string;
  file?: string;
  valuesFile?: string;
}

/** What encrypt and decrypt differ in: their help and the transformation itself. */
interface ValueCommand {
  name: string;
  description: string;
  keyPathHelp: string;
  fileHelp: string;
  help: string;
  transform: (ctx: RunContext, target: SecretTarget) => Promise<{ result: unknown; text: string }>;
}

/** encrypt and decrypt: a value (bound to its key path) or a whole file, stdin to stdout. */
function addValueCommand(program: Command, secret: Command, spec: ValueCommand) {
  const cmd = secret
    .command(spec.name)
    .description(spec.description)
    .argument('[key-path]', spec.keyPathHelp)
    .option('--file <path>', spec.fileHelp)
    .option('--values-file <path>', 'the secret-values file of the key path (default: .kube/secret-values.yaml); the value is bound to it')
    .addHelpText('after', spec.help);
  cmd.action((keyPath: string | undefined) =>
    run(program, async ({ ctx, json }) => {
      const flags = ParsedFlags.of(cmd);
      const { result, text } = await spec.transform(ctx, { keyPath, file: flags.string('file'), valuesFile: flags.string('valuesFile') });
      if (json) printJson(result);
      else process.stdout.write(text);
    }),
  );
}

export function addSecretCommands(program: Command) {
  const secret = program
    .command('secret')
    .description('encrypted values and files in the repository: key, encrypt, decrypt, edit, rotate-key')
    .addHelpText(
      'after',
      `
The key is read from SKIFF_SECRET_KEY, then .skiff_secret_key at the repository
root (mode 600, not committed), then ~/.skiff/secret_key. werf's values are read
with WERF_SECRET_KEY, else the same key.

Examples:
  (umask 077; skiff secret generate-key > .skiff_secret_key)
  skiff secret edit .kube/secret-values.yaml
  printf %s "$TOKEN" | skiff secret encrypt api.token
  skiff secret encrypt --file tls/key.pem < key.pem > .kube/secret/tls/key.pem
  SKIFF_OLD_SECRET_KEY=… SKIFF_SECRET_KEY=… skiff secret rotate-key`,
    );

  addGenerateKeyCommand(program, secret);
  addValueCommand(program, secret, {
    name: 'encrypt',
    description: 'encrypt a value or a file from stdin to stdout',
    keyPathHelp: 'the key path the value goes to in a secret-values file, e.g. db.password',
    fileHelp: 'encrypt a whole file for .kube/secret/<path> (what secretFile() reads)',
    help: '\nA value is bound to its key path and its secret-values file, a file to its path: copied elsewhere, it does not decrypt.\nOne final newline of a value is dropped.\n\nExamples:\n  printf %s "$DB_PASSWORD" | skiff secret encrypt db.password --values-file .kube/secret-values.production.yaml\n  skiff secret encrypt --file tls/key.pem < key.pem > .kube/secret/tls/key.pem',
    transform: async (ctx, target) => {
      const { runEncrypt } = await import('../secrets/encrypt.js');
      const r = await runEncrypt(ctx, { ...target, input: await readStdin(ctx, target.file ? 'the file' : 'the value') });
      return { result: r, text: `${r.ciphertext}\n` };
    },
  });
  addValueCommand(program, secret, {
    name: 'decrypt',
    description: "decrypt a value or a file (skiff's or werf's) from stdin to stdout",
    keyPathHelp: 'the key path the value belongs to (for werf values: not needed)',
    fileHelp: 'the path under .kube/secret/ the file belongs to',
    help: '\nExamples:\n  skiff secret decrypt db.password --values-file .kube/secret-values.production.yaml <<< "skiff:v2:…"\n  skiff secret decrypt --file tls/key.pem < .kube/secret/tls/key.pem',
    transform: async (ctx, target) => {
      const { runDecrypt } = await import('../secrets/decrypt.js');
      const r = await runDecrypt(ctx, { ...target, input: (await readStdin(ctx, 'the ciphertext')).toString('utf8') });
      return { result: r, text: process.stdout.isTTY && !r.plaintext.endsWith('\n') ? `${r.plaintext}\n` : r.plaintext };
    },
  });
  addEditCommand(program, secret);
  addRotateKeyCommand(program, secret);
}

function addGenerateKeyCommand(program: Command, secret: Command) {
  secret
    .command('generate-key')
    .description('print a new random key (256 bits, hex)')
    .action(() =>
      run(program, async ({ json }) => {
        const { runGenerateKey } = await import('../secrets/generate-key.js');
        const r = runGenerateKey();
        if (json) return printJson(r);
        process.stdout.write(`${r.key}\n`);
      }),
    );
}

function addEditCommand(program: Command, secret: Command) {
  secret
    .command('edit')
    .description('edit a secret-values file or a secret file in $EDITOR; only changed values are encrypted again')
    .argument('<file>', '.kube/secret-values[.<env>].yaml, or a file under .kube/secret/ (created when missing)')
    .addHelpText(
      'after',
      '\nThe plain copy is a 0600 file in /dev/shm (else the temporary folder), removed when the editor closes.\n\nExamples:\n  skiff secret edit .kube/secret-values.yaml\n  EDITOR="code --wait" skiff secret edit .kube/secret/tls/key.pem',
    )
    .action((file: string) =>
      run(program, async ({ ctx, json }) => {
        const { runEdit } = await import('../secrets/edit.js');
        const r = await runEdit(ctx, { file, retry: askRetry });
        if (json) return printJson(r);
        if (r.unchanged) return ctx.reporter.info(`${r.file}: no changes`);
        const what = r.encrypted.length ? `encrypted ${r.encrypted.join(', ')}` : 'rewritten';
        const kept = r.kept === 1 ? '; 1 unchanged value kept its ciphertext' : r.kept ? `; ${r.kept} unchanged values kept their ciphertext` : '';
        ctx.reporter.info(`${r.file}: ${r.created ? 'created, ' : ''}${what}${kept}`);
      }),
    );
}

function addRotateKeyCommand(program: Command, secret: Command) {
  const cmd = secret
    .command('rotate-key')
    .description('re-encrypt every secret file under .kube/ with the current key, from SKIFF_OLD_SECRET_KEY; all files or none')
    .option('--from-werf', "also convert values in werf's format (key: WERF_SECRET_KEY, else SKIFF_OLD_SECRET_KEY)")
    .addHelpText(
      'after',
      `
Examples:
  # A new key, saved (mode 600, outside the repository) before anything is encrypted with it; the old key file
  # is replaced only once every file is re-encrypted. Then give the new key to CI (SKIFF_SECRET_KEY) and the team.
  (umask 077; skiff secret generate-key > ~/.skiff_new_secret_key)
  SKIFF_OLD_SECRET_KEY=$(cat .skiff_secret_key) SKIFF_SECRET_KEY=$(cat ~/.skiff_new_secret_key) skiff secret rotate-key \\
    && mv ~/.skiff_new_secret_key .skiff_secret_key

  # Values in werf's format made skiff's, with the key in .skiff_secret_key.
  WERF_SECRET_KEY=… skiff secret rotate-key --from-werf`,
    );
  cmd.action(() =>
    run(program, async ({ ctx, json }) => {
      const { runRotateKey } = await import('../secrets/rotate-key.js');
      const r = await runRotateKey(ctx, { fromWerf: ParsedFlags.of(cmd).boolean('fromWerf') });
      if (json) return printJson(r);
      if (r.files.length === 0) return ctx.reporter.info('no secret files under .kube/: nothing to rotate');
      for (const f of r.files) ctx.reporter.info(`${f.file}: ${f.rotated ? `${f.rotated} re-encrypted` : 'already on the current key'}`);
      ctx.reporter.info(`every secret is encrypted with key ${r.keyId} now: commit the files, and give the new key to CI and the team`);
    }),
  );
}
