//! `model.safetensors` (spec section 2): the reference tensor names, F32/F16/BF16 accepted,
//! every name, shape and dtype checked, a leading `module.` stripped.

use crate::config::ModelConfig;
use crate::error::{Error, Result};
use crate::real::Real;
use crate::rng::Rng;
use crate::tensor::Mat;
use safetensors::{Dtype, SafeTensors};
use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};

/// Largest checkpoint file accepted (checked on the file size before reading).
pub const MAX_CHECKPOINT_BYTES: u64 = 64 << 30;

/// Weights of one HSTU layer.
#[derive(Clone, Debug, PartialEq)]
pub struct LayerWeights<R> {
    /// W_uvqk: [D, 2*H*dv + 2*H*dqk]; columns u | v | q | k, each head-major.
    pub uvqk: Mat<R>,
    /// pos_w: [2N - 1], indexed by N - 1 + j - i.
    pub pos_w: Vec<R>,
    /// ts_w: [num_time_buckets + 1].
    pub ts_w: Vec<R>,
    /// W_o: [D, H*dv] (torch Linear layout).
    pub o_w: Mat<R>,
    /// b_o: [D].
    pub o_b: Vec<R>,
}

/// The ranking head of spec section 5.
#[derive(Clone, Debug, PartialEq)]
pub struct RankingWeights<R> {
    /// [num_actions, D]
    pub action_emb: Mat<R>,
    /// [hidden, D], [hidden]
    pub mlp0_w: Mat<R>,
    pub mlp0_b: Vec<R>,
    /// [T, hidden], [T]
    pub mlp2_w: Mat<R>,
    pub mlp2_b: Vec<R>,
}

/// All parameters of a model.
#[derive(Clone, Debug, PartialEq)]
pub struct Weights<R> {
    /// [num_items + 1, D], row 0 = padding.
    pub item_emb: Mat<R>,
    /// [N, D]
    pub pos_emb: Mat<R>,
    pub layers: Vec<LayerWeights<R>>,
    pub ranking: Option<RankingWeights<R>>,
}

pub const ITEM_EMB: &str = "_embedding_module._item_emb.weight";
pub const POS_EMB: &str = "_input_features_preproc._pos_emb.weight";

pub fn layer_name(i: usize, leaf: &str) -> String {
    format!("_hstu._attention_layers.{i}.{leaf}")
}

/// One expected tensor: its reference name and shape.
#[derive(Clone, Debug)]
pub struct TensorSpec {
    pub name: String,
    pub shape: Vec<usize>,
}

/// Every tensor a config implies, in a stable order.
pub fn expected_tensors(cfg: &ModelConfig) -> Vec<TensorSpec> {
    let d = cfg.embedding_dim;
    let n = cfg.n();
    let t = |name: String, shape: Vec<usize>| TensorSpec { name, shape };
    let mut v = vec![
        t(ITEM_EMB.into(), vec![cfg.num_items + 1, d]),
        t(POS_EMB.into(), vec![n, d]),
    ];
    for i in 0..cfg.num_blocks {
        v.push(t(layer_name(i, "_uvqk"), vec![d, cfg.uvqk_dim()]));
        v.push(t(layer_name(i, "_rel_attn_bias._pos_w"), vec![2 * n - 1]));
        v.push(t(
            layer_name(i, "_rel_attn_bias._ts_w"),
            vec![cfg.num_time_buckets + 1],
        ));
        v.push(t(layer_name(i, "_o.weight"), vec![d, cfg.hdv()]));
        v.push(t(layer_name(i, "_o.bias"), vec![d]));
    }
    if let Some(r) = &cfg.ranking {
        v.push(t(
            "ranking.action_emb.weight".into(),
            vec![r.num_actions, d],
        ));
        v.push(t("ranking.mlp.0.weight".into(), vec![r.mlp_hidden_dim, d]));
        v.push(t("ranking.mlp.0.bias".into(), vec![r.mlp_hidden_dim]));
        v.push(t(
            "ranking.mlp.2.weight".into(),
            vec![r.num_tasks(), r.mlp_hidden_dim],
        ));
        v.push(t("ranking.mlp.2.bias".into(), vec![r.num_tasks()]));
    }
    v
}

