// hstu_attention: out[b, i, h, :] = sum_j valid(i, j) * silu(alpha * q_i . k_j + rab_ij) / n * v_j over jagged sequences (spec sections 1, 5, 6), tiled flash-style: never an N x N matrix in memory (CAPTURE: also writes a_ij for batch 1).
// bindings: 0 params (uniform), 1 meta u32 [seq_offsets B+1 | num_targets B | bucket thresholds buckets+1], 2 q, 3 k, 4 v (elem, rows of q_stride/k_stride/v_stride, head h at column offset + h*d), 5 rab_w f32 [pos_w 2N-1 | ts_w buckets+1], 6 times i32 [t_next T | t_key T], 7 out f32 [.., out_stride], (CAPTURE: 8 capture f32 [H, L, L]).
// dispatch: (ceil(max_b (L_b - q_begin) / BQ), H, B) with BQ = 64 and 16 x 16 invocations; COOP: BQ = 32 and one subgroup (SG invocations) per workgroup; COOP main_long: BQ = 32, one subgroup; main_big (not COOP): BQ = 8 TY and 16 x TY invocations; main_small (dqk, dv <= 32): BQ = 32, 256 invocations.

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
    return masked_silu(qk, i, j, u, start) * params.inv_n;
}

// a_ij n: silu(alpha qk + rab_ij) where (i, j) is valid, else 0.
fn masked_silu(qk: f32, i: u32, j: u32, u: u32, start: u32) -> f32 {
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
    return s / (1.0 + exp(-s));
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

// Long-block form `main_long`: one subgroup owns RS query rows (16 or 32) x 16 VT value columns
// (RS / 16 x VT f32 accumulators) and steps over LK keys at a time (32 or 64: RS / 16 x LK / 16
// score accumulators), k and v straight from global memory. QKT = dqk / 16 and VT = dv / 16 are
// override constants, so the score and output products are straight-line code (no loop or branch
// on a uniform between fragment loads); QREG = 1 keeps the subgroup's q fragments in registers
// across the key loop. a_ij n is what goes to f16 (the 1 / n scales the output once, so a_ij never
// falls into the f16 subnormal range); SILU_FORM for unmasked blocks: 0 = x / (1 + exp(-x)),
// 1 = x (1 + tanh(x / 2)) / 2, both in f32; 2 = the tanh form in f16.
override LK: u32 = 64u;
override SILU_FORM: u32 = 0u;
override RS: u32 = 32u;
override QKT: u32 = 8u;
override VT: u32 = 8u;
override QREG: u32 = 0u; // q fragments: 0 from global memory each block, 1 in registers, 2 staged once in workgroup memory
override VPRE: u32 = 0u; // 1 (LK = 32): the block's v fragments are loaded before its silu phase

alias FA = coop_mat16x16<f16, A>;
alias FB = coop_mat16x16<f16, B>;
alias FC = coop_mat16x16<f32, C>;

// Score and a_ij tiles as vectors of 4 (one clamped vector access per 4 scores in the silu
// phase); their cooperative loads and stores count offsets and strides in vec4s.
var<workgroup> lg_s: array<vec4<f32>, RS * (LK + 8u) / 4u>; // [RS rows][(LK + 8) / 4] scores, then 16 x 16 output tiles
var<workgroup> lg_p: array<vec4<f16>, RS * (LK + 8u) / 4u>; // [RS rows][(LK + 8) / 4] a_ij n
const QST: u32 = 136u; // row stride of lg_q: dqk at most 128, + 8
var<workgroup> lg_q: array<f16, (QREG / 2u) * RS * QST + 8u>; // QREG = 2: [RS rows][QST] q

// Key blocks of `bk` for query rows [i0, i1), as `coop_key_blocks`.
fn key_blocks_of(i0: u32, i1: u32, u: u32, bk: u32) -> vec3<u32> {
    let history_blocks = (min(i1, u) + bk - 1u) / bk;
    let first = max(max(i0, u) / bk, history_blocks);
    var count = 0u;
    if (i1 > u) {
        count = max((i1 + bk - 1u) / bk, first) - first;
    }
    return vec3<u32>(history_blocks, first, count);
}

fn long_silu(s: vec4<f32>) -> vec4<f16> {
    let x = params.alpha * s;
    if (SILU_FORM == 2u) {
        let xh = vec4<f16>(x);
        return xh * (vec4<f16>(0.5) + vec4<f16>(0.5) * tanh(vec4<f16>(0.5) * xh));
    }
    if (SILU_FORM == 1u) {
        return vec4<f16>(x * (vec4<f32>(0.5) + 0.5 * tanh(0.5 * x)));
    }
    return vec4<f16>(x / (vec4<f32>(1.0) + exp(-x)));
}

fn long_masked(s: f32, i: u32, j: u32, seq: Sequence) -> f32 {
    if (i < seq.len && j < seq.len) {
        return masked_silu(s, i, j, seq.history, seq.start);
    }
    return 0.0;
}

fn long_store(acc: FC, seq: Sequence, h: u32, row0: u32, col0: u32, lane: u32) {
    let zero = 0u;
    let tile_stride = 4u; // 16 floats
    coopStoreT(acc, &lg_s[zero], tile_stride);
    workgroupBarrier();
    for (var e = lane; e < 256u; e += SG) {
        let i = row0 + e / 16u;
        let col = col0 + e % 16u;
        if (i < seq.len && col < params.dv) {
            out[(seq.start + i - params.q_begin) * params.out_stride + h * params.dv + col] = lg_s[e / 4u][e % 4u] * params.inv_n;
        }
    }
    workgroupBarrier();
}

// One 16-column chunk of q . k for the block's LK keys: qa / qb are rows 0-15 / 16-31 (qb unused
// for RS = 16), `ik` indexes key 0 at this chunk; s<row tile><key tile> accumulate.
fn long_qk(qa: FA, qb: FA, ik: u32, s00: ptr<function, FC>, s01: ptr<function, FC>, s02: ptr<function, FC>,
    s03: ptr<function, FC>, s10: ptr<function, FC>, s11: ptr<function, FC>, s12: ptr<function, FC>,
    s13: ptr<function, FC>) {
    let ks = params.k_stride;
    let k0 = coopLoad<FB>(&k[ik], ks);
    let k1 = coopLoad<FB>(&k[ik + 16u * ks], ks);
    *s00 = coopMultiplyAdd(qa, k0, *s00);
    *s01 = coopMultiplyAdd(qa, k1, *s01);
    if (RS > 16u) {
        *s10 = coopMultiplyAdd(qb, k0, *s10);
        *s11 = coopMultiplyAdd(qb, k1, *s11);
    }
    if (LK > 32u) {
        let k2 = coopLoad<FB>(&k[ik + 32u * ks], ks);
        let k3 = coopLoad<FB>(&k[ik + 48u * ks], ks);
        *s02 = coopMultiplyAdd(qa, k2, *s02);
        *s03 = coopMultiplyAdd(qa, k3, *s03);
        if (RS > 16u) {
            *s12 = coopMultiplyAdd(qb, k2, *s12);
            *s13 = coopMultiplyAdd(qb, k3, *s13);
        }
    }
}

// One 16-column output tile: oa / ob (rows 0-15 / 16-31) += a_ij n of the block's LK keys times
// the v tile whose key 0 is at `iv`.
fn long_pv(pa0: FA, pa1: FA, pa2: FA, pa3: FA, pb0: FA, pb1: FA, pb2: FA, pb3: FA, iv: u32,
    oa: ptr<function, FC>, ob: ptr<function, FC>) {
    let vs = params.v_stride;
    let v0 = coopLoadT<FB>(&v[iv], vs);
    let v1 = coopLoadT<FB>(&v[iv + 16u * vs], vs);
    *oa = coopMultiplyAdd(pa0, v0, *oa);
    *oa = coopMultiplyAdd(pa1, v1, *oa);
    if (RS > 16u) {
        *ob = coopMultiplyAdd(pb0, v0, *ob);
        *ob = coopMultiplyAdd(pb1, v1, *ob);
    }
    if (LK > 32u) {
        let v2 = coopLoadT<FB>(&v[iv + 32u * vs], vs);
        let v3 = coopLoadT<FB>(&v[iv + 48u * vs], vs);
        *oa = coopMultiplyAdd(pa2, v2, *oa);
        *oa = coopMultiplyAdd(pa3, v3, *oa);
        if (RS > 16u) {
            *ob = coopMultiplyAdd(pb2, v2, *ob);
            *ob = coopMultiplyAdd(pb3, v3, *ob);
        }
    }
}

// `long_pv` with the v fragments already loaded (VPRE = 1, LK = 32).
fn long_pv_loaded(pa0: FA, pa1: FA, pb0: FA, pb1: FA, v0: FB, v1: FB, oa: ptr<function, FC>, ob: ptr<function, FC>) {
    *oa = coopMultiplyAdd(pa0, v0, *oa);
    *oa = coopMultiplyAdd(pa1, v1, *oa);
    if (RS > 16u) {
        *ob = coopMultiplyAdd(pb0, v0, *ob);
        *ob = coopMultiplyAdd(pb1, v1, *ob);
    }
}

fn long_v(iv: u32, key_tile: u32, col: u32) -> FB {
    let vs = params.v_stride;
    return coopLoadT<FB>(&v[iv + key_tile * 16u * vs + col], vs);
}

// The q fragment of row tile `tile` (rows 16 tile .. 16 tile + 15 of the subgroup's) and columns
// [16 c, 16 c + 16) of this head (callers keep to c < QKT, tile < RS / 16).
fn long_q(iq: u32, tile: u32, c: u32) -> FA {
    let qs = params.q_stride;
    return coopLoadT<FA>(&q[iq + tile * 16u * qs + c * 16u], qs);
}

@compute @workgroup_size(SG)
fn main_long(@builtin(workgroup_id) wid: vec3<u32>, @builtin(local_invocation_index) lane: u32) {
    let b = wid.z;
    let h = wid.y;
    let seq = sequence(b);
    let i0 = params.q_begin + wid.x * RS;
    // No early return: cooperative operations need uniform control flow, so an idle workgroup runs zero blocks.
    let i1 = clamp(seq.len, i0, i0 + RS);
    let blocks = key_blocks_of(i0, i1, seq.history, LK);
    let total_blocks = select(0u, blocks.x + blocks.z, i1 > i0);
    let iq = (seq.start + i0) * params.q_stride + params.q_offset + h * params.dqk;
    let ks = params.k_stride;
    let vs = params.v_stride;
    let st = (LK + 8u) / 4u; // row stride of lg_s / lg_p in vec4s
    // q in registers (QREG = 1): qa<c> rows 0-15, qb<c> rows 16-31, of column chunk c.
    var qa0 = FA(); var qa1 = FA(); var qa2 = FA(); var qa3 = FA();
    var qa4 = FA(); var qa5 = FA(); var qa6 = FA(); var qa7 = FA();
    var qb0 = FA(); var qb1 = FA(); var qb2 = FA(); var qb3 = FA();
    var qb4 = FA(); var qb5 = FA(); var qb6 = FA(); var qb7 = FA();
    if (QREG == 2u) {
        for (var c = 0u; c < QKT; c++) {
            coopStoreT(long_q(iq, 0u, c), &lg_q[c * 16u], QST);
            if (RS > 16u) {
                coopStoreT(long_q(iq, 1u, c), &lg_q[(RS / 32u) * 16u * QST + c * 16u], QST);
            }
        }
        workgroupBarrier();
    }
    if (QREG == 1u) {
        let two = RS > 16u;
        qa0 = long_q(iq, 0u, 0u); if (two) { qb0 = long_q(iq, 1u, 0u); }
        if (QKT > 1u) { qa1 = long_q(iq, 0u, 1u); if (two) { qb1 = long_q(iq, 1u, 1u); } }
        if (QKT > 2u) { qa2 = long_q(iq, 0u, 2u); if (two) { qb2 = long_q(iq, 1u, 2u); } }
        if (QKT > 3u) { qa3 = long_q(iq, 0u, 3u); if (two) { qb3 = long_q(iq, 1u, 3u); } }
        if (QKT > 4u) { qa4 = long_q(iq, 0u, 4u); if (two) { qb4 = long_q(iq, 1u, 4u); } }
        if (QKT > 5u) { qa5 = long_q(iq, 0u, 5u); if (two) { qb5 = long_q(iq, 1u, 5u); } }
        if (QKT > 6u) { qa6 = long_q(iq, 0u, 6u); if (two) { qb6 = long_q(iq, 1u, 6u); } }
        if (QKT > 7u) { qa7 = long_q(iq, 0u, 7u); if (two) { qb7 = long_q(iq, 1u, 7u); } }
    }
    var o00 = FC(); var o10 = FC(); var o01 = FC(); var o11 = FC();
    var o02 = FC(); var o12 = FC(); var o03 = FC(); var o13 = FC();
    var o04 = FC(); var o14 = FC(); var o05 = FC(); var o15 = FC();
    var o06 = FC(); var o16 = FC(); var o07 = FC(); var o17 = FC();
    for (var t = 0u; t < total_blocks; t++) {
        let j0 = select((blocks.y + t - blocks.x) * LK, t * LK, t < blocks.x);
        var s00 = FC(); var s01 = FC(); var s02 = FC(); var s03 = FC();
        var s10 = FC(); var s11 = FC(); var s12 = FC(); var s13 = FC();
        let ik = (seq.start + j0) * ks + params.k_offset + h * params.dqk;
        if (QREG == 1u) {
            long_qk(qa0, qb0, ik, &s00, &s01, &s02, &s03, &s10, &s11, &s12, &s13);
            if (QKT > 1u) { long_qk(qa1, qb1, ik + 16u, &s00, &s01, &s02, &s03, &s10, &s11, &s12, &s13); }
            if (QKT > 2u) { long_qk(qa2, qb2, ik + 32u, &s00, &s01, &s02, &s03, &s10, &s11, &s12, &s13); }
            if (QKT > 3u) { long_qk(qa3, qb3, ik + 48u, &s00, &s01, &s02, &s03, &s10, &s11, &s12, &s13); }
            if (QKT > 4u) { long_qk(qa4, qb4, ik + 64u, &s00, &s01, &s02, &s03, &s10, &s11, &s12, &s13); }
            if (QKT > 5u) { long_qk(qa5, qb5, ik + 80u, &s00, &s01, &s02, &s03, &s10, &s11, &s12, &s13); }
            if (QKT > 6u) { long_qk(qa6, qb6, ik + 96u, &s00, &s01, &s02, &s03, &s10, &s11, &s12, &s13); }
            if (QKT > 7u) { long_qk(qa7, qb7, ik + 112u, &s00, &s01, &s02, &s03, &s10, &s11, &s12, &s13); }
        } else if (QREG == 2u) {
            for (var c = 0u; c < QKT; c++) {
                let qa = coopLoadT<FA>(&lg_q[c * 16u], QST);
                var qb = FA();
                if (RS > 16u) { qb = coopLoadT<FA>(&lg_q[(RS / 32u) * 16u * QST + c * 16u], QST); }
                long_qk(qa, qb, ik + c * 16u, &s00, &s01, &s02, &s03, &s10, &s11, &s12, &s13);
            }
        } else {
            for (var c = 0u; c < QKT; c++) {
                var qb = FA();
                if (RS > 16u) { qb = long_q(iq, 1u, c); }
                long_qk(long_q(iq, 0u, c), qb, ik + c * 16u, &s00, &s01, &s02, &s03, &s10, &s11, &s12, &s13);
            }
        }
        // VPRE: this block's v fragments (v<column tile><key tile>) are in flight during the silu phase.
        let iv = (seq.start + j0) * vs + params.v_offset + h * params.dv;
        var v00 = FB(); var v01 = FB(); var v10 = FB(); var v11 = FB();
        var v20 = FB(); var v21 = FB(); var v30 = FB(); var v31 = FB();
        var v40 = FB(); var v41 = FB(); var v50 = FB(); var v51 = FB();
        var v60 = FB(); var v61 = FB(); var v70 = FB(); var v71 = FB();
        if (VPRE == 1u) {
            v00 = long_v(iv, 0u, 0u); v01 = long_v(iv, 1u, 0u);
            if (VT > 1u) { v10 = long_v(iv, 0u, 16u); v11 = long_v(iv, 1u, 16u); }
            if (VT > 2u) { v20 = long_v(iv, 0u, 32u); v21 = long_v(iv, 1u, 32u); }
            if (VT > 3u) { v30 = long_v(iv, 0u, 48u); v31 = long_v(iv, 1u, 48u); }
            if (VT > 4u) { v40 = long_v(iv, 0u, 64u); v41 = long_v(iv, 1u, 64u); }
            if (VT > 5u) { v50 = long_v(iv, 0u, 80u); v51 = long_v(iv, 1u, 80u); }
            if (VT > 6u) { v60 = long_v(iv, 0u, 96u); v61 = long_v(iv, 1u, 96u); }
            if (VT > 7u) { v70 = long_v(iv, 0u, 112u); v71 = long_v(iv, 1u, 112u); }
        }
        let t00 = 0u; // tile offsets in vec4s: key tiles 16 apart, row tiles 16 rows apart
        let t01 = 4u;
        let t02 = 8u;
        let t03 = 12u;
        let t10 = (RS / 32u) * 16u * st; // 0 (unused) for RS = 16, so the constant index stays in bounds
        let t11 = t10 + 4u;
        let t12 = t10 + 8u;
        let t13 = t10 + 12u;
        coopStoreT(s00, &lg_s[t00], st);
        coopStoreT(s01, &lg_s[t01], st);
        if (LK > 32u) {
            coopStoreT(s02, &lg_s[t02], st);
            coopStoreT(s03, &lg_s[t03], st);
        }
        if (RS > 16u) {
            coopStoreT(s10, &lg_s[t10], st);
            coopStoreT(s11, &lg_s[t11], st);
            if (LK > 32u) {
                coopStoreT(s12, &lg_s[t12], st);
                coopStoreT(s13, &lg_s[t13], st);
            }
        }
        workgroupBarrier();
        let fast = params.has_rab == 0u && params.max_attn_len == 0u && j0 + LK <= min(i0, seq.history);
        for (var e = lane * 4u; e < RS * LK; e += SG * 4u) {
            let r = e / LK;
            let c = e % LK;
            let x4 = r * st + c / 4u;
            let sv = lg_s[x4];
            var w = vec4<f16>(0.0);
            if (fast) {
                w = long_silu(sv);
            } else {
                let i = i0 + r;
                let j = j0 + c;
                w = vec4<f16>(vec4<f32>(long_masked(sv.x, i, j, seq), long_masked(sv.y, i, j + 1u, seq),
                    long_masked(sv.z, i, j + 2u, seq), long_masked(sv.w, i, j + 3u, seq)));
            }
            lg_p[x4] = w;
        }
        workgroupBarrier();
        let pa0 = coopLoadT<FA>(&lg_p[t00], st);
        let pa1 = coopLoadT<FA>(&lg_p[t01], st);
        var pa2 = FA(); var pa3 = FA();
        var pb0 = FA(); var pb1 = FA(); var pb2 = FA(); var pb3 = FA();
        if (LK > 32u) {
            pa2 = coopLoadT<FA>(&lg_p[t02], st);
            pa3 = coopLoadT<FA>(&lg_p[t03], st);
        }
        if (RS > 16u) {
            pb0 = coopLoadT<FA>(&lg_p[t10], st);
            pb1 = coopLoadT<FA>(&lg_p[t11], st);
            if (LK > 32u) {
                pb2 = coopLoadT<FA>(&lg_p[t12], st);
                pb3 = coopLoadT<FA>(&lg_p[t13], st);
            }
        }
        if (VPRE == 1u) {
            long_pv_loaded(pa0, pa1, pb0, pb1, v00, v01, &o00, &o10);
            if (VT > 1u) { long_pv_loaded(pa0, pa1, pb0, pb1, v10, v11, &o01, &o11); }
            if (VT > 2u) { long_pv_loaded(pa0, pa1, pb0, pb1, v20, v21, &o02, &o12); }
            if (VT > 3u) { long_pv_loaded(pa0, pa1, pb0, pb1, v30, v31, &o03, &o13); }
            if (VT > 4u) { long_pv_loaded(pa0, pa1, pb0, pb1, v40, v41, &o04, &o14); }
            if (VT > 5u) { long_pv_loaded(pa0, pa1, pb0, pb1, v50, v51, &o05, &o15); }
            if (VT > 6u) { long_pv_loaded(pa0, pa1, pb0, pb1, v60, v61, &o06, &o16); }
            if (VT > 7u) { long_pv_loaded(pa0, pa1, pb0, pb1, v70, v71, &o07, &o17); }
        } else {
            long_pv(pa0, pa1, pa2, pa3, pb0, pb1, pb2, pb3, iv, &o00, &o10);
            if (VT > 1u) { long_pv(pa0, pa1, pa2, pa3, pb0, pb1, pb2, pb3, iv + 16u, &o01, &o11); }
            if (VT > 2u) { long_pv(pa0, pa1, pa2, pa3, pb0, pb1, pb2, pb3, iv + 32u, &o02, &o12); }
            if (VT > 3u) { long_pv(pa0, pa1, pa2, pa3, pb0, pb1, pb2, pb3, iv + 48u, &o03, &o13); }
            if (VT > 4u) { long_pv(pa0, pa1, pa2, pa3, pb0, pb1, pb2, pb3, iv + 64u, &o04, &o14); }
            if (VT > 5u) { long_pv(pa0, pa1, pa2, pa3, pb0, pb1, pb2, pb3, iv + 80u, &o05, &o15); }
            if (VT > 6u) { long_pv(pa0, pa1, pa2, pa3, pb0, pb1, pb2, pb3, iv + 96u, &o06, &o16); }
            if (VT > 7u) { long_pv(pa0, pa1, pa2, pa3, pb0, pb1, pb2, pb3, iv + 112u, &o07, &o17); }
        }
        // Not needed for the workgroup memory (the next block's score store overwrites only lg_s,
        // whose reads ended before the a_ij barrier), but without it the H200 ran this kernel 5%
        // slower (coop_long_lk32_silu0_q 10.36 against 9.82 ms, runtime/BENCHMARKS-gpu.md).
        workgroupBarrier();
    }
    let r0 = i0;
    let r1 = i0 + 16u;
    let two = RS > 16u;
    long_store(o00, seq, h, r0, 0u, lane); if (two) { long_store(o10, seq, h, r1, 0u, lane); }
    if (VT > 1u) { long_store(o01, seq, h, r0, 16u, lane); if (two) { long_store(o11, seq, h, r1, 16u, lane); } }
    if (VT > 2u) { long_store(o02, seq, h, r0, 32u, lane); if (two) { long_store(o12, seq, h, r1, 32u, lane); } }
    if (VT > 3u) { long_store(o03, seq, h, r0, 48u, lane); if (two) { long_store(o13, seq, h, r1, 48u, lane); } }
    if (VT > 4u) { long_store(o04, seq, h, r0, 64u, lane); if (two) { long_store(o14, seq, h, r1, 64u, lane); } }
    if (VT > 5u) { long_store(o05, seq, h, r0, 80u, lane); if (two) { long_store(o15, seq, h, r1, 80u, lane); } }
    if (VT > 6u) { long_store(o06, seq, h, r0, 96u, lane); if (two) { long_store(o16, seq, h, r1, 96u, lane); } }
    if (VT > 7u) { long_store(o07, seq, h, r0, 112u, lane); if (two) { long_store(o17, seq, h, r1, 112u, lane); } }
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

// Large register-tiled path `main_big`: BQ = 8 TY query rows x BKB keys per step (64 or 32),
// 16 x TY invocations (TY in {8, 16}). Invocation (tx, ty) owns O of rows 8 ty .. 8 ty + 7, value
// columns 4 tx and 64 + 4 tx of a 128-column chunk (8 x 8 accumulators, every one a named vec4).
// S: BKB = 64: rows 8 ty .., keys tx + 16 m (m < 4); BKB = 32: invocation li owns rows
// 4 (li / 8) .., keys li % 8 + 8 m; k is staged with that permutation so that one vec4 read serves
// the four keys. a_ij rows are padded by one vec4 (conflict-free vec4 writes); q / k columns are
// staged QC at a time, v keys VC at a time; every tile lives in one workgroup array sized by the
// override constants (QC, VC as in `main`; BKB (BQ / 4 + 1) + max(QC (BQ + BKB), 128 VC) / 4 vec4
// at most 3072 = 48 KiB, checked on the host).
// q, k, v seen as vectors of 4 elements (main_big only: strides, offsets, dqk and dv are multiples of 4, checked on the host).
@group(0) @binding(2) var<storage, read> q4: array<elem4>; // [.., q_stride / 4]
@group(0) @binding(3) var<storage, read> k4: array<elem4>; // [.., k_stride / 4]
@group(0) @binding(4) var<storage, read> v4: array<elem4>; // [.., v_stride / 4]

// Elements [index, index + 4) of q (which = 0), k (1) or v (2) as f32, index a multiple of 4; 0 when !ok.
fn load_vec4(index: u32, ok: bool, which: u32) -> vec4<f32> {
    if (!ok) {
        return vec4<f32>(0.0);
    }
    if (which == 0u) {
        return vec4<f32>(q4[index / 4u]);
    } else if (which == 1u) {
        return vec4<f32>(k4[index / 4u]);
    }
    return vec4<f32>(v4[index / 4u]);
}

override TY: u32 = 8u;
override BKB: u32 = 64u; // keys per block: 64 (S 8 rows x 4 keys per invocation) or 32 (S 4 x 4)
override PREFETCH: u32 = 1u; // 1: the next q / k / v chunk is loaded into registers during the current chunk's products

var<workgroup> big_tile: array<vec4<f32>, BKB * (2u * TY + 1u) + max(QC * (8u * TY + BKB) / 4u, 32u * VC)>; // [a_ij: BK][BQ / 4 + 1] | [q: QC][BQ] [k: QC][BK] or [v: VC][128]

// silu(alpha s) / n of 4 scores (every (row, key) valid: the interior of the history).
fn interior_weights(s: vec4<f32>) -> vec4<f32> {
    let x = params.alpha * s;
    return x / (vec4<f32>(1.0) + exp(-x)) * params.inv_n;
}

// Weights of row i against keys j + m step, m < 4 (masks, rab and capture as weight_at).
fn strided_weights(s: vec4<f32>, i: u32, j: u32, step: u32, seq: Sequence, h: u32) -> vec4<f32> {
    return vec4<f32>(weight_at(s.x, i, j, seq, h), weight_at(s.y, i, j + step, seq, h),
        weight_at(s.z, i, j + 2u * step, seq, h), weight_at(s.w, i, j + 3u * step, seq, h));
}

fn big_weights(s: vec4<f32>, fast: bool, i: u32, j: u32, step: u32, seq: Sequence, h: u32) -> vec4<f32> {
    if (fast) {
        return interior_weights(s);
    }
    return strided_weights(s, i, j, step, seq, h);
}

// a_ij of 4 query rows (vec4 `slot` of the row axis) for the key at local index `key`.
fn put_big(key: u32, pp: u32, slot: u32, w: vec4<f32>) {
    big_tile[key * pp + slot] = w;
}

// One invocation's share of a q / k chunk: QC / 8 vectors of q and QC BKB / (64 TY) of k (1, 2 or 4 each).
struct QkShare {
    q0: vec4<f32>, q1: vec4<f32>, q2: vec4<f32>, q3: vec4<f32>,
    k0: vec4<f32>, k1: vec4<f32>, k2: vec4<f32>, k3: vec4<f32>,
}

// Columns c0 + q_c + 4 m of the q row at element q_at and c0 + k_c + 4 m of the k row at k_at.
fn load_qk_share(q_at: u32, q_ok: bool, q_c: u32, k_at: u32, k_ok: bool, k_c: u32, c0: u32) -> QkShare {
    let q_n = QC / 8u;
    let k_n = QC * BKB / (64u * TY);
    var r: QkShare;
    let qc = c0 + q_c;
    r.q0 = load_vec4(q_at + qc, q_ok && qc < params.dqk, 0u);
    if (q_n > 1u) { r.q1 = load_vec4(q_at + qc + 4u, q_ok && qc + 4u < params.dqk, 0u); }
    if (q_n > 2u) {
        r.q2 = load_vec4(q_at + qc + 8u, q_ok && qc + 8u < params.dqk, 0u);
        r.q3 = load_vec4(q_at + qc + 12u, q_ok && qc + 12u < params.dqk, 0u);
    }
    let kc = c0 + k_c;
    r.k0 = load_vec4(k_at + kc, k_ok && kc < params.dqk, 1u);
    if (k_n > 1u) { r.k1 = load_vec4(k_at + kc + 4u, k_ok && kc + 4u < params.dqk, 1u); }
    if (k_n > 2u) {
        r.k2 = load_vec4(k_at + kc + 8u, k_ok && kc + 8u < params.dqk, 1u);
        r.k3 = load_vec4(k_at + kc + 12u, k_ok && kc + 12u < params.dqk, 1u);
    }
    return r;
}

// Floats f, f + step, f + 2 step, f + 3 step of big_tile (all with component `part`) = x.
fn put_column4(f: u32, step: u32, part: u32, x: vec4<f32>) {
    big_tile[f / 4u][part] = x.x;
    big_tile[(f + step) / 4u][part] = x.y;
    big_tile[(f + 2u * step) / 4u][part] = x.z;
    big_tile[(f + 3u * step) / 4u][part] = x.w;
}

// The share into the transposed tiles: q column c at q_f + c bq, k column c at k_f + c BKB.
fn store_qk_share(x: QkShare, q_f: u32, bq: u32, q_part: u32, k_f: u32, k_part: u32) {
    let q_n = QC / 8u;
    let k_n = QC * BKB / (64u * TY);
    put_column4(q_f, bq, q_part, x.q0);
    if (q_n > 1u) { put_column4(q_f + 4u * bq, bq, q_part, x.q1); }
    if (q_n > 2u) {
        put_column4(q_f + 8u * bq, bq, q_part, x.q2);
        put_column4(q_f + 12u * bq, bq, q_part, x.q3);
    }
    put_column4(k_f, BKB, k_part, x.k0);
    if (k_n > 1u) { put_column4(k_f + 4u * BKB, BKB, k_part, x.k1); }
    if (k_n > 2u) {
        put_column4(k_f + 8u * BKB, BKB, k_part, x.k2);
        put_column4(k_f + 12u * BKB, BKB, k_part, x.k3);
    }
}

// One invocation's share of a v chunk: 2 VC / TY vectors (1, 2 or 4), keys j + m row_step.
struct VShare {
    v0: vec4<f32>, v1: vec4<f32>, v2: vec4<f32>, v3: vec4<f32>,
}

// v at element v_at (key j) and the keys m row_step further (m < 2 VC / TY).
fn load_v_share(v_at: u32, j: u32, row_step: u32, len: u32, col_ok: bool) -> VShare {
    let n = 2u * VC / TY;
    let step = row_step * params.v_stride;
    var r: VShare;
    r.v0 = load_vec4(v_at, col_ok && j < len, 2u);
    if (n > 1u) { r.v1 = load_vec4(v_at + step, col_ok && j + row_step < len, 2u); }
    if (n > 2u) {
        r.v2 = load_vec4(v_at + 2u * step, col_ok && j + 2u * row_step < len, 2u);
        r.v3 = load_vec4(v_at + 3u * step, col_ok && j + 3u * row_step < len, 2u);
    }
    return r;
}

fn store_v_share(x: VShare, first: u32, nt: u32) {
    let n = 2u * VC / TY;
    big_tile[first] = x.v0;
    if (n > 1u) { big_tile[first + nt] = x.v1; }
    if (n > 2u) {
        big_tile[first + 2u * nt] = x.v2;
        big_tile[first + 3u * nt] = x.v3;
    }
}

@compute @workgroup_size(16, TY)
fn main_big(@builtin(workgroup_id) wid: vec3<u32>, @builtin(local_invocation_id) lid: vec3<u32>) {
    let tx = lid.x;
    let ty = lid.y;
    let nt = 16u * TY;
    let bq = 8u * TY;
    let li = ty * 16u + tx;
    let b = wid.z;
    let h = wid.y;
    let seq = sequence(b);
    let i0 = params.q_begin + wid.x * bq;
    if (i0 >= seq.len) {
        return;
    }
    let i1 = min(i0 + bq, seq.len);
    let q_col = params.q_offset + h * params.dqk;
    let k_col = params.k_offset + h * params.dqk;
    let v_col = params.v_offset + h * params.dv;
    let pp = bq / 4u + 1u;            // vec4 per a_ij row (one of padding)
    let stage = BKB * pp;             // first vec4 of the staging area
    let q_floats = stage * 4u;        // q tile [QC][bq] as floats
    let k_floats = q_floats + QC * bq; // k tile [QC][BKB] as floats, key j at (j % (BKB / 4)) 4 + j / (BKB / 4)
    let k_vec = k_floats / 4u;
    // Staging assignment: q row li % bq, columns (li / bq) QC / 2 ..; k key li % 64, columns (li / 64) kper ..
    let q_row = li % bq;
    let q_per = QC * bq / nt;
    let q_c = (li / bq) * q_per;
    // S mapping: BKB = 64: rows 8 ty .., keys tx + 16 m; BKB = 32: rows 4 sr .., keys sk + 8 m.
    let kstep = BKB / 4u;
    let sr = li / 8u;
    let sk = li % 8u;
    let k_key = li % BKB;
    let k_per = QC * BKB / nt;
    let k_c = (li / BKB) * k_per;
    let k_slot = (k_key % kstep) * 4u + k_key / kstep;
    let row0 = i0 + ty * 8u;
    let qi = i0 + q_row;
    let q_at = (seq.start + qi) * params.q_stride + q_col;
    let q_ok = qi < seq.len;
    // v staging: invocation li holds keys li / 32 + m nt / 32, value columns 4 (li % 32) ..
    let v_key = li / 32u;
    let v_c4 = li % 32u;
    for (var dv0 = 0u; dv0 < params.dv; dv0 += 128u) {
        var o0l = vec4<f32>(0.0); var o0h = vec4<f32>(0.0);
        var o1l = vec4<f32>(0.0); var o1h = vec4<f32>(0.0);
        var o2l = vec4<f32>(0.0); var o2h = vec4<f32>(0.0);
        var o3l = vec4<f32>(0.0); var o3h = vec4<f32>(0.0);
        var o4l = vec4<f32>(0.0); var o4h = vec4<f32>(0.0);
        var o5l = vec4<f32>(0.0); var o5h = vec4<f32>(0.0);
        var o6l = vec4<f32>(0.0); var o6h = vec4<f32>(0.0);
        var o7l = vec4<f32>(0.0); var o7h = vec4<f32>(0.0);
        for (var j0 = 0u; j0 < i1; j0 += BKB) {
            if (!key_block_needed(j0, BKB, i0, i1, seq.history)) {
                continue;
            }
            let kj = j0 + k_key;
            let k_at = (seq.start + kj) * params.k_stride + k_col;
            var share = load_qk_share(q_at, q_ok, q_c, k_at, kj < seq.len, k_c, 0u);
            var s0 = vec4<f32>(0.0); var s1 = vec4<f32>(0.0);
            var s2 = vec4<f32>(0.0); var s3 = vec4<f32>(0.0);
            var s4 = vec4<f32>(0.0); var s5 = vec4<f32>(0.0);
            var s6 = vec4<f32>(0.0); var s7 = vec4<f32>(0.0);
            for (var c0 = 0u; c0 < params.dqk; c0 += QC) {
                workgroupBarrier();
                if (PREFETCH == 0u && c0 > 0u) {
                    share = load_qk_share(q_at, q_ok, q_c, k_at, kj < seq.len, k_c, c0);
                }
                store_qk_share(share, q_floats + q_c * bq + q_row, bq, q_row % 4u, k_floats + k_c * BKB + k_slot, k_slot % 4u);
                workgroupBarrier();
                if (PREFETCH != 0u && c0 + QC < params.dqk) {
                    // The next chunk's loads run during this chunk's products.
                    share = load_qk_share(q_at, q_ok, q_c, k_at, kj < seq.len, k_c, c0 + QC);
                }
                if (BKB == 64u) {
                    for (var cc = 0u; cc < QC; cc++) {
                        let qa = big_tile[stage + cc * (bq / 4u) + ty * 2u];
                        let qb = big_tile[stage + cc * (bq / 4u) + ty * 2u + 1u];
                        let kk = big_tile[k_vec + cc * 16u + tx];
                        s0 = fma(vec4<f32>(qa.x), kk, s0);
                        s1 = fma(vec4<f32>(qa.y), kk, s1);
                        s2 = fma(vec4<f32>(qa.z), kk, s2);
                        s3 = fma(vec4<f32>(qa.w), kk, s3);
                        s4 = fma(vec4<f32>(qb.x), kk, s4);
                        s5 = fma(vec4<f32>(qb.y), kk, s5);
                        s6 = fma(vec4<f32>(qb.z), kk, s6);
                        s7 = fma(vec4<f32>(qb.w), kk, s7);
                    }
                } else {
                    for (var cc = 0u; cc < QC; cc++) {
                        let qa = big_tile[stage + cc * (bq / 4u) + sr];
                        let kk = big_tile[k_vec + cc * 8u + sk];
                        s0 = fma(vec4<f32>(qa.x), kk, s0);
                        s1 = fma(vec4<f32>(qa.y), kk, s1);
                        s2 = fma(vec4<f32>(qa.z), kk, s2);
                        s3 = fma(vec4<f32>(qa.w), kk, s3);
                    }
                }
            }
            // The first v chunk's loads (run during the weights below).
            let v_at = (seq.start + j0 + v_key) * params.v_stride + v_col + dv0 + v_c4 * 4u;
            let v_col_ok = dv0 + v_c4 * 4u < params.dv;
            var vshare = load_v_share(v_at, j0 + v_key, nt / 32u, seq.len, v_col_ok);
            // Every (row, key) of the block valid and unbiased: the plain formula, no per-score mask.
            var fast = params.has_rab == 0u && params.max_attn_len == 0u && j0 + BKB <= min(i0, seq.history);
//#if CAPTURE
            fast = false;
//#endif
            // The a_ij rows are free: the previous block's reads precede this block's barriers above.
            if (BKB == 64u) {
                let jb = j0 + tx;
                let w0 = big_weights(s0, fast, row0, jb, 16u, seq, h);
                let w1 = big_weights(s1, fast, row0 + 1u, jb, 16u, seq, h);
                let w2 = big_weights(s2, fast, row0 + 2u, jb, 16u, seq, h);
                let w3 = big_weights(s3, fast, row0 + 3u, jb, 16u, seq, h);
                let w4 = big_weights(s4, fast, row0 + 4u, jb, 16u, seq, h);
                let w5 = big_weights(s5, fast, row0 + 5u, jb, 16u, seq, h);
                let w6 = big_weights(s6, fast, row0 + 6u, jb, 16u, seq, h);
                let w7 = big_weights(s7, fast, row0 + 7u, jb, 16u, seq, h);
                put_big(tx, pp, ty * 2u, vec4<f32>(w0.x, w1.x, w2.x, w3.x));
                put_big(tx, pp, ty * 2u + 1u, vec4<f32>(w4.x, w5.x, w6.x, w7.x));
                put_big(tx + 16u, pp, ty * 2u, vec4<f32>(w0.y, w1.y, w2.y, w3.y));
                put_big(tx + 16u, pp, ty * 2u + 1u, vec4<f32>(w4.y, w5.y, w6.y, w7.y));
                put_big(tx + 32u, pp, ty * 2u, vec4<f32>(w0.z, w1.z, w2.z, w3.z));
                put_big(tx + 32u, pp, ty * 2u + 1u, vec4<f32>(w4.z, w5.z, w6.z, w7.z));
                put_big(tx + 48u, pp, ty * 2u, vec4<f32>(w0.w, w1.w, w2.w, w3.w));
                put_big(tx + 48u, pp, ty * 2u + 1u, vec4<f32>(w4.w, w5.w, w6.w, w7.w));
            } else {
                let jb = j0 + sk;
                let r4 = i0 + sr * 4u;
                let w0 = big_weights(s0, fast, r4, jb, 8u, seq, h);
                let w1 = big_weights(s1, fast, r4 + 1u, jb, 8u, seq, h);
                let w2 = big_weights(s2, fast, r4 + 2u, jb, 8u, seq, h);
                let w3 = big_weights(s3, fast, r4 + 3u, jb, 8u, seq, h);
                put_big(sk, pp, sr, vec4<f32>(w0.x, w1.x, w2.x, w3.x));
                put_big(sk + 8u, pp, sr, vec4<f32>(w0.y, w1.y, w2.y, w3.y));
                put_big(sk + 16u, pp, sr, vec4<f32>(w0.z, w1.z, w2.z, w3.z));
                put_big(sk + 24u, pp, sr, vec4<f32>(w0.w, w1.w, w2.w, w3.w));
            }
            for (var kc = 0u; kc < BKB; kc += VC) {
                // VC keys x 128 value columns over the q / k staging area (after every S read of it).
                workgroupBarrier();
                if (PREFETCH == 0u && kc > 0u) {
                    vshare = load_v_share(v_at + kc * params.v_stride, j0 + kc + v_key, nt / 32u, seq.len, v_col_ok);
                }
                store_v_share(vshare, stage + li, nt);
                workgroupBarrier();
                if (PREFETCH != 0u && kc + VC < BKB) {
                    vshare = load_v_share(v_at + (kc + VC) * params.v_stride, j0 + kc + VC + v_key, nt / 32u, seq.len, v_col_ok);
                }
                for (var kk = 0u; kk < VC; kk++) {
                    let key = kc + kk;
                    let pa = big_tile[key * pp + ty * 2u];
                    let pb = big_tile[key * pp + ty * 2u + 1u];
                    let v_lo = big_tile[stage + kk * 32u + tx];
                    let v_hi = big_tile[stage + kk * 32u + 16u + tx];
                    o0l = fma(vec4<f32>(pa.x), v_lo, o0l); o0h = fma(vec4<f32>(pa.x), v_hi, o0h);
                    o1l = fma(vec4<f32>(pa.y), v_lo, o1l); o1h = fma(vec4<f32>(pa.y), v_hi, o1h);
                    o2l = fma(vec4<f32>(pa.z), v_lo, o2l); o2h = fma(vec4<f32>(pa.z), v_hi, o2h);
                    o3l = fma(vec4<f32>(pa.w), v_lo, o3l); o3h = fma(vec4<f32>(pa.w), v_hi, o3h);
                    o4l = fma(vec4<f32>(pb.x), v_lo, o4l); o4h = fma(vec4<f32>(pb.x), v_hi, o4h);
                    o5l = fma(vec4<f32>(pb.y), v_lo, o5l); o5h = fma(vec4<f32>(pb.y), v_hi, o5h);
                    o6l = fma(vec4<f32>(pb.z), v_lo, o6l); o6h = fma(vec4<f32>(pb.z), v_hi, o6h);
                    o7l = fma(vec4<f32>(pb.w), v_lo, o7l); o7h = fma(vec4<f32>(pb.w), v_hi, o7h);
                }
            }
            // No barrier: the next block's first step begins with one before it writes the staging area.
        }
        let c_lo = dv0 + tx * 4u;
        let c_hi = dv0 + 64u + tx * 4u;
        store_out(o0l, row0, c_lo, seq, h); store_out(o0h, row0, c_hi, seq, h);
        store_out(o1l, row0 + 1u, c_lo, seq, h); store_out(o1h, row0 + 1u, c_hi, seq, h);
        store_out(o2l, row0 + 2u, c_lo, seq, h); store_out(o2h, row0 + 2u, c_hi, seq, h);
        store_out(o3l, row0 + 3u, c_lo, seq, h); store_out(o3h, row0 + 3u, c_hi, seq, h);
        store_out(o4l, row0 + 4u, c_lo, seq, h); store_out(o4h, row0 + 4u, c_hi, seq, h);
        store_out(o5l, row0 + 5u, c_lo, seq, h); store_out(o5h, row0 + 5u, c_hi, seq, h);
        store_out(o6l, row0 + 6u, c_lo, seq, h); store_out(o6h, row0 + 6u, c_hi, seq, h);
        store_out(o7l, row0 + 7u, c_lo, seq, h); store_out(o7h, row0 + 7u, c_hi, seq, h);
        // The next chunk's first step begins with a barrier before it writes the staging area.
    }
}
//#endif
