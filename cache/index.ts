export { LocalContentStore, READ_HIGH_WATER_MARK } from './local-store.js';
export { writeBlob, putJson, readJson, copyBlob, hasStat } from './blob-helpers.js';
