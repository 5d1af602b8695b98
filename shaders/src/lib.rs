//! `hstu-shaders`: the WGSL kernels of HSTU, the table that names them, and their composed variants.
//!
//! Every op is one file under `src/wgsl/` named by its stem (`hstu_attention.wgsl`, ...). A file
//! holds all of its variants behind `//#if FLAG` / `//#if !FLAG` / `//#else` / `//#endif` lines;
//! [`compose`] keeps the lines of one [`Variant`] and prepends its prelude (`enable f16;`, the
//! `elem` storage type). A line `//#include NAME` (kept by the variant) appends the snippet
//! `src/wgsl/include/NAME.wgsl` of [`INCLUDES`], composed with the same flags, after the file's own
//! lines: WGSL declarations may come in any order, and the file's line numbers stay naga's.
//! [`SHADERS`] names every shader and the variants it offers; the tests in
//! `tests/naga_variants.rs` parse, validate and translate every composed variant (no GPU needed).
//!
//! ```
//! use hstu_shaders::{compose, Variant};
//! let wgsl = compose("hstu_matmul", Variant::F32).unwrap();
//! assert!(wgsl.contains("alias elem = f32;"));
//! ```

mod preprocess;

pub use preprocess::preprocess;

/// One way of composing a shader.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Variant {
    /// f32 storage and arithmetic; runs on every adapter.
    F32,
    /// f16 storage of the large operands (q, k, v, matrix inputs), f32 accumulation (`SHADER_F16`).
    F16,
    /// Reductions through subgroup operations (`SUBGROUP`).
    Subgroup,
    /// f16 16x16x16 cooperative matrices with f32 accumulation
    /// (`EXPERIMENTAL_COOPERATIVE_MATRIX` + `SHADER_F16`); workgroup = one subgroup (`SG`).
    CoopMatrix,
    /// f32 attention that also writes every `a_ij` (the attention capture hook).
    Capture,
}

impl Variant {
    pub const ALL: [Variant; 5] = [
        Variant::F32,
        Variant::F16,
        Variant::Subgroup,
        Variant::CoopMatrix,
        Variant::Capture,
    ];

    pub fn name(self) -> &'static str {
        match self {
            Variant::F32 => "f32",
            Variant::F16 => "f16",
            Variant::Subgroup => "subgroup",
            Variant::CoopMatrix => "coop_matrix",
            Variant::Capture => "capture",
        }
    }

    /// Preprocessor flags set for this variant.
    pub fn flags(self) -> &'static [&'static str] {
        match self {
            Variant::F32 => &[],
            Variant::F16 => &["F16"],
            Variant::Subgroup => &["SUBGROUP"],
            Variant::CoopMatrix => &["COOP", "F16"],
            Variant::Capture => &["CAPTURE"],
        }
    }

    /// Device features the variant needs.
    pub fn requirements(self) -> Requirements {
        match self {
            Variant::F32 | Variant::Capture => Requirements::default(),
            Variant::F16 => Requirements {
                shader_f16: true,
                ..Requirements::default()
            },
            Variant::Subgroup => Requirements {
                subgroup: true,
                ..Requirements::default()
            },
            Variant::CoopMatrix => Requirements {
                shader_f16: true,
                cooperative_matrix: true,
                ..Requirements::default()
            },
        }
    }

    /// naga capabilities the composed module needs to validate.
    pub fn capabilities(self) -> naga::valid::Capabilities {
        use naga::valid::Capabilities as C;
        let r = self.requirements();
        let mut caps = C::empty();
        if r.shader_f16 {
            caps |= C::SHADER_FLOAT16;
        }
        if r.subgroup {
            caps |= C::SUBGROUP;
        }
        if r.cooperative_matrix {
            caps |= C::COOPERATIVE_MATRIX;
        }
        caps
    }

    fn prelude(self) -> String {
        let mut p = String::new();
        let r = self.requirements();
        if r.shader_f16 {
            p.push_str("enable f16;\n");
        }
        if r.cooperative_matrix {
            p.push_str("enable wgpu_cooperative_matrix;\n");
        }
        let elem = if r.shader_f16 { "f16" } else { "f32" };
        p.push_str(&format!(
            "alias elem = {elem};\nalias elem4 = vec4<{elem}>;\n// variant: {}\n",
            self.name()
        ));
        p
    }
}

/// Adapter features a variant needs.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Requirements {
    pub shader_f16: bool,
    pub subgroup: bool,
    pub cooperative_matrix: bool,
}

