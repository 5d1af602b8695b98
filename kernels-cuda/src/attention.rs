//! Fused HSTU attention (hstu-spec section 6) on the device: forward and deterministic backward.
//!
//! Device tensors are bf16 `[total_tokens, heads, head_dim]`, jagged by `seq_offsets` (i64,
//! `[batch + 1]`), with `head_dim` one of [`SUPPORTED_HEAD_DIMS`] and `dqk == dv == head_dim`
//! (pad smaller or unequal head dims with zeros: [`crate::host`] does this).

use crate::device::CudaDevice;
use crate::error::{CudaError, Result, drv};
use crate::params::HstuAttnParams;
use cudarc::driver::{CudaSlice, DeviceRepr, LaunchConfig, PushKernelArg, sys};
use half::bf16;
use std::sync::OnceLock;
use std::sync::atomic::{AtomicUsize, Ordering};

/// Head dims with a compiled kernel instantiation.
pub const SUPPORTED_HEAD_DIMS: [usize; 3] = [64, 128, 256];

/// Tile of one kernel instantiation: `rows` = rows (queries, or keys for dK/dV) per block,
/// 16 per m16 tile with `rows / (16 * warps)` tiles per warp; `cols` = inner (streamed) tile.
#[derive(Clone, Copy, Debug)]
struct Tile {
    rows: usize,
    cols: usize,
    warps: usize,
}

/// Number of compiled tile variants: 0..=2 are the multi-tile (MT) kernels listed at the end of
/// the .cu files, 3 is the previous version verbatim (16 rows per warp).
pub const TILE_VARIANTS: usize = 4;
/// Per-head-dim default choice (see [`set_tile_variants`]).
pub const DEFAULT_VARIANT: usize = usize::MAX;

static FWD_VARIANT: AtomicUsize = AtomicUsize::new(DEFAULT_VARIANT);
static BWD_VARIANT: AtomicUsize = AtomicUsize::new(DEFAULT_VARIANT);

/// Selects the tile variants of later forward and backward launches: `0..TILE_VARIANTS` pin one
/// variant for every head dim, anything larger (e.g. [`DEFAULT_VARIANT`]) restores the per-D
/// defaults. For benchmarks: results are identical up to summation order.
pub fn set_tile_variants(fwd: usize, bwd: usize) {
    FWD_VARIANT.store(fwd, Ordering::Relaxed);
    BWD_VARIANT.store(bwd, Ordering::Relaxed);
}

/// Defaults measured on the H200 (kernels-cuda/BENCHMARKS-cuda.md, h200_mt_variants.log):
/// D = 128 uses the 32-rows-per-warp kernels (variant 0: fwd 194 vs 161 TFLOP/s at N = 8192);
/// D = 64 and 256 keep the previous kernels (variant 3), which the MT kernels did not beat.
fn resolve(v: usize, d: usize) -> usize {
    if v < TILE_VARIANTS {
        v
    } else if d == 128 {
        0
    } else {
        3
    }
}
fn fwd_variant(d: usize) -> usize {
    resolve(FWD_VARIANT.load(Ordering::Relaxed), d)
}
fn bwd_variant(d: usize) -> usize {
    resolve(BWD_VARIANT.load(Ordering::Relaxed), d)
}

fn suffix(v: usize) -> &'static str {
    ["", "_v1", "_v2", "_v3"][v]
}

/// `mt` m16 tiles per warp, `inner` columns, `warps` warps.
const fn tile(mt: usize, inner: usize, warps: usize) -> Tile {
    Tile {
        rows: 16 * mt * warps,
        cols: inner,
        warps,
    }
}

// Mirror of the instantiation lists at the end of csrc/hstu_attention_{fwd,bwd}_sm90.cu.
fn fwd_tile(d: usize) -> Tile {
    match (fwd_variant(d), d) {
        (0, 256) | (3, 256) => tile(1, 32, 4),
        (0, _) => tile(2, 64, 4),
        (1, 256) => tile(1, 64, 4),
        (1, _) => tile(2, 32, 4),
        (2, 256) => tile(1, 32, 8),
        (2, _) => tile(2, 64, 8),
        (_, _) => tile(1, 64, 8),
    }
}
/// dK/dV as two passes (one accumulator each): D = 256 always, variant 2 for every D.
fn dkdv_split(v: usize, d: usize) -> bool {
    d == 256 || v == 2
}
fn dkdv_tile(v: usize, d: usize) -> Tile {
    match (v, d) {
        (0, 64) => tile(2, 32, 4),
        (0, _) => tile(1, 32, 4),
        (1, 64) => tile(2, 32, 8),
        (1, _) => tile(1, 32, 8),
        (2, 64) => tile(2, 64, 4),
        (2, 128) => tile(2, 32, 4),
        (2, _) => tile(1, 16, 4),
        (_, 64) => tile(1, 64, 4),
        (_, 128) => tile(1, 32, 4),
        (_, _) => tile(1, 32, 8),
    }
}
fn dq_tile(v: usize, d: usize) -> Tile {
    match (v, d) {
        (0, 64) => tile(2, 64, 4),
        (0, 128) => tile(2, 32, 4),
        (0, _) => tile(1, 32, 4),
        (1, 256) => tile(1, 32, 8),
        (1, _) => tile(2, 32, 8),
        (2, 64) => tile(2, 32, 4),
        (2, 128) => tile(2, 16, 4),
        (2, _) => tile(1, 16, 4),
        (_, 256) => tile(1, 32, 8),
        (_, _) => tile(1, 64, 4),
    }
}

