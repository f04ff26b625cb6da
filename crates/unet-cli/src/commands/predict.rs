//! `unet predict`: overlap-tile prediction of images of any size, with probability maps,
//! masks, instance labels and overlays written per input.
//!
//! Output sets: the outputs of an input are named after its stem as the file system's
//! bytes (`x\xff.png` gives `x\xff_mask.png`, never a lossy `x\u{fffd}_mask.png` another
//! input could share). With `--force`, files of the folder that bear an input's output
//! names but are not written by this run (say `a_instances.tif` of an earlier run with
//! `--instances`) are removed, so every set is this run's alone. `predict.json` (see
//! [`crate::manifest`]) records which sets are complete; a folder whose record says a run
//! did not finish is refused without `--force` and cleaned with it.
//!
//! Many files over many processes: `--shard i/N` predicts the inputs `i, i+N, ...` of the
//! sorted list, into a folder the other shards share, with its own record
//! (`predict-i-of-N.json`); an input its record marks done, with every output in place, is
//! skipped, so a task killed at its wall time is simply run again.

use std::collections::{HashMap, HashSet};
use std::ffi::{OsStr, OsString};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use unet_infer::{
    Grid, Predictor, PredictorOptions, Probabilities, argmax_mask, foreground, instance_labels, overlay,
    split_touching, threshold_mask,
};
use unet_io::{BitDepth, ColorMode, Image, Label, SampleKind};
use unet_nn::{ModelFile, UnetBackend};

use crate::cli::{PredictArgs, SaveProbs};
use crate::device::{DeviceJob, run_on};
use crate::manifest::{Entry, MANIFEST, Manifest};
use crate::usage::usage;

/// The manifest is rewritten after an image only when this long has passed since the last
/// time (and always at the end, and on an error), so that a folder of many small images is
/// not dominated by rewriting it. An image finished but not yet recorded is, after a kill,
/// treated as unfinished: predicted again or removed, never taken for complete.
const MANIFEST_INTERVAL: Duration = Duration::from_secs(1);

/// One input file and the stem its outputs are named after.
struct Input {
    path: PathBuf,
    stem: OsString,
}

/// The suffixes of the outputs of a stem `s`: `s_prob.tif`, ...; stacks have
/// `s_NNN_overlay.png` as well.
const SUFFIXES: [&str; 5] = ["prob.tif", "mask.png", "mask.tif", "instances.tif", "overlay.png"];

/// `stem` + `_` + `suffix`, on the stem's raw bytes.
pub(crate) fn output_name(stem: &OsStr, suffix: &str) -> OsString {
    let mut name = stem.to_os_string();
    name.push("_");
    name.push(suffix);
    name
}

/// `p` when `name` is `p_` followed by at least three digits (a stack page's number).
fn numbered_prefix(name: &[u8]) -> Option<&[u8]> {
    let digits = name.iter().rev().take_while(|b| b.is_ascii_digit()).count();
    if digits < 3 {
        return None;
    }
    name[..name.len() - digits].strip_suffix(b"_")
}

/// The stems whose outputs could bear the file name `name`.
fn owners(name: &[u8]) -> Vec<&[u8]> {
    let mut out: Vec<&[u8]> =
        SUFFIXES.iter().filter_map(|s| name.strip_suffix(s.as_bytes()).and_then(|p| p.strip_suffix(b"_"))).collect();
    out.extend(name.strip_suffix(b"_overlay.png").and_then(numbered_prefix));
    out
}

fn is_tiff(path: &Path) -> bool {
    path.extension()
        .and_then(OsStr::to_str)
        .is_some_and(|e| e.eq_ignore_ascii_case("tif") || e.eq_ignore_ascii_case("tiff"))
}

/// Every input file, expanded from files and folders; refuses inputs whose outputs would
/// share a name.
fn inputs(paths: &[PathBuf]) -> anyhow::Result<Vec<Input>> {
    let mut out: Vec<Input> = Vec::new();
    let mut by_stem: HashMap<Vec<u8>, usize> = HashMap::new();
    for p in paths {
        for f in unet_io::list_images(p)? {
            let stem = f.file_stem().map(OsStr::to_os_string).unwrap_or_default();
            if let Some(&i) = by_stem.get(stem.as_encoded_bytes()) {
                bail!(
                    "{}: has the stem '{}' of {} as well, and their outputs would collide; rename one",
                    f.display(),
                    stem.to_string_lossy(),
                    out[i].path.display()
                );
            }
            by_stem.insert(stem.as_encoded_bytes().to_vec(), out.len());
            out.push(Input { path: f, stem });
        }
    }
    // A stack `a.tif` writes `a_001_overlay.png`, the overlay of an image `a_001.png`.
    for t in &out {
        if let Some(&i) = numbered_prefix(t.stem.as_encoded_bytes()).and_then(|p| by_stem.get(p))
            && is_tiff(&out[i].path)
        {
            bail!(
                "{}: the stack {} would write overlays named like this image's ('{}'); rename one",
                t.path.display(),
                out[i].path.display(),
                output_name(&t.stem, "overlay.png").to_string_lossy()
            );
        }
    }
    Ok(out)
}

