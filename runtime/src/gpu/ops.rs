//! One function per WGSL kernel: the `#[repr(C)]` parameter block mirrored from the shader, the
//! bindings, and the grid. Shapes use the shaders' letters: T tokens, D embedding dim, H heads.

use super::cache::{BindRange, PipelineKey};
use super::context::GpuContext;
use super::record::{Recorder, groups, row_grid};
use crate::error::{Error, Result};
use bytemuck::{Pod, Zeroable};
use hstu_shaders::Variant;

/// Round up to a multiple of 4 (row strides of every activation buffer).
pub fn pad4(n: usize) -> usize {
    n.div_ceil(4) * 4
}

fn whole(b: &wgpu::Buffer) -> BindRange {
    BindRange::whole(b)
}

fn u32_of(n: usize, what: &str) -> Result<u32> {
    u32::try_from(n).map_err(|_| Error::Limit(format!("{what} = {n} does not fit a u32 index")))
}

#[repr(C)]
#[derive(Clone, Copy, Pod, Zeroable)]
struct EmbeddingParams {
    tokens: u32,
    dim: u32,
    stride: u32,
    item_lo: u32,
    item_hi: u32,
    scale: f32,
    _pad: [u32; 2],
}

/// One chunk of the item table in its own binding: ids `[lo, hi)`.
pub struct ItemChunk {
    pub buffer: wgpu::Buffer,
    pub lo: u32,
    pub hi: u32,
}

/// `out[t] = ItemEmb[id_t] * sqrt(D) + PosEmb[pos_t] (+ ActionEmb[a_t])`, `tokens = [ids | positions | actions]`.
#[allow(clippy::too_many_arguments)]
pub fn embedding(
    rec: &mut Recorder,
    tokens_buf: &wgpu::Buffer,
    tokens: usize,
    items: &[ItemChunk],
    pos_emb: &wgpu::Buffer,
    action_emb: &wgpu::Buffer,
    dim: usize,
    out: &wgpu::Buffer,
) -> Result<()> {
    let stride = pad4(dim);
    let key = PipelineKey::new("hstu_embedding", Variant::F32, "main");
    for chunk in items {
        let p = EmbeddingParams {
            tokens: u32_of(tokens, "tokens")?,
            dim: dim as u32,
            stride: stride as u32,
            item_lo: chunk.lo,
            item_hi: chunk.hi,
            scale: (dim as f32).sqrt(),
            _pad: [0; 2],
        };
        let t = tokens.max(1);
        let y = t.min(65535);
        let grid = (groups(stride, 64), y as u32, t.div_ceil(y) as u32);
        rec.dispatch(
            &key,
            &p,
            vec![
                (1, whole(tokens_buf)),
                (2, whole(&chunk.buffer)),
                (3, whole(pos_emb)),
                (4, whole(action_emb)),
                (5, whole(out)),
            ],
            grid,
        )?;
    }
    Ok(())
}

#[repr(C)]
#[derive(Clone, Copy, Pod, Zeroable)]
struct RowNormParams {
    rows: u32,
    cols: u32,
    stride: u32,
    eps: f32,
}

fn reduction_variant(rec: &Recorder) -> Variant {
    if rec.ctx.variant_unsupported(Variant::Subgroup).is_none() {
        Variant::Subgroup
    } else {
        Variant::F32
    }
}

/// `out = layer_norm(x)` row-wise over `cols` of rows with `stride` (padding columns zeroed).
pub fn layer_norm(
    rec: &mut Recorder,
    x: &wgpu::Buffer,
    out: &wgpu::Buffer,
    rows: usize,
    cols: usize,
    eps: f64,
) -> Result<()> {
    row_norm(rec, "hstu_layer_norm", x, out, rows, cols, eps)
}

/// `out [rows, cols] = x / max(||x||, eps)` row-wise, `x` with stride `pad4(cols)`.
pub fn l2_norm(
    rec: &mut Recorder,
    x: &wgpu::Buffer,
    out: &wgpu::Buffer,
    rows: usize,
    cols: usize,
    eps: f64,
) -> Result<()> {
    row_norm(rec, "hstu_l2_norm", x, out, rows, cols, eps)
}

/// One workgroup per row of a row-wise normalisation shader (`x`, `out` with stride `pad4(cols)`).
fn row_norm(
    rec: &mut Recorder,
    shader: &'static str,
    x: &wgpu::Buffer,
    out: &wgpu::Buffer,
    rows: usize,
    cols: usize,
    eps: f64,
) -> Result<()> {
    let p = RowNormParams {
        rows: u32_of(rows, "rows")?,
        cols: cols as u32,
        stride: pad4(cols) as u32,
        eps: eps as f32,
    };
    let key = PipelineKey::new(shader, reduction_variant(rec), "main");
    rec.dispatch(
        &key,
        &p,
        vec![(1, whole(x)), (2, whole(out))],
        row_grid(rows),
    )
}

#[repr(C)]
#[derive(Clone, Copy, Pod, Zeroable)]
struct GatingParams {
    rows: u32,
    cols: u32,
    u_stride: u32,
    u_row_offset: u32,
    y_stride: u32,
    eps: f32,
    _pad: [u32; 2],
}

