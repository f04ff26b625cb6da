//! OME-NGFF metadata: a lenient reader of `multiscales` (NGFF 0.1 to 0.5, Zarr v2 `.zattrs` or
//! Zarr v3 `zarr.json` attributes) for input images, and the writer of the NGFF 0.5 metadata
//! of output stores (`multiscales`, `labels`, `image-label`).
//!
//! Writing uses the types of the `ome_zarr_metadata` crate and checks the result with its
//! validator. Reading does not: those types deny unknown fields and pin the version string, so
//! they reject many real files (axes with extra keys, NGFF 0.3 string axes, `"version": "0.4.0"`).
//! The reader therefore walks the JSON itself and takes only what it needs: the axis names,
//! types and units, the path of the first dataset, and its scale.

use std::path::Path;

use ome_zarr_metadata::Validate;
use ome_zarr_metadata::v0_5::{
    Axis, AxisType, AxisUnit, CoordinateTransform, CoordinateTransformScale, ImageLabel, ImageLabelSource,
    MultiscaleImage, MultiscaleImageDataset, MultiscaleImageMetadata, OmeFields,
};
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

use crate::error::{Result, ZarrError};

/// Physical size of a pixel, as an NGFF `scale` transform of level 0 gives it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PixelSize {
    /// Size along x (width), in `unit`.
    pub x: f64,
    /// Size along y (height), in `unit`.
    pub y: f64,
    /// Size along z (plane spacing), when the image has a z axis.
    pub z: Option<f64>,
    /// Unit of the space axes as the metadata names it (e.g. `"micrometer"`); `None` if not given.
    pub unit: Option<String>,
}

/// Role of an axis of an input image.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum AxisRole {
    Space,
    Time,
    Channel,
    Other,
}

/// One axis of an input image.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct InAxis {
    pub name: String,
    pub role: AxisRole,
    pub unit: Option<String>,
}

impl InAxis {
    /// An axis from its name alone: `c` is a channel axis, `t` time, `x`/`y`/`z` space.
    pub fn from_name(name: &str) -> InAxis {
        let role = match name.to_ascii_lowercase().as_str() {
            "c" | "ch" | "channel" => AxisRole::Channel,
            "t" | "time" => AxisRole::Time,
            "x" | "y" | "z" => AxisRole::Space,
            _ => AxisRole::Other,
        };
        InAxis { name: name.to_string(), role, unit: None }
    }
}

/// What the reader takes from the first `multiscales` entry of a group.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct InMultiscale {
    /// The axes; `None` when the metadata has none (NGFF before 0.3), then the array's
    /// dimensionality decides.
    pub axes: Option<Vec<InAxis>>,
    /// Path of the level-0 array, relative to the group.
    pub dataset: String,
    /// The level-0 `scale` transform, one value per axis, if any.
    pub scale: Option<Vec<f64>>,
}

/// Finds the `multiscales` list in group attributes: `ome.multiscales` (NGFF 0.5) or
/// `multiscales` (NGFF 0.4 and earlier). `Ok(None)` when neither is there.
pub(crate) fn read_multiscales(path: &Path, attributes: &Value) -> Result<Option<InMultiscale>> {
    let ms = attributes.get("ome").and_then(|o| o.get("multiscales")).or_else(|| attributes.get("multiscales"));
    let Some(ms) = ms else { return Ok(None) };
    let first = ms
        .as_array()
        .and_then(|a| a.first())
        .ok_or_else(|| ZarrError::bad_metadata(path, "multiscales is not a non-empty list"))?;

    let axes = match first.get("axes") {
        None | Some(Value::Null) => None,
        Some(Value::Array(list)) => {
            let mut axes = Vec::with_capacity(list.len());
            for a in list {
                axes.push(parse_axis(path, a)?);
            }
            Some(axes)
        }
        Some(_) => return Err(ZarrError::bad_metadata(path, "multiscales[0].axes is not a list")),
    };

    let ds = first
        .get("datasets")
        .and_then(Value::as_array)
        .and_then(|d| d.first())
        .ok_or_else(|| ZarrError::bad_metadata(path, "multiscales[0].datasets is missing or empty"))?;
    let dataset = ds
        .get("path")
        .and_then(Value::as_str)
        .ok_or_else(|| ZarrError::bad_metadata(path, "multiscales[0].datasets[0] has no string \"path\""))?;
    check_relative_path(path, dataset)?;

    let scale = ds.get("coordinateTransformations").and_then(Value::as_array).and_then(|cts| {
        cts.iter().find(|t| t.get("type").and_then(Value::as_str) == Some("scale")).and_then(|t| {
            let s = t.get("scale")?.as_array()?;
            s.iter().map(Value::as_f64).collect::<Option<Vec<f64>>>()
        })
    });

    Ok(Some(InMultiscale { axes, dataset: dataset.to_string(), scale }))
}