/// Dynamic shared memory of the forward: Q tile, double-buffered K/V tiles and, with rab, the
/// staged key timestamps (i64), pos_w slices and the ts_w table (hstu_attention_fwd_sm90.cu).
fn fwd_smem(t: Tile, d: usize, rab_buckets: Option<usize>) -> usize {
    let tiles = (t.rows + 4 * t.cols) * d * 2;
    match rab_buckets {
        None => tiles,
        Some(nb) => {
            let npp = (t.rows + t.cols - 1).div_ceil(4) * 4;
            tiles + 2 * t.cols * 8 + 2 * npp * 4 + (nb + 1) * 4
        }
    }
}

/// Which kernel family [`CudaDevice::hstu_attention_fwd`] and the dQ and dK/dV passes of
/// [`CudaDevice::hstu_attention_bwd`] launch.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum AttnImpl {
    /// The measured defaults, [`WGMMA_FWD_DEFAULT`], [`WGMMA_DQ_DEFAULT`] and
    /// [`WGMMA_DKDV_DEFAULT`], for the shapes
    /// the wgmma kernels support (no rab, head dim in [`WGMMA_HEAD_DIMS`]);
    /// `HSTU_ATTN_IMPL=mma|wgmma` in the environment overrides them.
    Auto,
    /// `mma.sync` m16n8k16 kernels (hstu_attention_{fwd,bwd}_sm90.cu), every shape and rab.
    Mma,
    /// Warpgroup MMA + TMA kernels (hstu_attention_wgmma_sm90.cu) for the forward, dQ and dK/dV where
    /// supported; other shapes (rab, D = 256) still run the `mma.sync` kernels.
    Wgmma,
}

/// Head dims with wgmma instantiations (D = 256 spills at the 288-thread register cap).
pub const WGMMA_HEAD_DIMS: [usize; 2] = [64, 128];
/// Measured on the H200 (BENCHMARKS-cuda.md, run h200_wgmma1): D = 128 N = 8192 full 501 vs
/// 194 TFLOP/s, every N and D = 64 faster too, same error as the mma.sync forward.
pub const WGMMA_FWD_DEFAULT: bool = true;
/// What [`AttnImpl::Auto`] picks for the dQ pass of supported shapes. Measured on the H200
/// (run h200_wgmma2): bwd 208 vs 158 TFLOP/s at N = 8192 D = 128 (fwd+bwd 251 vs 198), faster
/// at every N and for D = 64, same error.
pub const WGMMA_DQ_DEFAULT: bool = true;
/// What [`AttnImpl::Auto`] picks for the dK/dV pass of supported shapes (wgmma kernel with
/// 128 keys per block and setmaxnreg, or the `mma.sync` kernel). Measured on the H200 (run
/// h200_wgmma3): bwd 388 vs 208 TFLOP/s at N = 8192 D = 128 (fwd+bwd 392 vs 251), N = 2048
/// fwd+bwd 327 vs 213, faster at every N, full and jagged, and for D = 64; same error.
pub const WGMMA_DKDV_DEFAULT: bool = true;

static ATTN_IMPL: AtomicUsize = AtomicUsize::new(0);

/// Selects the kernel family of later launches (benchmarks compare them side by side).
pub fn set_attn_impl(i: AttnImpl) {
    ATTN_IMPL.store(
        match i {
            AttnImpl::Auto => 0,
            AttnImpl::Mma => 1,
            AttnImpl::Wgmma => 2,
        },
        Ordering::Relaxed,
    );
}

/// The kernel family selected now, `Auto` resolved through the environment.
pub fn attn_impl() -> AttnImpl {
    static ENV: OnceLock<AttnImpl> = OnceLock::new();
    match ATTN_IMPL.load(Ordering::Relaxed) {
        1 => AttnImpl::Mma,
        2 => AttnImpl::Wgmma,
        _ => *ENV.get_or_init(|| match std::env::var("HSTU_ATTN_IMPL").as_deref() {
            Ok("mma") => AttnImpl::Mma,
            Ok("wgmma") => AttnImpl::Wgmma,
            _ => AttnImpl::Auto,
        }),
    }
}

