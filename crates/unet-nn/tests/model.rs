//! The network's shape, initialisation and model-file round trip.

use burn::tensor::{Distribution, Tensor};
use unet_nn::{CpuBackend, Geometry, ModelFile, NnError, Normalization, Padding, UNetConfig};

type B = CpuBackend;

#[test]
fn paper_network_has_31_030_658_parameters() {
    let config = UNetConfig::default();
    assert_eq!(config.parameter_count(), 31_030_658);
    // The count from the config agrees with the tensors a built network holds.
    let small = UNetConfig { width: 8, ..UNetConfig::default() };
    let model = small.init::<B>(0, &Default::default()).unwrap();
    let n: usize = model.named_tensors().iter().map(|t| t.data.len()).sum();
    assert_eq!(n, small.parameter_count());
}

#[test]
fn output_sizes_for_several_depths_and_tiles() {
    let g = |depth| Geometry { depth, padding: Padding::Valid };
    assert_eq!(g(4).output(572).unwrap(), 388);
    assert_eq!(g(4).border(572).unwrap(), 92);
    assert_eq!(g(4).output(188).unwrap(), 4);
    assert_eq!(g(4).min_input(), 188);
    assert_eq!(g(4).valid_sizes(180, 240), vec![188, 204, 220, 236]);
    assert!(g(4).output(570).is_err());
    assert_eq!(g(3).output(572).unwrap(), 484);
    assert_eq!(g(2).output(572).unwrap(), 532);
    assert_eq!(g(1).output(100).unwrap(), 84);
    assert_eq!(g(0).output(10).unwrap(), 6);
    assert_eq!(g(5).min_input(), 380);
    let same = Geometry { depth: 4, padding: Padding::Same };
    assert_eq!(same.output(512).unwrap(), 512);
    assert!(same.output(500).is_err());
    // The valid set is exactly the arithmetic series, for every depth.
    for depth in 0..=6 {
        let geo = g(depth);
        let brute: Vec<usize> = (1..2000).filter(|&s| geo.try_output(s).is_some()).collect();
        assert_eq!(brute, geo.valid_sizes(1, 1999), "depth {depth}");
        for &s in &brute {
            assert_eq!(geo.border(s).unwrap(), geo.border_px(), "border constant, depth {depth}");
        }
    }
}

#[test]
fn invalid_tile_error_names_nearest_sizes() {
    let err = Geometry { depth: 4, padding: Padding::Valid }.output(570).unwrap_err();
    let msg = err.to_string();
    assert!(matches!(err, NnError::InvalidTile { .. }));
    assert!(msg.contains("556") && msg.contains("572"), "{msg}");
    let small = Geometry { depth: 4, padding: Padding::Valid }.output(100).unwrap_err().to_string();
    assert!(small.contains("188"), "{small}");
}

#[test]
fn forward_gives_the_geometry_output_size() {
    let config = UNetConfig { width: 2, depth: 2, ..UNetConfig::default() };
    let geo = Geometry::of(&config);
    let model = config.init::<B>(1, &Default::default()).unwrap();
    let (h, w) = (geo.valid_sizes(40, 60)[0], geo.valid_sizes(61, 90)[1]);
    let x = Tensor::<B, 4>::random([2, 1, h, w], Distribution::Default, &Default::default());
    let y = model.forward(x);
    assert_eq!(y.dims(), [2, 2, geo.output(h).unwrap(), geo.output(w).unwrap()]);
    let same = UNetConfig { width: 2, depth: 2, padding: Padding::Same, batch_norm: true, ..UNetConfig::default() };
    let model = same.init::<B>(1, &Default::default()).unwrap();
    let y = model.forward(Tensor::random([1, 1, 32, 48], Distribution::Default, &Default::default()));
    assert_eq!(y.dims(), [1, 2, 32, 48]);
}

fn std_of(v: &[f32]) -> f64 {
    let n = v.len() as f64;
    let mean = v.iter().map(|&x| x as f64).sum::<f64>() / n;
    (v.iter().map(|&x| (x as f64 - mean).powi(2)).sum::<f64>() / n).sqrt()
}

#[test]
fn he_init_std_and_zero_bias() {
    let config = UNetConfig { width: 16, ..UNetConfig::default() };
    let model = config.init::<B>(3, &Default::default()).unwrap();
    let tensors = model.named_tensors();
    let get = |n: &str| tensors.iter().find(|t| t.name == n).unwrap();
    // Largest layer: bottleneck conv2, 256 -> 256 channels, fan-in 256 * 9.
    let w = get("down.4.conv2.weight");
    let expected = (2.0 / (256.0 * 9.0f64)).sqrt();
    assert!((std_of(&w.data) / expected - 1.0).abs() < 0.1, "std {} vs {expected}", std_of(&w.data));
    let up = get("upconv.0.weight"); // [256, 128, 2, 2], fan-in 256
    let expected_up = (2.0 / 256.0f64).sqrt();
    assert!((std_of(&up.data) / expected_up - 1.0).abs() < 0.1);
    assert!(get("down.4.conv2.bias").data.iter().all(|&b| b == 0.0));
    // Same seed, same weights; another seed, other weights.
    let again = config.init::<B>(3, &Default::default()).unwrap().named_tensors();
    assert_eq!(again, tensors);
    let other = config.init::<B>(4, &Default::default()).unwrap().named_tensors();
    assert_ne!(other[0].data, tensors[0].data);
}

