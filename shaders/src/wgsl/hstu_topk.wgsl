// hstu_topk: score_topk scores items [item_lo, item_hi) of one item-table binding for each user, s_c = u_b . e_c / max(||e_c||, eps) (history, id 0 and ids > num_items excluded), and keeps each workgroup's top k (bitonic sort of SORT_N); merge_topk reduces segments of k until one remains.
// bindings: 0 params (uniform); score_topk: 1 users [B, user_stride] f32 (L2-normalised), 2 items [item_hi - item_lo, D] f32, 3 history u32 [hist_offsets B+1 | sorted ids], 4 out_scores, 5 out_ids [B, segments, k]; merge_topk: 6 in_scores, 7 in_ids [B, in_len], 4 out_scores, 5 out_ids [B, out_segments, k].
// dispatch: score_topk (ceil((item_hi - item_lo) / SORT_N), B, 1), merge_topk (ceil(in_len / SORT_N), B, 1); WG invocations each.

override WG: u32 = 256u;
override SORT_N: u32 = 2048u; // a power of two, >= 2 * k

struct Params {
    batch: u32,
    dim: u32,
    user_stride: u32,
    item_lo: u32,
    item_hi: u32,
    num_items: u32,     // valid ids are 1..=num_items
    k: u32,
    segments: u32,      // k-lists per user in out_scores / out_ids
    segment_base: u32,  // first output segment of this dispatch
    in_len: u32,        // merge_topk: entries per user in in_scores / in_ids
    eps: f32,
    _pad0: u32,
}

const NONE_ID: u32 = 0xffffffffu;
const NONE_SCORE: f32 = -3.0e38;

@group(0) @binding(0) var<uniform> params: Params;
@group(0) @binding(1) var<storage, read> users: array<f32>;             // [B, user_stride]
@group(0) @binding(2) var<storage, read> items: array<f32>;             // [item_hi - item_lo, D]
@group(0) @binding(3) var<storage, read> history: array<u32>;           // hist_offsets [B + 1] | ids
@group(0) @binding(4) var<storage, read_write> out_scores: array<f32>;  // [B, segments, k]
@group(0) @binding(5) var<storage, read_write> out_ids: array<u32>;     // [B, segments, k]
@group(0) @binding(6) var<storage, read> in_scores: array<f32>;         // [B, in_len]
@group(0) @binding(7) var<storage, read> in_ids: array<u32>;            // [B, in_len]

var<workgroup> keys: array<f32, SORT_N>;
var<workgroup> vals: array<u32, SORT_N>;

// Total order: higher score first, then lower id.
fn before(score_a: f32, id_a: u32, score_b: f32, id_b: u32) -> bool {
    return score_a > score_b || (score_a == score_b && id_a < id_b);
}

fn bitonic_sort(li: u32) {
    for (var size = 2u; size <= SORT_N; size <<= 1u) {
        for (var stride = size >> 1u; stride > 0u; stride >>= 1u) {
            for (var e = li; e < SORT_N / 2u; e += WG) {
                let lo = 2u * stride * (e / stride) + e % stride;
                let hi = lo + stride;
                let forward = (lo & size) == 0u;
                let swap = before(keys[hi], vals[hi], keys[lo], vals[lo]) == forward;
                if (swap) {
                    let ks = keys[lo];
                    let vs = vals[lo];
                    keys[lo] = keys[hi];
                    vals[lo] = vals[hi];
                    keys[hi] = ks;
                    vals[hi] = vs;
                }
            }
            workgroupBarrier();
        }
    }
}

fn write_top_k(b: u32, segment: u32, li: u32) {
    let base = (b * params.segments + segment) * params.k;
    for (var r = li; r < params.k; r += WG) {
        out_scores[base + r] = keys[r];
        out_ids[base + r] = vals[r];
    }
}

fn in_history(b: u32, id: u32) -> bool {
    var lo = history[b];
    var hi = history[b + 1u];
    while (lo < hi) {
        let mid = (lo + hi) / 2u;
        let x = history[params.batch + 1u + mid];
        if (x == id) {
            return true;
        }
        if (x < id) {
            lo = mid + 1u;
        } else {
            hi = mid;
        }
    }
    return false;
}

@compute @workgroup_size(WG)
fn score_topk(@builtin(workgroup_id) wid: vec3<u32>, @builtin(local_invocation_index) li: u32) {
    let b = wid.y;
    let first = params.item_lo + wid.x * SORT_N;
    let user = b * params.user_stride;
    for (var e = li; e < SORT_N; e += WG) {
        let id = first + e;
        var score = NONE_SCORE;
        var out_id = NONE_ID;
        if (id < params.item_hi && id >= 1u && id <= params.num_items && !in_history(b, id)) {
            let row = (id - params.item_lo) * params.dim;
            var dot = 0.0;
            var sq = 0.0;
            for (var c = 0u; c < params.dim; c++) {
                let x = items[row + c];
                dot = fma(users[user + c], x, dot);
                sq = fma(x, x, sq);
            }
            score = dot / max(sqrt(sq), params.eps);
            out_id = id;
        }
        keys[e] = score;
        vals[e] = out_id;
    }
    workgroupBarrier();
    bitonic_sort(li);
    write_top_k(b, params.segment_base + wid.x, li);
}

@compute @workgroup_size(WG)
fn merge_topk(@builtin(workgroup_id) wid: vec3<u32>, @builtin(local_invocation_index) li: u32) {
    let b = wid.y;
    let first = wid.x * SORT_N;
    for (var e = li; e < SORT_N; e += WG) {
        var score = NONE_SCORE;
        var id = NONE_ID;
        if (first + e < params.in_len) {
            score = in_scores[b * params.in_len + first + e];
            id = in_ids[b * params.in_len + first + e];
        }
        keys[e] = score;
        vals[e] = id;
    }
    workgroupBarrier();
    bitonic_sort(li);
    write_top_k(b, wid.x, li);
}