/// `y = u * layer_norm(attn)`; `attn: [rows, cols]`, u = columns `[0, cols)` of `uvqk` rows from `u_row_offset`.
#[allow(clippy::too_many_arguments)]
pub fn gating(
    rec: &mut Recorder,
    attn: &wgpu::Buffer,
    uvqk: &wgpu::Buffer,
    y: &wgpu::Buffer,
    rows: usize,
    cols: usize,
    u_stride: usize,
    u_row_offset: usize,
    eps: f64,
) -> Result<()> {
    let p = GatingParams {
        rows: u32_of(rows, "rows")?,
        cols: cols as u32,
        u_stride: u_stride as u32,
        u_row_offset: u_row_offset as u32,
        y_stride: pad4(cols) as u32,
        eps: eps as f32,
        _pad: [0; 2],
    };
    let key = PipelineKey::new("hstu_gating", reduction_variant(rec), "main");
    rec.dispatch(
        &key,
        &p,
        vec![(1, whole(attn)), (2, whole(uvqk)), (3, whole(y))],
        row_grid(rows),
    )
}

#[repr(C)]
#[derive(Clone, Copy, Pod, Zeroable, Debug, Default)]
pub struct MatmulParams {
    pub m: u32,
    pub n: u32,
    pub k: u32,
    pub lda: u32,
    pub ldb: u32,
    pub ldc: u32,
    pub a_row_offset: u32,
    pub c_row_offset: u32,
    pub has_bias: u32,
    pub silu: u32,
    pub residual: u32,
    pub _pad: u32,
}

/// Workgroups the 128 x 128 register-tiled matmul should give at least (two per SM of a large
/// GPU); smaller products take `main_skinny` (4 x 64 outputs per workgroup, K split in 16 slices).
const MATMUL_MIN_GROUPS: usize = 256;

/// Whether an `m x n` product takes the skinny kernel. `HSTU_MATMUL_SKINNY=0|1` forces it (benchmarks).
pub fn matmul_is_skinny(m: usize, n: usize) -> bool {
    match std::env::var("HSTU_MATMUL_SKINNY").as_deref() {
        Ok("0") => false,
        Ok("1") => true,
        _ => m.div_ceil(128) * n.div_ceil(128) < MATMUL_MIN_GROUPS,
    }
}

/// Which matmul kernel of `hstu_matmul.wgsl` runs (F32 / F16 variants; CoopMatrix has one).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum MatmulKernel {
    /// [`matmul_is_skinny`] decides.
    Auto,
    /// 128 x 128 workgroup tiles, 8 x 8 outputs per invocation (`main`).
    Tiled,
    /// 4 rows x 64 columns per workgroup, K split over 16 slices (`main_skinny`).
    Skinny,
}

/// `c = epilogue(a @ b + bias) (+ c)`; `variant` F32, F16 (a, b f16) or CoopMatrix (a, b f16, dims multiples of 16/64).
pub fn matmul(
    rec: &mut Recorder,
    variant: Variant,
    p: &MatmulParams,
    a: &wgpu::Buffer,
    b: &wgpu::Buffer,
    bias: &wgpu::Buffer,
    c: &wgpu::Buffer,
) -> Result<()> {
    matmul_with(rec, variant, MatmulKernel::Auto, p, a, b, bias, c)
}

/// [`matmul`] with the kernel chosen by the caller.
#[allow(clippy::too_many_arguments)]
pub fn matmul_with(
    rec: &mut Recorder,
    variant: Variant,
    kernel: MatmulKernel,
    p: &MatmulParams,
    a: &wgpu::Buffer,
    b: &wgpu::Buffer,
    bias: &wgpu::Buffer,
    c: &wgpu::Buffer,
) -> Result<()> {
    let skinny = match kernel {
        MatmulKernel::Auto => matmul_is_skinny(p.m as usize, p.n as usize),
        MatmulKernel::Tiled => false,
        MatmulKernel::Skinny => true,
    };
    let (key, grid) = match variant {
        Variant::CoopMatrix => {
            let sg = rec.ctx.coop_subgroup_size().ok_or_else(|| {
                Error::Gpu("cooperative matrices need a fixed subgroup size".into())
            })?;
            if !p.k.is_multiple_of(16) || !p.lda.is_multiple_of(16) || !p.ldb.is_multiple_of(16) {
                return Err(Error::Input(format!(
                    "coop matmul needs k, lda, ldb multiples of 16, got {p:?}"
                )));
            }
            (
                PipelineKey::new("hstu_matmul", variant, "main").with("SG", sg as f64),
                (groups(p.n as usize, 64), groups(p.m as usize, 64), 1),
            )
        }
        _ if skinny => (
            PipelineKey::new("hstu_matmul", variant, "main_skinny"),
            (groups(p.n as usize, 64), groups(p.m as usize, 4), 1),
        ),
        _ => (
            PipelineKey::new("hstu_matmul", variant, "main"),
            (groups(p.n as usize, 128), groups(p.m as usize, 128), 1),
        ),
    };
    if !p.lda.is_multiple_of(4)
        || !p.ldb.is_multiple_of(4)
        || !p.ldc.is_multiple_of(4)
        || !p.n.is_multiple_of(4)
        || !p.k.is_multiple_of(4)
    {
        return Err(Error::Input(format!(
            "matmul strides must be multiples of 4: {p:?}"
        )));
    }
    rec.dispatch(
        &key,
        p,
        vec![
            (1, whole(a)),
            (2, whole(b)),
            (3, whole(bias)),
            (4, whole(c)),
        ],
        grid,
    )
}

