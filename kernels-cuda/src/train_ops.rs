//! Kernels of the fused GPU training step (`csrc/train_ops.cu`), all asynchronous on the device
//! stream. Together with [`crate::elementwise`], [`crate::gemm`] and [`crate::attention`] they
//! are one HSTU layer's forward and backward (see the crate docs for the call order).
//!
//! Shapes: `tokens` rows; `pre [tokens, 2*H*dv + 2*H*dqk]` (columns u | v | q | k, head-major);
//! padded heads `[tokens, H, dk]` bf16 with `dk >= max(dqk, dv)`, padding left zero.

use crate::device::CudaDevice;
use crate::elementwise::{SampledSoftmax, check as need, grid as flat, row_grid as rows8};
use crate::error::{CudaError, Result, drv};
use cudarc::driver::{CudaSlice, LaunchConfig, PushKernelArg};
use half::bf16;

/// Head layout of one layer: `heads` heads of `dv` (values) and `dqk` (queries/keys) columns,
/// padded to the kernel head dim `dk`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct HeadDims {
    pub heads: usize,
    pub dv: usize,
    pub dqk: usize,
    pub dk: usize,
}

impl HeadDims {
    /// Width of the uvqk pre-activation row.
    pub fn uvqk(&self) -> usize {
        2 * self.heads * (self.dv + self.dqk)
    }
    pub fn hdv(&self) -> usize {
        self.heads * self.dv
    }
    /// Elements of one padded `[tokens, H, dk]` tensor.
    pub fn padded(&self, tokens: usize) -> usize {
        tokens * self.heads * self.dk
    }
}

const UNIT: &str = "train_ops";

impl CudaDevice {
    /// `u = silu(pre[:, u])` as f32 `[tokens, H*dv]`; q, k, v = silu of their columns as padded
    /// bf16 heads.
    #[allow(clippy::too_many_arguments)]
    pub fn uvqk_split_fwd(
        &self,
        hd: HeadDims,
        tokens: usize,
        pre: &CudaSlice<f32>,
        u: &mut CudaSlice<f32>,
        q: &mut CudaSlice<bf16>,
        k: &mut CudaSlice<bf16>,
        v: &mut CudaSlice<bf16>,
    ) -> Result<()> {
        const OP: &str = "uvqk_split_fwd";
        need(OP, "pre", pre.len(), tokens * hd.uvqk())?;
        need(OP, "u", u.len(), tokens * hd.hdv())?;
        for (t, x) in [("q", q.len()), ("k", k.len()), ("v", v.len())] {
            need(OP, t, x, hd.padded(tokens))?;
        }
        let f = self.kernels.function(UNIT, "hstu_uvqk_split_fwd", 0)?;
        let (t, h, dv, dqk, dk) = (
            tokens as i64,
            hd.heads as i32,
            hd.dv as i32,
            hd.dqk as i32,
            hd.dk as i32,
        );
        // SAFETY: arguments match hstu_uvqk_split_fwd; lengths checked above.
        unsafe {
            self.stream
                .launch_builder(&f)
                .arg(pre)
                .arg(u)
                .arg(q)
                .arg(k)
                .arg(v)
                .arg(&t)
                .arg(&h)
                .arg(&dv)
                .arg(&dqk)
                .arg(&dk)
                .launch(flat(hd.padded(tokens)))
        }
        .map_err(drv("launch uvqk_split_fwd"))?;
        Ok(())
    }

