//! Block-by-block prediction against the whole image: probabilities, masks and instance ids
//! bit for bit, over planes, shuffled blocks and two workers; reruns, missing blocks and a
//! repeated finalize.

mod common;

use std::cell::RefCell;

use common::{H, TILE, W};
use unet_blocks::{BlockEvent, BlocksError, PlanOptions, ProbDtype, finalize, load_plan, plan, run_blocks};
use unet_infer::{argmax_mask, foreground, instance_labels, threshold_mask};
use unet_nn::Padding;
use unet_zarr::ZarrOutput;

fn options() -> PlanOptions {
    PlanOptions {
        tile: Some(TILE),
        batch_tiles: 3,
        block: 40,
        chunk: 20,
        probabilities: Some(ProbDtype::F32),
        instances: true,
        ..PlanOptions::default()
    }
}

#[test]
fn blocks_in_two_workers_equal_the_whole_image_bit_for_bit() {
    let dir = tempfile::tempdir().unwrap();
    let model = common::tiny_model(dir.path(), "m.safetensors", 9, Padding::Valid);
    let input = dir.path().join("in.zarr");
    common::write_input(&input, &[common::cells(1), common::cells(2)]);
    let out = dir.path().join("out.ome.zarr");

    let plan = plan(&input, model.to_str().unwrap(), &out, &options()).unwrap();
    // Tile 60 outputs 20 px; lcm(20, 20) = 20, so 40-px blocks: 8 x 7 per plane.
    assert_eq!((plan.tile, plan.shard, plan.planes, plan.blocks.len()), (TILE, 40, 2, 2 * 8 * 7));
    assert!(plan.input.is_absolute() && plan.output.is_absolute() && plan.model.starts_with('/'));
    assert_eq!(load_plan(&out).unwrap(), plan);
    assert_eq!(load_plan(&out.join("unet-plan.json")).unwrap(), plan);
    // Interior blocks read their tiles' borders: more than they write.
    let b = plan.blocks[9];
    assert_eq!((b.write.x, b.write.y, b.write.width, b.write.height), (40, 40, 40, 40));
    assert!(b.read.x < 40 && b.read.y < 40 && b.read.width > 40 && b.read.height > 40);

    common::run_two_workers(&plan);
    let summary = finalize(&out).unwrap();
    assert_eq!(summary.blocks, plan.blocks.len());

    let store = ZarrOutput::open(&out).unwrap();
    for z in 0..2 {
        let whole = common::reference(&model, &input, z, TILE, 1);
        let probs = store.read_probabilities(z, 0, 0, W, H).unwrap();
        assert_eq!(probs.len(), whole.data.len());
        let differ = probs.iter().zip(&whole.data).filter(|(a, b)| a.to_bits() != b.to_bits()).count();
        assert_eq!(differ, 0, "plane {z}: {differ} probabilities differ from the whole image's");

        let mask = argmax_mask(&whole);
        let expected_mask: Vec<u8> = mask.data.iter().map(|&v| v as u8).collect();
        assert_eq!(store.read_mask(z, 0, 0, W, H).unwrap(), expected_mask, "plane {z}: mask");
        let fg = expected_mask.iter().filter(|&&v| v != 0).count();
        assert!(fg > W * H / 10 && fg < W * H * 9 / 10, "plane {z}: a mask with {fg} foreground pixels tests little");

        let (labels, n) = instance_labels(&mask, 1);
        let expected: Vec<u64> = labels.data.iter().map(|&v| u64::from(v)).collect();
        assert_eq!(store.read_instances(z, 0, 0, W, H).unwrap(), expected, "plane {z}: instance ids");
        assert_eq!(summary.instances[z], u64::from(n));
        let across = common::straddling(&labels.data, W, plan.shard);
        assert!(across >= 10, "plane {z}: only {across} of {n} instances straddle block faces");
    }
    // The two planes differ, so the per-plane results are not one plane twice.
    assert_ne!(store.read_mask(0, 0, 0, W, H).unwrap(), store.read_mask(1, 0, 0, W, H).unwrap());
}

