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
    let e = ModelFile::load(&wrong).unwrap_err();
    assert!(matches!(e, NnError::Weights { .. }) && e.to_string().contains("shape"), "{e}");
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

/// Writes `good`'s tensors under a changed metadata entry.
fn with_meta(good: &std::path::Path, out: &std::path::Path, key: &str, value: String) {
    let (mut meta, tensors) = unet_nn::read_safetensors(good).unwrap();
    meta.insert(key.into(), value);
    std::fs::write(out, unet_nn::to_safetensors_bytes(&tensors, meta).unwrap()).unwrap();
}

/// A config of width 16384, depth 2 over the weights of a width-2 network would build a
/// 9.7 GB network before the shapes were compared: now loading compares every tensor with
/// the config first, and building does too.
#[test]
fn metadata_that_disagrees_with_the_tensors_is_refused_before_building() {
    let dir = tempfile::tempdir().unwrap();
    let config = UNetConfig { width: 2, depth: 2, ..UNetConfig::default() };
    let model = config.init::<B>(0, &Default::default()).unwrap();
    let good = dir.path().join("good.safetensors");
    ModelFile::from_model(&model, &config, Normalization::PerImage).save(&good, false).unwrap();
    let huge = UNetConfig { width: 16384, depth: 2, ..UNetConfig::default() };
    let bad = dir.path().join("huge.safetensors");
    with_meta(&good, &bad, "config", serde_json::to_string(&huge).unwrap());
    let t0 = std::time::Instant::now();
    let e = ModelFile::load(&bad).unwrap_err();
    let msg = e.to_string();
    assert!(matches!(e, NnError::Weights { .. }), "{msg}");
    assert!(msg.contains("huge.safetensors") && msg.contains("[16384, 1, 3, 3]"), "{msg}");
    assert!(t0.elapsed().as_secs() < 5, "took {:?}", t0.elapsed());
    // A model file put together by hand is checked when it is built.
    let mut file = ModelFile::load(&good).unwrap();
    file.config = huge;
    let e = file.model::<B>(&Default::default(), &bad).unwrap_err();
    assert!(e.to_string().contains("shape"), "{e}");
    // A tensor too many, or one missing.
    let (meta, mut tensors) = unet_nn::read_safetensors(&good).unwrap();
    tensors.push(unet_nn::NamedTensor { name: "extra".into(), shape: vec![1], data: vec![0.0] });
    let extra = dir.path().join("extra.safetensors");
    std::fs::write(&extra, unet_nn::to_safetensors_bytes(&tensors, meta.clone()).unwrap()).unwrap();
    assert!(ModelFile::load(&extra).unwrap_err().to_string().contains("extra"));
    tensors.pop();
    tensors.retain(|t| t.name != "head.bias");
    let missing = dir.path().join("missing.safetensors");
    std::fs::write(&missing, unet_nn::to_safetensors_bytes(&tensors, meta).unwrap()).unwrap();
    assert!(ModelFile::load(&missing).unwrap_err().to_string().contains("head.bias"));
}

/// A header whose length or tensors claim a terabyte is a clear error naming the claim and
/// the file's size, not an allocation.
#[test]
fn headers_claiming_a_terabyte_are_clear_errors() {
    let dir = tempfile::tempdir().unwrap();
    // The header length itself.
    let p = dir.path().join("long.safetensors");
    let mut bytes = 1_000_000_000_000u64.to_le_bytes().to_vec();
    bytes.extend_from_slice(b"{}      ");
    std::fs::write(&p, &bytes).unwrap();
    let msg = ModelFile::load(&p).unwrap_err().to_string();
    assert!(msg.contains("long.safetensors") && msg.contains("claims 1000000000000 bytes"), "{msg}");
    assert!(msg.contains("holds 16 bytes"), "{msg}");
    // A tensor of 500000 x 500000 floats (a terabyte) over 16 bytes of data.
    let header = br#"{"w":{"dtype":"F32","shape":[500000,500000],"data_offsets":[0,1000000000000]}}"#;
    let mut header = header.to_vec();
    header.resize(header.len().next_multiple_of(8), b' ');
    let mut bytes = (header.len() as u64).to_le_bytes().to_vec();
    bytes.extend_from_slice(&header);
    bytes.extend_from_slice(&[0; 16]);
    let p = dir.path().join("tera.safetensors");
    std::fs::write(&p, &bytes).unwrap();
    let e = ModelFile::load(&p).unwrap_err();
    let msg = e.to_string();
    assert!(matches!(e, NnError::Corrupt { .. }), "{msg}");
    assert!(msg.contains("tera.safetensors") && msg.contains("claim 1000000000000 bytes"), "{msg}");
    assert!(msg.contains("holds 16 bytes"), "{msg}");
    // Shapes whose product overflows.
    let header = br#"{"w":{"dtype":"F32","shape":[4294967296,4294967296,4294967296,4294967296,4294967296],"data_offsets":[0,16]}}"#;
    let mut header = header.to_vec();
    header.resize(header.len().next_multiple_of(8), b' ');
    let mut bytes = (header.len() as u64).to_le_bytes().to_vec();
    bytes.extend_from_slice(&header);
    bytes.extend_from_slice(&[0; 16]);
    std::fs::write(&p, &bytes).unwrap();
    assert!(matches!(ModelFile::load(&p).unwrap_err(), NnError::Corrupt { .. }));
}

/// The same model gives the same bytes, however its metadata map happens to be ordered.
#[test]
fn model_files_are_byte_reproducible() {
    let dir = tempfile::tempdir().unwrap();
    let config = UNetConfig { width: 2, depth: 1, batch_norm: true, ..UNetConfig::default() };
    let model = config.init::<B>(7, &Default::default()).unwrap();
    let mut file = ModelFile::from_model(&model, &config, Normalization::Fixed { mean: 0.5, std: 0.25 });
    for (k, v) in [("steps", "100"), ("seed", "7"), ("data", "isbi")] {
        file.info.insert(k.into(), v.into());
    }
    let bytes: Vec<Vec<u8>> = (0..6)
        .map(|i| {
            let p = dir.path().join(format!("m{i}.safetensors"));
            file.save(&p, false).unwrap();
            std::fs::read(&p).unwrap()
        })
        .collect();
    assert!(bytes.iter().all(|b| *b == bytes[0]), "saving the same model twice gave different bytes");
    // Tensors and metadata in any order: the same bytes.
    let (meta, tensors) = unet_nn::read_safetensors(&dir.path().join("m0.safetensors")).unwrap();
    let mut reversed = tensors.clone();
    reversed.reverse();
    let mut entries: Vec<(String, String)> = meta.into_iter().collect();
    entries.sort();
    let forward = unet_nn::to_safetensors_bytes(&tensors, entries.clone()).unwrap();
    entries.reverse();
    assert_eq!(unet_nn::to_safetensors_bytes(&reversed, entries).unwrap(), forward);
    assert_eq!(forward, bytes[0]);
}

/// The shapes a config declares are the shapes its network holds.
#[test]
fn tensor_shapes_match_the_built_network() {
    for batch_norm in [false, true] {
        for depth in 0..=3 {
            let config =
                UNetConfig { width: 2, depth, in_channels: 3, classes: 4, batch_norm, ..UNetConfig::default() };
            let model = config.init::<B>(0, &Default::default()).unwrap();
            let built: Vec<(String, Vec<usize>)> =
                model.named_tensors().into_iter().map(|t| (t.name, t.shape)).collect();
            assert_eq!(config.tensor_shapes(), built, "depth {depth}, batch norm {batch_norm}");
        }
    }
}
