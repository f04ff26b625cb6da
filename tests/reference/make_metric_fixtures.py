#!/usr/bin/env python3
"""Builds the metric cross-check fixtures (tests/fixtures/metrics/).

Ground-truth / prediction pairs are cut (256x256) from the ISBI 2012 training labels in
../shared/data/isbi2012/train/labels and altered: eroded, dilated, shifted 1-3 px,
neighbouring cells merged, cells split, salt noise, and probability maps. For every pair
the scores are computed three ways and written to fixtures.json:

* "independent": a numpy implementation written from ../shared/docs/METRICS.md (5.3
  foreground-restricted Rand with N^2 normalisation and border singletons, 5.4 V_Info,
  5.5 pixel error), over the thresholds of the 5.1 protocol;
* "skimage": scikit-image's adapted_rand_error / variation_of_information with the
  relabelling METRICS.md 5.7 describes (every proposal-border pixel its own label), a
  widely used peer (pair counts without self-pairs, so close but not bit-exact);
* "ctc": SEG from py-ctcmetrics (the cell tracking challenge's Python port).

The Rust test crates/unet-metrics/tests/fixtures.rs reproduces them. CI uses the
committed fixtures and does not need Python.

    pip install numpy scipy scikit-image py-ctcmetrics tifffile pillow
    python3 tests/reference/make_metric_fixtures.py [--data ../shared/data]
"""
import argparse
import json
import os
import tempfile

import numpy as np
from PIL import Image
from scipy import ndimage as ndi

FOUR = ndi.generate_binary_structure(2, 1)


def thresholds(lo, hi, step):
    """The organisers' accumulated double loop (11 values for 0..1 by 0.1)."""
    out, th = [], lo
    while th <= hi:
        out.append(th)
        th += step
    return out


def cc4(mask):
    return ndi.label(mask, structure=FOUR)[0]


def rand_independent(truth_lab, prop_lab):
    """METRICS.md 5.3: returns (tp, fp, fn) pair counts with N^2 normalisation."""
    fg = truth_lab != 0
    s, t = truth_lab[fg].astype(np.int64), prop_lab[fg].astype(np.int64)
    n = float(fg.sum())
    border = float((t == 0).sum()) / n
    a = np.bincount(s)[1:] / n
    inner = t != 0
    b = np.bincount(t[inner])[1:] / n if inner.any() else np.zeros(0)
    pairs = s[inner] * (t.max() + 1) + t[inner]
    pij = np.unique(pairs, return_counts=True)[1] / n
    sum_a2 = np.sum(a * a)
    sum_b2 = np.sum(b * b) + border / n
    sum_ab2 = np.sum(pij * pij) + border / n
    tp = n * n * sum_ab2
    return tp, n * n * sum_b2 - tp, n * n * sum_a2 - tp


def fscore(tp, fp, fn):
    p = 1.0 if fp == 0 else tp / (tp + fp)
    r = 1.0 if fn == 0 else tp / (tp + fn)
    return 2 * p * r / (p + r) if p + r > 0 else 0.0


def vinfo_independent(truth_lab, prop_lab):
    """METRICS.md 5.4."""
    fg = truth_lab != 0
    s, t = truth_lab[fg].astype(np.int64), prop_lab[fg].astype(np.int64)
    n = float(fg.sum())
    border = float((t == 0).sum()) / n
    plogp = lambda p: np.sum(p[p > 0] * np.log(p[p > 0]))
    a = np.bincount(s)[1:] / n
    inner = t != 0
    b = np.bincount(t[inner])[1:] / n if inner.any() else np.zeros(0)
    pij = np.unique(s[inner] * (t.max() + 1) + t[inner], return_counts=True)[1] / n
    sum_a = plogp(a)
    sum_b = plogp(b) - border * np.log(n)
    sum_ab = plogp(pij) - border * np.log(n)
    ha, hb = -sum_a, -sum_b
    hab, hba = sum_b - sum_ab, sum_a - sum_ab
    prec = (ha - hab) / ha if ha != 0 else 0.0
    rec = (hb - hba) / hb if hb != 0 else 1.0
    if ha == 0:
        prec, rec = 0.0, 1.0
    if hb == 0:
        prec, rec = 1.0, 0.0
    return 2 * prec * rec / (prec + rec) if prec + rec > 0 else 0.0


def pixel_independent(truth_bin, prop_bin):
    tp = int(np.sum(truth_bin & prop_bin))
    fp = int(np.sum(~truth_bin & prop_bin))
    fn = int(np.sum(truth_bin & ~prop_bin))
    return {"pixel_error": float(np.mean(truth_bin != prop_bin)), "pixel_fscore": fscore(tp, fp, fn)}


def unique_border_labels(prop_lab, truth_lab):
    """METRICS.md 5.7: every proposal-border pixel gets a label of its own."""
    out = prop_lab.astype(np.int64).copy()
    border = out == 0
    out[border] = out.max() + 1 + np.arange(int(border.sum()))
    return out


def skimage_scores(truth_lab, prop_lab):
    from skimage.metrics import adapted_rand_error, variation_of_information
    relab = unique_border_labels(prop_lab, truth_lab)
    are, prec, rec = adapted_rand_error(truth_lab, relab, ignore_labels=(0,))
    # skimage returns [H(test | true), H(true | test)]
    h_ts, h_st = variation_of_information(truth_lab, relab, ignore_labels=(0,))
    fg = truth_lab != 0
    def entropy(x):
        p = np.unique(x, return_counts=True)[1] / x.size
        return float(-np.sum(p * np.log2(p)))
    hs, ht = entropy(truth_lab[fg]), entropy(relab[fg])
    mi = hs - h_st
    finite = lambda v: float(v) if np.isfinite(v) else None
    return {"v_rand": finite(1.0 - are), "v_info": finite(2 * mi / (hs + ht)) if hs + ht > 0 else None}


