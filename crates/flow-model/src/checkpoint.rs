//! safetensors checkpoints that rebuild themselves and load in PyTorch.
//!
//! Layout: one tensor per parameter, named as PyTorch's `nn.Sequential` names
//! them (`0.weight`, `0.bias`, `2.weight`, …: linear maps at even indices,
//! activations at odd ones), stored in the model's precision. The header
//! metadata holds `format` = [`FORMAT`], `config` = the [`ModelConfig`] as JSON
//! (its `architecture` names the network's kind), and any extra entries the
//! caller adds (training step, dataset, …). Files of the first format,
//! [`FORMAT_V1`], hold an MLP's config without `architecture` and load as one.

use std::collections::{BTreeMap, HashMap};
use std::path::Path;

use safetensors::tensor::{Dtype, SafeTensors, TensorView};
use tch::{Kind, Tensor};

use crate::{ModelConfig, ModelError, Precision, Result, VelocityNet};

pub const FORMAT: &str = "flowmatch-velocity/2";
/// The format before networks other than the MLP had a place: read as an MLP.
pub const FORMAT_V1: &str = "flowmatch-velocity-mlp/1";

/// Host bytes of a tensor in little-endian order, as safetensors stores them.
fn tensor_bytes(tensor: &Tensor, precision: Precision) -> Vec<u8> {
    let host = tensor.to_device(tch::Device::Cpu).contiguous().view([-1]);
    match precision {
        Precision::F32 => Vec::<f32>::try_from(&host.to_kind(Kind::Float))
            .unwrap_or_default()
            .iter()
            .flat_map(|x| x.to_le_bytes())
            .collect(),
        Precision::F64 => Vec::<f64>::try_from(&host.to_kind(Kind::Double))
            .unwrap_or_default()
            .iter()
            .flat_map(|x| x.to_le_bytes())
            .collect(),
    }
}

/// Writes named tensors (f32, f64 or i64, any device) to `path` as
/// safetensors, atomically: the temp file is removed on failure and IO
/// errors name the path (a full disk reads "No space left on device").
pub fn write_tensors(path: &Path, tensors: &[(&str, &Tensor)]) -> Result<()> {
    let buffers = tensors
        .iter()
        .map(|(name, tensor)| {
            let host = tensor.detach().to_device(tch::Device::Cpu).contiguous();
            let shape: Vec<usize> = host.size().iter().map(|&s| s as usize).collect();
            let flat = host.view([-1]);
            let (dtype, bytes) = match host.kind() {
                Kind::Double => {
                    (Dtype::F64, Vec::<f64>::try_from(&flat)?.iter().flat_map(|x| x.to_le_bytes()).collect())
                }
                Kind::Int64 => {
                    (Dtype::I64, Vec::<i64>::try_from(&flat)?.iter().flat_map(|x| x.to_le_bytes()).collect())
                }
                _ => (
                    Dtype::F32,
                    Vec::<f32>::try_from(&flat.to_kind(Kind::Float))?
                        .iter()
                        .flat_map(|x| x.to_le_bytes())
                        .collect(),
                ),
            };
            Ok((name.to_string(), dtype, shape, bytes))
        })
        .collect::<Result<Vec<(String, Dtype, Vec<usize>, Vec<u8>)>>>()?;
    let views = buffers
        .iter()
        .map(|(name, dtype, shape, bytes)| {
            TensorView::new(*dtype, shape.clone(), bytes).map(|view| (name.clone(), view))
        })
        .collect::<std::result::Result<Vec<_>, _>>()
        .map_err(|e| ModelError::Internal(format!("cannot lay out tensors for {}: {e}", path.display())))?;
    let bytes = safetensors::serialize(views, None)
        .map_err(|e| ModelError::Internal(format!("cannot serialise tensors for {}: {e}", path.display())))?;
    let bytes = with_sorted_header(&bytes)?;
    flow_data::files::write_atomically(path, |out| out.write_all(&bytes))?;
    Ok(())
}

