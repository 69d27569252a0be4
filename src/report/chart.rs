//! Small line charts as PNG, drawn with plotters into memory: a check's
//! values ([`png`]) or a job's run durations ([`duration_png`]) over a
//! [`Window`], with their values on the y axis (with the unit), the dates
//! (midnights in the window's timezone) on the x axis, thresholds as
//! dashed lines with their words, the latest point marked.
//!
//! Text is drawn in a font compiled into the binary (DejaVu Sans, under
//! `assets/fonts` with its licence), registered with plotters' `ab_glyph`
//! the first time a chart is drawn: a container has no system fonts, and
//! a chart must look the same wherever it is drawn.

use std::sync::OnceLock;
use std::time::Duration;

use chrono::{DateTime, TimeZone, Utc};
use chrono_tz::Tz;
use plotters::coord::ranged1d::{DefaultFormatting, KeyPointHint};
use plotters::prelude::*;
use plotters::style::text_anchor::{HPos, Pos, VPos};

use crate::model::{Condition, Threshold, fmt_number};

pub const WIDTH: u32 = 600;
pub const HEIGHT: u32 = 150;
/// Left of the plot, where the y values are written.
pub const Y_LABEL_AREA: u32 = 64;
/// Below the plot, where the dates are written.
pub const X_LABEL_AREA: u32 = 20;

/// The name the bundled font is registered under: not a system name, so
/// nothing else can answer to it.
const FAMILY: &str = "runbookd-sans";
static FONT: &[u8] = include_bytes!("../../assets/fonts/DejaVuSans.ttf");

const TEXT: RGBColor = RGBColor(33, 33, 33);
const GRID: RGBColor = RGBColor(235, 235, 235);
const AXIS: RGBColor = RGBColor(189, 189, 189);
const SERIES: RGBColor = RGBColor(21, 101, 192);
const FAIL: RGBColor = RGBColor(198, 40, 40);
const WARN: RGBColor = RGBColor(178, 106, 0);

/// What a chart covers: from, to, and the timezone its dates are in.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Window {
    pub from: DateTime<Utc>,
    pub to: DateTime<Utc>,
    pub timezone: Tz,
}

/// A threshold's `fail` or `warn` condition, drawn as a dashed line at
/// each of its bounds.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Line {
    pub fail: bool,
    pub condition: Condition,
}

impl Line {
    /// Where the line (two for `between` and `outside`) is drawn.
    pub fn values(&self) -> Vec<f64> {
        match self.condition {
            Condition::Between(a, b) | Condition::Outside(a, b) => vec![a, b],
            Condition::Lt(x)
            | Condition::Le(x)
            | Condition::Gt(x)
            | Condition::Ge(x)
            | Condition::Eq(x)
            | Condition::Ne(x) => vec![x],
        }
    }

    /// "fail if > 0.05 ms": the words beside the line, as the check wrote
    /// them.
    fn label(&self, unit: &str) -> String {
        let word = if self.fail { "fail" } else { "warn" };
        with_unit(format!("{word} if {}", self.condition), unit)
    }
}

/// The lines of a threshold, and the unit of its numbers (""): a
/// threshold that is not conditions on the number draws none.
pub fn threshold_lines(t: Option<&Threshold>) -> (Vec<Line>, &str) {
    match t {
        Some(Threshold::Limits { fail, warn, unit }) => (
            [(true, fail), (false, warn)]
                .into_iter()
                .filter_map(|(fail, c)| c.map(|condition| Line { fail, condition }))
                .collect(),
            unit.as_deref().unwrap_or(""),
        ),
        _ => (Vec::new(), ""),
    }
}

#[derive(Debug, thiserror::Error)]
#[error("cannot draw the chart: {0}")]
pub struct ChartError(String);

/// The PNG of a check's values (oldest first) over `window`, with its
/// threshold lines; `unit` ("ms", or "" for none) follows each y value.
pub fn png(
    points: &[(DateTime<Utc>, f64)],
    lines: &[Line],
    unit: &str,
    window: &Window,
) -> Result<Vec<u8>, ChartError> {
    let series: Vec<(f64, f64)> = points
        .iter()
        .filter(|p| p.1.is_finite())
        .map(|(t, v)| (t.timestamp() as f64, *v))
        .collect();
    draw(&series, lines, unit, window)
}

