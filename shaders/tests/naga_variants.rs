//! Every composed variant of every shader parses, validates, and translates to SPIR-V, MSL, HLSL and
//! GLSL with naga (no GPU). A backend that cannot express a variant's capabilities (cooperative
//! matrices outside SPIR-V and MSL) is skipped with a printed reason.

use hstu_shaders::{ShaderEntry, Variant, all_variants, compose};
use naga::back::PipelineConstants;
use naga::valid::{Capabilities, ModuleInfo, ValidationFlags, Validator};

fn validate(entry: &ShaderEntry, variant: Variant) -> (naga::Module, ModuleInfo) {
    let src = compose(entry.name, variant).expect("compose");
    let module = naga::front::wgsl::parse_str(&src).unwrap_or_else(|e| {
        panic!(
            "{} [{}]: parse:\n{}",
            entry.name,
            variant.name(),
            e.emit_to_string(&src)
        )
    });
    let info = Validator::new(ValidationFlags::all(), variant.capabilities())
        .validate(&module)
        .unwrap_or_else(|e| {
            panic!(
                "{} [{}]: validate:\n{}",
                entry.name,
                variant.name(),
                e.emit_to_string(&src)
            )
        });
    (module, info)
}

/// Overrides resolved to their defaults for one entry point, as a pipeline would.
fn resolved(module: &naga::Module, info: &ModuleInfo, ep: &str) -> (naga::Module, ModuleInfo) {
    let (m, i) = naga::back::pipeline_constants::process_overrides(
        module,
        info,
        Some((naga::ShaderStage::Compute, ep)),
        &PipelineConstants::default(),
    )
    .unwrap_or_else(|e| panic!("{ep}: overrides: {e:?}"));
    (m.into_owned(), i.into_owned())
}

fn supports(backend: Capabilities, variant: Variant) -> bool {
    backend.contains(variant.capabilities())
}

#[test]
fn every_variant_validates() {
    let mut count = 0;
    for (entry, variant) in all_variants() {
        let (module, _) = validate(entry, variant);
        for ep in &entry.entry_points_of(variant) {
            assert!(
                module.entry_points.iter().any(|e| e.name == *ep),
                "{} [{}]: missing entry point {ep}",
                entry.name,
                variant.name()
            );
        }
        count += 1;
    }
    println!("validated {count} composed variants");
    assert!(count >= 15);
}

#[test]
fn every_variant_translates_to_spirv() {
    for (entry, variant) in all_variants() {
        let (module, info) = validate(entry, variant);
        for ep in &entry.entry_points_of(variant) {
            let (m, i) = resolved(&module, &info, ep);
            let options = naga::back::spv::Options::default();
            let pipeline = naga::back::spv::PipelineOptions {
                shader_stage: naga::ShaderStage::Compute,
                entry_point: ep.to_string(),
            };
            let words = naga::back::spv::write_vec(&m, &i, &options, Some(&pipeline))
                .unwrap_or_else(|e| panic!("{} [{}] {ep}: spv: {e}", entry.name, variant.name()));
            assert!(words.len() > 16);
        }
    }
}

#[test]
fn every_variant_translates_to_msl() {
    let caps = naga::back::msl::supported_capabilities();
    for (entry, variant) in all_variants() {
        if !supports(caps, variant) {
            println!(
                "skip msl {} [{}]: capabilities not in MSL backend",
                entry.name,
                variant.name()
            );
            continue;
        }
        let (module, info) = validate(entry, variant);
        for ep in &entry.entry_points_of(variant) {
            let (m, i) = resolved(&module, &info, ep);
            let options = naga::back::msl::Options {
                lang_version: (2, 4),
                fake_missing_bindings: true,
                ..Default::default()
            };
            let pipeline = naga::back::msl::PipelineOptions {
                entry_point: Some((naga::ShaderStage::Compute, ep.to_string())),
                ..Default::default()
            };
            let (text, _) = naga::back::msl::write_string(&m, &i, &options, &pipeline)
                .unwrap_or_else(|e| panic!("{} [{}] {ep}: msl: {e}", entry.name, variant.name()));
            assert!(text.contains("kernel"));
        }
    }
}

#[test]
fn every_variant_translates_to_hlsl() {
    let caps = naga::back::hlsl::supported_capabilities();
    for (entry, variant) in all_variants() {
        if !supports(caps, variant) {
            println!(
                "skip hlsl {} [{}]: capabilities not in HLSL backend",
                entry.name,
                variant.name()
            );
            continue;
        }
        let (module, info) = validate(entry, variant);
        for ep in &entry.entry_points_of(variant) {
            let (m, i) = resolved(&module, &info, ep);
            let options = naga::back::hlsl::Options {
                shader_model: naga::back::hlsl::ShaderModel::V6_2,
                fake_missing_bindings: true,
                ..Default::default()
            };
            let pipeline = naga::back::hlsl::PipelineOptions {
                entry_point: Some((naga::ShaderStage::Compute, ep.to_string())),
            };
            let mut text = String::new();
            naga::back::hlsl::Writer::new(&mut text, &options, &pipeline)
                .write(&m, &i, None)
                .unwrap_or_else(|e| panic!("{} [{}] {ep}: hlsl: {e}", entry.name, variant.name()));
            assert!(text.contains("numthreads"));
        }
    }
}

