//! `unet train`, `unet weights` and `unet augment` from the command line.

mod common;
use common::*;

use std::path::Path;

use unet_io::{BitDepth, ColorMode, Image, Label, SampleKind};

/// Two bright touching discs and one apart, with instance labels.
fn synth(dir: &Path) {
    let n = 48;
    let centers = [(14.0, 20.0), (27.0, 20.0), (24.0, 38.0)];
    let mut img = vec![40f32; n * n];
    let mut lab = vec![0u32; n * n];
    for i in 0..n * n {
        let (x, y) = ((i % n) as f64, (i / n) as f64);
        if let Some(k) = centers.iter().position(|&(cx, cy)| (x - cx).powi(2) + (y - cy).powi(2) <= 42.0) {
            img[i] = 180.0 + ((i * 31) % 23) as f32;
            lab[i] = k as u32 + 1;
        }
    }
    unet_io::write_image(&dir.join("images/a.png"), &[Image::gray(n, n, SampleKind::U8, img)], BitDepth::U8, true)
        .unwrap();
    unet_io::write_labels(&dir.join("labels/a.png"), &[Label::new(n, n, lab)], true).unwrap();
}

#[test]
fn train_then_predict_and_resume_from_the_command_line() {
    let dir = tempfile::tempdir().unwrap();
    synth(dir.path());
    let cfg = dir.path().join("cfg.toml");
    std::fs::write(
        &cfg,
        "width = 4\ndepth = 2\nsteps = 6\nlog_every = 2\ncheckpoint_every = 3\n[augment]\nelastic_sigma = 2.0\n",
    )
    .unwrap();
    let run = dir.path().join("run");
    let (imgs, labs) = (dir.path().join("images"), dir.path().join("labels"));
    let (code, out, err) = unet(&[
        "train",
        "--config",
        s(&cfg),
        "--images",
        s(&imgs),
        "--labels",
        s(&labs),
        "--out",
        s(&run),
        "--seed",
        "3",
    ]);
    assert_eq!(code, 0, "{err}");
    assert!(out.contains("trained steps 0..6 (6 steps)"), "{out}");
    let resolved = std::fs::read_to_string(run.join("config.toml")).unwrap();
    assert!(
        resolved.contains("width = 4") && resolved.contains("seed = 3") && resolved.contains("elastic_sigma = 2.0"),
        "{resolved}"
    );
    // Extend the run by resuming with more steps.
    let (code, out, err) = unet(&["train", "--resume", s(&run), "--steps", "8"]);
    assert_eq!(code, 0, "{err}");
    assert!(out.contains("trained steps 6..8 (2 steps)"), "{out}");
    // Nothing left to do: a clear error, not a success that names files never written.
    let (code, _, err) = unet(&["train", "--resume", s(&run), "--steps", "8"]);
    assert_eq!(code, 1, "{err}");
    assert!(err.contains("at step 8 already"), "{err}");
    let model = run.join("last.safetensors");
    let info = unet_nn::ModelFile::load(&model).unwrap();
    assert_eq!(info.info["steps"], "8");
    let pred = dir.path().join("pred");
    let (code, _, err) = unet(&["predict", "--model", s(&model), s(&imgs), "--out", s(&pred)]);
    assert_eq!(code, 0, "{err}");
    assert!(pred.join("a_mask.png").exists());
    // Errors: a bad option value, a missing run folder.
    let (code, _, err) = unet(&[
        "train",
        "--images",
        s(&imgs),
        "--labels",
        s(&labs),
        "--out",
        s(&dir.path().join("r2")),
        "--optimizer",
        "rmsprop",
    ]);
    assert_eq!(code, 2);
    assert!(err.contains("--optimizer"), "{err}");
    let (code, _, err) = unet(&["train", "--resume", s(&dir.path().join("nope"))]);
    assert_eq!(code, 1);
    assert!(err.contains("config.toml"), "{err}");
}

