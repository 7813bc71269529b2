export { Builder, type BuilderOptions, type BuildOptions } from './builder.js';
export { checkDockerfile, type CheckOptions, type CheckResult } from './check.js';
export { checkHttpPolicy, type HttpPolicy } from './http-fetch.js';
export { formatDockerfileError, DockerfileError, convertDockerfile } from './dockerfile/index.js';
export { renderGraph } from './graph/index.js';
export { offlineResolver } from './image-source.js';
export { EmulationProbe } from './emulation.js';
export { extractTar } from './layers/index.js';
export { checkContextUrl, remoteContextRequest, type RemoteContext } from './remote-context.js';
