import { readFileSync } from 'node:fs';
export async function run(_argv) {
    // package.json sits two levels above dist/cli/commands; read it lazily so startup stays small.
    const pkg = JSON.parse(readFileSync(new URL('../../../package.json', import.meta.url), 'utf8'));
    process.stdout.write(`buildlite ${pkg.version} (node ${process.version})\n`);
    return 0;
}
//# sourceMappingURL=version.js.map