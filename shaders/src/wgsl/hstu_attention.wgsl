// hstu_attention: out[b, i, h, :] = sum_j valid(i, j) * silu(alpha * q_i . k_j + rab_ij) / n * v_j over jagged sequences (spec sections 1, 5, 6), tiled flash-style: never an N x N matrix in memory (CAPTURE: also writes a_ij for batch 1).
// bindings: 0 params (uniform), 1 meta u32 [seq_offsets B+1 | num_targets B | bucket thresholds buckets+1], 2 q, 3 k, 4 v (elem, rows of q_stride/k_stride/v_stride, head h at column offset + h*d), 5 rab_w f32 [pos_w 2N-1 | ts_w buckets+1], 6 times i32 [t_next T | t_key T], 7 out f32 [.., out_stride], (CAPTURE: 8 capture f32 [H, L, L]).
// dispatch: (ceil(max_b (L_b - q_begin) / BQ), H, B) with BQ = 64 and 16 x 16 invocations; COOP: BQ = 32 and one subgroup (SG invocations) per workgroup; COOP main_wide: BQ = 64 and 4 subgroups; main_small (dqk, dv <= 32): BQ = 32, 256 invocations.

struct Params {
    batch: u32,
    heads: u32,
    dqk: u32,
    dv: u32,
    q_offset: u32,      // column of head 0 of q within a row
    k_offset: u32,
    v_offset: u32,
    q_stride: u32,      // elements per row
    k_stride: u32,
    v_stride: u32,
    out_stride: u32,    // out row r, head h, column c at r * out_stride + h * dv + c
    q_begin: u32,       // local query rows [q_begin, L) are computed; out row = seq_start + i - q_begin
    alpha: f32,
    inv_n: f32,
    max_attn_len: u32,  // 0 = unlimited
    has_rab: u32,
    rab_n: u32,         // N of pos_w (length 2N - 1)
    num_buckets: u32,
    bucket_divisor: f32,
    num_targets_base: u32,  // index of num_targets[0] in meta
    thresholds_base: u32,   // index of threshold[0] in meta: smallest |dt| with bucket >= k
    times_key_base: u32,    // index of t_key[0] in times
    _pad0: u32,
    _pad1: u32,
}

@group(0) @binding(0) var<uniform> params: Params;
@group(0) @binding(1) var<storage, read> meta_u32: array<u32>;      // seq_offsets | num_targets | thresholds
@group(0) @binding(2) var<storage, read> q: array<elem>;            // [.., q_stride]
@group(0) @binding(3) var<storage, read> k: array<elem>;            // [.., k_stride]
@group(0) @binding(4) var<storage, read> v: array<elem>;            // [.., v_stride]
@group(0) @binding(5) var<storage, read> rab_w: array<f32>;         // pos_w [2N - 1] | ts_w [buckets + 1]
@group(0) @binding(6) var<storage, read> times: array<i32>;         // t_next [T] | t_key [T], seconds relative to the sequence
@group(0) @binding(7) var<storage, read_write> out: array<f32>;     // [.., out_stride]
//#if CAPTURE
@group(0) @binding(8) var<storage, read_write> capture: array<f32>; // [H, L, L], batch 1
//#endif

// bucket(dt) = clamp(floor(ln(max(|dt|, 1)) / divisor), 0, buckets): f32 estimate, corrected by the host's exact thresholds.
fn time_bucket(dt: u32) -> u32 {
    let estimate = floor(log(f32(max(dt, 1u))) / params.bucket_divisor);
    var bucket = u32(clamp(estimate, 0.0, f32(params.num_buckets)));
    if (bucket < params.num_buckets && dt >= meta_u32[params.thresholds_base + bucket + 1u]) {
        bucket += 1u;
    }
    if (bucket > 0u && dt < meta_u32[params.thresholds_base + bucket]) {
        bucket -= 1u;
    }
    return bucket;
}

// a_ij for local query i, key j of the sequence starting at token `start` with `u` history tokens.
fn attention_weight(qk: f32, i: u32, j: u32, u: u32, start: u32) -> f32 {
    let id_i = min(i, u);
    let id_j = min(j, u);
    let in_window = params.max_attn_len == 0u || id_i - id_j <= params.max_attn_len;
    if (!(i == j || (id_i > id_j && in_window))) {
        return 0.0;
    }
    var s = params.alpha * qk;
    if (params.has_rab != 0u) {
        let pos_index = i32(params.rab_n) - 1 + i32(id_j) - i32(id_i);
        let dt = times[start + i] - times[params.times_key_base + start + j];
        let ts_index = 2u * params.rab_n - 1u + time_bucket(u32(abs(dt)));
        s += rab_w[u32(pos_index)] + rab_w[ts_index];
    }
    return s / (1.0 + exp(-s)) * params.inv_n;
}

struct Sequence {
    start: u32,
    len: u32,
    history: u32, // U = L - num_targets
}

fn sequence(b: u32) -> Sequence {
    let start = meta_u32[b];
    let len = meta_u32[b + 1u] - start;
    let targets = min(meta_u32[params.num_targets_base + b], len);
    return Sequence(start, len, len - targets);
}

// Does key block [j0, j0 + bk) hold a valid key for some query row in [i0, i1)?
// History rows need keys [0, min(i1, U)); target rows only themselves, [max(i0, U), i1).
fn key_block_needed(j0: u32, bk: u32, i0: u32, i1: u32, u: u32) -> bool {
    let history_end = min(i1, u);
    let diagonal_start = max(i0, u);
    return j0 < history_end || (j0 < i1 && j0 + bk > diagonal_start);
}

// Small-head path `main_small` (every variant; dqk, dv <= 32, e.g. HSTU-large's 8 heads x 32):
// BQ = 32 query rows x BK = 32 keys per step, 256 invocations; the q tile stays in workgroup
// memory for the whole key loop, k and v tiles are one vec4 per invocation, 3 barriers per key block;
// the relative-bias tables are staged in workgroup memory when they fit (HSTU-large: 528 floats).
const SB: u32 = 32u;   // query rows and keys per block
const SD: u32 = 32u;   // head dims at most (dqk and dv)

