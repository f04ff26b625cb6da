"""The Python package against the `unet` binary and its own promises: the same results bit
for bit, clear exceptions for bad input, the GIL released while the network computes."""

import _thread
import json
import signal
import threading
import time

import numpy as np
import pytest
import tifffile
from PIL import Image

import unet

TILE = 204


@pytest.fixture(scope="module")
def model():
    return unet.Model.load("isbi2012-em")


@pytest.fixture(scope="module")
def cells():
    images, labels = unet.synth(2, size=96, seed=3)
    return images, labels


def test_synth_equals_the_cli(tmp_path, cli):
    images, labels = unet.synth(2, size=64, seed=3)
    assert images.shape == (2, 64, 64) and images.dtype == np.uint8
    assert labels.shape == (2, 64, 64) and labels.dtype == np.int32 and labels.max() >= 2
    cli("synth", "--out", tmp_path, "-n", 2, "--size", 64, 64, "--seed", 3)
    for k in range(2):
        assert np.array_equal(np.asarray(Image.open(tmp_path / f"images/{k:03}.png")), images[k])
        assert np.array_equal(np.asarray(Image.open(tmp_path / f"labels/{k:03}.png")).astype(np.int32), labels[k])


def test_predict_and_segment_equal_the_cli_bit_for_bit(tmp_path, cli, model, cells):
    image = cells[0][0]
    Image.fromarray(image).save(tmp_path / "cell.png")
    cli("predict", "--model", "isbi2012-em", tmp_path / "cell.png", "--out", tmp_path / "out",
        "--tile", TILE, "--instances", "--no-overlay")
    probs = model.predict(image, tile=TILE)
    assert probs.shape == (2, 96, 96) and probs.dtype == np.float32
    assert np.array_equal(probs[1], tifffile.imread(tmp_path / "out/cell_prob.tif"))
    labels = model.segment(image, tile=TILE)
    assert labels.dtype == np.int32 and labels.max() > 0
    assert np.array_equal(labels, tifffile.imread(tmp_path / "out/cell_instances.tif").astype(np.int32))


def test_tta_equals_the_cli(tmp_path, cli, model, cells):
    image = cells[0][1]
    Image.fromarray(image).save(tmp_path / "c.png")
    cli("predict", "--model", "isbi2012-em", tmp_path / "c.png", "--out", tmp_path / "o", "--tile", TILE,
        "--tta", "--no-overlay")
    assert np.array_equal(model.predict(image, tile=TILE, tta=True)[1], tifffile.imread(tmp_path / "o/c_prob.tif"))


def test_dtypes_layouts_and_stacks(model, cells):
    image = cells[0][0]
    ref = model.predict(image, tile=TILE)
    # The same values as uint16, float32, float64: the normalisation reads the values.
    for t in (np.uint16, np.float32, np.float64):
        np.testing.assert_allclose(model.predict(image.astype(t), tile=TILE), ref, atol=1e-5)
    # Any memory layout: a Fortran-ordered copy and a flipped view are read in logical order.
    assert np.array_equal(model.predict(np.asfortranarray(image), tile=TILE), ref)
    flipped = image[:, ::-1]
    assert not flipped.flags.c_contiguous
    assert np.array_equal(model.predict(flipped, tile=TILE), model.predict(flipped.copy(), tile=TILE))
    # A stack is predicted image by image.
    stack = model.predict(cells[0], tile=TILE)
    assert stack.shape == (2, 2, 96, 96)
    assert np.array_equal(stack[0], ref)
    seg = model.segment(cells[0], tile=TILE)
    assert seg.shape == (2, 96, 96) and np.array_equal(seg[0], model.segment(image, tile=TILE))


def test_bad_input_gives_clear_exceptions(model):
    with pytest.raises(TypeError, match="dtype complex64"):
        model.predict(np.zeros((64, 64), np.complex64))
    with pytest.raises(TypeError, match="numpy array"):
        model.predict([[1, 2], [3, 4]])
    with pytest.raises(ValueError, match="takes 1 channel"):
        model.predict(np.zeros((2, 64, 64, 3), np.uint8))
    bad = np.full((64, 64), 0.5, np.float32)
    bad[3, 4] = np.nan
    with pytest.raises(ValueError, match="1 NaN or infinite"):
        model.predict(bad)
    with pytest.raises(ValueError, match="at least one pixel"):
        model.predict(np.zeros((0, 64), np.uint8))
    with pytest.raises(ValueError, match="threshold 1.5"):
        model.segment(np.zeros((64, 64), np.uint8), threshold=1.5)
    with pytest.raises(FileNotFoundError, match="no-such.safetensors"):
        unet.Model.load("no-such.safetensors")
    with pytest.raises(ValueError, match="thread"):
        unet.set_threads(0)


def test_the_gil_is_released_during_predict(model):
    image = np.random.default_rng(0).integers(0, 255, (700, 700), dtype=np.uint8)
    done = threading.Event()
    ticks = 0

    def count():
        nonlocal ticks
        while not done.is_set():
            ticks += 1
            time.sleep(0.001)

    t = threading.Thread(target=count)
    t.start()
    t0 = time.perf_counter()
    model.predict(image)
    took = time.perf_counter() - t0
    done.set()
    t.join()
    # With the GIL held the counter could not move at all while predict ran.
    assert took > 0.05, took
    assert ticks >= 10, (ticks, took)