#[repr(C)]
#[derive(Clone, Copy, Pod, Zeroable, Debug, Default)]
pub struct AttentionParams {
    pub batch: u32,
    pub heads: u32,
    pub dqk: u32,
    pub dv: u32,
    pub q_offset: u32,
    pub k_offset: u32,
    pub v_offset: u32,
    pub q_stride: u32,
    pub k_stride: u32,
    pub v_stride: u32,
    pub out_stride: u32,
    pub q_begin: u32,
    pub alpha: f32,
    pub inv_n: f32,
    pub max_attn_len: u32,
    pub has_rab: u32,
    pub rab_n: u32,
    pub num_buckets: u32,
    pub bucket_divisor: f32,
    pub num_targets_base: u32,
    pub thresholds_base: u32,
    pub times_key_base: u32,
    pub _pad: [u32; 2],
}

/// Buffers of one attention call.
pub struct AttentionBuffers<'b> {
    /// `[seq_offsets B+1 | num_targets B | thresholds buckets+1]`
    pub meta: &'b wgpu::Buffer,
    pub q: &'b wgpu::Buffer,
    pub k: &'b wgpu::Buffer,
    pub v: &'b wgpu::Buffer,
    /// `[pos_w 2N-1 | ts_w buckets+1]` (any non-empty buffer when `has_rab == 0`)
    pub rab_w: &'b wgpu::Buffer,
    /// `[t_next T | t_key T]` i32 (any non-empty buffer when `has_rab == 0`)
    pub times: &'b wgpu::Buffer,
    pub out: &'b wgpu::Buffer,
    /// Capture variant only: `[H, L, L]`, zeroed.
    pub capture: Option<&'b wgpu::Buffer>,
}

/// Which attention kernel a call runs. The runtime passes [`AttentionKernel::Auto`] (the fastest
/// measured form for the variant and shape); benchmarks name the others to compare them in one run.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum AttentionKernel {
    /// `main_small` for heads <= 32, else [`AttentionKernel::AUTO_TILED`] (f32 / f16 / capture;
    /// [`AttentionKernel::AUTO_TILED_UNALIGNED`] when a stride, offset or head dim is not a multiple
    /// of 4); [`AttentionKernel::AUTO_COOP`] for `Variant::CoopMatrix`.
    Auto,
    /// `main`: 64 x 64 blocks, S 4 x 4 and O 4 x 8 per invocation; `qc` q/k columns and `vc` keys
    /// of v staged per step (each in 4, 8, 16, 32).
    Tiled { qc: u32, vc: u32 },
    /// `main_big`: 8 `ty` query rows x `bk` keys (64 or 32), 16 x `ty` invocations (`ty` in 8, 16),
    /// S 8 x 4 (`bk` = 64) or 4 x 4 (32) and O 8 x 8 per invocation; `qc`, `vc` as for `Tiled`
    /// (`vc` <= `bk`, `ty` / 2 <= `vc` <= 2 `ty`; the tiles must fit 48 KiB); `pf`: the next q / k / v
    /// chunk is loaded into registers during the current chunk's products.
    Big {
        ty: u32,
        bk: u32,
        qc: u32,
        vc: u32,
        pf: bool,
    },
    /// Cooperative-matrix `main`: one subgroup per 32 query rows, k and v from global memory.
    Coop,
    /// Cooperative-matrix `main_long`: one subgroup per `rs` query rows (16, 32), `lk` keys per
    /// step (32, 64), 1 / n applied to the output; `silu` form of unmasked blocks: 0 exact (f32),
    /// 1 tanh (f32), 2 tanh (f16); `qreg`: the q fragments are read from global memory every block
    /// (0), kept in registers (1) or staged once in workgroup memory (2);
    /// `vpre` (`lk` = 32): a block's v fragments are loaded before its silu phase.
    CoopLong {
        lk: u32,
        silu: u32,
        rs: u32,
        qreg: u32,
        vpre: bool,
    },
}

