//! The report of an evaluation as one JSON document (`unet eval --json`, and the dict that
//! Python's `unet.evaluate` returns): every image's scores, the stack's best scores, the
//! threshold each was best at, and the whole table over thresholds.

use std::collections::BTreeMap;

use serde_json::Value;

use crate::stack::{MetricRow, StackEvaluation};

/// True when one of `metrics` needs the (slow) simple-point warping.
pub fn needs_warping(metrics: &[&str]) -> bool {
    metrics.iter().any(|m| matches!(*m, "warping_error" | "splits_mergers_error"))
}

/// The scores of `metrics` in `row`, with the defect counts when the warping was computed.
fn row(r: &MetricRow, metrics: &[&str], warping: bool) -> BTreeMap<String, Value> {
    let mut m: BTreeMap<String, Value> =
        metrics.iter().filter_map(|k| Some((k.to_string(), r.value(k)?.into()))).collect();
    if warping {
        m.insert("defects".into(), serde_json::to_value(r.defects).unwrap_or(Value::Null));
    }
    m
}

/// The report: `images` (each image's scores at the stack's best thresholds, with its
/// `name`), `mean` (the stack's best scores), `best_thresholds` (per metric) and
/// `thresholds` (the stack's scores at every threshold). `names` name the slices of
/// `eval` in order; unknown metric names are left out.
pub fn report(names: &[String], eval: &StackEvaluation, metrics: &[&str]) -> Value {
    let warping = needs_warping(metrics);
    let images: Vec<Value> = names
        .iter()
        .zip(&eval.slices)
        .map(|(n, r)| {
            let mut v = row(r, metrics, warping);
            v.insert("name".into(), n.clone().into());
            Value::Object(v.into_iter().collect())
        })
        .collect();
    let table: Vec<Value> = eval
        .table
        .iter()
        .map(|t| {
            let mut v = row(&t.metrics, metrics, warping);
            v.insert("threshold".into(), t.threshold.into());
            Value::Object(v.into_iter().collect())
        })
        .collect();
    let best: BTreeMap<&str, f64> = metrics.iter().filter_map(|m| Some((*m, *eval.best_thresholds.get(m)?))).collect();
    serde_json::json!({
        "images": images,
        "mean": row(&eval.best, metrics, warping),
        "best_thresholds": best,
        "thresholds": table,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{IsbiOptions, Plane, SliceInput, evaluate_stack};

    #[test]
    fn report_holds_the_chosen_metrics_per_image_and_threshold() {
        let truth = Plane::new(4, 4, (0..16).map(|i| f32::from(u8::from(i % 4 != 0))).collect());
        let slices =
            vec![SliceInput { truth: truth.clone(), truth_instances: None, proposal: truth, proposal_instances: None }];
        let opts = IsbiOptions { thresholds: vec![0.0, 0.5], warping: false, warping_radius: None };
        let eval = evaluate_stack(&slices, &opts);
        let doc = report(&["a".into()], &eval, &["pixel_error", "iou", "no_such"]);
        assert_eq!(doc["images"][0]["name"], "a");
        assert_eq!(doc["mean"]["pixel_error"], 0.0);
        assert_eq!(doc["mean"]["iou"], 1.0);
        assert!(doc["mean"].get("no_such").is_none() && doc["mean"].get("defects").is_none());
        assert_eq!(doc["thresholds"].as_array().map(Vec::len), Some(2));
        assert!(doc["best_thresholds"]["iou"].is_number());
        assert!(needs_warping(&["iou", "splits_mergers_error"]) && !needs_warping(&["iou", "v_rand"]));
    }
}