def ctc_seg(truth_inst, pred_inst, tmp):
    import tifffile
    from ctc_metrics.metrics import seg
    from ctc_metrics.utils.representations import match
    ref, comp = os.path.join(tmp, "ref.tif"), os.path.join(tmp, "comp.tif")
    tifffile.imwrite(ref, truth_inst.astype(np.uint16))
    tifffile.imwrite(comp, pred_inst.astype(np.uint16))
    labels_ref, _, _, _, iou = match(ref, comp)
    return float(seg([labels_ref], [iou]))


def alterations(truth, rng):
    """Binary predictions (1 = cell) made from a binary truth."""
    cells = cc4(truth)
    out = {"identical": truth.copy(),
           "eroded": ndi.binary_erosion(truth, FOUR, iterations=2),
           "dilated": ndi.binary_dilation(truth, FOUR, iterations=1),
           "shift_1": np.roll(truth, 1, axis=1),
           "shift_3": np.roll(np.roll(truth, 3, axis=0), -2, axis=1)}
    # Merge: open the membrane between each of a few pairs of neighbouring cells.
    merged = truth.copy()
    grown = ndi.grey_dilation(cells, footprint=np.ones((5, 5)))
    ids = [i for i in rng.permutation(np.unique(cells)[1:])[:6]]
    for i in ids:
        near = ndi.binary_dilation(cells == i, iterations=3) & ~truth
        merged |= near & (grown != 0)
    out["merged"] = merged
    # Split: cut a few large cells with a 2-px line through their centre.
    split = truth.copy()
    sizes = ndi.sum(truth, cells, index=np.arange(1, cells.max() + 1))
    for i in np.argsort(sizes)[::-1][:5] + 1:
        ys, xs = np.nonzero(cells == i)
        cy = int(np.mean(ys))
        split[cy:cy + 2, xs.min():xs.max() + 1] &= ~(cells[cy:cy + 2, xs.min():xs.max() + 1] == i)
    out["split"] = split
    noisy = truth.copy()
    flip = rng.random(truth.shape) < 0.01
    noisy[flip] = ~noisy[flip]
    out["salt"] = noisy
    return out


def main():
    here = os.path.dirname(os.path.abspath(__file__))
    ap = argparse.ArgumentParser()
    ap.add_argument("--data", default=os.path.join(here, "..", "..", "..", "shared", "data"))
    ap.add_argument("--out", default=os.path.join(here, "..", "fixtures", "metrics"))
    a = ap.parse_args()
    rng = np.random.default_rng(2012)
    os.makedirs(a.out, exist_ok=True)
    ths = thresholds(0.0, 1.0, 0.1)
    cases = []
    with tempfile.TemporaryDirectory() as tmp:
        for slice_id, (y0, x0) in [("03", (0, 0)), ("17", (200, 256))]:
            lab = np.array(Image.open(os.path.join(a.data, "isbi2012", "train", "labels", f"{slice_id}.png")))
            truth = lab[y0:y0 + 256, x0:x0 + 256] > 127
            tname = f"truth_{slice_id}.png"
            Image.fromarray((truth * 255).astype(np.uint8)).save(os.path.join(a.out, tname))
            preds = {k: (v * 255).astype(np.uint8) for k, v in alterations(truth, rng).items()}
            smooth = ndi.gaussian_filter(truth.astype(float), 2.0) + rng.normal(0, 0.15, truth.shape)
            preds["probability"] = (np.clip(smooth, 0, 1) * 255).round().astype(np.uint8)
            for name, pred8 in preds.items():
                pname = f"pred_{slice_id}_{name}.png"
                Image.fromarray(pred8).save(os.path.join(a.out, pname))
                # float32 samples as the organisers' float images, compared in double as Java does
                prob = (pred8.astype(np.float32) / np.float32(255.0)).astype(np.float64)
                binary = name != "probability"
                use = [0.0] if binary else ths
                truth_lab = cc4(truth)
                rows = []
                for th in use:
                    pb = prob > th
                    prop_lab = cc4(pb)
                    tp, fp, fn = rand_independent(truth_lab, prop_lab)
                    row = {"threshold": th, "v_rand_unthinned": fscore(tp, fp, fn),
                           "rand_tp": tp, "rand_fp": fp, "rand_fn": fn,
                           "v_info_unthinned": vinfo_independent(truth_lab, prop_lab)}
                    row.update(pixel_independent(truth, pb))
                    row["skimage"] = skimage_scores(truth_lab, prop_lab)
                    row["ctc_seg"] = ctc_seg(truth_lab, prop_lab, tmp)
                    rows.append(row)
                cases.append({"name": f"{slice_id}_{name}", "truth": tname, "pred": pname, "rows": rows})
                print(cases[-1]["name"], {k: round(v, 6) for k, v in rows[0].items() if isinstance(v, float)})
    with open(os.path.join(a.out, "fixtures.json"), "w") as f:
        json.dump({"source": "tests/reference/make_metric_fixtures.py", "cases": cases}, f, indent=1)


if __name__ == "__main__":
    main()