impl AttentionKernel {
    /// The register-tiled form `Auto` picks for heads > 32. H200, N = 8192, D = 128
    /// (`runtime/BENCHMARKS-gpu.md`): 24.4 TFLOP/s with the default `bounds` checks (19.5 with
    /// loop bounding; without `pf` 18.9 then); `Tiled { 32, 32 }` 12.4.
    pub const AUTO_TILED: AttentionKernel = AttentionKernel::Big {
        ty: 16,
        bk: 64,
        qc: 16,
        vc: 16,
        pf: true,
    };
    /// What `Auto` picks instead when q, k, v cannot be read as vectors of 4.
    pub const AUTO_TILED_UNALIGNED: AttentionKernel = AttentionKernel::Tiled { qc: 32, vc: 32 };
    /// The cooperative-matrix form `Auto` picks (for dqk <= 128). H200, N = 8192, D = 128
    /// (`runtime/BENCHMARKS-gpu.md`, session 4): 59.3 TFLOP/s (56.6 before the vec4 tiles); then,
    /// q from global memory (`qreg` 0) 38.7, staged in workgroup memory (2) 27.5, with `vpre` 51,
    /// `rs` = 16 34, `lk` = 64 37, `Coop` (`main`) 30.6.
    pub const AUTO_COOP: AttentionKernel = AttentionKernel::CoopLong {
        lk: 32,
        silu: 0,
        rs: 32,
        qreg: 1,
        vpre: false,
    };

    /// Short name for tables (`big_ty16_bk64_qc16_vc16_pf`, `coop_long_lk32_silu0`, ...).
    pub fn name(self) -> String {
        match self {
            AttentionKernel::Auto => "auto".into(),
            AttentionKernel::Tiled { qc, vc } => format!("tiled_qc{qc}_vc{vc}"),
            AttentionKernel::Big { ty, bk, qc, vc, pf } => format!(
                "big_ty{ty}_bk{bk}_qc{qc}_vc{vc}{}",
                if pf { "_pf" } else { "" }
            ),
            AttentionKernel::Coop => "coop".into(),
            AttentionKernel::CoopLong {
                lk,
                silu,
                rs,
                qreg,
                vpre,
            } => format!(
                "coop_long_lk{lk}_silu{silu}{}{}{}",
                if rs == 32 {
                    String::new()
                } else {
                    format!("_rs{rs}")
                },
                ["", "_q", "_qs"][qreg.min(2) as usize],
                if vpre { "_vp" } else { "" }
            ),
        }
    }
}

impl std::str::FromStr for AttentionKernel {
    type Err = Error;

    /// The inverse of [`AttentionKernel::name`].
    fn from_str(text: &str) -> Result<Self> {
        let bad = || Error::Input(format!("unknown attention kernel `{text}`"));
        let fields: Vec<&str> = text.split('_').collect();
        // The number after `prefix` in the field that starts with it.
        let num = |prefix: &str| -> Result<u32> {
            fields
                .iter()
                .find_map(|f| f.strip_prefix(prefix).and_then(|x| x.parse().ok()))
                .ok_or_else(bad)
        };
        match fields.first().copied() {
            Some("auto") => Ok(AttentionKernel::Auto),
            Some("tiled") => Ok(AttentionKernel::Tiled {
                qc: num("qc")?,
                vc: num("vc")?,
            }),
            Some("big") => Ok(AttentionKernel::Big {
                ty: num("ty")?,
                bk: num("bk")?,
                qc: num("qc")?,
                vc: num("vc")?,
                pf: fields.contains(&"pf"),
            }),
            Some("coop") if fields.len() == 1 => Ok(AttentionKernel::Coop),
            Some("coop") if fields.get(1) == Some(&"long") => Ok(AttentionKernel::CoopLong {
                lk: num("lk")?,
                silu: num("silu")?,
                rs: if fields.iter().any(|f| f.starts_with("rs")) {
                    num("rs")?
                } else {
                    32
                },
                qreg: if fields.contains(&"qs") {
                    2
                } else {
                    u32::from(fields.contains(&"q"))
                },
                vpre: fields.contains(&"vp"),
            }),
            _ => Err(bad()),
        }
    }
}

/// What `Auto` runs for heads > 32: `HSTU_ATTENTION_KERNEL=<name>` (any register-tiled form, for
/// tests and benchmarks), else `Tiled` with the chunks of `HSTU_ATTENTION_CHUNKS=QC,VC`, else
/// [`AttentionKernel::AUTO_TILED`] where its grid for this dispatch has at least
/// [`BIG_MIN_WORKGROUPS`] workgroups and `AUTO_TILED_UNALIGNED` below. A `Big` form falls back to
/// `AUTO_TILED_UNALIGNED` on layouts it cannot read as vectors or tiles the adapter cannot hold.
fn auto_tiled(rec: &Recorder, p: &AttentionParams, max_rows: usize) -> Result<AttentionKernel> {
    let chunks = std::env::var("HSTU_ATTENTION_CHUNKS").ok().and_then(|v| {
        let (a, b) = v.split_once(',')?;
        Some((a.trim().parse::<u32>().ok()?, b.trim().parse::<u32>().ok()?))
    });
    let kernel = if let Ok(name) = std::env::var("HSTU_ATTENTION_KERNEL") {
        name.parse()?
    } else if let Some((qc, vc)) = chunks {
        AttentionKernel::Tiled { qc, vc }
    } else {
        let big = AttentionKernel::AUTO_TILED;
        let groups =
            max_rows.max(1).div_ceil(tiled_rows(big)) * p.heads as usize * p.batch as usize;
        if groups >= BIG_MIN_WORKGROUPS {
            big
        } else {
            AttentionKernel::AUTO_TILED_UNALIGNED
        }
    };
    Ok(match kernel {
        AttentionKernel::Big { .. } if !vec4_layout(p) || !kernel.fits(rec.ctx) => {
            AttentionKernel::AUTO_TILED_UNALIGNED
        }
        k => k,
    })
}