/// The PNG of a job's run durations (oldest first) over `window`, in the
/// unit that suits the longest (ms, s, min or h).
pub fn duration_png(
    points: &[(DateTime<Utc>, Duration)],
    window: &Window,
) -> Result<Vec<u8>, ChartError> {
    let longest = points.iter().map(|p| p.1).max().unwrap_or_default();
    let (unit, seconds) = duration_unit(longest);
    let series: Vec<(f64, f64)> = points
        .iter()
        .map(|(t, d)| (t.timestamp() as f64, d.as_secs_f64() / seconds))
        .collect();
    draw(&series, &[], unit, window)
}

/// The unit a duration chart is drawn in, and its length in seconds: the
/// largest whose count stays at least 1 for the longest run.
fn duration_unit(longest: Duration) -> (&'static str, f64) {
    match longest.as_secs_f64() {
        s if s < 1.0 => ("ms", 0.001),
        s if s < 120.0 => ("s", 1.0),
        s if s < 7200.0 => ("min", 60.0),
        _ => ("h", 3600.0),
    }
}

fn with_unit(number: String, unit: &str) -> String {
    if unit.is_empty() {
        number
    } else {
        format!("{number} {unit}")
    }
}

fn font() -> Result<(), ChartError> {
    static LOADED: OnceLock<bool> = OnceLock::new();
    let loaded = *LOADED
        .get_or_init(|| plotters::style::register_font(FAMILY, FontStyle::Normal, FONT).is_ok());
    if loaded {
        Ok(())
    } else {
        Err(ChartError("the bundled font does not load".into()))
    }
}

/// The midnights in `tz` strictly inside the window: where the dates go.
fn midnights(window: &Window) -> Vec<f64> {
    let tz = window.timezone;
    let mut day = window.from.with_timezone(&tz).date_naive();
    let mut out = Vec::new();
    while let Some(next) = day.succ_opt() {
        day = next;
        // A day that starts in a DST gap starts at its first real instant.
        let Some(midnight) = day
            .and_hms_opt(0, 0, 0)
            .and_then(|m| tz.from_local_datetime(&m).earliest())
        else {
            continue;
        };
        if midnight >= window.to {
            break;
        }
        out.push(midnight.timestamp() as f64);
    }
    out
}

/// Time on the x axis, as seconds since the epoch, with its key points
/// at midnights: the dates and the day lines go there, not at the round
/// numbers of seconds plotters would pick.
struct Time {
    x0: f64,
    x1: f64,
    midnights: Vec<f64>,
}

impl Ranged for Time {
    // The labels are always written by the chart's own formatter.
    type FormatOption = DefaultFormatting;
    type ValueType = f64;

    fn map(&self, v: &f64, limit: (i32, i32)) -> i32 {
        let share = (v - self.x0) / (self.x1 - self.x0);
        limit.0 + (share * f64::from(limit.1 - limit.0)).round() as i32
    }

    fn key_points<H: KeyPointHint>(&self, _: H) -> Vec<f64> {
        self.midnights.clone()
    }

    fn range(&self) -> std::ops::Range<f64> {
        self.x0..self.x1
    }
}

