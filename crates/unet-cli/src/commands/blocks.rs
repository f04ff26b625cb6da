//! OME-Zarr images block by block: `unet plan`, `unet predict --plan [--shard i/N]`,
//! `unet finalize`, and `unet predict IMAGE.zarr --out OUT.ome.zarr` (the three in one
//! process). A thin layer over `unet_blocks`: argument checks with flag names, the share of
//! an array task, progress, and what to run next.

use std::path::Path;

use anyhow::{Context, bail};
use unet_blocks::{BlockEvent, Plan, PlanOptions};
use unet_zarr::ProbDtype;

use crate::cli::{FinalizeArgs, LabelArgs, PlanArgs, PredictArgs, TileArgs, ZarrProbs};
use crate::usage::usage;

/// True for a path that names a Zarr store: `*.zarr`, or a folder with Zarr metadata.
fn looks_like_zarr(path: &Path) -> bool {
    path.extension().and_then(|e| e.to_str()).is_some_and(|e| e.eq_ignore_ascii_case("zarr"))
        || ["zarr.json", ".zattrs", ".zarray", ".zgroup"].iter().any(|m| path.join(m).is_file())
}

/// True when `unet predict` was given an OME-Zarr input or output.
pub fn is_zarr_job(args: &PredictArgs) -> bool {
    looks_like_zarr(args.out()) || args.inputs.iter().any(|p| looks_like_zarr(p))
}

fn probs(p: ZarrProbs) -> Option<ProbDtype> {
    match p {
        ZarrProbs::F32 => Some(ProbDtype::F32),
        ZarrProbs::U8 => Some(ProbDtype::U8),
        ZarrProbs::None => None,
    }
}

/// The options of a plan from the flags `unet plan` and `unet predict IMAGE.zarr` share,
/// checked with the flags' names.
fn plan_options(
    tiles: &TileArgs,
    labels: &LabelArgs,
    zarr_probs: ZarrProbs,
    block: usize,
) -> anyhow::Result<PlanOptions> {
    tiles.check()?;
    labels.check()?;
    if block == 0 {
        return usage("--block must be at least 1 pixel");
    }
    Ok(PlanOptions {
        tile: tiles.tile,
        memory_mb: tiles.memory_mb,
        batch_tiles: tiles.batch_tiles.max(1),
        block,
        probabilities: probs(zarr_probs),
        threshold: labels.threshold,
        instances: labels.instances,
        min_size: labels.min_size,
        ..PlanOptions::default()
    })
}

/// With `force`, removes an earlier store of `unet plan` at `out` (a store without a plan
/// is never removed: it may be anyone's data).
fn clear_out(out: &Path, force: bool) -> anyhow::Result<()> {
    if std::fs::symlink_metadata(out).is_err() {
        return Ok(());
    }
    if !force {
        bail!("{}: exists already; choose another path (pass --force to replace a store made by unet)", out.display());
    }
    if !out.join(unet_blocks::PLAN_FILE).is_file() {
        bail!("{}: exists and was not made by unet plan; remove it yourself or choose another path", out.display());
    }
    std::fs::remove_dir_all(out).with_context(|| format!("{}: cannot remove the old store", out.display()))
}

fn make_plan(input: &Path, model: &str, out: &Path, opts: &PlanOptions, force: bool) -> anyhow::Result<Plan> {
    clear_out(out, force)?;
    let plan = unet_blocks::plan(input, model, out, opts)?;
    tracing::info!(
        "{}: {} block(s) of {} px ({} plane(s) of {}x{}), tile {}",
        out.display(),
        plan.blocks.len(),
        plan.shard,
        plan.planes,
        plan.width,
        plan.height,
        plan.tile
    );
    Ok(plan)
}

/// Predicts blocks `ids` of `plan` with a progress bar.
fn run(plan: &Plan, ids: &[usize], redo: bool) -> anyhow::Result<unet_blocks::RunSummary> {
    let bar = crate::progress::bar(ids.len() as u64, "blocks");
    let summary = unet_blocks::run_blocks(plan, ids, redo, &|e| match e {
        BlockEvent::Skipped { .. } | BlockEvent::Finished { .. } => bar.inc(1),
        BlockEvent::Started { .. } | BlockEvent::Tiles { .. } => {}
    })?;
    bar.finish_and_clear();
    Ok(summary)
}

