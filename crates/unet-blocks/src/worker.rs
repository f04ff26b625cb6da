//! Running blocks: [`run_blocks`] predicts the blocks it is given and marks each one done.
//! Any number of processes may run it at once on one plan, each with its own ids.

use std::path::Path;
use std::time::Instant;

use unet_infer::{Predictor, Region, argmax_mask, foreground, threshold_mask};
use unet_io::Label;
use unet_metrics::{Connectivity, label_components};
use unet_nn::{Affine, CpuBackend};
use unet_zarr::{ZarrImage, ZarrOutput};

use crate::error::{BlocksError, Result};
use crate::layout::{self, FINAL_FILE, MARKER_DIR, Marker, RELABEL_FILE, marker_path};
use crate::model;
use crate::plan::{Block, Plan};

/// What [`run_blocks`] reports as it goes.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum BlockEvent {
    /// The block was done already (it has its marker) and is left as it is.
    Skipped {
        /// The block's id.
        id: usize,
    },
    /// The block starts.
    Started {
        /// The block's id.
        id: usize,
        /// Its plane.
        plane: usize,
        /// The output region it writes.
        write: Region,
    },
    /// A batch of the block's tiles went through the network.
    Tiles {
        /// The block's id.
        id: usize,
        /// Tiles done.
        done: usize,
        /// The block's tiles.
        total: usize,
    },
    /// The block is written and marked done.
    Finished {
        /// The block's id.
        id: usize,
        /// Seconds it took (reading, predicting, writing).
        seconds: f64,
    },
}

/// What [`run_blocks`] did.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct RunSummary {
    /// Blocks predicted and marked done.
    pub done: usize,
    /// Blocks skipped as done already.
    pub skipped: usize,
}

/// Predicts the blocks `ids` of `plan` (in the order given; an id given twice runs once), each
/// into its whole shards of the output store, and marks each one done
/// (`OUT/unet-blocks/<id>.json`, written atomically after its arrays). A block with a marker is
/// skipped unless `redo`; a redone block loses its marker first, so a block whose process is
/// killed midway has none and is simply run again.
///
/// Per block: reads its input region, maps each channel with the plan's (whole-image) affine
/// map, predicts its write region with the whole image's tiles, and writes the probabilities (if
/// planned), the mask (argmax class index, or `foreground > threshold` as 0/1) and, if planned,
/// the instance labels: the 4-connected components of the mask's non-zero pixels within the
/// block, with ids `(block id + 1) << 32 | local id` (local ids `1..=n` in raster order; 0 is
/// background), which [`finalize`](crate::finalize) renumbers.
///
/// The store, the input and the model are opened once, and only when some block is to run.
///
/// # Errors
/// [`BlocksError::UnknownBlock`] for an id the plan lacks (before anything runs),
/// [`BlocksError::Finalized`] when a block would be written into a finalized store,
/// [`BlocksError::ModelChanged`] when the model's sha256 is not the plan's,
/// [`BlocksError::Input`] when the input no longer matches the plan or holds NaN or infinite
/// values, and read, predict and write errors. Blocks finished before an error keep their
/// markers.
pub fn run_blocks(plan: &Plan, ids: &[usize], redo: bool, progress: &dyn Fn(BlockEvent)) -> Result<RunSummary> {
    let count = plan.blocks.len();
    if let Some(&id) = ids.iter().find(|&&id| id >= count) {
        return Err(BlocksError::UnknownBlock { id, plan: plan.path(), count, last: count.saturating_sub(1) });
    }
    let mut seen = vec![false; count];
    let ids: Vec<usize> = ids.iter().copied().filter(|&id| !std::mem::replace(&mut seen[id], true)).collect();
    let is_done = |id: usize| marker_path(&plan.output, id).is_file();
    let mut summary = RunSummary::default();
    let Some(&first) = ids.iter().find(|&&id| redo || !is_done(id)) else {
        for &id in &ids {
            progress(BlockEvent::Skipped { id });
        }
        summary.skipped = ids.len();
        return Ok(summary);
    };
    check_not_finalized(&plan.output, first)?;
    let ctx = Context::open(plan)?;
    let marker_dir = plan.output.join(MARKER_DIR);
    std::fs::create_dir_all(&marker_dir).map_err(|e| BlocksError::io(&marker_dir, e))?;
    for &id in &ids {
        if !redo && is_done(id) {
            progress(BlockEvent::Skipped { id });
            summary.skipped += 1;
            continue;
        }
        check_not_finalized(&plan.output, id)?;
        let block = &plan.blocks[id];
        let t0 = Instant::now();
        progress(BlockEvent::Started { id, plane: block.plane, write: block.write });
        layout::remove_file(&marker_path(&plan.output, id))?;
        ctx.run(block, &|done, total| progress(BlockEvent::Tiles { id, done, total }))?;
        progress(BlockEvent::Finished { id, seconds: t0.elapsed().as_secs_f64() });
        summary.done += 1;
    }
    Ok(summary)
}

/// Refuses to write block `id` once finalize has started renumbering.
fn check_not_finalized(output: &Path, id: usize) -> Result<()> {
    if output.join(FINAL_FILE).exists() || output.join(RELABEL_FILE).exists() {
        return Err(BlocksError::Finalized { output: output.to_path_buf(), id });
    }
    Ok(())
}

/// What every block of one run shares: the plan, the store, the input and the predictor.
struct Context<'a> {
    plan: &'a Plan,
    out: ZarrOutput,
    image: ZarrImage,
    predictor: Predictor<CpuBackend>,
}

