import { KubeApiError, type KubeClient } from '../kube/kube-client.js';
import { fenceWrites } from './lock.js';
import { RecordExistsError, type ReleaseDriver } from './storage.js';
import type { KubeObject } from '../kube/objects.js';

/** Release records as Secrets in the release namespace (Helm's default driver). Dumb: no rules here. */
export class SecretDriver implements ReleaseDriver {
  constructor(
    private readonly kube: KubeClient,
    private readonly namespace: string,
  ) {}

  async create(secrets: KubeObject[]): Promise<KubeObject[]> {
    const stored: KubeObject[] = [];
    for (const s of secrets) {
      try {
        stored.push(await this.kube.create({ ...s, metadata: { ...s.metadata, namespace: this.namespace } }));
      } catch (e) {
        // The client already told a repeat of our own landed create (same content) from this.
        if (e instanceof KubeApiError && e.status === 409) throw new RecordExistsError(s.metadata.name, { cause: e });
        throw e;
      }
    }
    return stored;
  }

  async update(secrets: KubeObject[], opts: { resourceVersions?: ReadonlyMap<string, string> } = {}): Promise<KubeObject[]> {
    const stored: KubeObject[] = [];
    for (const s of secrets) {
      const write = (resourceVersion: string | undefined) => ({ ...s, metadata: { ...s.metadata, namespace: this.namespace, resourceVersion } });
      if (opts.resourceVersions) {
        // Only unchanged since this run wrote it: replaced at the version written, else only created.
        const version = opts.resourceVersions.get(s.metadata.name);
        stored.push(await (version ? this.kube.replace(write(version)) : this.kube.create(write(undefined))));
        continue;
      }
      const existing = await this.kube.get('v1', 'Secret', this.namespace, s.metadata.name);
      stored.push(await (existing ? this.kube.replace(write(existing.metadata.resourceVersion as string | undefined)) : this.kube.create(write(undefined))));
    }
    return stored;
  }

  async list(release: string): Promise<KubeObject[]> {
    return (await this.kube.list('v1', 'Secret', this.namespace, { labelSelector: `owner=skiff,name=${release}` })).items;
  }

  async delete(names: string[]): Promise<void> {
    for (const n of names) await this.kube.delete('v1', 'Secret', this.namespace, n);
  }

  fenced(lost: AbortSignal): ReleaseDriver {
    return new SecretDriver(fenceWrites(this.kube, lost), this.namespace);
  }
}
