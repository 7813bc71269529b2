export {};
//# sourceMappingURL=mount.js.map