#[test]
fn every_variant_translates_to_glsl() {
    let caps = naga::back::glsl::supported_capabilities();
    for (entry, variant) in all_variants() {
        if !supports(caps, variant) {
            println!(
                "skip glsl {} [{}]: capabilities not in GLSL backend",
                entry.name,
                variant.name()
            );
            continue;
        }
        if variant.requirements().shader_f16 {
            // naga 30 lists SHADER_FLOAT16 for GLSL but its writer rejects 16-bit float scalars
            // ("A scalar with an unsupported width was requested"); wgpu's GL backend has no f16 either.
            println!(
                "skip glsl {} [{}]: naga 30 GLSL writer emits no f16",
                entry.name,
                variant.name()
            );
            continue;
        }
        let (module, info) = validate(entry, variant);
        for ep in &entry.entry_points_of(variant) {
            let (m, i) = resolved(&module, &info, ep);
            let options = naga::back::glsl::Options {
                version: naga::back::glsl::Version::Desktop(450),
                ..Default::default()
            };
            let pipeline = naga::back::glsl::PipelineOptions {
                shader_stage: naga::ShaderStage::Compute,
                entry_point: ep.to_string(),
                multiview: None,
            };
            let mut text = String::new();
            let mut writer = naga::back::glsl::Writer::new(
                &mut text,
                &m,
                &i,
                &options,
                &pipeline,
                naga::proc::BoundsCheckPolicies::default(),
            )
            .unwrap_or_else(|e| panic!("{} [{}] {ep}: glsl: {e}", entry.name, variant.name()));
            writer
                .write()
                .unwrap_or_else(|e| panic!("{} [{}] {ep}: glsl: {e}", entry.name, variant.name()));
            assert!(text.contains("void main"));
        }
    }
}

/// A shader, a variant and the pipeline constants set on it.
type ConstantCase = (&'static str, Variant, &'static [(&'static str, f64)]);

/// Pipeline constants the runtime sets beyond the defaults (the subgroup size of the cooperative
/// forms, the tiled attention's staging chunks, the small top-K sort), resolved and translated to SPIR-V.
#[test]
fn runtime_constants_translate_to_spirv() {
    let cases: &[ConstantCase] = &[
        ("hstu_attention", Variant::CoopMatrix, &[("SG", 32.0)]),
        // `main_long` forms: 16 rows with q in registers and 64-key blocks over odd chunk counts,
        // and 32 rows with every chunk, the defaults of a D = 128 head.
        (
            "hstu_attention",
            Variant::CoopMatrix,
            &[
                ("SG", 32.0),
                ("RS", 16.0),
                ("QREG", 1.0),
                ("LK", 64.0),
                ("QKT", 3.0),
                ("VT", 5.0),
            ],
        ),
        (
            "hstu_attention",
            Variant::CoopMatrix,
            &[
                ("SG", 32.0),
                ("RS", 32.0),
                ("QREG", 1.0),
                ("LK", 32.0),
                ("QKT", 8.0),
                ("VT", 8.0),
                ("VPRE", 1.0),
            ],
        ),
        (
            "hstu_attention",
            Variant::CoopMatrix,
            &[
                ("SG", 32.0),
                ("RS", 16.0),
                ("QREG", 0.0),
                ("LK", 32.0),
                ("QKT", 1.0),
                ("VT", 1.0),
                ("VPRE", 1.0),
            ],
        ),
        ("hstu_attention", Variant::F32, &[("QC", 8.0), ("VC", 8.0)]),
        ("hstu_attention", Variant::F16, &[("QC", 16.0), ("VC", 4.0)]),
        ("hstu_topk", Variant::F32, &[("SORT_N", 2048.0)]),
    ];
    for &(name, variant, constants) in cases {
        let entry = hstu_shaders::shader(name).expect("shader");
        let (module, info) = validate(entry, variant);
        let mut pc = PipelineConstants::default();
        for &(k, v) in constants {
            pc.insert(k.to_string(), v);
        }
        for ep in &entry.entry_points_of(variant) {
            let (m, i) = naga::back::pipeline_constants::process_overrides(
                &module,
                &info,
                Some((naga::ShaderStage::Compute, ep)),
                &pc,
            )
            .unwrap_or_else(|e| panic!("{name} {ep} {constants:?}: overrides: {e:?}"));
            let pipeline = naga::back::spv::PipelineOptions {
                shader_stage: naga::ShaderStage::Compute,
                entry_point: ep.to_string(),
            };
            let words = naga::back::spv::write_vec(
                &m,
                &i,
                &naga::back::spv::Options::default(),
                Some(&pipeline),
            )
            .unwrap_or_else(|e| panic!("{name} {ep} {constants:?}: spv: {e}"));
            assert!(words.len() > 16);
        }
    }
}
