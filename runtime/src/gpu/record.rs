//! Recording GPU work: one command encoder, a uniform arena for kernel parameters, one compute pass
//! for a run of dispatches (one per dispatch, timestamped, when profiling), and the one readback
//! path of the runtime.

use super::cache::{BindRange, Pipeline, PipelineKey, STORAGE, UNIFORM};
use super::context::GpuContext;
use crate::error::{Error, Result};
use std::sync::Arc;

const ARENA_BYTES: u64 = 64 << 10;

/// GPU time of one labelled dispatch.
#[derive(Clone, Debug)]
pub struct PassTime {
    pub label: String,
    pub ns: f64,
}

struct Profiler {
    set: wgpu::QuerySet,
    capacity: u32,
    labels: Vec<String>,
}

/// A batch of dispatches submitted together.
pub struct Recorder<'a> {
    pub ctx: &'a GpuContext,
    encoder: wgpu::CommandEncoder,
    arenas: Vec<(wgpu::Buffer, Vec<u8>)>,
    align: u64,
    profiler: Option<Profiler>,
    /// Buffers taken from the pool for this batch, returned after completion.
    scratch: Vec<wgpu::Buffer>,
    /// Op name given to the next profiled dispatches (see [`Recorder::tag`]).
    tag: Option<&'static str>,
    /// The open compute pass of unprofiled dispatches (wgpu orders and synchronises dispatches
    /// inside a pass); ended before a copy, a clear or the submit.
    pass: Option<wgpu::ComputePass<'static>>,
}

/// `ceil(a / b)` for dispatch sizes.
pub fn groups(a: usize, b: usize) -> u32 {
    a.div_ceil(b) as u32
}

/// A 2-D grid covering `rows` workgroups (x <= 65535).
pub fn row_grid(rows: usize) -> (u32, u32, u32) {
    let x = rows.clamp(1, 65535);
    (x as u32, rows.div_ceil(x).max(1) as u32, 1)
}

impl<'a> Recorder<'a> {
    pub fn new(ctx: &'a GpuContext) -> Self {
        let encoder = ctx
            .device
            .create_command_encoder(&wgpu::CommandEncoderDescriptor {
                label: Some("hstu"),
            });
        Recorder {
            ctx,
            encoder,
            arenas: Vec::new(),
            align: ctx.limits.min_uniform_buffer_offset_alignment.max(16) as u64,
            profiler: None,
            scratch: Vec::new(),
            tag: None,
            pass: None,
        }
    }

    /// End the open compute pass, if any.
    fn end_pass(&mut self) {
        self.pass = None;
    }

    /// Name the op of the following dispatches in the profile (`uvqk_gemm`, `attention`, ...);
    /// without a tag a dispatch is labelled by its pipeline (`hstu_matmul[f32]::main`).
    pub fn tag(&mut self, op: &'static str) {
        self.tag = Some(op);
    }

    /// Record begin/end timestamps of up to `passes` dispatches (no-op without TIMESTAMP_QUERY).
    pub fn with_profiling(mut self, passes: u32) -> Self {
        if self.ctx.has_timestamps() && passes > 0 {
            let capacity = passes.min(2048);
            let set = self.ctx.device.create_query_set(&wgpu::QuerySetDescriptor {
                label: Some("hstu timestamps"),
                ty: wgpu::QueryType::Timestamp,
                count: capacity * 2,
            });
            self.profiler = Some(Profiler {
                set,
                capacity,
                labels: Vec::new(),
            });
        }
        self
    }

    /// A scratch storage buffer of at least `bytes`, pooled after [`Recorder::finish`].
    pub fn scratch(&mut self, bytes: u64) -> Result<wgpu::Buffer> {
        let b = self.ctx.take_buffer(bytes.max(16), STORAGE)?;
        self.scratch.push(b.clone());
        Ok(b)
    }

    /// A scratch buffer holding `data`.
    pub fn upload<T: bytemuck::Pod>(&mut self, data: &[T]) -> Result<wgpu::Buffer> {
        let bytes: &[u8] = bytemuck::cast_slice(data);
        let b = self.scratch(bytes.len() as u64)?;
        if !bytes.is_empty() {
            self.ctx.queue.write_buffer(&b, 0, bytes);
        }
        Ok(b)
    }

