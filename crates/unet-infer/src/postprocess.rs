//! From probabilities to results: hard masks (argmax or threshold), instance labels
//! (connected components of the foreground with a size filter) and overlays (mask
//! contours over the input) for a quick look.

use unet_grid::Grid;
use unet_io::{Image, Label, SampleKind};
use unet_metrics::{Connectivity, label_components};

use crate::probabilities::Probabilities;

/// Class index of the most probable class per pixel (first on ties).
pub fn argmax_mask(p: &Probabilities) -> Label {
    let n = p.plane_len();
    let data = (0..n)
        .map(|i| {
            let mut best = 0;
            for k in 1..p.channels {
                if p.data[k * n + i] > p.data[best * n + i] {
                    best = k;
                }
            }
            best as u32
        })
        .collect();
    p.with_plane(data)
}

/// 1 where the foreground probability exceeds `threshold`.
pub fn threshold_mask(foreground: &Grid<f32>, threshold: f32) -> Label {
    foreground.map(|&v| u32::from(v > threshold))
}

/// Instance labels: the 4-connected components of the non-zero mask pixels, components
/// smaller than `min_size` pixels removed, ids `1..=count` in raster order.
pub fn instance_labels(mask: &Label, min_size: usize) -> (Label, u32) {
    let (labels, n) = label_components(&mask.map(|&v| v != 0), Connectivity::Four);
    let mut size = vec![0usize; n as usize + 1];
    labels.data.iter().for_each(|&l| size[l as usize] += 1);
    let mut remap = vec![0u32; n as usize + 1];
    let mut next = 0;
    for l in 1..=n as usize {
        if size[l] >= min_size.max(1) {
            next += 1;
            remap[l] = next;
        }
    }
    (labels.map(|&l| remap[l as usize]), next)
}

/// Splits touching cells: a marker-controlled watershed on the distance transform of the
/// foreground. Markers are the parts of each connected component where the distance to
/// the background is at least `ratio` times the component's largest distance (and at least
/// 1 px), so two cells joined by a neck get two markers; every foreground pixel then goes
/// to the marker it is reached from first when flooding in order of decreasing distance.
/// Returns instance ids `1..=count` (4-connected regions) and the count.
pub fn split_touching(mask: &Label, ratio: f64, min_size: usize) -> (Label, u32) {
    use std::cmp::Ordering;
    use std::collections::BinaryHeap;
    let (width, height) = mask.size();
    let n = width * height;
    let dist = crate::distance::euclidean_distance(&mask.map(|&v| v == 0)).data;
    let fg = mask.map(|&v| v != 0);
    let comp = label_components(&fg, Connectivity::Four);
    let (comp, ncomp) = (comp.0.data, comp.1);
    let mut peak = vec![0f64; ncomp as usize + 1];
    for i in 0..n {
        if comp[i] != 0 {
            peak[comp[i] as usize] = peak[comp[i] as usize].max(dist[i]);
        }
    }
    let seeds: Vec<bool> =
        (0..n).map(|i| comp[i] != 0 && dist[i] >= (ratio * peak[comp[i] as usize]).max(1.0)).collect();
    let mut labels = label_components(&mask.with_plane(seeds), Connectivity::Four).0.data;
    let fg = fg.data;
    #[derive(PartialEq)]
    struct Item(f64, usize);
    impl Eq for Item {}
    impl PartialOrd for Item {
        fn partial_cmp(&self, o: &Self) -> Option<Ordering> {
            Some(self.cmp(o))
        }
    }
    impl Ord for Item {
        // Largest distance first; ties by smaller index, so the flood is deterministic.
        fn cmp(&self, o: &Self) -> Ordering {
            self.0.total_cmp(&o.0).then(o.1.cmp(&self.1))
        }
    }
    let mut heap = BinaryHeap::new();
    for i in 0..n {
        if labels[i] != 0 {
            heap.push(Item(dist[i], i));
        }
    }
    while let Some(Item(_, p)) = heap.pop() {
        let (x, y) = (p % width, p / width);
        let l = labels[p];
        for (nx, ny) in [(x.wrapping_sub(1), y), (x + 1, y), (x, y.wrapping_sub(1)), (x, y + 1)] {
            if nx < width && ny < height {
                let q = ny * width + nx;
                if fg[q] && labels[q] == 0 {
                    labels[q] = l;
                    heap.push(Item(dist[q], q));
                }
            }
        }
    }
    // Renumber in raster order, dropping small pieces.
    let mut size = std::collections::HashMap::new();
    labels.iter().filter(|&&l| l != 0).for_each(|&l| *size.entry(l).or_insert(0usize) += 1);
    let mut remap = std::collections::HashMap::new();
    let mut next = 0u32;
    for l in labels.iter_mut() {
        if *l == 0 {
            continue;
        }
        if size[l] < min_size.max(1) {
            *l = 0;
            continue;
        }
        *l = *remap.entry(*l).or_insert_with(|| {
            next += 1;
            next
        });
    }
    (mask.with_plane(labels), next)
}

/// An RGB picture: the (contrast-stretched) input in gray with the outlines of the
/// labelled regions drawn in colour (one colour per label).
pub fn overlay(image: &Image, labels: &Label) -> Image {
    let labels = &labels.data;
    let (w, h) = (image.width, image.height);
    let gray = image.plane(0);
    let mut sorted: Vec<f32> = gray.to_vec();
    sorted.sort_by(f32::total_cmp);
    let (lo, hi) = (sorted[sorted.len() / 100], sorted[sorted.len() - 1 - sorted.len() / 100]);
    let scale = if hi > lo { 255.0 / (hi - lo) } else { 0.0 };
    let n = w * h;
    let mut data = vec![0f32; 3 * n];
    for i in 0..n {
        let g = ((gray[i] - lo) * scale).clamp(0.0, 255.0);
        data[i] = g;
        data[n + i] = g;
        data[2 * n + i] = g;
        let l = labels[i];
        if l == 0 {
            continue;
        }
        let (x, y) = (i % w, i / w);
        let edge = x == 0
            || y == 0
            || x + 1 == w
            || y + 1 == h
            || [i - 1, i + 1, i - w, i + w].iter().any(|&j| labels[j] != l);
        if edge {
            let [r, gg, b] = color(l);
            data[i] = r;
            data[n + i] = gg;
            data[2 * n + i] = b;
        }
    }
    Image::new(w, h, 3, SampleKind::U8, data)
}

/// A bright colour for a label (golden-ratio hue steps).
fn color(label: u32) -> [f32; 3] {
    let hue = (label as f32 * 0.618_034).fract() * 6.0;
    let x = 1.0 - (hue % 2.0 - 1.0).abs();
    let (r, g, b) = match hue as u32 {
        0 => (1.0, x, 0.0),
        1 => (x, 1.0, 0.0),
        2 => (0.0, 1.0, x),
        3 => (0.0, x, 1.0),
        4 => (x, 0.0, 1.0),
        _ => (1.0, 0.0, x),
    };
    [r * 255.0, g * 255.0, b * 255.0]
}
