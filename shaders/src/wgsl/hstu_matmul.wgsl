// hstu_matmul: c[c_row_offset + r, n] = epilogue(sum_k a[a_row_offset + r, k] * b[k, n] + bias[n]) (+ c[..] when residual), epilogue = identity or silu; a, b row-major with strides lda, ldb (multiples of 4, 16 for COOP).
// bindings: 0 params (uniform), 1 a [.., lda] elem, 2 b [K, ldb] elem, 3 bias [ldc] f32, 4 c [.., ldc] f32.
// dispatch: (ceil(N / (8 * WG_X)), ceil(M / (8 * WG_Y)), 1) with WG_X x WG_Y invocations; COOP: (ceil(N / 64), ceil(M / 64), 1), one subgroup (SG invocations) per 64 x 64 tile; main_skinny (any variant): (ceil(N / 64), ceil(M / 4), 1), 256 invocations.

struct Params {
    m: u32,
    n: u32,            // columns of c written (padded width, a multiple of 4)
    k: u32,            // reduction length (a multiple of 4; 16 for COOP), padding columns of a or rows of b are zero
    lda: u32,
    ldb: u32,
    ldc: u32,
    a_row_offset: u32,
    c_row_offset: u32,
    has_bias: u32,
    silu: u32,
    residual: u32,
    _pad0: u32,
}

@group(0) @binding(0) var<uniform> params: Params;
@group(0) @binding(3) var<storage, read> bias: array<vec4<f32>>;    // [ldc / 4]
@group(0) @binding(4) var<storage, read_write> c: array<vec4<f32>>; // [.., ldc / 4]

fn epilogue(value: vec4<f32>, out_index: u32, col: u32) -> vec4<f32> {
    var v = value;
    if (params.has_bias != 0u) {
        v += bias[col / 4u];
    }
    if (params.silu != 0u) {
        v = v / (vec4<f32>(1.0) + exp(-v));
    }
    if (params.residual != 0u) {
        v += c[out_index];
    }
    return v;
}

//#if COOP
// Tensor-core path: one subgroup owns a 64 x 64 tile of c as 4 x 4 cooperative 16 x 16 f32 accumulators.
override SG: u32 = 32u;

@group(0) @binding(1) var<storage, read> a: array<f16>; // [.., lda]
@group(0) @binding(2) var<storage, read> b: array<f16>; // [K, ldb]

var<workgroup> scratch: array<f32, 256>;

fn store_tile(acc: coop_mat16x16<f32, C>, row0: u32, col0: u32, lane: u32) {
    let zero = 0u;
    let tile_stride = 16u;
    coopStoreT(acc, &scratch[zero], tile_stride);
    workgroupBarrier();
    for (var e = lane * 4u; e < 256u; e += SG * 4u) {
        let r = row0 + e / 16u;
        let col = col0 + e % 16u;
        if (r < params.m && col < params.n) {
            let v4 = vec4<f32>(scratch[e], scratch[e + 1u], scratch[e + 2u], scratch[e + 3u]);
            let out_index = ((params.c_row_offset + r) * params.ldc + col) / 4u;
            c[out_index] = epilogue(v4, out_index, col);
        }
    }
    workgroupBarrier();
}