impl<R: Real> Weights<R> {
    /// Flat `(name, shape, values)` view in the order of [`expected_tensors`].
    pub fn named(&self) -> Vec<(String, Vec<usize>, &[R])> {
        let mut v: Vec<(String, Vec<usize>, &[R])> = vec![
            (
                ITEM_EMB.into(),
                self.item_emb.shape().to_vec(),
                &self.item_emb.data,
            ),
            (
                POS_EMB.into(),
                self.pos_emb.shape().to_vec(),
                &self.pos_emb.data,
            ),
        ];
        for (i, l) in self.layers.iter().enumerate() {
            v.push((
                layer_name(i, "_uvqk"),
                l.uvqk.shape().to_vec(),
                &l.uvqk.data,
            ));
            v.push((
                layer_name(i, "_rel_attn_bias._pos_w"),
                vec![l.pos_w.len()],
                &l.pos_w,
            ));
            v.push((
                layer_name(i, "_rel_attn_bias._ts_w"),
                vec![l.ts_w.len()],
                &l.ts_w,
            ));
            v.push((
                layer_name(i, "_o.weight"),
                l.o_w.shape().to_vec(),
                &l.o_w.data,
            ));
            v.push((layer_name(i, "_o.bias"), vec![l.o_b.len()], &l.o_b));
        }
        if let Some(r) = &self.ranking {
            v.push((
                "ranking.action_emb.weight".into(),
                r.action_emb.shape().to_vec(),
                &r.action_emb.data,
            ));
            v.push((
                "ranking.mlp.0.weight".into(),
                r.mlp0_w.shape().to_vec(),
                &r.mlp0_w.data,
            ));
            v.push(("ranking.mlp.0.bias".into(), vec![r.mlp0_b.len()], &r.mlp0_b));
            v.push((
                "ranking.mlp.2.weight".into(),
                r.mlp2_w.shape().to_vec(),
                &r.mlp2_w.data,
            ));
            v.push(("ranking.mlp.2.bias".into(), vec![r.mlp2_b.len()], &r.mlp2_b));
        }
        v
    }

    /// Build from a name -> values map whose names and shapes were checked against `cfg`.
    fn from_map(cfg: &ModelConfig, mut map: HashMap<String, Vec<R>>) -> Self {
        let d = cfg.embedding_dim;
        let mut take = |name: &str| map.remove(name).expect("checked tensor present");
        let item_emb = Mat::from_vec(cfg.num_items + 1, d, take(ITEM_EMB));
        let pos_emb = Mat::from_vec(cfg.n(), d, take(POS_EMB));
        let layers = (0..cfg.num_blocks)
            .map(|i| LayerWeights {
                uvqk: Mat::from_vec(d, cfg.uvqk_dim(), take(&layer_name(i, "_uvqk"))),
                pos_w: take(&layer_name(i, "_rel_attn_bias._pos_w")),
                ts_w: take(&layer_name(i, "_rel_attn_bias._ts_w")),
                o_w: Mat::from_vec(d, cfg.hdv(), take(&layer_name(i, "_o.weight"))),
                o_b: take(&layer_name(i, "_o.bias")),
            })
            .collect();
        let ranking = cfg.ranking.as_ref().map(|r| RankingWeights {
            action_emb: Mat::from_vec(r.num_actions, d, take("ranking.action_emb.weight")),
            mlp0_w: Mat::from_vec(r.mlp_hidden_dim, d, take("ranking.mlp.0.weight")),
            mlp0_b: take("ranking.mlp.0.bias"),
            mlp2_w: Mat::from_vec(
                r.num_tasks(),
                r.mlp_hidden_dim,
                take("ranking.mlp.2.weight"),
            ),
            mlp2_b: take("ranking.mlp.2.bias"),
        });
        Weights {
            item_emb,
            pos_emb,
            layers,
            ranking,
        }
    }

