export { convertDockerfile } from './convert.js';
export { DockerfileError, formatDockerfileError } from './errors.js';
export { parseDockerfile } from './parse.js';
export { processWord, processWords } from './lexer.js';
//# sourceMappingURL=index.js.map