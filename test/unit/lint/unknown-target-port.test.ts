import { describe, expect, it } from 'vitest';
import { checks, deployment, lint, service } from './fixtures.js';

describe('unknown-target-port', () => {
  it('passes a named targetPort and probe port that the container declares', () => {
    const web = deployment('web', { container: { readinessProbe: { httpGet: { path: '/', port: 'http' } } } });
    expect(checks([web, service('web', { app: 'web' }, 'http')])).toEqual([]);
  });

  it('reports a Service targetPort name and a probe port name nobody declares', () => {
    const web = deployment('web', { container: { readinessProbe: { httpGet: { path: '/', port: 'htp' } } } });
    expect(checks([web, service('web', { app: 'web' }, 'htpp')])).toEqual([
      'unknown-target-port Deployment/web spec.template.spec.containers[0].readinessProbe.httpGet.port',
      'unknown-target-port Service/web spec.ports[0].targetPort',
    ]);
    expect(lint([deployment('web'), service('web', { app: 'web' }, 'htpp')]).map((f) => `${f.message}; ${f.fix}`)).toEqual([
      'port name "htpp" is declared by no container of the selected pods (Deployment/web); use one of http or a port number',
    ]);
  });
});