@compute @workgroup_size(SG)
fn main(@builtin(workgroup_id) wid: vec3<u32>, @builtin(local_invocation_index) lane: u32) {
    let row0 = wid.y * 64u;
    let col0 = wid.x * 64u;
    var c00 = coop_mat16x16<f32, C>();
    var c01 = coop_mat16x16<f32, C>();
    var c02 = coop_mat16x16<f32, C>();
    var c03 = coop_mat16x16<f32, C>();
    var c10 = coop_mat16x16<f32, C>();
    var c11 = coop_mat16x16<f32, C>();
    var c12 = coop_mat16x16<f32, C>();
    var c13 = coop_mat16x16<f32, C>();
    var c20 = coop_mat16x16<f32, C>();
    var c21 = coop_mat16x16<f32, C>();
    var c22 = coop_mat16x16<f32, C>();
    var c23 = coop_mat16x16<f32, C>();
    var c30 = coop_mat16x16<f32, C>();
    var c31 = coop_mat16x16<f32, C>();
    var c32 = coop_mat16x16<f32, C>();
    var c33 = coop_mat16x16<f32, C>();
    let lda = params.lda;
    let ldb = params.ldb;
    for (var k0 = 0u; k0 < params.k; k0 += 16u) {
        let ia0 = (params.a_row_offset + row0) * lda + k0;
        let ia1 = ia0 + 16u * lda;
        let ia2 = ia1 + 16u * lda;
        let ia3 = ia2 + 16u * lda;
        let a0 = coopLoadT<coop_mat16x16<f16, A>>(&a[ia0], lda);
        let a1 = coopLoadT<coop_mat16x16<f16, A>>(&a[ia1], lda);
        let a2 = coopLoadT<coop_mat16x16<f16, A>>(&a[ia2], lda);
        let a3 = coopLoadT<coop_mat16x16<f16, A>>(&a[ia3], lda);
        let ib0 = k0 * ldb + col0;
        let ib1 = ib0 + 16u;
        let ib2 = ib0 + 32u;
        let ib3 = ib0 + 48u;
        let b0 = coopLoadT<coop_mat16x16<f16, B>>(&b[ib0], ldb);
        let b1 = coopLoadT<coop_mat16x16<f16, B>>(&b[ib1], ldb);
        let b2 = coopLoadT<coop_mat16x16<f16, B>>(&b[ib2], ldb);
        let b3 = coopLoadT<coop_mat16x16<f16, B>>(&b[ib3], ldb);
        c00 = coopMultiplyAdd(a0, b0, c00);
        c01 = coopMultiplyAdd(a0, b1, c01);
        c02 = coopMultiplyAdd(a0, b2, c02);
        c03 = coopMultiplyAdd(a0, b3, c03);
        c10 = coopMultiplyAdd(a1, b0, c10);
        c11 = coopMultiplyAdd(a1, b1, c11);
        c12 = coopMultiplyAdd(a1, b2, c12);
        c13 = coopMultiplyAdd(a1, b3, c13);
        c20 = coopMultiplyAdd(a2, b0, c20);
        c21 = coopMultiplyAdd(a2, b1, c21);
        c22 = coopMultiplyAdd(a2, b2, c22);
        c23 = coopMultiplyAdd(a2, b3, c23);
        c30 = coopMultiplyAdd(a3, b0, c30);
        c31 = coopMultiplyAdd(a3, b1, c31);
        c32 = coopMultiplyAdd(a3, b2, c32);
        c33 = coopMultiplyAdd(a3, b3, c33);
    }
    store_tile(c00, row0, col0, lane);
    store_tile(c01, row0, col0 + 16u, lane);
    store_tile(c02, row0, col0 + 32u, lane);
    store_tile(c03, row0, col0 + 48u, lane);
    store_tile(c10, row0 + 16u, col0, lane);
    store_tile(c11, row0 + 16u, col0 + 16u, lane);
    store_tile(c12, row0 + 16u, col0 + 32u, lane);
    store_tile(c13, row0 + 16u, col0 + 48u, lane);
    store_tile(c20, row0 + 32u, col0, lane);
    store_tile(c21, row0 + 32u, col0 + 16u, lane);
    store_tile(c22, row0 + 32u, col0 + 32u, lane);
    store_tile(c23, row0 + 32u, col0 + 48u, lane);
    store_tile(c30, row0 + 48u, col0, lane);
    store_tile(c31, row0 + 48u, col0 + 16u, lane);
    store_tile(c32, row0 + 48u, col0 + 32u, lane);
    store_tile(c33, row0 + 48u, col0 + 48u, lane);
}
// a[.., k .. k + 4] and b[k, n .. n + 4] as f32 vectors; index in elements, a multiple of 4.
fn load_a4(index: u32) -> vec4<f32> {
    return vec4<f32>(f32(a[index]), f32(a[index + 1u]), f32(a[index + 2u]), f32(a[index + 3u]));
}