    /// `a = LN(attn)` per row (attn: padded bf16 heads), `y = dropout(u * a)`; writes `a`,
    /// `rstd [tokens]` and `y`, all f32 `[tokens, H*dv]` but `rstd`.
    #[allow(clippy::too_many_arguments)]
    pub fn attn_ln_gate_fwd(
        &self,
        hd: HeadDims,
        tokens: usize,
        attn: &CudaSlice<bf16>,
        u: &CudaSlice<f32>,
        a_ln: &mut CudaSlice<f32>,
        rstd: &mut CudaSlice<f32>,
        y: &mut CudaSlice<f32>,
        eps: f32,
        (rate, seed): (f32, u64),
    ) -> Result<()> {
        const OP: &str = "attn_ln_gate_fwd";
        need(OP, "attn", attn.len(), hd.padded(tokens))?;
        for (t, x) in [("u", u.len()), ("a_ln", a_ln.len()), ("y", y.len())] {
            need(OP, t, x, tokens * hd.hdv())?;
        }
        need(OP, "rstd", rstd.len(), tokens)?;
        let f = self.kernels.function(UNIT, "hstu_attn_ln_gate_fwd", 0)?;
        let (t, h, dv, dk) = (tokens as i32, hd.heads as i32, hd.dv as i32, hd.dk as i32);
        // SAFETY: arguments match hstu_attn_ln_gate_fwd; lengths checked above.
        unsafe {
            self.stream
                .launch_builder(&f)
                .arg(attn)
                .arg(u)
                .arg(a_ln)
                .arg(rstd)
                .arg(y)
                .arg(&t)
                .arg(&h)
                .arg(&dv)
                .arg(&dk)
                .arg(&eps)
                .arg(&rate)
                .arg(&seed)
                .launch(rows8(tokens))
        }
        .map_err(drv("launch attn_ln_gate_fwd"))?;
        Ok(())
    }

    /// Backward of [`Self::attn_ln_gate_fwd`]: writes the u columns of `d_pre` (through SiLU)
    /// and `d_attn` (padded bf16 heads; padding untouched).
    #[allow(clippy::too_many_arguments)]
    pub fn attn_ln_gate_bwd(
        &self,
        hd: HeadDims,
        tokens: usize,
        dy: &CudaSlice<f32>,
        u: &CudaSlice<f32>,
        a_ln: &CudaSlice<f32>,
        rstd: &CudaSlice<f32>,
        pre: &CudaSlice<f32>,
        d_pre: &mut CudaSlice<f32>,
        d_attn: &mut CudaSlice<bf16>,
        (rate, seed): (f32, u64),
    ) -> Result<()> {
        const OP: &str = "attn_ln_gate_bwd";
        for (t, x) in [("dy", dy.len()), ("u", u.len()), ("a_ln", a_ln.len())] {
            need(OP, t, x, tokens * hd.hdv())?;
        }
        need(OP, "rstd", rstd.len(), tokens)?;
        need(OP, "pre", pre.len(), tokens * hd.uvqk())?;
        need(OP, "d_pre", d_pre.len(), tokens * hd.uvqk())?;
        need(OP, "d_attn", d_attn.len(), hd.padded(tokens))?;
        let f = self.kernels.function(UNIT, "hstu_attn_ln_gate_bwd", 0)?;
        let (t, h, dv, dqk, dk) = (
            tokens as i32,
            hd.heads as i32,
            hd.dv as i32,
            hd.dqk as i32,
            hd.dk as i32,
        );
        // SAFETY: arguments match hstu_attn_ln_gate_bwd; lengths checked above.
        unsafe {
            self.stream
                .launch_builder(&f)
                .arg(dy)
                .arg(u)
                .arg(a_ln)
                .arg(rstd)
                .arg(pre)
                .arg(d_pre)
                .arg(d_attn)
                .arg(&t)
                .arg(&h)
                .arg(&dv)
                .arg(&dqk)
                .arg(&dk)
                .arg(&rate)
                .arg(&seed)
                .launch(rows8(tokens))
        }
        .map_err(drv("launch attn_ln_gate_bwd"))?;
        Ok(())
    }

    /// Writes the v, q, k columns of `d_pre`: the attention gradients (padded bf16 heads) times
    /// `silu'(pre)`.
    #[allow(clippy::too_many_arguments)]
    pub fn qkv_grad_to_pre(
        &self,
        hd: HeadDims,
        tokens: usize,
        dq: &CudaSlice<bf16>,
        dk: &CudaSlice<bf16>,
        dv: &CudaSlice<bf16>,
        pre: &CudaSlice<f32>,
        d_pre: &mut CudaSlice<f32>,
    ) -> Result<()> {
        const OP: &str = "qkv_grad_to_pre";
        for (t, x) in [("dq", dq.len()), ("dk", dk.len()), ("dv", dv.len())] {
            need(OP, t, x, hd.padded(tokens))?;
        }
        need(OP, "pre", pre.len(), tokens * hd.uvqk())?;
        need(OP, "d_pre", d_pre.len(), tokens * hd.uvqk())?;
        let f = self.kernels.function(UNIT, "hstu_qkv_grad_to_pre", 0)?;
        let (t, h, hdv, hdqk, hk) = (
            tokens as i64,
            hd.heads as i32,
            hd.dv as i32,
            hd.dqk as i32,
            hd.dk as i32,
        );
        // SAFETY: arguments match hstu_qkv_grad_to_pre; lengths checked above.
        unsafe {
            self.stream
                .launch_builder(&f)
                .arg(dq)
                .arg(dk)
                .arg(dv)
                .arg(pre)
                .arg(d_pre)
                .arg(&t)
                .arg(&h)
                .arg(&hdv)
                .arg(&hdqk)
                .arg(&hk)
                .launch(flat(tokens * (hd.hdv() + 2 * hd.heads * hd.dqk)))
        }
        .map_err(drv("launch qkv_grad_to_pre"))?;
        Ok(())
    }