/// Refuses inputs inside the output folder that bear the name of an output of this run
/// (`--out` the input folder with `a.png` and `a_mask.png`): they would be overwritten.
fn check_inputs_survive(inputs: &[Input], out: &Path) -> anyhow::Result<()> {
    let Ok(out) = out.canonicalize() else { return Ok(()) };
    let stems: HashSet<&[u8]> = inputs.iter().map(|i| i.stem.as_encoded_bytes()).collect();
    for i in inputs {
        let parent = i.path.parent().filter(|p| !p.as_os_str().is_empty()).unwrap_or(Path::new("."));
        let name = i.path.file_name().map(OsStr::as_encoded_bytes).unwrap_or_default();
        if parent.canonicalize().is_ok_and(|p| p == out) && owners(name).iter().any(|o| stems.contains(o)) {
            bail!(
                "{}: is an input but also the name of an output of this run, which would replace it; choose another output folder",
                i.path.display()
            );
        }
    }
    Ok(())
}

/// The files written for one input, by name.
struct OutputSet {
    prob: Option<OsString>,
    mask: OsString,
    instances: Option<OsString>,
    overlays: Vec<OsString>,
}

impl OutputSet {
    fn new(args: &PredictArgs, stem: &OsStr, pages: usize) -> Self {
        let name = |suffix: &str| output_name(stem, suffix);
        OutputSet {
            prob: (args.save_probs != SaveProbs::None).then(|| name("prob.tif")),
            mask: name(if pages == 1 { "mask.png" } else { "mask.tif" }),
            instances: args.labels.instances.then(|| name("instances.tif")),
            overlays: match (args.no_overlay, pages) {
                (true, _) => Vec::new(),
                (false, 1) => vec![name("overlay.png")],
                (false, n) => (0..n).map(|k| name(&format!("{k:03}_overlay.png"))).collect(),
            },
        }
    }

    fn names(&self) -> Vec<OsString> {
        let mut v: Vec<OsString> = self.prob.iter().cloned().collect();
        v.push(self.mask.clone());
        v.extend(self.instances.iter().cloned());
        v.extend(self.overlays.iter().cloned());
        v
    }
}

/// Removes the files of `dir` named as outputs of `stem` that are not in `keep`, nor
/// inputs of this run (`inputs`, canonical paths). Folders are left alone.
fn remove_outputs_of(
    dir: &Path,
    stem: &OsStr,
    keep: &HashSet<OsString>,
    inputs: &HashSet<PathBuf>,
) -> anyhow::Result<()> {
    let listing = || format!("{}: cannot list the output folder", dir.display());
    for entry in std::fs::read_dir(dir).with_context(listing)? {
        let entry = entry.with_context(listing)?;
        let name = entry.file_name();
        if keep.contains(&name) || !owners(name.as_encoded_bytes()).contains(&stem.as_encoded_bytes()) {
            continue;
        }
        let path = entry.path();
        let is_dir = entry.file_type().is_ok_and(|t| t.is_dir());
        if is_dir || path.canonicalize().is_ok_and(|p| inputs.contains(&p)) {
            continue;
        }
        std::fs::remove_file(&path).with_context(|| {
            format!("{}: cannot remove this output of an earlier prediction; remove it by hand", path.display())
        })?;
        tracing::debug!("removed {}", path.display());
    }
    Ok(())
}

/// Refuses an output folder that holds files, unless `force`.
pub fn prepare_out_dir(dir: &Path, force: bool) -> anyhow::Result<()> {
    if dir.exists() {
        let busy = std::fs::read_dir(dir)
            .with_context(|| format!("{}: cannot read the output folder", dir.display()))?
            .next()
            .is_some();
        if busy && !force {
            bail!(
                "{}: the output folder is not empty; pass --force to write into it (existing outputs are replaced)",
                dir.display()
            );
        }
    }
    std::fs::create_dir_all(dir).with_context(|| format!("{}: cannot create the output folder", dir.display()))
}

