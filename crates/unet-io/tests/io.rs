//! Round trips of every supported format and the clear errors for bad input.

use std::path::Path;

use unet_io::*;

fn ramp(w: usize, h: usize, max: f32) -> Image {
    let data = (0..w * h).map(|i| ((i * 37) % (max as usize + 1)) as f32).collect();
    Image::gray(w, h, if max > 255.0 { SampleKind::U16 } else { SampleKind::U8 }, data)
}

#[test]
fn png_8_and_16_bit_round_trip() {
    let dir = tempfile::tempdir().unwrap();
    for (max, depth, kind) in [(255.0, BitDepth::U8, SampleKind::U8), (65535.0, BitDepth::U16, SampleKind::U16)] {
        let img = ramp(33, 17, max);
        let p = dir.path().join(format!("a{}.png", kind.name()));
        write_image(&p, std::slice::from_ref(&img), depth, false).unwrap();
        let back = read_image(&p, ColorMode::Gray).unwrap();
        assert_eq!(back.kind, kind);
        assert_eq!(back, Image { kind, ..img });
    }
}

#[test]
fn tiff_float_and_3_page_stack_round_trip() {
    let dir = tempfile::tempdir().unwrap();
    let pages: Vec<Image> = (0..3)
        .map(|k| Image::gray(20, 9, SampleKind::F32, (0..180).map(|i| (i as f32) * 0.013 - k as f32 * 1.5).collect()))
        .collect();
    let p = dir.path().join("stack.tif");
    write_image(&p, &pages, BitDepth::F32, false).unwrap();
    let back = read_stack(&p, ColorMode::Gray).unwrap();
    assert_eq!(back, pages);
    // 16-bit stack and the single-page rule.
    let p16 = dir.path().join("s16.tiff");
    let pages16: Vec<Image> = (0..3).map(|_| ramp(8, 8, 65535.0)).collect();
    write_image(&p16, &pages16, BitDepth::U16, false).unwrap();
    assert_eq!(read_stack(&p16, ColorMode::Gray).unwrap(), pages16);
    assert!(matches!(read_image(&p16, ColorMode::Gray), Err(IoError::NotSinglePage { pages: 3, .. })));
}

#[test]
fn rgb_to_gray_or_three_channels() {
    let dir = tempfile::tempdir().unwrap();
    let (w, h) = (4, 3);
    let n = w * h;
    let mut data = vec![0f32; 3 * n];
    for i in 0..n {
        data[i] = 200.0;
        data[n + i] = 100.0;
        data[2 * n + i] = 50.0;
    }
    let rgb = Image::new(w, h, 3, SampleKind::U8, data);
    let p = dir.path().join("rgb.png");
    write_image(&p, std::slice::from_ref(&rgb), BitDepth::U8, false).unwrap();
    assert_eq!(read_image(&p, ColorMode::Keep).unwrap(), rgb);
    let gray = read_image(&p, ColorMode::Gray).unwrap();
    assert_eq!(gray.channels, 1);
    let expected = 0.299 * 200.0 + 0.587 * 100.0 + 0.114 * 50.0;
    assert!((gray.data[0] - expected).abs() < 1e-3);
    let pt = dir.path().join("rgb.tif");
    write_image(&pt, std::slice::from_ref(&rgb), BitDepth::U8, false).unwrap();
    assert_eq!(read_image(&pt, ColorMode::Keep).unwrap(), rgb);
}

#[test]
fn labels_binary_instance_and_classes() {
    let dir = tempfile::tempdir().unwrap();
    let mask = Image::gray(4, 2, SampleKind::U8, vec![0., 255., 255., 0., 0., 0., 255., 255.]);
    let p = dir.path().join("m.png");
    write_image(&p, &[mask], BitDepth::U8, false).unwrap();
    let l = read_label(&p, LabelKind::Binary).unwrap();
    assert_eq!(l.data, vec![0, 1, 1, 0, 0, 0, 1, 1]);
    // Instance ids above 65535 survive a 32-bit TIFF.
    let inst = Label::new(3, 2, vec![0, 1, 70000, 70000, 2, 0]);
    let pi = dir.path().join("i.tif");
    write_labels(&pi, std::slice::from_ref(&inst), false).unwrap();
    assert_eq!(read_label(&pi, LabelKind::Instance).unwrap(), inst);
    let small = Label::new(3, 1, vec![0, 2, 1]);
    let pc = dir.path().join("c.png");
    write_labels(&pc, std::slice::from_ref(&small), false).unwrap();
    assert_eq!(read_label(&pc, LabelKind::Classes(3)).unwrap(), small);
}

