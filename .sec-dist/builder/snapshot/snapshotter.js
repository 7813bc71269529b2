export {};
//# sourceMappingURL=snapshotter.js.map