/** Service mode lands with issue 7; until then the commands say so instead of pretending. */
export async function runServe(_argv: string[]): Promise<number> {
  process.stderr.write('buildlite serve: not yet available (the build service is issue 7); use embedded builds: buildlite build\n');
  return 1;
}

export async function runWorker(_argv: string[]): Promise<number> {
  process.stderr.write('buildlite worker: not yet available (the build service is issue 7); use embedded builds: buildlite build\n');
  return 1;
}
