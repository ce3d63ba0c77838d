//! Converts checkpoints from other ENet implementations into the engine's weights file.

use super::ModelError;
use super::enet::Layout;
use super::weights::{self, ClassInfo, Header, Model, Normalization, RawTensor};

/// Engine name of a PyTorch-ENet (davidtvs/PyTorch-ENet `models/enet.py`) state-dict key.
/// `Ok(None)`: a key that carries no weights (`num_batches_tracked`).
pub fn pytorch_enet_name(key: &str) -> Result<Option<String>, ModelError> {
    if key.ends_with(".num_batches_tracked") {
        return Ok(None);
    }
    let unknown = || ModelError::Extra(key.to_string(), Layout::PytorchEnet.name().into());
    let (module, rest) = key.split_once('.').ok_or_else(unknown)?;
    if module == "transposed_conv" {
        return match rest {
            "weight" => Ok(Some("fullconv.weight".into())),
            _ => Err(unknown()),
        };
    }
    if module == "initial_block" {
        let name = match rest {
            "main_branch.weight" => "initial.conv.weight".to_string(),
            "out_activation.weight" => "initial.prelu.weight".to_string(),
            r if r.starts_with("batch_norm.") => {
                format!("initial.bn.{}", &r["batch_norm.".len()..])
            }
            _ => return Err(unknown()),
        };
        return Ok(Some(name));
    }
    // e.g. "dilated2_4" -> stage 2, index 4; stage 3 counts from 0 in PyTorch-ENet
    // (regular3_0 .. dilated3_7) and from 1 in the paper's table.
    let digits = module.trim_start_matches(|c: char| c.is_ascii_alphabetic());
    let kind = &module[..module.len() - digits.len()];
    let (stage, index) = digits.split_once('_').ok_or_else(unknown)?;
    let (stage, mut index): (usize, usize) = (
        stage.parse().map_err(|_| unknown())?,
        index.parse().map_err(|_| unknown())?,
    );
    if !["downsample", "regular", "dilated", "asymmetric", "upsample"].contains(&kind) {
        return Err(unknown());
    }
    if stage == 3 {
        index += 1;
    }
    let block = format!("bottleneck{stage}_{index}");
    let asymmetric = kind == "asymmetric";
    let (layer, param) = match rest.split_once('.') {
        Some(("out_activation", p)) => return Ok(Some(format!("{block}.out_prelu.{p}"))),
        Some(("ext_tconv1", p)) => ("tconv", p.to_string()),
        Some(("ext_tconv1_bnorm", p)) => ("tconv", format!("bn.{p}")),
        Some((seq, p)) => {
            let (pos, p) = p.split_once('.').ok_or_else(unknown)?;
            let pos: usize = pos.parse().map_err(|_| unknown())?;
            // Sequentials are (conv, bn, act) and, for the asymmetric ext_conv2,
            // (conv, bn, act, conv, bn, act).
            let layer = match (seq, kind) {
                ("main_conv1", "upsample") => "main",
                ("ext_conv1", _) => "proj",
                ("ext_conv2", "upsample") => "expand",
                ("ext_conv2", _) if asymmetric && pos >= 3 => "conv2",
                ("ext_conv2", _) if asymmetric => "conv1",
                ("ext_conv2", _) => "conv",
                ("ext_conv3", k) if k != "upsample" => "expand",
                _ => return Err(unknown()),
            };
            let p = match pos % 3 {
                0 => p.to_string(),
                1 => format!("bn.{p}"),
                _ => format!("prelu.{p}"),
            };
            (layer, p)
        }
        None => return Err(unknown()),
    };
    Ok(Some(format!("{block}.{layer}.{param}")))
}

/// What `enet import` needs besides the checkpoint.
pub struct ImportOptions {
    pub layout: Layout,
    pub classes: Vec<ClassInfo>,
    pub void_class: Option<usize>,
    pub normalization: Normalization,
    pub provenance: Option<String>,
}

impl ImportOptions {
    /// The CamVid class table (11 classes + void at 11), inputs as `byte / 255`.
    pub fn camvid(layout: Layout) -> ImportOptions {
        ImportOptions {
            layout,
            classes: weights::camvid_classes(),
            void_class: Some(11),
            normalization: Normalization::default(),
            provenance: None,
        }
    }
}