    /// Element type conversion.
    pub fn cast<S: Real>(&self) -> Weights<S> {
        let v = |x: &[R]| {
            x.iter()
                .map(|a| S::from_f64c(a.to_f64c()))
                .collect::<Vec<S>>()
        };
        Weights {
            item_emb: self.item_emb.cast(),
            pos_emb: self.pos_emb.cast(),
            layers: self
                .layers
                .iter()
                .map(|l| LayerWeights {
                    uvqk: l.uvqk.cast(),
                    pos_w: v(&l.pos_w),
                    ts_w: v(&l.ts_w),
                    o_w: l.o_w.cast(),
                    o_b: v(&l.o_b),
                })
                .collect(),
            ranking: self.ranking.as_ref().map(|r| RankingWeights {
                action_emb: r.action_emb.cast(),
                mlp0_w: r.mlp0_w.cast(),
                mlp0_b: v(&r.mlp0_b),
                mlp2_w: r.mlp2_w.cast(),
                mlp2_b: v(&r.mlp2_b),
            }),
        }
    }

    /// Seeded initialisation of spec section 7: item embeddings truncated normal (std 0.02),
    /// pos_w/ts_w normal (std 0.02), other matrices xavier-normal, biases as torch's Linear.
    pub fn seeded(cfg: &ModelConfig, seed: u64) -> Self {
        let mut rng = Rng::new(seed);
        let d = cfg.embedding_dim;
        let mut fill = |n: usize, f: &mut dyn FnMut(&mut Rng) -> f64| -> Vec<R> {
            (0..n).map(|_| R::from_f64c(f(&mut rng))).collect()
        };
        let xavier = |fan_in: usize, fan_out: usize| (2.0 / (fan_in + fan_out) as f64).sqrt();
        let mut item = fill((cfg.num_items + 1) * d, &mut |r| r.truncated_normal(0.02));
        item[..d].iter_mut().for_each(|x| *x = R::zero());
        let item_emb = Mat::from_vec(cfg.num_items + 1, d, item);
        let std_pos = xavier(cfg.n(), d);
        let pos_emb = Mat::from_vec(cfg.n(), d, fill(cfg.n() * d, &mut |r| r.normal() * std_pos));
        let mut layers = Vec::new();
        for _ in 0..cfg.num_blocks {
            let std_uvqk = xavier(d, cfg.uvqk_dim());
            let std_o = xavier(cfg.hdv(), d);
            let bound = 1.0 / (cfg.hdv() as f64).sqrt();
            layers.push(LayerWeights {
                uvqk: Mat::from_vec(
                    d,
                    cfg.uvqk_dim(),
                    fill(d * cfg.uvqk_dim(), &mut |r| r.normal() * std_uvqk),
                ),
                pos_w: fill(2 * cfg.n() - 1, &mut |r| r.normal() * 0.02),
                ts_w: fill(cfg.num_time_buckets + 1, &mut |r| r.normal() * 0.02),
                o_w: Mat::from_vec(
                    d,
                    cfg.hdv(),
                    fill(d * cfg.hdv(), &mut |r| r.normal() * std_o),
                ),
                o_b: fill(d, &mut |r| (2.0 * r.uniform() - 1.0) * bound),
            });
        }
        let ranking = cfg.ranking.as_ref().map(|rc| {
            let h = rc.mlp_hidden_dim;
            let t = rc.num_tasks();
            let (b0, b2) = (1.0 / (d as f64).sqrt(), 1.0 / (h as f64).sqrt());
            RankingWeights {
                action_emb: Mat::from_vec(
                    rc.num_actions,
                    d,
                    fill(rc.num_actions * d, &mut |r| r.truncated_normal(0.02)),
                ),
                mlp0_w: Mat::from_vec(h, d, fill(h * d, &mut |r| r.normal() * xavier(d, h))),
                mlp0_b: fill(h, &mut |r| (2.0 * r.uniform() - 1.0) * b0),
                mlp2_w: Mat::from_vec(t, h, fill(t * h, &mut |r| r.normal() * xavier(h, t))),
                mlp2_b: fill(t, &mut |r| (2.0 * r.uniform() - 1.0) * b2),
            }
        });
        Weights {
            item_emb,
            pos_emb,
            layers,
            ranking,
        }
    }