fn wgmma_supported(x: &AttentionInputs<'_>) -> bool {
    x.rab.is_none()
        && WGMMA_HEAD_DIMS.contains(&x.shape.head_dim)
        && x.shape.total_tokens < i32::MAX as usize / 2
}

/// True when the forward of `x` runs the wgmma kernel under the current selection.
pub fn fwd_uses_wgmma(x: &AttentionInputs<'_>) -> bool {
    wgmma_supported(x)
        && match attn_impl() {
            AttnImpl::Mma => false,
            AttnImpl::Wgmma => true,
            AttnImpl::Auto => WGMMA_FWD_DEFAULT,
        }
}

/// True when the dQ pass of the backward of `x` runs the wgmma kernel.
pub fn dq_uses_wgmma(x: &AttentionInputs<'_>) -> bool {
    wgmma_supported(x)
        && match attn_impl() {
            AttnImpl::Mma => false,
            AttnImpl::Wgmma => true,
            AttnImpl::Auto => WGMMA_DQ_DEFAULT,
        }
}

/// True when the dK/dV pass of the backward of `x` runs the wgmma kernel.
pub fn dkdv_uses_wgmma(x: &AttentionInputs<'_>) -> bool {
    wgmma_supported(x)
        && match attn_impl() {
            AttnImpl::Mma => false,
            AttnImpl::Wgmma => true,
            AttnImpl::Auto => WGMMA_DKDV_DEFAULT,
        }
}

/// Number of compiled wgmma forward variants (tile / pipeline depth, see [`wgmma_fwd_cfg`]).
pub const WGMMA_FWD_VARIANTS: usize = 3;
static WGMMA_VARIANT: AtomicUsize = AtomicUsize::new(DEFAULT_VARIANT);
/// Selects the wgmma forward variant of later launches: `0..WGMMA_FWD_VARIANTS` pins one for
/// every head dim, anything larger ([`DEFAULT_VARIANT`]) restores the per-D defaults.
pub fn set_wgmma_fwd_variant(v: usize) {
    WGMMA_VARIANT.store(v, Ordering::Relaxed);
}
/// Per-D default: D = 64 runs variant 2 (BN 64, 4 stages: 386 vs 285 TFLOP/s for variant 0 at
/// N = 8192), D = 128 variant 0 (501 vs 492 / 396).
fn wgmma_fwd_variant(d: usize) -> usize {
    match WGMMA_VARIANT.load(Ordering::Relaxed) {
        v if v < WGMMA_FWD_VARIANTS => v,
        _ if d == 64 => 2,
        _ => 0,
    }
}

/// (key tile, pipeline stages) of the wgmma forward variant `v`; mirror of the instantiation
/// list at the end of csrc/hstu_attention_wgmma_sm90.cu. Query tile: 128 rows, 288 threads.
fn wgmma_fwd_cfg(d: usize, v: usize) -> (usize, usize) {
    match (v, d) {
        (0, 64) => (128, 3),
        (0, _) => (128, 2),
        (1, 64) => (128, 4),
        (1, _) => (128, 3),
        (_, _) => (64, 4),
    }
}
const WGMMA_FWD_ROWS: usize = 128;
const WGMMA_FWD_THREADS: u32 = 288;
/// Dynamic shared memory of the wgmma forward (`wg_fwd_smem` in the .cu file).
fn wgmma_fwd_smem(d: usize, v: usize) -> usize {
    let (bn, ns) = wgmma_fwd_cfg(d, v);
    WGMMA_FWD_ROWS * d * 2 + ns * 2 * bn * d * 2 + 1024
}

/// Key tile and stages of the wgmma dQ kernel (instantiation list of the .cu file).
const WGMMA_DQ_CFG: (usize, usize) = (64, 4);
fn wgmma_dq_smem(d: usize) -> usize {
    let (bn, ns) = WGMMA_DQ_CFG;
    2 * WGMMA_FWD_ROWS * d * 2 + ns * 2 * bn * d * 2 + 1024
}

/// Keys per block, threads (2 consumer warpgroups + producer warpgroup) of the wgmma dK/dV kernel.
const WGMMA_DKDV_KEYS: usize = 128;
const WGMMA_DKDV_THREADS: u32 = 384;
/// (query tile, stages) of the wgmma dK/dV kernel (instantiation list of the .cu file).
fn wgmma_dkdv_cfg(d: usize) -> (usize, usize) {
    if d == 64 { (64, 4) } else { (64, 3) }
}
/// Dynamic shared memory of the wgmma dK/dV kernel (`wg_dkdv_smem` in the .cu file).
fn wgmma_dkdv_smem(d: usize) -> usize {
    let (bm, ns) = wgmma_dkdv_cfg(d);
    2 * WGMMA_DKDV_KEYS * d * 2 + ns * 2 * bm * d * 2 + 1024
}