var<workgroup> sq_tile: array<vec4<f32>, 256>; // [SB rows][SD / 4 dims]
var<workgroup> sk_tile: array<vec4<f32>, 256>; // [SD dims][SB / 4 keys]: k transposed, 4 keys per vec4
var<workgroup> sv_tile: array<vec4<f32>, 256>; // [SB keys][SD / 4 dims]
var<workgroup> sp_tile: array<vec4<f32>, 256>; // [SB rows][SB / 4 keys]: a_ij
// The relative-bias tables and the key times of a block, staged once when they fit (then every
// a_ij reads workgroup memory only instead of a chain of dependent global loads).
const S_RAB: u32 = 1024u;
const S_THR: u32 = 256u;
var<workgroup> s_rab: array<f32, S_RAB>;  // rab_w [2N - 1 + buckets + 1]
var<workgroup> s_thr: array<u32, S_THR>;  // bucket thresholds [buckets + 1]
var<workgroup> s_tkey: array<i32, SB>;    // t_key of the block's keys

// time_bucket with the staged thresholds (same arithmetic).
fn staged_time_bucket(dt: u32) -> u32 {
    let estimate = floor(log(f32(max(dt, 1u))) / params.bucket_divisor);
    var bucket = u32(clamp(estimate, 0.0, f32(params.num_buckets)));
    if (bucket < params.num_buckets && dt >= s_thr[bucket + 1u]) {
        bucket += 1u;
    }
    if (bucket > 0u && dt < s_thr[bucket]) {
        bucket -= 1u;
    }
    return bucket;
}

// attention_weight with rab on and the tables staged (same arithmetic); dt = t_next[i] - t_key[j].
fn staged_weight(qk: f32, i: u32, j: u32, u: u32, dt: i32) -> f32 {
    let id_i = min(i, u);
    let id_j = min(j, u);
    let in_window = params.max_attn_len == 0u || id_i - id_j <= params.max_attn_len;
    if (!(i == j || (id_i > id_j && in_window))) {
        return 0.0;
    }
    var s = params.alpha * qk;
    let pos_index = i32(params.rab_n) - 1 + i32(id_j) - i32(id_i);
    let ts_index = 2u * params.rab_n - 1u + staged_time_bucket(u32(abs(dt)));
    s += s_rab[u32(pos_index)] + s_rab[ts_index];
    return s / (1.0 + exp(-s)) * params.inv_n;
}

// Columns [c, c + 4) of a head starting at column head_col of row `row` (0 past dqk / dv or when !ok).
fn small_q4(row: u32, head_col: u32, c: u32, ok: bool) -> vec4<f32> {
    var r = vec4<f32>(0.0);
    let base = row * params.q_stride + params.q_offset + head_col + c;
    if (ok && c < params.dqk) { r.x = f32(q[base]); }
    if (ok && c + 1u < params.dqk) { r.y = f32(q[base + 1u]); }
    if (ok && c + 2u < params.dqk) { r.z = f32(q[base + 2u]); }
    if (ok && c + 3u < params.dqk) { r.w = f32(q[base + 3u]); }
    return r;
}

fn small_k4(row: u32, head_col: u32, c: u32, ok: bool) -> vec4<f32> {
    var r = vec4<f32>(0.0);
    let base = row * params.k_stride + params.k_offset + head_col + c;
    if (ok && c < params.dqk) { r.x = f32(k[base]); }
    if (ok && c + 1u < params.dqk) { r.y = f32(k[base + 1u]); }
    if (ok && c + 2u < params.dqk) { r.z = f32(k[base + 2u]); }
    if (ok && c + 3u < params.dqk) { r.w = f32(k[base + 3u]); }
    return r;
}

fn small_v4(row: u32, head_col: u32, c: u32, ok: bool) -> vec4<f32> {
    var r = vec4<f32>(0.0);
    let base = row * params.v_stride + params.v_offset + head_col + c;
    if (ok && c < params.dv) { r.x = f32(v[base]); }
    if (ok && c + 1u < params.dv) { r.y = f32(v[base + 1u]); }
    if (ok && c + 2u < params.dv) { r.z = f32(v[base + 2u]); }
    if (ok && c + 3u < params.dv) { r.w = f32(v[base + 3u]); }
    return r;
}

fn small_weight(s: f32, i: u32, j: u32, seq: Sequence, h: u32, staged: bool, t_i: i32, j0: u32) -> f32 {
    var w = 0.0;
    if (i < seq.len && j < seq.len) {
        if (staged) {
            w = staged_weight(s, i, j, seq.history, t_i - s_tkey[j - j0]);
        } else {
            w = attention_weight(s, i, j, seq.history, seq.start);
        }
//#if CAPTURE
        capture[(h * seq.len + i) * seq.len + j] = w;
//#endif
    }
    return w;
}

// s += q . k_c for the 4 keys of k rows c..c+3 (one dim each) times the 4 dims of qv.
fn small_dot(qv: vec4<f32>, c: u32, key4: u32, s: vec4<f32>) -> vec4<f32> {
    var r = fma(vec4<f32>(qv.x), sk_tile[(c + 0u) * 8u + key4], s);
    r = fma(vec4<f32>(qv.y), sk_tile[(c + 1u) * 8u + key4], r);
    r = fma(vec4<f32>(qv.z), sk_tile[(c + 2u) * 8u + key4], r);
    r = fma(vec4<f32>(qv.w), sk_tile[(c + 3u) * 8u + key4], r);
    return r;
}