/// Heads small enough for `main_small` (dqk, dv <= 32); `HSTU_ATTENTION_SMALL=0` turns it off (benchmarks).
fn small_heads(p: &AttentionParams) -> bool {
    p.dqk <= 32 && p.dv <= 32 && std::env::var("HSTU_ATTENTION_SMALL").as_deref() != Ok("0")
}

const CHUNKS: [u32; 4] = [4, 8, 16, 32];

/// `Auto` takes `main_big` (128 query rows per workgroup) only when that gives at least this many
/// workgroups, else `main` (64 rows): on the H200 (run 5 of `runtime/BENCHMARKS-gpu.md`) the
/// M-FALCON rows, one 2,048-token history with 4 heads (64 `main_big` workgroups) and 1,024
/// candidates (32), ran 25-30% slower on `main_big` than on `main`, while the 8,192-token
/// benchmark batch (2,048 workgroups) runs 1.6x faster and 16,384 candidates (512) 5% faster.
const BIG_MIN_WORKGROUPS: usize = 512;

/// Can `main_big` read q, k, v of `p` as vectors of 4 (strides, offsets, head dims multiples of 4)?
fn vec4_layout(p: &AttentionParams) -> bool {
    [
        p.q_stride, p.k_stride, p.v_stride, p.q_offset, p.k_offset, p.v_offset, p.dqk, p.dv,
    ]
    .iter()
    .all(|x| x.is_multiple_of(4))
}

/// Workgroup memory of a `main_big` form in bytes: bk (2 ty + 1) a_ij vec4, then q + k or v.
fn big_workgroup_bytes(ty: u32, bk: u32, qc: u32, vc: u32) -> u32 {
    let staging = (qc * (8 * ty + bk) / 4).max(32 * vc);
    16 * (bk * (2 * ty + 1) + staging)
}

impl AttentionKernel {
    /// Does this form fit the workgroup memory of `ctx`'s adapter? Only `Big` forms can fail
    /// (llvmpipe's GL adapter offers 32 KiB, less than the default form's 45 KiB); `Auto` then
    /// runs `main` instead and a named form is an [`Error::Limit`].
    pub fn fits(self, ctx: &GpuContext) -> bool {
        match self {
            AttentionKernel::Big { ty, bk, qc, vc, .. } => {
                big_workgroup_bytes(ty, bk, qc, vc)
                    <= ctx.limits().max_compute_workgroup_storage_size
            }
            _ => true,
        }
    }
}

/// Query rows per workgroup of a register-tiled form (`main_big`: 8 `ty`; `main`: 64).
fn tiled_rows(kernel: AttentionKernel) -> usize {
    match kernel {
        AttentionKernel::Big { ty, .. } => 8 * ty as usize,
        _ => 64,
    }
}

/// Pipeline key and query rows per workgroup of a register-tiled kernel (`Tiled`, `Big`).
fn tiled_pipeline(
    rec: &Recorder,
    variant: Variant,
    kernel: AttentionKernel,
    p: &AttentionParams,
) -> Result<(PipelineKey, usize)> {
    match kernel {
        AttentionKernel::Tiled { qc, vc } if CHUNKS.contains(&qc) && CHUNKS.contains(&vc) => Ok((
            PipelineKey::new("hstu_attention", variant, "main")
                .with("QC", qc as f64)
                .with("VC", vc as f64),
            tiled_rows(kernel),
        )),
        AttentionKernel::Big { ty, bk, qc, vc, pf }
            if (ty == 8 || ty == 16)
                && (bk == 32 || bk == 64)
                && CHUNKS.contains(&qc)
                && CHUNKS.contains(&vc)
                && vc <= bk
                && 2 * vc >= ty
                && vc <= 2 * ty
                && qc >= 8
                && qc * bk >= 64 * ty =>
        {
            if !vec4_layout(p) {
                return Err(Error::Input(format!(
                    "attention {}: strides, offsets and head dims must be multiples of 4",
                    kernel.name()
                )));
            }
            let bytes = big_workgroup_bytes(ty, bk, qc, vc);
            if bytes > 48 * 1024 {
                return Err(Error::Input(format!(
                    "attention {}: tiles exceed 48 KiB of workgroup memory",
                    kernel.name()
                )));
            }
            if !kernel.fits(rec.ctx) {
                return Err(Error::Limit(format!(
                    "attention {}: {bytes} bytes of workgroup memory, {} has {}",
                    kernel.name(),
                    rec.ctx.info.name,
                    rec.ctx.limits().max_compute_workgroup_storage_size
                )));
            }
            Ok((
                PipelineKey::new("hstu_attention", variant, "main_big")
                    .with("TY", ty as f64)
                    .with("BKB", bk as f64)
                    .with("PREFETCH", if pf { 1.0 } else { 0.0 })
                    .with("QC", qc as f64)
                    .with("VC", vc as f64),
                tiled_rows(kernel),
            ))
        }
        _ => Err(Error::Input(format!(
            "attention {}: not a register-tiled form for {}",
            kernel.name(),
            variant.name()
        ))),
    }
}

