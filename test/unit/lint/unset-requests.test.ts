import { describe, expect, it } from 'vitest';
import { checks, deployment, lint } from './fixtures.js';

describe('unset-requests', () => {
  it('warns of a container without resources.requests', () => {
    expect(checks([deployment('web')])).toEqual([]);
    const [f] = lint([deployment('web', { container: { resources: {} } })]);
    expect(f).toMatchObject({ check: 'unset-requests', severity: 'warning', field: 'spec.template.spec.containers[0].resources.requests' });
  });
});
