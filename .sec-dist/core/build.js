export {};
//# sourceMappingURL=build.js.map