fn load_b4(index: u32) -> vec4<f32> {
    return vec4<f32>(f32(b[index]), f32(b[index + 1u]), f32(b[index + 2u]), f32(b[index + 3u]));
}
//#else
// a[.., k .. k + 4] and b[k, n .. n + 4] as f32 vectors; index in elements, a multiple of 4.
fn load_a4(index: u32) -> vec4<f32> {
    return vec4<f32>(a[index / 4u]);
}

fn load_b4(index: u32) -> vec4<f32> {
    return vec4<f32>(b[index / 4u]);
}

// Register-tiled path: each invocation owns 8 x 8 outputs (rows ty*4 + r and TM/2 + ty*4 + r, columns
// tx*4 and TN/2 + tx*4, four each) in 16 vec4 accumulators with constant names.
override WG_X: u32 = 16u;
override WG_Y: u32 = 16u;
override TK: u32 = 8u;
override TM4: u32 = 2u * WG_Y; // workgroup tile rows / 4
override TN4: u32 = 2u * WG_X; // workgroup tile columns / 4
override A_TILE: u32 = TK * TM4;
override B_TILE: u32 = TK * TN4;

@group(0) @binding(1) var<storage, read> a: array<elem4>; // [.., lda / 4]
@group(0) @binding(2) var<storage, read> b: array<elem4>; // [K, ldb / 4]

var<workgroup> a_tile: array<vec4<f32>, A_TILE>; // [TK][TM / 4]: a transposed, 4 rows per vec4
var<workgroup> b_tile: array<vec4<f32>, B_TILE>; // [TK][TN / 4]

fn store4(row: u32, col: u32, acc: vec4<f32>) {
    if (row < params.m && col < params.n) {
        let out_index = ((params.c_row_offset + row) * params.ldc + col) / 4u;
        c[out_index] = epilogue(acc, out_index, col);
    }
}