/// Writes `net` to `path` atomically, with `extra` entries in the header.
pub fn save(net: &VelocityNet, path: &Path, extra: &BTreeMap<String, String>) -> Result<()> {
    let config = net.config();
    let dtype = match config.precision {
        Precision::F32 => Dtype::F32,
        Precision::F64 => Dtype::F64,
    };
    let names = config.parameter_names();
    let buffers: Vec<(String, Vec<usize>, Vec<u8>)> = names
        .iter()
        .zip(net.parameters())
        .map(|((name, shape), tensor)| {
            let shape = shape.iter().map(|&s| s as usize).collect();
            (name.clone(), shape, tensor_bytes(&tensor, config.precision))
        })
        .collect();
    let views = buffers
        .iter()
        .map(|(name, shape, bytes)| {
            TensorView::new(dtype, shape.clone(), bytes).map(|view| (name.clone(), view))
        })
        .collect::<std::result::Result<Vec<_>, _>>()
        .map_err(|e| ModelError::Internal(e.to_string()))?;
    let mut metadata: HashMap<String, String> = extra.clone().into_iter().collect();
    metadata.insert("format".into(), FORMAT.into());
    metadata.insert(
        "config".into(),
        serde_json::to_string(config).map_err(|e| ModelError::Internal(e.to_string()))?,
    );
    let bytes =
        safetensors::serialize(views, Some(metadata)).map_err(|e| ModelError::Internal(e.to_string()))?;
    let bytes = with_sorted_header(&bytes)?;
    flow_data::files::write_atomically(path, |out| out.write_all(&bytes))?;
    Ok(())
}

/// `value` with every object's keys inserted in sorted order (whether or not serde_json keeps
/// insertion order in this build, they come out sorted).
fn sorted_keys(value: serde_json::Value) -> serde_json::Value {
    match value {
        serde_json::Value::Object(map) => {
            let sorted: BTreeMap<String, serde_json::Value> =
                map.into_iter().map(|(key, value)| (key, sorted_keys(value))).collect();
            serde_json::Value::Object(sorted.into_iter().collect())
        }
        other => other,
    }
}

/// The same safetensors file with its JSON header's keys in sorted order: the crate writes the
/// metadata from a hash map, whose order changes from run to run, and identical runs should
/// write identical bytes. The data and its offsets (relative to the data) are untouched; the
/// header is padded with spaces to a multiple of 8 bytes, as the format asks.
fn with_sorted_header(bytes: &[u8]) -> Result<Vec<u8>> {
    let bad = |what: &str| ModelError::Internal(format!("safetensors output: {what}"));
    let length = bytes.get(..8).ok_or_else(|| bad("no header length"))?;
    let length = u64::from_le_bytes(length.try_into().map_err(|_| bad("header length"))?) as usize;
    let header = bytes.get(8..8 + length).ok_or_else(|| bad("header past the end"))?;
    let value: serde_json::Value = serde_json::from_slice(header).map_err(|e| bad(&e.to_string()))?;
    let mut sorted = serde_json::to_vec(&sorted_keys(value)).map_err(|e| bad(&e.to_string()))?;
    sorted.resize(sorted.len().div_ceil(8) * 8, b' ');
    let mut out = Vec::with_capacity(8 + sorted.len() + bytes.len() - 8 - length);
    out.extend((sorted.len() as u64).to_le_bytes());
    out.extend(sorted);
    out.extend(&bytes[8 + length..]);
    Ok(out)
}

/// A loaded checkpoint: the network and the header's extra entries.
pub struct Checkpoint {
    pub net: VelocityNet,
    pub metadata: BTreeMap<String, String>,
}

fn not_a_checkpoint(path: &Path, reason: impl Into<String>) -> ModelError {
    ModelError::NotACheckpoint { path: path.to_owned(), reason: reason.into() }
}

fn read_file(path: &Path) -> Result<Vec<u8>> {
    if path.is_dir() {
        return Err(not_a_checkpoint(path, "it is a directory"));
    }
    std::fs::read(path).map_err(|source| ModelError::Io { path: path.to_owned(), source })
}

fn config_from_bytes(path: &Path, bytes: &[u8]) -> Result<(ModelConfig, BTreeMap<String, String>)> {
    let (_, header) = SafeTensors::read_metadata(bytes).map_err(|e| not_a_checkpoint(path, e.to_string()))?;
    let mut metadata: BTreeMap<String, String> =
        header.metadata().clone().unwrap_or_default().into_iter().collect();
    let version = metadata.get("format").cloned().unwrap_or_default();
    let first_format = version == FORMAT_V1;
    if version != FORMAT && !first_format {
        return Err(not_a_checkpoint(path, format!("its header has no `format: {FORMAT}` entry")));
    }
    let config_json =
        metadata.remove("config").ok_or_else(|| not_a_checkpoint(path, "its header has no architecture"))?;
    let bad = |e: serde_json::Error| not_a_checkpoint(path, format!("bad architecture: {e}"));
    let mut config_value: serde_json::Value = serde_json::from_str(&config_json).map_err(bad)?;
    // The first format had only MLPs and no `architecture`; a file of format 2 must name it.
    if let Some(entries) = config_value.as_object_mut().filter(|_| !first_format) {
        entries.entry("architecture").or_insert(serde_json::Value::Null);
    }
    let config = ModelConfig::from_json(config_value).map_err(bad)?;
    check_header_against_tensors(path, bytes, &config)?;
    metadata.remove("format");
    Ok((config, metadata))
}