    /// `dx += layer-norm backward of dy` (given the forward output `y` and `rstd`).
    pub fn layer_norm_bwd_acc(
        &self,
        dy: &CudaSlice<f32>,
        y: &CudaSlice<f32>,
        rstd: &CudaSlice<f32>,
        dx: &mut CudaSlice<f32>,
        (rows, dim): (usize, usize),
    ) -> Result<()> {
        const OP: &str = "layer_norm_bwd_acc";
        for (t, x) in [("dy", dy.len()), ("y", y.len()), ("dx", dx.len())] {
            need(OP, t, x, rows * dim)?;
        }
        need(OP, "rstd", rstd.len(), rows)?;
        let f = self.kernels.function(UNIT, "hstu_layer_norm_bwd_acc", 0)?;
        let (r, d) = (rows as i32, dim as i32);
        // SAFETY: arguments match hstu_layer_norm_bwd_acc; lengths checked above.
        unsafe {
            self.stream
                .launch_builder(&f)
                .arg(dy)
                .arg(y)
                .arg(rstd)
                .arg(dx)
                .arg(&r)
                .arg(&d)
                .launch(rows8(rows))
        }
        .map_err(drv("launch layer_norm_bwd_acc"))?;
        Ok(())
    }

    /// `x[r, :] += b` for every row of `x [rows, b.len()]`.
    pub fn add_bias_rows(&self, x: &mut CudaSlice<f32>, b: &CudaSlice<f32>) -> Result<()> {
        let dim = b.len();
        if dim == 0 || !x.len().is_multiple_of(dim) {
            return Err(CudaError::Shape {
                op: "add_bias_rows",
                tensor: "x",
                actual: x.len(),
                expected: dim,
            });
        }
        let f = self.kernels.function(UNIT, "hstu_add_bias_rows", 0)?;
        let (rows, d) = ((x.len() / dim) as i64, dim as i32);
        let n = x.len();
        // SAFETY: arguments match hstu_add_bias_rows; x holds rows * dim elements.
        unsafe {
            self.stream
                .launch_builder(&f)
                .arg(x)
                .arg(b)
                .arg(&rows)
                .arg(&d)
                .launch(flat(n))
        }
        .map_err(drv("launch add_bias_rows"))?;
        Ok(())
    }

    /// `out += column sums of x [rows, out.len()]` (float atomics).
    pub fn col_sum_acc(&self, x: &CudaSlice<f32>, out: &mut CudaSlice<f32>) -> Result<()> {
        let dim = out.len();
        if dim == 0 || !x.len().is_multiple_of(dim) {
            return Err(CudaError::Shape {
                op: "col_sum_acc",
                tensor: "x",
                actual: x.len(),
                expected: dim,
            });
        }
        let rows = x.len() / dim;
        let f = self.kernels.function(UNIT, "hstu_col_sum_acc", 0)?;
        let cfg = LaunchConfig {
            grid_dim: (
                dim.div_ceil(32) as u32,
                rows.div_ceil(8 * 64).clamp(1, 256) as u32,
                1,
            ),
            block_dim: (32, 8, 1),
            shared_mem_bytes: 0,
        };
        let (r, d) = (rows as i64, dim as i32);
        // SAFETY: arguments match hstu_col_sum_acc; x holds rows * dim elements.
        unsafe {
            self.stream
                .launch_builder(&f)
                .arg(x)
                .arg(out)
                .arg(&r)
                .arg(&d)
                .launch(cfg)
        }
        .map_err(drv("launch col_sum_acc"))?;
        Ok(())
    }

