//! `predict.json`: the record of which images of a `unet predict` output folder have a
//! complete set of outputs.
//!
//! Why a manifest: an image's outputs are several files (probabilities, mask, instances,
//! overlays), each written atomically, but a set of files cannot be renamed into place at
//! once. A process killed between two of them leaves a set that looks finished and is not.
//! The manifest, one small JSON file replaced atomically, says which sets are complete: an
//! image is marked done only after every file of its set has been renamed into place and
//! synced, so a kill can at worst leave a finished set marked unfinished (it is then
//! predicted again or removed), never the reverse. One file keeps the folder readable
//! (no marker per image) and lets `unet eval` refuse a folder whose prediction did not
//! finish.
//!
//! Processes that share a folder (`unet predict --shard i/N`, one per cluster task) keep one
//! record each, `predict-i-of-N.json`, so that none overwrites another's.
//!
//! Names that are not UTF-8 are stored as arrays of their bytes, all others as strings.

use std::ffi::{OsStr, OsString};
use std::path::Path;

use anyhow::Context;
use serde_json::{Value, json};

/// The manifest's file name in an output folder.
pub const MANIFEST: &str = "predict.json";
const FORMAT: &str = "unet-predict";
const VERSION: u64 = 1;

/// The record's file name of shard `i` of `n` (`predict-i-of-n.json`), or of a whole run
/// ([`MANIFEST`]).
pub fn file_name(shard: Option<(usize, usize)>) -> String {
    match shard {
        Some((i, n)) => format!("predict-{i}-of-{n}.json"),
        None => MANIFEST.to_string(),
    }
}

/// Whether `name` is the file name of a record ([`file_name`] of a run or of a shard).
fn is_record_name(name: &str) -> bool {
    name == MANIFEST
        || name
            .strip_prefix("predict-")
            .and_then(|r| r.strip_suffix(".json"))
            .and_then(|r| r.split_once("-of-"))
            .is_some_and(|(i, n)| {
                !i.is_empty() && !n.is_empty() && i.bytes().chain(n.bytes()).all(|b| b.is_ascii_digit())
            })
}

/// One input image of a prediction.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Entry {
    /// The stem its outputs are named after.
    pub stem: OsString,
    /// The input file, for people to read.
    pub input: String,
    /// Whether all of its outputs are in place.
    pub done: bool,
    /// The file names of its outputs (when done).
    pub outputs: Vec<OsString>,
}

/// The state of an output folder.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Manifest {
    /// The model file used, for people to read.
    pub model: String,
    /// Whether the run that wrote it finished.
    pub complete: bool,
    pub images: Vec<Entry>,
}

/// A file name as JSON: a string when it is UTF-8, else the array of its bytes.
fn name_to_json(name: &OsStr) -> Value {
    match name.to_str() {
        Some(s) => Value::String(s.to_string()),
        None => Value::Array(name.as_encoded_bytes().iter().map(|&b| Value::from(b)).collect()),
    }
}

/// The inverse of [`name_to_json`].
fn name_from_json(v: &Value) -> Option<OsString> {
    match v {
        Value::String(s) => Some(OsString::from(s)),
        Value::Array(bytes) => {
            let bytes: Option<Vec<u8>> = bytes.iter().map(|b| b.as_u64().and_then(|b| u8::try_from(b).ok())).collect();
            #[cfg(unix)]
            {
                Some(std::os::unix::ffi::OsStringExt::from_vec(bytes?))
            }
            #[cfg(not(unix))]
            {
                Some(OsString::from(String::from_utf8_lossy(&bytes?).into_owned()))
            }
        }
        _ => None,
    }
}

impl Manifest {
    /// The images whose outputs are not all in place.
    pub fn unfinished(&self) -> impl Iterator<Item = &Entry> {
        self.images.iter().filter(|e| !e.done)
    }

    /// Says how far the run got: "3 of 10 images done; unfinished: b, c, ...".
    pub fn progress(&self) -> String {
        let done = self.images.iter().filter(|e| e.done).count();
        let unfinished: Vec<String> =
            self.unfinished().take(5).map(|e| e.stem.to_string_lossy().into_owned()).collect();
        let more = self.unfinished().count().saturating_sub(unfinished.len());
        let mut s = format!("{done} of {} images done", self.images.len());
        if !unfinished.is_empty() {
            s.push_str(&format!("; unfinished: {}", unfinished.join(", ")));
            if more > 0 {
                s.push_str(&format!(" and {more} more"));
            }
        }
        s
    }

    fn to_json(&self) -> Value {
        let images: Vec<Value> = self
            .images
            .iter()
            .map(|e| {
                json!({
                    "stem": name_to_json(&e.stem),
                    "input": e.input,
                    "done": e.done,
                    "outputs": e.outputs.iter().map(|o| name_to_json(o)).collect::<Vec<_>>(),
                })
            })
            .collect();
        json!({
            "format": FORMAT,
            "format_version": VERSION,
            "complete": self.complete,
            "model": self.model,
            "images": images,
        })
    }

