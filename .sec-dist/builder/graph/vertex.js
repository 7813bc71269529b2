export {};
//# sourceMappingURL=vertex.js.map