    /// Place `params` in the uniform arena; returns its binding range.
    fn uniform<P: bytemuck::Pod>(&mut self, params: &P) -> Result<BindRange> {
        let bytes = bytemuck::bytes_of(params);
        let size = bytes.len() as u64;
        let need_new = match self.arenas.last() {
            Some((_, data)) => {
                (data.len() as u64).div_ceil(self.align) * self.align + size > ARENA_BYTES
            }
            None => true,
        };
        if need_new {
            let b = self.ctx.take_buffer(ARENA_BYTES, UNIFORM)?;
            self.arenas.push((b, Vec::new()));
        }
        let align = self.align as usize;
        let (buffer, data) = self.arenas.last_mut().expect("arena pushed above");
        let offset = data.len().div_ceil(align) * align;
        data.resize(offset, 0);
        data.extend_from_slice(bytes);
        Ok(BindRange {
            buffer: buffer.clone(),
            offset: offset as u64,
            size,
        })
    }

    /// One dispatch of `key` with `params` at binding 0 and `buffers` (binding, range).
    pub fn dispatch<P: bytemuck::Pod>(
        &mut self,
        key: &PipelineKey,
        params: &P,
        buffers: Vec<(u32, BindRange)>,
        grid: (u32, u32, u32),
    ) -> Result<()> {
        let pipeline = self.ctx.pipeline(key)?;
        self.dispatch_pipeline(&pipeline, params, buffers, grid)
    }

    pub fn dispatch_pipeline<P: bytemuck::Pod>(
        &mut self,
        pipeline: &Arc<Pipeline>,
        params: &P,
        mut buffers: Vec<(u32, BindRange)>,
        grid: (u32, u32, u32),
    ) -> Result<()> {
        let max = self.ctx.limits.max_compute_workgroups_per_dimension;
        if grid.0 > max || grid.1 > max || grid.2 > max {
            return Err(Error::Limit(format!(
                "{}: grid {grid:?} exceeds {max} workgroups per dimension",
                pipeline.label
            )));
        }
        if grid.0 == 0 || grid.1 == 0 || grid.2 == 0 {
            return Ok(());
        }
        let u = self.uniform(params)?;
        buffers.insert(0, (0, u));
        let bg = self.ctx.bind_group(pipeline, buffers)?;
        let timestamp_writes = match self.profiler.as_mut() {
            Some(p) if (p.labels.len() as u32) < p.capacity => {
                let i = p.labels.len() as u32;
                p.labels.push(match self.tag {
                    Some(t) => t.to_string(),
                    None => pipeline.label.clone(),
                });
                Some((i * 2, i * 2 + 1))
            }
            _ => None,
        };
        if let Some((b, e)) = timestamp_writes {
            // Profiled: a pass of its own, timestamped at its beginning and end.
            self.pass = None;
            let p = self
                .profiler
                .as_ref()
                .expect("timestamps only with a profiler");
            let mut pass = self
                .encoder
                .begin_compute_pass(&wgpu::ComputePassDescriptor {
                    label: Some(&pipeline.label),
                    timestamp_writes: Some(wgpu::ComputePassTimestampWrites {
                        query_set: &p.set,
                        beginning_of_pass_write_index: Some(b),
                        end_of_pass_write_index: Some(e),
                    }),
                });
            pass.set_pipeline(&pipeline.pipeline);
            pass.set_bind_group(0, &bg, &[]);
            pass.dispatch_workgroups(grid.0, grid.1, grid.2);
            return Ok(());
        }
        let pass = self.pass.get_or_insert_with(|| {
            self.encoder
                .begin_compute_pass(&wgpu::ComputePassDescriptor {
                    label: Some("hstu"),
                    timestamp_writes: None,
                })
                .forget_lifetime()
        });
        pass.set_pipeline(&pipeline.pipeline);
        pass.set_bind_group(0, &bg, &[]);
        pass.dispatch_workgroups(grid.0, grid.1, grid.2);
        Ok(())
    }

    pub fn copy(
        &mut self,
        src: &wgpu::Buffer,
        src_off: u64,
        dst: &wgpu::Buffer,
        dst_off: u64,
        bytes: u64,
    ) {
        if bytes > 0 {
            self.end_pass();
            self.encoder
                .copy_buffer_to_buffer(src, src_off, dst, dst_off, bytes);
        }
    }

    pub fn clear(&mut self, buffer: &wgpu::Buffer, bytes: u64) {
        self.end_pass();
        self.encoder
            .clear_buffer(buffer, 0, Some(bytes.div_ceil(4) * 4));
    }

    /// Submit without reading anything back (the caller keeps using the buffers).
    pub fn submit(self) -> Result<()> {
        self.finish(&[]).map(|_| ())
    }

    /// Submit, wait, and read back `reads` (buffer, offset, bytes): the one readback path.
    /// Scratch buffers return to the pool.
    pub fn finish(self, reads: &[(&wgpu::Buffer, u64, u64)]) -> Result<Vec<Vec<u8>>> {
        self.finish_profiled(reads).map(|(data, _)| data)
    }

