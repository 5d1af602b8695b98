// hstu_embedding: out[t, c] = ItemEmb[id_t, c] * sqrt(D) + PosEmb[pos_t, c] (+ ActionEmb[action_t, c] when action_t != NONE) for the tokens whose id lies in this item-table chunk [item_lo, item_hi); padding columns [D, stride) get 0.
// bindings: 0 params (uniform), 1 tokens u32 [ids T | positions T | actions T], 2 item_emb chunk [item_hi - item_lo, D] f32, 3 pos_emb [N, D] f32, 4 action_emb [A, D] f32, 5 out [T, stride] f32.
// dispatch: (ceil(stride / WG_X), min(T, 65535), ceil(T / 65535)); one invocation per output element; one dispatch per item-table chunk.

override WG_X: u32 = 64u;

const NO_ACTION: u32 = 0xffffffffu;

struct Params {
    tokens: u32,
    dim: u32,      // D
    stride: u32,   // row stride of out, a multiple of 4 >= D
    item_lo: u32,  // first item id held by the item_emb binding
    item_hi: u32,  // one past the last item id held by the binding
    scale: f32,    // sqrt(D)
    _pad0: u32,
    _pad1: u32,
}

@group(0) @binding(0) var<uniform> params: Params;
@group(0) @binding(1) var<storage, read> tokens: array<u32>;     // ids [T] | positions [T] | actions [T]
@group(0) @binding(2) var<storage, read> item_emb: array<f32>;   // [item_hi - item_lo, D]
@group(0) @binding(3) var<storage, read> pos_emb: array<f32>;    // [N, D]
@group(0) @binding(4) var<storage, read> action_emb: array<f32>; // [A, D]
@group(0) @binding(5) var<storage, read_write> out: array<f32>;  // [T, stride]

@compute @workgroup_size(WG_X)
fn main(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
    let t = gid.y + gid.z * nwg.y;
    let c = gid.x;
    if (t >= params.tokens || c >= params.stride) {
        return;
    }
    let id = tokens[t];
    if (id < params.item_lo || id >= params.item_hi) {
        return;
    }
    var value = 0.0;
    if (c < params.dim) {
        let item = item_emb[(id - params.item_lo) * params.dim + c];
        value = item * params.scale + pos_emb[tokens[params.tokens + t] * params.dim + c];
        let action = tokens[2u * params.tokens + t];
        if (action != NO_ACTION) {
            value += action_emb[action * params.dim + c];
        }
    }
    out[t * params.stride + c] = value;
}
