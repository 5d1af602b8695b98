//! Element-wise kernels of the HSTU layer and trainer (`csrc/elementwise.cu`), f32, all
//! asynchronous on the device stream. Shapes: rows x dim row-major unless stated.

use crate::device::CudaDevice;
use crate::error::{CudaError, Result, drv};
use cudarc::driver::{CudaSlice, LaunchConfig, PushKernelArg};

/// AdamW hyper-parameters (hstu-spec section 7: betas (0.9, 0.98), lr 1e-3, wd 0).
#[derive(Clone, Copy, Debug)]
pub struct AdamW {
    pub lr: f32,
    pub beta1: f32,
    pub beta2: f32,
    pub eps: f32,
    pub weight_decay: f32,
}

impl Default for AdamW {
    fn default() -> Self {
        Self {
            lr: 1e-3,
            beta1: 0.9,
            beta2: 0.98,
            eps: 1e-8,
            weight_decay: 0.0,
        }
    }
}

/// Grid-stride launch over `n` elements (blocks of 256, at most 16 per SM of a 132-SM H200).
pub(crate) fn grid(n: usize) -> LaunchConfig {
    let blocks = n.div_ceil(256).clamp(1, 132 * 16) as u32;
    LaunchConfig {
        grid_dim: (blocks, 1, 1),
        block_dim: (256, 1, 1),
        shared_mem_bytes: 0,
    }
}

/// One warp per row, 8 rows per block.
pub(crate) fn row_grid(rows: usize) -> LaunchConfig {
    LaunchConfig {
        grid_dim: (rows.div_ceil(8).max(1) as u32, 1, 1),
        block_dim: (256, 1, 1),
        shared_mem_bytes: 0,
    }
}

pub(crate) fn check(
    op: &'static str,
    tensor: &'static str,
    actual: usize,
    expected: usize,
) -> Result<()> {
    if actual != expected {
        return Err(CudaError::Shape {
            op,
            tensor,
            actual,
            expected,
        });
    }
    Ok(())
}

/// The most negatives per row of both sampled-softmax kernels: each of a block's 4 warps keeps
/// its row's `num_neg + 1` logits in shared memory, 32 KiB at this bound (48 KiB are available
/// without an opt-in).
pub const MAX_SAMPLED_NEGATIVES: usize = 2047;

/// Sampled-softmax batch (hstu-spec 7): `rows` query positions, `num_neg` negatives each.
pub struct SampledSoftmax<'a> {
    /// `[rows, dim]` raw (un-normalised) output embeddings o_p.
    pub o: &'a CudaSlice<f32>,
    /// `[num_items + 1, dim]` item embedding table.
    pub item_emb: &'a CudaSlice<f32>,
    /// `[rows]` positive item ids (0 = padding: the row is skipped).
    pub pos_ids: &'a CudaSlice<i64>,
    /// `[rows, num_neg]` negative ids.
    pub neg_ids: &'a CudaSlice<i64>,
    pub num_neg: usize,
    /// 0.05 in the reference.
    pub temperature: f32,
    /// l2_norm_eps.
    pub eps: f32,
    /// Loss weight per row (1 / number of valid rows for the mean).
    pub weight: f32,
}

impl SampledSoftmax<'_> {
    /// `(rows, dim)` of a sampled-softmax call, after checking `dim` (1..=1024, the kernels'
    /// register rows), `num_neg` (1..=[`MAX_SAMPLED_NEGATIVES`]) and the lengths of every input
    /// and output.
    pub(crate) fn check_shapes(
        &self,
        op: &'static str,
        loss: &CudaSlice<f32>,
        d_o: &CudaSlice<f32>,
        d_item: &CudaSlice<f32>,
    ) -> Result<(usize, usize)> {
        let rows = self.pos_ids.len();
        let dim = self.o.len() / rows.max(1);
        if dim > 1024 || dim == 0 {
            return Err(CudaError::Unsupported {
                op,
                what: "dim (1..=1024)",
                value: dim.to_string(),
            });
        }
        if self.num_neg == 0 || self.num_neg > MAX_SAMPLED_NEGATIVES {
            return Err(CudaError::Unsupported {
                op,
                what: "negatives (1..=2047)",
                value: self.num_neg.to_string(),
            });
        }
        check(op, "o", self.o.len(), rows * dim)?;
        check(op, "neg_ids", self.neg_ids.len(), rows * self.num_neg)?;
        check(op, "loss", loss.len(), rows)?;
        check(op, "d_o", d_o.len(), rows * dim)?;
        check(op, "d_item", d_item.len(), self.item_emb.len())?;
        Ok((rows, dim))
    }
}

