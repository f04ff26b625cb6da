//! Pixel agreement: the mismatched fraction (`pixel_error`) and the ISBI form
//! `1 - F-score` of pixel precision/recall on the object (cell) pixels
//! (METRICS.md 5.5; `PixelError` in the organisers' code).

/// Confusion counts of binarised proposal against binarised truth (object = positive).
#[derive(Debug, Clone, Copy, PartialEq, Default, serde::Serialize)]
pub struct PixelStats {
    pub tp: u64,
    pub fp: u64,
    pub fn_: u64,
    pub tn: u64,
}

impl PixelStats {
    /// Counts over two binary masks of equal length.
    pub fn new(truth: &[bool], proposal: &[bool]) -> Self {
        let mut s = PixelStats::default();
        for (&t, &p) in truth.iter().zip(proposal) {
            match (t, p) {
                (true, true) => s.tp += 1,
                (false, true) => s.fp += 1,
                (true, false) => s.fn_ += 1,
                (false, false) => s.tn += 1,
            }
        }
        s
    }

    /// Adds another slice's counts.
    pub fn add(&mut self, o: &PixelStats) {
        self.tp += o.tp;
        self.fp += o.fp;
        self.fn_ += o.fn_;
        self.tn += o.tn;
    }

    /// Fraction of pixels where the two masks differ.
    pub fn error(&self) -> f64 {
        let n = self.tp + self.fp + self.fn_ + self.tn;
        if n == 0 { 0.0 } else { (self.fp + self.fn_) as f64 / n as f64 }
    }

    /// F-score of pixel precision and recall (precision 1 without false positives, recall 1
    /// without false negatives, as the organisers' statistics).
    pub fn fscore(&self) -> f64 {
        let p = if self.fp == 0 { 1.0 } else { self.tp as f64 / (self.tp + self.fp) as f64 };
        let r = if self.fn_ == 0 { 1.0 } else { self.tp as f64 / (self.tp + self.fn_) as f64 };
        if p + r > 0.0 { 2.0 * p * r / (p + r) } else { 0.0 }
    }
}