    /// First non-finite value, named by tensor and flat index.
    pub fn find_non_finite(&self) -> Option<(String, usize, f64)> {
        for (name, _, values) in self.named() {
            if let Some((i, x)) = values.iter().enumerate().find(|(_, x)| !x.is_finite()) {
                return Some((name, i, x.to_f64c()));
            }
        }
        None
    }

    pub fn parameter_count(&self) -> usize {
        self.named().iter().map(|(_, _, v)| v.len()).sum()
    }
}

/// A tensor read from a safetensors file, as f64 with its stored dtype.
#[derive(Clone, Debug)]
pub struct RawTensor {
    pub dtype: Dtype,
    pub shape: Vec<usize>,
    pub values: Vec<f64>,
}

fn checkpoint_err(path: &Path, message: impl Into<String>) -> Error {
    Error::Checkpoint {
        path: path.into(),
        message: message.into(),
    }
}

fn tensor_err(path: &Path, tensor: &str, message: impl Into<String>) -> Error {
    Error::Tensor {
        path: path.into(),
        tensor: tensor.into(),
        message: message.into(),
    }
}

/// Read a file whose size is bounded before reading.
pub fn read_bounded(path: &Path, max_bytes: u64) -> Result<Vec<u8>> {
    let meta = std::fs::metadata(path).map_err(|e| Error::io(path, e))?;
    if meta.len() > max_bytes {
        return Err(checkpoint_err(
            path,
            format!("file is {} bytes, above the limit {max_bytes}", meta.len()),
        ));
    }
    // The file, then its tensors as f32 (at most twice the bytes of an f16/bf16 file).
    crate::limits::check_host_allocation(
        &format!("reading {}", path.display()),
        meta.len().saturating_mul(3),
    )?;
    std::fs::read(path).map_err(|e| Error::io(path, e))
}

/// Parse a safetensors buffer (all offsets and sizes validated by the header parser against
/// the buffer length before anything is allocated from them).
fn parse<'a>(path: &Path, bytes: &'a [u8]) -> Result<SafeTensors<'a>> {
    use safetensors::SafeTensorError as E;
    SafeTensors::deserialize(bytes).map_err(|e| {
        let message = match &e {
            E::HeaderTooSmall => {
                "file too short for a safetensors header (truncated or empty)".to_string()
            }
            E::InvalidHeaderLength => {
                "header length field exceeds the file size (truncated or lying header)".to_string()
            }
            E::HeaderTooLarge => "header length field is larger than 100 MB".to_string(),
            E::MetadataIncompleteBuffer => {
                "tensor data does not match the file size (truncated file or lying offsets)"
                    .to_string()
            }
            E::InvalidOffset(name) => {
                return tensor_err(
                    path,
                    name,
                    "data offsets are not contiguous or out of order",
                );
            }
            E::TensorInvalidInfo => {
                "a tensor's byte range does not match its shape and dtype".to_string()
            }
            other => format!("malformed safetensors header: {other}"),
        };
        checkpoint_err(path, message)
    })
}

fn decode(path: &Path, name: &str, dtype: Dtype, data: &[u8]) -> Result<Vec<f64>> {
    let chunks = |w: usize| data.chunks_exact(w);
    Ok(match dtype {
        Dtype::F32 => chunks(4)
            .map(|c| f32::from_le_bytes(c.try_into().unwrap()) as f64)
            .collect(),
        Dtype::F64 => chunks(8)
            .map(|c| f64::from_le_bytes(c.try_into().unwrap()))
            .collect(),
        Dtype::F16 => chunks(2)
            .map(|c| half::f16::from_le_bytes([c[0], c[1]]).to_f64())
            .collect(),
        Dtype::BF16 => chunks(2)
            .map(|c| half::bf16::from_le_bytes([c[0], c[1]]).to_f64())
            .collect(),
        Dtype::I64 => chunks(8)
            .map(|c| i64::from_le_bytes(c.try_into().unwrap()) as f64)
            .collect(),
        Dtype::I32 => chunks(4)
            .map(|c| i32::from_le_bytes(c.try_into().unwrap()) as f64)
            .collect(),
        other => {
            return Err(tensor_err(
                path,
                name,
                format!("unsupported dtype {other:?}"),
            ));
        }
    })
}