impl CudaDevice {
    /// One AdamW step (`step` counts from 1) on a parameter, its gradient and moments, all `[n]`.
    pub fn adamw_step(
        &self,
        opt: &AdamW,
        step: u32,
        param: &mut CudaSlice<f32>,
        grad: &CudaSlice<f32>,
        m: &mut CudaSlice<f32>,
        v: &mut CudaSlice<f32>,
    ) -> Result<()> {
        let n = param.len();
        for (name, len) in [("grad", grad.len()), ("m", m.len()), ("v", v.len())] {
            if len != n {
                return Err(CudaError::Shape {
                    op: "adamw_step",
                    tensor: name,
                    actual: len,
                    expected: n,
                });
            }
        }
        let f = self.kernels.function("elementwise", "hstu_adamw_f32", 0)?;
        let bc1 = 1.0 - opt.beta1.powi(step as i32);
        let bc2 = 1.0 - opt.beta2.powi(step as i32);
        let n64 = n as i64;
        // SAFETY: argument list matches hstu_adamw_f32; all four buffers have n elements.
        unsafe {
            self.stream
                .launch_builder(&f)
                .arg(param)
                .arg(grad)
                .arg(m)
                .arg(v)
                .arg(&n64)
                .arg(&opt.lr)
                .arg(&opt.beta1)
                .arg(&opt.beta2)
                .arg(&opt.eps)
                .arg(&opt.weight_decay)
                .arg(&bc1)
                .arg(&bc2)
                .launch(grid(n))
        }
        .map_err(drv("launch adamw"))?;
        Ok(())
    }

    /// Layer norm without affine: `y = (x - mean) * rstd` per row; writes `rstd [rows]`.
    pub fn layer_norm_fwd(
        &self,
        x: &CudaSlice<f32>,
        y: &mut CudaSlice<f32>,
        rstd: &mut CudaSlice<f32>,
        rows: usize,
        dim: usize,
        eps: f32,
    ) -> Result<()> {
        const OP: &str = "layer_norm_fwd";
        check(OP, "x", x.len(), rows * dim)?;
        check(OP, "y", y.len(), rows * dim)?;
        check(OP, "rstd", rstd.len(), rows)?;
        let f = self
            .kernels
            .function("elementwise", "hstu_layer_norm_fwd_f32", 0)?;
        let (r, d) = (rows as i32, dim as i32);
        // SAFETY: arguments match hstu_layer_norm_fwd_f32; lengths checked above.
        unsafe {
            self.stream
                .launch_builder(&f)
                .arg(x)
                .arg(y)
                .arg(rstd)
                .arg(&r)
                .arg(&d)
                .arg(&eps)
                .launch(row_grid(rows))
        }
        .map_err(drv("launch layer_norm_fwd"))?;
        Ok(())
    }

    /// Backward of [`Self::layer_norm_fwd`] given its output `y` and `rstd`.
    pub fn layer_norm_bwd(
        &self,
        dy: &CudaSlice<f32>,
        y: &CudaSlice<f32>,
        rstd: &CudaSlice<f32>,
        dx: &mut CudaSlice<f32>,
        rows: usize,
        dim: usize,
    ) -> Result<()> {
        const OP: &str = "layer_norm_bwd";
        check(OP, "dy", dy.len(), rows * dim)?;
        check(OP, "y", y.len(), rows * dim)?;
        check(OP, "rstd", rstd.len(), rows)?;
        check(OP, "dx", dx.len(), rows * dim)?;
        let f = self
            .kernels
            .function("elementwise", "hstu_layer_norm_bwd_f32", 0)?;
        let (r, d) = (rows as i32, dim as i32);
        // SAFETY: arguments match hstu_layer_norm_bwd_f32; lengths checked above.
        unsafe {
            self.stream
                .launch_builder(&f)
                .arg(dy)
                .arg(y)
                .arg(rstd)
                .arg(dx)
                .arg(&r)
                .arg(&d)
                .launch(row_grid(rows))
        }
        .map_err(drv("launch layer_norm_bwd"))?;
        Ok(())
    }

