import { stringify } from 'yaml';
import type { Manifest } from '../kube/objects.js';

// Apart from format.ts so that only `render` loads the YAML library: every command's start-up pays for what it imports.

/** The rendered objects as one YAML stream, each with the template it came from. */
export function manifestsToYaml(manifests: Manifest[]): string {
  return manifests.map((m) => `# Source: ${m.source.file}\n${stringify(m.object)}`).join('---\n');
}
