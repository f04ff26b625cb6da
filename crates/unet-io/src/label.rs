//! Label images: binary masks (0/1 or 0/255), instance ids (0 = background) or semantic
//! class indices, read as `u32` and checked against what the caller declares.

use std::collections::BTreeSet;
use std::path::Path;

use unet_grid::Grid;

use crate::error::{IoError, Result};
use crate::read::{RawPage, Samples, read_raw_pages};

/// What the values of a label image mean.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LabelKind {
    /// Foreground/background: values {0, 1} or {0, 255}; read as 0/1.
    Binary,
    /// Instance ids: 0 = background, every other value one object.
    Instance,
    /// Semantic classes `0..k`.
    Classes(u32),
}

/// A label image: one plane of `u32` values, row-major (`Grid::new(width, height, data)`).
pub type Label = Grid<u32>;

fn page_to_values(path: &Path, page: RawPage) -> Result<Vec<u32>> {
    if page.channels != 1 {
        // RGB labels are accepted only when the three channels agree (a gray PNG saved as RGB).
        let n = page.width * page.height;
        let vals = page_values(path, page.samples)?;
        let mut out = Vec::with_capacity(n);
        for px in vals.chunks_exact(3) {
            if px[0] != px[1] || px[1] != px[2] {
                return Err(IoError::LabelValues {
                    path: path.to_path_buf(),
                    values: "in colour".into(),
                    expected: "a one-channel label image".into(),
                    fix: "save labels as 8/16-bit gray or 32-bit integer TIFF",
                });
            }
            out.push(px[0]);
        }
        return Ok(out);
    }
    page_values(path, page.samples)
}

fn page_values(path: &Path, samples: Samples) -> Result<Vec<u32>> {
    Ok(match samples {
        Samples::U8(v) => v.into_iter().map(u32::from).collect(),
        Samples::U16(v) => v.into_iter().map(u32::from).collect(),
        Samples::U32(v) => v,
        Samples::F32(v) => {
            if v.iter().any(|x| !x.is_finite() || *x < 0.0 || x.fract() != 0.0 || *x > 16_777_216.0) {
                return Err(IoError::LabelValues {
                    path: path.to_path_buf(),
                    values: "with fractions, negatives or NaN".into(),
                    expected: "integer labels".into(),
                    fix: "labels must be whole numbers (save as 8/16/32-bit integer)",
                });
            }
            v.into_iter().map(|x| x as u32).collect()
        }
    })
}

fn summarize(values: &BTreeSet<u32>) -> String {
    let shown: Vec<String> = values.iter().take(8).map(|v| v.to_string()).collect();
    if values.len() > 8 {
        format!("{{{}, ... ({} distinct)}}", shown.join(", "), values.len())
    } else {
        format!("{{{}}}", shown.join(", "))
    }
}

fn check_kind(path: &Path, data: &mut [u32], kind: LabelKind) -> Result<()> {
    let distinct: BTreeSet<u32> = data.iter().copied().collect();
    match kind {
        LabelKind::Binary => {
            let max = distinct.iter().next_back().copied().unwrap_or(0);
            let ok = distinct.iter().all(|&v| v == 0 || v == max) && (max == 1 || max == 255 || max == 0);
            if !ok {
                return Err(IoError::LabelValues {
                    path: path.to_path_buf(),
                    values: summarize(&distinct),
                    expected: "a binary mask (0/1 or 0/255)".into(),
                    fix: "declare the labels as instance ids or classes, or binarise them",
                });
            }
            if max == 255 {
                data.iter_mut().for_each(|v| *v = u32::from(*v != 0));
            }
        }
        LabelKind::Instance => {}
        LabelKind::Classes(k) => {
            if let Some(&bad) = distinct.iter().find(|&&v| v >= k) {
                let _ = bad;
                return Err(IoError::LabelValues {
                    path: path.to_path_buf(),
                    values: summarize(&distinct),
                    expected: format!("{k} classes (values 0..{})", k - 1),
                    fix: "set the number of classes to match the labels",
                });
            }
        }
    }
    Ok(())
}

/// Reads every page of a label file, checked against `kind`.
pub fn read_label_stack(path: &Path, kind: LabelKind) -> Result<Vec<Label>> {
    read_raw_pages(path)?
        .into_iter()
        .map(|page| {
            let (width, height) = (page.width, page.height);
            let mut data = page_to_values(path, page)?;
            check_kind(path, &mut data, kind)?;
            Ok(Label::new(width, height, data))
        })
        .collect()
}

/// Reads a single-page label file, checked against `kind`.
pub fn read_label(path: &Path, kind: LabelKind) -> Result<Label> {
    let mut pages = read_label_stack(path, kind)?;
    if pages.len() != 1 {
        return Err(IoError::NotSinglePage { path: path.to_path_buf(), pages: pages.len() });
    }
    Ok(pages.remove(0))
}