#[test]
fn instance_ids_equal_the_whole_image_labelling_with_a_size_filter() {
    let dir = tempfile::tempdir().unwrap();
    let model = common::tiny_model(dir.path(), "m.safetensors", 11, Padding::Valid);
    let input = dir.path().join("in.zarr");
    common::write_input(&input, &[common::cells(7)]);
    let whole = common::reference(&model, &input, 0, TILE, 1);
    // A threshold at the 60th percentile of the foreground probability: 40 % foreground.
    let fg = foreground(&whole);
    let mut sorted = fg.data.clone();
    sorted.sort_by(f32::total_cmp);
    let threshold = sorted[sorted.len() * 6 / 10];
    let mask = threshold_mask(&fg, threshold);
    let (all, n_all) = instance_labels(&mask, 1);
    let mut size = vec![0usize; n_all as usize + 1];
    all.data.iter().for_each(|&l| size[l as usize] += 1);
    let min_size = 40;
    let dropped = size[1..].iter().filter(|&&s| s < min_size).count();
    assert!(dropped >= 5 && dropped < n_all as usize - 5, "{dropped} of {n_all} below {min_size} px tests little");

    for (i, min_size) in [1, min_size].into_iter().enumerate() {
        let out = dir.path().join(format!("out{i}.ome.zarr"));
        let opts = PlanOptions { threshold: Some(threshold), min_size, probabilities: None, ..options() };
        let plan = plan(&input, model.to_str().unwrap(), &out, &opts).unwrap();
        common::run_two_workers(&plan);

        // Before finalize: block-local ids, (block + 1) << 32 | local.
        let store = ZarrOutput::open(&out).unwrap();
        let local = store.read_instances(0, 0, 0, W, H).unwrap();
        for (p, &v) in local.iter().enumerate() {
            let block = (p / W) / plan.shard * W.div_ceil(plan.shard) + (p % W) / plan.shard;
            assert!(v == 0 || v >> 32 == block as u64 + 1, "pixel {p}: id {v:#x} is not of block {block}");
        }
        // Some instance is too small in every block it lies in but kept as a whole.
        if min_size > 1 {
            let split_kept = (1..=n_all)
                .filter(|&l| size[l as usize] >= min_size)
                .filter(|&l| {
                    let mut pieces = std::collections::HashMap::<u64, usize>::new();
                    for (p, &v) in all.data.iter().enumerate() {
                        if v == l {
                            *pieces.entry(local[p]).or_default() += 1;
                        }
                    }
                    pieces.len() > 1 && pieces.values().all(|&s| s < min_size)
                })
                .count();
            assert!(split_kept >= 1, "no instance is kept only by joining pieces below {min_size} px");
        }

        let summary = finalize(&out).unwrap();
        let store = ZarrOutput::open(&out).unwrap();
        let (labels, n) = instance_labels(&mask, min_size);
        let expected: Vec<u64> = labels.data.iter().map(|&v| u64::from(v)).collect();
        let got = store.read_instances(0, 0, 0, W, H).unwrap();
        let wrong = got.iter().zip(&expected).filter(|(a, b)| a != b).count();
        assert_eq!(wrong, 0, "min_size {min_size}: {wrong} pixels with other ids than the whole image's");
        assert_eq!(summary.instances, vec![u64::from(n)]);
        let expected_mask: Vec<u8> = mask.data.iter().map(|&v| v as u8).collect();
        assert_eq!(store.read_mask(0, 0, 0, W, H).unwrap(), expected_mask);
        assert!(common::straddling(&labels.data, W, plan.shard) >= 10);
    }
}