/// Converts a checkpoint saved as safetensors into an engine weights file, and proves the
/// result loads. Returns the file and the model it holds.
pub fn import(bytes: &[u8], opts: ImportOptions) -> Result<(Vec<u8>, Model), ModelError> {
    let st = weights::parse(bytes)?;
    let mut names: Vec<&str> = st.names();
    names.sort();
    let mut tensors = Vec::new();
    for key in names {
        let target = match opts.layout {
            Layout::PytorchEnet => pytorch_enet_name(key)?,
            // The paper layout is only produced by this project's own training, which already
            // writes engine names.
            Layout::Paper => Some(key.to_string()),
        };
        let Some(name) = target else { continue };
        let shape = st
            .tensor(key)
            .map_err(|_| ModelError::Missing(key.to_string()))?
            .shape()
            .to_vec();
        let data = weights::read_f32(&st, key, &shape)?;
        tensors.push(RawTensor { name, shape, data });
    }
    let mut provenance = opts.provenance;
    if provenance.is_none() {
        provenance = weights::metadata(bytes)?
            .and_then(|m| {
                let mut kv: Vec<_> = m.into_iter().collect();
                kv.sort();
                (!kv.is_empty()).then(|| {
                    kv.iter()
                        .map(|(k, v)| format!("{k}: {v}"))
                        .collect::<Vec<_>>()
                        .join("; ")
                })
            })
            .map(|s| format!("imported from a {} checkpoint ({s})", opts.layout));
    }
    let header = Header {
        layout: opts.layout,
        classes: opts.classes,
        void_class: opts.void_class,
        normalization: opts.normalization,
        provenance,
    };
    let file = weights::write(&header, &tensors);
    let model = Model::from_safetensors(&file)?;
    Ok((file, model))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn maps_every_kind_of_key() {
        let cases = [
            ("initial_block.main_branch.weight", "initial.conv.weight"),
            (
                "initial_block.batch_norm.running_var",
                "initial.bn.running_var",
            ),
            (
                "initial_block.out_activation.weight",
                "initial.prelu.weight",
            ),
            (
                "downsample1_0.ext_conv1.0.weight",
                "bottleneck1_0.proj.weight",
            ),
            (
                "downsample1_0.ext_conv1.2.weight",
                "bottleneck1_0.proj.prelu.weight",
            ),
            ("regular1_3.ext_conv2.1.bias", "bottleneck1_3.conv.bn.bias"),
            (
                "asymmetric2_3.ext_conv2.3.weight",
                "bottleneck2_3.conv2.weight",
            ),
            (
                "asymmetric2_3.ext_conv2.4.running_mean",
                "bottleneck2_3.conv2.bn.running_mean",
            ),
            (
                "asymmetric3_6.ext_conv2.2.weight",
                "bottleneck3_7.conv1.prelu.weight",
            ),
            (
                "regular3_0.ext_conv3.0.weight",
                "bottleneck3_1.expand.weight",
            ),
            (
                "dilated3_7.out_activation.weight",
                "bottleneck3_8.out_prelu.weight",
            ),
            (
                "upsample4_0.main_conv1.1.weight",
                "bottleneck4_0.main.bn.weight",
            ),
            (
                "upsample4_0.ext_tconv1.weight",
                "bottleneck4_0.tconv.weight",
            ),
            (
                "upsample4_0.ext_tconv1_bnorm.bias",
                "bottleneck4_0.tconv.bn.bias",
            ),
            (
                "upsample5_0.ext_conv2.0.weight",
                "bottleneck5_0.expand.weight",
            ),
            ("transposed_conv.weight", "fullconv.weight"),
        ];
        for (from, to) in cases {
            assert_eq!(
                pytorch_enet_name(from).unwrap().as_deref(),
                Some(to),
                "{from}"
            );
        }
        assert_eq!(
            pytorch_enet_name("regular1_1.ext_conv1.1.num_batches_tracked").unwrap(),
            None
        );
        for bad in [
            "fc.weight",
            "regular1_1",
            "upsample4_0.ext_conv3.0.weight",
            "transposed_conv.bias",
        ] {
            assert!(
                matches!(pytorch_enet_name(bad), Err(ModelError::Extra(..))),
                "{bad}"
            );
        }
    }
}
