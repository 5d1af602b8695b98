// hstu_row_reduce (include): `workgroup_sum`, the sum of one f32 per invocation over a workgroup of WG
// invocations, for the one-workgroup-per-row kernels (layer norm, gating, L2 norm). Needs
// `override WG` in the including file; `sid`, `lane`, `nsg` are the subgroup builtins (SUBGROUP only).

var<workgroup> partial: array<f32, WG>;

//#if SUBGROUP
// subgroupAdd, then one slot per subgroup.
fn workgroup_sum(value: f32, li: u32, sid: u32, lane: u32, nsg: u32) -> f32 {
    let s = subgroupAdd(value);
    if (lane == 0u) {
        partial[sid] = s;
    }
    workgroupBarrier();
    var total = 0.0;
    for (var i = 0u; i < nsg; i++) {
        total += partial[i];
    }
    workgroupBarrier();
    return total;
}
//#else
// Tree reduction in workgroup memory (WG is a power of two).
fn workgroup_sum(value: f32, li: u32, sid: u32, lane: u32, nsg: u32) -> f32 {
    partial[li] = value;
    workgroupBarrier();
    for (var half = WG / 2u; half > 0u; half /= 2u) {
        if (li < half) {
            partial[li] += partial[li + half];
        }
        workgroupBarrier();
    }
    let total = partial[0];
    workgroupBarrier();
    return total;
}
//#endif
