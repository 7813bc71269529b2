/**
 * The typed instructions the parser produces. Values are as written (after
 * line joining and quote-aware splitting): variable expansion happens at
 * conversion time, when the scope is known.
 */
export const KEYWORDS = [
    'ADD', 'ARG', 'CMD', 'COPY', 'ENTRYPOINT', 'ENV', 'EXPOSE', 'FROM', 'HEALTHCHECK', 'LABEL', 'MAINTAINER',
    'ONBUILD', 'RUN', 'SHELL', 'STOPSIGNAL', 'USER', 'VOLUME', 'WORKDIR',
];
//# sourceMappingURL=instructions.js.map