/// One shader of the table.
#[derive(Clone, Copy, Debug)]
pub struct ShaderEntry {
    /// The op stem, also the file name under `src/wgsl/`.
    pub name: &'static str,
    /// WGSL source with preprocessor lines.
    pub source: &'static str,
    /// Compute entry points of every variant.
    pub entry_points: &'static [&'static str],
    /// Entry points of some variants only (`main_big` of the register-tiled attention variants,
    /// `main_long` of the cooperative-matrix one).
    pub variant_entry_points: &'static [(Variant, &'static str)],
    /// Variants this shader can be composed as.
    pub variants: &'static [Variant],
}

macro_rules! wgsl {
    ($name:literal) => {
        include_str!(concat!("wgsl/", $name, ".wgsl"))
    };
}

/// Every shader of the project and the variants composed from it.
pub const SHADERS: &[ShaderEntry] = &[
    ShaderEntry {
        name: "hstu_embedding",
        source: wgsl!("hstu_embedding"),
        entry_points: &["main"],
        variant_entry_points: &[],
        variants: &[Variant::F32],
    },
    ShaderEntry {
        name: "hstu_layer_norm",
        source: wgsl!("hstu_layer_norm"),
        entry_points: &["main"],
        variant_entry_points: &[],
        variants: &[Variant::F32, Variant::Subgroup],
    },
    ShaderEntry {
        name: "hstu_matmul",
        source: wgsl!("hstu_matmul"),
        entry_points: &["main", "main_skinny"],
        variant_entry_points: &[],
        variants: &[Variant::F32, Variant::F16, Variant::CoopMatrix],
    },
    ShaderEntry {
        name: "hstu_attention",
        source: wgsl!("hstu_attention"),
        entry_points: &["main", "main_small"],
        variant_entry_points: &[
            (Variant::F32, "main_big"),
            (Variant::F16, "main_big"),
            (Variant::Capture, "main_big"),
            (Variant::CoopMatrix, "main_long"),
        ],
        variants: &[
            Variant::F32,
            Variant::F16,
            Variant::CoopMatrix,
            Variant::Capture,
        ],
    },
    ShaderEntry {
        name: "hstu_gating",
        source: wgsl!("hstu_gating"),
        entry_points: &["main"],
        variant_entry_points: &[],
        variants: &[Variant::F32, Variant::Subgroup],
    },
    ShaderEntry {
        name: "hstu_l2_norm",
        source: wgsl!("hstu_l2_norm"),
        entry_points: &["main"],
        variant_entry_points: &[],
        variants: &[Variant::F32, Variant::Subgroup],
    },
    ShaderEntry {
        name: "hstu_topk",
        source: wgsl!("hstu_topk"),
        entry_points: &["score_topk", "merge_topk", "score_all"],
        variant_entry_points: &[],
        variants: &[Variant::F32],
    },
];

/// Snippets that shaders share through `//#include NAME` (code, not ops: no entry points).
pub const INCLUDES: &[(&str, &str)] = &[("hstu_row_reduce", wgsl!("include/hstu_row_reduce"))];

/// Errors of this crate.
#[derive(Debug, thiserror::Error)]
pub enum ShaderError {
    #[error("no shader named `{0}`")]
    UnknownShader(String),
    #[error("shader `{shader}` has no `{variant}` variant")]
    UnknownVariant {
        shader: String,
        variant: &'static str,
    },
    #[error("shader `{shader}`: preprocessor: {message}")]
    Preprocess { shader: String, message: String },
}

impl ShaderEntry {
    /// Every entry point of the shader composed as `variant`.
    pub fn entry_points_of(&self, variant: Variant) -> Vec<&'static str> {
        let mut eps = self.entry_points.to_vec();
        eps.extend(
            self.variant_entry_points
                .iter()
                .filter(|(v, _)| *v == variant)
                .map(|(_, e)| *e),
        );
        eps
    }
}

/// The table entry named `name`.
pub fn shader(name: &str) -> Result<&'static ShaderEntry, ShaderError> {
    SHADERS
        .iter()
        .find(|s| s.name == name)
        .ok_or_else(|| ShaderError::UnknownShader(name.to_string()))
}

/// WGSL of shader `name` composed as `variant`.
pub fn compose(name: &str, variant: Variant) -> Result<String, ShaderError> {
    let entry = shader(name)?;
    if !entry.variants.contains(&variant) {
        return Err(ShaderError::UnknownVariant {
            shader: name.to_string(),
            variant: variant.name(),
        });
    }
    let body =
        preprocess(entry.source, variant.flags()).map_err(|message| ShaderError::Preprocess {
            shader: name.to_string(),
            message,
        })?;
    Ok(variant.prelude() + &body + &includes_of(name, &body, variant.flags())?)
}

