//! Finalizing: [`finalize`] joins the blocks' instance components across block faces
//! (union-find over the 1-pixel strips on both sides of every face), numbers the instances of
//! each plane as the whole-image labelling does, rewrites the instance labels block by block,
//! and builds the pyramid.

use std::collections::HashMap;
use std::path::Path;

use unet_zarr::ZarrOutput;

use crate::error::{BlocksError, Result};
use crate::layout::{self, FINAL_FILE, Final, Marker, RELABEL_FILE, Relabel, marker_path};
use crate::plan::{Block, Plan, load_plan};

/// Ids listed at most in a [`BlocksError::MissingBlocks`] message.
const MISSING_LISTED: usize = 20;

/// What [`finalize`] did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FinalizeSummary {
    /// Number of blocks of the plan.
    pub blocks: usize,
    /// Instances per plane (empty when the plan has no instance labels).
    pub instances: Vec<u64>,
}

/// Finalizes the output store `output` (or its plan file) once every block is done.
///
/// With instance labels: unites the block components that are 4-adjacent across a block face
/// (read from the 1-pixel strips on both sides of each face between blocks adjacent in x or y on
/// one plane), sums their sizes, removes those below the plan's `min_size`, and numbers the rest
/// `1..=n` per plane in raster order of their first pixel, so that the ids equal those of
/// [`unet_infer::instance_labels`] on the whole plane's mask; then rewrites the instance labels
/// block by block (each block is whole shards). Memory: the component tables and one block, never
/// a whole plane. Then builds the pyramid and the NGFF metadata ([`ZarrOutput::finalize`]).
///
/// Running it again is safe: the final ids are saved (`OUT/unet-relabel.json`) before any block
/// is rewritten, so an interrupted finalize resumes, and once the labels are renumbered
/// (`OUT/unet-final.json`) it only builds the pyramid again.
///
/// # Errors
/// [`BlocksError::MissingBlocks`] naming the blocks that are not done (the first 20),
/// [`BlocksError::Corrupt`] when a marker or the instance labels do not match the plan, and read
/// and write errors.
pub fn finalize(output: &Path) -> Result<FinalizeSummary> {
    let plan = load_plan(output)?;
    let store = plan.output.as_path();
    let final_path = store.join(FINAL_FILE);
    if let Some(done) = layout::read_json::<Final>(&final_path)? {
        ZarrOutput::open(store)?.finalize()?;
        return Ok(FinalizeSummary { blocks: done.blocks, instances: done.instances });
    }
    let missing: Vec<usize> = (0..plan.blocks.len()).filter(|&id| !marker_path(store, id).is_file()).collect();
    if !missing.is_empty() {
        let listed: Vec<String> = missing.iter().take(MISSING_LISTED).map(usize::to_string).collect();
        let more = if missing.len() > MISSING_LISTED { ", ..." } else { "" };
        return Err(BlocksError::MissingBlocks {
            output: store.to_path_buf(),
            count: missing.len(),
            total: plan.blocks.len(),
            ids: format!("{}{more}", listed.join(", ")),
        });
    }
    let out = ZarrOutput::open(store)?;
    let instances = if plan.instances {
        let relabel_path = store.join(RELABEL_FILE);
        let relabel = match layout::read_json::<Relabel>(&relabel_path)? {
            Some(r) => r,
            None => {
                let r = final_ids(&plan, &out)?;
                layout::write_json(&relabel_path, &r)?;
                r
            }
        };
        if relabel.ids.len() != plan.blocks.len() || relabel.counts.len() != plan.planes {
            return Err(BlocksError::corrupt(
                &relabel_path,
                "does not match the plan's blocks and planes; remove it and finalize again",
            ));
        }
        for block in &plan.blocks {
            rewrite(&out, block, &relabel.ids[block.id])?;
        }
        relabel.counts
    } else {
        Vec::new()
    };
    layout::write_json(&final_path, &Final { blocks: plan.blocks.len(), instances: instances.clone() })?;
    out.finalize()?;
    Ok(FinalizeSummary { blocks: plan.blocks.len(), instances })
}

