//! `unet eval`: scores predictions against ground truth with the ISBI 2012 and cell
//! tracking challenge metrics, over binarisation thresholds for probability maps.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use anyhow::{Context, bail};
use unet_io::{ColorMode, Image, LabelKind, SampleKind};
use unet_metrics::{IsbiOptions, MetricRow, Plane, SliceInput, isbi_thresholds};

use crate::cli::{EvalArgs, PredKind, TruthKind};
use crate::usage::usage;

fn value(row: &MetricRow, name: &str) -> f64 {
    row.value(name).expect("metric names are checked")
}

/// Pairs prediction and truth files by stem (or takes two files as a pair). A folder
/// written by `unet predict` pairs by its `*_prob` files (or `*_mask` files when there are
/// no probability maps), the suffix dropped. Stems compare as the file system's bytes, so
/// names that are not UTF-8 pair exactly.
fn pairs(pred: &Path, truth: &Path) -> anyhow::Result<Vec<(String, PathBuf, PathBuf)>> {
    let shown = |key: &[u8]| String::from_utf8_lossy(key).into_owned();
    if pred.is_file() && truth.is_file() {
        return Ok(vec![(shown(&unet_io::stem_key(pred)), pred.to_path_buf(), truth.to_path_buf())]);
    }
    if pred.is_file() != truth.is_file() {
        return usage("--pred and --truth must both be files or both be folders");
    }
    // A folder whose prediction did not finish may hold partial output sets.
    // (Shards of one prediction each keep a record: every one must be complete.)
    for (name, m) in crate::manifest::Manifest::read_all(pred)? {
        if !m.complete {
            let again = if name == crate::manifest::MANIFEST { "with --force" } else { "with the same --shard" };
            bail!(
                "{}: records an unfinished prediction ({}); run unet predict into it again {again} before scoring it",
                pred.join(&name).display(),
                m.progress()
            );
        }
    }
    let files = unet_io::list_images(pred)?;
    let mut chosen: Vec<(Vec<u8>, PathBuf)> = files.iter().map(|f| (unet_io::stem_key(f), f.clone())).collect();
    for suffix in ["_prob", "_mask"] {
        let with: Vec<(Vec<u8>, PathBuf)> = chosen
            .iter()
            .filter_map(|(s, f)| s.strip_suffix(suffix.as_bytes()).map(|b| (b.to_vec(), f.clone())))
            .collect();
        if !with.is_empty() {
            chosen = with;
            break;
        }
    }
    let truths: BTreeMap<Vec<u8>, PathBuf> =
        unet_io::list_images(truth)?.into_iter().map(|f| (unet_io::stem_key(&f), f)).collect();
    let mut out = Vec::new();
    let mut used = std::collections::HashSet::new();
    for (stem, p) in chosen {
        match truths.get(&stem) {
            Some(t) => {
                out.push((shown(&stem), p, t.clone()));
                used.insert(stem);
            }
            None => bail!(
                "{}: has no partner named '{}.*' in {}; add it or remove the file",
                p.display(),
                shown(&stem),
                truth.display()
            ),
        }
    }
    if let Some((s, t)) = truths.iter().find(|(s, _)| !used.contains(*s)) {
        bail!(
            "{}: has no prediction named '{}' in {}; predict it or remove the file",
            t.display(),
            shown(s),
            pred.display()
        );
    }
    Ok(out)
}

fn distinct_up_to(values: &[u32], limit: usize) -> usize {
    let mut seen = std::collections::BTreeSet::new();
    for &v in values {
        seen.insert(v);
        if seen.len() > limit {
            break;
        }
    }
    seen.len()
}

/// Truth pages as planes (1 = cell) with instance ids when the labels are instances.
fn truth_pages(path: &Path, kind: TruthKind) -> anyhow::Result<Vec<(Plane, Option<Vec<u32>>)>> {
    let labels = unet_io::read_label_stack(path, LabelKind::Instance)?;
    labels
        .into_iter()
        .map(|l| {
            let instances = match kind {
                TruthKind::Mask => false,
                TruthKind::Instances => true,
                TruthKind::Auto => distinct_up_to(&l.data, 2) > 2,
            };
            if !l.any_nonzero() {
                bail!(
                    "{}: the truth has no cells (all pixels are 0); every truth image needs foreground",
                    path.display()
                );
            }
            let plane = Plane::new(l.width, l.height, l.data.iter().map(|&v| if v != 0 { 1.0 } else { 0.0 }).collect());
            Ok((plane, instances.then_some(l.data)))
        })
        .collect()
}

/// Prediction pages as planes of cell probability, with instance ids for instance labels.
fn pred_pages(path: &Path, kind: PredKind) -> anyhow::Result<Vec<(Plane, Option<Vec<u32>>)>> {
    let pages: Vec<Image> = unet_io::read_stack(path, ColorMode::Gray)?;
    pages
        .into_iter()
        .map(|img| {
            let ints: Option<Vec<u32>> =
                (img.kind != SampleKind::F32).then(|| img.data.iter().map(|&v| v as u32).collect());
            let distinct = ints.as_ref().map(|v| distinct_up_to(v, 2)).unwrap_or(3);
            let kind = match kind {
                PredKind::Auto => match img.kind {
                    SampleKind::F32 => PredKind::Prob,
                    _ if distinct <= 2 => PredKind::Mask,
                    SampleKind::U8 => PredKind::Prob,
                    SampleKind::U16 => PredKind::Instances,
                },
                k => k,
            };
            let plane = |data: Vec<f32>| Plane::new(img.width, img.height, data);
            Ok(match kind {
                PredKind::Prob => {
                    let scale = img.kind.max_value();
                    let data: Vec<f32> = img.data.iter().map(|&v| v / scale).collect();
                    if data.iter().any(|v| !(0.0..=1.0).contains(v)) {
                        bail!(
                            "{}: probabilities must lie in [0, 1]; pass --pred-kind instances for label images",
                            path.display()
                        );
                    }
                    (plane(data), None)
                }
                PredKind::Mask => (plane(img.data.iter().map(|&v| if v > 0.0 { 1.0 } else { 0.0 }).collect()), None),
                PredKind::Instances => {
                    let Some(ids) = ints else {
                        bail!(
                            "{}: float images cannot hold instance labels; save them as 16/32-bit integers",
                            path.display()
                        );
                    };
                    (plane(ids.iter().map(|&v| if v != 0 { 1.0 } else { 0.0 }).collect()), Some(ids))
                }
                PredKind::Auto => unreachable!("resolved above"),
            })
        })
        .collect()
}

