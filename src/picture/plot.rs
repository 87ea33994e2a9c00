//! Line charts as SVG (plotters): the run report's loss and validation curves.
//!
//! A non-finite value is a gap in its line, never a point: a line stops before it and starts
//! again after it, and the caller says how many there were.

use super::PictureError;
use plotters::prelude::*;

/// One line: `(x, y)` points in x order; a non-finite `y` is a gap.
#[derive(Clone, Debug, PartialEq)]
pub struct Series {
    pub name: String,
    pub points: Vec<(f64, f64)>,
    /// Drawn pale, behind the others (raw values under their smoothed line).
    pub faint: bool,
}

impl Series {
    /// Values that are not finite.
    pub fn gaps(&self) -> usize {
        self.points.iter().filter(|(_, y)| !y.is_finite()).count()
    }

    /// At most `max` points: consecutive points averaged in equal buckets (a bucket without a
    /// finite value stays a gap). Keeps a million-step run's chart small.
    pub(crate) fn thinned(&self, max: usize) -> Series {
        if self.points.len() <= max || max == 0 {
            return self.clone();
        }
        let per = self.points.len().div_ceil(max);
        let points = self
            .points
            .chunks(per)
            .map(|c| {
                let x = c.iter().map(|p| p.0).sum::<f64>() / c.len() as f64;
                let finite: Vec<f64> = c.iter().map(|p| p.1).filter(|y| y.is_finite()).collect();
                let y = if finite.is_empty() { f64::NAN } else { finite.iter().sum::<f64>() / finite.len() as f64 };
                (x, y)
            })
            .collect();
        Series { name: self.name.clone(), points, faint: self.faint }
    }
}

pub struct Chart<'a> {
    pub title: &'a str,
    pub x_label: &'a str,
    pub y_label: &'a str,
    pub series: &'a [Series],
    /// The x values are counts (steps, epochs): ticks only at whole numbers.
    pub integer_x: bool,
}

/// A tick value without a needless `.0`; small or fractional values keep four significant digits.
fn tick(v: f64) -> String {
    if v == v.trunc() && v.abs() < 1e15 {
        format!("{}", v as i64)
    } else {
        let s = format!("{v:.4}");
        s.trim_end_matches('0').trim_end_matches('.').to_string()
    }
}

/// Runs of consecutive finite points.
fn segments(points: &[(f64, f64)]) -> Vec<Vec<(f64, f64)>> {
    let mut out: Vec<Vec<(f64, f64)>> = vec![];
    let mut current = vec![];
    for &(x, y) in points {
        if x.is_finite() && y.is_finite() {
            current.push((x, y));
        } else if !current.is_empty() {
            out.push(std::mem::take(&mut current));
        }
    }
    if !current.is_empty() {
        out.push(current);
    }
    out
}

fn span(values: impl Iterator<Item = f64>) -> Option<(f64, f64)> {
    values.filter(|v| v.is_finite()).fold(None, |acc, v| match acc {
        None => Some((v, v)),
        Some((lo, hi)) => Some((lo.min(v), hi.max(v))),
    })
}

fn err(e: impl std::fmt::Display) -> PictureError {
    PictureError::Plot(e.to_string())
}

