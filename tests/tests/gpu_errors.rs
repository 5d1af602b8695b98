//! Failures of the GPU runtime are errors, never panics: no matching adapter, bad input; a K
//! past the catalogue is no failure.

use hstu_runtime::Error;
use hstu_runtime::checkpoint::Model;
use hstu_runtime::gpu::{GpuContext, GpuModel};
use hstu_runtime::sequences::UserSequence;
use hstu_tests::golden_dir;
use hstu_tests::gpu::for_each_adapter;

#[test]
fn gpu_errors_are_errors() {
    // SAFETY: this test binary has a single test, so no other thread reads the environment.
    unsafe { std::env::set_var("WGPU_ADAPTER_NAME", "no-such-adapter-hstu") };
    match GpuContext::new() {
        Err(Error::Gpu(msg)) => println!("no adapter: {msg}"),
        Err(e) => panic!("expected Error::Gpu, got {e}"),
        Ok(ctx) => panic!("WGPU_ADAPTER_NAME ignored: got {}", ctx.info.name),
    }
    unsafe { std::env::remove_var("WGPU_ADAPTER_NAME") };
    let model = Model::load(&golden_dir("retrieval_small")).unwrap();
    for_each_adapter("errors", |ctx| {
        let gpu = GpuModel::upload(ctx, &model).unwrap();
        let seq = UserSequence::new(1, vec![1, 2, 3], vec![10, 20, 30]);
        // A K past the catalogue is no error: every item but the history's, best first.
        let all = gpu.retrieve(std::slice::from_ref(&seq), 5000).unwrap();
        let n = model.config.num_items - seq.items.len();
        assert_eq!(all[0].items.len(), n, "k = 5000 of {n} candidates");
        assert!(all[0].items.iter().all(|i| !seq.items.contains(i)));
        assert!(all[0].scores.windows(2).all(|w| w[0] >= w[1]));
        let bad_id = UserSequence::new(1, vec![1, u32::MAX], vec![10, 20]);
        assert!(matches!(gpu.encode(&[bad_id]), Err(Error::Input(_))));
        let cache = gpu.prefill(&seq).unwrap();
        let bad = gpu.score_candidates(&cache, &[u32::MAX]);
        assert!(matches!(bad, Err(Error::Input(_))), "{bad:?}");
    });
}
