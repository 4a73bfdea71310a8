import { KubeApiError, type KubeClient } from '../kube/client.js';
import { RecordExistsError, type ReleaseDriver } from './storage.js';
import type { KubeObject } from '../kube/types.js';

/** Release records as Secrets in the release namespace (Helm's default driver). Dumb: no rules here. */
export class SecretDriver implements ReleaseDriver {
  constructor(
    private readonly kube: KubeClient,
    private readonly namespace: string,
  ) {}

  async create(secrets: KubeObject[]): Promise<void> {
    for (const s of secrets) {
      try {
        await this.kube.create({ ...s, metadata: { ...s.metadata, namespace: this.namespace } });
      } catch (e) {
        // The client already told a repeat of our own landed create (same content) from this.
        if (e instanceof KubeApiError && e.status === 409) throw new RecordExistsError(s.metadata.name, { cause: e });
        throw e;
      }
    }
  }

  async update(secrets: KubeObject[]): Promise<void> {
    for (const s of secrets) {
      const existing = await this.kube.get('v1', 'Secret', this.namespace, s.metadata.name);
      if (!existing) await this.kube.create({ ...s, metadata: { ...s.metadata, namespace: this.namespace } });
      else await this.kube.replace({ ...s, metadata: { ...s.metadata, namespace: this.namespace, resourceVersion: existing.metadata.resourceVersion } });
    }
  }

  async list(release: string): Promise<KubeObject[]> {
    return (await this.kube.list('v1', 'Secret', this.namespace, { labelSelector: `owner=skiff,name=${release}` })).items;
  }

  async delete(names: string[]): Promise<void> {
    for (const n of names) await this.kube.delete('v1', 'Secret', this.namespace, n);
  }
}