/// The chart as one `<svg>` element, 640×340.
pub fn svg(chart: &Chart) -> Result<String, PictureError> {
    let finite = || chart.series.iter().flat_map(|s| s.points.iter()).filter(|(x, y)| x.is_finite() && y.is_finite());
    let mut out = String::new();
    {
        let root = SVGBackend::with_string(&mut out, (640, 340)).into_drawing_area();
        root.fill(&WHITE).map_err(err)?;
        let (Some((x0, x1)), Some((y0, y1))) = (span(finite().map(|p| p.0)), span(finite().map(|p| p.1))) else {
            root.draw(&Text::new(
                format!("{}: no finite values yet", chart.title),
                (20, 160),
                ("sans-serif", 16).into_font(),
            ))
            .map_err(err)?;
            root.present().map_err(err)?;
            drop(root);
            return Ok(out);
        };
        let (x0, x1) = if x1 > x0 { (x0, x1) } else { (x0 - 1.0, x1 + 1.0) };
        let pad = if y1 > y0 { (y1 - y0) * 0.05 } else { y0.abs().max(1e-3) * 0.05 };
        let mut c = ChartBuilder::on(&root)
            .caption(chart.title, ("sans-serif", 16))
            .margin(12)
            .x_label_area_size(36)
            .y_label_area_size(64)
            .build_cartesian_2d(x0..x1, (y0 - pad)..(y1 + pad))
            .map_err(err)?;
        let whole = |x: &f64| if (x - x.round()).abs() < 1e-9 { tick(*x) } else { String::new() };
        let x_ticks = if chart.integer_x { ((x1 - x0).round() as usize + 1).clamp(2, 10) } else { 10 };
        let x_format: &dyn Fn(&f64) -> String = if chart.integer_x { &whole } else { &|x: &f64| tick(*x) };
        c.configure_mesh()
            .x_desc(chart.x_label)
            .y_desc(chart.y_label)
            .x_labels(x_ticks)
            .x_label_formatter(x_format)
            .y_label_formatter(&|y| tick(*y))
            .light_line_style(WHITE.mix(0.0))
            .draw()
            .map_err(err)?;
        for (k, s) in chart.series.iter().enumerate() {
            let colour = Palette99::pick(k).to_rgba();
            let colour = if s.faint { colour.mix(0.35) } else { colour };
            let mut labelled = false;
            for seg in segments(&s.points) {
                let drawn = if seg.len() == 1 {
                    c.draw_series(seg.iter().map(|&p| Circle::new(p, 3, colour.filled()))).map_err(err)?
                } else {
                    c.draw_series(LineSeries::new(seg, colour.stroke_width(2))).map_err(err)?
                };
                if !labelled {
                    drawn
                        .label(s.name.as_str())
                        .legend(move |(x, y)| PathElement::new(vec![(x, y), (x + 18, y)], colour.stroke_width(2)));
                    labelled = true;
                }
            }
        }
        c.configure_series_labels()
            .position(SeriesLabelPosition::UpperRight)
            .background_style(WHITE.mix(0.85))
            .border_style(BLACK.mix(0.4))
            .draw()
            .map_err(err)?;
        root.present().map_err(err)?;
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_non_finite_value_splits_the_line() {
        let pts = vec![(1.0, 0.5), (2.0, f64::NAN), (3.0, 0.4), (4.0, 0.3), (5.0, f64::INFINITY)];
        assert_eq!(segments(&pts), vec![vec![(1.0, 0.5)], vec![(3.0, 0.4), (4.0, 0.3)]]);
        let s = Series { name: "x".into(), points: pts, faint: false };
        assert_eq!(s.gaps(), 2);
    }

    #[test]
    fn thinning_averages_buckets_and_keeps_empty_ones_as_gaps() {
        let s = Series {
            name: "x".into(),
            points: vec![(0.0, 1.0), (1.0, 3.0), (2.0, f64::NAN), (3.0, f64::NAN)],
            faint: false,
        };
        let t = s.thinned(2);
        assert_eq!(t.points.len(), 2);
        assert_eq!(t.points[0], (0.5, 2.0));
        assert!(t.points[1].1.is_nan());
    }

    #[test]
    fn ticks_drop_a_needless_fraction() {
        assert_eq!(tick(50.0), "50");
        assert_eq!(tick(0.125), "0.125");
        assert_eq!(tick(0.68), "0.68");
    }

    #[test]
    fn a_chart_of_nothing_finite_says_so() {
        let s = [Series { name: "loss".into(), points: vec![(1.0, f64::NAN)], faint: false }];
        let svg = svg(&Chart { title: "loss", x_label: "step", y_label: "loss", series: &s, integer_x: true }).unwrap();
        assert!(svg.contains("no finite values yet"), "{svg}");
        assert!(!svg.contains("NaN"));
    }
}