/// `CUtensorMap` (128 opaque bytes) passed by value to the wgmma kernels.
#[repr(C, align(128))]
#[derive(Clone, Copy)]
struct TmaDesc([u64; 16]);
// SAFETY: plain bytes with the size and alignment of CUDA 13's CUtensorMap.
unsafe impl DeviceRepr for TmaDesc {}

/// Tensor map of a row-major bf16 `[rows, cols]` matrix at device address `ptr`, loaded in
/// boxes of `box_rows` x 64 columns (128 bytes) with the 128-byte swizzle the wgmma
/// descriptors expect; rows past the end read as zeros.
fn tma_desc_bf16(ptr: u64, rows: usize, cols: usize, box_rows: usize) -> Result<TmaDesc> {
    let mut m = sys::CUtensorMap { opaque: [0; 16] };
    let dims = [cols as u64, rows as u64];
    let strides = [(cols * 2) as u64];
    let boxd = [64u32, box_rows as u32];
    let elem = [1u32, 1];
    // SAFETY: every pointer is to a live local array of the rank the call is told (2).
    unsafe {
        sys::cuTensorMapEncodeTiled(
            &mut m,
            sys::CUtensorMapDataType::CU_TENSOR_MAP_DATA_TYPE_BFLOAT16,
            2,
            ptr as *mut std::ffi::c_void,
            dims.as_ptr(),
            strides.as_ptr(),
            boxd.as_ptr(),
            elem.as_ptr(),
            sys::CUtensorMapInterleave::CU_TENSOR_MAP_INTERLEAVE_NONE,
            sys::CUtensorMapSwizzle::CU_TENSOR_MAP_SWIZZLE_128B,
            sys::CUtensorMapL2promotion::CU_TENSOR_MAP_L2_PROMOTION_L2_256B,
            sys::CUtensorMapFloatOOBfill::CU_TENSOR_MAP_FLOAT_OOB_FILL_NONE,
        )
    }
    .result()
    .map_err(drv("cuTensorMapEncodeTiled"))?;
    Ok(TmaDesc(m.opaque))
}

/// Shape of one jagged attention call.
#[derive(Clone, Copy, Debug)]
pub struct AttentionShape {
    /// Number of sequences b.
    pub batch: usize,
    /// Heads h.
    pub heads: usize,
    /// Head dim d of q, k and v (kernel dim, see [`SUPPORTED_HEAD_DIMS`]).
    pub head_dim: usize,
    /// Sum of the sequence lengths.
    pub total_tokens: usize,
    /// Longest sequence of the batch (sizes the grid).
    pub max_len: usize,
}

/// Scalars of the operator.
#[derive(Clone, Copy, Debug)]
pub struct AttentionOptions {
    /// Scale of `q . k` (research HSTU: 1, production-style: 1/sqrt(dqk)).
    pub alpha: f32,
    /// The normaliser n (research: N; production-style: max_seq_len of the batch).
    pub norm_n: f32,
    /// 0 = unlimited.
    pub max_attn_len: usize,
}

/// Relative attention bias of one layer (hstu-spec section 1) on the device.
pub struct RabTensors<'a> {
    /// N of `pos_w` (`2N - 1` entries); every sequence must have `L <= N`.
    pub n: usize,
    /// `ts_w` has `num_buckets + 1` entries.
    pub num_buckets: usize,
    /// 0.301 for the log buckets.
    pub bucket_divisor: f32,
    /// `[2N - 1]`.
    pub pos_w: &'a CudaSlice<f32>,
    /// `[num_buckets + 1]`.
    pub ts_w: &'a CudaSlice<f32>,
    /// `[total_tokens]` unix seconds.
    pub timestamps: &'a CudaSlice<i64>,
    /// `[total_tokens]` the next token's time (`t_{i+1}`, `t_q` for the last/candidate rows).
    pub t_next: &'a CudaSlice<i64>,
}

/// Gradients of the relative bias, accumulated into (+=).
pub struct RabGrads<'a> {
    pub dpos_w: &'a mut CudaSlice<f32>,
    pub dts_w: &'a mut CudaSlice<f32>,
    /// Sum them in a fixed order, bitwise repeatable from run to run (the default sums through
    /// float atomics, whose order varies): every dS_ij is recomputed in f32 by
    /// `hstu_attention_rab_grad_det`, one warp per (sequence, head, 16 pos_w indices), and
    /// reduced by `hstu_attention_rab_grad_reduce`. Slower; dq/dk/dv are repeatable either way.
    pub deterministic: bool,
}

/// One wgmma backward kernel's launch: TMA box rows of q / dout and of k / v, rows per block.
struct WgmmaBwdPass {
    kernel: String,
    q_rows: usize,
    kv_rows: usize,
    block_rows: usize,
    threads: u32,
    smem: usize,
    what: &'static str,
}