/// Union-find over the block components (path halving; the smaller index becomes the root).
struct UnionFind {
    parent: Vec<usize>,
}

impl UnionFind {
    fn new(n: usize) -> Self {
        UnionFind { parent: (0..n).collect() }
    }

    fn find(&mut self, mut i: usize) -> usize {
        while self.parent[i] != i {
            self.parent[i] = self.parent[self.parent[i]];
            i = self.parent[i];
        }
        i
    }

    fn union(&mut self, a: usize, b: usize) {
        let (ra, rb) = (self.find(a), self.find(b));
        if ra != rb {
            self.parent[ra.max(rb)] = ra.min(rb);
        }
    }
}

/// The block components of a plan, numbered across blocks (`offset[block] + local - 1`).
struct Components {
    /// First node of each block.
    offset: Vec<usize>,
    /// `[pixels, first y, first x]` per node.
    table: Vec<[u64; 3]>,
}

impl Components {
    /// Reads every block's marker.
    fn read(plan: &Plan) -> Result<Components> {
        let mut offset = Vec::with_capacity(plan.blocks.len() + 1);
        let mut table = Vec::new();
        for block in &plan.blocks {
            let path = marker_path(&plan.output, block.id);
            let marker: Marker = layout::read_json(&path)?.ok_or_else(|| {
                BlocksError::io(&path, std::io::Error::new(std::io::ErrorKind::NotFound, "the block's marker vanished"))
            })?;
            if marker.block != block.id || marker.plane != block.plane {
                return Err(BlocksError::corrupt(
                    &path,
                    format!(
                        "is the marker of block {} on plane {}, not of block {} on plane {}; remove it and run the block again",
                        marker.block, marker.plane, block.id, block.plane
                    ),
                ));
            }
            offset.push(table.len());
            table.extend(marker.components);
        }
        offset.push(table.len());
        Ok(Components { offset, table })
    }

    /// The node of stored id `value` of `block`.
    fn node(&self, plan: &Plan, block: &Block, value: u64) -> Result<usize> {
        let n = self.offset[block.id + 1] - self.offset[block.id];
        let local = (value & u64::from(u32::MAX)) as usize;
        if value >> 32 != block.id as u64 + 1 || local == 0 || local > n {
            return Err(BlocksError::corrupt(
                &plan.output,
                format!(
                    "the instance labels of block {} hold id {value:#x}, which is not one of its {n} components; run the block again (redo) before finalizing",
                    block.id
                ),
            ));
        }
        Ok(self.offset[block.id] + local - 1)
    }
}

