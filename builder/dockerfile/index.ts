export { convertDockerfile, type ConvertOptions } from './convert.js';
export { DockerfileError, formatDockerfileError } from './errors.js';
export { checkFailure } from './checks.js';
export { parseDockerfile, type ParsedDockerfile } from './parse.js';
export type { Instruction } from './instructions.js';
export { processWord, processWords } from './lexer.js';
export { gitSourceDef } from './git-source.js';