#[test]
fn weights_and_augment_write_their_pictures() {
    let dir = tempfile::tempdir().unwrap();
    synth(dir.path());
    let out = dir.path().join("w");
    let (code, _, err) = unet(&["weights", "--labels", s(&dir.path().join("labels")), "--out", s(&out)]);
    assert_eq!(code, 0, "{err}");
    let w = unet_io::read_image(&out.join("a_weights.tif"), ColorMode::Gray).unwrap();
    assert_eq!(w.kind, SampleKind::F32);
    // Between the two touching discs the weight is high (w_c + w0 * exp(..)); far away it is w_c = 1.
    let gap = w.data[20 * 48 + 21];
    assert!(gap > 8.0, "gap weight {gap}");
    assert!((w.data[2 * 48 + 45] - 1.0).abs() < 1e-3);
    assert!(out.join("a_weights.png").exists());
    let (image, label) = (dir.path().join("images/a.png"), dir.path().join("labels/a.png"));
    // `unet augment` of the same image with seed 4, `n` previews into `out`.
    let augment = |n: &str, out: &std::path::Path| {
        unet(&["augment", "--image", s(&image), "--label", s(&label), "-n", n, "--out", s(out), "--seed", "4"])
    };
    let aug = dir.path().join("aug");
    let (code, _, err) = augment("3", &aug);
    assert_eq!(code, 0, "{err}");
    let a = unet_io::read_image(&aug.join("augment_00.png"), ColorMode::Keep).unwrap();
    assert_eq!(a.channels, 3);
    let b = unet_io::read_image(&aug.join("augment_01.png"), ColorMode::Keep).unwrap();
    assert_ne!(a, b, "different draws");
    // Same seed, same previews.
    let aug2 = dir.path().join("aug2");
    augment("1", &aug2);
    assert_eq!(unet_io::read_image(&aug2.join("augment_00.png"), ColorMode::Keep).unwrap(), a);
}

#[test]
fn a_run_folder_with_files_is_refused_and_bad_settings_are_usage_errors() {
    let dir = tempfile::tempdir().unwrap();
    synth(dir.path());
    let (imgs, labs) = (dir.path().join("images"), dir.path().join("labels"));
    // The user's own config file inside the chosen run folder.
    let run = dir.path().join("run");
    std::fs::create_dir_all(&run).unwrap();
    let mine = "# my settings\nwidth = 4\ndepth = 2\nsteps = 2\n";
    std::fs::write(run.join("config.toml"), mine).unwrap();
    let user_cfg = run.join("config.toml");
    let args = |out: &Path, extra: &[&str]| -> Vec<String> {
        let mut v: Vec<String> = ["train", "--images", s(&imgs), "--labels", s(&labs), "--config", s(&user_cfg)]
            .iter()
            .map(|x| x.to_string())
            .collect();
        v.extend(["--out".to_string(), s(out).to_string()]);
        v.extend(extra.iter().map(|x| x.to_string()));
        v
    };
    let run_with = |v: Vec<String>| unet(&v.iter().map(String::as_str).collect::<Vec<_>>());
    let (code, _, err) = run_with(args(&run, &[]));
    assert_eq!(code, 2, "{err}");
    assert!(err.contains("is not empty") && err.contains("--force"), "{err}");
    assert_eq!(std::fs::read_to_string(run.join("config.toml")).unwrap(), mine, "the user's file is untouched");
    // Another folder works; --force replaces the run's files.
    let other = dir.path().join("other");
    let (code, _, err) = run_with(args(&other, &[]));
    assert_eq!(code, 0, "{err}");
    let (code, _, err) = run_with(args(&other, &["--force"]));
    assert_eq!(code, 0, "{err}");
    // Settings out of range: exit 2, one message naming each key.
    let (code, _, err) = run_with(args(&dir.path().join("r3"), &["--steps", "0", "--lr=-1"]));
    assert_eq!(code, 2, "{err}");
    assert!(err.contains("steps = 0") && err.contains("lr = -1"), "{err}");
    assert_eq!(err.trim().lines().count(), 1, "{err}");
    std::fs::write(dir.path().join("bad.toml"), "[augment]\ngamma = inf\nelastic_sigma = nan\n").unwrap();
    let (code, _, err) = unet(&[
        "train",
        "--images",
        s(&imgs),
        "--labels",
        s(&labs),
        "--config",
        s(&dir.path().join("bad.toml")),
        "--out",
        s(&dir.path().join("r4")),
    ]);
    assert_eq!(code, 2, "{err}");
    assert!(err.contains("augment.gamma = inf") && err.contains("augment.elastic_sigma = NaN"), "{err}");
}