/// The final id of every block component: components joined across faces, sizes summed, those
/// below `min_size` removed (id 0), the rest numbered `1..=n` per plane in raster order of their
/// first pixel.
fn final_ids(plan: &Plan, out: &ZarrOutput) -> Result<Relabel> {
    let comps = Components::read(plan)?;
    let mut uf = UnionFind::new(comps.table.len());
    let origin: HashMap<(usize, usize, usize), &Block> =
        plan.blocks.iter().map(|b| ((b.plane, b.write.x, b.write.y), b)).collect();
    for a in &plan.blocks {
        let (p, w) = (a.plane, a.write);
        // The face with the block on the right: columns x-1 | x over the block's rows.
        if let Some(b) = origin.get(&(p, w.x + w.width, w.y)) {
            check_face(plan, a, b, b.write.height == w.height)?;
            let strip = out.read_instances(p, w.x + w.width - 1, w.y, 2, w.height)?;
            for pair in strip.chunks_exact(2) {
                if pair[0] != 0 && pair[1] != 0 {
                    uf.union(comps.node(plan, a, pair[0])?, comps.node(plan, b, pair[1])?);
                }
            }
        }
        // The face with the block below: rows y-1 / y over the block's columns.
        if let Some(b) = origin.get(&(p, w.x, w.y + w.height)) {
            check_face(plan, a, b, b.write.width == w.width)?;
            let strip = out.read_instances(p, w.x, w.y + w.height - 1, w.width, 2)?;
            let (above, below) = strip.split_at(w.width);
            for (&u, &v) in above.iter().zip(below) {
                if u != 0 && v != 0 {
                    uf.union(comps.node(plan, a, u)?, comps.node(plan, b, v)?);
                }
            }
        }
    }

    // Sizes and first pixels of the joined components, at their roots.
    let n = comps.table.len();
    let mut size = vec![0u64; n];
    let mut first = vec![(u64::MAX, u64::MAX); n];
    let mut root = vec![0usize; n];
    for (i, &[pixels, y, x]) in comps.table.iter().enumerate() {
        let r = uf.find(i);
        root[i] = r;
        size[r] += pixels;
        first[r] = first[r].min((y, x));
    }
    // Per plane: the surviving roots in raster order of their first pixel.
    let min_size = plan.min_size.max(1) as u64;
    let mut number = vec![0u64; n];
    let mut counts = vec![0u64; plan.planes];
    for (plane, count) in counts.iter_mut().enumerate() {
        let mut roots: Vec<usize> = plan
            .blocks
            .iter()
            .filter(|b| b.plane == plane)
            .flat_map(|b| comps.offset[b.id]..comps.offset[b.id + 1])
            .filter(|&i| root[i] == i && size[i] >= min_size)
            .collect();
        roots.sort_unstable_by_key(|&r| first[r]);
        if roots.len() as u64 > u64::from(u32::MAX) {
            return Err(BlocksError::corrupt(
                &plan.output,
                format!("plane {plane} has {} instances, more than 2^32 - 1; segment a smaller image", roots.len()),
            ));
        }
        for (k, &r) in roots.iter().enumerate() {
            number[r] = k as u64 + 1;
        }
        *count = roots.len() as u64;
    }
    let ids = plan
        .blocks
        .iter()
        .map(|b| (comps.offset[b.id]..comps.offset[b.id + 1]).map(|i| number[root[i]]).collect())
        .collect();
    Ok(Relabel { counts, ids })
}

/// Neighbouring blocks must share a whole face (blocks are the shards of one grid).
fn check_face(plan: &Plan, a: &Block, b: &Block, whole: bool) -> Result<()> {
    if whole {
        return Ok(());
    }
    Err(BlocksError::corrupt(
        plan.path(),
        format!("blocks {} and {} touch but do not share a whole face; plan again", a.id, b.id),
    ))
}

/// Rewrites the instance labels of `block` with the final ids `table` (entry `l - 1` for local
/// id `l`). Ids already final (high 32 bits 0) are kept, so an interrupted rewrite can resume.
fn rewrite(out: &ZarrOutput, block: &Block, table: &[u64]) -> Result<()> {
    let w = block.write;
    let mut ids = out.read_instances(block.plane, w.x, w.y, w.width, w.height)?;
    let high = block.id as u64 + 1;
    let mut changed = false;
    for v in ids.iter_mut() {
        let (h, local) = (*v >> 32, (*v & u64::from(u32::MAX)) as usize);
        if h == 0 {
            continue;
        }
        if h != high || local == 0 || local > table.len() {
            return Err(BlocksError::corrupt(
                out.path(),
                format!(
                    "the instance labels of block {} hold id {:#x}, which is neither final nor one of its {} components; plan a new output",
                    block.id,
                    *v,
                    table.len()
                ),
            ));
        }
        *v = table[local - 1];
        changed = true;
    }
    if changed {
        out.write_instances(block.plane, w.x, w.y, w.width, w.height, &ids)?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn union_find_roots_are_the_smallest_member() {
        let mut uf = UnionFind::new(6);
        uf.union(4, 2);
        uf.union(5, 4);
        uf.union(1, 3);
        assert_eq!((uf.find(5), uf.find(4), uf.find(2)), (2, 2, 2));
        assert_eq!((uf.find(3), uf.find(0)), (1, 0));
        uf.union(3, 5);
        assert_eq!(uf.find(2), 1);
    }
}
