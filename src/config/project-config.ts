/** skiff.yaml, validated. Every optional field has its default filled in. */
export interface ProjectConfig {
  project: string;
  registry?: string;
  /** buildkitd instances that build the images (skiff.yaml `builder:`); empty: the Docker Engine builds. */
  builders: BuildkitdEndpoint[];
  images: Record<string, ImageConfig>;
  tests: Record<string, TestConfig>;
  environments: Record<string, EnvironmentConfig>;
  deploy: DeployConfig;
  /** Third-party (or in-repository) Helm charts deployed in the release (skiff.yaml `charts:`); {} when none. */
  charts: Record<string, ChartConfig>;
  /** Where each key path (e.g. "images.app.dockerfile") stands in the file, for error messages. */
  positions: PositionIndex;
  /** The file's path as given, for error messages. */
  file: string;
}

/** Where a chart comes from. */
export type ChartSource =
  /** An OCI registry repository, "oci://" stripped: "127.0.0.1:5000/charts/redis". */
  | { kind: 'oci'; repository: string }
  /** A chart repository (index.yaml) and the chart's name in it: https://host/path#name. */
  | { kind: 'repo'; url: string; name: string }
  /** A folder in the repository, repository-relative and normalised: "charts/cache". */
  | { kind: 'folder'; path: string };

/** `charts.<name>`: a chart deployed as part of the release. */
export interface ChartConfig {
  /** Its key under charts: (the chart's name in this release). */
  name: string;
  /** The source as written in skiff.yaml. */
  chart: string;
  source: ChartSource;
  /** An exact version or a range (a Helm semver constraint); undefined only for a folder chart. */
  version?: string;
  /** Its values file: repository-relative, under .kube/charts/, rendered with EJS first. */
  values?: string;
  /** Only these declared environments; undefined: all. */
  environments?: string[];
}

export interface ImageConfig {
  name: string;
  /** Relative to the repository root, normalised, no leading "./"; "" is the root. */
  context: string;
  /** Relative to the context. */
  dockerfile: string;
  target?: string;
  args: Record<string, string>;
  dependsOn: string[];
  /** Build secrets mounted into RUN --mount=type=secret steps (buildkitd only). */
  secrets: BuildSecretConfig[];
  /**
   * The platforms the image is built for (its `platforms:`, else the top-level one), normalised
   * and sorted; undefined: the builder's own platform, as before platforms existed.
   */
  platforms?: string[];
}

/** A build secret: its id, and where its value comes from when the build runs. */
export interface BuildSecretConfig {
  id: string;
  /** The environment variable that holds the value... */
  env?: string;
  /** ...or a file (absolute, or relative to the repository root). */
  file?: string;
}

/** One buildkitd: tcp:// (TLS with the given certificates, or plain) or unix://. */
export interface BuildkitdEndpoint {
  address: string;
  /** CA that signed buildkitd's certificate, client certificate and key; absolute or relative to the repository root. */
  tls?: { ca?: string; cert?: string; key?: string };
}

export interface TestConfig {
  name: string;
  image: string;
  command: string[];
  env: Record<string, string>;
  workdir?: string;
  timeoutMs: number;
  reports: string[];
  network: 'none' | 'host';
}

export interface EnvironmentConfig {
  name: string;
  /**
   * Declared once for many environments named `<name>/<anything>` (review
   * apps: `review/$CI_COMMIT_REF_SLUG`); namespace, release, url and string
   * values may hold `{slug}`, the environment's CI_ENVIRONMENT_SLUG.
   */
  dynamic: boolean;
  namespace: string;
  kubeContext?: string;
  /**
   * The kubeconfig file of the environment's cluster, as written (relative
   * paths start at the repository root, `~/` at the home directory), for
   * environments on clusters whose credentials live in separate files.
   * --kubeconfig overrides it; without either, KUBECONFIG as kubectl reads it.
   */
  kubeconfig?: string;
  release?: string;
  /** Where the environment is reached; written to the dotenv report for GitLab's environment:url. */
  url?: string;
  values: Record<string, unknown>;
  autoRollback?: boolean;
}

export interface DeployConfig {
  historyMax: number;
  /** undefined: on in CI, off on a laptop. */
  autoRollback?: boolean;
  timeoutMs: number;
  /** Compare each workload's images' platforms with its nodes' before the first write (default true; off where node labels lie). */
  checkNodePlatforms: boolean;
  /** `deploy.verify`: every image of a release must carry a cosign signature of this key; undefined: not checked. */
  verify?: VerifyConfig;
}

export interface VerifyConfig {
  /** The cosign public key (cosign.pub), repository-relative and normalised; read from the deployed commit. */
  key: string;
}

export interface Position {
  line: number;
  col: number;
}

export class PositionIndex {
  constructor(private readonly map: Map<string, Position> = new Map()) {}
  set(path: string, pos: Position): void {
    this.map.set(path, pos);
  }
  /** The position of the path, or of its nearest ancestor that has one. */
  of(path: string): Position {
    let p = path;
    for (;;) {
      const found = this.map.get(p);
      if (found) return found;
      const cut = Math.max(p.lastIndexOf('.'), p.lastIndexOf('['));
      if (cut <= 0) return this.map.get('') ?? { line: 1, col: 1 };
      p = p.slice(0, cut);
    }
  }
}
