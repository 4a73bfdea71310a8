import { describe, expect, it } from 'vitest';
import { parseImageRef, registryHost, repositoryPath } from '../../src/registry/image-ref.js';

describe('image references', () => {
  it('takes apart a pinned reference on a registry with a port', () => {
    const digest = `sha256:${'a'.repeat(64)}`;
    expect(parseImageRef(`127.0.0.1:5000/hello/app:0123abcd@${digest}`)).toEqual({ host: '127.0.0.1:5000', path: 'hello/app', tag: '0123abcd', digest });
  });

  it('reads a port as no tag, and a Docker Hub name as docker.io', () => {
    expect(parseImageRef('localhost:5000/app')).toEqual({ host: 'localhost:5000', path: 'app', tag: undefined, digest: undefined });
    expect(parseImageRef('busybox:1.36')).toEqual({ host: 'docker.io', path: 'busybox', tag: '1.36', digest: undefined });
    expect(parseImageRef('library/busybox')).toMatchObject({ host: 'docker.io', path: 'library/busybox' });
  });

  it('splits a repository prefix into host and path', () => {
    expect(registryHost('registry.example.com/group/app')).toBe('registry.example.com');
    expect(registryHost('group/app')).toBe('docker.io');
    expect(repositoryPath('127.0.0.1:5000/hello/app')).toBe('hello/app');
  });
});
