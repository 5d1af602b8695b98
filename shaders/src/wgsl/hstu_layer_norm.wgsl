// hstu_layer_norm: out[r, c] = (x[r, c] - mean_r) / sqrt(var_r + eps) over the first `cols` columns (no affine, biased variance); columns [cols, stride) of out get 0.
// bindings: 0 params (uniform), 1 x [rows, stride] f32, 2 out [rows, stride] f32.
// dispatch: (min(rows, 65535), ceil(rows / 65535), 1); one workgroup of WG invocations per row.

override WG: u32 = 128u;

struct Params {
    rows: u32,
    cols: u32,
    stride: u32,
    eps: f32,
}

@group(0) @binding(0) var<uniform> params: Params;
@group(0) @binding(1) var<storage, read> x: array<f32>;          // [rows, stride]
@group(0) @binding(2) var<storage, read_write> out: array<f32>;  // [rows, stride]

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
    let base = row * params.stride;
    var sum = 0.0;
    for (var c = li; c < params.cols; c += WG) {
        sum += x[base + c];
    }
    let mean = workgroup_sum(sum, li, sid, lane, nsg) / f32(params.cols);
    var sq = 0.0;
    for (var c = li; c < params.cols; c += WG) {
        let d = x[base + c] - mean;
        sq += d * d;
    }
    let variance = workgroup_sum(sq, li, sid, lane, nsg) / f32(params.cols);
    let inv = 1.0 / sqrt(variance + params.eps);
    for (var c = li; c < params.stride; c += WG) {
        var y = 0.0;
        if (c < params.cols) {
            y = (x[base + c] - mean) * inv;
        }
        out[base + c] = y;
    }
}
