// hstu_gating: y[r, c] = u[r, c] * (attn[r, c] - mean_r) / sqrt(var_r + eps) over c < cols = H*dv (layer norm of the concatenated heads, no affine); columns [cols, y_stride) of y get 0.
// bindings: 0 params (uniform), 1 attn [rows, cols] f32, 2 uvqk [rows, u_stride] f32 (u = columns [0, cols) at u_row_offset rows in), 3 y [rows, y_stride] f32.
// dispatch: (min(rows, 65535), ceil(rows / 65535), 1); one workgroup of WG invocations per row.

override WG: u32 = 128u;

struct Params {
    rows: u32,
    cols: u32,          // H * dv
    u_stride: u32,      // row stride of uvqk
    u_row_offset: u32,  // row r of attn gates with row u_row_offset + r of uvqk
    y_stride: u32,      // row stride of y, a multiple of 4 >= cols
    eps: f32,
    _pad0: u32,
    _pad1: u32,
}

@group(0) @binding(0) var<uniform> params: Params;
@group(0) @binding(1) var<storage, read> attn: array<f32>;       // [rows, cols]
@group(0) @binding(2) var<storage, read> uvqk: array<f32>;       // [u_row_offset + rows, u_stride]
@group(0) @binding(3) var<storage, read_write> y: array<f32>;    // [rows, y_stride]

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
    let base = row * params.cols;
    var sum = 0.0;
    for (var c = li; c < params.cols; c += WG) {
        sum += attn[base + c];
    }
    let mean = workgroup_sum(sum, li, sid, lane, nsg) / f32(params.cols);
    var sq = 0.0;
    for (var c = li; c < params.cols; c += WG) {
        let d = attn[base + c] - mean;
        sq += d * d;
    }
    let variance = workgroup_sum(sq, li, sid, lane, nsg) / f32(params.cols);
    let inv = 1.0 / sqrt(variance + params.eps);
    let u_base = (params.u_row_offset + row) * params.u_stride;
    for (var c = li; c < params.y_stride; c += WG) {
        var value = 0.0;
        if (c < params.cols) {
            value = uvqk[u_base + c] * (attn[base + c] - mean) * inv;
        }
        y[row * params.y_stride + c] = value;
    }
}