/// Starts a long training run, waits for its first checkpointed steps, sends `signal`.
fn interrupted_run(dir: &Path, name: &str, signal: &str) -> (i32, String, std::path::PathBuf) {
    let run = dir.join(name);
    let child = std::process::Command::new(env!("CARGO_BIN_EXE_unet"))
        .args(["train", "--images", s(&dir.join("images")), "--labels", s(&dir.join("labels"))])
        .args(["--out", s(&run), "--width", "4", "--depth", "2", "--steps", "100000", "--checkpoint-every", "100000"])
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    // metrics.csv gains a row every 10 steps.
    let t0 = std::time::Instant::now();
    while std::fs::read_to_string(run.join("metrics.csv")).map_or(0, |t| t.lines().count()) < 3 {
        assert!(t0.elapsed().as_secs() < 120, "training did not start");
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
    let status = std::process::Command::new("kill").args([signal, &child.id().to_string()]).status().unwrap();
    assert!(status.success());
    let out = child.wait_with_output().unwrap();
    (out.status.code().unwrap_or(-1), String::from_utf8_lossy(&out.stderr).into(), run)
}

#[cfg(unix)]
#[test]
fn sigint_and_sigterm_stop_with_a_checkpoint_that_resumes() {
    let dir = tempfile::tempdir().unwrap();
    synth(dir.path());
    for (signal, code) in [("-INT", 130), ("-TERM", 143)] {
        let (got, err, run) = interrupted_run(dir.path(), &signal[1..], signal);
        assert_eq!(got, code, "{signal}: {err}");
        assert!(err.contains("unet train --resume"), "{signal}: {err}");
        // Checkpointed at the step it stopped at (not at the next multiple of 100000).
        let model = unet_nn::ModelFile::load(&run.join("last.safetensors")).unwrap();
        let step: u64 = model.info["steps"].parse().unwrap();
        assert!(step >= 20, "{signal}: stopped at step {step}");
        let (c, out, e) = unet(&["train", "--resume", s(&run), "--steps", &(step + 3).to_string()]);
        assert_eq!(c, 0, "{e}");
        assert!(out.contains(&format!("trained steps {step}..{} (3 steps)", step + 3)), "{out}");
    }
}

#[test]
fn bad_numbers_are_usage_errors_and_runs_resume_from_anywhere() {
    let dir = tempfile::tempdir().unwrap();
    synth(dir.path());
    let (imgs, labs) = (dir.path().join("images"), dir.path().join("labels"));
    let data = ["--images", s(&imgs), "--labels", s(&labs)];
    for (extra, needle) in [
        (vec!["--tile", "500"], "tile = 500"),
        (vec!["--depth", "9"], "depth must be at most 8"),
        (vec!["--threads", "0"], "--threads"),
    ] {
        let out = dir.path().join("bad");
        let mut args = vec!["train"];
        args.extend(data);
        args.extend(["--out", s(&out)]);
        args.extend(extra.iter().copied());
        let (code, _, err) = unet(&args);
        assert_eq!(code, 2, "{extra:?}: {err}");
        assert!(err.contains(needle), "{extra:?}: {err}");
    }
    let (code, _, err) = unet(&["info", "--tile", "18446744073709551615"]);
    assert!(code == 1 || code == 2, "{err}");
    assert!(!err.contains("panicked") && err.contains("18446744073709551615"), "{err}");
    // Relative data paths, then a resume from another working directory.
    let run = |cwd: &Path, args: &[&str]| {
        let o = std::process::Command::new(env!("CARGO_BIN_EXE_unet")).current_dir(cwd).args(args).output().unwrap();
        (o.status.code().unwrap_or(-1), String::from_utf8_lossy(&o.stderr).to_string())
    };
    let (code, err) = run(
        dir.path(),
        &[
            "train", "--images", "images", "--labels", "labels", "--out", "rel", "--width", "4", "--depth", "2",
            "--steps", "2",
        ],
    );
    assert_eq!(code, 0, "{err}");
    let (code, err) = run(Path::new("/"), &["train", "--resume", s(&dir.path().join("rel")), "--steps", "3"]);
    assert_eq!(code, 0, "{err}");
}