    /// `x *= dropout mask(rate, seed)` in place (the same call undoes nothing: it is the
    /// forward and, on the gradient, the backward of input dropout).
    pub fn dropout_inplace(&self, x: &mut CudaSlice<f32>, rate: f32, seed: u64) -> Result<()> {
        if rate <= 0.0 {
            return Ok(());
        }
        let f = self.kernels.function(UNIT, "hstu_dropout_inplace", 0)?;
        let n = x.len();
        let n64 = n as i64;
        // SAFETY: arguments match hstu_dropout_inplace.
        unsafe {
            self.stream
                .launch_builder(&f)
                .arg(x)
                .arg(&n64)
                .arg(&rate)
                .arg(&seed)
                .launch(flat(n))
        }
        .map_err(drv("launch dropout_inplace"))?;
        Ok(())
    }

    /// Fills `out` with ids drawn uniformly with replacement from `1..=num_items`.
    pub fn sample_negatives(
        &self,
        out: &mut CudaSlice<i64>,
        num_items: usize,
        seed: u64,
    ) -> Result<()> {
        let f = self.kernels.function(UNIT, "hstu_sample_negatives", 0)?;
        let n = out.len();
        let (n64, items) = (n as i64, num_items as i64);
        // SAFETY: arguments match hstu_sample_negatives.
        unsafe {
            self.stream
                .launch_builder(&f)
                .arg(out)
                .arg(&n64)
                .arg(&items)
                .arg(&seed)
                .launch(flat(n))
        }
        .map_err(drv("launch sample_negatives"))?;
        Ok(())
    }

    /// `out[0] += sum(x)`.
    pub fn sum_acc(&self, x: &CudaSlice<f32>, out: &mut CudaSlice<f32>) -> Result<()> {
        need("sum_acc", "out", out.len(), 1)?;
        let f = self.kernels.function(UNIT, "hstu_sum_acc", 0)?;
        let n = x.len();
        let n64 = n as i64;
        // SAFETY: arguments match hstu_sum_acc.
        unsafe {
            self.stream
                .launch_builder(&f)
                .arg(x)
                .arg(&n64)
                .arg(out)
                .launch(flat(n))
        }
        .map_err(drv("launch sum_acc"))?;
        Ok(())
    }

