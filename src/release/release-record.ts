import type { KubeObject } from '../kube/objects.js';

/** Helm's release states. */
export type ReleaseStatus = 'pending-install' | 'pending-upgrade' | 'pending-rollback' | 'deployed' | 'failed' | 'superseded' | 'uninstalled';

/** A chart as a release record names it. */
export interface ChartRecord {
  /** Its name in the release (the key under charts:), or the own chart's Chart.yaml name. */
  name: string;
  /** Where it came from: oci://…, https://…#name, a folder, or .helm. */
  chart: string;
  version: string;
  /** sha256 of the archive (a registry chart) or of the folder's files (one in the repository). */
  digest: string;
}

/**
 * The commit a revision deployed and where it came from. Records written
 * before the outdated-deploy guard have only commit, branch and tag.
 */
export interface RevisionGit {
  commit: string;
  branch?: string;
  tag?: string;
  /** The commit's committer time, ISO 8601. */
  committedAt?: string;
  /** CI_PIPELINE_ID of the pipeline that deployed it, when a CI job did. */
  pipelineId?: number;
  /** CI_COMMIT_REF_NAME, else the branch: whose pipelines the pipeline ids order. */
  ref?: string;
}

/** One revision of a release, as stored in the cluster. Never holds secret values in clear. */
export interface ReleaseRecord {
  name: string;
  namespace: string;
  revision: number;
  status: ReleaseStatus;
  description: string;
  environment: string;
  /** GitLab's CI_ENVIRONMENT_SLUG of the environment (labels the record's Secrets). */
  environmentSlug?: string;
  project: string;
  /** Rendered objects, with Secret data masked? No: stored objects are what was applied; Secret data is replaced by a checksum. */
  manifests: KubeObject[];
  /** Values used to render, secret material masked. */
  values: Record<string, unknown>;
  images: Record<string, string>;
  /**
   * The SLSA provenance of the release's own images, by image name: per platform its image
   * manifest and the attestation manifest beside it in the image index (the digest in `images`).
   * Only images built with provenance (buildkitd pushes); absent when none.
   */
  provenance?: Record<string, Array<{ platform: string; manifest: string; attestation: string }>>;
  git: RevisionGit;
  deployedBy: { user: string; host: string; ciJobUrl?: string; ciPipelineUrl?: string };
  startedAt: string;
  finishedAt?: string;
  /** The Helm charts rendered into the revision: each one's name, source, version and digest. */
  charts?: ChartRecord[];
  /**
   * Test results of the commit when `skiff ship` ran them. `cached`: the test did not run, it
   * passed before on the same image digest and definition (when, and in which pipeline).
   */
  tests?: Array<{
    test: string;
    passed: boolean;
    exitCode: number;
    durationMs: number;
    cached?: { imageDigest: string; passedAt: string; pipelineId?: number };
  }>;
  /** Set on a rollback: the revision whose manifests were re-applied. */
  rollbackOf?: number;
  /**
   * The release's mask salt (32 random bytes, base64): the key of the HMAC
   * its masks show, the same in every revision of the release. Never printed.
   * Records written before salts have none (their masks are plain SHA-256).
   */
  maskSalt?: string;
}