fn draw(
    series: &[(f64, f64)],
    lines: &[Line],
    unit: &str,
    window: &Window,
) -> Result<Vec<u8>, ChartError> {
    let err = |e: &dyn std::fmt::Display| ChartError(e.to_string());
    font()?;
    let mut rgb = vec![255u8; (WIDTH * HEIGHT * 3) as usize];
    {
        let root = BitMapBackend::with_buffer(&mut rgb, (WIDTH, HEIGHT)).into_drawing_area();
        root.fill(&WHITE).map_err(|e| err(&e))?;
        let values = series
            .iter()
            .map(|p| p.1)
            .chain(lines.iter().flat_map(Line::values))
            .filter(|v| v.is_finite());
        let (lo, hi) = values.fold((f64::INFINITY, f64::NEG_INFINITY), |(lo, hi), v| {
            (lo.min(v), hi.max(v))
        });
        let (lo, hi) = if lo.is_finite() {
            // Room above and below, and a visible range for a flat line.
            let pad = ((hi - lo) * 0.1).max(hi.abs().max(1e-9) * 0.05);
            (
                (lo - pad).min(if lo >= 0.0 { 0.0 } else { lo - pad }),
                hi + pad,
            )
        } else {
            (0.0, 1.0)
        };
        let x0 = window.from.timestamp() as f64;
        let x1 = (window.to.timestamp() as f64).max(x0 + 1.0);
        let mut chart = ChartBuilder::on(&root)
            .margin(6)
            .margin_right(10)
            .x_label_area_size(X_LABEL_AREA)
            .y_label_area_size(Y_LABEL_AREA)
            .build_cartesian_2d(
                Time {
                    x0,
                    x1,
                    midnights: midnights(window),
                },
                lo..hi,
            )
            .map_err(|e| err(&e))?;
        let tz = window.timezone;
        let date = |x: &f64| {
            DateTime::from_timestamp(*x as i64, 0)
                .map(|t| t.with_timezone(&tz).format("%-d %b").to_string())
                .unwrap_or_default()
        };
        let value = |y: &f64| with_unit(fmt_number(*y), unit);
        // A faint line a day, at the dates, so "last night" can be found.
        chart
            .configure_mesh()
            .disable_y_mesh()
            .bold_line_style(GRID.stroke_width(1))
            .light_line_style(TRANSPARENT)
            .axis_style(AXIS.stroke_width(1))
            .label_style((FAMILY, 11).into_font().color(&TEXT))
            .x_label_formatter(&date)
            .y_labels(4)
            .y_label_formatter(&value)
            .draw()
            .map_err(|e| err(&e))?;
        for l in lines {
            let colour = if l.fail { FAIL } else { WARN };
            let values = l.values();
            for v in &values {
                chart
                    .draw_series(DashedLineSeries::new(
                        [(x0, *v), (x1, *v)],
                        6,
                        4,
                        colour.stroke_width(1),
                    ))
                    .map_err(|e| err(&e))?;
            }
            // Once, above the upper line.
            let top = values.into_iter().fold(f64::NEG_INFINITY, f64::max);
            let style = (FAMILY, 10)
                .into_font()
                .color(&colour)
                .pos(Pos::new(HPos::Right, VPos::Bottom));
            chart
                .draw_series([Text::new(l.label(unit), (x1, top), style)])
                .map_err(|e| err(&e))?;
        }
        chart
            .draw_series(LineSeries::new(
                series.iter().copied(),
                SERIES.stroke_width(2),
            ))
            .map_err(|e| err(&e))?;
        if let Some(last) = series.last() {
            chart
                .draw_series([Circle::new(*last, 4, SERIES.filled())])
                .map_err(|e| err(&e))?;
        }
        root.present().map_err(|e| err(&e))?;
    }
    let mut out = Vec::new();
    {
        let mut enc = ::png::Encoder::new(&mut out, WIDTH, HEIGHT);
        enc.set_color(::png::ColorType::Rgb);
        enc.set_depth(::png::BitDepth::Eight);
        let mut w = enc.write_header().map_err(|e| err(&e))?;
        w.write_image_data(&rgb).map_err(|e| err(&e))?;
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn t(s: &str) -> DateTime<Utc> {
        DateTime::parse_from_rfc3339(s).unwrap().to_utc()
    }

    fn line(fail: bool, condition: &str) -> Line {
        Line {
            fail,
            condition: condition.parse().unwrap(),
        }
    }

    #[test]
    fn threshold_lines_table() {
        let cases: [(&str, Vec<Line>, &str); 6] = [
            (
                "fail if > 0.05; warn if > 0.01",
                vec![line(true, "> 0.05"), line(false, "> 0.01")],
                "",
            ),
            ("fail if > 5000 ms", vec![line(true, "> 5000")], "ms"),
            ("warn if >= 3000", vec![line(false, ">= 3000")], ""),
            (
                "fail if outside 1 and 2",
                vec![line(true, "outside 1 and 2")],
                "",
            ),
            ("status 200", vec![], ""),
            ("fail if older than 90d", vec![], ""),
        ];
        for (text, lines, unit) in cases {
            let t = Threshold::from(text);
            assert_eq!(threshold_lines(Some(&t)), (lines, unit), "{text}");
        }
        assert_eq!(threshold_lines(None), (vec![], ""));
        assert_eq!(line(true, "> 0.05").label(""), "fail if > 0.05");
        assert_eq!(line(false, "<= 200").label("ms"), "warn if <= 200 ms");
        assert_eq!(line(true, "outside 1 and 2").values(), [1.0, 2.0]);
    }

    #[test]
    fn duration_units_table() {
        for (secs, unit) in [
            (0.2, "ms"),
            (1.0, "s"),
            (119.0, "s"),
            (120.0, "min"),
            (7199.0, "min"),
            (7200.0, "h"),
        ] {
            assert_eq!(
                duration_unit(Duration::from_secs_f64(secs)).0,
                unit,
                "{secs}"
            );
        }
    }

    #[test]
    fn dates_fall_on_local_midnights() {
        let window = Window {
            from: t("2026-11-23T03:50:00Z"),
            to: t("2026-11-30T03:50:00Z"),
            timezone: "Asia/Kolkata".parse().unwrap(),
        };
        let days = midnights(&window);
        // 24 Nov to 30 Nov at 00:00 IST (18:30 UTC the day before).
        assert_eq!(days.len(), 7, "{days:?}");
        assert_eq!(days[0] as i64, t("2026-11-23T18:30:00Z").timestamp());
        assert_eq!(days[6] as i64, t("2026-11-29T18:30:00Z").timestamp());
    }

    fn decode(png: &[u8]) -> Vec<[u8; 3]> {
        assert_eq!(&png[..8], b"\x89PNG\r\n\x1a\n");
        let dec = ::png::Decoder::new(png);
        let mut r = dec.read_info().unwrap();
        let mut buf = vec![0; r.output_buffer_size()];
        let info = r.next_frame(&mut buf).unwrap();
        assert_eq!((info.width, info.height), (WIDTH, HEIGHT));
        buf.chunks(3).map(|p| [p[0], p[1], p[2]]).collect()
    }

    /// Dark pixels (text: the axis and the grid are lighter) left of the
    /// plot, and below it.
    fn label_ink(px: &[[u8; 3]]) -> (usize, usize) {
        let dark = |p: &[u8; 3]| p.iter().all(|c| *c < 150);
        let at = |x: u32, y: u32| &px[(y * WIDTH + x) as usize];
        let left = (0..HEIGHT - X_LABEL_AREA)
            .flat_map(|y| (0..Y_LABEL_AREA - 8).map(move |x| (x, y)))
            .filter(|&(x, y)| dark(at(x, y)))
            .count();
        let below = (HEIGHT - X_LABEL_AREA + 6..HEIGHT)
            .flat_map(|y| (Y_LABEL_AREA..WIDTH).map(move |x| (x, y)))
            .filter(|&(x, y)| dark(at(x, y)))
            .count();
        (left, below)
    }

    fn week() -> Window {
        Window {
            from: t("2026-11-23T00:00:00Z"),
            to: t("2026-11-30T00:00:00Z"),
            timezone: chrono_tz::UTC,
        }
    }

    #[test]
    fn a_chart_is_a_png_with_the_series_values_and_dates_drawn() {
        let w = week();
        let points: Vec<_> = (0..7 * 24)
            .map(|h| {
                (
                    w.from + chrono::Duration::hours(h),
                    (h % 24) as f64 / 1000.0,
                )
            })
            .collect();
        let png = png(&points, &[line(true, "> 0.05")], "", &w).unwrap();
        let px = decode(&png);
        assert!(px.contains(&[21, 101, 192]), "no series drawn");
        assert!(px.contains(&[198, 40, 40]), "no threshold drawn");
        let (left, below) = label_ink(&px);
        assert!(left > 50, "no y values drawn: {left} dark pixels");
        assert!(below > 50, "no dates drawn: {below} dark pixels");
        // An empty series still draws (a flat, empty chart), never fails.
        assert!(super::png(&[], &[], "", &w).is_ok());
    }

    #[test]
    fn a_duration_chart_has_its_values_and_dates() {
        let w = week();
        let points: Vec<_> = (0..7)
            .map(|d| {
                (
                    w.from + chrono::Duration::hours(24 * d + 3),
                    Duration::from_secs(40 + 5 * d as u64),
                )
            })
            .collect();
        let px = decode(&duration_png(&points, &w).unwrap());
        assert!(px.contains(&[21, 101, 192]), "no series drawn");
        let (left, below) = label_ink(&px);
        assert!(left > 50, "no y values drawn: {left} dark pixels");
        assert!(below > 50, "no dates drawn: {below} dark pixels");
        assert!(duration_png(&[], &w).is_ok());
    }
}