#[test]
fn reruns_skip_done_blocks_and_finalize_is_safe_to_repeat() {
    let dir = tempfile::tempdir().unwrap();
    let model = common::tiny_model(dir.path(), "m.safetensors", 9, Padding::Valid);
    let input = dir.path().join("in.zarr");
    common::write_input(&input, &[common::cells(4)]);
    let out = dir.path().join("out.ome.zarr");
    let opts = PlanOptions { probabilities: Some(ProbDtype::U8), min_size: 20, ..options() };
    let plan = plan(&input, model.to_str().unwrap(), &out, &opts).unwrap();
    let n = plan.blocks.len();
    let all: Vec<usize> = (0..n).collect();
    let store = ZarrOutput::open(&out).unwrap();
    let snapshot = || {
        (
            store.read_probabilities(0, 0, 0, W, H).unwrap(),
            store.read_mask(0, 0, 0, W, H).unwrap(),
            store.read_instances(0, 0, 0, W, H).unwrap(),
        )
    };

    let events = RefCell::new(Vec::new());
    let record = |e: BlockEvent| events.borrow_mut().push(e);
    let s = run_blocks(&plan, &all, false, &record).unwrap();
    assert_eq!((s.done, s.skipped), (n, 0));
    assert!(events.borrow().iter().any(|e| matches!(e, BlockEvent::Tiles { id: 0, .. })));
    let first = snapshot();

    // A rerun skips every block.
    events.borrow_mut().clear();
    let s = run_blocks(&plan, &all, false, &record).unwrap();
    assert_eq!((s.done, s.skipped), (0, n));
    assert!(events.borrow().iter().all(|e| matches!(e, BlockEvent::Skipped { .. })));

    // A block without its marker (killed midway) is missing for finalize, and rerun alone.
    std::fs::remove_file(out.join("unet-blocks/5.json")).unwrap();
    match finalize(&out) {
        Err(BlocksError::MissingBlocks { count: 1, ids, .. }) => assert_eq!(ids, "5"),
        other => panic!("finalize with block 5 missing: {other:?}"),
    }
    let err = finalize(&out).unwrap_err().to_string();
    assert!(err.contains("1 of 56 blocks are not done (ids 5)"), "{err}");
    events.borrow_mut().clear();
    let s = run_blocks(&plan, &all, false, &record).unwrap();
    assert_eq!((s.done, s.skipped), (1, n - 1));
    let started: Vec<usize> = events
        .borrow()
        .iter()
        .filter_map(|e| if let BlockEvent::Started { id, .. } = e { Some(*id) } else { None })
        .collect();
    assert_eq!(started, vec![5]);
    assert!(snapshot() == first, "block 5 rerun alone changed the output");
    // redo runs a done block again, with the same bits.
    let s = run_blocks(&plan, &[3, 3], true, &|_| {}).unwrap();
    assert_eq!((s.done, s.skipped), (1, 0));
    assert!(snapshot() == first);

    // Unknown ids and a changed model are refused before anything runs.
    let err = run_blocks(&plan, &[1, n], false, &|_| {}).unwrap_err();
    assert!(matches!(err, BlocksError::UnknownBlock { id, count, .. } if id == n && count == n), "{err}");
    let saved = std::fs::read(&model).unwrap();
    common::tiny_model(dir.path(), "m.safetensors", 99, Padding::Valid);
    let err = run_blocks(&plan, &[0], true, &|_| {}).unwrap_err();
    assert!(matches!(err, BlocksError::ModelChanged { .. }), "{err}");
    assert!(err.to_string().contains(&plan.model_sha256), "{err}");
    std::fs::write(&model, saved).unwrap();

    // Finalize, twice: the same ids; and resumed from the saved final ids.
    let a = finalize(&out).unwrap();
    let final_ids = store.read_instances(0, 0, 0, W, H).unwrap();
    assert!(final_ids.iter().all(|&v| v <= a.instances[0]) && a.instances[0] > 10);
    assert_ne!(final_ids, first.2);
    let b = finalize(&out).unwrap();
    assert_eq!(a, b);
    assert_eq!(store.read_instances(0, 0, 0, W, H).unwrap(), final_ids);
    std::fs::remove_file(out.join("unet-final.json")).unwrap();
    assert_eq!(finalize(&out).unwrap(), a);
    assert_eq!(store.read_instances(0, 0, 0, W, H).unwrap(), final_ids);
    // And they are the whole image's labelling of the stored mask.
    let mask = unet_io::Label::new(W, H, first.1.iter().map(|&v| u32::from(v)).collect());
    let (labels, count) = instance_labels(&mask, 20);
    assert_eq!(u64::from(count), a.instances[0]);
    assert!(final_ids.iter().zip(&labels.data).all(|(&x, &y)| x == u64::from(y)));
    // Pyramid levels exist now.
    assert!(out.join("labels/instances/1/zarr.json").is_file());

    // A finalized store takes no more blocks; skipped ones are fine.
    let err = run_blocks(&plan, &[2], true, &|_| {}).unwrap_err();
    assert!(matches!(err, BlocksError::Finalized { id: 2, .. }), "{err}");
    assert_eq!(run_blocks(&plan, &[2], false, &|_| {}).unwrap().skipped, 1);
}

