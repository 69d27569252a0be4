//! HTML for mail clients: every style inline (clients drop `<style>`),
//! tables for layout, no scripts, no external resources; images are `cid:`
//! parts of the message.

use std::fmt::Write;

pub const RED: &str = "#c62828";
pub const AMBER: &str = "#b26a00";
pub const GREEN: &str = "#2e7d32";
pub const GREY: &str = "#616161";
const FONT: &str = "font-family:-apple-system,Segoe UI,Helvetica,Arial,sans-serif";

/// Escapes text for HTML.
pub fn esc(s: &str) -> String {
    let mut o = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '&' => o.push_str("&amp;"),
            '<' => o.push_str("&lt;"),
            '>' => o.push_str("&gt;"),
            '"' => o.push_str("&quot;"),
            '\'' => o.push_str("&#39;"),
            c => o.push(c),
        }
    }
    o
}

pub fn page(body: &str) -> String {
    format!(
        "<!DOCTYPE html>\n<html><head><meta charset=\"utf-8\"><meta name=\"viewport\" content=\"width=device-width\"></head>\n<body style=\"margin:0;padding:16px;background:#f5f5f5;{FONT};color:#212121\">\n<div style=\"max-width:760px;margin:0 auto;background:#ffffff;padding:20px;border:1px solid #e0e0e0\">\n{body}</div>\n</body></html>\n"
    )
}

pub fn banner(text: &str, colour: &str) -> String {
    format!(
        "<div style=\"background:{colour};color:#ffffff;padding:12px 16px;font-size:20px;font-weight:bold\">{}</div>\n",
        esc(text)
    )
}

pub fn h2(text: &str) -> String {
    format!(
        "<h2 style=\"font-size:16px;margin:24px 0 8px 0;border-bottom:1px solid #e0e0e0;padding-bottom:4px\">{}</h2>\n",
        esc(text)
    )
}

pub fn p(html: &str) -> String {
    format!("<p style=\"margin:6px 0;font-size:14px\">{html}</p>\n")
}

pub fn muted(text: &str) -> String {
    format!("<span style=\"color:{GREY}\">{}</span>", esc(text))
}

pub fn pre(text: &str) -> String {
    format!(
        "<pre style=\"font-family:Menlo,Consolas,monospace;font-size:12px;white-space:pre-wrap;margin:12px 0\">{}</pre>\n",
        esc(text)
    )
}

pub fn link(href: &str, text: &str) -> String {
    format!(
        "<a href=\"{}\" style=\"color:#1565c0\">{}</a>",
        esc(href),
        esc(text)
    )
}

pub fn code(text: &str) -> String {
    format!(
        "<code style=\"font-family:Menlo,Consolas,monospace;font-size:12px;background:#eeeeee;padding:1px 4px\">{}</code>",
        esc(text)
    )
}

/// A coloured word: pass, warn, fail…
pub fn badge(word: &str, colour: &str) -> String {
    format!(
        "<span style=\"display:inline-block;min-width:44px;text-align:center;background:{colour};color:#ffffff;font-size:11px;font-weight:bold;padding:2px 6px;text-transform:uppercase\">{}</span>",
        esc(word)
    )
}

/// A table of already-escaped cells.
pub fn table(header: &[&str], rows: &[Vec<String>]) -> String {
    let th = "style=\"text-align:left;font-size:12px;color:#616161;padding:4px 8px;border-bottom:2px solid #e0e0e0\"";
    let td = "style=\"font-size:13px;padding:4px 8px;border-bottom:1px solid #eeeeee;vertical-align:top\"";
    let mut o = String::from(
        "<table cellpadding=\"0\" cellspacing=\"0\" style=\"border-collapse:collapse;width:100%\">\n<tr>",
    );
    for h in header {
        let _ = write!(o, "<th {th}>{}</th>", esc(h));
    }
    o.push_str("</tr>\n");
    for r in rows {
        o.push_str("<tr>");
        for c in r {
            let _ = write!(o, "<td {td}>{c}</td>");
        }
        o.push_str("</tr>\n");
    }
    o.push_str("</table>\n");
    o
}

pub fn image(cid: &str, alt: &str, width: u32, height: u32) -> String {
    format!(
        "<img src=\"cid:{}\" alt=\"{}\" width=\"{width}\" height=\"{height}\" style=\"display:block;border:0;margin:4px 0 12px 0\">\n",
        esc(cid),
        esc(alt)
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn text_is_escaped_everywhere() {
        let evil = "<script>alert('x')</script> & \"q\"";
        for out in [
            banner(evil, RED),
            h2(evil),
            pre(evil),
            link(evil, evil),
            code(evil),
            badge(evil, RED),
            muted(evil),
            table(&[evil], &[]),
        ] {
            assert!(!out.contains("<script>"), "{out}");
            assert!(!out.contains("'x'"), "{out}");
        }
        assert_eq!(esc("a<b>&\"'"), "a&lt;b&gt;&amp;&quot;&#39;");
    }
}
