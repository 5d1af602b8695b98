// hstu_topk: score_topk takes a tile of up to U users and a chunk of items of one item-table binding, scores s_c = u_b . e_c / max(||e_c||, eps) (history, id 0 and ids > num_items excluded) and keeps each user's top k of the chunk; merge_topk reduces segments of k until one remains; score_all (k beyond what a sort holds) writes every s_c of the binding, NONE_SCORE where excluded.
// bindings: 0 params (uniform); score_topk: 1 users [B, user_stride] f32 (L2-normalised), 2 items [item_hi - item_lo, D] f32, 3 history u32 [hist_offsets B+1 | sorted ids], 4 out_scores, 5 out_ids [B, segments, k]; merge_topk: 6 in_scores, 7 in_ids [B, in_len], 4 out_scores, 5 out_ids [B, out_segments, k]; score_all: 1, 2, 3 as score_topk, 4 out_scores [B, item_hi - item_lo].
// dispatch: score_topk (ceil(B / tile_users), ceil((item_hi - item_lo) / chunk), 1), merge_topk (ceil(in_len / seg), B, 1) with seg = min(in_len, SORT_N) rounded up to a power of two, score_all (min(ceil((item_hi - item_lo) / WG), 65535), B, 1); WG invocations each.

override WG: u32 = 256u;
override SORT_N: u32 = 4096u; // a power of two, >= 2 * k; merge_topk's list and score_topk's tile_users * seg
override DC: u32 = 32u;       // dims of the users' embeddings staged per step in workgroup memory

// Users per tile at most (two named vec4 accumulators per invocation, so a const).
const U: u32 = 8u;

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
    tile_users: u32,    // score_topk: users per workgroup, <= U
    seg: u32,           // score_topk: sort segment per user (power of two, >= keep + WG), tile_users * seg <= SORT_N; merge_topk: entries sorted per workgroup
    keep: u32,          // score_topk: head of each segment that holds the running top k (>= k)
    chunk: u32,         // score_topk: items per workgroup, a multiple of WG
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
var<workgroup> user_tile: array<vec4<f32>, 2u * DC>; // [DC dims][users 0-3 | users 4-7]
var<workgroup> counts: array<atomic<u32>, U>;          // candidates appended per user since the last sort
var<workgroup> most: u32;

// Total order: higher score first, then lower id.
fn before(score_a: f32, id_a: u32, score_b: f32, id_b: u32) -> bool {
    return score_a > score_b || (score_a == score_b && id_a < id_b);
}

