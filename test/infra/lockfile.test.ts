/**
 * `npm ci` installs exactly package-lock.json and refuses a lock that does
 * not describe every package it may need, including other platforms'
 * optional binaries (esbuild's, msgpackr-extract's): a lock written on one
 * platform with them left out breaks `npm ci` for everyone else.
 */
import { readFileSync } from 'node:fs';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { REPO_ROOT } from '../helpers/cli.js';

interface LockEntry {
  readonly version?: string;
  readonly dependencies?: Record<string, string>;
  readonly optionalDependencies?: Record<string, string>;
}

describe('package-lock.json', () => {
  const lock = JSON.parse(readFileSync(path.join(REPO_ROOT, 'package-lock.json'), 'utf8')) as { lockfileVersion: number; packages: Record<string, LockEntry> };
  const pkg = JSON.parse(readFileSync(path.join(REPO_ROOT, 'package.json'), 'utf8')) as { dependencies: Record<string, string>; devDependencies: Record<string, string> };

  it('describes every optional package of every platform (what npm ci needs)', () => {
    const missing: string[] = [];
    for (const [where, entry] of Object.entries(lock.packages)) {
      for (const name of Object.keys(entry.optionalDependencies ?? {})) {
        // Resolved as Node does: next to the dependent, then up to the top.
        const candidates = [`${where ? `${where}/` : ''}node_modules/${name}`, `node_modules/${name}`];
        if (!candidates.some((c) => lock.packages[c])) missing.push(`${where || '(root)'} → ${name}`);
      }
    }
    expect(missing).toEqual([]);
    expect(Object.keys(lock.packages).filter((k) => k.includes('@esbuild/')).length).toBeGreaterThan(10);
  });

  it('matches package.json', () => {
    const root = lock.packages[''] as LockEntry & { devDependencies?: Record<string, string> };
    expect(root.dependencies).toEqual(pkg.dependencies);
    expect(root.devDependencies).toEqual(pkg.devDependencies);
    expect(lock.lockfileVersion).toBe(3);
  });

  it("tools/depcheck's own lock matches its package.json and pins typescript 6 (what dependency-cruiser can parse with)", () => {
    const dir = path.join(REPO_ROOT, 'tools/depcheck');
    const toolLock = JSON.parse(readFileSync(path.join(dir, 'package-lock.json'), 'utf8')) as { lockfileVersion: number; packages: Record<string, LockEntry & { devDependencies?: Record<string, string> }> };
    const toolPkg = JSON.parse(readFileSync(path.join(dir, 'package.json'), 'utf8')) as { devDependencies: Record<string, string> };
    expect(toolLock.packages['']?.devDependencies).toEqual(toolPkg.devDependencies);
    expect(toolLock.packages['node_modules/typescript']?.version).toMatch(/^6\./);
    expect(toolLock.lockfileVersion).toBe(3);
  });
});
