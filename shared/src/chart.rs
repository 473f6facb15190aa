//! The loss curve of a run as a standalone SVG, for a product page to
//! embed (`<img src=…/metrics>` with `Accept: image/svg+xml`).
//!
//! Hand-written rather than `plotters`: two polylines, two axes and a few
//! labels are ~150 lines, while plotters' SVG backend needs font metrics
//! (a font dependency, or system fonts Lambda does not have) to lay out
//! its labels. Here the browser lays out text (`text-anchor`), so there is
//! nothing to measure.

use std::fmt::Write;

use crate::domain::curve::{MetricPoint, TrainingMetrics};

const WIDTH: f64 = 720.0;
const HEIGHT: f64 = 400.0;
const LEFT: f64 = 64.0;
const RIGHT: f64 = 24.0;
const TOP: f64 = 48.0;
const BOTTOM: f64 = 56.0;
const TICKS: u32 = 5;
const TRAIN_COLOUR: &str = "#1f77b4";
const VALID_COLOUR: &str = "#d62728";

/// The plot area's mapping from (step, loss) to pixels.
struct Scale {
    max_step: f64,
    max_loss: f64,
}

impl Scale {
    fn x(&self, step: f64) -> f64 {
        LEFT + step / self.max_step * (WIDTH - LEFT - RIGHT)
    }

    fn y(&self, loss: f64) -> f64 {
        HEIGHT - BOTTOM - loss / self.max_loss * (HEIGHT - TOP - BOTTOM)
    }
}

/// An upper bound for the axis that gives round tick labels: 1, 2, 2.5 or
/// 5 times a power of ten, at least `value`.
fn nice_ceiling(value: f64) -> f64 {
    if !(value.is_finite() && value > 0.0) {
        return 1.0;
    }
    let magnitude = 10f64.powf(value.log10().floor());
    [1.0, 2.0, 2.5, 5.0, 10.0]
        .iter()
        .map(|m| m * magnitude)
        .find(|v| *v >= value)
        .unwrap_or(10.0 * magnitude)
}

fn escape(text: &str) -> String {
    text.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
}

/// The polyline of one series, or nothing when the series has no values.
fn polyline(
    out: &mut String,
    scale: &Scale,
    points: &[MetricPoint],
    value: impl Fn(&MetricPoint) -> Option<f64>,
    id: &str,
    colour: &str,
    dash: &str,
) {
    let coords: Vec<String> = points
        .iter()
        .filter_map(|p| value(p).map(|v| (p.step, v)))
        .map(|(step, v)| format!("{:.1},{:.1}", scale.x(step as f64), scale.y(v)))
        .collect();
    if coords.is_empty() {
        return;
    }
    let _ = writeln!(
        out,
        r#"<polyline id="{id}" fill="none" stroke="{colour}" stroke-width="2"{dash} points="{}"/>"#,
        coords.join(" ")
    );
}

