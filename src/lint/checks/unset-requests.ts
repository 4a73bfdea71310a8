import type { ApiFields } from '../../kube/objects.js';
import type { ContainerCheck } from '../check.js';

/** A container (not an init container) that requests no CPU or memory. */
export const unsetRequests: ContainerCheck = {
  check: 'unset-requests',
  on: 'container',
  run({ field, init, container: c }, _t, _ctx, report) {
    const requests = (c.resources as ApiFields | undefined)?.requests as object | undefined;
    if (init || (requests && Object.keys(requests).length)) return;
    report(
      `${field}.resources.requests`,
      `container ${c.name as string} requests no CPU or memory: the scheduler packs it blindly and it is evicted first`,
      'set resources.requests.cpu and resources.requests.memory',
    );
  },
};
