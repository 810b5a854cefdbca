//! Drawing series with plotters: one panel per metric (two panels a row), every run a colour in each
//! panel, into SVG (the series drawn are kept in the file's `<metadata>` as JSON, so tools and tests
//! can read exactly what was plotted) or PNG (the SVG rasterised by resvg).
use std::collections::BTreeMap;
use std::path::Path;

use plotters::prelude::*;

use super::series::{distinct, Series, XAxis};
use crate::error::{Error, Result};

const PANEL: (u32, u32) = (640, 360);

/// The picture as SVG text.
pub fn to_svg(series: &[Series], x: XAxis) -> Result<String> {
    let metrics = distinct(series.iter().map(|s| s.metric.as_str()));
    let runs = distinct(series.iter().map(|s| s.run.as_str()));
    let cols = metrics.len().min(2) as u32;
    let rows = metrics.len().div_ceil(2) as u32;
    let mut svg = String::new();
    {
        let root =
            SVGBackend::with_string(&mut svg, (PANEL.0 * cols, PANEL.1 * rows)).into_drawing_area();
        root.fill(&WHITE).map_err(draw_err)?;
        let panels = root.split_evenly((rows as usize, cols as usize));
        for (area, metric) in panels.iter().zip(&metrics) {
            let group: Vec<&Series> = series.iter().filter(|s| &s.metric == metric).collect();
            draw_panel(area, metric, &group, &runs, x)?;
        }
        root.present().map_err(draw_err)?;
    }
    let data = serde_json::to_string(series)
        .map_err(|e| Error::Internal(format!("series are not JSON: {e}")))?;
    let metadata = format!(
        "<metadata id=\"olmo-train-series\">{}</metadata>\n</svg>",
        escape_xml(&data)
    );
    Ok(match svg.rfind("</svg>") {
        Some(at) => format!("{}{metadata}{}", &svg[..at], &svg[at + 6..]),
        None => svg,
    })
}

fn draw_panel<DB: DrawingBackend>(
    area: &DrawingArea<DB, plotters::coord::Shift>,
    metric: &str,
    group: &[&Series],
    runs: &[&str],
    x: XAxis,
) -> Result<()> {
    let (xs, ys): (Vec<f64>, Vec<f64>) = group
        .iter()
        .flat_map(|s| s.x.iter().copied().zip(s.y.iter().copied()))
        .filter(|(a, b)| a.is_finite() && b.is_finite())
        .unzip();
    let (x0, x1) = padded_range(&xs, 0.0);
    let (y0, y1) = padded_range(&ys, 0.05);
    let mut chart = ChartBuilder::on(area)
        .caption(metric, ("sans-serif", 18))
        .margin(12)
        .x_label_area_size(32)
        .y_label_area_size(64)
        .build_cartesian_2d(x0..x1, y0..y1)
        .map_err(draw_err)?;
    chart
        .configure_mesh()
        .x_desc(x.label())
        .x_label_formatter(&|v| format!("{v:.0}"))
        .draw()
        .map_err(draw_err)?;
    for s in group {
        let colour = Palette99::pick(runs.iter().position(|r| *r == s.run).unwrap_or(0));
        let points: Vec<(f64, f64)> =
            s.x.iter()
                .copied()
                .zip(s.y.iter().copied())
                .filter(|(a, b)| a.is_finite() && b.is_finite())
                .collect();
        let drawn = chart
            .draw_series(LineSeries::new(points, colour.stroke_width(2)))
            .map_err(draw_err)?;
        if runs.len() > 1 {
            let c = colour.to_rgba();
            drawn
                .label(s.run.clone())
                .legend(move |(px, py)| PathElement::new(vec![(px, py), (px + 16, py)], c));
        }
    }
    if runs.len() > 1 {
        chart
            .configure_series_labels()
            .background_style(WHITE.mix(0.8))
            .border_style(BLACK)
            .draw()
            .map_err(draw_err)?;
    }
    Ok(())
}

