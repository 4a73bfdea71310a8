import type { ApiFields } from '../../kube/objects.js';
import type { PodTemplateCheck } from '../check.js';
import { objectId, selects, type LabelSelector } from '../pod-templates.js';

const isJob = (kind: string) => kind === 'Job' || kind === 'CronJob';

/** A workload whose selector also matches another workload's pods: the two controllers fight over them. */
export const overlappingSelector: PodTemplateCheck = {
  check: 'overlapping-selector',
  on: 'pod-template',
  run(t, ctx, report) {
    const o = t.owner;
    const selector = (o.spec as ApiFields | undefined)?.selector as LabelSelector | undefined;
    if (!selector || isJob(o.kind)) return;
    for (const other of ctx.rendered) {
      // A Job's pods carry their controller's reference: a ReplicaSet never adopts them.
      if (other.owner === o || other.namespace !== t.namespace || isJob(other.owner.kind)) continue;
      if (!selects(selector, other.labels)) continue;
      report(
        'spec.selector',
        `selector also matches the pods of ${objectId(other.owner)}: the two controllers fight over them`,
        `give each workload a distinguishing label in its selector and pod template`,
      );
    }
  },
};