def test_train_in_memory_and_in_a_run_folder(tmp_path, cells):
    images, labels = unet.synth(3, size=64, seed=1)
    seen = []
    model = unet.train(list(images), list(labels), steps=12, width=4, depth=2, seed=5, progress=seen.append)
    assert [p["step"] for p in seen] == list(range(1, 13))
    assert all(np.isfinite(p["loss"]) for p in seen)
    assert model.config["width"] == 4 and model.segment(images[0]).shape == (64, 64)
    # The same run with a run folder gives the same model; the folder is what `unet train` writes.
    run = tmp_path / "run"
    again = unet.train(images, labels, out=run, steps=12, width=4, depth=2, seed=5, progress=False)
    assert np.array_equal(again.predict(images[0]), model.predict(images[0]))
    for name in ("config.toml", "metrics.csv", "last.safetensors", "checkpoint.safetensors"):
        assert (run / name).exists(), name
    loaded = unet.Model.load(str(run / "last.safetensors"))
    assert np.array_equal(loaded.predict(images[1]), model.predict(images[1]))
    model.save(str(tmp_path / "m.safetensors"))
    with pytest.raises(OSError, match="exists already"):
        model.save(str(tmp_path / "m.safetensors"))


def test_training_options_are_checked(cells):
    images, labels = unet.synth(1, size=64, seed=1)
    with pytest.raises(ValueError, match="no_such_key"):
        unet.train(images, labels, no_such_key=1, progress=False)
    with pytest.raises(ValueError, match="lr = -1"):
        unet.train(images, labels, lr=-1.0, steps=2, progress=False)
    with pytest.raises(ValueError, match="1 image.*2 label"):
        unet.train(images, [labels[0], labels[0]], steps=2, progress=False)
    with pytest.raises(ValueError, match="negative ids"):
        unet.train(images, -np.ones_like(labels), steps=2, progress=False)
    with pytest.raises(ValueError, match="resume=True needs out"):
        unet.train(images, labels, resume=True, steps=2, progress=False)


def test_ctrl_c_stops_with_a_checkpoint_and_resume_is_exact(tmp_path):
    images, labels = unet.synth(2, size=64, seed=2)
    opts = dict(steps=30, width=4, depth=2, seed=9, checkpoint_every=1000)
    whole = unet.train(images, labels, out=tmp_path / "whole", progress=False, **opts)

    def interrupt_at_step_5(p):
        if p["step"] == 5:
            _thread.interrupt_main()  # what Ctrl-C does

    # Python's own Ctrl-C handler, which a shell's background job (SIGINT ignored) lacks.
    old = signal.signal(signal.SIGINT, signal.default_int_handler)
    try:
        with pytest.raises(KeyboardInterrupt, match="resume=True"):
            unet.train(images, labels, out=tmp_path / "cut", progress=interrupt_at_step_5, **opts)
    finally:
        signal.signal(signal.SIGINT, old)
    assert (tmp_path / "cut/checkpoint.safetensors").exists()
    resumed = unet.train(images, labels, out=tmp_path / "cut", resume=True, progress=False, **opts)
    assert np.array_equal(resumed.predict(images[0]), whole.predict(images[0]))
    a = (tmp_path / "whole/last.safetensors").read_bytes()
    b = (tmp_path / "cut/last.safetensors").read_bytes()
    assert a == b


def test_evaluate_equals_unet_eval(tmp_path, cli, model, cells):
    image, truth = cells[0][0], cells[1][0]
    probs = model.predict(image, tile=TILE)[1]
    tifffile.imwrite(tmp_path / "x_prob.tif", probs)
    Image.fromarray(truth.astype(np.uint16)).save(tmp_path / "x.png")
    metrics = ["pixel_error", "rand_error", "v_rand", "iou", "seg"]
    cli("eval", "--pred", tmp_path / "x_prob.tif", "--truth", tmp_path / "x.png", "--metrics", ",".join(metrics),
        "--json", tmp_path / "e.json")
    want = json.loads((tmp_path / "e.json").read_text())
    got = unet.evaluate(probs, truth, metrics=metrics)
    assert set(got) == set(want) == {"images", "mean", "best_thresholds", "thresholds"}
    assert got["mean"] == want["mean"] and got["best_thresholds"] == want["best_thresholds"]
    assert got["thresholds"] == want["thresholds"]
    perfect = unet.evaluate(truth, truth, metrics=["rand_error", "v_rand", "seg"])["mean"]
    assert perfect == {"rand_error": 0.0, "v_rand": 1.0, "seg": 1.0}
    with pytest.raises(ValueError, match=r"\[0, 1\]"):
        unet.evaluate(probs * 2, truth)
    with pytest.raises(ValueError, match="unknown metric 'nope'"):
        unet.evaluate(probs, truth, metrics=["nope"])
    with pytest.raises(ValueError, match="no cells"):
        unet.evaluate(probs, np.zeros_like(truth))


def test_threads_can_be_set():
    unet.set_threads(1)
    assert unet.get_threads() == 1
    unet.set_threads(2)
    assert unet.get_threads() == 2
    assert "isbi2012-em" in unet.models()