/// One axis: an object `{"name", "type", "unit"}` (NGFF 0.4+) or a bare name (NGFF 0.3).
fn parse_axis(path: &Path, a: &Value) -> Result<InAxis> {
    if let Some(name) = a.as_str() {
        return Ok(InAxis::from_name(name));
    }
    let name = a
        .get("name")
        .and_then(Value::as_str)
        .ok_or_else(|| ZarrError::bad_metadata(path, "an axis in multiscales[0].axes has no string \"name\""))?;
    let mut axis = InAxis::from_name(name);
    if let Some(t) = a.get("type").and_then(Value::as_str) {
        axis.role = match t {
            "space" => AxisRole::Space,
            "time" => AxisRole::Time,
            "channel" => AxisRole::Channel,
            _ => AxisRole::Other,
        };
    }
    axis.unit = a.get("unit").and_then(Value::as_str).map(str::to_string);
    Ok(axis)
}

/// Refuses dataset paths that would leave the group (absolute, `..`, empty parts).
pub(crate) fn check_relative_path(path: &Path, p: &str) -> Result<()> {
    let bad =
        p.is_empty() || p.starts_with('/') || p.split('/').any(|part| part.is_empty() || part == "." || part == "..");
    if bad {
        return Err(ZarrError::bad_metadata(
            path,
            format!("dataset path {p:?} is not a relative path inside the group; fix the multiscales datasets"),
        ));
    }
    Ok(())
}

/// How a pyramid level was made from the one above; it names the multiscales `type`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Downsampling {
    /// 2x2 mean (probabilities).
    Mean,
    /// 2x2 mode, ties to the first value in scan order (labels).
    Mode,
}

/// What one output image (the probabilities, or a label image) looks like, for its metadata.
pub(crate) struct ImageDesc<'a> {
    /// Multiscales name.
    pub name: &'a str,
    /// True when the arrays have a z axis (`c, z, y, x`), else `c, y, x`.
    pub has_z: bool,
    /// Pixel size of level 0, if known.
    pub pixel_size: Option<&'a PixelSize>,
    /// Number of levels (arrays `0` .. `levels - 1`).
    pub levels: usize,
    /// How levels 1.. were made.
    pub downsampling: Downsampling,
}