/// Warps per block and pos_w indices per warp of `hstu_attention_rab_grad_det` (RG_WARPS,
/// RG_CHUNK in hstu_attention_bwd_sm90.cu).
const RG_WARPS: usize = 4;
const RG_CHUNK: usize = 16;

/// Everything the forward and backward read.
pub struct AttentionInputs<'a> {
    pub shape: AttentionShape,
    pub options: AttentionOptions,
    pub seq_offsets: &'a CudaSlice<i64>,
    /// `[batch]` number of target (candidate) tokens at the end of each sequence.
    pub num_targets: Option<&'a CudaSlice<i64>>,
    pub rab: Option<RabTensors<'a>>,
    pub q: &'a CudaSlice<bf16>,
    pub k: &'a CudaSlice<bf16>,
    pub v: &'a CudaSlice<bf16>,
}

/// Gradients of q, k, v (written, not accumulated).
pub struct AttentionGradsDevice<'a> {
    pub dq: &'a mut CudaSlice<bf16>,
    pub dk: &'a mut CudaSlice<bf16>,
    pub dv: &'a mut CudaSlice<bf16>,
}

fn check_len<T>(op: &'static str, tensor: &'static str, s: &CudaSlice<T>, n: usize) -> Result<()> {
    if s.len() != n {
        return Err(CudaError::Shape {
            op,
            tensor,
            actual: s.len(),
            expected: n,
        });
    }
    Ok(())
}

impl AttentionInputs<'_> {
    fn validate(&self, op: &'static str) -> Result<()> {
        let s = &self.shape;
        if !SUPPORTED_HEAD_DIMS.contains(&s.head_dim) {
            return Err(CudaError::Unsupported {
                op,
                what: "head_dim",
                value: s.head_dim.to_string(),
            });
        }
        let n = s.total_tokens * s.heads * s.head_dim;
        check_len(op, "q", self.q, n)?;
        check_len(op, "k", self.k, n)?;
        check_len(op, "v", self.v, n)?;
        check_len(op, "seq_offsets", self.seq_offsets, s.batch + 1)?;
        if let Some(t) = self.num_targets {
            check_len(op, "num_targets", t, s.batch)?;
        }
        if let Some(r) = &self.rab {
            check_len(op, "pos_w", r.pos_w, 2 * r.n - 1)?;
            check_len(op, "ts_w", r.ts_w, r.num_buckets + 1)?;
            check_len(op, "timestamps", r.timestamps, s.total_tokens)?;
            check_len(op, "t_next", r.t_next, s.total_tokens)?;
            if s.max_len > r.n {
                return Err(CudaError::Invalid {
                    op,
                    msg: format!("max_len {} exceeds rab N {}", s.max_len, r.n),
                });
            }
        }
        if s.batch == 0 || s.max_len == 0 || s.batch > 65535 || s.heads > 65535 {
            return Err(CudaError::Invalid {
                op,
                msg: format!(
                    "batch {} / heads {} / max_len {}",
                    s.batch, s.heads, s.max_len
                ),
            });
        }
        Ok(())
    }
}

impl CudaDevice {
    fn attn_params(&self, x: &AttentionInputs<'_>) -> HstuAttnParams {
        let s = &x.shape;
        let mut p = HstuAttnParams {
            q: self.ptr(x.q),
            k: self.ptr(x.k),
            v: self.ptr(x.v),
            seq_offsets: self.ptr(x.seq_offsets),
            num_targets: x.num_targets.map_or(0, |t| self.ptr(t)),
            alpha: x.options.alpha,
            inv_n: 1.0 / x.options.norm_n,
            bucket_divisor: 0.301,
            batch: s.batch as i32,
            heads: s.heads as i32,
            head_dim: s.head_dim as i32,
            max_len: s.max_len as i32,
            max_attn_len: x.options.max_attn_len as i32,
            token_stride: (s.heads * s.head_dim) as i64,
            ..Default::default()
        };
        if let Some(r) = &x.rab {
            p.pos_w = self.ptr(r.pos_w);
            p.ts_w = self.ptr(r.ts_w);
            p.timestamps = self.ptr(r.timestamps);
            p.t_next = self.ptr(r.t_next);
            p.rab_n = r.n as i32;
            p.num_buckets = r.num_buckets as i32;
            p.bucket_divisor = r.bucket_divisor;
        }
        p
    }

    fn launch_attn(
        &self,
        stem: &'static str,
        name: &str,
        tile: Tile,
        smem: usize,
        p: &HstuAttnParams,
    ) -> Result<()> {
        let f = self.kernels.function(stem, name, smem)?;
        let cfg = LaunchConfig {
            grid_dim: (
                (p.max_len as usize).div_ceil(tile.rows) as u32,
                p.heads as u32,
                p.batch as u32,
            ),
            block_dim: (tile.warps as u32 * 32, 1, 1),
            shared_mem_bytes: smem as u32,
        };
        // SAFETY: the kernel takes exactly one HstuAttnParams by value; every pointer in it was
        // taken from a slice whose length `AttentionInputs::validate` checked.
        unsafe { self.stream.launch_builder(&f).arg(p).launch(cfg) }
            .map_err(drv("launch attention"))?;
        Ok(())
    }

