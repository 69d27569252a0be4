//! The one plain-text table runbookd prints: `jobs`, `history` and
//! checklist results. Columns are as wide as their widest cell (cells over
//! 60 characters overflow instead of widening the column), separated by two
//! spaces; the last column is not padded, and no line ends in spaces.

const MAX_WIDTH: usize = 60;

pub fn render(header: &[&str], rows: &[Vec<String>]) -> String {
    let mut widths: Vec<usize> = header.iter().map(|h| h.chars().count()).collect();
    for r in rows {
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
    for r in rows {
        line(&mut r.iter().map(String::as_str));
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
}
