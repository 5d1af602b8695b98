//! Host-side convenience around the device attention: pads head dims to a kernel dim, converts
//! to bf16, uploads, runs forward (+ backward) and downloads f32 results. For tests, goldens and
//! callers that hold host tensors; training keeps tensors on the device instead.

use crate::attention::{
    AttentionGradsDevice, AttentionInputs, AttentionOptions, AttentionShape, RabGrads, RabTensors,
    SUPPORTED_HEAD_DIMS,
};
use crate::device::CudaDevice;
use crate::error::{CudaError, Result};
use crate::reference::AttentionProblem;
use half::bf16;

/// Results of [`attention_host`], unpadded, in f32.
#[derive(Clone, Debug, Default)]
pub struct AttentionHostResult {
    /// `[T, H, dv]`.
    pub out: Vec<f32>,
    /// `[T, H, dqk]`, empty without `dout`.
    pub dq: Vec<f32>,
    pub dk: Vec<f32>,
    /// `[T, H, dv]`.
    pub dv: Vec<f32>,
    pub dpos_w: Vec<f32>,
    pub dts_w: Vec<f32>,
}

/// Smallest kernel head dim that holds `max(dqk, dv)`.
pub fn kernel_head_dim(dqk: usize, dv: usize) -> Option<usize> {
    SUPPORTED_HEAD_DIMS.into_iter().find(|&d| d >= dqk.max(dv))
}

/// `[T, H, d]` -> `[T, H, dk]` bf16, zero-padded.
pub fn pad_heads_bf16(x: &[f32], tokens: usize, heads: usize, d: usize, dk: usize) -> Vec<bf16> {
    let mut out = vec![bf16::ZERO; tokens * heads * dk];
    for r in 0..tokens * heads {
        for c in 0..d {
            out[r * dk + c] = bf16::from_f32(x[r * d + c]);
        }
    }
    out
}

fn unpad(x: &[bf16], rows: usize, d: usize, dk: usize) -> Vec<f32> {
    (0..rows * d)
        .map(|i| x[(i / d) * dk + i % d].to_f32())
        .collect()
}

/// Runs the fused kernels on host tensors: q, k `[T, H, dqk]`, v (and dout) `[T, H, dv]`.
pub fn attention_host(
    dev: &CudaDevice,
    p: &AttentionProblem,
    q: &[f32],
    k: &[f32],
    v: &[f32],
    dout: Option<&[f32]>,
) -> Result<AttentionHostResult> {
    attention_host_with(dev, p, q, k, v, dout, false)
}

/// [`attention_host`] with the choice of [`RabGrads::deterministic`] for the relative-bias
/// gradients.
pub fn attention_host_with(
    dev: &CudaDevice,
    p: &AttentionProblem,
    q: &[f32],
    k: &[f32],
    v: &[f32],
    dout: Option<&[f32]>,
    deterministic_rab: bool,
) -> Result<AttentionHostResult> {
    const OP: &str = "attention_host";
    let (t, h) = (p.total_tokens(), p.heads);
    let dk = kernel_head_dim(p.dqk, p.dv).ok_or(CudaError::Unsupported {
        op: OP,
        what: "head dim",
        value: format!("{}/{}", p.dqk, p.dv),
    })?;
    for (name, x, d) in [("q", q, p.dqk), ("k", k, p.dqk), ("v", v, p.dv)] {
        if x.len() != t * h * d {
            return Err(CudaError::Shape {
                op: OP,
                tensor: name,
                actual: x.len(),
                expected: t * h * d,
            });
        }
    }
    let max_len = p.seq_lens().into_iter().max().unwrap_or(0);
    let qd = dev.upload(&pad_heads_bf16(q, t, h, p.dqk, dk))?;
    let kd = dev.upload(&pad_heads_bf16(k, t, h, p.dqk, dk))?;
    let vd = dev.upload(&pad_heads_bf16(v, t, h, p.dv, dk))?;
    let offs = dev.upload(&p.seq_offsets)?;
    let nt = p.num_targets.as_ref().map(|x| dev.upload(x)).transpose()?;
    let rab_dev = match &p.rab {
        Some(r) => Some((
            dev.upload(&r.pos_w)?,
            dev.upload(&r.ts_w)?,
            dev.upload(&r.timestamps)?,
            dev.upload(&r.t_next)?,
        )),
        None => None,
    };
    let x = AttentionInputs {
        shape: AttentionShape {
            batch: p.batch(),
            heads: h,
            head_dim: dk,
            total_tokens: t,
            max_len,
        },
        options: AttentionOptions {
            alpha: p.alpha as f32,
            norm_n: p.norm_n as f32,
            max_attn_len: p.max_attn_len,
        },
        seq_offsets: &offs,
        num_targets: nt.as_ref(),
        rab: p
            .rab
            .as_ref()
            .zip(rab_dev.as_ref())
            .map(|(r, d)| RabTensors {
                n: r.n,
                num_buckets: r.num_buckets,
                bucket_divisor: r.bucket_divisor as f32,
                pos_w: &d.0,
                ts_w: &d.1,
                timestamps: &d.2,
                t_next: &d.3,
            }),
        q: &qd,
        k: &kd,
        v: &vd,
    };
    let mut out = dev.upload(&vec![bf16::NAN; t * h * dk])?;
    dev.hstu_attention_fwd(&x, &mut out)?;
    let mut res = AttentionHostResult {
        out: unpad(&dev.download(&out)?, t * h, p.dv, dk),
        ..Default::default()
    };
    if let Some(dout) = dout {
        let dod = dev.upload(&pad_heads_bf16(dout, t, h, p.dv, dk))?;
        let mut dq = dev.upload(&vec![bf16::NAN; t * h * dk])?;
        let mut dkk = dev.upload(&vec![bf16::NAN; t * h * dk])?;
        let mut dv = dev.upload(&vec![bf16::NAN; t * h * dk])?;
        let mut rg = match &p.rab {
            Some(r) => Some((
                dev.zeros::<f32>(2 * r.n - 1)?,
                dev.zeros::<f32>(r.num_buckets + 1)?,
            )),
            None => None,
        };
        dev.hstu_attention_bwd(
            &x,
            &dod,
            AttentionGradsDevice {
                dq: &mut dq,
                dk: &mut dkk,
                dv: &mut dv,
            },
            rg.as_mut().map(|(a, b)| RabGrads {
                dpos_w: a,
                dts_w: b,
                deterministic: deterministic_rab,
            }),
        )?;
        res.dq = unpad(&dev.download(&dq)?, t * h, p.dqk, dk);
        res.dk = unpad(&dev.download(&dkk)?, t * h, p.dqk, dk);
        res.dv = unpad(&dev.download(&dv)?, t * h, p.dv, dk);
        if let Some((a, b)) = &rg {
            res.dpos_w = dev.download(a)?;
            res.dts_w = dev.download(b)?;
        }
    }
    Ok(res)
}
