import { pushTagged } from '../../builder/push-tagged.js';
import { checkReferenceFlag, defaultRoot, httpTimeoutsFlag, parseFlags } from '../flags.js';
import { UsageError } from '../usage.js';

export async function run(argv: string[]): Promise<number> {
  const { values, positionals } = parseFlags('push', argv, {
    root: { type: 'string' },
    'insecure-registry': { type: 'string', multiple: true },
    'http-timeouts': { type: 'string' },
  });
  const [ref, dest] = positionals;
  if (!ref || positionals.length > 2) throw new UsageError('push takes REF and an optional DEST_REF', 'push');
  checkReferenceFlag('push', 'REF', ref);
  if (dest !== undefined) checkReferenceFlag('push', 'DEST_REF', dest);
  const timeouts = httpTimeoutsFlag('push', values['http-timeouts']);
  const digest = await pushTagged(ref, {
    root: values.root ?? defaultRoot(),
    insecureRegistries: values['insecure-registry'] ?? [],
    ...(timeouts ? { timeouts } : {}),
    ...(dest ? { as: dest } : {}),
  });
  process.stdout.write(`${dest ?? ref}@${digest}\n`);
  return 0;
}