    /// As [`Recorder::finish`], also returning the GPU time of every profiled dispatch.
    pub fn finish_profiled(
        mut self,
        reads: &[(&wgpu::Buffer, u64, u64)],
    ) -> Result<(Vec<Vec<u8>>, Vec<PassTime>)> {
        let ctx = self.ctx;
        self.end_pass();
        let total: u64 = reads.iter().map(|r| r.2.div_ceil(4) * 4).sum();
        let stamps = self
            .profiler
            .as_ref()
            .map(|p| p.labels.len() as u64 * 16)
            .unwrap_or(0);
        let staging_bytes = total + stamps;
        let result = ctx.scoped("submit", || {
            let staging = if staging_bytes > 0 {
                Some(ctx.device.create_buffer(&wgpu::BufferDescriptor {
                    label: Some("hstu readback"),
                    size: staging_bytes.div_ceil(256) * 256,
                    usage: wgpu::BufferUsages::MAP_READ | wgpu::BufferUsages::COPY_DST,
                    mapped_at_creation: false,
                }))
            } else {
                None
            };
            let mut resolve = None;
            if let (Some(p), Some(st)) = (self.profiler.as_ref(), staging.as_ref())
                && !p.labels.is_empty()
            {
                let n = p.labels.len() as u32 * 2;
                let rb = ctx.device.create_buffer(&wgpu::BufferDescriptor {
                    label: Some("hstu timestamps"),
                    size: (n as u64 * 8).div_ceil(256) * 256,
                    usage: wgpu::BufferUsages::QUERY_RESOLVE | wgpu::BufferUsages::COPY_SRC,
                    mapped_at_creation: false,
                });
                self.encoder.resolve_query_set(&p.set, 0..n, &rb, 0);
                self.encoder
                    .copy_buffer_to_buffer(&rb, 0, st, total, n as u64 * 8);
                resolve = Some(rb);
            }
            let mut off = 0;
            for &(buf, src_off, bytes) in reads {
                let b = bytes.div_ceil(4) * 4;
                if let Some(st) = staging.as_ref()
                    && b > 0
                {
                    self.encoder.copy_buffer_to_buffer(buf, src_off, st, off, b);
                }
                off += b;
            }
            for (buffer, data) in &self.arenas {
                ctx.queue.write_buffer(buffer, 0, data);
            }
            let encoder = std::mem::replace(
                &mut self.encoder,
                ctx.device
                    .create_command_encoder(&wgpu::CommandEncoderDescriptor { label: None }),
            );
            ctx.queue.submit([encoder.finish()]);
            drop(resolve);
            Ok(staging)
        })?;
        let staging = result;
        let mut out = Vec::with_capacity(reads.len());
        let mut times = Vec::new();
        if let Some(st) = staging {
            let (tx, rx) = std::sync::mpsc::channel();
            st.map_async(wgpu::MapMode::Read, .., move |r| {
                let _ = tx.send(r);
            });
            ctx.wait()?;
            rx.recv()
                .map_err(|_| Error::Gpu("readback: map callback dropped".into()))?
                .map_err(|e| Error::Gpu(format!("readback: {e}")))?;
            {
                let view = st
                    .get_mapped_range(..)
                    .map_err(|e| Error::Gpu(format!("readback: {e:?}")))?;
                let mut off = 0usize;
                for &(_, _, bytes) in reads {
                    out.push(view[off..off + bytes as usize].to_vec());
                    off += bytes.div_ceil(4) as usize * 4;
                }
                if let Some(p) = self.profiler.as_ref() {
                    let period = ctx.queue.get_timestamp_period() as f64;
                    let raw: Vec<u64> = bytemuck::pod_collect_to_vec(
                        &view[total as usize..(total + stamps) as usize],
                    );
                    for (i, label) in p.labels.iter().enumerate() {
                        let (b, e) = (raw[2 * i], raw[2 * i + 1]);
                        times.push(PassTime {
                            label: label.clone(),
                            ns: e.saturating_sub(b) as f64 * period,
                        });
                    }
                }
            }
            st.unmap();
        } else {
            ctx.wait()?;
        }
        ctx.check_fault()?;
        let arenas: Vec<wgpu::Buffer> = self.arenas.drain(..).map(|(b, _)| b).collect();
        ctx.give_buffers(arenas);
        ctx.give_buffers(self.scratch.drain(..));
        Ok((out, times))
    }
}

/// Bytes -> f32 values.
pub fn to_f32(bytes: &[u8]) -> Vec<f32> {
    bytemuck::pod_collect_to_vec(bytes)
}

/// Bytes -> u32 values.
pub fn to_u32(bytes: &[u8]) -> Vec<u32> {
    bytemuck::pod_collect_to_vec(bytes)
}