impl<'a> Context<'a> {
    /// Opens the store, the input and the model of `plan`, and checks them against it.
    fn open(plan: &'a Plan) -> Result<Context<'a>> {
        let out = ZarrOutput::open(&plan.output)?;
        let s = out.spec();
        let planned = (plan.width, plan.height, plan.planes, plan.shard, plan.instances, plan.probabilities);
        let stored = (s.width, s.height, s.planes, s.shard, s.instances, s.probabilities.map(|p| p.dtype));
        if planned != stored || !s.mask {
            return Err(BlocksError::corrupt(
                &plan.output,
                format!(
                    "the store's arrays (width, height, planes, shard, instances, probabilities = {stored:?}) do not match its plan's {planned:?}; plan a new output"
                ),
            ));
        }
        let image = ZarrImage::open(&plan.input)?;
        let found = (image.width(), image.height(), image.planes(), image.channels());
        let expected = (plan.width, plan.height, plan.planes, plan.channels);
        if found != expected {
            return Err(BlocksError::Input {
                input: plan.input.clone(),
                reason: format!(
                    "is {found:?} (width, height, planes, channels) but the plan was made for {expected:?}; the input changed since planning: restore it, or plan a new output"
                ),
            });
        }
        let model = model::load(&plan.model)?;
        if model.sha256 != plan.model_sha256 {
            return Err(BlocksError::ModelChanged {
                model: model.name,
                plan: plan.path(),
                expected: plan.model_sha256.clone(),
                found: model.sha256,
            });
        }
        let predictor = model.predictor(Some(plan.tile), plan.batch_tiles, None)?;
        Ok(Context { plan, out, image, predictor })
    }

    /// Predicts and writes one block, then its marker.
    fn run(&self, block: &Block, tiles: &dyn Fn(usize, usize)) -> Result<()> {
        let plan = self.plan;
        let (id, plane, r, w) = (block.id, block.plane, block.read, block.write);
        let mut input = self.image.read_region(plane, r.x, r.y, r.width, r.height)?.grid;
        let bad = input.data.iter().filter(|v| !v.is_finite()).count();
        if bad > 0 {
            return Err(BlocksError::Input {
                input: plan.input.clone(),
                reason: format!(
                    "plane {plane}, region {r:?} holds {bad} NaN or infinite value(s); replace them with finite values before predicting"
                ),
            });
        }
        for (c, &[offset, scale]) in plan.affine[plane].iter().enumerate() {
            Affine { offset, scale }.apply(input.plane_mut(c));
        }
        let probs = self
            .predictor
            .predict_region(&input, r, w, (plan.width, plan.height), tiles)
            .map_err(|source| BlocksError::Predict { context: format!("block {id} (plane {plane}, {w:?})"), source })?;
        let (x, y, bw, bh) = (w.x, w.y, w.width, w.height);
        if plan.probabilities.is_some() {
            self.out.write_probabilities(plane, x, y, bw, bh, &probs.data)?;
        }
        let mask: Label = match plan.threshold {
            Some(t) => threshold_mask(&foreground(&probs), t),
            None => argmax_mask(&probs),
        };
        let bytes: Vec<u8> = mask.data.iter().map(|&v| v as u8).collect();
        self.out.write_mask(plane, x, y, bw, bh, &bytes)?;
        let components = if plan.instances {
            let (ids, components) = block_components(&mask, id, (x, y));
            self.out.write_instances(plane, x, y, bw, bh, &ids)?;
            components
        } else {
            Vec::new()
        };
        layout::write_json(&marker_path(&plan.output, id), &Marker { block: id, plane, components })
    }
}

/// The 4-connected components of the non-zero pixels of a block's `mask` whose top-left pixel
/// is `(x0, y0)`: the stored ids (`(block + 1) << 32 | local`, local ids `1..=n` in raster
/// order, 0 for background) and per component `[pixels, first y, first x]` (global
/// coordinates).
fn block_components(mask: &Label, block: usize, (x0, y0): (usize, usize)) -> (Vec<u64>, Vec<[u64; 3]>) {
    let (labels, n) = label_components(&mask.map(|&v| v != 0), Connectivity::Four);
    let width = labels.width;
    let high = (block as u64 + 1) << 32;
    let mut components = vec![[0u64; 3]; n as usize];
    let ids = labels
        .data
        .iter()
        .enumerate()
        .map(|(i, &l)| {
            if l == 0 {
                return 0;
            }
            let c = &mut components[l as usize - 1];
            if c[0] == 0 {
                *c = [0, (y0 + i / width) as u64, (x0 + i % width) as u64];
            }
            c[0] += 1;
            high | u64::from(l)
        })
        .collect();
    (ids, components)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn block_components_number_in_raster_order_with_the_block_in_the_high_bits() {
        // 5 x 3: components {(0,0),(1,0),(1,1)}, {(3,0)}, {(0,2),...} where (x, y).
        #[rustfmt::skip]
        let mask = Label::new(5, 3, vec![
            1, 1, 0, 2, 0,
            0, 1, 0, 0, 0,
            3, 0, 1, 1, 1,
        ]);
        let (ids, comps) = block_components(&mask, 6, (100, 40));
        let h = 7u64 << 32;
        let local: Vec<u64> = ids.iter().map(|&v| if v == 0 { 0 } else { v - h }).collect();
        assert_eq!(local, vec![1, 1, 0, 2, 0, 0, 1, 0, 0, 0, 3, 0, 4, 4, 4]);
        assert!(ids.iter().all(|&v| v == 0 || v >> 32 == 7));
        assert_eq!(comps, vec![[3, 40, 100], [1, 40, 103], [1, 42, 100], [3, 42, 102]]);
    }
}