/// The header's architecture is only believed once the tensors agree with it:
/// a tampered `hidden` or `layers` must not size an allocation.
fn check_header_against_tensors(path: &Path, bytes: &[u8], config: &ModelConfig) -> Result<()> {
    let file = SafeTensors::deserialize(bytes).map_err(|e| not_a_checkpoint(path, e.to_string()))?;
    let held = file.len() as u128;
    if config.tensor_count() != held {
        return Err(not_a_checkpoint(
            path,
            format!(
                "its header describes {} hidden layers but the file holds {held} tensors",
                config.architecture.as_mlp().layers
            ),
        ));
    }
    // Now the architecture is small enough to list the shapes.
    for (name, shape) in config.parameter_names() {
        let view = file
            .tensor(&name)
            .map_err(|_| ModelError::MissingTensor { path: path.to_owned(), name: name.clone() })?;
        let found: Vec<usize> = view.shape().to_vec();
        if found.iter().map(|&s| s as i64).ne(shape.iter().copied()) {
            return Err(ModelError::Shape { path: path.to_owned(), name, expected: shape, found });
        }
    }
    // A bad architecture in a file is a problem met while running, not a usage mistake.
    config.validate().map_err(|e| not_a_checkpoint(path, format!("bad architecture: {e}")))
}

/// Loads a checkpoint onto `device`, rebuilding the network from its header.
pub fn load(path: &Path, device: tch::Device) -> Result<Checkpoint> {
    let bytes = read_file(path)?;
    let (config, metadata) = config_from_bytes(path, &bytes)?;
    let mut net = VelocityNet::new(config, device)?;
    copy_tensors(&mut net, path, &bytes)?;
    Ok(Checkpoint { net, metadata })
}

/// Loads a checkpoint into an existing network, which must have the same architecture.
pub fn load_into(net: &mut VelocityNet, path: &Path) -> Result<BTreeMap<String, String>> {
    let bytes = read_file(path)?;
    let (config, metadata) = config_from_bytes(path, &bytes)?;
    if config.dim != net.config().dim
        || config.linear_shapes() != net.config().linear_shapes()
        || config.architecture != net.config().architecture
    {
        return Err(ModelError::Architecture {
            path: path.to_owned(),
            expected: net.config().describe(),
            found: config.describe(),
        });
    }
    copy_tensors(net, path, &bytes)?;
    Ok(metadata)
}

fn copy_tensors(net: &mut VelocityNet, path: &Path, bytes: &[u8]) -> Result<()> {
    let file = SafeTensors::deserialize(bytes).map_err(|e| not_a_checkpoint(path, e.to_string()))?;
    // `config_from_bytes` has checked that the file holds as many tensors as the network and
    // every one it expects, so it holds no others.
    let expected = net.config().parameter_names();
    let kind = net.kind();
    for ((name, shape), mut parameter) in expected.iter().zip(net.parameters()) {
        let view = file
            .tensor(name)
            .map_err(|_| ModelError::MissingTensor { path: path.to_owned(), name: name.clone() })?;
        let found: Vec<usize> = view.shape().to_vec();
        if found.iter().map(|&s| s as i64).ne(shape.iter().copied()) {
            return Err(ModelError::Shape {
                path: path.to_owned(),
                name: name.clone(),
                expected: shape.clone(),
                found,
            });
        }
        let host = match view.dtype() {
            Dtype::F32 => Tensor::from_slice(&decode::<4, f32>(view.data(), f32::from_le_bytes)),
            Dtype::F64 => Tensor::from_slice(&decode::<8, f64>(view.data(), f64::from_le_bytes)),
            other => return Err(not_a_checkpoint(path, format!("tensor `{name}` has dtype {other:?}"))),
        };
        let non_finite = host.isfinite().logical_not().sum(tch::Kind::Int64).int64_value(&[]);
        if non_finite > 0 {
            return Err(not_a_checkpoint(
                path,
                format!("tensor `{name}` holds {non_finite} non-finite values"),
            ));
        }
        let values = host.view(shape.as_slice()).to_kind(kind).to_device(parameter.device());
        tch::no_grad(|| parameter.copy_(&values));
    }
    Ok(())
}

fn decode<const N: usize, T>(bytes: &[u8], from_le: fn([u8; N]) -> T) -> Vec<T> {
    bytes
        .chunks_exact(N)
        .map(|chunk| {
            let mut array = [0u8; N];
            array.copy_from_slice(chunk);
            from_le(array)
        })
        .collect()
}
