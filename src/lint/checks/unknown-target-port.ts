import type { ApiFields } from '../../kube/objects.js';
import { serviceSelection, type ContainerCheck, type ObjectCheck } from '../check.js';
import { declaredPortNames, objectId, portNamesOf } from '../pod-templates.js';

/** A Service's named targetPort that no container of the pods it selects declares: traffic goes nowhere. */
export const serviceTargetPort: ObjectCheck = {
  check: 'unknown-target-port',
  on: 'object',
  run(m, ctx, report) {
    const selected = serviceSelection(m, ctx);
    if (!selected?.pods.length) return;
    const { pods } = selected;
    const names = new Set(pods.flatMap((t) => [...declaredPortNames(t)]));
    (((m.object.spec as ApiFields | undefined)?.ports ?? []) as ApiFields[]).forEach((p, i) => {
      if (typeof p.targetPort !== 'string' || names.has(p.targetPort)) return;
      report(
        `spec.ports[${i}].targetPort`,
        `port name "${p.targetPort}" is declared by no container of the selected pods (${[...new Set(pods.map((t) => objectId(t.owner)))].join(', ')})`,
        names.size ? `use one of ${[...names].join(', ')} or a port number` : 'name the container port (ports[].name) or use a port number',
      );
    });
  },
};

const PROBES = ['readinessProbe', 'livenessProbe', 'startupProbe'];
const HANDLERS = ['httpGet', 'tcpSocket', 'grpc'];

/** A probe naming a port its container does not declare: the probe fails and the pod never becomes ready. */
export const probePort: ContainerCheck = {
  check: 'unknown-target-port',
  on: 'container',
  run({ field, container: c }, _t, _ctx, report) {
    const ports = new Set(portNamesOf(c));
    for (const probe of PROBES) {
      const p = c[probe] as ApiFields | undefined;
      for (const handler of HANDLERS) {
        const port = p?.[handler]?.port as unknown;
        if (typeof port !== 'string' || ports.has(port)) continue;
        report(
          `${field}.${probe}.${handler}.port`,
          `port name "${port}" is not declared by container ${c.name as string}`,
          `declare it in the container's ports (name: ${port}) or use the port number`,
        );
      }
    }
  },
};