/// Every tensor of a safetensors file as f64 (any float or integer dtype); for goldens and tools.
pub fn load_raw(path: &Path) -> Result<BTreeMap<String, RawTensor>> {
    let bytes = read_bounded(path, MAX_CHECKPOINT_BYTES)?;
    raw_from_bytes(&bytes, path)
}

/// [`load_raw`] on bytes already in memory.
pub fn raw_from_bytes(bytes: &[u8], path: &Path) -> Result<BTreeMap<String, RawTensor>> {
    let st = parse(path, bytes)?;
    let mut out = BTreeMap::new();
    for (name, view) in st.iter() {
        let values = decode(path, name, view.dtype(), view.data())?;
        out.insert(
            name.to_string(),
            RawTensor {
                dtype: view.dtype(),
                shape: view.shape().to_vec(),
                values,
            },
        );
    }
    Ok(out)
}

/// One row of the tensor table of `hstu info`.
#[derive(Clone, Debug)]
pub struct TensorEntry {
    pub name: String,
    pub dtype: String,
    pub shape: Vec<usize>,
}

/// A loaded model directory.
#[derive(Clone, Debug)]
pub struct Model {
    pub dir: PathBuf,
    pub config: ModelConfig,
    pub weights: Weights<f32>,
    pub tensors: Vec<TensorEntry>,
}

impl Model {
    /// Load `DIR/config.json` and `DIR/model.safetensors`, checking each against the other.
    pub fn load(dir: &Path) -> Result<Model> {
        if !dir.is_dir() {
            return Err(Error::Input(format!(
                "{}: not a model directory",
                dir.display()
            )));
        }
        let config = ModelConfig::load(&dir.join("config.json"))?;
        let (weights, tensors) = load_weights(&dir.join("model.safetensors"), &config)?;
        Ok(Model {
            dir: dir.into(),
            config,
            weights,
            tensors,
        })
    }
}

/// Load and check `model.safetensors` against `cfg`: every expected name present with its shape,
/// no extra tensors, F32/F16/BF16 only.
pub fn load_weights<R: Real>(
    path: &Path,
    cfg: &ModelConfig,
) -> Result<(Weights<R>, Vec<TensorEntry>)> {
    let bytes = read_bounded(path, MAX_CHECKPOINT_BYTES)?;
    weights_from_bytes(&bytes, path, cfg)
}

/// [`load_weights`] on bytes already in memory; `path` names the source in errors.
pub fn weights_from_bytes<R: Real>(
    bytes: &[u8],
    path: &Path,
    cfg: &ModelConfig,
) -> Result<(Weights<R>, Vec<TensorEntry>)> {
    let st = parse(path, bytes)?;
    let expected = expected_tensors(cfg);
    let mut views: HashMap<String, safetensors::tensor::TensorView> = HashMap::new();
    let mut stored: Vec<(String, safetensors::tensor::TensorView)> =
        st.iter().map(|(n, v)| (n.to_string(), v)).collect();
    stored.sort_by(|a, b| a.0.cmp(&b.0));
    for (raw_name, view) in stored {
        let name = raw_name
            .strip_prefix("module.")
            .unwrap_or(&raw_name)
            .to_string();
        if views.insert(name.clone(), view).is_some() {
            return Err(tensor_err(
                path,
                &name,
                "appears twice (with and without `module.`)",
            ));
        }
    }
    let mut found: HashMap<String, Vec<R>> = HashMap::new();
    let mut entries = Vec::new();
    // Checked in the order of the config, so the first error is the same on every run.
    for spec in &expected {
        let Some(view) = views.remove(&spec.name) else {
            return Err(tensor_err(
                path,
                &spec.name,
                format!("missing (expected shape {:?})", spec.shape),
            ));
        };
        if !matches!(view.dtype(), Dtype::F32 | Dtype::F16 | Dtype::BF16) {
            return Err(tensor_err(
                path,
                &spec.name,
                format!("dtype {:?}; expected F32, F16 or BF16", view.dtype()),
            ));
        }
        if view.shape() != spec.shape.as_slice() {
            return Err(tensor_err(
                path,
                &spec.name,
                format!(
                    "shape {:?} does not match the config, which implies {:?}",
                    view.shape(),
                    spec.shape
                ),
            ));
        }
        let values = decode(path, &spec.name, view.dtype(), view.data())?;
        entries.push(TensorEntry {
            name: spec.name.clone(),
            dtype: format!("{:?}", view.dtype()),
            shape: view.shape().to_vec(),
        });
        found.insert(
            spec.name.clone(),
            values.into_iter().map(R::from_f64c).collect(),
        );
    }
    if let Some(extra) = views.keys().min() {
        return Err(tensor_err(
            path,
            extra,
            "unexpected tensor (not part of this config's model)",
        ));
    }
    Ok((Weights::from_map(cfg, found), entries))
}