    /// Forward: `out_i = sum_j valid(i,j) silu(alpha q_i.k_j + rab_ij) / n v_j` (hstu-spec 6).
    /// `out`: `[total_tokens, heads, head_dim]` bf16, fully written. Asynchronous.
    pub fn hstu_attention_fwd(
        &self,
        x: &AttentionInputs<'_>,
        out: &mut CudaSlice<bf16>,
    ) -> Result<()> {
        const OP: &str = "hstu_attention_fwd";
        x.validate(OP)?;
        let d = x.shape.head_dim;
        check_len(OP, "out", out, x.q.len())?;
        let mut p = self.attn_params(x);
        p.out = self.ptr_mut(out);
        // TMA needs 16-byte aligned tensors (true for whole allocations, not for every view)
        if fwd_uses_wgmma(x) && [p.q, p.k, p.v].iter().all(|a| a % 16 == 0) {
            return self.launch_fwd_wgmma(x, &p);
        }
        let t = fwd_tile(d);
        let smem = fwd_smem(t, d, x.rab.as_ref().map(|r| r.num_buckets));
        let rab = if x.rab.is_some() { "rab_" } else { "" };
        let v = suffix(fwd_variant(d));
        self.launch_attn(
            "hstu_attention_fwd_sm90",
            &format!("hstu_attention_fwd_{rab}d{d}{v}"),
            t,
            smem,
            &p,
        )
    }

    /// The wgmma + TMA forward (no rab; `p.out` set).
    fn launch_fwd_wgmma(&self, x: &AttentionInputs<'_>, p: &HstuAttnParams) -> Result<()> {
        let s = &x.shape;
        let d = s.head_dim;
        let v = wgmma_fwd_variant(d);
        let (bn, _) = wgmma_fwd_cfg(d, v);
        let cols = s.heads * d;
        let tq = tma_desc_bf16(p.q, s.total_tokens, cols, WGMMA_FWD_ROWS)?;
        let tk = tma_desc_bf16(p.k, s.total_tokens, cols, bn)?;
        let tv = tma_desc_bf16(p.v, s.total_tokens, cols, bn)?;
        let smem = wgmma_fwd_smem(d, v);
        let f = self.kernels.function(
            "hstu_attention_wgmma_sm90",
            &format!("hstu_attention_fwd_wgmma_d{d}{}", suffix(v)),
            smem,
        )?;
        let cfg = LaunchConfig {
            grid_dim: (
                s.max_len.div_ceil(WGMMA_FWD_ROWS) as u32,
                s.heads as u32,
                s.batch as u32,
            ),
            block_dim: (WGMMA_FWD_THREADS, 1, 1),
            shared_mem_bytes: smem as u32,
        };
        // SAFETY: the kernel takes (HstuAttnParams, CUtensorMap x 3) by value; the pointers in
        // p come from slices `validate` checked, the tensor maps cover exactly q, k and v.
        unsafe {
            self.stream
                .launch_builder(&f)
                .arg(p)
                .arg(&tq)
                .arg(&tk)
                .arg(&tv)
                .launch(cfg)
        }
        .map_err(drv("launch attention (wgmma)"))?;
        Ok(())
    }

    /// The wgmma + TMA dQ pass of the backward (no rab; `p.dq`, `p.dout` set).
    fn launch_dq_wgmma(&self, x: &AttentionInputs<'_>, p: &HstuAttnParams) -> Result<()> {
        let d = x.shape.head_dim;
        self.launch_bwd_wgmma(
            x,
            p,
            WgmmaBwdPass {
                kernel: format!("hstu_attention_bwd_dq_wgmma_d{d}"),
                q_rows: WGMMA_FWD_ROWS,
                kv_rows: WGMMA_DQ_CFG.0,
                block_rows: WGMMA_FWD_ROWS,
                threads: WGMMA_FWD_THREADS,
                smem: wgmma_dq_smem(d),
                what: "launch attention dq (wgmma)",
            },
        )
    }

    /// The wgmma + TMA dK/dV pass of the backward (no rab; `p.dk`, `p.dv`, `p.dout` set).
    fn launch_dkdv_wgmma(&self, x: &AttentionInputs<'_>, p: &HstuAttnParams) -> Result<()> {
        let d = x.shape.head_dim;
        self.launch_bwd_wgmma(
            x,
            p,
            WgmmaBwdPass {
                kernel: format!("hstu_attention_bwd_dkdv_wgmma_d{d}"),
                q_rows: wgmma_dkdv_cfg(d).0,
                kv_rows: WGMMA_DKDV_KEYS,
                block_rows: WGMMA_DKDV_KEYS,
                threads: WGMMA_DKDV_THREADS,
                smem: wgmma_dkdv_smem(d),
                what: "launch attention dkdv (wgmma)",
            },
        )
    }

