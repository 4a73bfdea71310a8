/** The cluster a command read: its kube context and API server. */
export interface ClusterRef {
  context: string;
  server?: string;
}

/** `context skiff-sim (https://127.0.0.1:7443)`: how the cluster a command read is named. */
export function describeCluster(c: ClusterRef): string {
  return `context ${c.context}${c.server ? ` (${c.server})` : ''}`;
}