/// The snippets that the `//#include NAME` lines of `body` (a preprocessed shader) name, each
/// once and preprocessed with `flags`, in order of first mention.
fn includes_of(shader: &str, body: &str, flags: &[&str]) -> Result<String, ShaderError> {
    let error = |message: String| ShaderError::Preprocess {
        shader: shader.to_string(),
        message,
    };
    let mut out = String::new();
    let mut included: Vec<&str> = Vec::new();
    for line in body.lines() {
        let Some(rest) = line.trim_start().strip_prefix("//#include ") else {
            continue;
        };
        let name = rest.split_whitespace().next().unwrap_or("");
        if included.contains(&name) {
            continue;
        }
        let (name, source) = INCLUDES
            .iter()
            .find(|(n, _)| *n == name)
            .copied()
            .ok_or_else(|| error(format!("no include named `{name}`")))?;
        let snippet =
            preprocess(source, flags).map_err(|m| error(format!("include `{name}`: {m}")))?;
        out.push_str(&format!("\n// ---- included: {name} ----\n"));
        out.push_str(&snippet);
        included.push(name);
    }
    Ok(out)
}

/// Every `(shader, variant)` pair of the table.
pub fn all_variants() -> impl Iterator<Item = (&'static ShaderEntry, Variant)> {
    SHADERS
        .iter()
        .flat_map(|s| s.variants.iter().map(move |&v| (s, v)))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_file_opens_with_three_comment_lines() {
        for s in SHADERS {
            let head: Vec<&str> = s.source.lines().take(3).collect();
            assert!(
                head.len() == 3 && head.iter().all(|l| l.starts_with("// ")),
                "{}: the first three lines must say what, bindings, dispatch",
                s.name
            );
            assert!(
                head[0].starts_with(&format!("// {}:", s.name)),
                "{}",
                s.name
            );
            assert!(head[1].starts_with("// bindings:"), "{}", s.name);
            assert!(head[2].starts_with("// dispatch:"), "{}", s.name);
        }
    }

    #[test]
    fn includes_are_appended_once_with_the_variant_flags() {
        let plain = compose("hstu_layer_norm", Variant::F32).unwrap();
        let sub = compose("hstu_layer_norm", Variant::Subgroup).unwrap();
        assert_eq!(plain.matches("fn workgroup_sum").count(), 1);
        assert_eq!(sub.matches("fn workgroup_sum").count(), 1);
        assert!(!plain.contains("subgroupAdd") && sub.contains("subgroupAdd"));
        // The file's own lines keep their numbers: the snippet comes after them.
        let file_lines = shader("hstu_layer_norm").unwrap().source.lines().count();
        let prelude_lines = Variant::F32.prelude().lines().count();
        let main_line = plain
            .lines()
            .position(|l| l.starts_with("fn main("))
            .unwrap();
        let file_main = shader("hstu_layer_norm")
            .unwrap()
            .source
            .lines()
            .position(|l| l.starts_with("fn main("))
            .unwrap();
        assert_eq!(main_line, file_main + prelude_lines);
        assert!(plain.lines().count() > file_lines + prelude_lines);
    }

    #[test]
    fn unknown_or_repeated_includes() {
        assert!(includes_of("x", "//#include nope\n", &[]).is_err());
        let twice = "//#include hstu_row_reduce\n//#include hstu_row_reduce (again)\n";
        let once = includes_of("x", twice, &[]).unwrap();
        assert_eq!(once.matches("fn workgroup_sum").count(), 1);
        assert_eq!(includes_of("x", "// no includes\n", &[]).unwrap(), "");
    }

    #[test]
    fn every_include_is_used_and_documented() {
        for (name, source) in INCLUDES {
            assert!(
                source.starts_with(&format!("// {name} (include):")),
                "{name}: the first line says what the snippet is"
            );
            assert!(
                SHADERS
                    .iter()
                    .any(|s| s.source.contains(&format!("//#include {name}"))),
                "{name} is included by no shader"
            );
        }
    }

    #[test]
    fn unknown_names_are_errors() {
        assert!(compose("nope", Variant::F32).is_err());
        assert!(compose("hstu_embedding", Variant::CoopMatrix).is_err());
    }
}