/// Pipeline key and query rows per workgroup of a cooperative-matrix kernel.
fn coop_pipeline(
    rec: &Recorder,
    kernel: AttentionKernel,
    p: &AttentionParams,
) -> Result<(PipelineKey, usize)> {
    let sg = rec
        .ctx
        .coop_subgroup_size()
        .ok_or_else(|| Error::Gpu("cooperative matrices need a fixed subgroup size".into()))?;
    if !p.dqk.is_multiple_of(16) || !p.dv.is_multiple_of(16) || p.dv > 128 {
        return Err(Error::Input(format!(
            "coop attention needs dqk, dv multiples of 16 and dv <= 128, got {} / {}",
            p.dqk, p.dv
        )));
    }
    let key = |entry| {
        PipelineKey::new("hstu_attention", Variant::CoopMatrix, entry).with("SG", sg as f64)
    };
    match kernel {
        // `main_long` unrolls its score products over at most 8 column chunks.
        AttentionKernel::Auto if p.dqk > 128 => coop_pipeline(rec, AttentionKernel::Coop, p),
        AttentionKernel::Auto => coop_pipeline(rec, AttentionKernel::AUTO_COOP, p),
        AttentionKernel::Coop => Ok((key("main"), 32)),
        AttentionKernel::CoopLong { .. } if p.dqk > 128 => Err(Error::Input(format!(
            "attention {}: dqk {} > 128",
            kernel.name(),
            p.dqk
        ))),
        AttentionKernel::CoopLong {
            lk,
            silu,
            rs,
            qreg,
            vpre,
        } if (lk == 32 || lk == 64)
            && silu <= 2
            && (rs == 16 || rs == 32)
            && qreg <= 2
            && (!vpre || lk == 32) =>
        {
            Ok((
                key("main_long")
                    .with("LK", lk as f64)
                    .with("SILU_FORM", silu as f64)
                    .with("RS", rs as f64)
                    .with("QREG", qreg as f64)
                    .with("VPRE", if vpre { 1.0 } else { 0.0 })
                    .with("QKT", (p.dqk / 16) as f64)
                    .with("VT", (p.dv / 16) as f64),
                rs as usize,
            ))
        }
        _ => Err(Error::Input(format!(
            "attention {}: not a cooperative-matrix form",
            kernel.name()
        ))),
    }
}

/// Fused attention over `max_rows = max_b (L_b - q_begin)` query rows per sequence.
pub fn attention(
    rec: &mut Recorder,
    variant: Variant,
    p: &AttentionParams,
    bufs: &AttentionBuffers,
    max_rows: usize,
) -> Result<()> {
    attention_with(rec, variant, AttentionKernel::Auto, p, bufs, max_rows)
}

/// [`attention`] with the kernel named (`Auto` = what [`attention`] runs).
pub fn attention_with(
    rec: &mut Recorder,
    variant: Variant,
    kernel: AttentionKernel,
    p: &AttentionParams,
    bufs: &AttentionBuffers,
    max_rows: usize,
) -> Result<()> {
    let mut list = vec![
        (1, whole(bufs.meta)),
        (2, whole(bufs.q)),
        (3, whole(bufs.k)),
        (4, whole(bufs.v)),
        (5, whole(bufs.rab_w)),
        (6, whole(bufs.times)),
        (7, whole(bufs.out)),
    ];
    if variant == Variant::Capture {
        let c = bufs
            .capture
            .ok_or_else(|| Error::Input("capture attention without a capture buffer".into()))?;
        if p.batch != 1 {
            return Err(Error::Input("capture attention runs one sequence".into()));
        }
        list.push((8, whole(c)));
    }
    let (key, bq) = match (variant, kernel) {
        (Variant::CoopMatrix, _) => coop_pipeline(rec, kernel, p)?,
        (_, AttentionKernel::Auto) if small_heads(p) => (
            PipelineKey::new("hstu_attention", variant, "main_small"),
            32,
        ),
        (_, AttentionKernel::Auto) => {
            tiled_pipeline(rec, variant, auto_tiled(rec, p, max_rows)?, p)?
        }
        _ => tiled_pipeline(rec, variant, kernel, p)?,
    };
    let grid = (groups(max_rows.max(1), bq), p.heads, p.batch);
    rec.dispatch(&key, p, list, grid)
}

#[repr(C)]
#[derive(Clone, Copy, Pod, Zeroable, Debug, Default)]
pub struct TopkParams {
    pub batch: u32,
    pub dim: u32,
    pub user_stride: u32,
    pub item_lo: u32,
    pub item_hi: u32,
    pub num_items: u32,
    pub k: u32,
    pub segments: u32,
    pub segment_base: u32,
    pub in_len: u32,
    pub eps: f32,
    pub tile_users: u32,
    pub seg: u32,
    pub keep: u32,
    pub chunk: u32,
    pub _pad: u32,
}

/// Entries sorted per workgroup by the top-K kernels (`SORT_N` of `hstu_topk.wgsl`) where the
/// adapter offers the workgroup memory (8 bytes per entry + 1 KiB), else [`SORT_N_SMALL`].
pub const SORT_N: usize = 4096;
pub const SORT_N_SMALL: usize = 2048;