/// The training and validation loss of `metrics` against the step, with
/// axes, tick labels, axis titles, a legend and `title`.
pub fn loss_curve_svg(metrics: &TrainingMetrics, title: &str) -> String {
    let points = &metrics.points;
    // The batch validation loss where the provider reports it at every
    // step (OpenAI); else the whole-file one (Bedrock). Mixing the two in
    // one line would make it jump at each checkpoint.
    let batch_validation = points.iter().any(|p| p.valid_loss.is_some());
    let validation = |p: &MetricPoint| {
        if batch_validation {
            p.valid_loss
        } else {
            p.full_valid_loss
        }
    };
    let last_step = metrics.last_step().unwrap_or(0);
    let max_step = metrics.total_steps.unwrap_or(0).max(last_step).max(1) as f64;
    let max_loss = points
        .iter()
        .flat_map(|p| [p.train_loss, validation(p)])
        .flatten()
        .fold(0.0_f64, f64::max);
    let scale = Scale {
        max_step,
        max_loss: nice_ceiling(max_loss),
    };
    let mut out = String::with_capacity(4096 + points.len() * 24);
    let _ = writeln!(
        out,
        r#"<svg xmlns="http://www.w3.org/2000/svg" width="{WIDTH}" height="{HEIGHT}" viewBox="0 0 {WIDTH} {HEIGHT}" font-family="sans-serif" font-size="12" role="img" aria-label="{}">"#,
        escape(title)
    );
    let _ = writeln!(out, r#"<title>{}</title>"#, escape(title));
    let _ = writeln!(
        out,
        r##"<rect width="{WIDTH}" height="{HEIGHT}" fill="#ffffff"/>"##
    );
    let _ = writeln!(
        out,
        r#"<text x="{LEFT}" y="28" font-size="16" font-weight="bold">{}</text>"#,
        escape(title)
    );
    // Grid lines and tick labels.
    let (x0, x1) = (scale.x(0.0), scale.x(max_step));
    let (y0, y1) = (scale.y(0.0), scale.y(scale.max_loss));
    out.push_str(r##"<g id="grid" stroke="#e0e0e0">"##);
    out.push('\n');
    for i in 0..=TICKS {
        let loss = scale.max_loss * f64::from(i) / f64::from(TICKS);
        let y = scale.y(loss);
        let _ = writeln!(
            out,
            r#"<line x1="{x0:.1}" y1="{y:.1}" x2="{x1:.1}" y2="{y:.1}"/>"#
        );
    }
    out.push_str("</g>\n");
    out.push_str(r#"<g id="y-ticks" text-anchor="end">"#);
    out.push('\n');
    for i in 0..=TICKS {
        let loss = scale.max_loss * f64::from(i) / f64::from(TICKS);
        let _ = writeln!(
            out,
            r#"<text x="{:.1}" y="{:.1}">{loss:.2}</text>"#,
            LEFT - 8.0,
            scale.y(loss) + 4.0
        );
    }
    out.push_str("</g>\n");
    out.push_str(r#"<g id="x-ticks" text-anchor="middle">"#);
    out.push('\n');
    let mut last_label = None;
    for i in 0..=TICKS {
        let step = (max_step * f64::from(i) / f64::from(TICKS)).round();
        if last_label == Some(step as u64) {
            continue;
        }
        last_label = Some(step as u64);
        let _ = writeln!(
            out,
            r#"<text x="{:.1}" y="{:.1}">{}</text>"#,
            scale.x(step),
            y0 + 18.0,
            step as u64
        );
    }
    out.push_str("</g>\n");
    // Axes and their titles.
    let _ = writeln!(
        out,
        r##"<g id="axes" stroke="#333333" stroke-width="1"><line x1="{x0:.1}" y1="{y0:.1}" x2="{x1:.1}" y2="{y0:.1}"/><line x1="{x0:.1}" y1="{y0:.1}" x2="{x0:.1}" y2="{y1:.1}"/></g>"##
    );
    let _ = writeln!(
        out,
        r#"<text id="x-label" x="{:.1}" y="{:.1}" text-anchor="middle">training step</text>"#,
        (x0 + x1) / 2.0,
        HEIGHT - 14.0
    );
    let _ = writeln!(
        out,
        r#"<text id="y-label" transform="translate(16 {:.1}) rotate(-90)" text-anchor="middle">loss</text>"#,
        (y0 + y1) / 2.0
    );
    // The curves, then the legend.
    polyline(
        &mut out,
        &scale,
        points,
        |p| p.train_loss,
        "train-loss",
        TRAIN_COLOUR,
        "",
    );
    polyline(
        &mut out,
        &scale,
        points,
        validation,
        "valid-loss",
        VALID_COLOUR,
        r#" stroke-dasharray="6 4""#,
    );
    if points.is_empty() {
        let _ = writeln!(
            out,
            r##"<text x="{:.1}" y="{:.1}" text-anchor="middle" fill="#666666">no metrics reported yet</text>"##,
            (x0 + x1) / 2.0,
            (y0 + y1) / 2.0
        );
    }
    let lx = WIDTH - RIGHT - 150.0;
    let _ = writeln!(
        out,
        r#"<g id="legend"><line x1="{lx}" y1="22" x2="{}" y2="22" stroke="{TRAIN_COLOUR}" stroke-width="2"/><text x="{}" y="26">training loss</text><line x1="{lx}" y1="38" x2="{}" y2="38" stroke="{VALID_COLOUR}" stroke-width="2" stroke-dasharray="6 4"/><text x="{}" y="42">validation loss</text></g>"#,
        lx + 24.0,
        lx + 30.0,
        lx + 24.0,
        lx + 30.0
    );
    out.push_str("</svg>\n");
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn metrics() -> TrainingMetrics {
        let mut m = TrainingMetrics::default();
        let points: Vec<MetricPoint> = (1..=4)
            .map(|s| MetricPoint {
                train_loss: Some(2.0 / s as f64),
                valid_loss: (s % 2 == 0).then_some(2.1 / s as f64),
                ..MetricPoint::at(s)
            })
            .collect();
        m.merge(&points, Some(4));
        m
    }

    #[test]
    fn axis_bounds_are_round() {
        assert_eq!(nice_ceiling(2.05), 2.5);
        assert_eq!(nice_ceiling(0.31), 0.5);
        assert_eq!(nice_ceiling(7.0), 10.0);
        assert_eq!(nice_ceiling(0.0), 1.0);
    }

    #[test]
    fn both_curves_are_drawn_with_one_vertex_per_value() {
        let svg = loss_curve_svg(&metrics(), "support <v1> & co");
        let line = |id: &str| {
            svg.lines()
                .find(|l| l.contains(&format!(r#"id="{id}""#)))
                .unwrap()
                .to_owned()
        };
        let vertices = |l: &str| l.split("points=\"").nth(1).unwrap().split(' ').count();
        assert_eq!(vertices(&line("train-loss")), 4);
        assert_eq!(vertices(&line("valid-loss")), 2);
        // The first training point (step 1, loss 2.0) sits a quarter of
        // the way along a 0..4 axis, at the top of a 0..2 axis.
        assert!(
            line("train-loss").contains(r#"points="222.0,48.0 "#),
            "{}",
            line("train-loss")
        );
        assert!(svg.contains("support &lt;v1&gt; &amp; co"));
        assert!(!svg.contains("no metrics reported yet"));
    }

    #[test]
    fn no_metrics_is_an_empty_chart_that_says_so() {
        let svg = loss_curve_svg(&TrainingMetrics::default(), "r");
        assert!(svg.contains("no metrics reported yet"));
        assert!(!svg.contains("<polyline"));
    }
}