    fn from_json(v: &Value) -> Option<Manifest> {
        if v.get("format")?.as_str()? != FORMAT || v.get("format_version")?.as_u64()? != VERSION {
            return None;
        }
        let images = v
            .get("images")?
            .as_array()?
            .iter()
            .map(|e| {
                Some(Entry {
                    stem: name_from_json(e.get("stem")?)?,
                    input: e.get("input")?.as_str()?.to_string(),
                    done: e.get("done")?.as_bool()?,
                    outputs: e.get("outputs")?.as_array()?.iter().map(name_from_json).collect::<Option<_>>()?,
                })
            })
            .collect::<Option<Vec<_>>>()?;
        Some(Manifest { model: v.get("model")?.as_str()?.to_string(), complete: v.get("complete")?.as_bool()?, images })
    }

    /// The manifest of the folder `dir`: `None` when it has none, or a `predict.json` that
    /// is not one of this format (someone else's file).
    pub fn read(dir: &Path) -> anyhow::Result<Option<Manifest>> {
        Self::read_named(dir, MANIFEST)
    }

    /// Every record in `dir` (of a whole run and of shards), with its file name, in name order.
    pub fn read_all(dir: &Path) -> anyhow::Result<Vec<(String, Manifest)>> {
        let listing = || format!("{}: cannot list the folder", dir.display());
        let mut names: Vec<String> = Vec::new();
        for entry in std::fs::read_dir(dir).with_context(listing)? {
            let name = entry.with_context(listing)?.file_name();
            if let Some(name) = name.to_str().filter(|n| is_record_name(n)) {
                names.push(name.to_string());
            }
        }
        names.sort();
        let mut out = Vec::new();
        for name in names {
            if let Some(m) = Self::read_named(dir, &name)? {
                out.push((name, m));
            }
        }
        Ok(out)
    }

    /// The record `name` of the folder `dir` (see [`Manifest::read`]).
    pub fn read_named(dir: &Path, name: &str) -> anyhow::Result<Option<Manifest>> {
        let path = dir.join(name);
        let bytes = match std::fs::read(&path) {
            Ok(b) => b,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
            Err(e) => return Err(e).with_context(|| format!("{}: cannot read the prediction record", path.display())),
        };
        Ok(serde_json::from_slice::<Value>(&bytes).ok().as_ref().and_then(Manifest::from_json))
    }

    /// Replaces the record `name` of the folder `dir` atomically.
    pub fn write_named(&self, dir: &Path, name: &str) -> anyhow::Result<()> {
        let path = dir.join(name);
        let text = serde_json::to_string_pretty(&self.to_json())?;
        unet_io::AtomicFile::write_bytes(&path, text.as_bytes(), true)
            .with_context(|| "cannot record which images are done".to_string())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_that_are_not_utf8_survive_a_round_trip() {
        #[cfg(unix)]
        let odd: OsString = std::os::unix::ffi::OsStringExt::from_vec(b"x\xff".to_vec());
        #[cfg(not(unix))]
        let odd = OsString::from("x\u{fffd}");
        let mut out = odd.clone();
        out.push("_mask.png");
        let m = Manifest {
            model: "m.safetensors".into(),
            complete: false,
            images: vec![
                Entry { stem: odd.clone(), input: "in/x.png".into(), done: true, outputs: vec![out] },
                Entry { stem: "b".into(), input: "in/b.png".into(), done: false, outputs: vec![] },
            ],
        };
        let dir = tempfile::tempdir().unwrap();
        m.write_named(dir.path(), MANIFEST).unwrap();
        let back = Manifest::read(dir.path()).unwrap().unwrap();
        assert_eq!(back, m);
        assert_eq!(back.unfinished().map(|e| e.stem.clone()).collect::<Vec<_>>(), vec![OsString::from("b")]);
        assert_eq!(back.progress(), "1 of 2 images done; unfinished: b");
        // Someone else's predict.json is not taken for ours.
        std::fs::write(dir.path().join(MANIFEST), b"{\"format\": \"other\"}").unwrap();
        assert_eq!(Manifest::read(dir.path()).unwrap(), None);
        // Shards keep their own records; read_all finds them all, and only them.
        assert_eq!(file_name(Some((3, 8))), "predict-3-of-8.json");
        m.write_named(dir.path(), &file_name(Some((3, 8)))).unwrap();
        m.write_named(dir.path(), &file_name(Some((10, 12)))).unwrap();
        std::fs::write(dir.path().join("predict-x-of-8.json"), b"{}").unwrap();
        let all = Manifest::read_all(dir.path()).unwrap();
        let names: Vec<&str> = all.iter().map(|(n, _)| n.as_str()).collect();
        assert_eq!(names, ["predict-10-of-12.json", "predict-3-of-8.json"]);
        assert!(all.iter().all(|(_, r)| *r == m));
    }
}