@compute @workgroup_size(WG_X, WG_Y)
fn main(@builtin(workgroup_id) wid: vec3<u32>, @builtin(local_invocation_id) lid: vec3<u32>) {
    let tx = lid.x;
    let ty = lid.y;
    let li = ty * WG_X + tx;
    let threads = WG_X * WG_Y;
    let tm = TM4 * 4u;
    let tn = TN4 * 4u;
    let row0 = wid.y * tm;
    let col0 = wid.x * tn;
    let k4 = TK / 4u;
    var c0l = vec4<f32>(0.0); var c0h = vec4<f32>(0.0);
    var c1l = vec4<f32>(0.0); var c1h = vec4<f32>(0.0);
    var c2l = vec4<f32>(0.0); var c2h = vec4<f32>(0.0);
    var c3l = vec4<f32>(0.0); var c3h = vec4<f32>(0.0);
    var c4l = vec4<f32>(0.0); var c4h = vec4<f32>(0.0);
    var c5l = vec4<f32>(0.0); var c5h = vec4<f32>(0.0);
    var c6l = vec4<f32>(0.0); var c6h = vec4<f32>(0.0);
    var c7l = vec4<f32>(0.0); var c7h = vec4<f32>(0.0);
    for (var k0 = 0u; k0 < params.k; k0 += TK) {
        // a tile: tm rows x TK columns, one vec4 (4 consecutive k) per load, stored transposed.
        for (var e = li; e < tm * k4; e += threads) {
            let r = e / k4;
            let kq = (e % k4) * 4u;
            var v = vec4<f32>(0.0);
            if (row0 + r < params.m && k0 + kq < params.k) {
                v = vec4<f32>(a[((params.a_row_offset + row0 + r) * params.lda + k0 + kq) / 4u]);
            }
            a_tile[(kq + 0u) * TM4 + r / 4u][r % 4u] = v.x;
            a_tile[(kq + 1u) * TM4 + r / 4u][r % 4u] = v.y;
            a_tile[(kq + 2u) * TM4 + r / 4u][r % 4u] = v.z;
            a_tile[(kq + 3u) * TM4 + r / 4u][r % 4u] = v.w;
        }
        // b tile: TK rows x tn columns, one vec4 per load.
        for (var e = li; e < B_TILE; e += threads) {
            let kk = e / TN4;
            let n4 = e % TN4;
            var v = vec4<f32>(0.0);
            if (k0 + kk < params.k && col0 + n4 * 4u < params.n) {
                v = vec4<f32>(b[((k0 + kk) * params.ldb + col0 + n4 * 4u) / 4u]);
            }
            b_tile[e] = v;
        }
        workgroupBarrier();
        for (var kk = 0u; kk < TK; kk++) {
            let a_lo = a_tile[kk * TM4 + ty];
            let a_hi = a_tile[kk * TM4 + WG_Y + ty];
            let b_lo = b_tile[kk * TN4 + tx];
            let b_hi = b_tile[kk * TN4 + WG_X + tx];
            c0l = fma(vec4<f32>(a_lo.x), b_lo, c0l); c0h = fma(vec4<f32>(a_lo.x), b_hi, c0h);
            c1l = fma(vec4<f32>(a_lo.y), b_lo, c1l); c1h = fma(vec4<f32>(a_lo.y), b_hi, c1h);
            c2l = fma(vec4<f32>(a_lo.z), b_lo, c2l); c2h = fma(vec4<f32>(a_lo.z), b_hi, c2h);
            c3l = fma(vec4<f32>(a_lo.w), b_lo, c3l); c3h = fma(vec4<f32>(a_lo.w), b_hi, c3h);
            c4l = fma(vec4<f32>(a_hi.x), b_lo, c4l); c4h = fma(vec4<f32>(a_hi.x), b_hi, c4h);
            c5l = fma(vec4<f32>(a_hi.y), b_lo, c5l); c5h = fma(vec4<f32>(a_hi.y), b_hi, c5h);
            c6l = fma(vec4<f32>(a_hi.z), b_lo, c6l); c6h = fma(vec4<f32>(a_hi.z), b_hi, c6h);
            c7l = fma(vec4<f32>(a_hi.w), b_lo, c7l); c7h = fma(vec4<f32>(a_hi.w), b_hi, c7h);
        }
        workgroupBarrier();
    }
    let r_lo = row0 + ty * 4u;
    let r_hi = row0 + tm / 2u + ty * 4u;
    let n_lo = col0 + tx * 4u;
    let n_hi = col0 + tn / 2u + tx * 4u;
    store4(r_lo + 0u, n_lo, c0l); store4(r_lo + 0u, n_hi, c0h);
    store4(r_lo + 1u, n_lo, c1l); store4(r_lo + 1u, n_hi, c1h);
    store4(r_lo + 2u, n_lo, c2l); store4(r_lo + 2u, n_hi, c2h);
    store4(r_lo + 3u, n_lo, c3l); store4(r_lo + 3u, n_hi, c3h);
    store4(r_hi + 0u, n_lo, c4l); store4(r_hi + 0u, n_hi, c4h);
    store4(r_hi + 1u, n_lo, c5l); store4(r_hi + 1u, n_hi, c5h);
    store4(r_hi + 2u, n_lo, c6l); store4(r_hi + 2u, n_hi, c6h);
    store4(r_hi + 3u, n_lo, c7l); store4(r_hi + 3u, n_hi, c7h);
}
//#endif