    /// `y = silu(x)`.
    pub fn silu_fwd(&self, x: &CudaSlice<f32>, y: &mut CudaSlice<f32>) -> Result<()> {
        check("silu_fwd", "y", y.len(), x.len())?;
        let f = self
            .kernels
            .function("elementwise", "hstu_silu_fwd_f32", 0)?;
        let n = x.len() as i64;
        // SAFETY: arguments match hstu_silu_fwd_f32.
        unsafe {
            self.stream
                .launch_builder(&f)
                .arg(x)
                .arg(y)
                .arg(&n)
                .launch(grid(x.len()))
        }
        .map_err(drv("launch silu_fwd"))?;
        Ok(())
    }

    /// `dx = dy * silu'(x)`.
    pub fn silu_bwd(
        &self,
        x: &CudaSlice<f32>,
        dy: &CudaSlice<f32>,
        dx: &mut CudaSlice<f32>,
    ) -> Result<()> {
        check("silu_bwd", "dy", dy.len(), x.len())?;
        check("silu_bwd", "dx", dx.len(), x.len())?;
        let f = self
            .kernels
            .function("elementwise", "hstu_silu_bwd_f32", 0)?;
        let n = x.len() as i64;
        // SAFETY: arguments match hstu_silu_bwd_f32.
        unsafe {
            self.stream
                .launch_builder(&f)
                .arg(x)
                .arg(dy)
                .arg(dx)
                .arg(&n)
                .launch(grid(x.len()))
        }
        .map_err(drv("launch silu_bwd"))?;
        Ok(())
    }

    /// `y = dropout(u * a, rate)` with a counter-based mask from `seed` (rate 0 = off).
    pub fn gate_dropout_fwd(
        &self,
        u: &CudaSlice<f32>,
        a: &CudaSlice<f32>,
        y: &mut CudaSlice<f32>,
        rate: f32,
        seed: u64,
    ) -> Result<()> {
        check("gate_dropout_fwd", "a", a.len(), u.len())?;
        check("gate_dropout_fwd", "y", y.len(), u.len())?;
        let f = self
            .kernels
            .function("elementwise", "hstu_gate_dropout_fwd_f32", 0)?;
        let n = u.len() as i64;
        // SAFETY: arguments match hstu_gate_dropout_fwd_f32.
        unsafe {
            self.stream
                .launch_builder(&f)
                .arg(u)
                .arg(a)
                .arg(y)
                .arg(&n)
                .arg(&rate)
                .arg(&seed)
                .launch(grid(u.len()))
        }
        .map_err(drv("launch gate_dropout_fwd"))?;
        Ok(())
    }

    /// Backward of [`Self::gate_dropout_fwd`] (same `rate` and `seed`): writes `du`, `da`.
    #[allow(clippy::too_many_arguments)]
    pub fn gate_dropout_bwd(
        &self,
        u: &CudaSlice<f32>,
        a: &CudaSlice<f32>,
        dy: &CudaSlice<f32>,
        du: &mut CudaSlice<f32>,
        da: &mut CudaSlice<f32>,
        rate: f32,
        seed: u64,
    ) -> Result<()> {
        for (t, l) in [
            ("a", a.len()),
            ("dy", dy.len()),
            ("du", du.len()),
            ("da", da.len()),
        ] {
            check("gate_dropout_bwd", t, l, u.len())?;
        }
        let f = self
            .kernels
            .function("elementwise", "hstu_gate_dropout_bwd_f32", 0)?;
        let n = u.len() as i64;
        // SAFETY: arguments match hstu_gate_dropout_bwd_f32.
        unsafe {
            self.stream
                .launch_builder(&f)
                .arg(u)
                .arg(a)
                .arg(dy)
                .arg(du)
                .arg(da)
                .arg(&n)
                .arg(&rate)
                .arg(&seed)
                .launch(grid(u.len()))
        }
        .map_err(drv("launch gate_dropout_bwd"))?;
        Ok(())
    }