@compute @workgroup_size(256)
fn main_small(@builtin(workgroup_id) wid: vec3<u32>, @builtin(local_invocation_index) li: u32) {
    let b = wid.z;
    let h = wid.y;
    let seq = sequence(b);
    let i0 = params.q_begin + wid.x * SB;
    if (i0 >= seq.len) {
        return;
    }
    let i1 = min(i0 + SB, seq.len);
    // Invocation li: row (query or key) li / 8 of a block, 4 columns (li % 8) * 4.
    let r = li / 8u;
    let c4 = li % 8u;
    let i = i0 + r;
    let hq = h * params.dqk;
    let hv = h * params.dv;
    sq_tile[li] = small_q4(seq.start + i, hq, c4 * 4u, i < seq.len);
    let rab_len = 2u * params.rab_n + params.num_buckets;
    let staged = params.has_rab != 0u && rab_len <= S_RAB && params.num_buckets < S_THR;
    var t_i = 0;
    if (staged) {
        for (var e = li; e < rab_len; e += 256u) {
            s_rab[e] = rab_w[e];
        }
        for (var e = li; e <= params.num_buckets; e += 256u) {
            s_thr[e] = meta_u32[params.thresholds_base + e];
        }
        if (i < seq.len) {
            t_i = times[seq.start + i];
        }
    }
    var o = vec4<f32>(0.0);
    for (var j0 = 0u; j0 < i1; j0 += SB) {
        if (!key_block_needed(j0, SB, i0, i1, seq.history)) {
            continue;
        }
        workgroupBarrier();
        let jl = j0 + r;
        let kv = small_k4(seq.start + jl, hq, c4 * 4u, jl < seq.len);
        sk_tile[(c4 * 4u + 0u) * 8u + r / 4u][r % 4u] = kv.x;
        sk_tile[(c4 * 4u + 1u) * 8u + r / 4u][r % 4u] = kv.y;
        sk_tile[(c4 * 4u + 2u) * 8u + r / 4u][r % 4u] = kv.z;
        sk_tile[(c4 * 4u + 3u) * 8u + r / 4u][r % 4u] = kv.w;
        sv_tile[li] = small_v4(seq.start + jl, hv, c4 * 4u, jl < seq.len);
        if (staged && li < SB) {
            let jk = j0 + li;
            var t = 0;
            if (jk < seq.len) {
                t = times[params.times_key_base + seq.start + jk];
            }
            s_tkey[li] = t;
        }
        workgroupBarrier();
        // Scores of query row r against keys 4 c4 .. 4 c4 + 3.
        var s = vec4<f32>(0.0);
        for (var c = 0u; c < SD / 4u; c++) {
            s = small_dot(sq_tile[r * 8u + c], c * 4u, c4, s);
        }
        let j = j0 + c4 * 4u;
        sp_tile[li] = vec4<f32>(
            small_weight(s.x, i, j, seq, h, staged, t_i, j0),
            small_weight(s.y, i, j + 1u, seq, h, staged, t_i, j0),
            small_weight(s.z, i, j + 2u, seq, h, staged, t_i, j0),
            small_weight(s.w, i, j + 3u, seq, h, staged, t_i, j0));
        workgroupBarrier();
        // o[row r, dims 4 c4 ..] += sum over the block's keys of a_rj v_j.
        for (var kq = 0u; kq < SB / 4u; kq++) {
            let p = sp_tile[r * 8u + kq];
            o = fma(vec4<f32>(p.x), sv_tile[(kq * 4u + 0u) * 8u + c4], o);
            o = fma(vec4<f32>(p.y), sv_tile[(kq * 4u + 1u) * 8u + c4], o);
            o = fma(vec4<f32>(p.z), sv_tile[(kq * 4u + 2u) * 8u + c4], o);
            o = fma(vec4<f32>(p.w), sv_tile[(kq * 4u + 3u) * 8u + c4], o);
        }
    }
    if (i < seq.len) {
        let col = c4 * 4u;
        let base = (seq.start + i - params.q_begin) * params.out_stride + hv + col;
        if (col < params.dv) { out[base] = o.x; }
        if (col + 1u < params.dv) { out[base + 1u] = o.y; }
        if (col + 2u < params.dv) { out[base + 2u] = o.z; }
        if (col + 3u < params.dv) { out[base + 3u] = o.w; }
    }
}

//#if COOP
// Tensor-core path: one subgroup owns BQ = 32 query rows x 128 value columns as 2 x 8 cooperative
// f32 accumulators; scores of a 32 x 32 key block go through workgroup memory for silu, mask and rab.
override SG: u32 = 32u;

var<workgroup> s_tile: array<f32, 1024>;  // [32 rows][32 keys] scores, then 16 x 16 output tiles
var<workgroup> p_tile: array<f16, 1024>;  // [32 rows][32 keys] a_ij

fn store_out_tile(acc: coop_mat16x16<f32, C>, seq: Sequence, h: u32, i_row0: u32, col0: u32, lane: u32) {
    let zero = 0u;
    let tile_stride = 16u;
    coopStoreT(acc, &s_tile[zero], tile_stride);
    workgroupBarrier();
    for (var e = lane; e < 256u; e += SG) {
        let i = i_row0 + e / 16u;
        let col = col0 + e % 16u;
        if (i < seq.len && col < params.dv) {
            out[(seq.start + i - params.q_begin) * params.out_stride + h * params.dv + col] = s_tile[e];
        }
    }
    workgroupBarrier();
}

// Key blocks of 32 for query rows [i0, i1): first the history blocks [0, min(i1, U)), then the
// target diagonal blocks not already covered. Returned as (history block count, first diagonal block, count).
fn coop_key_blocks(i0: u32, i1: u32, u: u32) -> vec3<u32> {
    let history_blocks = (min(i1, u) + 31u) / 32u;
    var first = max(max(i0, u) / 32u, history_blocks);
    var count = 0u;
    if (i1 > u) {
        count = max((i1 + 31u) / 32u, first) - first;
    }
    return vec3<u32>(history_blocks, first, count);
}

// Wide form `main_wide` (experimental, not the default): 4 subgroups per workgroup own 64 query
// rows (16 each); a 32-key block of k and v is staged once in workgroup memory for all four, each
// subgroup keeps its q fragments in registers and 16 x 128 outputs in 8 accumulators.

var<workgroup> wk_tile: array<f16, 4096>; // [32 keys][dqk] k block
var<workgroup> wv_tile: array<f16, 4096>; // [32 keys][dv] v block
var<workgroup> ws_tile: array<f32, 2048>; // [4 subgroups][16 rows][32 keys] scores, then 16 x 16 output tiles
var<workgroup> wp_tile: array<f16, 2048>; // [4 subgroups][16 rows][32 keys] a_ij

fn wide_store(acc: coop_mat16x16<f32, C>, seq: Sequence, h: u32, row0: u32, col0: u32, sg: u32, lane: u32) {
    let base = sg * 512u;
    let tile_stride = 16u;
    coopStoreT(acc, &ws_tile[base], tile_stride);
    workgroupBarrier();
    for (var e = lane; e < 256u; e += SG) {
        let i = row0 + e / 16u;
        let col = col0 + e % 16u;
        if (i < seq.len && col < params.dv) {
            out[(seq.start + i - params.q_begin) * params.out_stride + h * params.dv + col] = ws_tile[base + e];
        }
    }
    workgroupBarrier();
}