/// Checks the output folder (empty, or `force`; any folder for a shard, which shares it)
/// and returns the record of an earlier prediction into it (of this shard).
fn check_out_dir(dir: &Path, force: bool, shard: Option<(usize, usize)>) -> anyhow::Result<Option<Manifest>> {
    if std::fs::symlink_metadata(dir).is_err() {
        return Ok(None);
    }
    if !dir.is_dir() {
        bail!("{}: is not a folder; give a folder (new or empty) for the outputs", dir.display());
    }
    if shard.is_some() {
        return Manifest::read_named(dir, &crate::manifest::file_name(shard));
    }
    let busy = std::fs::read_dir(dir)
        .with_context(|| format!("{}: cannot read the output folder", dir.display()))?
        .next()
        .is_some();
    let previous = Manifest::read(dir)?;
    if busy && !force {
        if let Some(m) = previous.as_ref().filter(|m| !m.complete) {
            bail!(
                "{}: holds an unfinished prediction ({MANIFEST}: {}); pass --force to predict into it (the unfinished \
                 images' outputs are removed)",
                dir.display(),
                m.progress()
            );
        }
        bail!(
            "{}: the output folder is not empty; pass --force to write into it (existing outputs are replaced)",
            dir.display()
        );
    }
    Ok(previous)
}

/// Refuses a model with NaN or infinite weights: every prediction would be NaN.
fn check_finite(model: &ModelFile, path: &Path) -> anyhow::Result<()> {
    if let Some(t) = model.tensors.iter().find(|t| t.data.iter().any(|v| !v.is_finite())) {
        bail!(
            "{}: tensor '{}' holds NaN or infinite values, so every prediction would be NaN; use an earlier \
             checkpoint or train again",
            path.display(),
            t.name
        );
    }
    Ok(())
}

struct PredictJob {
    args: PredictArgs,
    model: ModelFile,
    inputs: Vec<Input>,
    /// The record of an earlier prediction into the folder (with `--force`, or of this shard).
    previous: Option<Manifest>,
    /// The record's file name ([`crate::manifest::file_name`]).
    record: String,
}

/// What this run has written into the output folder.
struct Record {
    manifest: Manifest,
    /// Entries of this run's inputs start here (earlier ones are carried over).
    first: usize,
    /// Whether the folder has been touched (the manifest written).
    started: bool,
    last_write: Instant,
    /// Names written by this run, and those of carried-over complete sets.
    keep: HashSet<OsString>,
    /// Stems of an earlier unfinished run that are not inputs of this one.
    stale: Vec<OsString>,
    /// The record's file name.
    name: String,
}

impl Record {
    fn new(args: &PredictArgs, inputs: &[Input], previous: Option<Manifest>, name: String) -> Self {
        let ours: HashSet<&[u8]> = inputs.iter().map(|i| i.stem.as_encoded_bytes()).collect();
        let (mut carried, mut stale) = (Vec::new(), Vec::new());
        for e in previous.map(|m| m.images).unwrap_or_default() {
            if ours.contains(e.stem.as_encoded_bytes()) {
                continue;
            }
            if e.done { carried.push(e) } else { stale.push(e.stem) }
        }
        let keep = carried.iter().flat_map(|e| e.outputs.iter().cloned()).collect();
        let first = carried.len();
        carried.extend(inputs.iter().map(|i| Entry {
            stem: i.stem.clone(),
            input: i.path.display().to_string(),
            done: false,
            outputs: Vec::new(),
        }));
        let manifest = Manifest { model: args.model().display().to_string(), complete: false, images: carried };
        Record { manifest, first, started: false, last_write: Instant::now(), keep, stale, name }
    }

    /// Before the first file is written: removes the outputs of an earlier run's unfinished
    /// images (then this run's record no longer names them) and writes the record.
    fn start(&mut self, dir: &Path, inputs: &HashSet<PathBuf>) -> anyhow::Result<()> {
        if self.started {
            return Ok(());
        }
        for stem in &self.stale {
            remove_outputs_of(dir, stem, &self.keep, inputs)?;
        }
        self.manifest.write_named(dir, &self.name)?;
        self.started = true;
        self.last_write = Instant::now();
        Ok(())
    }

