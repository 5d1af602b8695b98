//! Cross-vendor GPU test harness: one test body run on every adapter wgpu enumerates, compared with
//! the CPU reference under named tolerances; adapters lacking a feature skip that variant with a
//! printed reason, and no adapter at all prints why and skips.

use hstu_runtime::gpu::{GpuContext, describe_adapter, enumerate_adapters};
use hstu_shaders::Variant;

/// A named absolute tolerance with the reason beside it.
#[derive(Clone, Copy, Debug)]
pub struct Tolerance {
    pub name: &'static str,
    pub abs: f64,
}

impl Tolerance {
    /// f32 kernels vs the f64 reference on the same f32 inputs: summation order and f32 rounding
    /// over <= 4k-term dot products (measured <= 2e-6 on lavapipe).
    pub const F32_KERNEL: Tolerance = Tolerance {
        name: "F32_KERNEL",
        abs: 2e-5,
    };
    /// f16 storage of q/k/v (inputs rounded identically for the reference), f32 accumulation.
    pub const F16_STORAGE: Tolerance = Tolerance {
        name: "F16_STORAGE",
        abs: 5e-5,
    };
    /// Cooperative matrices: inputs f16 and a_ij rounded to f16 before P V (relative 2^-11).
    pub const COOP_F16: Tolerance = Tolerance {
        name: "COOP_F16",
        abs: 2e-3,
    };
    /// Whole encoder in f32 on the GPU vs the float64 golden (the brief's 1e-4 for `--device gpu`).
    pub const F32_GOLDEN: Tolerance = Tolerance {
        name: "F32_GOLDEN",
        abs: 1e-4,
    };
}

/// Every adapter that yields a device, printed with its driver; empty (with a printed reason) if none.
pub fn contexts() -> Vec<GpuContext> {
    let adapters = enumerate_adapters();
    if adapters.is_empty() {
        println!(
            "SKIP: wgpu enumerates no adapter (WGPU_BACKEND={:?}); install mesa-vulkan-drivers for lavapipe",
            std::env::var("WGPU_BACKEND").ok()
        );
    }
    let mut out = Vec::new();
    for a in adapters {
        let info = a.get_info();
        match GpuContext::from_adapter(&a) {
            Ok(ctx) => {
                println!("adapter: {}", ctx.adapter_summary());
                out.push(ctx);
            }
            Err(e) => println!("SKIP adapter {}: {e}", describe_adapter(&info)),
        }
    }
    out
}

/// Run `body` on every adapter.
pub fn for_each_adapter(test: &str, mut body: impl FnMut(&GpuContext)) {
    for ctx in contexts() {
        println!("[{test}] on {} ({:?})", ctx.info.name, ctx.info.backend);
        body(&ctx);
    }
}

/// Whether `variant` runs on `ctx`; prints the skip reason otherwise.
pub fn supports(ctx: &GpuContext, test: &str, variant: Variant) -> bool {
    match ctx.variant_unsupported(variant) {
        None => true,
        Some(why) => {
            println!(
                "SKIP [{test}] {} on {}: {why}",
                variant.name(),
                ctx.info.name
            );
            false
        }
    }
}

/// Panics with index, actual and expected when `|actual - expected| > tol` anywhere.
pub fn assert_close(what: &str, actual: &[f32], expected: &[f64], tol: Tolerance) {
    assert_eq!(actual.len(), expected.len(), "{what}: length");
    let mut worst = (0.0f64, 0usize);
    for (i, (&a, &e)) in actual.iter().zip(expected).enumerate() {
        let d = (a as f64 - e).abs();
        if d.is_nan() || d > worst.0 {
            worst = (if d.is_nan() { f64::INFINITY } else { d }, i);
        }
    }
    let (err, i) = worst;
    println!(
        "{what}: max |error| {err:.3e} (tolerance {} = {:.0e})",
        tol.name, tol.abs
    );
    assert!(
        err <= tol.abs,
        "{what}: index {i}: actual {} expected {} (error {err:.3e} > {} {:.0e})",
        actual[i],
        expected[i],
        tol.name,
        tol.abs
    );
}
