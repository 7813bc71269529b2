import { Builder } from '../../builder/index.js';
import { defaultRoot, parseFlags } from '../flags.js';
import { UsageError } from '../usage.js';

export async function run(argv: string[]): Promise<number> {
  const { values, positionals } = parseFlags('push', argv, {
    root: { type: 'string' },
    'insecure-registry': { type: 'string', multiple: true },
  });
  const [ref, dest] = positionals;
  if (!ref || positionals.length > 2) throw new UsageError('push takes REF and an optional DEST_REF', 'push');
  const builder = await Builder.open({ root: values.root ?? defaultRoot(), insecureRegistries: values['insecure-registry'] ?? [] });
  let digest: string;
  try {
    digest = await builder.push(ref, dest ? { as: dest } : {});
  } finally {
    await builder.close();
  }
  process.stdout.write(`${dest ?? ref}@${digest}\n`);
  return 0;
}