    /// Marks input `i` done with its outputs; writes the record when it is due.
    fn done(&mut self, dir: &Path, i: usize, outputs: Vec<OsString>) -> anyhow::Result<()> {
        let e = &mut self.manifest.images[self.first + i];
        e.done = true;
        e.outputs = outputs;
        if self.last_write.elapsed() >= MANIFEST_INTERVAL {
            self.manifest.write_named(dir, &self.name)?;
            self.last_write = Instant::now();
        }
        Ok(())
    }
}

impl DeviceJob for PredictJob {
    type Output = ();

    fn run<B: UnetBackend>(self, device: B::Device) -> anyhow::Result<()> {
        let PredictJob { args, model, inputs, previous, record } = self;
        let net = model.model::<B>(&device, args.model())?;
        let t = &args.tiles;
        let opts = PredictorOptions { tile: t.tile, batch_tiles: t.batch_tiles, memory_mb: t.memory_mb };
        let predictor = match Predictor::new(net, model.config.clone(), model.normalization, device, &opts) {
            Ok(p) => p,
            Err(e @ unet_infer::InferError::Nn(_)) | Err(e @ unet_infer::InferError::Tile(_)) => {
                let flag = if args.tiles.tile.is_some() { "--tile" } else { "--memory-mb" };
                return usage(format!("{e} ({flag})"));
            }
            Err(e) => return Err(e.into()),
        };
        tracing::info!(
            "tile {} px, {} tile(s) per batch{}",
            predictor.tile(),
            args.tiles.batch_tiles.max(1),
            if args.tta { ", 8-fold TTA" } else { "" }
        );
        let mode = if model.config.in_channels == 1 { ColorMode::Gray } else { ColorMode::Keep };
        let input_paths: HashSet<PathBuf> = inputs.iter().filter_map(|i| i.path.canonicalize().ok()).collect();
        let mut record = Record::new(&args, &inputs, previous, record);
        let bar = crate::progress::bar(inputs.len() as u64, "predicting");
        let mut each = || -> anyhow::Result<()> {
            for (i, input) in inputs.iter().enumerate() {
                let t0 = Instant::now();
                let path = &input.path;
                let pages = unet_io::read_stack(path, mode)?;
                let mut probs = Vec::with_capacity(pages.len());
                for page in &pages {
                    let p = if args.tta {
                        predictor.predict_tta(page, &|_, _| {})
                    } else {
                        predictor.predict(page, &|_, _| {})
                    };
                    probs.push(p.with_context(|| format!("{}: cannot predict", path.display()))?);
                }
                let set = OutputSet::new(&args, &input.stem, pages.len());
                let names = set.names();
                record.start(args.out(), &input_paths)?;
                record.keep.extend(names.iter().cloned());
                if args.force {
                    remove_outputs_of(args.out(), &input.stem, &record.keep, &input_paths)?;
                }
                write_outputs(&args, &set, &pages, &probs)?;
                record.done(args.out(), i, names)?;
                bar.inc(1);
                let (w, h) = (pages[0].width, pages[0].height);
                bar.suspend(|| {
                    tracing::info!(
                        "{}: {}x{}x{} in {:.2} s",
                        path.display(),
                        w,
                        h,
                        pages.len(),
                        t0.elapsed().as_secs_f64()
                    )
                });
            }
            Ok(())
        };
        let result = each();
        bar.finish_and_clear();
        if let Err(e) = result {
            // What was finished stays on record; the run stays marked unfinished.
            if record.started {
                let _ = record.manifest.write_named(args.out(), &record.name);
            }
            return Err(e);
        }
        record.manifest.complete = true;
        record.manifest.write_named(args.out(), &record.name)
    }
}