@compute @workgroup_size(4 * SG)
fn main_wide(@builtin(workgroup_id) wid: vec3<u32>, @builtin(local_invocation_index) li: u32) {
    let b = wid.z;
    let h = wid.y;
    let seq = sequence(b);
    let sg = li / SG;
    let lane = li % SG;
    let i0 = params.q_begin + wid.x * 64u;
    let i1 = clamp(seq.len, i0, i0 + 64u);
    let r0 = i0 + 16u * sg;
    let blocks = coop_key_blocks(i0, i1, seq.history);
    let total_blocks = select(0u, blocks.x + blocks.z, i1 > i0);
    let qs = params.q_stride;
    let dqk = params.dqk;
    let dv = params.dv;
    let tiles = dv / 16u;
    let kt = dqk / 16u;
    let iq = (seq.start + r0) * qs + params.q_offset + h * dqk;
    var q0 = coop_mat16x16<f16, A>(); var q1 = coop_mat16x16<f16, A>();
    var q2 = coop_mat16x16<f16, A>(); var q3 = coop_mat16x16<f16, A>();
    var q4 = coop_mat16x16<f16, A>(); var q5 = coop_mat16x16<f16, A>();
    var q6 = coop_mat16x16<f16, A>(); var q7 = coop_mat16x16<f16, A>();
    if (kt > 0u) { let x = iq; q0 = coopLoadT<coop_mat16x16<f16, A>>(&q[x], qs); }
    if (kt > 1u) { let x = iq + 16u; q1 = coopLoadT<coop_mat16x16<f16, A>>(&q[x], qs); }
    if (kt > 2u) { let x = iq + 32u; q2 = coopLoadT<coop_mat16x16<f16, A>>(&q[x], qs); }
    if (kt > 3u) { let x = iq + 48u; q3 = coopLoadT<coop_mat16x16<f16, A>>(&q[x], qs); }
    if (kt > 4u) { let x = iq + 64u; q4 = coopLoadT<coop_mat16x16<f16, A>>(&q[x], qs); }
    if (kt > 5u) { let x = iq + 80u; q5 = coopLoadT<coop_mat16x16<f16, A>>(&q[x], qs); }
    if (kt > 6u) { let x = iq + 96u; q6 = coopLoadT<coop_mat16x16<f16, A>>(&q[x], qs); }
    if (kt > 7u) { let x = iq + 112u; q7 = coopLoadT<coop_mat16x16<f16, A>>(&q[x], qs); }
    var o0 = coop_mat16x16<f32, C>(); var o1 = coop_mat16x16<f32, C>();
    var o2 = coop_mat16x16<f32, C>(); var o3 = coop_mat16x16<f32, C>();
    var o4 = coop_mat16x16<f32, C>(); var o5 = coop_mat16x16<f32, C>();
    var o6 = coop_mat16x16<f32, C>(); var o7 = coop_mat16x16<f32, C>();
    let sbase = sg * 512u;
    let p_stride = 32u;
    for (var t = 0u; t < total_blocks; t++) {
        let j0 = select((blocks.y + t - blocks.x) * 32u, t * 32u, t < blocks.x);
        workgroupBarrier();
        // Stage the block's 32 keys of k and v (zeros past the sequence).
        for (var e = li; e < 32u * dqk; e += 4u * SG) {
            let j = j0 + e / dqk;
            var x = f16(0.0);
            if (j < seq.len) {
                x = k[(seq.start + j) * params.k_stride + params.k_offset + h * dqk + e % dqk];
            }
            wk_tile[e] = x;
        }
        for (var e = li; e < 32u * dv; e += 4u * SG) {
            let j = j0 + e / dv;
            var x = f16(0.0);
            if (j < seq.len) {
                x = v[(seq.start + j) * params.v_stride + params.v_offset + h * dv + e % dv];
            }
            wv_tile[e] = x;
        }
        workgroupBarrier();
        var s0 = coop_mat16x16<f32, C>();
        var s1 = coop_mat16x16<f32, C>();
        let kb1 = 16u * dqk;
        if (kt > 0u) { let x0 = 0u; let x1 = kb1; let k0 = coopLoad<coop_mat16x16<f16, B>>(&wk_tile[x0], dqk); let k1 = coopLoad<coop_mat16x16<f16, B>>(&wk_tile[x1], dqk); s0 = coopMultiplyAdd(q0, k0, s0); s1 = coopMultiplyAdd(q0, k1, s1); }
        if (kt > 1u) { let x0 = 16u; let x1 = kb1 + 16u; let k0 = coopLoad<coop_mat16x16<f16, B>>(&wk_tile[x0], dqk); let k1 = coopLoad<coop_mat16x16<f16, B>>(&wk_tile[x1], dqk); s0 = coopMultiplyAdd(q1, k0, s0); s1 = coopMultiplyAdd(q1, k1, s1); }
        if (kt > 2u) { let x0 = 32u; let x1 = kb1 + 32u; let k0 = coopLoad<coop_mat16x16<f16, B>>(&wk_tile[x0], dqk); let k1 = coopLoad<coop_mat16x16<f16, B>>(&wk_tile[x1], dqk); s0 = coopMultiplyAdd(q2, k0, s0); s1 = coopMultiplyAdd(q2, k1, s1); }
        if (kt > 3u) { let x0 = 48u; let x1 = kb1 + 48u; let k0 = coopLoad<coop_mat16x16<f16, B>>(&wk_tile[x0], dqk); let k1 = coopLoad<coop_mat16x16<f16, B>>(&wk_tile[x1], dqk); s0 = coopMultiplyAdd(q3, k0, s0); s1 = coopMultiplyAdd(q3, k1, s1); }
        if (kt > 4u) { let x0 = 64u; let x1 = kb1 + 64u; let k0 = coopLoad<coop_mat16x16<f16, B>>(&wk_tile[x0], dqk); let k1 = coopLoad<coop_mat16x16<f16, B>>(&wk_tile[x1], dqk); s0 = coopMultiplyAdd(q4, k0, s0); s1 = coopMultiplyAdd(q4, k1, s1); }
        if (kt > 5u) { let x0 = 80u; let x1 = kb1 + 80u; let k0 = coopLoad<coop_mat16x16<f16, B>>(&wk_tile[x0], dqk); let k1 = coopLoad<coop_mat16x16<f16, B>>(&wk_tile[x1], dqk); s0 = coopMultiplyAdd(q5, k0, s0); s1 = coopMultiplyAdd(q5, k1, s1); }
        if (kt > 6u) { let x0 = 96u; let x1 = kb1 + 96u; let k0 = coopLoad<coop_mat16x16<f16, B>>(&wk_tile[x0], dqk); let k1 = coopLoad<coop_mat16x16<f16, B>>(&wk_tile[x1], dqk); s0 = coopMultiplyAdd(q6, k0, s0); s1 = coopMultiplyAdd(q6, k1, s1); }
        if (kt > 7u) { let x0 = 112u; let x1 = kb1 + 112u; let k0 = coopLoad<coop_mat16x16<f16, B>>(&wk_tile[x0], dqk); let k1 = coopLoad<coop_mat16x16<f16, B>>(&wk_tile[x1], dqk); s0 = coopMultiplyAdd(q7, k0, s0); s1 = coopMultiplyAdd(q7, k1, s1); }
        let st0 = sbase;
        let st1 = sbase + 16u;
        coopStoreT(s0, &ws_tile[st0], p_stride);
        coopStoreT(s1, &ws_tile[st1], p_stride);
        workgroupBarrier();
        for (var e = lane; e < 512u; e += SG) {
            let i = r0 + e / 32u;
            let j = j0 + e % 32u;
            var w = 0.0;
            if (i < seq.len && j < seq.len) {
                w = attention_weight(ws_tile[sbase + e], i, j, seq.history, seq.start);
            }
            wp_tile[sbase + e] = f16(w);
        }
        workgroupBarrier();
        let p0 = coopLoadT<coop_mat16x16<f16, A>>(&wp_tile[st0], p_stride);
        let p1 = coopLoadT<coop_mat16x16<f16, A>>(&wp_tile[st1], p_stride);
        let vb1 = 16u * dv;
        if (tiles > 0u) { let x0 = 0u; let x1 = vb1; let v0 = coopLoadT<coop_mat16x16<f16, B>>(&wv_tile[x0], dv); let v1 = coopLoadT<coop_mat16x16<f16, B>>(&wv_tile[x1], dv); o0 = coopMultiplyAdd(p0, v0, o0); o0 = coopMultiplyAdd(p1, v1, o0); }
        if (tiles > 1u) { let x0 = 16u; let x1 = vb1 + 16u; let v0 = coopLoadT<coop_mat16x16<f16, B>>(&wv_tile[x0], dv); let v1 = coopLoadT<coop_mat16x16<f16, B>>(&wv_tile[x1], dv); o1 = coopMultiplyAdd(p0, v0, o1); o1 = coopMultiplyAdd(p1, v1, o1); }
        if (tiles > 2u) { let x0 = 32u; let x1 = vb1 + 32u; let v0 = coopLoadT<coop_mat16x16<f16, B>>(&wv_tile[x0], dv); let v1 = coopLoadT<coop_mat16x16<f16, B>>(&wv_tile[x1], dv); o2 = coopMultiplyAdd(p0, v0, o2); o2 = coopMultiplyAdd(p1, v1, o2); }
        if (tiles > 3u) { let x0 = 48u; let x1 = vb1 + 48u; let v0 = coopLoadT<coop_mat16x16<f16, B>>(&wv_tile[x0], dv); let v1 = coopLoadT<coop_mat16x16<f16, B>>(&wv_tile[x1], dv); o3 = coopMultiplyAdd(p0, v0, o3); o3 = coopMultiplyAdd(p1, v1, o3); }
        if (tiles > 4u) { let x0 = 64u; let x1 = vb1 + 64u; let v0 = coopLoadT<coop_mat16x16<f16, B>>(&wv_tile[x0], dv); let v1 = coopLoadT<coop_mat16x16<f16, B>>(&wv_tile[x1], dv); o4 = coopMultiplyAdd(p0, v0, o4); o4 = coopMultiplyAdd(p1, v1, o4); }
        if (tiles > 5u) { let x0 = 80u; let x1 = vb1 + 80u; let v0 = coopLoadT<coop_mat16x16<f16, B>>(&wv_tile[x0], dv); let v1 = coopLoadT<coop_mat16x16<f16, B>>(&wv_tile[x1], dv); o5 = coopMultiplyAdd(p0, v0, o5); o5 = coopMultiplyAdd(p1, v1, o5); }
        if (tiles > 6u) { let x0 = 96u; let x1 = vb1 + 96u; let v0 = coopLoadT<coop_mat16x16<f16, B>>(&wv_tile[x0], dv); let v1 = coopLoadT<coop_mat16x16<f16, B>>(&wv_tile[x1], dv); o6 = coopMultiplyAdd(p0, v0, o6); o6 = coopMultiplyAdd(p1, v1, o6); }
        if (tiles > 7u) { let x0 = 112u; let x1 = vb1 + 112u; let v0 = coopLoadT<coop_mat16x16<f16, B>>(&wv_tile[x0], dv); let v1 = coopLoadT<coop_mat16x16<f16, B>>(&wv_tile[x1], dv); o7 = coopMultiplyAdd(p0, v0, o7); o7 = coopMultiplyAdd(p1, v1, o7); }
    }
    workgroupBarrier();
    if (tiles > 0u) { wide_store(o0, seq, h, r0, 0u, sg, lane); }
    if (tiles > 1u) { wide_store(o1, seq, h, r0, 16u, sg, lane); }
    if (tiles > 2u) { wide_store(o2, seq, h, r0, 32u, sg, lane); }
    if (tiles > 3u) { wide_store(o3, seq, h, r0, 48u, sg, lane); }
    if (tiles > 4u) { wide_store(o4, seq, h, r0, 64u, sg, lane); }
    if (tiles > 5u) { wide_store(o5, seq, h, r0, 80u, sg, lane); }
    if (tiles > 6u) { wide_store(o6, seq, h, r0, 96u, sg, lane); }
    if (tiles > 7u) { wide_store(o7, seq, h, r0, 112u, sg, lane); }
}