// Sorts keys/vals[0, n) in independent segments of seg (powers of two), each best first.
fn bitonic_sort(li: u32, n: u32, seg: u32) {
    // min(seg, SORT_N): the doubling ends whatever seg holds (SORT_N is a power of two below 2^31).
    for (var size = 2u; size <= min(seg, SORT_N); size <<= 1u) {
        for (var stride = size >> 1u; stride > 0u; stride >>= 1u) {
            for (var e = li; e < n / 2u; e += WG) {
                let lo = 2u * stride * (e / stride) + e % stride;
                let hi = lo + stride;
                let forward = size == seg || (lo & size) == 0u;
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

// Offer item `id` with score `s` to tile user j: it is appended to the user's candidates
// [keep, seg) only if it beats the k-th best of the last sort and is not in the history.
fn offer(j: u32, b0: u32, s: f32, id: u32, valid: bool) {
    let b = b0 + j;
    if (!valid || j >= params.tile_users || b >= params.batch) {
        return;
    }
    let kth = j * params.seg + params.k - 1u;
    if (before(s, id, keys[kth], vals[kth]) && !in_history(b, id)) {
        let slot = atomicAdd(&counts[j], 1u);
        keys[j * params.seg + params.keep + slot] = s;
        vals[j * params.seg + params.keep + slot] = id;
    }
}

// Each round scores WG items (one per invocation) for every tile user; a candidate costs an
// append only, and a bitonic sort of the segments runs when a user's free slots may not hold
// another round (or at the chunk's end): after the first rounds that is rare.
@compute @workgroup_size(WG)
fn score_topk(@builtin(workgroup_id) wid: vec3<u32>, @builtin(local_invocation_index) li: u32) {
    let tu = params.tile_users;
    let b0 = wid.x * tu;
    let seg = params.seg;
    let keep = params.keep;
    let fresh = seg - keep; // candidate slots per user between sorts, >= WG
    let n = tu * seg;
    let chunk_lo = params.item_lo + wid.y * params.chunk;
    let chunk_hi = min(chunk_lo + params.chunk, params.item_hi);
    for (var e = li; e < n; e += WG) {
        keys[e] = NONE_SCORE;
        vals[e] = NONE_ID;
    }
    if (li < U) {
        atomicStore(&counts[li], 0u);
    }
    for (var first = chunk_lo; first < chunk_hi; first += WG) {
        let id = first + li;
        let live = id < chunk_hi;
        let row = (min(id, chunk_hi - 1u) - params.item_lo) * params.dim;
        var acc_lo = vec4<f32>(0.0);
        var acc_hi = vec4<f32>(0.0);
        var sq = 0.0;
        for (var c0 = 0u; c0 < params.dim; c0 += DC) {
            workgroupBarrier();
            for (var e = li; e < U * DC; e += WG) {
                let j = e / DC;
                let c = c0 + e % DC;
                var v = 0.0;
                if (j < tu && b0 + j < params.batch && c < params.dim) {
                    v = users[(b0 + j) * params.user_stride + c];
                }
                user_tile[(e % DC) * 2u + j / 4u][j % 4u] = v;
            }
            workgroupBarrier();
            if (live) {
                let cn = min(DC, params.dim - c0);
                for (var c = 0u; c < cn; c++) {
                    let x = items[row + c0 + c];
                    sq = fma(x, x, sq);
                    acc_lo = fma(vec4<f32>(x), user_tile[2u * c], acc_lo);
                    acc_hi = fma(vec4<f32>(x), user_tile[2u * c + 1u], acc_hi);
                }
            }
        }
        let valid = live && id >= 1u && id <= params.num_items;
        let norm = vec4<f32>(max(sqrt(sq), params.eps));
        let lo = acc_lo / norm;
        let hi = acc_hi / norm;
        offer(0u, b0, lo.x, id, valid);
        offer(1u, b0, lo.y, id, valid);
        offer(2u, b0, lo.z, id, valid);
        offer(3u, b0, lo.w, id, valid);
        offer(4u, b0, hi.x, id, valid);
        offer(5u, b0, hi.y, id, valid);
        offer(6u, b0, hi.z, id, valid);
        offer(7u, b0, hi.w, id, valid);
        workgroupBarrier();
        if (li == 0u) {
            var m = 0u;
            for (var j = 0u; j < U; j++) {
                m = max(m, atomicLoad(&counts[j]));
            }
            most = m;
        }
        let m = workgroupUniformLoad(&most);
        let last = first + WG >= chunk_hi;
        if (m > fresh - WG || (last && m > 0u)) {
            bitonic_sort(li, n, seg);
            // Everything past the head is worse than the keep best: free the slots.
            for (var e = li; e < n; e += WG) {
                if (e % seg >= keep) {
                    keys[e] = NONE_SCORE;
                    vals[e] = NONE_ID;
                }
            }
            if (li < U) {
                atomicStore(&counts[li], 0u);
            }
            workgroupBarrier();
        }
    }
    for (var e = li; e < tu * params.k; e += WG) {
        let j = e / params.k;
        let r = e % params.k;
        let b = b0 + j;
        if (b < params.batch) {
            let o = (b * params.segments + params.segment_base + wid.y) * params.k + r;
            out_scores[o] = keys[j * seg + r];
            out_ids[o] = vals[j * seg + r];
        }
    }
}

@compute @workgroup_size(WG)
fn merge_topk(@builtin(workgroup_id) wid: vec3<u32>, @builtin(local_invocation_index) li: u32) {
    // Each workgroup sorts seg entries (a power of two <= SORT_N, sized by the host to the input).
    let n = params.seg;
    let b = wid.y;
    let first = wid.x * n;
    for (var e = li; e < n; e += WG) {
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
    bitonic_sort(li, n, n);
    let base = (b * params.segments + wid.x) * params.k;
    for (var r = li; r < params.k; r += WG) {
        out_scores[base + r] = keys[r];
        out_ids[base + r] = vals[r];
    }
}

// Every item of the binding for user wid.y, with score_topk's arithmetic (the same fma chain over
// the dims, so the same f32 score): for k larger than a workgroup's sort holds; the host selects.
@compute @workgroup_size(WG)
fn score_all(
    @builtin(workgroup_id) wid: vec3<u32>,
    @builtin(num_workgroups) nwg: vec3<u32>,
    @builtin(local_invocation_index) li: u32,
) {
    let b = wid.y;
    let rows = params.item_hi - params.item_lo;
    // Grid-stride over the binding's rows (the step is at least WG).
    for (var r = wid.x * WG + li; r < rows; r += nwg.x * WG) {
        let id = params.item_lo + r;
        var acc = 0.0;
        var sq = 0.0;
        for (var c = 0u; c < params.dim; c++) {
            let x = items[r * params.dim + c];
            sq = fma(x, x, sq);
            acc = fma(x, users[b * params.user_stride + c], acc);
        }
        var s = acc / max(sqrt(sq), params.eps);
        if (id < 1u || id > params.num_items || in_history(b, id)) {
            s = NONE_SCORE;
        }
        out_scores[b * rows + r] = s;
    }
}
