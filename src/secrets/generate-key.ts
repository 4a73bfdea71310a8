/** Owns `skiff secret generate-key`: a new random key. */
import { generateSecretKey } from './crypto.js';

export interface GenerateKeyResult {
  /** 64 hex characters: AES-256. */
  key: string;
}

/** skiff secret generate-key: a new random key. */
export function runGenerateKey(): GenerateKeyResult {
  return { key: generateSecretKey() };
}
