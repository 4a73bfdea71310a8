import type { ApiFields, KubeObject } from '../../kube/objects.js';
import { servicesIn, type ObjectCheck } from '../check.js';
import { namespaceOf } from '../pod-templates.js';

/** Every backend of an Ingress, with its field path. */
function backendsOf(spec: ApiFields | undefined): Array<[string, ApiFields]> {
  const backends: Array<[string, ApiFields]> = [];
  if (spec?.defaultBackend) backends.push(['spec.defaultBackend', spec.defaultBackend as ApiFields]);
  if (spec?.backend) backends.push(['spec.backend', spec.backend as ApiFields]);
  ((spec?.rules ?? []) as ApiFields[]).forEach((r, i) =>
    ((r.http?.paths ?? []) as ApiFields[]).forEach((p, j) => backends.push([`spec.rules[${i}].http.paths[${j}].backend`, p.backend as ApiFields])),
  );
  return backends;
}

/** An Ingress backend naming a Service that does not exist, or a port that Service lacks. */
export const danglingIngress: ObjectCheck = {
  check: 'dangling-ingress',
  on: 'object',
  run(m, ctx, report) {
    if (m.object.kind !== 'Ingress') return;
    const services: KubeObject[] = servicesIn(ctx, namespaceOf(m.object, ctx.input.namespace));
    for (const [field, b] of backendsOf(m.object.spec as ApiFields | undefined)) {
      // networking.k8s.io/v1 (service.name, service.port) and the old extensions/v1beta1 (serviceName, servicePort).
      const name = (b?.service?.name ?? b?.serviceName) as string | undefined;
      const port = (b?.service?.port?.number ?? b?.service?.port?.name ?? b?.servicePort) as number | string | undefined;
      if (!name) continue;
      const svc = services.find((s) => s.metadata.name === name) as ApiFields | undefined;
      if (!svc) {
        const names = services.map((s) => s.metadata.name);
        report(
          `${field}.service.name`,
          `Service ${name} does not exist`,
          names.length ? `use one of ${names.join(', ')}, or add the Service` : 'add the Service',
        );
        continue;
      }
      if (port === undefined) continue;
      const ports = (svc.spec?.ports ?? []) as ApiFields[];
      const ok = ports.some((p) => (typeof port === 'number' ? p.port === port : p.name === port || String(p.port) === port));
      if (ok) continue;
      const shown = ports.map((p) => (p.name ? `${p.name as string} (${p.port as number})` : String(p.port))).join(', ');
      report(`${field}.service.port`, `Service ${name} has no port ${String(port)}`, `use one of its ports: ${shown || 'none'}`);
    }
  },
};
