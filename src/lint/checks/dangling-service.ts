import { serviceSelection, type ObjectCheck } from '../check.js';

/** A Service whose selector matches no pod template, rendered or already running: it never gets endpoints. */
export const danglingService: ObjectCheck = {
  check: 'dangling-service',
  on: 'object',
  run(m, ctx, report) {
    const selected = serviceSelection(m, ctx);
    if (!selected || selected.pods.length) return;
    const shown = Object.entries(selected.selector)
      .map(([k, v]) => `${k}=${v}`)
      .join(',');
    report(
      'spec.selector',
      `no pods found matching service labels ${shown} in namespace ${selected.namespace}`,
      'make spec.selector equal to the labels of a pod template (spec.template.metadata.labels), or remove the selector for hand-made Endpoints',
    );
  },
};