#[test]
fn pairing_by_stem() {
    let dir = tempfile::tempdir().unwrap();
    let (imgs, labs) = (dir.path().join("images"), dir.path().join("labels"));
    for (d, ext) in [(&imgs, "png"), (&labs, "tif")] {
        for s in ["b", "a"] {
            write_image(&d.join(format!("{s}.{ext}")), &[ramp(5, 5, 255.0)], BitDepth::U8, false).unwrap();
        }
    }
    let pairs = pair_by_stem(&imgs, &labs).unwrap();
    assert_eq!(pairs.iter().map(|p| p.stem.as_str()).collect::<Vec<_>>(), vec!["a", "b"]);
    assert_eq!(pairs[0].label, labs.join("a.tif"));
}

/// Asserts an error, that its message names `file` and contains `hint`.
fn assert_clear<T: std::fmt::Debug>(r: Result<T>, file: &Path, hint: &str) -> IoError {
    let e = r.expect_err("expected an error");
    let msg = e.to_string();
    let name = file.file_name().unwrap().to_string_lossy().to_string();
    assert!(msg.contains(&name), "message does not name {name}: {msg}");
    assert!(msg.contains(hint), "message lacks '{hint}': {msg}");
    assert!(!msg.contains('\n'), "one line: {msg}");
    e
}

#[test]
fn bad_inputs_give_clear_errors() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    // 1. missing file
    let missing = d.join("missing.png");
    assert_clear(read_image(&missing, ColorMode::Gray), &missing, "cannot read");
    // 2. unsupported extension
    let jpg = d.join("x.jpg");
    std::fs::write(&jpg, b"abc").unwrap();
    assert_clear(read_image(&jpg, ColorMode::Gray), &jpg, ".png, .tif or .tiff");
    // 3. corrupt PNG
    let bad = d.join("bad.png");
    std::fs::write(&bad, b"\x89PNG\r\n\x1a\nnot really").unwrap();
    assert_clear(read_image(&bad, ColorMode::Gray), &bad, "PNG");
    // 4. NaN in a float TIFF
    let nan = d.join("nan.tif");
    write_image(&nan, &[Image::gray(2, 1, SampleKind::F32, vec![1.0, f32::NAN])], BitDepth::F32, false).unwrap();
    assert_clear(read_image(&nan, ColorMode::Gray), &nan, "NaN");
    // 5. non-binary values in a binary label
    let lab = d.join("lab.png");
    write_image(&lab, &[Image::gray(3, 1, SampleKind::U8, vec![0.0, 3.0, 7.0])], BitDepth::U8, false).unwrap();
    assert_clear(read_label(&lab, LabelKind::Binary), &lab, "binary");
    // 6. label value beyond the declared classes
    assert_clear(read_label(&lab, LabelKind::Classes(3)), &lab, "3 classes");
    // 7. image/label size mismatch
    let (imgs, labs) = (d.join("im"), d.join("lb"));
    write_image(&imgs.join("s.png"), &[ramp(6, 4, 255.0)], BitDepth::U8, false).unwrap();
    write_labels(&labs.join("s.png"), &[Label::new(5, 4, vec![1; 20])], false).unwrap();
    let pair = &pair_by_stem(&imgs, &labs).unwrap()[0];
    let e = assert_clear(pair.load(ColorMode::Gray, LabelKind::Binary), &labs.join("s.png"), "same size");
    assert!(matches!(e, IoError::SizeMismatch { .. }));
    // 8. missing partner
    write_image(&imgs.join("t.png"), &[ramp(6, 4, 255.0)], BitDepth::U8, false).unwrap();
    assert_clear(pair_by_stem(&imgs, &labs), &imgs.join("t.png"), "no partner");
    // 9. empty folder
    let empty = d.join("empty");
    std::fs::create_dir(&empty).unwrap();
    assert_clear(list_images(&empty), &empty, "no .png");
    // 10. existing output without force, and no partial file left behind by a failed write
    let out = d.join("out.png");
    write_image(&out, &[ramp(2, 2, 255.0)], BitDepth::U8, false).unwrap();
    assert_clear(write_image(&out, &[ramp(2, 2, 255.0)], BitDepth::U8, false), &out, "allow replacing it");
    write_image(&out, &[ramp(3, 3, 255.0)], BitDepth::U8, true).unwrap();
    assert_eq!(read_image(&out, ColorMode::Gray).unwrap().width, 3);
    let float_png = d.join("f.png");
    assert_clear(write_image(&float_png, &[ramp(2, 2, 255.0)], BitDepth::F32, false), &float_png, "float");
    assert!(!float_png.exists());
    let leftovers: Vec<_> = std::fs::read_dir(d)
        .unwrap()
        .filter_map(|e| e.ok())
        .filter(|e| e.file_name().to_string_lossy().starts_with(".unet-tmp"))
        .collect();
    assert!(leftovers.is_empty());
    // 11. a page-size mismatch in a stack cannot be written
    let mixed = d.join("mixed.tif");
    assert_clear(
        write_image(&mixed, &[ramp(2, 2, 255.0), ramp(3, 2, 255.0)], BitDepth::U8, false),
        &mixed,
        "same size",
    );
    // 12. float label with fractions
    let fl = d.join("fl.tif");
    write_image(&fl, &[Image::gray(2, 1, SampleKind::F32, vec![0.0, 0.5])], BitDepth::F32, false).unwrap();
    assert_clear(read_label(&fl, LabelKind::Instance), &fl, "whole numbers");
}

