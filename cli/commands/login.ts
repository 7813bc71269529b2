import { login, logout } from '../../registry-client/index.js';
import { parseFlags } from '../flags.js';
import { UsageError } from '../usage.js';

/** Reads the password from stdin only: argv is visible to every user of the machine. */
export async function run(argv: string[]): Promise<number> {
  const { values, positionals } = parseFlags('login', argv, {
    username: { type: 'string', short: 'u' },
    'password-stdin': { type: 'boolean' },
  });
  const [registry] = positionals;
  if (!registry || positionals.length !== 1) throw new UsageError('login takes exactly one REGISTRY', 'login');
  if (!values.username) throw new UsageError('login needs -u USER', 'login');
  if (!values['password-stdin']) throw new UsageError('login reads the password from stdin: pass --password-stdin', 'login');
  const chunks: Buffer[] = [];
  for await (const c of process.stdin) chunks.push(c as Buffer);
  const password = Buffer.concat(chunks).toString('utf8').replace(/\r?\n$/, '');
  if (!password) throw new UsageError('no password on stdin', 'login');
  await login(registry, values.username, password);
  process.stdout.write(`Login Succeeded (${registry})\n`);
  return 0;
}

export async function runLogout(argv: string[]): Promise<number> {
  const { positionals } = parseFlags('logout', argv, {});
  const [registry] = positionals;
  if (!registry || positionals.length !== 1) throw new UsageError('logout takes exactly one REGISTRY', 'logout');
  await logout(registry);
  process.stdout.write(`Removed login credentials for ${registry}\n`);
  return 0;
}
