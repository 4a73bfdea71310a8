import type { RegisteredCheck } from './check.js';
import { danglingIngress } from './checks/dangling-ingress.js';
import { danglingService } from './checks/dangling-service.js';
import { latestTag } from './checks/latest-tag.js';
import { missingConfigInEnv, missingConfigInVolumes } from './checks/missing-config.js';
import { overlappingSelector } from './checks/overlapping-selector.js';
import { pdbBlocksEviction } from './checks/pdb-blocks-eviction.js';
import { unsetRequests } from './checks/unset-requests.js';
import { probePort, serviceTargetPort } from './checks/unknown-target-port.js';

/**
 * Every lint check, in the order its findings come for one object (a new
 * check is a file in checks/ and a line here; its name and severity go in
 * finding.ts). Within a shape, the order here is the order of findings.
 */
export const LINT_REGISTRY: readonly RegisteredCheck[] = [
  danglingService,
  serviceTargetPort,
  danglingIngress,
  missingConfigInEnv,
  probePort,
  unsetRequests,
  latestTag,
  missingConfigInVolumes,
  overlappingSelector,
  pdbBlocksEviction,
];