#[test]
fn model_file_round_trip_is_bit_identical() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("m.safetensors");
    let config =
        UNetConfig { width: 4, depth: 3, in_channels: 2, classes: 3, batch_norm: true, ..UNetConfig::default() };
    let device = Default::default();
    let model = config.init::<B>(11, &device).unwrap();
    let norm = Normalization::Fixed { mean: 0.4, std: 0.2 };
    let mut file = ModelFile::from_model(&model, &config, norm);
    file.info.insert("steps".into(), "12".into());
    file.save(&path, false).unwrap();
    let loaded = ModelFile::load(&path).unwrap();
    assert!(loaded == file, "loaded model file differs from the saved one");
    let model2 = loaded.model::<B>(&device, &path).unwrap();
    let x = Tensor::<B, 4>::random([1, 2, 92, 108], Distribution::Default, &device);
    let a = model.forward(x.clone()).into_data().to_vec::<f32>().unwrap();
    let b = model2.forward(x).into_data().to_vec::<f32>().unwrap();
    assert_eq!(a, b);
    // An existing file is not replaced without force.
    assert!(file.save(&path, false).is_err());
    file.save(&path, true).unwrap();
}

#[test]
fn corrupt_and_foreign_model_files_are_clear_errors() {
    let dir = tempfile::tempdir().unwrap();
    let junk = dir.path().join("junk.safetensors");
    std::fs::write(&junk, b"this is not a model").unwrap();
    let e = ModelFile::load(&junk).unwrap_err();
    assert!(matches!(e, NnError::Corrupt { .. }), "{e}");
    assert!(e.to_string().contains("junk.safetensors"));

    // A truncated real file.
    let config = UNetConfig { width: 2, depth: 1, ..UNetConfig::default() };
    let model = config.init::<B>(0, &Default::default()).unwrap();
    let good = dir.path().join("good.safetensors");
    ModelFile::from_model(&model, &config, Normalization::PerImage).save(&good, false).unwrap();
    let bytes = std::fs::read(&good).unwrap();
    let cut = dir.path().join("cut.safetensors");
    std::fs::write(&cut, &bytes[..bytes.len() - 10]).unwrap();
    assert!(matches!(ModelFile::load(&cut).unwrap_err(), NnError::Corrupt { .. }));

    // Another format version.
    let (mut meta, tensors) = unet_nn::read_safetensors(&good).unwrap();
    meta.insert("format_version".into(), "99".into());
    let v99 = dir.path().join("v99.safetensors");
    std::fs::write(&v99, unet_nn::to_safetensors_bytes(&tensors, meta.clone()).unwrap()).unwrap();
    let e = ModelFile::load(&v99).unwrap_err();
    assert!(matches!(e, NnError::Version { .. }), "{e}");

    // Weights that do not fit the stored config.
    meta.insert("format_version".into(), "1".into());
    meta.insert(
        "config".into(),
        serde_json::to_string(&UNetConfig { width: 3, depth: 1, ..UNetConfig::default() }).unwrap(),
    );
    let wrong = dir.path().join("wrong.safetensors");
    std::fs::write(&wrong, unet_nn::to_safetensors_bytes(&tensors, meta).unwrap()).unwrap();
    let e = ModelFile::load(&wrong).unwrap().model::<B>(&Default::default(), &wrong).unwrap_err();
    assert!(e.to_string().contains("shape"), "{e}");
    // A missing file.
    assert!(matches!(ModelFile::load(&dir.path().join("none.safetensors")).unwrap_err(), NnError::Read { .. }));
}

#[test]
fn bad_configs_are_rejected() {
    assert!(UNetConfig { classes: 1, ..UNetConfig::default() }.validate().is_err());
    assert!(UNetConfig { width: 0, ..UNetConfig::default() }.validate().is_err());
    assert!(UNetConfig { dropout: 1.0, ..UNetConfig::default() }.validate().is_err());
    assert!(UNetConfig { in_channels: 0, ..UNetConfig::default() }.validate().is_err());
}

#[test]
fn dropout_only_in_training_and_reproducible() {
    use rand::SeedableRng;
    let config = UNetConfig { width: 2, depth: 1, dropout: 0.5, ..UNetConfig::default() };
    let device = Default::default();
    let model = config.init::<B>(5, &device).unwrap();
    let x = Tensor::<B, 4>::random([1, 1, 44, 44], Distribution::Default, &device);
    let plain = model.forward(x.clone()).into_data().to_vec::<f32>().unwrap();
    let plain2 = model.forward(x.clone()).into_data().to_vec::<f32>().unwrap();
    assert_eq!(plain, plain2);
    let run = |seed| {
        let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(seed);
        model.forward_train(x.clone(), &mut rng).into_data().to_vec::<f32>().unwrap()
    };
    assert_eq!(run(1), run(1));
    assert_ne!(run(1), plain);
}