pub fn run(args: EvalArgs) -> anyhow::Result<()> {
    // Checked before any file is read.
    let given_thresholds = match &args.thresholds {
        Some(spec) => match unet_metrics::parse_thresholds(spec) {
            Ok(t) => Some(t),
            Err(e) => return usage(format!("--thresholds {spec}: {e}")),
        },
        None => None,
    };
    let metrics: Vec<&str> = match &args.metrics {
        Some(list) => {
            let mut out = Vec::new();
            for m in list.split(',').map(str::trim) {
                match unet_metrics::metric_names().find(|&k| k == m) {
                    Some(k) => out.push(k),
                    None => {
                        return usage(format!(
                            "--metrics: unknown metric '{m}'; choose from {}",
                            unet_metrics::metric_names().collect::<Vec<_>>().join(", ")
                        ));
                    }
                }
            }
            out
        }
        None => unet_metrics::metric_names().collect(),
    };
    if let Some(json) = &args.json {
        unet_io::check_writable(json, args.force)?;
    }
    let mut names = Vec::new();
    let mut slices = Vec::new();
    let mut all_binary = true;
    for (stem, pred, truth) in pairs(&args.pred, &args.truth)? {
        let t = truth_pages(&truth, args.truth_kind)?;
        let p = pred_pages(&pred, args.pred_kind)?;
        if t.len() != p.len() {
            bail!("{}: has {} pages but its truth {} has {}", pred.display(), p.len(), truth.display(), t.len());
        }
        let multi = t.len() > 1;
        for (k, ((tp, ti), (pp, pi))) in t.into_iter().zip(p).enumerate() {
            if (tp.width, tp.height) != (pp.width, pp.height) {
                bail!(
                    "{} is {}x{} but its truth {} is {}x{}; prediction and truth must have the same size",
                    pred.display(),
                    pp.width,
                    pp.height,
                    truth.display(),
                    tp.width,
                    tp.height
                );
            }
            all_binary &= unet_metrics::is_binary(&pp);
            names.push(if multi { format!("{stem}[{k}]") } else { stem.clone() });
            slices.push(SliceInput { truth: tp, truth_instances: ti, proposal: pp, proposal_instances: pi });
        }
    }
    let thresholds = match given_thresholds {
        Some(t) => t,
        // The official protocol: 0.0..1.0 by 0.1 for probability maps, 0.0 for binary ones.
        None if all_binary => vec![0.0],
        None => isbi_thresholds(0.0, 1.0, 0.1),
    };
    let opts =
        IsbiOptions { thresholds, warping: unet_metrics::needs_warping(&metrics), warping_radius: args.warping_radius };
    let bar = crate::progress::bar((slices.len() * opts.thresholds.len()) as u64, "evaluating");
    let t0 = std::time::Instant::now();
    let eval = unet_metrics::evaluate_stack_with_progress(&slices, &opts, &|| bar.inc(1));
    bar.finish_and_clear();
    tracing::info!(
        "evaluated {} slice(s) at {} threshold(s) in {:.2} s",
        slices.len(),
        opts.thresholds.len(),
        t0.elapsed().as_secs_f64()
    );

    print_table(&names, &eval.slices, &eval.best, &metrics);
    if opts.thresholds.len() > 1 {
        let best: Vec<String> = metrics.iter().map(|m| format!("{m}@{:.2}", eval.best_thresholds[m])).collect();
        println!("best thresholds: {}", best.join(", "));
    }
    if let Some(path) = &args.json {
        let doc = unet_metrics::report(&names, &eval, &metrics);
        let text = serde_json::to_string_pretty(&doc)?;
        unet_io::AtomicFile::write_bytes(path, text.as_bytes(), args.force)
            .with_context(|| "cannot write the JSON report")?;
    }
    Ok(())
}

fn print_table(names: &[String], rows: &[MetricRow], best: &MetricRow, metrics: &[&str]) {
    let w = names.iter().map(|n| n.len()).max().unwrap_or(4).max(6);
    let header: Vec<String> = metrics.iter().map(|m| format!("{m:>12.12}")).collect();
    println!("{:<w$} {}", "image", header.join(" "));
    for (n, r) in names.iter().zip(rows) {
        let vals: Vec<String> = metrics.iter().map(|m| format!("{:>12.6}", value(r, m))).collect();
        println!("{n:<w$} {}", vals.join(" "));
    }
    let vals: Vec<String> = metrics.iter().map(|m| format!("{:>12.6}", value(best, m))).collect();
    println!("{:<w$} {}", "mean", vals.join(" "));
}