@compute @workgroup_size(SG)
fn main(@builtin(workgroup_id) wid: vec3<u32>, @builtin(local_invocation_index) lane: u32) {
    let b = wid.z;
    let h = wid.y;
    let seq = sequence(b);
    let i0 = params.q_begin + wid.x * 32u;
    // No early return: cooperative operations need uniform control flow, so an idle workgroup runs zero blocks.
    let i1 = clamp(seq.len, i0, i0 + 32u);
    let blocks = coop_key_blocks(i0, i1, seq.history);
    let total_blocks = select(0u, blocks.x + blocks.z, i1 > i0);
    let qs = params.q_stride;
    let ks = params.k_stride;
    let vs = params.v_stride;
    let p_stride = 32u;
    // Value columns: dv <= 128, a multiple of 16 (checked on the host).
    let tiles = params.dv / 16u;
    var o00 = coop_mat16x16<f32, C>(); var o10 = coop_mat16x16<f32, C>();
    var o01 = coop_mat16x16<f32, C>(); var o11 = coop_mat16x16<f32, C>();
    var o02 = coop_mat16x16<f32, C>(); var o12 = coop_mat16x16<f32, C>();
    var o03 = coop_mat16x16<f32, C>(); var o13 = coop_mat16x16<f32, C>();
    var o04 = coop_mat16x16<f32, C>(); var o14 = coop_mat16x16<f32, C>();
    var o05 = coop_mat16x16<f32, C>(); var o15 = coop_mat16x16<f32, C>();
    var o06 = coop_mat16x16<f32, C>(); var o16 = coop_mat16x16<f32, C>();
    var o07 = coop_mat16x16<f32, C>(); var o17 = coop_mat16x16<f32, C>();
    for (var t = 0u; t < total_blocks; t++) {
        let j0 = select((blocks.y + t - blocks.x) * 32u, t * 32u, t < blocks.x);
        var s00 = coop_mat16x16<f32, C>();
        var s01 = coop_mat16x16<f32, C>();
        var s10 = coop_mat16x16<f32, C>();
        var s11 = coop_mat16x16<f32, C>();
        for (var c0 = 0u; c0 < params.dqk; c0 += 16u) {
            let iq0 = (seq.start + i0) * qs + params.q_offset + h * params.dqk + c0;
            let iq1 = iq0 + 16u * qs;
            let ik0 = (seq.start + j0) * ks + params.k_offset + h * params.dqk + c0;
            let ik1 = ik0 + 16u * ks;
            let q0 = coopLoadT<coop_mat16x16<f16, A>>(&q[iq0], qs);
            let q1 = coopLoadT<coop_mat16x16<f16, A>>(&q[iq1], qs);
            let k0 = coopLoad<coop_mat16x16<f16, B>>(&k[ik0], ks);
            let k1 = coopLoad<coop_mat16x16<f16, B>>(&k[ik1], ks);
            s00 = coopMultiplyAdd(q0, k0, s00);
            s01 = coopMultiplyAdd(q0, k1, s01);
            s10 = coopMultiplyAdd(q1, k0, s10);
            s11 = coopMultiplyAdd(q1, k1, s11);
        }
        let t00 = 0u;
        let t01 = 16u;
        let t10 = 512u;
        let t11 = 528u;
        coopStoreT(s00, &s_tile[t00], p_stride);
        coopStoreT(s01, &s_tile[t01], p_stride);
        coopStoreT(s10, &s_tile[t10], p_stride);
        coopStoreT(s11, &s_tile[t11], p_stride);
        workgroupBarrier();
        for (var e = lane; e < 1024u; e += SG) {
            let i = i0 + e / 32u;
            let j = j0 + e % 32u;
            var w = 0.0;
            if (i < seq.len && j < seq.len) {
                w = attention_weight(s_tile[e], i, j, seq.history, seq.start);
            }
            p_tile[e] = f16(w);
        }
        workgroupBarrier();
        let p00 = coopLoadT<coop_mat16x16<f16, A>>(&p_tile[t00], p_stride);
        let p01 = coopLoadT<coop_mat16x16<f16, A>>(&p_tile[t01], p_stride);
        let p10 = coopLoadT<coop_mat16x16<f16, A>>(&p_tile[t10], p_stride);
        let p11 = coopLoadT<coop_mat16x16<f16, A>>(&p_tile[t11], p_stride);
        let iv0 = (seq.start + j0) * vs + params.v_offset + h * params.dv;
        let iv1 = iv0 + 16u * vs;
        if (tiles > 0u) { let x0 = iv0 + 0u; let x1 = iv1 + 0u; let v0 = coopLoadT<coop_mat16x16<f16, B>>(&v[x0], vs); let v1 = coopLoadT<coop_mat16x16<f16, B>>(&v[x1], vs); o00 = coopMultiplyAdd(p00, v0, o00); o00 = coopMultiplyAdd(p01, v1, o00); o10 = coopMultiplyAdd(p10, v0, o10); o10 = coopMultiplyAdd(p11, v1, o10); }
        if (tiles > 1u) { let x0 = iv0 + 16u; let x1 = iv1 + 16u; let v0 = coopLoadT<coop_mat16x16<f16, B>>(&v[x0], vs); let v1 = coopLoadT<coop_mat16x16<f16, B>>(&v[x1], vs); o01 = coopMultiplyAdd(p00, v0, o01); o01 = coopMultiplyAdd(p01, v1, o01); o11 = coopMultiplyAdd(p10, v0, o11); o11 = coopMultiplyAdd(p11, v1, o11); }
        if (tiles > 2u) { let x0 = iv0 + 32u; let x1 = iv1 + 32u; let v0 = coopLoadT<coop_mat16x16<f16, B>>(&v[x0], vs); let v1 = coopLoadT<coop_mat16x16<f16, B>>(&v[x1], vs); o02 = coopMultiplyAdd(p00, v0, o02); o02 = coopMultiplyAdd(p01, v1, o02); o12 = coopMultiplyAdd(p10, v0, o12); o12 = coopMultiplyAdd(p11, v1, o12); }
        if (tiles > 3u) { let x0 = iv0 + 48u; let x1 = iv1 + 48u; let v0 = coopLoadT<coop_mat16x16<f16, B>>(&v[x0], vs); let v1 = coopLoadT<coop_mat16x16<f16, B>>(&v[x1], vs); o03 = coopMultiplyAdd(p00, v0, o03); o03 = coopMultiplyAdd(p01, v1, o03); o13 = coopMultiplyAdd(p10, v0, o13); o13 = coopMultiplyAdd(p11, v1, o13); }
        if (tiles > 4u) { let x0 = iv0 + 64u; let x1 = iv1 + 64u; let v0 = coopLoadT<coop_mat16x16<f16, B>>(&v[x0], vs); let v1 = coopLoadT<coop_mat16x16<f16, B>>(&v[x1], vs); o04 = coopMultiplyAdd(p00, v0, o04); o04 = coopMultiplyAdd(p01, v1, o04); o14 = coopMultiplyAdd(p10, v0, o14); o14 = coopMultiplyAdd(p11, v1, o14); }
        if (tiles > 5u) { let x0 = iv0 + 80u; let x1 = iv1 + 80u; let v0 = coopLoadT<coop_mat16x16<f16, B>>(&v[x0], vs); let v1 = coopLoadT<coop_mat16x16<f16, B>>(&v[x1], vs); o05 = coopMultiplyAdd(p00, v0, o05); o05 = coopMultiplyAdd(p01, v1, o05); o15 = coopMultiplyAdd(p10, v0, o15); o15 = coopMultiplyAdd(p11, v1, o15); }
        if (tiles > 6u) { let x0 = iv0 + 96u; let x1 = iv1 + 96u; let v0 = coopLoadT<coop_mat16x16<f16, B>>(&v[x0], vs); let v1 = coopLoadT<coop_mat16x16<f16, B>>(&v[x1], vs); o06 = coopMultiplyAdd(p00, v0, o06); o06 = coopMultiplyAdd(p01, v1, o06); o16 = coopMultiplyAdd(p10, v0, o16); o16 = coopMultiplyAdd(p11, v1, o16); }
        if (tiles > 7u) { let x0 = iv0 + 112u; let x1 = iv1 + 112u; let v0 = coopLoadT<coop_mat16x16<f16, B>>(&v[x0], vs); let v1 = coopLoadT<coop_mat16x16<f16, B>>(&v[x1], vs); o07 = coopMultiplyAdd(p00, v0, o07); o07 = coopMultiplyAdd(p01, v1, o07); o17 = coopMultiplyAdd(p10, v0, o17); o17 = coopMultiplyAdd(p11, v1, o17); }
        workgroupBarrier();
    }
    let r0 = i0;
    let r1 = i0 + 16u;
    if (tiles > 0u) { store_out_tile(o00, seq, h, r0, 0u, lane); store_out_tile(o10, seq, h, r1, 0u, lane); }
    if (tiles > 1u) { store_out_tile(o01, seq, h, r0, 16u, lane); store_out_tile(o11, seq, h, r1, 16u, lane); }
    if (tiles > 2u) { store_out_tile(o02, seq, h, r0, 32u, lane); store_out_tile(o12, seq, h, r1, 32u, lane); }
    if (tiles > 3u) { store_out_tile(o03, seq, h, r0, 48u, lane); store_out_tile(o13, seq, h, r1, 48u, lane); }
    if (tiles > 4u) { store_out_tile(o04, seq, h, r0, 64u, lane); store_out_tile(o14, seq, h, r1, 64u, lane); }
    if (tiles > 5u) { store_out_tile(o05, seq, h, r0, 80u, lane); store_out_tile(o15, seq, h, r1, 80u, lane); }
    if (tiles > 6u) { store_out_tile(o06, seq, h, r0, 96u, lane); store_out_tile(o16, seq, h, r1, 96u, lane); }
    if (tiles > 7u) { store_out_tile(o07, seq, h, r0, 112u, lane); store_out_tile(o17, seq, h, r1, 112u, lane); }
}
//#else
// Register-tiled path: BQ = 64 query rows x BK = 64 keys per step, 16 x 16 invocations. S = Q K^T
// (4 x 4 per invocation, q/k columns staged QC at a time) -> a_ij in workgroup memory -> O += P V
// (4 rows x 8 columns per invocation, VC keys staged at a time, value columns in chunks of 128),
// every accumulator a named vec4. QC, VC in {4, 8, 16, 32}: larger = fewer barriers.
const BQ: u32 = 64u;
const BK: u32 = 64u;
override QC: u32 = 32u; // q/k columns staged per step
override VC: u32 = 32u; // keys of v staged per step

