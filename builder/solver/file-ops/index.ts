export { applyFileActions } from './apply.js';
export { FileOpError, SourceNotFoundError, type FileOpContext, type Owner } from './base.js';
export { detectArchive, extractArchive } from './archive.js';
export { resolveParentsSources } from './parents.js';
export { resolveSources } from './sources.js';
