//! The training curves picture (`curves.png`): the loss and the validation metrics against
//! the step, drawn with `plotters`. Text needs a font: the first of a few common system
//! fonts is used (DejaVu Sans, Liberation Sans, ...); without one the curves are drawn
//! without labels.

use std::path::Path;
use std::sync::OnceLock;

use plotters::prelude::*;

/// One row of metrics.csv.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct CurvePoint {
    pub step: u64,
    pub loss: f64,
    /// Validation pixel error, IoU, Rand error, V_Rand.
    pub validation: Option<[f64; 4]>,
}

fn font_available() -> bool {
    static FONT: OnceLock<bool> = OnceLock::new();
    *FONT.get_or_init(|| {
        const CANDIDATES: [&str; 4] = [
            "/usr/share/fonts/truetype/dejavu/DejaVuSans.ttf",
            "/usr/share/fonts/truetype/liberation/LiberationSans-Regular.ttf",
            "/usr/share/fonts/TTF/DejaVuSans.ttf",
            "/System/Library/Fonts/Supplemental/Arial.ttf",
        ];
        CANDIDATES.iter().filter_map(|p| std::fs::read(p).ok()).any(|bytes| {
            // Fonts live for the whole process; plotters needs 'static bytes.
            let bytes: &'static [u8] = Box::leak(bytes.into_boxed_slice());
            plotters::style::register_font("sans-serif", FontStyle::Normal, bytes).is_ok()
        })
    })
}

/// Parses metrics.csv rows (header skipped).
pub fn parse_csv(text: &str) -> Vec<CurvePoint> {
    text.lines()
        .skip(1)
        .filter_map(|l| {
            let f: Vec<&str> = l.split(',').collect();
            let step = f.first()?.parse().ok()?;
            let loss = f.get(1)?.parse().ok()?;
            let v: Vec<f64> = f.iter().skip(4).filter_map(|s| s.parse().ok()).collect();
            Some(CurvePoint { step, loss, validation: (v.len() >= 4).then(|| [v[0], v[1], v[2], v[3]]) })
        })
        .collect()
}

type Area<'a> = DrawingArea<BitMapBackend<'a>, plotters::coord::Shift>;
type Chart<'a, 'b> = ChartContext<
    'a,
    BitMapBackend<'b>,
    Cartesian2d<plotters::coord::types::RangedCoordf64, plotters::coord::types::RangedCoordf64>,
>;

/// One panel: axes from 0 to `x_max` and `y_max`, a caption and axis labels when a font exists.
fn panel<'a, 'b>(
    area: &'a Area<'b>,
    caption: &str,
    x_max: f64,
    y_max: f64,
    text: bool,
) -> Result<Chart<'a, 'b>, String> {
    let mut chart = ChartBuilder::on(area);
    chart.margin(12).x_label_area_size(if text { 30 } else { 4 }).y_label_area_size(if text { 50 } else { 4 });
    if text {
        chart.caption(caption, ("sans-serif", 18));
    }
    let mut c = chart.build_cartesian_2d(0.0..x_max, 0.0..y_max).map_err(|e| e.to_string())?;
    let mut mesh = c.configure_mesh();
    if text {
        mesh.x_desc("step");
    } else {
        mesh.x_labels(0).y_labels(0);
    }
    mesh.draw().map_err(|e| e.to_string())?;
    Ok(c)
}

/// Draws the curves into an RGB buffer of `w x h` pixels.
pub fn render(points: &[CurvePoint], w: u32, h: u32) -> Result<Vec<u8>, String> {
    let mut buf = vec![255u8; (w * h * 3) as usize];
    let text = font_available();
    {
        let root = BitMapBackend::with_buffer(&mut buf, (w, h)).into_drawing_area();
        root.fill(&WHITE).map_err(|e| e.to_string())?;
        let (left, right) = root.split_horizontally(w / 2);
        let max_step = points.iter().map(|p| p.step).max().unwrap_or(1).max(1) as f64;
        let max_loss = points.iter().map(|p| p.loss).fold(0.0, f64::max).max(1e-6) * 1.05;
        let mut c = panel(&left, "training loss", max_step, max_loss, text)?;
        c.draw_series(LineSeries::new(points.iter().map(|p| (p.step as f64, p.loss)), &BLUE))
            .map_err(|e| e.to_string())?;
        let mut c = panel(&right, "validation", max_step, 1.0, text)?;
        let names = ["pixel error", "IoU", "Rand error", "V_Rand"];
        let colors = [RED, GREEN, MAGENTA, CYAN];
        for k in 0..4 {
            let series: Vec<(f64, f64)> =
                points.iter().filter_map(|p| p.validation.map(|v| (p.step as f64, v[k]))).collect();
            let color = colors[k];
            let s = c.draw_series(LineSeries::new(series.iter().copied(), &color)).map_err(|e| e.to_string())?;
            if text {
                s.label(names[k]).legend(move |(x, y)| PathElement::new(vec![(x, y), (x + 16, y)], color));
            }
            c.draw_series(series.iter().map(|&(x, y)| Circle::new((x, y), 3, color.filled())))
                .map_err(|e| e.to_string())?;
        }
        if text {
            c.configure_series_labels()
                .background_style(WHITE.mix(0.8))
                .border_style(BLACK)
                .draw()
                .map_err(|e| e.to_string())?;
        }
        root.present().map_err(|e| e.to_string())?;
    }
    Ok(buf)
}

/// Writes `curves.png` from the rows of metrics.csv, atomically.
pub fn write_curves(csv: &Path, png: &Path) -> Result<(), String> {
    let text = std::fs::read_to_string(csv).map_err(|e| e.to_string())?;
    let points = parse_csv(&text);
    let (w, h) = (1000u32, 400u32);
    let rgb = render(&points, w, h)?;
    let n = (w * h) as usize;
    let mut planar = vec![0f32; 3 * n];
    for i in 0..n {
        for c in 0..3 {
            planar[c * n + i] = rgb[i * 3 + c] as f32;
        }
    }
    let img = unet_io::Image::new(w as usize, h as usize, 3, unet_io::SampleKind::U8, planar);
    unet_io::write_image(png, &[img], unet_io::BitDepth::U8, true).map_err(|e| e.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_rows_and_draws_something() {
        let csv = "step,loss,lr,steps_per_s,val_pixel_error,val_iou,val_rand_error,val_v_rand\n1,2.0,0.01,3,,,,\n2,1.0,0.01,3,0.2,0.7,0.3,0.8\n";
        let pts = parse_csv(csv);
        assert_eq!(pts.len(), 2);
        assert_eq!(pts[1].validation, Some([0.2, 0.7, 0.3, 0.8]));
        let buf = render(&pts, 300, 120).unwrap();
        assert!(buf.iter().any(|&b| b != 255), "the picture is not blank");
    }
}