    /// One wgmma + TMA backward pass: the kernel takes (HstuAttnParams, tensor maps of q, dout,
    /// k, v) and runs on (max_len / block_rows, heads, batch) blocks.
    fn launch_bwd_wgmma(
        &self,
        x: &AttentionInputs<'_>,
        p: &HstuAttnParams,
        pass: WgmmaBwdPass,
    ) -> Result<()> {
        let s = &x.shape;
        let cols = s.heads * s.head_dim;
        let tq = tma_desc_bf16(p.q, s.total_tokens, cols, pass.q_rows)?;
        let tdo = tma_desc_bf16(p.dout, s.total_tokens, cols, pass.q_rows)?;
        let tk = tma_desc_bf16(p.k, s.total_tokens, cols, pass.kv_rows)?;
        let tv = tma_desc_bf16(p.v, s.total_tokens, cols, pass.kv_rows)?;
        let f = self
            .kernels
            .function("hstu_attention_wgmma_sm90", &pass.kernel, pass.smem)?;
        let cfg = LaunchConfig {
            grid_dim: (
                s.max_len.div_ceil(pass.block_rows) as u32,
                s.heads as u32,
                s.batch as u32,
            ),
            block_dim: (pass.threads, 1, 1),
            shared_mem_bytes: pass.smem as u32,
        };
        // SAFETY: the kernel takes (HstuAttnParams, CUtensorMap x 4) by value; the pointers in
        // p come from slices `validate` checked, the tensor maps cover exactly q, dout, k, v.
        unsafe {
            self.stream
                .launch_builder(&f)
                .arg(p)
                .arg(&tq)
                .arg(&tdo)
                .arg(&tk)
                .arg(&tv)
                .launch(cfg)
        }
        .map_err(drv(pass.what))?;
        Ok(())
    }

    /// The relative-bias gradients of [`RabGrads::deterministic`]: `p` is the backward's
    /// parameter block (q, k, v, dout and the rab tables set).
    fn rab_grad_deterministic(&self, p: &HstuAttnParams, g: RabGrads<'_>) -> Result<()> {
        let nidx = 2 * p.rab_n as usize - 1;
        let nts = p.num_buckets as usize + 1;
        let bh = p.batch as usize * p.heads as usize;
        let warps = bh * nidx.div_ceil(RG_CHUNK);
        let mut part_pos = self.zeros::<f32>(bh * nidx)?;
        let mut part_ts = self.zeros::<f32>(warps * nts)?;
        let smem = RG_WARPS * nts * 4;
        let f = self.kernels.function(
            "hstu_attention_bwd_sm90",
            "hstu_attention_rab_grad_det",
            smem,
        )?;
        let cfg = LaunchConfig {
            grid_dim: (warps.div_ceil(RG_WARPS) as u32, 1, 1),
            block_dim: (RG_WARPS as u32 * 32, 1, 1),
            shared_mem_bytes: smem as u32,
        };
        // SAFETY: one HstuAttnParams by value (pointers checked by the caller) and two buffers
        // of [batch * heads * (2n - 1)] and [warps * (num_buckets + 1)] floats.
        unsafe {
            self.stream
                .launch_builder(&f)
                .arg(p)
                .arg(&mut part_pos)
                .arg(&mut part_ts)
                .launch(cfg)
        }
        .map_err(drv("launch attention rab_grad_det"))?;
        let f = self.kernels.function(
            "hstu_attention_bwd_sm90",
            "hstu_attention_rab_grad_reduce",
            0,
        )?;
        let (ni, nt, bh64, w64) = (nidx as i32, nts as i32, bh as i64, warps as i64);
        let cfg = LaunchConfig {
            grid_dim: ((nidx + nts).div_ceil(256) as u32, 1, 1),
            block_dim: (256, 1, 1),
            shared_mem_bytes: 0,
        };
        // SAFETY: the partial buffers above and the caller's checked dpos_w / dts_w.
        unsafe {
            self.stream
                .launch_builder(&f)
                .arg(&part_pos)
                .arg(&part_ts)
                .arg(g.dpos_w)
                .arg(g.dts_w)
                .arg(&ni)
                .arg(&nt)
                .arg(&bh64)
                .arg(&w64)
                .launch(cfg)
        }
        .map_err(drv("launch attention rab_grad_reduce"))?;
        Ok(())
    }

