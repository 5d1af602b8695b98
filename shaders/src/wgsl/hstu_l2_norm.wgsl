// hstu_l2_norm: out[r, c] = x[r, c] / max(||x[r, :cols]||, eps) for c < cols; out is dense [rows, cols] (the stride of x dropped).
// bindings: 0 params (uniform), 1 x [rows, x_stride] f32, 2 out [rows, cols] f32.
// dispatch: (min(rows, 65535), ceil(rows / 65535), 1); one workgroup of WG invocations per row.

override WG: u32 = 128u;

struct Params {
    rows: u32,
    cols: u32,
    x_stride: u32,
    eps: f32,
}

@group(0) @binding(0) var<uniform> params: Params;
@group(0) @binding(1) var<storage, read> x: array<f32>;          // [rows, x_stride]
@group(0) @binding(2) var<storage, read_write> out: array<f32>;  // [rows, cols]

//#include hstu_row_reduce (workgroup_sum)

@compute @workgroup_size(WG)
fn main(
    @builtin(workgroup_id) wid: vec3<u32>,
    @builtin(num_workgroups) nwg: vec3<u32>,
    @builtin(local_invocation_index) li: u32,
//#if SUBGROUP
    @builtin(subgroup_id) sid: u32,
    @builtin(subgroup_invocation_id) lane: u32,
    @builtin(num_subgroups) nsg: u32,
//#endif
) {
//#if !SUBGROUP
    let sid = 0u;
    let lane = 0u;
    let nsg = 0u;
//#endif
    let row = wid.x + wid.y * nwg.x;
    if (row >= params.rows) {
        return;
    }
    let base = row * params.x_stride;
    var sq = 0.0;
    for (var c = li; c < params.cols; c += WG) {
        let v = x[base + c];
        sq += v * v;
    }
    let norm = sqrt(workgroup_sum(sq, li, sid, lane, nsg));
    let inv = 1.0 / max(norm, params.eps);
    for (var c = li; c < params.cols; c += WG) {
        out[row * params.cols + c] = x[base + c] * inv;
    }
}
