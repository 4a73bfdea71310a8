/** skiff.yaml, validated. Every optional field has its default filled in. */
export interface ProjectConfig {
  project: string;
  registry?: string;
  images: Record<string, ImageConfig>;
  tests: Record<string, TestConfig>;
  environments: Record<string, EnvironmentConfig>;
  deploy: DeployConfig;
  /** Where each key path (e.g. "images.app.dockerfile") stands in the file, for error messages. */
  positions: PositionIndex;
  /** The file's path as given, for error messages. */
  file: string;
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