// Skinny path `main_skinny` (every variant; few rows, e.g. one user's 200 tokens): a workgroup owns
// 4 rows x 64 columns; its 256 invocations are 16 column quads x 16 slices of K, each reading a and
// b straight from memory (L1/L2) for 4 x 4 outputs of its slice, then the slices are summed in
// workgroup memory (fixed order). A 200 x 1024 x 256 product: 800 workgroups, 4 steps per invocation.
var<workgroup> skinny_part: array<vec4<f32>, 1024>; // [16 slices][4 rows][16 column quads]

fn skinny_row(acc: vec4<f32>, av: vec4<f32>, b0: vec4<f32>, b1: vec4<f32>, b2: vec4<f32>, b3: vec4<f32>) -> vec4<f32> {
    var r = fma(vec4<f32>(av.x), b0, acc);
    r = fma(vec4<f32>(av.y), b1, r);
    r = fma(vec4<f32>(av.z), b2, r);
    r = fma(vec4<f32>(av.w), b3, r);
    return r;
}

@compute @workgroup_size(256)
fn main_skinny(@builtin(workgroup_id) wid: vec3<u32>, @builtin(local_invocation_index) li: u32) {
    let quad = li % 16u;
    let slice = li / 16u;
    let col = wid.x * 64u + quad * 4u;
    let row0 = wid.y * 4u;
    // Loads stay in bounds: columns past n read the last quad, rows past m read row m - 1; neither is stored.
    let load_col = min(col, params.n - 4u);
    let last = params.m - 1u;
    let ra0 = (params.a_row_offset + min(row0, last)) * params.lda;
    let ra1 = (params.a_row_offset + min(row0 + 1u, last)) * params.lda;
    let ra2 = (params.a_row_offset + min(row0 + 2u, last)) * params.lda;
    let ra3 = (params.a_row_offset + min(row0 + 3u, last)) * params.lda;
    let k4 = params.k / 4u;
    let per = (k4 + 15u) / 16u;
    let kq0 = min(slice * per, k4);
    let kq1 = min(kq0 + per, k4);
    var acc0 = vec4<f32>(0.0);
    var acc1 = vec4<f32>(0.0);
    var acc2 = vec4<f32>(0.0);
    var acc3 = vec4<f32>(0.0);
    for (var kq = kq0; kq < kq1; kq++) {
        let k0 = kq * 4u;
        let ib = k0 * params.ldb + load_col;
        let b0 = load_b4(ib);
        let b1 = load_b4(ib + params.ldb);
        let b2 = load_b4(ib + 2u * params.ldb);
        let b3 = load_b4(ib + 3u * params.ldb);
        acc0 = skinny_row(acc0, load_a4(ra0 + k0), b0, b1, b2, b3);
        acc1 = skinny_row(acc1, load_a4(ra1 + k0), b0, b1, b2, b3);
        acc2 = skinny_row(acc2, load_a4(ra2 + k0), b0, b1, b2, b3);
        acc3 = skinny_row(acc3, load_a4(ra3 + k0), b0, b1, b2, b3);
    }
    skinny_part[(slice * 4u + 0u) * 16u + quad] = acc0;
    skinny_part[(slice * 4u + 1u) * 16u + quad] = acc1;
    skinny_part[(slice * 4u + 2u) * 16u + quad] = acc2;
    skinny_part[(slice * 4u + 3u) * 16u + quad] = acc3;
    workgroupBarrier();
    if (li < 64u) {
        let r = li / 16u;
        let q = li % 16u;
        var sum = vec4<f32>(0.0);
        for (var sl = 0u; sl < 16u; sl++) {
            sum += skinny_part[(sl * 4u + r) * 16u + q];
        }
        let row = row0 + r;
        let out_col = wid.x * 64u + q * 4u;
        if (row < params.m && out_col < params.n) {
            let out_index = ((params.c_row_offset + row) * params.ldc + out_col) / 4u;
            c[out_index] = epilogue(sum, out_index, out_col);
        }
    }
}
