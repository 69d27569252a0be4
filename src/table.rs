//! The one plain-text table runbookd prints: `jobs`, `history` and
//! checklist results. Columns are as wide as their widest cell (cells over
//! 60 characters overflow instead of widening the column), separated by two
//! spaces; the last column is not padded, and no line ends in spaces.
//!
//! A row is one line whatever its cells hold: a cell's lines are joined
//! with ` ⏎ ` (each trimmed, blank ones left out), a tab is a space, and
//! other control characters are shown escaped. Nothing is cut: a
//! multi-line error reads whole, on its row (`show --json` has it as it
//! came).

use std::borrow::Cow;

const MAX_WIDTH: usize = 60;

/// Between a cell's lines.
pub const NEWLINE: &str = " \u{23ce} ";

fn one_line(cell: &str) -> Cow<'_, str> {
    if !cell.contains(|c: char| c.is_control()) {
        return Cow::Borrowed(cell);
    }
    let joined = cell
        .lines()
        .map(|l| l.replace('\t', " "))
        .map(|l| l.trim().to_string())
        .filter(|l| !l.is_empty())
        .collect::<Vec<_>>()
        .join(NEWLINE);
    Cow::Owned(crate::scrub::escape_controls(&joined).into_owned())
}

/// A cell that may have nothing to show: `-`, as every table here writes
/// it (the checklist's value and threshold, in `run`, `show` and the report).
pub fn cell(value: Option<&impl std::fmt::Display>) -> String {
    value.map_or_else(|| "-".into(), |v| v.to_string())
}

pub fn render(header: &[&str], rows: &[Vec<String>]) -> String {
    let rows: Vec<Vec<Cow<'_, str>>> = rows
        .iter()
        .map(|r| r.iter().map(|c| one_line(c)).collect())
        .collect();
    let mut widths: Vec<usize> = header.iter().map(|h| h.chars().count()).collect();
    for r in &rows {
        for (i, c) in r.iter().enumerate().take(widths.len()) {
            widths[i] = widths[i].max(c.chars().count().min(MAX_WIDTH));
        }
    }
    let mut out = String::new();
    let mut line = |cells: &mut dyn Iterator<Item = &str>| {
        let mut s = String::new();
        for (i, c) in cells.enumerate() {
            if i + 1 == widths.len() {
                s.push_str(c);
            } else {
                let pad = widths[i].saturating_sub(c.chars().count());
                s.push_str(c);
                s.extend(std::iter::repeat_n(' ', pad + 2));
            }
        }
        out.push_str(s.trim_end());
        out.push('\n');
    };
    line(&mut header.iter().copied());
    for r in &rows {
        line(&mut r.iter().map(|c| c.as_ref()));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn columns_align_and_the_last_is_free() {
        let t = render(
            &["ID", "JOB", "NOTE"],
            &[
                vec!["1".into(), "backup".into(), "ok".into()],
                vec!["12".into(), "x".into(), "".into()],
            ],
        );
        assert_eq!(t, "ID  JOB     NOTE\n1   backup  ok\n12  x\n");
    }

    #[test]
    fn a_long_cell_overflows_instead_of_widening() {
        let long = "y".repeat(80);
        let t = render(&["A", "B"], &[vec![long.clone(), "b".into()]]);
        let widths: Vec<usize> = t.lines().map(|l| l.len()).collect();
        assert_eq!(widths, vec![MAX_WIDTH + 3, 80 + 2 + 1]);
    }

    #[test]
    fn a_multi_line_cell_stays_in_its_row() {
        let t = render(
            &["STEP", "DETAIL"],
            &[
                vec![
                    "db\nx".into(),
                    "connect failed:\n\nDETAIL: role\tx\r\n  HINT: y\n".into(),
                ],
                vec!["api".into(), "ok \x1b[2J".into()],
            ],
        );
        assert_eq!(
            t,
            "STEP    DETAIL\n\
             db \u{23ce} x  connect failed: \u{23ce} DETAIL: role x \u{23ce} HINT: y\n\
             api     ok \\x1b[2J\n"
        );
    }
}
