import { sha256 } from '../../core/digest.js';
import { CodedError } from '../../core/errors.js';
/**
 * OCI ChainID of a layer stack, bottom first: ChainID(L0) = DiffID(L0),
 * ChainID(L0..n) = sha256(ChainID(L0..n-1) + " " + DiffID(Ln)). It names the
 * snapshot that holds the applied stack.
 */
export function chainId(diffIds) {
    const [first, ...rest] = diffIds;
    if (first === undefined)
        throw new CodedError('INVALID_ARGUMENT', 'chainId of an empty layer list');
    return rest.reduce((chain, diffId) => sha256(`${chain} ${diffId}`), first);
}
//# sourceMappingURL=chain-id.js.map