#[test]
fn signed_tiff_is_an_unsupported_bit_depth() {
    let dir = tempfile::tempdir().unwrap();
    let p = dir.path().join("signed.tif");
    {
        let f = std::fs::File::create(&p).unwrap();
        let mut enc = tiff::encoder::TiffEncoder::new(f).unwrap();
        enc.write_image::<tiff::encoder::colortype::GrayI16>(2, 2, &[1i16, -2, 3, 4]).unwrap();
    }
    assert_clear(read_image(&p, ColorMode::Gray), &p, "signed 16-bit");
}

/// Names that are not UTF-8 pair on their bytes: `x\xff` with `x\xff`, not with `x\xfe`
/// (both print as `x\u{fffd}`), and two such names in one folder are not duplicates.
#[cfg(unix)]
#[test]
fn non_utf8_names_pair_on_their_bytes() {
    use std::ffi::OsStr;
    use std::os::unix::ffi::OsStrExt;
    let dir = tempfile::tempdir().unwrap();
    let (imgs, labs) = (dir.path().join("images"), dir.path().join("labels"));
    let name = |bytes: &[u8], ext: &str| {
        let mut n = OsStr::from_bytes(bytes).to_os_string();
        n.push(ext);
        n
    };
    let put = |d: &Path, n: std::ffi::OsString| {
        write_image(&d.join(n), &[ramp(2, 2, 255.0)], BitDepth::U8, false).unwrap();
    };
    // Only the odd one out: the image `x\xff` has no partner among the labels.
    put(&imgs, name(b"x\xff", ".png"));
    put(&labs, name(b"x\xfe", ".tif"));
    let e = pair_by_stem(&imgs, &labs).unwrap_err();
    assert!(matches!(e, IoError::MissingPartner { .. }), "{e}");
    // With both on both sides, each pairs with its own bytes.
    put(&imgs, name(b"x\xfe", ".png"));
    put(&labs, name(b"x\xff", ".tif"));
    let pairs = pair_by_stem(&imgs, &labs).unwrap();
    assert_eq!(pairs.len(), 2);
    for p in &pairs {
        assert_eq!(p.image.file_stem(), p.label.file_stem(), "{p:?}");
        assert_eq!(stem_key(&p.image), p.image.file_stem().unwrap().as_bytes());
    }
    // Hidden files are skipped, whatever their bytes.
    put(&imgs, name(b".\xff", ".png"));
    assert_eq!(list_images(&imgs).unwrap().len(), 2);
}
