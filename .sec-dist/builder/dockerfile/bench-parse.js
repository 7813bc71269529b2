/**
 * Benchmark (not a test): parse + convert a 1,000-instruction, 20-stage
 * Dockerfile in-process. Run: `npx tsc -p tsconfig.json --outDir <tmp>` then
 * `node <tmp>/builder/dockerfile/bench-parse.js`, or through any TS runner.
 */
import { performance } from 'node:perf_hooks';
import { sha256 } from '../../core/digest.js';
import { convertDockerfile } from './convert.js';
const STAGES = 20;
const PER_STAGE = 50;
function bigDockerfile() {
    const lines = ['ARG BASE=busybox'];
    for (let s = 0; s < STAGES; s++) {
        lines.push(s === 0 ? 'FROM ${BASE} AS s0' : `FROM ${s % 3 === 0 ? `s${s - 1}` : '${BASE}'} AS s${s}`);
        for (let i = 1; i < PER_STAGE; i++) {
            switch (i % 7) {
                case 0:
                    lines.push(`ENV V${i}=value-${i} W${i}="\${V${i}:-x} y"`);
                    break;
                case 1:
                    lines.push(`RUN --mount=type=cache,target=/c${i} echo ${i} && make target-${i}`);
                    break;
                case 2:
                    lines.push(`COPY --chown=app:app src/${i}/*.c /src/${i}/`);
                    break;
                case 3:
                    lines.push(`WORKDIR /w/${i}`);
                    break;
                case 4:
                    lines.push(s > 0 ? `COPY --from=s${s - 1} /out/${i} /in/${i}` : `ARG A${i}=${i}`);
                    break;
                case 5:
                    lines.push(`LABEL l${i}=$HOME-${i}`);
                    break;
                default:
                    lines.push(`RUN <<EOF\necho ${i}\nEOF`);
                    break;
            }
        }
    }
    return `${lines.join('\n')}\n`;
}
const resolver = {
    async resolve(ref, platform) {
        return { ref: `${ref}@${sha256(ref)}`, config: { Env: ['PATH=/bin'] }, history: [], platform };
    },
};
const text = bigDockerfile();
const runs = [];
for (let i = 0; i < 30; i++) {
    const t0 = performance.now();
    await convertDockerfile({ dockerfile: text, resolver });
    runs.push(performance.now() - t0);
}
const warm = runs.slice(5).sort((a, b) => a - b);
const median = warm[Math.floor(warm.length / 2)] ?? NaN;
console.log(`parse+convert ${STAGES * PER_STAGE} instructions, ${STAGES} stages: first ${runs[0]?.toFixed(1)} ms, median ${median.toFixed(1)} ms`);
//# sourceMappingURL=bench-parse.js.map