/// The NGFF 0.5 `multiscales` entry of an output image: axes `c, [z,] y, x`, one dataset per
/// level with a `scale` transform (x and y doubled per level, c and z kept).
pub(crate) fn multiscale(path: &Path, desc: &ImageDesc<'_>) -> Result<MultiscaleImage> {
    let unit: Option<AxisUnit> = match desc.pixel_size.and_then(|p| p.unit.as_deref()) {
        // AxisUnit is untagged: known unit names become AxisUnit::Space, anything else Custom.
        Some(u) => Some(serde_json::from_value(Value::String(u.to_string())).map_err(|e| ZarrError::BadSpec {
            path: path.to_path_buf(),
            reason: format!("pixel size unit {u:?}: {e}"),
        })?),
        None => None,
    };
    let space = |name: &str| Axis { name: name.to_string(), r#type: Some(AxisType::Space), unit: unit.clone() };
    let mut axes = vec![Axis { name: "c".to_string(), r#type: Some(AxisType::Channel), unit: None }];
    if desc.has_z {
        axes.push(space("z"));
    }
    axes.push(space("y"));
    axes.push(space("x"));

    let (sx, sy, sz) = match desc.pixel_size {
        Some(p) => (p.x, p.y, p.z.unwrap_or(1.0)),
        None => (1.0, 1.0, 1.0),
    };
    let datasets = (0..desc.levels)
        .map(|level| {
            let f = f64::from(1u32 << level.min(31));
            let mut scale = vec![1.0f32];
            if desc.has_z {
                scale.push(sz as f32);
            }
            scale.push((sy * f) as f32);
            scale.push((sx * f) as f32);
            MultiscaleImageDataset {
                path: level.to_string(),
                coordinate_transformations: vec![CoordinateTransform::Scale(CoordinateTransformScale::List { scale })],
            }
        })
        .collect();

    let (kind, description) = match desc.downsampling {
        Downsampling::Mean => ("mean", "each level is the 2x2 mean of the level above (x and y halved, rounded up)"),
        Downsampling::Mode => (
            "mode",
            "each level is the 2x2 mode of the level above (ties go to the first value in the order top-left, \
             top-right, bottom-left, bottom-right; x and y halved, rounded up)",
        ),
    };
    let mut meta = Map::new();
    meta.insert("description".into(), Value::String(description.into()));
    meta.insert("method".into(), Value::String(format!("unet-zarr {}", env!("CARGO_PKG_VERSION"))));

    Ok(MultiscaleImage {
        name: Some(desc.name.to_string()),
        axes,
        datasets,
        coordinate_transformations: None,
        r#type: Some(kind.to_string()),
        metadata: Some(MultiscaleImageMetadata(meta)),
    })
}

/// The `ome` attribute object of an output group, validated, with `null`s left out.
pub(crate) fn ome_value(
    path: &Path,
    multiscales: Option<MultiscaleImage>,
    labels: Option<Vec<String>>,
    image_label: Option<ImageLabel>,
) -> Result<Value> {
    let fields = OmeFields { multiscales: multiscales.map(|m| vec![m]), labels, image_label, ..OmeFields::default() };
    fields
        .validate()
        .map_err(|e| ZarrError::bad_metadata(path, format!("NGFF 0.5 metadata does not validate: {e}")))?;
    let mut v = serde_json::to_value(&fields).map_err(|e| ZarrError::Json { path: path.to_path_buf(), source: e })?;
    strip_nulls(&mut v);
    Ok(v)
}

/// The `image-label` of a label image (no colours), pointing at `source` (the labelled image,
/// relative to the label image) when there is one.
pub(crate) fn image_label(source: Option<&str>) -> ImageLabel {
    ImageLabel { colors: None, properties: None, source: source.map(|s| ImageLabelSource { image: Some(s.into()) }) }
}

/// Removes `null` object members (`ome_zarr_metadata` writes `"colors": null`, which the NGFF
/// JSON schema does not allow).
fn strip_nulls(v: &mut Value) {
    match v {
        Value::Object(map) => {
            map.retain(|_, x| !x.is_null());
            map.values_mut().for_each(strip_nulls);
        }
        Value::Array(list) => list.iter_mut().for_each(strip_nulls),
        _ => {}
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn reads_ngff_04_and_05_and_03() {
        let p = Path::new("img");
        let v04 = json!({"multiscales": [{"version": "0.4", "axes": [
            {"name": "c", "type": "channel"}, {"name": "y", "type": "space", "unit": "micrometer", "longName": "Y"},
            {"name": "x", "type": "space", "unit": "micrometer"}],
            "datasets": [{"path": "s0", "coordinateTransformations": [{"type": "scale", "scale": [1.0, 0.5, 0.25]}]}]}]});
        let m = read_multiscales(p, &v04).unwrap().unwrap();
        assert_eq!(m.dataset, "s0");
        assert_eq!(m.scale, Some(vec![1.0, 0.5, 0.25]));
        let axes = m.axes.unwrap();
        assert_eq!(axes[0].role, AxisRole::Channel);
        assert_eq!(axes[2].unit.as_deref(), Some("micrometer"));

        let v05 = json!({"ome": {"version": "0.5", "multiscales": [{"axes": [{"name": "y"}, {"name": "x"}],
            "datasets": [{"path": "0", "coordinateTransformations": [{"type": "scale", "scale": [1, 1]}]}]}]}});
        assert_eq!(read_multiscales(p, &v05).unwrap().unwrap().dataset, "0");

        let v03 = json!({"multiscales": [{"version": "0.3", "axes": ["t", "c", "z", "y", "x"], "datasets": [{"path": "0"}]}]});
        let m = read_multiscales(p, &v03).unwrap().unwrap();
        let roles: Vec<_> = m.axes.unwrap().iter().map(|a| a.role).collect();
        assert_eq!(roles, [AxisRole::Time, AxisRole::Channel, AxisRole::Space, AxisRole::Space, AxisRole::Space]);
        assert_eq!(m.scale, None);

        assert_eq!(read_multiscales(p, &json!({"foo": 1})).unwrap(), None);
    }

    #[test]
    fn hostile_multiscales_are_errors() {
        let p = Path::new("img");
        for bad in [
            json!({"multiscales": []}),
            json!({"multiscales": {"a": 1}}),
            json!({"multiscales": [{"axes": "yx", "datasets": [{"path": "0"}]}]}),
            json!({"multiscales": [{"axes": [{"type": "space"}], "datasets": [{"path": "0"}]}]}),
            json!({"multiscales": [{"datasets": []}]}),
            json!({"multiscales": [{"datasets": [{"path": 3}]}]}),
            json!({"multiscales": [{"datasets": [{"path": "../other"}]}]}),
            json!({"multiscales": [{"datasets": [{"path": "/abs"}]}]}),
        ] {
            assert!(read_multiscales(p, &bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn output_metadata_validates_and_round_trips() {
        let px = PixelSize { x: 0.5, y: 0.25, z: Some(2.0), unit: Some("micrometer".into()) };
        let desc = ImageDesc {
            name: "probabilities",
            has_z: true,
            pixel_size: Some(&px),
            levels: 3,
            downsampling: Downsampling::Mean,
        };
        let ms = multiscale(Path::new("out"), &desc).unwrap();
        let v = ome_value(Path::new("out"), Some(ms), None, Some(image_label(Some("../../")))).unwrap();
        assert_eq!(v["version"], "0.5");
        assert_eq!(
            v["multiscales"][0]["datasets"][2]["coordinateTransformations"][0]["scale"],
            json!([1.0, 2.0, 1.0, 2.0])
        );
        assert_eq!(v["multiscales"][0]["axes"][3], json!({"name": "x", "type": "space", "unit": "micrometer"}));
        assert!(v["image-label"].get("colors").is_none());
        // It parses back with the strict types.
        let back: OmeFields = serde_json::from_value(v).unwrap();
        back.validate().unwrap();
    }
}