/// The range of `v` widened by `pad` of its span (and never empty).
fn padded_range(v: &[f64], pad: f64) -> (f64, f64) {
    let lo = v.iter().copied().fold(f64::INFINITY, f64::min);
    let hi = v.iter().copied().fold(f64::NEG_INFINITY, f64::max);
    if !lo.is_finite() || !hi.is_finite() {
        return (0.0, 1.0);
    }
    if hi - lo < 1e-12 {
        return (lo - 0.5, hi + 0.5);
    }
    let p = (hi - lo) * pad;
    (lo - p, hi + p)
}

fn escape_xml(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
}

fn draw_err<E: std::error::Error + Send + Sync>(e: DrawingAreaErrorKind<E>) -> Error {
    Error::Internal(format!("drawing the plot: {e}"))
}

/// The picture in the format `path`'s extension names, written atomically.
pub fn write_picture(path: &Path, svg: &str) -> Result<()> {
    let ext = path
        .extension()
        .map(|e| e.to_string_lossy().to_lowercase())
        .unwrap_or_default();
    let bytes = match ext.as_str() {
        "svg" => svg.as_bytes().to_vec(),
        "png" => rasterise(svg)?,
        _ => {
            return Err(Error::Usage(format!(
                "--output {}: the picture's name must end in .svg or .png",
                path.display()
            )))
        }
    };
    crate::data::cache_file::write_atomically(path, &bytes)
}

/// The SVG as PNG pixels. Its text needs a system font: the first sans-serif face found stands in for
/// `sans-serif`; with none at all, the PNG is drawn without labels (the SVG keeps them) and says so.
fn rasterise(svg: &str) -> Result<Vec<u8>> {
    let mut opt = resvg::usvg::Options::default();
    let db = opt.fontdb_mut();
    db.load_system_fonts();
    let families: Vec<String> = db
        .faces()
        .flat_map(|f| f.families.iter().map(|(name, _)| name.clone()))
        .collect();
    let sans = families
        .iter()
        .find(|n| n.contains("Sans") && !n.contains("Mono"))
        .or(families.first())
        .cloned();
    let svg = match sans {
        Some(family) => {
            db.set_sans_serif_family(family);
            svg.to_string()
        }
        None => {
            tracing::warn!("no system font found: the PNG has no labels (the .svg has them)");
            strip_text(svg)
        }
    };
    let tree = resvg::usvg::Tree::from_str(&svg, &opt)
        .map_err(|e| Error::Internal(format!("the plot's SVG: {e}")))?;
    let size = tree.size().to_int_size();
    let mut pixmap = resvg::tiny_skia::Pixmap::new(size.width(), size.height())
        .ok_or_else(|| Error::Internal("empty picture".into()))?;
    resvg::render(
        &tree,
        resvg::tiny_skia::Transform::default(),
        &mut pixmap.as_mut(),
    );
    pixmap
        .encode_png()
        .map_err(|e| Error::Internal(format!("encoding the PNG: {e}")))
}

/// `svg` without its `<text>` elements.
fn strip_text(svg: &str) -> String {
    let mut out = String::with_capacity(svg.len());
    let mut rest = svg;
    while let Some(start) = rest.find("<text") {
        out.push_str(&rest[..start]);
        match rest[start..].find("</text>") {
            Some(end) => rest = &rest[start + end + "</text>".len()..],
            None => {
                rest = "";
            }
        }
    }
    out.push_str(rest);
    out
}

/// The series an SVG written by [`to_svg`] says it draws.
pub fn series_in_svg(svg: &str) -> Option<Vec<BTreeMap<String, serde_json::Value>>> {
    let start = svg.find("<metadata id=\"olmo-train-series\">")?
        + "<metadata id=\"olmo-train-series\">".len();
    let end = start + svg[start..].find("</metadata>")?;
    let text = svg[start..end]
        .replace("&lt;", "<")
        .replace("&gt;", ">")
        .replace("&amp;", "&");
    serde_json::from_str(&text).ok()
}
