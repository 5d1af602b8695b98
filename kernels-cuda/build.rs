//! Compiles `csrc/*.cu` to sm_90a cubins when an `nvcc` is found (env `NVCC`, then `PATH`, then
//! a pip-installed `nvidia/cu13/bin/nvcc` in python's site-packages). The cubins are embedded by
//! `src/kernels.rs`; without nvcc the crate still builds and loads kernels from
//! `HSTU_CUDA_PTX_DIR` at run time. `HSTU_CUDA_NO_NVCC=1` skips the compile step.
use std::path::{Path, PathBuf};
use std::process::Command;

/// Kernel translation units (stems): each becomes `$OUT_DIR/<stem>.cubin`.
const UNITS: &[&str] = &[
    "hstu_attention_fwd_sm90",
    "hstu_attention_bwd_sm90",
    "hstu_attention_wgmma_sm90",
    "elementwise",
    "train_ops",
];

fn find_nvcc() -> Option<PathBuf> {
    if let Ok(p) = std::env::var("NVCC") {
        return Some(PathBuf::from(p));
    }
    if let Ok(path) = std::env::var("PATH") {
        for dir in std::env::split_paths(&path) {
            let cand = dir.join("nvcc");
            if cand.is_file() {
                return Some(cand);
            }
        }
    }
    for cand in ["/usr/local/cuda/bin/nvcc"] {
        if Path::new(cand).is_file() {
            return Some(PathBuf::from(cand));
        }
    }
    let out = Command::new("python3")
        .args([
            "-c",
            "import site; print('\\n'.join(site.getsitepackages()))",
        ])
        .output()
        .ok()?;
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .map(|l| Path::new(l).join("nvidia/cu13/bin/nvcc"))
        .find(|p| p.is_file())
}

fn main() {
    println!("cargo::rustc-check-cfg=cfg(hstu_cuda_kernels)");
    println!("cargo::rerun-if-changed=csrc");
    println!("cargo::rerun-if-env-changed=NVCC");
    println!("cargo::rerun-if-env-changed=HSTU_CUDA_NO_NVCC");
    if std::env::var_os("HSTU_CUDA_NO_NVCC").is_some() {
        return;
    }
    let Some(nvcc) = find_nvcc() else {
        println!("cargo::warning=nvcc not found: hstu-cuda kernels load from HSTU_CUDA_PTX_DIR");
        return;
    };
    let out_dir = PathBuf::from(std::env::var("OUT_DIR").expect("OUT_DIR"));
    let mut log = String::new();
    for stem in UNITS {
        let src = Path::new("csrc").join(format!("{stem}.cu"));
        let dst = out_dir.join(format!("{stem}.cubin"));
        let out = Command::new(&nvcc)
            .args([
                "-cubin",
                "-gencode=arch=compute_90a,code=sm_90a",
                "-O3",
                "-std=c++17",
            ])
            .args(["-Xptxas", "-v", "-lineinfo", "-o"])
            .arg(&dst)
            .arg(&src)
            .output()
            .unwrap_or_else(|e| panic!("running {}: {e}", nvcc.display()));
        log.push_str(&String::from_utf8_lossy(&out.stderr));
        if !out.status.success() {
            panic!(
                "nvcc failed on {}:\n{}",
                src.display(),
                String::from_utf8_lossy(&out.stderr)
            );
        }
    }
    std::fs::write(out_dir.join("ptxas.log"), log).expect("write ptxas.log");
    println!("cargo::rustc-cfg=hstu_cuda_kernels");
}