    /// Backward (deterministic for dq/dk/dv; the rab gradients use atomics unless
    /// [`RabGrads::deterministic`]): given `dout`,
    /// writes `dq`, `dk`, `dv` and adds the relative-bias gradients into `rab_grads`.
    pub fn hstu_attention_bwd(
        &self,
        x: &AttentionInputs<'_>,
        dout: &CudaSlice<bf16>,
        grads: AttentionGradsDevice<'_>,
        rab_grads: Option<RabGrads<'_>>,
    ) -> Result<()> {
        const OP: &str = "hstu_attention_bwd";
        x.validate(OP)?;
        let d = x.shape.head_dim;
        let n = x.q.len();
        check_len(OP, "dout", dout, n)?;
        check_len(OP, "dq", grads.dq, n)?;
        check_len(OP, "dk", grads.dk, n)?;
        check_len(OP, "dv", grads.dv, n)?;
        let mut p = self.attn_params(x);
        p.dout = self.ptr(dout);
        p.dq = self.ptr_mut(grads.dq);
        p.dk = self.ptr_mut(grads.dk);
        p.dv = self.ptr_mut(grads.dv);
        if let (Some(r), Some(g)) = (&x.rab, rab_grads) {
            check_len(OP, "dpos_w", g.dpos_w, 2 * r.n - 1)?;
            check_len(OP, "dts_w", g.dts_w, r.num_buckets + 1)?;
            if g.deterministic {
                // the dK/dV kernels skip their atomics (dpos_w null); the fixed-order pass sums
                self.rab_grad_deterministic(&p, g)?;
            } else {
                p.dpos_w = self.ptr_mut(g.dpos_w);
                p.dts_w = self.ptr_mut(g.dts_w);
            }
        }
        // dK/dV shared memory: tiles, plus with rab the dpos_w / dts_w histograms and one
        // [keys][BMQ + 1] dS^T scratch tile per warp.
        let dkdv_smem = |v: usize| {
            let t = dkdv_tile(v, d);
            let mut bytes = (2 * t.rows + 4 * t.cols) * d * 2;
            if x.rab.is_some() {
                let hist = 2 * p.rab_n as usize - 1 + p.num_buckets as usize + 1;
                bytes += (hist + t.rows * (t.cols + 1)) * 4;
            }
            bytes
        };
        // The preferred variant, else the first whose tiles leave room for a long rab's
        // histograms (e.g. D = 256 with N = 4096).
        const SMEM_MAX: usize = 227 * 1024;
        let preferred = bwd_variant(d);
        let bv = std::iter::once(preferred)
            .chain(0..TILE_VARIANTS)
            .find(|&v| dkdv_smem(v) <= SMEM_MAX)
            .ok_or_else(|| CudaError::Unsupported {
                op: OP,
                what: "rab N for the shared-memory gradient histogram",
                value: format!("N = {} needs {} bytes", p.rab_n, dkdv_smem(preferred)),
            })?;
        let (t, smem) = (dkdv_tile(bv, d), dkdv_smem(bv));
        let rab = if x.rab.is_some() { "rab_" } else { "" };
        let v = suffix(bv);
        let stem = "hstu_attention_bwd_sm90";
        if dkdv_uses_wgmma(x) && [p.q, p.k, p.v, p.dout].iter().all(|a| a % 16 == 0) {
            self.launch_dkdv_wgmma(x, &p)?;
        } else if dkdv_split(bv, d) {
            // Two passes keep the accumulators in registers; only the dK pass sums d_rab.
            self.launch_attn(
                stem,
                &format!("hstu_attention_bwd_dkdv_dk_{rab}d{d}{v}"),
                t,
                smem,
                &p,
            )?;
            self.launch_attn(
                stem,
                &format!("hstu_attention_bwd_dkdv_dv_{rab}d{d}{v}"),
                t,
                smem,
                &p,
            )?;
        } else {
            self.launch_attn(
                stem,
                &format!("hstu_attention_bwd_dkdv_{rab}d{d}{v}"),
                t,
                smem,
                &p,
            )?;
        }
        if dq_uses_wgmma(x) && [p.q, p.k, p.v, p.dout].iter().all(|a| a % 16 == 0) {
            return self.launch_dq_wgmma(x, &p);
        }
        let t = dq_tile(bv, d);
        let smem = (2 * t.rows + 4 * t.cols) * d * 2;
        self.launch_attn(
            stem,
            &format!("hstu_attention_bwd_dq_{rab}d{d}{v}"),
            t,
            smem,
            &p,
        )
    }
}

/// FLOPs of the forward as the public HSTU benchmarks count them (hstu-spec section 6):
/// `2 * h * (dqk + dv) * sum_b L_b^2 / 2`; backward = 2.5x, fwd+bwd = 3.5x.
pub fn hstu_attention_fwd_flops(seq_lens: &[usize], heads: usize, dqk: usize, dv: usize) -> f64 {
    let sq: f64 = seq_lens.iter().map(|&l| (l as f64) * (l as f64)).sum();
    2.0 * heads as f64 * (dqk + dv) as f64 * sq / 2.0
}