// q [QC][BQ / 4] then k [QC][BK / 4] during S; v [VC keys][128 / 4] during O (one array, two uses).
var<workgroup> qkv_tile: array<vec4<f32>, 1024>;
var<workgroup> p_tile: array<vec4<f32>, 1024>; // [BK][BQ / 4]: a_ij, 4 query rows per vec4

fn load_elem(buffer_index: u32, ok: bool, which: u32) -> f32 {
    if (!ok) {
        return 0.0;
    }
    if (which == 0u) {
        return f32(q[buffer_index]);
    } else if (which == 1u) {
        return f32(k[buffer_index]);
    }
    return f32(v[buffer_index]);
}

fn weight_at(s: f32, i: u32, j: u32, seq: Sequence, h: u32) -> f32 {
    var w = 0.0;
    if (i < seq.len && j < seq.len) {
        w = attention_weight(s, i, j, seq.history, seq.start);
//#if CAPTURE
        capture[(h * seq.len + i) * seq.len + j] = w;
//#endif
    }
    return w;
}

// Weights of one invocation's 4 keys for one query row into p_tile (every component named, never indexed).
fn put_weights(s: vec4<f32>, r_local: u32, key_local0: u32, i0: u32, j0: u32, seq: Sequence, h: u32) {
    let i = i0 + r_local;
    let j = j0 + key_local0;
    let slot = r_local / 4u;
    let part = r_local % 4u;
    p_tile[(key_local0 + 0u) * (BQ / 4u) + slot][part] = weight_at(s.x, i, j, seq, h);
    p_tile[(key_local0 + 1u) * (BQ / 4u) + slot][part] = weight_at(s.y, i, j + 1u, seq, h);
    p_tile[(key_local0 + 2u) * (BQ / 4u) + slot][part] = weight_at(s.z, i, j + 2u, seq, h);
    p_tile[(key_local0 + 3u) * (BQ / 4u) + slot][part] = weight_at(s.w, i, j + 3u, seq, h);
}