/// Writes the set of outputs `set` names for one input.
fn write_outputs(args: &PredictArgs, set: &OutputSet, pages: &[Image], probs: &[Probabilities]) -> anyhow::Result<()> {
    let out = |name: &OsStr| args.out().join(name);
    // A shard replaces what it left of an input it had not finished (the names of its
    // inputs' outputs are its own: stems are unique over all shards' inputs).
    let replace = args.force || args.shard.is_some();
    let classes = probs[0].channels;
    let plane = |grid: Grid<f32>| Image { grid, kind: SampleKind::F32 };
    if let Some(name) = &set.prob {
        let pages: Vec<Image> = match args.save_probs {
            SaveProbs::All => probs.iter().flat_map(|p| (0..classes).map(|k| plane(p.channel(k)))).collect(),
            _ => probs.iter().map(|p| plane(foreground(p))).collect(),
        };
        unet_io::write_image(&out(name), &pages, BitDepth::F32, replace)?;
    }
    let masks: Vec<Label> = probs
        .iter()
        .map(|p| match args.labels.threshold {
            Some(t) => threshold_mask(&foreground(p), t),
            None => argmax_mask(p),
        })
        .collect();
    // Binary masks are written 0/255 to be visible; class masks keep their indices.
    let mask_scale = if classes == 2 || args.labels.threshold.is_some() { 255.0 } else { 1.0 };
    let mask_imgs: Vec<Image> =
        masks.iter().map(|m| Image { grid: m.map(|&v| v as f32 * mask_scale), kind: SampleKind::U8 }).collect();
    unet_io::write_image(&out(&set.mask), &mask_imgs, BitDepth::U8, replace)?;
    let mut outline_labels = masks.clone();
    if let Some(name) = &set.instances {
        let labels: Vec<Label> = masks
            .iter()
            .map(|m| {
                let fg = m.map(|&v| u32::from(v != 0));
                match args.split_touching {
                    Some(ratio) => split_touching(&fg, ratio, args.labels.min_size).0,
                    None => instance_labels(&fg, args.labels.min_size).0,
                }
            })
            .collect();
        unet_io::write_labels(&out(name), &labels, replace)?;
        outline_labels = labels;
    }
    for ((page, labels), name) in pages.iter().zip(&outline_labels).zip(&set.overlays) {
        unet_io::write_image(&out(name), &[overlay(page, labels)], BitDepth::U8, replace)?;
    }
    Ok(())
}

/// The inputs of shard `i` of `n` (`i, i+n, ...` of the sorted list) that its record does not
/// mark done with every output in place (all of them with `force`).
fn shard_inputs(
    all: Vec<Input>,
    i: usize,
    n: usize,
    previous: Option<&Manifest>,
    out: &Path,
    force: bool,
) -> Vec<Input> {
    let total = all.len();
    let done: HashSet<&[u8]> = previous
        .filter(|_| !force)
        .map(|m| {
            m.images
                .iter()
                .filter(|e| e.done && e.outputs.iter().all(|o| out.join(o).is_file()))
                .map(|e| e.stem.as_encoded_bytes())
                .collect()
        })
        .unwrap_or_default();
    let mine: Vec<Input> = all.into_iter().skip(i).step_by(n).collect();
    let count = mine.len();
    let todo: Vec<Input> = mine.into_iter().filter(|x| !done.contains(x.stem.as_encoded_bytes())).collect();
    tracing::info!(
        "shard {i}/{n}: {count} of {total} input(s), {} done already, {} to predict",
        count - todo.len(),
        todo.len()
    );
    todo
}

pub fn run(args: PredictArgs) -> anyhow::Result<()> {
    if args.plan.is_some() {
        return crate::commands::blocks::predict_plan(&args);
    }
    if crate::commands::blocks::is_zarr_job(&args) {
        return crate::commands::blocks::predict_zarr(&args);
    }
    if args.inputs.is_empty() {
        return usage("give at least one input image or folder");
    }
    args.labels.check()?;
    args.tiles.check()?;
    if let Some(r) = args.split_touching
        && !(r > 0.0 && r < 1.0)
    {
        return usage("--split-touching must be in (0, 1)");
    }
    let model = crate::commands::models::load_model(args.model())?;
    check_finite(&model, args.model())?;
    let shard = crate::commands::blocks::shard_arg(args.shard.as_deref())?;
    let inputs = inputs(&args.inputs)?;
    check_inputs_survive(&inputs, args.out())?;
    let previous = check_out_dir(args.out(), args.force, shard)?;
    let inputs = match shard {
        Some((i, n)) => shard_inputs(inputs, i, n, previous.as_ref(), args.out(), args.force),
        None => inputs,
    };
    let created = std::fs::symlink_metadata(args.out()).is_err();
    std::fs::create_dir_all(args.out())
        .with_context(|| format!("{}: cannot create the output folder", args.out().display()))?;
    let (device, out) = (args.device.clone(), args.out().to_path_buf());
    let record = crate::manifest::file_name(shard);
    let result = run_on(&device, PredictJob { args, model, inputs, previous, record });
    if result.is_err() && created {
        // Nothing is left of a run that wrote nothing (the folder is removed only if empty).
        let _ = std::fs::remove_dir(&out);
    }
    result
}
