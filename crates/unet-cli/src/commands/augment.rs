//! `unet augment`: what training sees. Writes previews of augmented versions of an image
//! (elastic deformation, rotation, flip, shift, gray values) with the label's outlines.

use rand::SeedableRng;
use unet_io::{BitDepth, ColorMode, Image, LabelKind, SampleKind};
use unet_train::augment::{AugmentConfig, GrayChange, Transform};
use unet_train::sampling::{TrainImage, extract};

use crate::cli::AugmentArgs;
use crate::usage::usage;

pub fn run(args: AugmentArgs) -> anyhow::Result<()> {
    if args.n == 0 {
        return usage("-n must be at least 1");
    }
    let image = unet_io::read_image(&args.image, ColorMode::Gray)?;
    let label = unet_io::read_label(&args.label, LabelKind::Instance)?;
    if image.size() != label.size() {
        anyhow::bail!(
            "{} is {:?} but its label {} is {:?}; image and label must have the same size",
            args.image.display(),
            image.size(),
            args.label.display(),
            label.size()
        );
    }
    let (w, h) = image.size();
    // In the image's intensity unit (as training sees it), shown as 0-255.
    let unit = unet_nn::intensity_unit(&image.data);
    let set = TrainImage {
        image: image.grid.map(|&v| unit.map(v)),
        gain: vec![1.0],
        bias: vec![0.0],
        classes: label.clone(),
        weights: label.map(|_| 1.0),
    };
    let tile = w.min(h);
    let cfg = AugmentConfig::default();
    std::fs::create_dir_all(&args.out)?;
    for i in 0..args.n {
        let mut rng = unet_train::sampling::step_rng(args.seed, i as u64, 0);
        // Shift: a random centre within the middle half of the image.
        let center = (
            w as f64 / 2.0 + (rand::Rng::random_range(&mut rng, -0.25..0.25)) * w as f64,
            h as f64 / 2.0 + (rand::Rng::random_range(&mut rng, -0.25..0.25)) * h as f64,
        );
        let t = Transform::random(center, &cfg, &mut rng);
        let gray = GrayChange::random(&cfg, &mut rng);
        let mut sample_rng = rand_chacha::ChaCha8Rng::seed_from_u64(args.seed ^ i as u64);
        let s = extract(&set, tile, tile, &t, &gray, &mut sample_rng);
        let img = Image::gray(tile, tile, SampleKind::F32, s.input.iter().map(|v| v * 255.0).collect());
        let ov = unet_infer::overlay(&img, &unet_io::Label::new(tile, tile, s.classes));
        let path = args.out.join(format!("augment_{i:02}.png"));
        unet_io::write_image(&path, &[ov], BitDepth::U8, args.force)?;
        println!("{}", path.display());
    }
    Ok(())
}