/// `SORT_N` of the top-K kernels on this device.
pub fn topk_sort_n(rec: &Recorder) -> usize {
    sort_n_of(rec.ctx)
}

fn sort_n_of(ctx: &GpuContext) -> usize {
    let have = ctx.limits().max_compute_workgroup_storage_size as usize;
    if have >= SORT_N * 8 + 2048 {
        SORT_N
    } else {
        SORT_N_SMALL
    }
}

/// The largest k that [`top_k`] selects on this device (half a workgroup's sort); larger k go
/// through [`score_all`] and a selection on the host.
pub fn max_top_k(ctx: &GpuContext) -> usize {
    sort_n_of(ctx) / 2
}

/// The score `score_all` writes for an excluded item (`NONE_SCORE` of `hstu_topk.wgsl`); every
/// real score is in [-1, 1].
pub const NONE_SCORE: f32 = -3.0e38;

/// Every score `s_c` of the items of `chunk` for `batch` users ([`NONE_SCORE`] where the
/// id is 0, past `num_items` or in the user's history): `[batch, chunk.hi - chunk.lo]` f32, with
/// the arithmetic of [`top_k`]'s scoring.
#[allow(clippy::too_many_arguments)]
pub fn score_all(
    rec: &mut Recorder,
    users: &wgpu::Buffer,
    batch: usize,
    dim: usize,
    chunk: &ItemChunk,
    num_items: usize,
    history: &wgpu::Buffer,
    eps: f64,
) -> Result<wgpu::Buffer> {
    let rows = (chunk.hi - chunk.lo) as usize;
    let out = rec.scratch((batch * rows * 4).max(4) as u64)?;
    if rows == 0 || batch == 0 {
        return Ok(out);
    }
    let p = TopkParams {
        batch: u32_of(batch, "users")?,
        dim: dim as u32,
        user_stride: dim as u32,
        item_lo: chunk.lo,
        item_hi: chunk.hi,
        num_items: num_items as u32,
        eps: eps as f32,
        ..TopkParams::default()
    };
    let key = PipelineKey::new("hstu_topk", Variant::F32, "score_all");
    let groups = rows.div_ceil(TOPK_WG).min(65535);
    rec.tag("topk_score_all");
    rec.dispatch(
        &key,
        &p,
        vec![
            (1, whole(users)),
            (2, whole(&chunk.buffer)),
            (3, whole(history)),
            (4, whole(&out)),
        ],
        (groups as u32, u32_of(batch, "users")?, 1),
    )?;
    Ok(out)
}
/// Users per `score_topk` workgroup at most (`U` of `hstu_topk.wgsl`).
pub const TOPK_TILE_USERS: usize = 8;
/// Invocations of a top-K workgroup, = items scored per `score_topk` round (`WG`).
const TOPK_WG: usize = 256;
/// `score_topk` workgroups aimed for (user tiles x item chunks), enough to fill a large GPU.
const TOPK_TARGET_GROUPS: usize = 2048;

/// How `score_topk` tiles the work: users per workgroup, per-user sort segment, the head of it that
/// holds the running top k, and items per workgroup.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct TopkTiling {
    pub tile_users: usize,
    pub seg: usize,
    pub keep: usize,
    pub chunk: usize,
}

impl TopkTiling {
    /// Tiling for `batch` users, `k` <= `sort_n / 2` and `items` rows in all bindings: a segment
    /// holds the running top `keep` and at least one round (`TOPK_WG` items) of candidates.
    pub fn new(batch: usize, k: usize, items: usize, sort_n: usize, target_groups: usize) -> Self {
        let keep = k.next_power_of_two();
        let seg = (keep + TOPK_WG).next_power_of_two().min(sort_n);
        let tile_users = TOPK_TILE_USERS.min(sort_n / seg).min(batch.max(1));
        let tiles = batch.max(1).div_ceil(tile_users);
        let chunks = target_groups.max(1).div_ceil(tiles);
        let chunk = items.div_ceil(chunks).div_ceil(TOPK_WG).max(1) * TOPK_WG;
        TopkTiling {
            tile_users,
            seg,
            keep,
            chunk,
        }
    }
}

/// Top-`k` items per user over every chunk, history excluded; returns (scores, ids) buffers `[B, k]`.
/// Pass 1 (`score_topk`): a grid of user tiles x item chunks, each workgroup keeping its users'
/// top `k` of its chunk; pass 2 (`merge_topk`): per user, merges the chunks' lists.
#[allow(clippy::too_many_arguments)]
pub fn top_k(
    rec: &mut Recorder,
    users: &wgpu::Buffer,
    batch: usize,
    dim: usize,
    items: &[ItemChunk],
    num_items: usize,
    history: &wgpu::Buffer,
    k: usize,
    eps: f64,
) -> Result<(wgpu::Buffer, wgpu::Buffer)> {
    top_k_with_groups(
        rec,
        users,
        batch,
        dim,
        items,
        num_items,
        history,
        k,
        eps,
        TOPK_TARGET_GROUPS,
    )
}

