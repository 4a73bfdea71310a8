import { parseImageRef } from '../../registry/image-ref.js';
import type { ContainerCheck } from '../check.js';

/** An image not built by skiff.yaml that has no tag or is tagged latest: a restart may pull another version. */
export const latestTag: ContainerCheck = {
  check: 'latest-tag',
  on: 'container',
  run({ field, container: c }, _t, ctx, report) {
    const image = c.image as string | undefined;
    if (!image || ctx.input.images.includes(image)) return;
    const { tag, digest } = parseImageRef(image);
    if (digest || (tag && tag !== 'latest')) return;
    report(
      `${field}.image`,
      `image ${image} ${tag ? 'is tagged latest' : 'has no tag (latest)'}: a restart may run another version`,
      'pin a version tag or digest, or build the image with skiff.yaml and use images.<name>',
    );
  },
};