/// `unet plan`.
pub fn plan(args: &PlanArgs) -> anyhow::Result<()> {
    let opts =
        PlanOptions { chunk: args.chunk, ..plan_options(&args.tiles, &args.labels, args.zarr_probs, args.block)? };
    let plan = make_plan(&args.input, &args.model, &args.out, &opts, args.force)?;
    let n = plan.blocks.len();
    println!("{}", plan.path().display());
    println!(
        "{n} blocks; run them with `unet predict --plan {} --shard i/N` (i = 0..N-1, or as a Slurm/Kubernetes array task), then `unet finalize {}`",
        args.out.display(),
        args.out.display()
    );
    Ok(())
}

/// `--shard i/N`, parsed (`None` without the flag).
pub(crate) fn shard_arg(shard: Option<&str>) -> anyhow::Result<Option<(usize, usize)>> {
    shard.map(|s| unet_blocks::parse_shard(s).map_err(|e| anyhow::anyhow!("--shard {s}: {e}"))).transpose()
}

/// `unet predict --plan PLAN [--shard i/N] [--redo]`.
pub fn predict_plan(args: &PredictArgs) -> anyhow::Result<()> {
    let path = args.plan.as_deref().unwrap_or(Path::new(""));
    let plan = unet_blocks::load_plan(path)?;
    let env = |k: &str| std::env::var(k).ok();
    let share = match shard_arg(args.shard.as_deref())? {
        Some(share) => Some(share),
        None => unet_blocks::shard_from_env(&env)?,
    };
    let ids = match share {
        Some((i, n)) => unet_blocks::shard_blocks(plan.blocks.len(), i, n)?,
        None => (0..plan.blocks.len()).collect(),
    };
    let s = run(&plan, &ids, args.redo)?;
    tracing::info!("{} block(s) predicted, {} already done", s.done, s.skipped);
    Ok(())
}

/// `unet finalize OUT`.
pub fn finalize(args: &FinalizeArgs) -> anyhow::Result<()> {
    let s = match unet_blocks::finalize(&args.out) {
        Err(e @ unet_blocks::BlocksError::MissingBlocks { .. }) => {
            let out = args.out.display();
            anyhow::bail!(
                "{e}: run `unet predict --plan {out}` (or resubmit the array job; done blocks are skipped), then `unet finalize {out}` again"
            )
        }
        r => r?,
    };
    tracing::info!("{}: {} block(s) joined; instances per plane {:?}", args.out.display(), s.blocks, s.instances);
    println!("{}", args.out.display());
    Ok(())
}

/// `unet predict IMAGE.zarr --out OUT.ome.zarr`: plan, every block, finalize.
pub fn predict_zarr(args: &PredictArgs) -> anyhow::Result<()> {
    let [input] = args.inputs.as_slice() else {
        return usage("an OME-Zarr prediction takes exactly one input image (run one `unet predict` per image)");
    };
    if !looks_like_zarr(args.out()) {
        return usage("an OME-Zarr input needs an OME-Zarr output: pass --out NAME.ome.zarr");
    }
    if args.tta || args.split_touching.is_some() {
        return usage("--tta and --split-touching are not available block by block; leave them out for OME-Zarr");
    }
    if args.shard.is_some() {
        return usage(
            "--shard splits an OME-Zarr image by a plan: run `unet plan` first, then `unet predict --plan OUT --shard i/N`",
        );
    }
    let opts = plan_options(&args.tiles, &args.labels, args.zarr_probs, args.block)?;
    if args.device != "cpu" {
        return usage("OME-Zarr prediction block by block runs on the CPU; leave out --device");
    }
    let model = args.model().to_str().context("--model: the path is not valid UTF-8")?;
    let plan = make_plan(input, model, args.out(), &opts, args.force)?;
    let ids: Vec<usize> = (0..plan.blocks.len()).collect();
    run(&plan, &ids, false)?;
    unet_blocks::finalize(args.out())?;
    println!("{}", args.out().display());
    Ok(())
}