    /// `out[t] = item_emb[ids[t]] * scale + pos_emb[pos[t]]`; ids/pos must index inside the
    /// tables (checked by the caller when the batch is built).
    #[allow(clippy::too_many_arguments)]
    pub fn embedding_fwd(
        &self,
        item_emb: &CudaSlice<f32>,
        pos_emb: &CudaSlice<f32>,
        ids: &CudaSlice<i64>,
        pos: &CudaSlice<i64>,
        out: &mut CudaSlice<f32>,
        dim: usize,
        scale: f32,
    ) -> Result<()> {
        let tokens = ids.len();
        check("embedding_fwd", "pos", pos.len(), tokens)?;
        check("embedding_fwd", "out", out.len(), tokens * dim)?;
        let f = self
            .kernels
            .function("elementwise", "hstu_embedding_fwd_f32", 0)?;
        let (t, d) = (tokens as i64, dim as i32);
        // SAFETY: arguments match hstu_embedding_fwd_f32.
        unsafe {
            self.stream
                .launch_builder(&f)
                .arg(item_emb)
                .arg(pos_emb)
                .arg(ids)
                .arg(pos)
                .arg(out)
                .arg(&t)
                .arg(&d)
                .arg(&scale)
                .launch(grid(tokens * dim))
        }
        .map_err(drv("launch embedding_fwd"))?;
        Ok(())
    }

    /// Scatter-add backward of [`Self::embedding_fwd`] into `d_item`, `d_pos` (accumulated).
    #[allow(clippy::too_many_arguments)]
    pub fn embedding_bwd(
        &self,
        dout: &CudaSlice<f32>,
        ids: &CudaSlice<i64>,
        pos: &CudaSlice<i64>,
        d_item: &mut CudaSlice<f32>,
        d_pos: &mut CudaSlice<f32>,
        dim: usize,
        scale: f32,
    ) -> Result<()> {
        let tokens = ids.len();
        check("embedding_bwd", "pos", pos.len(), tokens)?;
        check("embedding_bwd", "dout", dout.len(), tokens * dim)?;
        let f = self
            .kernels
            .function("elementwise", "hstu_embedding_bwd_f32", 0)?;
        let (t, d) = (tokens as i64, dim as i32);
        // SAFETY: arguments match hstu_embedding_bwd_f32.
        unsafe {
            self.stream
                .launch_builder(&f)
                .arg(dout)
                .arg(ids)
                .arg(pos)
                .arg(d_item)
                .arg(d_pos)
                .arg(&t)
                .arg(&d)
                .arg(&scale)
                .launch(grid(tokens * dim))
        }
        .map_err(drv("launch embedding_bwd"))?;
        Ok(())
    }

    /// Sampled-softmax loss (hstu-spec 7): writes `loss [rows]` (already times `weight`) and
    /// `d_o [rows, dim]`, adds the item-embedding gradient into `d_item`.
    pub fn sampled_softmax(
        &self,
        x: &SampledSoftmax<'_>,
        loss: &mut CudaSlice<f32>,
        d_o: &mut CudaSlice<f32>,
        d_item: &mut CudaSlice<f32>,
    ) -> Result<()> {
        let (rows, dim) = x.check_shapes("sampled_softmax", loss, d_o, d_item)?;
        let f = self
            .kernels
            .function("elementwise", "hstu_sampled_softmax_f32", 0)?;
        let cfg = LaunchConfig {
            grid_dim: (rows.div_ceil(4).max(1) as u32, 1, 1),
            block_dim: (128, 1, 1),
            shared_mem_bytes: (4 * (x.num_neg + 1) * 4) as u32,
        };
        let (r, d, k) = (rows as i32, dim as i32, x.num_neg as i32);
        // SAFETY: arguments match hstu_sampled_softmax_f32; lengths checked above.
        unsafe {
            self.stream
                .launch_builder(&f)
                .arg(x.o)
                .arg(x.item_emb)
                .arg(x.pos_ids)
                .arg(x.neg_ids)
                .arg(loss)
                .arg(d_o)
                .arg(d_item)
                .arg(&r)
                .arg(&d)
                .arg(&k)
                .arg(&x.temperature)
                .arg(&x.eps)
                .arg(&x.weight)
                .launch(cfg)
        }
        .map_err(drv("launch sampled_softmax"))?;
        Ok(())
    }
}