/// [`top_k`] aiming at `target_groups` `score_topk` workgroups (few groups = many rounds per
/// workgroup, as on a large catalogue; tests use that on small ones).
#[allow(clippy::too_many_arguments)]
pub fn top_k_with_groups(
    rec: &mut Recorder,
    users: &wgpu::Buffer,
    batch: usize,
    dim: usize,
    items: &[ItemChunk],
    num_items: usize,
    history: &wgpu::Buffer,
    k: usize,
    eps: f64,
    target_groups: usize,
) -> Result<(wgpu::Buffer, wgpu::Buffer)> {
    let sort_n = topk_sort_n(rec);
    if k == 0 || k > sort_n / 2 {
        return Err(Error::Limit(format!(
            "gpu top-k needs 1 <= k <= {}, got {k}",
            sort_n / 2
        )));
    }
    let rows: usize = items.iter().map(|c| (c.hi - c.lo) as usize).sum();
    let tiling = TopkTiling::new(batch, k, rows, sort_n, target_groups);
    let chunk_groups: Vec<usize> = items
        .iter()
        .map(|c| ((c.hi - c.lo) as usize).div_ceil(tiling.chunk))
        .collect();
    let segments: usize = chunk_groups.iter().sum();
    let mut len = segments * k;
    let mut scores = rec.scratch((batch * len * 4) as u64)?;
    let mut ids = rec.scratch((batch * len * 4) as u64)?;
    let score_key =
        PipelineKey::new("hstu_topk", Variant::F32, "score_topk").with("SORT_N", sort_n as f64);
    let tiles = u32_of(batch.div_ceil(tiling.tile_users), "user tiles")?;
    let mut base = 0;
    rec.tag("topk_score");
    for (chunk, &g) in items.iter().zip(&chunk_groups) {
        if g == 0 {
            continue;
        }
        let p = TopkParams {
            batch: batch as u32,
            dim: dim as u32,
            user_stride: dim as u32,
            item_lo: chunk.lo,
            item_hi: chunk.hi,
            num_items: num_items as u32,
            k: k as u32,
            segments: segments as u32,
            segment_base: base as u32,
            in_len: 0,
            eps: eps as f32,
            tile_users: tiling.tile_users as u32,
            seg: tiling.seg as u32,
            keep: tiling.keep as u32,
            chunk: u32_of(tiling.chunk, "top-k chunk")?,
            _pad: 0,
        };
        rec.dispatch(
            &score_key,
            &p,
            vec![
                (1, whole(users)),
                (2, whole(&chunk.buffer)),
                (3, whole(history)),
                (4, whole(&scores)),
                (5, whole(&ids)),
            ],
            (tiles, u32_of(g, "item chunks")?, 1),
        )?;
        base += g;
    }
    let merge_key =
        PipelineKey::new("hstu_topk", Variant::F32, "merge_topk").with("SORT_N", sort_n as f64);
    let mut segs = segments;
    rec.tag("topk_merge");
    while segs > 1 {
        // Sort only as many entries as there are (a power of two, >= 2k since len >= 2k).
        let merge_n = len.min(sort_n).next_power_of_two();
        let out_segs = len.div_ceil(merge_n);
        let out_scores = rec.scratch((batch * out_segs * k * 4) as u64)?;
        let out_ids = rec.scratch((batch * out_segs * k * 4) as u64)?;
        let p = TopkParams {
            batch: batch as u32,
            k: k as u32,
            segments: out_segs as u32,
            in_len: len as u32,
            seg: merge_n as u32,
            ..TopkParams::default()
        };
        rec.dispatch(
            &merge_key,
            &p,
            vec![
                (4, whole(&out_scores)),
                (5, whole(&out_ids)),
                (6, whole(&scores)),
                (7, whole(&ids)),
            ],
            (out_segs as u32, batch as u32, 1),
        )?;
        scores = out_scores;
        ids = out_ids;
        segs = out_segs;
        len = out_segs * k;
    }
    Ok((scores, ids))
}

#[cfg(test)]
mod tests {
    use super::AttentionKernel;

    #[test]
    fn attention_kernel_names_round_trip() {
        let kernels = [
            AttentionKernel::Auto,
            AttentionKernel::Tiled { qc: 32, vc: 8 },
            AttentionKernel::AUTO_TILED,
            AttentionKernel::Big {
                ty: 8,
                bk: 32,
                qc: 16,
                vc: 8,
                pf: false,
            },
            AttentionKernel::Coop,
            AttentionKernel::AUTO_COOP,
            AttentionKernel::CoopLong {
                lk: 64,
                silu: 2,
                rs: 16,
                qreg: 1,
                vpre: false,
            },
            AttentionKernel::CoopLong {
                lk: 32,
                silu: 1,
                rs: 32,
                qreg: 2,
                vpre: true,
            },
        ];
        for k in kernels {
            let parsed: AttentionKernel = k.name().parse().unwrap();
            assert_eq!(parsed, k, "{}", k.name());
        }
        assert!("big_ty16".parse::<AttentionKernel>().is_err());
        assert!("coop_wide".parse::<AttentionKernel>().is_err());
    }
}
