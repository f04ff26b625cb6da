//! Loading a training set: pairs images with labels, turns labels into cells with
//! separation borders, measures the class balance over the whole set, computes the
//! weight maps and the normalisation statistics.

use std::path::Path;

use unet_io::{ColorMode, Image, Label, LabelKind};
use unet_nn::Normalization;

use crate::config::{LabelMode, NormMode};
use crate::error::{Result, TrainError};
use crate::sampling::TrainImage;
use crate::weights::{ClassCounts, WeightParams, instances, separate_touching, weight_map};

/// A labelled image as read: the image, and the cells after separation (instance ids,
/// touching cells split by one-pixel background lines).
#[derive(Debug, Clone)]
pub struct LabelledImage {
    pub name: String,
    pub image: Image,
    pub cells: Vec<u32>,
}

fn distinct_at_most_two(v: &[u32]) -> bool {
    let first_nonzero = v.iter().copied().find(|&x| x != 0);
    v.iter().all(|&x| x == 0 || Some(x) == first_nonzero)
}

/// The cells of a label image (read as instance ids) as the mode says: instance ids as
/// they are, or the 4-connected components of a binary mask, with touching cells split by
/// one-pixel separation borders. `path` names the file in errors.
pub fn label_cells(label: &Label, mode: LabelMode, path: &Path) -> Result<Vec<u32>> {
    let (w, h) = label.size();
    let is_instance = match mode {
        LabelMode::Instance => true,
        LabelMode::Binary => {
            if !distinct_at_most_two(&label.data) {
                return Err(TrainError::Data(format!(
                    "{}: has more than two values but --label-mode is binary; use instance",
                    path.display()
                )));
            }
            false
        }
        LabelMode::Auto => !distinct_at_most_two(&label.data),
    };
    Ok(separate_touching(&instances(&label.data, w, h, is_instance), w, h))
}

/// Reads and pairs a folder of images with a folder of labels (all pages of stacks).
pub fn load_labelled(images: &Path, labels: &Path, mode: LabelMode) -> Result<Vec<LabelledImage>> {
    let mut out = Vec::new();
    for pair in unet_io::pair_by_stem(images, labels)? {
        let (imgs, labs) = pair.load(ColorMode::Gray, LabelKind::Instance)?;
        let multi = imgs.len() > 1;
        for (k, (image, label)) in imgs.into_iter().zip(labs).enumerate() {
            let cells = label_cells(&label, mode, &pair.label)?;
            let name = if multi { format!("{}[{k}]", pair.stem) } else { pair.stem.clone() };
            out.push(LabelledImage { name, image, cells });
        }
    }
    if !out.iter().any(|l| l.cells.iter().any(|&c| c != 0)) {
        return Err(TrainError::Data(format!(
            "{}: no label has any foreground (cells); annotate cells with non-zero values",
            labels.display()
        )));
    }
    Ok(out)
}

/// Per-channel mean and standard deviation of values scaled to [0, 1].
fn stats(img: &Image) -> (Vec<f32>, Vec<f32>) {
    let scale = img.kind.max_value();
    (0..img.channels)
        .map(|c| {
            let p = img.plane(c);
            let n = p.len() as f64;
            let mean = p.iter().map(|&v| (v / scale) as f64).sum::<f64>() / n;
            let var = p.iter().map(|&v| ((v / scale) as f64 - mean).powi(2)).sum::<f64>() / n;
            (mean as f32, var.sqrt().max(1e-6) as f32)
        })
        .unzip()
}

/// Weight maps, class balance and normalisation for a labelled set.
pub fn prepare(
    set: &[LabelledImage],
    params: &WeightParams,
    norm: NormMode,
) -> (Vec<TrainImage>, Normalization, Vec<f32>) {
    let mut counts = ClassCounts::default();
    for l in set {
        counts.add(&l.cells.iter().map(|&c| u32::from(c != 0)).collect::<Vec<_>>());
    }
    let mut class_weight = counts.balance();
    class_weight.resize(2, 1.0);
    let normalization = match norm {
        NormMode::PerImage => Normalization::PerImage,
        NormMode::Fixed => {
            let (mut sum, mut sum2, mut n) = (0.0f64, 0.0f64, 0.0f64);
            for l in set {
                let s = l.image.kind.max_value() as f64;
                for &v in &l.image.data {
                    sum += v as f64 / s;
                    sum2 += (v as f64 / s).powi(2);
                    n += 1.0;
                }
            }
            let mean = sum / n;
            Normalization::Fixed { mean: mean as f32, std: (sum2 / n - mean * mean).max(1e-12).sqrt() as f32 }
        }
    };
    let images = set
        .iter()
        .map(|l| {
            let (w, h) = l.image.size();
            let scale = l.image.kind.max_value();
            let (mean, std) = match normalization {
                Normalization::PerImage => stats(&l.image),
                Normalization::Fixed { mean, std } => (vec![mean; l.image.channels], vec![std; l.image.channels]),
            };
            TrainImage {
                width: w,
                height: h,
                channels: l.image.channels,
                data: l.image.data.iter().map(|&v| v / scale).collect(),
                mean,
                std,
                classes: l.cells.iter().map(|&c| u32::from(c != 0)).collect(),
                weights: weight_map(&l.cells, w, h, &class_weight, params),
            }
        })
        .collect();
    (images, normalization, class_weight)
}