fn store_out(acc: vec4<f32>, i: u32, col: u32, seq: Sequence, h: u32) {
    if (i >= seq.len) {
        return;
    }
    let base = (seq.start + i - params.q_begin) * params.out_stride + h * params.dv + col;
    if (col < params.dv) { out[base] = acc.x; }
    if (col + 1u < params.dv) { out[base + 1u] = acc.y; }
    if (col + 2u < params.dv) { out[base + 2u] = acc.z; }
    if (col + 3u < params.dv) { out[base + 3u] = acc.w; }
}

@compute @workgroup_size(16, 16)
fn main(@builtin(workgroup_id) wid: vec3<u32>, @builtin(local_invocation_id) lid: vec3<u32>) {
    let tx = lid.x;
    let ty = lid.y;
    let li = ty * 16u + tx;
    let b = wid.z;
    let h = wid.y;
    let seq = sequence(b);
    let i0 = params.q_begin + wid.x * BQ;
    if (i0 >= seq.len) {
        return;
    }
    let i1 = min(i0 + BQ, seq.len);
    let q_col = params.q_offset + h * params.dqk;
    let k_col = params.k_offset + h * params.dqk;
    let v_col = params.v_offset + h * params.dv;
    for (var dv0 = 0u; dv0 < params.dv; dv0 += 128u) {
        var o0l = vec4<f32>(0.0); var o0h = vec4<f32>(0.0);
        var o1l = vec4<f32>(0.0); var o1h = vec4<f32>(0.0);
        var o2l = vec4<f32>(0.0); var o2h = vec4<f32>(0.0);
        var o3l = vec4<f32>(0.0); var o3h = vec4<f32>(0.0);
        for (var j0 = 0u; j0 < i1; j0 += BK) {
            if (!key_block_needed(j0, BK, i0, i1, seq.history)) {
                continue;
            }
            var s0 = vec4<f32>(0.0);
            var s1 = vec4<f32>(0.0);
            var s2 = vec4<f32>(0.0);
            var s3 = vec4<f32>(0.0);
            let k_part = QC * (BQ / 4u);
            for (var c0 = 0u; c0 < params.dqk; c0 += QC) {
                workgroupBarrier();
                // 64 rows x QC columns of q and of k: QC / 4 elements each per invocation.
                let row = li / 4u;
                let per = QC / 4u;
                let col = (li % 4u) * per;
                for (var t = 0u; t < per; t++) {
                    let cc = c0 + col + t;
                    let qi = i0 + row;
                    let kj = j0 + row;
                    let qv = load_elem((seq.start + qi) * params.q_stride + q_col + cc, qi < seq.len && cc < params.dqk, 0u);
                    let kv = load_elem((seq.start + kj) * params.k_stride + k_col + cc, kj < seq.len && cc < params.dqk, 1u);
                    qkv_tile[(col + t) * (BQ / 4u) + row / 4u][row % 4u] = qv;
                    qkv_tile[k_part + (col + t) * (BK / 4u) + row / 4u][row % 4u] = kv;
                }
                workgroupBarrier();
                for (var cc = 0u; cc < QC; cc++) {
                    let a = qkv_tile[cc * (BQ / 4u) + ty];
                    let kk = qkv_tile[k_part + cc * (BK / 4u) + tx];
                    s0 = fma(vec4<f32>(a.x), kk, s0);
                    s1 = fma(vec4<f32>(a.y), kk, s1);
                    s2 = fma(vec4<f32>(a.z), kk, s2);
                    s3 = fma(vec4<f32>(a.w), kk, s3);
                }
            }
            // p_tile is free: the previous block's reads precede this block's barriers above.
            put_weights(s0, ty * 4u + 0u, tx * 4u, i0, j0, seq, h);
            put_weights(s1, ty * 4u + 1u, tx * 4u, i0, j0, seq, h);
            put_weights(s2, ty * 4u + 2u, tx * 4u, i0, j0, seq, h);
            put_weights(s3, ty * 4u + 3u, tx * 4u, i0, j0, seq, h);
            workgroupBarrier();
            for (var kc = 0u; kc < BK; kc += VC) {
                // VC keys x 128 value columns: VC / 8 vec4 per invocation (after the S reads of qkv_tile).
                workgroupBarrier();
                for (var e = li; e < VC * 32u; e += 256u) {
                    let key = e / 32u;
                    let col = dv0 + (e % 32u) * 4u;
                    let j = j0 + kc + key;
                    let vbase = (seq.start + j) * params.v_stride + v_col + col;
                    let ok = j < seq.len;
                    qkv_tile[e] = vec4<f32>(
                        load_elem(vbase, ok && col < params.dv, 2u),
                        load_elem(vbase + 1u, ok && col + 1u < params.dv, 2u),
                        load_elem(vbase + 2u, ok && col + 2u < params.dv, 2u),
                        load_elem(vbase + 3u, ok && col + 3u < params.dv, 2u));
                }
                workgroupBarrier();
                for (var kk = 0u; kk < VC; kk++) {
                    let p = p_tile[(kc + kk) * (BQ / 4u) + ty];
                    let v_lo = qkv_tile[kk * 32u + tx];
                    let v_hi = qkv_tile[kk * 32u + 16u + tx];
                    o0l = fma(vec4<f32>(p.x), v_lo, o0l); o0h = fma(vec4<f32>(p.x), v_hi, o0h);
                    o1l = fma(vec4<f32>(p.y), v_lo, o1l); o1h = fma(vec4<f32>(p.y), v_hi, o1h);
                    o2l = fma(vec4<f32>(p.z), v_lo, o2l); o2h = fma(vec4<f32>(p.z), v_hi, o2h);
                    o3l = fma(vec4<f32>(p.w), v_lo, o3l); o3h = fma(vec4<f32>(p.w), v_hi, o3h);
                }
            }
            // No barrier: the next block's first step begins with one before it writes qkv_tile.
        }
        let r = i0 + ty * 4u;
        let c_lo = dv0 + tx * 4u;
        let c_hi = dv0 + 64u + tx * 4u;
        store_out(o0l, r + 0u, c_lo, seq, h); store_out(o0h, r + 0u, c_hi, seq, h);
        store_out(o1l, r + 1u, c_lo, seq, h); store_out(o1h, r + 1u, c_hi, seq, h);
        store_out(o2l, r + 2u, c_lo, seq, h); store_out(o2h, r + 2u, c_hi, seq, h);
        store_out(o3l, r + 3u, c_lo, seq, h); store_out(o3h, r + 3u, c_hi, seq, h);
    }
}
//#endif
