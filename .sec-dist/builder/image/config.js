/**
 * The image config of a build. Timestamps come from SOURCE_DATE_EPOCH when set
 * (reproducible images) and from the clock otherwise. Inherited history keeps
 * its own dates and empty_layer flags; new steps are empty unless their
 * vertex added a layer.
 */
export function buildImageConfig(input) {
    const created = (input.sourceDateEpoch !== undefined ? new Date(input.sourceDateEpoch * 1000) : (input.now ?? new Date())).toISOString();
    const history = input.history.map((h) => {
        const { inherited, addedLayer, ...entry } = h;
        if (inherited)
            return clampCreated(entry, input.sourceDateEpoch);
        const out = { ...entry, created };
        if (!addedLayer)
            out.empty_layer = true;
        else
            delete out.empty_layer;
        return out;
    });
    return {
        created,
        architecture: input.platform.architecture,
        os: input.platform.os,
        ...(input.platform.variant ? { variant: input.platform.variant } : {}),
        config: pruneEmpty(input.config),
        rootfs: { type: 'layers', diff_ids: [...input.diffIds] },
        history,
    };
}
function clampCreated(h, epoch) {
    if (epoch === undefined || !h.created)
        return h;
    const t = Date.parse(h.created);
    return Number.isFinite(t) && t > epoch * 1000 ? { ...h, created: new Date(epoch * 1000).toISOString() } : h;
}
/** Absent beats empty: `{}` labels or `[]` volumes are noise to every consumer. */
function pruneEmpty(c) {
    const out = {};
    for (const [k, v] of Object.entries(c)) {
        if (v === undefined)
            continue;
        if (v !== null && typeof v === 'object' && !Array.isArray(v) && Object.keys(v).length === 0)
            continue;
        if (k !== 'Cmd' && k !== 'Entrypoint' && Array.isArray(v) && v.length === 0 && k !== 'Shell')
            continue;
        out[k] = v;
    }
    return out;
}
//# sourceMappingURL=config.js.map