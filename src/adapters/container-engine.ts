import type { Readable } from 'node:stream';
import type { RegistryCredentials } from '../registry/credentials.js';
import type { ContainerOutcome, ContainerRun } from './container-run.js';
import type { BuildRequest } from './docker.js';

/** A local image as the Engine describes it. */
export interface LocalImage {
  id: string;
  labels: Record<string, string>;
  repoDigests: string[];
}

/**
 * What skiff asks of a local container engine (RunContext.docker): images, builds, pushes and test
 * containers. DockerEngine (adapters/docker.ts) is the implementation; code that uses an Engine
 * depends on this, so loading it stays lazy and a test can bring its own.
 */
export interface ContainerEngine {
  readonly endpoint: { readonly describe: string };
  /** Fails (exit 3, saying how to fix it) when the Engine cannot be reached. */
  ping(): Promise<void>;
  /** The local image, or undefined when the Engine does not have it. */
  inspectImage(ref: string): Promise<LocalImage | undefined>;
  /** Why this Engine cannot build with BuildKit; undefined when it can, as far as it tells. */
  buildKitUnsupported(): Promise<string | undefined>;
  /** The platform it builds and runs: "linux/amd64". */
  platform(): Promise<string>;
  /** Returns the image id; throws BuildKitRefused when the Engine turns BuildKit down. */
  buildWithBuildKit(req: BuildRequest): Promise<string>;
  /** Returns the image id. */
  buildClassic(req: BuildRequest): Promise<string>;
  /** `docker load` of a docker-archive tar. */
  loadImage(tar: Readable): Promise<void>;
  tag(source: string, repository: string, tag: string): Promise<void>;
  pull(repository: string, tag: string, credentials: RegistryCredentials | undefined, onLog: (line: string) => void, signal?: AbortSignal): Promise<void>;
  /** Returns the pushed manifest's digest. */
  push(repository: string, tag: string, credentials: RegistryCredentials | undefined, onLog: (line: string) => void, signal?: AbortSignal): Promise<string>;
  runContainer(run: ContainerRun): Promise<ContainerOutcome>;
}