#[test]
fn plans_refuse_what_blocks_cannot_do() {
    let dir = tempfile::tempdir().unwrap();
    let input = dir.path().join("in.zarr");
    common::write_input(&input, &[common::cells(4)]);
    let same = common::tiny_model(dir.path(), "same.safetensors", 1, Padding::Same);
    let err = plan(&input, same.to_str().unwrap(), &dir.path().join("a.zarr"), &options()).unwrap_err();
    assert!(matches!(err, BlocksError::SamePadding { .. }), "{err}");
    assert!(!dir.path().join("a.zarr").exists());

    let err = plan(&input, "no-such-model", &dir.path().join("b.zarr"), &options()).unwrap_err();
    assert!(matches!(err, BlocksError::ModelNotFound { .. }) && err.to_string().contains("isbi2012-em"), "{err}");

    let valid = common::tiny_model(dir.path(), "m.safetensors", 1, Padding::Valid);
    for bad in [
        PlanOptions { block: 0, ..options() },
        PlanOptions { chunk: 0, ..options() },
        PlanOptions { threshold: Some(1.5), ..options() },
        PlanOptions { threshold: Some(f32::NAN), ..options() },
    ] {
        let err = plan(&input, valid.to_str().unwrap(), &dir.path().join("c.zarr"), &bad).unwrap_err();
        assert!(matches!(err, BlocksError::Options(_)), "{bad:?}: {err}");
    }
    let err =
        plan(&input, valid.to_str().unwrap(), &dir.path().join("d.zarr"), &PlanOptions { tile: Some(61), ..options() })
            .unwrap_err();
    assert!(err.to_string().contains("61"), "{err}");

    // An existing output is never replaced.
    let out = dir.path().join("e.zarr");
    plan(&input, valid.to_str().unwrap(), &out, &options()).unwrap();
    let err = plan(&input, valid.to_str().unwrap(), &out, &options()).unwrap_err();
    assert!(matches!(err, BlocksError::Zarr(unet_zarr::ZarrError::Exists { .. })), "{err}");

    // The automatic tile is a valid one; blocks are whole multiples of its output step, and
    // the chunks (at most 20 px) divide the step.
    let auto = plan(
        &input,
        valid.to_str().unwrap(),
        &dir.path().join("f.zarr"),
        &PlanOptions { tile: None, memory_mb: Some(64.0), ..options() },
    )
    .unwrap();
    let geo = unet_nn::Geometry::of(&common::config(Padding::Valid));
    let step = geo.output(auto.tile).unwrap() / 4 * 4;
    let chunk = unet_zarr::ZarrOutput::open(&dir.path().join("f.zarr")).unwrap().spec().chunk;
    assert!(
        auto.shard.is_multiple_of(step) && step.is_multiple_of(chunk) && chunk <= 20 && auto.shard >= 40,
        "shard {}, step {step}, chunk {chunk}",
        auto.shard
    );
}