/// Write bytes to `path` through a temporary file and a rename: a crash never leaves a partial file.
pub fn write_atomic(path: &Path, bytes: &[u8]) -> Result<()> {
    use std::io::Write;
    let parent = path
        .parent()
        .filter(|p| !p.as_os_str().is_empty())
        .unwrap_or(Path::new("."));
    std::fs::create_dir_all(parent).map_err(|e| Error::io(parent, e))?;
    let tmp = parent.join(format!(
        ".{}.{}.tmp",
        path.file_name()
            .map(|s| s.to_string_lossy())
            .unwrap_or_default(),
        std::process::id()
    ));
    let result = (|| {
        let mut f = std::fs::File::create(&tmp)?;
        f.write_all(bytes)?;
        f.sync_all()?;
        std::fs::rename(&tmp, path)
    })();
    if let Err(e) = result {
        let _ = std::fs::remove_file(&tmp);
        return Err(Error::io(path, e));
    }
    Ok(())
}

/// Serialise named f32 tensors (and optional i64 tensors) to safetensors bytes.
pub fn serialize_tensors(
    f32s: &[(String, Vec<usize>, Vec<f32>)],
    i64s: &[(String, Vec<usize>, Vec<i64>)],
) -> Result<Vec<u8>> {
    use safetensors::tensor::TensorView;
    let f32_bytes: Vec<Vec<u8>> = f32s
        .iter()
        .map(|(_, _, v)| v.iter().flat_map(|x| x.to_le_bytes()).collect())
        .collect();
    let i64_bytes: Vec<Vec<u8>> = i64s
        .iter()
        .map(|(_, _, v)| v.iter().flat_map(|x| x.to_le_bytes()).collect())
        .collect();
    let mut views = Vec::new();
    for ((name, shape, _), bytes) in f32s.iter().zip(&f32_bytes) {
        views.push((
            name.clone(),
            TensorView::new(Dtype::F32, shape.clone(), bytes)
                .map_err(|e| Error::Input(format!("{name}: {e}")))?,
        ));
    }
    for ((name, shape, _), bytes) in i64s.iter().zip(&i64_bytes) {
        views.push((
            name.clone(),
            TensorView::new(Dtype::I64, shape.clone(), bytes)
                .map_err(|e| Error::Input(format!("{name}: {e}")))?,
        ));
    }
    safetensors::serialize(views, None)
        .map_err(|e| Error::Input(format!("safetensors serialisation: {e}")))
}