    /// The sampled-softmax loss of [`CudaDevice::sampled_softmax`] (same inputs and outputs:
    /// `loss [rows]` times `weight`, `d_o [rows, dim]` written, the item-table gradient added
    /// into `d_item`) without a float atomic per (row, candidate, column): the table is
    /// normalised once, each row writes its candidates' coefficients, the pairs are counting-
    /// sorted by item id (integer atomics) and one warp per item sums its pairs.
    pub fn sampled_softmax_sorted(
        &self,
        x: &SampledSoftmax<'_>,
        loss: &mut CudaSlice<f32>,
        d_o: &mut CudaSlice<f32>,
        d_item: &mut CudaSlice<f32>,
    ) -> Result<()> {
        const OP: &str = "sampled_softmax_sorted";
        let (rows, dim) = x.check_shapes(OP, loss, d_o, d_item)?;
        if !x.item_emb.len().is_multiple_of(dim) {
            return Err(CudaError::Shape {
                op: OP,
                tensor: "item_emb",
                actual: x.item_emb.len(),
                expected: dim,
            });
        }
        let items = x.item_emb.len() / dim;
        let kc = x.num_neg + 1;
        if rows * kc > i32::MAX as usize || items > i32::MAX as usize - 2 {
            return Err(CudaError::Unsupported {
                op: OP,
                what: "pairs (rows * (negatives + 1)) and items below 2^31",
                value: format!("{} / {items}", rows * kc),
            });
        }
        let zf = |n: usize| self.zeros::<f32>(n);
        let zi = |n: usize| self.zeros::<i32>(n);
        let (mut items_n, mut q_n, mut coef) = (zf(items * dim)?, zf(rows * dim)?, zf(rows * kc)?);
        let (mut counts, mut offsets, mut cursor) = (zi(items)?, zi(items + 1)?, zi(items + 1)?);
        let (mut pairs, mut d_items_n) = (zi(rows * kc)?, zf(items * dim)?);
        let (r32, d32, k32, n32) = (rows as i32, dim as i32, x.num_neg as i32, items as i32);
        let r64 = rows as i64;
        let f = self.kernels.function(UNIT, "hstu_l2_normalize_rows", 0)?;
        // SAFETY (all launches below): argument lists match the kernels of csrc/train_ops.cu;
        // every buffer was checked or allocated above with the lengths the kernels index.
        unsafe {
            self.stream
                .launch_builder(&f)
                .arg(x.item_emb)
                .arg(&mut items_n)
                .arg(&n32)
                .arg(&d32)
                .arg(&x.eps)
                .launch(rows8(items))
        }
        .map_err(drv("launch l2_normalize_rows"))?;
        let f = self
            .kernels
            .function(UNIT, "hstu_sampled_softmax_rows", 0)?;
        let cfg = LaunchConfig {
            grid_dim: (rows.div_ceil(4).max(1) as u32, 1, 1),
            block_dim: (128, 1, 1),
            shared_mem_bytes: (4 * kc * 4) as u32,
        };
        unsafe {
            self.stream
                .launch_builder(&f)
                .arg(x.o)
                .arg(&items_n)
                .arg(x.pos_ids)
                .arg(x.neg_ids)
                .arg(loss)
                .arg(d_o)
                .arg(&mut q_n)
                .arg(&mut coef)
                .arg(&r32)
                .arg(&d32)
                .arg(&k32)
                .arg(&x.temperature)
                .arg(&x.eps)
                .arg(&x.weight)
                .launch(cfg)
        }
        .map_err(drv("launch sampled_softmax_rows"))?;
        let f = self.kernels.function(UNIT, "hstu_pair_count", 0)?;
        unsafe {
            self.stream
                .launch_builder(&f)
                .arg(x.pos_ids)
                .arg(x.neg_ids)
                .arg(&mut counts)
                .arg(&r64)
                .arg(&k32)
                .launch(flat(rows * kc))
        }
        .map_err(drv("launch pair_count"))?;
        let f = self.kernels.function(UNIT, "hstu_exclusive_scan", 0)?;
        let one = LaunchConfig {
            grid_dim: (1, 1, 1),
            block_dim: (1024, 1, 1),
            shared_mem_bytes: 0,
        };
        unsafe {
            self.stream
                .launch_builder(&f)
                .arg(&counts)
                .arg(&mut offsets)
                .arg(&mut cursor)
                .arg(&n32)
                .launch(one)
        }
        .map_err(drv("launch exclusive_scan"))?;
        let f = self.kernels.function(UNIT, "hstu_pair_scatter", 0)?;
        unsafe {
            self.stream
                .launch_builder(&f)
                .arg(x.pos_ids)
                .arg(x.neg_ids)
                .arg(&mut cursor)
                .arg(&mut pairs)
                .arg(&r64)
                .arg(&k32)
                .launch(flat(rows * kc))
        }
        .map_err(drv("launch pair_scatter"))?;
        let f = self
            .kernels
            .function(UNIT, "hstu_item_grad_from_pairs", 0)?;
        unsafe {
            self.stream
                .launch_builder(&f)
                .arg(&offsets)
                .arg(&pairs)
                .arg(&coef)
                .arg(&q_n)
                .arg(&mut d_items_n)
                .arg(&n32)
                .arg(&d32)
                .arg(&k32)
                .launch(rows8(items))
        }
        .map_err(drv("launch item_grad_from_pairs"))?;
        let f = self
            .kernels
            .function(UNIT, "hstu_l2_normalize_bwd_acc", 0)?;
        unsafe {
            self.stream
                .launch_builder(&f)
                .arg(x.item_emb)
                .arg(&d_items_n)
                .arg(d_item)
                .arg(&n32)
                .arg(&d32)
                .arg(&x.eps)
                .launch(rows8(items))
        }
        .map_err(drv("launch l2_normalize_bwd_acc"))?;
        Ok(())
    }

    /// Sets every element of `x` to zero (asynchronous).
    pub fn zero<T: cudarc::driver::DeviceRepr + cudarc::driver::ValidAsZeroBits>(
        &self,
        x: &mut CudaSlice<T>,
    ) -> Result<()> {
        self.stream.memset_zeros(x).map_err(drv("memset"))
    }
}
