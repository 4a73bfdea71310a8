// Proves the test cluster from `scripts/cluster up` is a working Kubernetes:
// images from the local registry run, failures surface the way skiff will read
// them, and the controllers behind Deployments, Jobs, StatefulSets and PVCs work.
// Each test gets its own namespace. No cluster means failures, not skips.
import { describe, expect, it, onTestFinished } from 'vitest';
import {
  BUSYBOX_IMAGE,
  PROBE_LOG_LINE,
  buildProbeImage,
  createNamespace,
  kubectl,
  kubectlJson,
  requireCluster,
  waitFor,
  waitingReason,
} from '../helpers/cluster.js';
import * as manifests from '../helpers/manifests.js';

const WAIT_MS = 90_000;

/** A container of the local registry's busybox that runs a shell script. */
const busybox = (script: string) => ({ image: BUSYBOX_IMAGE, command: ['/bin/sh', '-c', script] });

async function namespaceFor(prefix: string): Promise<string> {
  await requireCluster();
  const ns = await createNamespace(prefix);
  onTestFinished(() => ns.cleanup());
  return ns.name;
}

async function apply(namespace: string, manifest: string): Promise<void> {
  await kubectl(['-n', namespace, 'apply', '-f', '-'], { input: manifest });
}

describe('test cluster', () => {
  it('runs a Deployment of a locally built image and serves its logs', async () => {
    const ns = await namespaceFor('probe-deploy');
    const image = await buildProbeImage();
    // The kubelet probes over the pod bridge, so Available also proves pod networking.
    await apply(
      ns,
      manifests.deployment('probe', {
        image,
        lines: ['ports: [{ containerPort: 8080 }]', 'readinessProbe: { httpGet: { path: /, port: 8080 }, periodSeconds: 1 }'],
      }),
    );

    const deployment = await waitFor(
      async () => {
        const d = await kubectlJson(['-n', ns, 'get', 'deployment', 'probe']);
        const available = d.status?.conditions?.find((c: any) => c.type === 'Available');
        return available?.status === 'True' && d.status?.availableReplicas === 1 ? d : undefined;
      },
      WAIT_MS,
      { description: 'Deployment probe to become Available' },
    );
    expect(deployment.status.readyReplicas).toBe(1);

    const pods = await kubectlJson(['-n', ns, 'get', 'pods', '-l', 'app=probe']);
    expect(pods.items).toHaveLength(1);
    const pod = pods.items[0];
    expect(pod.spec.containers[0].image).toBe(image);
    expect(pod.status.containerStatuses[0].state.running).toBeDefined();
    expect(pod.status.podIP).toMatch(/^10\.214\.0\./);

    const logs = await waitFor(
      async () => {
        const { stdout } = await kubectl(['-n', ns, 'logs', 'deployment/probe']);
        return stdout.includes(PROBE_LOG_LINE) ? stdout : undefined;
      },
      30_000,
      { description: 'the probe log line' },
    );
    expect(logs).toContain(PROBE_LOG_LINE);

    // The host reaches the pod over the cluster's own bridge.
    const res = await fetch(`http://${pod.status.podIP}:8080/`);
    expect(await res.text()).toContain('skiff cluster probe');
  });

  it('reports CrashLoopBackOff for a container that keeps exiting 1', async () => {
    const ns = await namespaceFor('probe-crash');
    await apply(ns, manifests.pod('crasher', { restartPolicy: 'Always', ...busybox('echo about to fail; exit 1') }));
    const reason = await waitFor(async () => ((await waitingReason(ns, 'crasher')) === 'CrashLoopBackOff' ? 'CrashLoopBackOff' : undefined), WAIT_MS, {
      description: 'pod crasher in CrashLoopBackOff',
    });
    expect(reason).toBe('CrashLoopBackOff');
    const pod = await kubectlJson(['-n', ns, 'get', 'pod', 'crasher']);
    expect(pod.status.containerStatuses[0].lastState.terminated.exitCode).toBe(1);
  });

  it('reports ErrImagePull / ImagePullBackOff for a tag the registry does not have', async () => {
    const ns = await namespaceFor('probe-pull');
    await apply(ns, manifests.pod('missing-image', { image: `127.0.0.1:5000/cluster-probe/app:does-not-exist-${ns}` }));
    const reason = await waitFor(
      async () => {
        const r = await waitingReason(ns, 'missing-image');
        return r === 'ErrImagePull' || r === 'ImagePullBackOff' ? r : undefined;
      },
      WAIT_MS,
      { description: 'pod missing-image to fail pulling' },
    );
    expect(['ErrImagePull', 'ImagePullBackOff']).toContain(reason);
  });

  it('completes a Job', async () => {
    const ns = await namespaceFor('probe-job');
    await apply(ns, manifests.job('once', { backoffLimit: 0, ...busybox('echo job done') }));
    const job = await waitFor(
      async () => {
        const j = await kubectlJson(['-n', ns, 'get', 'job', 'once']);
        const complete = j.status?.conditions?.find((c: any) => c.type === 'Complete');
        return complete?.status === 'True' ? j : undefined;
      },
      WAIT_MS,
      { description: 'Job once to complete' },
    );
    expect(job.status.succeeded).toBe(1);
    const { stdout } = await kubectl(['-n', ns, 'logs', 'job/once']);
    expect(stdout).toContain('job done');
  });

  it('runs both replicas of a StatefulSet', async () => {
    const ns = await namespaceFor('probe-sts');
    await apply(
      ns,
      manifests.docs(
        'apiVersion: v1\nkind: Service\nmetadata: { name: web }\nspec:\n  clusterIP: None\n  selector: { app: web }\n  ports: [{ port: 8080 }]\n',
        manifests.statefulSet('web', {
          replicas: 2,
          gracePeriod: 1,
          ...busybox('trap "exit 0" TERM; while true; do sleep 1; done'),
        }),
      ),
    );
    const phases = await waitFor(
      async () => {
        const pods = await kubectlJson(['-n', ns, 'get', 'pods', '-l', 'app=web']);
        const byName = Object.fromEntries(pods.items.map((p: any) => [p.metadata.name, p.status.phase]));
        return byName['web-0'] === 'Running' && byName['web-1'] === 'Running' ? byName : undefined;
      },
      WAIT_MS,
      { description: 'pods web-0 and web-1 Running' },
    );
    expect(phases).toEqual({ 'web-0': 'Running', 'web-1': 'Running' });
  });

  it('binds a PersistentVolumeClaim and mounts it', async () => {
    const ns = await namespaceFor('probe-pvc');
    await apply(
      ns,
      manifests.docs(
        'apiVersion: v1\nkind: PersistentVolumeClaim\nmetadata: { name: data }\nspec:\n  accessModes: [ReadWriteOnce]\n  resources: { requests: { storage: 64Mi } }\n',
        manifests.pod('writer', {
          restartPolicy: 'Never',
          ...busybox('echo hello > /data/hello && cat /data/hello'),
          lines: ['volumeMounts: [{ name: data, mountPath: /data }]'],
          podLines: ['volumes:', '  - name: data', '    persistentVolumeClaim: { claimName: data }'],
        }),
      ),
    );
    const pvc = await waitFor(
      async () => {
        const c = await kubectlJson(['-n', ns, 'get', 'pvc', 'data']);
        return c.status?.phase === 'Bound' ? c : undefined;
      },
      WAIT_MS,
      { description: 'PVC data to become Bound' },
    );
    expect(pvc.spec.volumeName).toBeTruthy();
    expect(pvc.spec.storageClassName).toBe('local');

    const phase = await waitFor(
      async () => {
        const p = await kubectlJson(['-n', ns, 'get', 'pod', 'writer']);
        return ['Succeeded', 'Failed'].includes(p.status?.phase) ? p.status.phase : undefined;
      },
      WAIT_MS,
      { description: 'pod writer to finish' },
    );
    expect(phase).toBe('Succeeded');
  });
});
