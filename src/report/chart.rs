//! A small line chart of one check's values as a PNG, drawn with plotters
//! into memory: the series, its thresholds as dashed lines, the latest
//! point marked. No text is drawn (plotters would need system fonts); the
//! caption beside the image in the HTML carries the numbers.

use chrono::{DateTime, Utc};
use plotters::prelude::*;

pub const WIDTH: u32 = 600;
pub const HEIGHT: u32 = 150;

/// A threshold line: `fail` or `warn`, and its value.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Line {
    pub fail: bool,
    pub value: f64,
}

/// The numeric lines of a threshold as the checks write it ("fail if >
/// 0.05; warn if > 0.01", "fail if > 5000 ms"). Lines that are not a
/// comparison with a number are left out.
pub fn threshold_lines(text: &str) -> Vec<Line> {
    text.split(';')
        .filter_map(|part| {
            let part = part.trim();
            let (fail, rest) = if let Some(r) = part.strip_prefix("fail if ") {
                (true, r)
            } else if let Some(r) = part.strip_prefix("warn if ") {
                (false, r)
            } else {
                return None;
            };
            let mut words = rest.split_whitespace();
            let op = words.next()?;
            if !matches!(op, ">" | ">=" | "<" | "<=" | "==" | "!=") {
                return None;
            }
            let value: f64 = words.next()?.parse().ok()?;
            value.is_finite().then_some(Line { fail, value })
        })
        .collect()
}

#[derive(Debug, thiserror::Error)]
#[error("cannot draw the chart: {0}")]
pub struct ChartError(String);

/// The PNG of a series (oldest first) between `from` and `to`.
pub fn png(
    points: &[(DateTime<Utc>, f64)],
    lines: &[Line],
    from: DateTime<Utc>,
    to: DateTime<Utc>,
) -> Result<Vec<u8>, ChartError> {
    let err = |e: &dyn std::fmt::Display| ChartError(e.to_string());
    let mut rgb = vec![255u8; (WIDTH * HEIGHT * 3) as usize];
    {
        let root = BitMapBackend::with_buffer(&mut rgb, (WIDTH, HEIGHT)).into_drawing_area();
        root.fill(&WHITE).map_err(|e| err(&e))?;
        let values = points
            .iter()
            .map(|p| p.1)
            .chain(lines.iter().map(|l| l.value))
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
        let x0 = from.timestamp() as f64;
        let x1 = (to.timestamp() as f64).max(x0 + 1.0);
        let mut chart = ChartBuilder::on(&root)
            .margin(6)
            .build_cartesian_2d(x0..x1, lo..hi)
            .map_err(|e| err(&e))?;
        // A faint line a day, so "last night" can be found.
        let grid = RGBColor(235, 235, 235);
        let mut day = x0 - x0.rem_euclid(86400.0) + 86400.0;
        while day < x1 {
            chart
                .draw_series(LineSeries::new(
                    [(day, lo), (day, hi)],
                    grid.stroke_width(1),
                ))
                .map_err(|e| err(&e))?;
            day += 86400.0;
        }
        for l in lines {
            let colour = if l.fail {
                RGBColor(198, 40, 40)
            } else {
                RGBColor(178, 106, 0)
            };
            chart
                .draw_series(DashedLineSeries::new(
                    [(x0, l.value), (x1, l.value)],
                    6,
                    4,
                    colour.stroke_width(1),
                ))
                .map_err(|e| err(&e))?;
        }
        let series: Vec<(f64, f64)> = points
            .iter()
            .filter(|p| p.1.is_finite())
            .map(|(t, v)| (t.timestamp() as f64, *v))
            .collect();
        let blue = RGBColor(21, 101, 192);
        chart
            .draw_series(LineSeries::new(
                series.iter().copied(),
                blue.stroke_width(2),
            ))
            .map_err(|e| err(&e))?;
        if let Some(last) = series.last() {
            chart
                .draw_series([Circle::new(*last, 4, blue.filled())])
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

    #[test]
    fn threshold_lines_table() {
        let cases: [(&str, Vec<Line>); 5] = [
            (
                "fail if > 0.05; warn if > 0.01",
                vec![
                    Line {
                        fail: true,
                        value: 0.05,
                    },
                    Line {
                        fail: false,
                        value: 0.01,
                    },
                ],
            ),
            (
                "fail if > 5000 ms",
                vec![Line {
                    fail: true,
                    value: 5000.0,
                }],
            ),
            (
                "warn if >= 3000",
                vec![Line {
                    fail: false,
                    value: 3000.0,
                }],
            ),
            ("status 200", vec![]),
            ("fail if older than 90d", vec![]),
        ];
        for (text, want) in cases {
            assert_eq!(threshold_lines(text), want, "{text}");
        }
    }

    #[test]
    fn a_chart_is_a_png_with_the_series_drawn() {
        let t0 = DateTime::parse_from_rfc3339("2026-11-23T00:00:00Z")
            .unwrap()
            .to_utc();
        let points: Vec<_> = (0..7 * 24)
            .map(|h| (t0 + chrono::Duration::hours(h), (h % 24) as f64 / 1000.0))
            .collect();
        let to = t0 + chrono::Duration::days(7);
        let lines = [Line {
            fail: true,
            value: 0.05,
        }];
        let png = png(&points, &lines, t0, to).unwrap();
        assert_eq!(&png[..8], b"\x89PNG\r\n\x1a\n");
        // Decoded, it has blue (the series) and red (the threshold) in it.
        let dec = ::png::Decoder::new(&png[..]);
        let mut r = dec.read_info().unwrap();
        let mut buf = vec![0; r.output_buffer_size()];
        let info = r.next_frame(&mut buf).unwrap();
        assert_eq!((info.width, info.height), (WIDTH, HEIGHT));
        let px: Vec<&[u8]> = buf.chunks(3).collect();
        assert!(px.iter().any(|p| p == &[21, 101, 192]), "no series drawn");
        assert!(px.iter().any(|p| p == &[198, 40, 40]), "no threshold drawn");
        // An empty series still draws (a flat, empty chart), never fails.
        assert!(super::png(&[], &[], t0, to).is_ok());
    }
}