/// Save a model directory (config.json + model.safetensors, F32), each file written atomically.
pub fn save_model<R: Real>(dir: &Path, cfg: &ModelConfig, w: &Weights<R>) -> Result<()> {
    let tensors: Vec<(String, Vec<usize>, Vec<f32>)> = w
        .named()
        .into_iter()
        .map(|(n, s, v)| (n, s, v.iter().map(|x| x.to_f64c() as f32).collect()))
        .collect();
    let bytes = serialize_tensors(&tensors, &[])?;
    write_atomic(&dir.join("model.safetensors"), &bytes)?;
    write_atomic(&dir.join("config.json"), cfg.to_json().as_bytes())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tmpdir(tag: &str) -> PathBuf {
        let d = std::env::temp_dir().join(format!("hstu-ckpt-{tag}-{}", std::process::id()));
        std::fs::create_dir_all(&d).unwrap();
        d
    }

    #[test]
    fn save_load_roundtrip() {
        let cfg = ModelConfig::tiny_for_tests();
        let w = Weights::<f32>::seeded(&cfg, 1);
        let dir = tmpdir("rt");
        save_model(&dir, &cfg, &w).unwrap();
        let m = Model::load(&dir).unwrap();
        assert_eq!(m.weights, w);
        assert_eq!(m.tensors.len(), 2 + 5 * cfg.num_blocks);
    }

    #[test]
    fn f16_and_bf16_checkpoints_load() {
        use safetensors::tensor::TensorView;
        let cfg = ModelConfig::tiny_for_tests();
        let w = Weights::<f32>::seeded(&cfg, 3);
        for dtype in [Dtype::F16, Dtype::BF16] {
            let encoded: Vec<(String, Vec<usize>, Vec<u8>)> = w
                .named()
                .into_iter()
                .map(|(name, shape, v)| {
                    let bytes = v
                        .iter()
                        .flat_map(|&x| match dtype {
                            Dtype::F16 => half::f16::from_f32(x).to_le_bytes(),
                            _ => half::bf16::from_f32(x).to_le_bytes(),
                        })
                        .collect();
                    (format!("module.{name}"), shape, bytes)
                })
                .collect();
            let views: Vec<(String, TensorView)> = encoded
                .iter()
                .map(|(n, s, b)| (n.clone(), TensorView::new(dtype, s.clone(), b).unwrap()))
                .collect();
            let bytes = safetensors::serialize(views, None).unwrap();
            let (got, entries) = weights_from_bytes::<f32>(&bytes, Path::new("x"), &cfg).unwrap();
            assert_eq!(entries[0].dtype, format!("{dtype:?}"));
            let tol = if dtype == Dtype::F16 { 1e-3 } else { 1e-2 };
            for ((name, _, a), (_, _, b)) in got.named().into_iter().zip(w.named()) {
                let err = a
                    .iter()
                    .zip(b)
                    .map(|(x, y)| (x - y).abs())
                    .fold(0.0f32, f32::max);
                assert!(err <= tol * 4.0, "{dtype:?} {name}: {err}");
            }
        }
    }

    #[test]
    fn shape_mismatch_names_tensor() {
        let cfg = ModelConfig::tiny_for_tests();
        let w = Weights::<f32>::seeded(&cfg, 1);
        let dir = tmpdir("shape");
        save_model(&dir, &cfg, &w).unwrap();
        let mut other = cfg.clone();
        other.num_items = 41;
        let err = load_weights::<f32>(&dir.join("model.safetensors"), &other)
            .unwrap_err()
            .to_string();
        assert!(err.contains(ITEM_EMB) && err.contains("shape"), "{err}");
    }

    #[test]
    fn garbage_and_truncation_rejected() {
        let cfg = ModelConfig::tiny_for_tests();
        let w = Weights::<f32>::seeded(&cfg, 1);
        let dir = tmpdir("trunc");
        save_model(&dir, &cfg, &w).unwrap();
        let p = dir.join("model.safetensors");
        let bytes = std::fs::read(&p).unwrap();
        for cut in [0, 4, 8, 100, bytes.len() - 1] {
            std::fs::write(&p, &bytes[..cut]).unwrap();
            assert!(load_weights::<f32>(&p, &cfg).is_err(), "cut {cut}");
        }
        std::fs::write(&p, b"\xff\xff\xff\xff\xff\xff\xff\x7fgarbage").unwrap();
        assert!(load_weights::<f32>(&p, &cfg).is_err());
    }
}
