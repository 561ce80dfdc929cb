//! Reports auditors can hand on: a table with its title and period, stamped with the
//! journal checkpoint it was computed from, as CSV, as an HTML page that prints well, or
//! as a PDF. Pure functions from a [`Printed`] to bytes.
//!
//! The stamp ties a report to a verifiable state of the journal: the records it was
//! computed from (0 to `records - 1`), their Merkle root and the gateway's signature over
//! them. Anyone with `journal.pub` can check that checkpoint with `ztgw-audit verify`.
//! A report over several gateways' journals carries one stamp a journal, each naming
//! its gateway.

use std::fmt::Write as _;

use serde::Serialize;

/// The journal state a report was computed from.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Stamp {
    /// Records covered by the checkpoint (sequence numbers 0 to `records - 1`).
    pub records: u64,
    /// The Merkle root over them, hex.
    pub root: String,
    /// When the gateway signed the checkpoint (RFC 3339).
    pub signed_at: String,
    /// The journal key's id and the signature (base64).
    pub key_id: String,
    pub signature: String,
    /// Whether the signature (and the whole journal) was verified with the public key.
    pub verified: bool,
    /// The gateway whose journal it is, when the report merges several.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub gateway: Option<String>,
}

impl Stamp {
    /// The stamp in one sentence.
    pub fn sentence(&self) -> String {
        format!(
            "{}Computed from journal records 0 to {} (checkpoint of {} records signed {} by key {}, Merkle root {}); {}.",
            self.gateway
                .as_ref()
                .map(|g| format!("Gateway {g}: "))
                .unwrap_or_default(),
            self.records.saturating_sub(1),
            self.records,
            self.signed_at,
            self.key_id,
            self.root,
            if self.verified {
                "journal and signature verified with the gateway's public key"
            } else {
                "signature NOT verified (no public key given)"
            }
        )
    }
}

/// A report, ready to print.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Printed {
    pub title: String,
    /// The days and the time zone, in words.
    pub period: String,
    pub columns: Vec<String>,
    pub rows: Vec<Vec<String>>,
    /// One a journal the report was computed from.
    pub stamps: Vec<Stamp>,
}

impl Printed {
    /// CSV (RFC 4180): two `#` lines (the report and its stamp), the header, the rows.
    pub fn csv(&self) -> String {
        let mut out = String::new();
        let _ = writeln!(out, "# {}, {}", self.title, self.period);
        for stamp in &self.stamps {
            let _ = writeln!(out, "# {}", stamp.sentence());
        }
        for row in std::iter::once(&self.columns).chain(&self.rows) {
            let cells: Vec<String> = row.iter().map(|c| csv_cell(c)).collect();
            out.push_str(&cells.join(","));
            out.push_str("\r\n");
        }
        out
    }

    /// A self-contained HTML page (no script, no outside resource) laid out for A4.
    pub fn html(&self) -> String {
        let mut out = String::new();
        let _ = write!(
            out,
            "<!DOCTYPE html>\n<html lang=\"en\">\n<head>\n<meta charset=\"utf-8\">\n\
             <meta http-equiv=\"Content-Security-Policy\" content=\"default-src 'none'; style-src 'unsafe-inline'\">\n\
             <title>{title}</title>\n<style>\n{STYLE}</style>\n</head>\n<body>\n\
             <header><h1>{title}</h1><p class=\"period\">{period}</p></header>\n",
            title = escape(&self.title),
            period = escape(&self.period),
        );
        for stamp in &self.stamps {
            let _ = write!(
                out,
                "<section class=\"stamp\" aria-label=\"Journal checkpoint\">\n<h2>Journal checkpoint{}</h2>\n<dl>\n",
                stamp
                    .gateway
                    .as_ref()
                    .map(|g| format!(": gateway {}", escape(g)))
                    .unwrap_or_default()
            );
            for (k, v) in [
                (
                    "Records",
                    format!("0 to {}", stamp.records.saturating_sub(1)),
                ),
                ("Signed", stamp.signed_at.clone()),
                ("Key", stamp.key_id.clone()),
                ("Merkle root", stamp.root.clone()),
                ("Signature", stamp.signature.clone()),
                (
                    "Verified",
                    if stamp.verified {
                        "yes, with the gateway's public key".into()
                    } else {
                        "no (no public key given)".into()
                    },
                ),
            ] {
                let _ = writeln!(
                    out,
                    "<dt>{}</dt><dd><code>{}</code></dd>",
                    escape(k),
                    escape(&v)
                );
            }
            out.push_str("</dl>\n</section>\n");
        }
        out.push_str("<table>\n<thead><tr>");
        for c in &self.columns {
            let _ = write!(out, "<th scope=\"col\">{}</th>", escape(c));
        }
        out.push_str("</tr></thead>\n<tbody>\n");
        for row in &self.rows {
            out.push_str("<tr>");
            for c in row {
                let _ = write!(out, "<td>{}</td>", escape(c));
            }
            out.push_str("</tr>\n");
        }
        if self.rows.is_empty() {
            let _ = writeln!(
                out,
                "<tr><td colspan=\"{}\">Nothing in this period.</td></tr>",
                self.columns.len().max(1)
            );
        }
        out.push_str("</tbody>\n</table>\n<footer>");
        for stamp in &self.stamps {
            let _ = write!(out, "<p>{}</p>", escape(&stamp.sentence()));
        }
        out.push_str("</footer>\n</body>\n</html>\n");
        out
    }

    /// A PDF (1.4, A4 landscape, Courier): the title, the period, the stamp, the table,
    /// page numbers; as many pages as the rows need.
    pub fn pdf(&self) -> Vec<u8> {
        let widths: Vec<usize> = (0..self.columns.len())
            .map(|i| {
                std::iter::once(&self.columns)
                    .chain(&self.rows)
                    .map(|r| r.get(i).map_or(0, |c| c.chars().count()))
                    .max()
                    .unwrap_or(0)
            })
            .collect();
        let line = |cells: &[String]| {
            cells
                .iter()
                .zip(&widths)
                .map(|(c, w)| format!("{c:<w$}"))
                .collect::<Vec<_>>()
                .join("  ")
        };
        let mut lines = vec![line(&self.columns)];
        lines.extend(self.rows.iter().map(|r| line(r)));
        if self.rows.is_empty() {
            lines.push("Nothing in this period.".into());
        }
        let mut head = vec![self.title.clone(), self.period.clone(), String::new()];
        for stamp in &self.stamps {
            head.extend(wrap(&stamp.sentence(), WRAP));
            head.push(format!("Signature: {}", stamp.signature));
        }
        head.push(String::new());
        pdf::document(&head, &lines, &self.title)
    }
}

/// Characters a PDF line holds (Courier 8 pt across A4 landscape, margins kept).
const WRAP: usize = 150;

const STYLE: &str = "\
body { font-family: sans-serif; color: #111; margin: 2em; }
h1 { font-size: 1.5em; margin: 0; }
.period { color: #333; margin: 0.3em 0 1em; }
.stamp { border: 1px solid #444; padding: 0.5em 1em; margin-bottom: 1em; }
.stamp h2 { font-size: 1em; margin: 0 0 0.3em; }
.stamp dl { display: grid; grid-template-columns: max-content 1fr; gap: 0.2em 1em; margin: 0; }
.stamp dt { font-weight: bold; }
.stamp dd { margin: 0; overflow-wrap: anywhere; }
table { border-collapse: collapse; width: 100%; font-size: 0.9em; }
th, td { border: 1px solid #666; padding: 0.25em 0.5em; text-align: left; }
thead { display: table-header-group; }
tr { break-inside: avoid; }
footer { margin-top: 1em; font-size: 0.8em; color: #333; }
@page { size: A4 landscape; margin: 1.5cm; }
@media print { body { margin: 0; } }
";

/// HTML text with `& < > " '` escaped.
pub fn escape(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}

/// A CSV cell: quoted when it holds a comma, a quote or a line break; a cell a
/// spreadsheet would run as a formula (`= + - @`) is prefixed with `'`.
fn csv_cell(c: &str) -> String {
    let c = if c.starts_with(['=', '+', '-', '@']) && c.parse::<f64>().is_err() {
        format!("'{c}")
    } else {
        c.to_owned()
    };
    if c.contains([',', '"', '\n', '\r']) {
        format!("\"{}\"", c.replace('"', "\"\""))
    } else {
        c
    }
}

/// `text` cut into lines of at most `width` characters, at spaces where it can.
fn wrap(text: &str, width: usize) -> Vec<String> {
    let mut out = Vec::new();
    let mut line = String::new();
    for word in text.split(' ') {
        if !line.is_empty() && line.chars().count() + 1 + word.chars().count() > width {
            out.push(std::mem::take(&mut line));
        }
        if !line.is_empty() {
            line.push(' ');
        }
        line.push_str(word);
        while line.chars().count() > width {
            let rest: String = line.chars().skip(width).collect();
            line = line.chars().take(width).collect();
            out.push(std::mem::replace(&mut line, rest));
        }
    }
    if !line.is_empty() {
        out.push(line);
    }
    out
}

/// The smallest PDF that shows lines of text: standard Courier (no font embedded),
/// WinAnsi text (characters outside it shown as `?`).
mod pdf {
    use std::fmt::Write as _;

    /// A4 landscape, in points.
    const WIDTH: u32 = 842;
    const HEIGHT: u32 = 595;
    const MARGIN: u32 = 40;
    const SIZE: u32 = 8;
    const LEADING: u32 = 10;

    /// `head` on the first page, then `lines`, paginated; `title` in the document's
    /// information.
    pub fn document(head: &[String], lines: &[String], title: &str) -> Vec<u8> {
        let per_page = ((HEIGHT - 2 * MARGIN) / LEADING - 2) as usize;
        let mut pages: Vec<Vec<String>> = vec![head.to_vec()];
        for l in lines {
            if pages.last().is_some_and(|p| p.len() >= per_page) {
                pages.push(Vec::new());
            }
            if let Some(p) = pages.last_mut() {
                p.push(l.clone());
            }
        }
        let count = pages.len();
        // Objects: 1 catalog, 2 pages, 3 font, 4 info, then per page its page and its
        // content stream.
        let mut objects: Vec<String> = vec![
            "<< /Type /Catalog /Pages 2 0 R >>".into(),
            format!(
                "<< /Type /Pages /Count {count} /Kids [{}] >>",
                (0..count)
                    .map(|i| format!("{} 0 R", 5 + 2 * i))
                    .collect::<Vec<_>>()
                    .join(" ")
            ),
            "<< /Type /Font /Subtype /Type1 /BaseFont /Courier /Encoding /WinAnsiEncoding >>"
                .into(),
            format!("<< /Title ({}) /Producer (ztgw) >>", text(title)),
        ];
        for (i, page) in pages.iter().enumerate() {
            let mut content = String::new();
            let _ = write!(
                content,
                "BT /F1 {SIZE} Tf {LEADING} TL {MARGIN} {} Td",
                HEIGHT - MARGIN - SIZE
            );
            for l in page {
                let _ = write!(content, " ({}) '", text(l));
            }
            let _ = write!(
                content,
                " ET BT /F1 {SIZE} Tf {} {} Td (page {} of {count}) Tj ET",
                WIDTH - MARGIN - 80,
                MARGIN / 2,
                i + 1
            );
            objects.push(format!(
                "<< /Type /Page /Parent 2 0 R /MediaBox [0 0 {WIDTH} {HEIGHT}] /Resources << /Font << /F1 3 0 R >> >> /Contents {} 0 R >>",
                6 + 2 * i
            ));
            objects.push(format!(
                "<< /Length {} >>\nstream\n{content}\nendstream",
                content.len() + 1
            ));
        }
        let mut out = b"%PDF-1.4\n%\xe2\xe3\xcf\xd3\n".to_vec();
        let mut offsets = Vec::with_capacity(objects.len());
        for (i, o) in objects.iter().enumerate() {
            offsets.push(out.len());
            out.extend_from_slice(format!("{} 0 obj\n{o}\nendobj\n", i + 1).as_bytes());
        }
        let xref = out.len();
        let mut tail = format!("xref\n0 {}\n0000000000 65535 f \n", objects.len() + 1);
        for o in offsets {
            let _ = writeln!(tail, "{o:010} 00000 n ");
        }
        let _ = write!(
            tail,
            "trailer\n<< /Size {} /Root 1 0 R /Info 4 0 R >>\nstartxref\n{xref}\n%%EOF\n",
            objects.len() + 1
        );
        out.extend_from_slice(tail.as_bytes());
        out
    }

    /// A PDF string's content: `( ) \` escaped, printable ASCII kept, the rest `?`.
    fn text(s: &str) -> String {
        let mut out = String::with_capacity(s.len());
        for c in s.chars() {
            match c {
                '(' | ')' | '\\' => {
                    out.push('\\');
                    out.push(c);
                }
                ' '..='~' => out.push(c),
                _ => out.push('?'),
            }
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn printed(rows: Vec<Vec<&str>>) -> Printed {
        Printed {
            title: "Telework hours against schedules".into(),
            period: "2027-04-01 to 2027-04-02 (Africa/Casablanca)".into(),
            columns: ["employee", "date"]
                .iter()
                .map(|s| (*s).to_owned())
                .collect(),
            rows: rows
                .into_iter()
                .map(|r| r.into_iter().map(str::to_owned).collect())
                .collect(),
            stamps: vec![Stamp {
                records: 120,
                root: "ab".repeat(32),
                signed_at: "2027-04-03T09:00:00Z".into(),
                key_id: "0011223344556677".into(),
                signature: "c2ln".into(),
                verified: true,
                gateway: None,
            }],
        }
    }

    #[test]
    fn csv_cells_are_quoted_and_never_formulas() {
        let p = printed(vec![
            vec!["e1", "2027-04-01"],
            vec!["=cmd|'/c calc'!A1", "a,\"b\""],
        ]);
        let csv = p.csv();
        let lines: Vec<&str> = csv.lines().collect();
        assert_eq!(
            lines[0],
            "# Telework hours against schedules, 2027-04-01 to 2027-04-02 (Africa/Casablanca)"
        );
        assert!(lines[1].starts_with("# Computed from journal records 0 to 119 (checkpoint of 120 records signed 2027-04-03T09:00:00Z by key 0011223344556677, Merkle root abab"), "{}", lines[1]);
        assert_eq!(lines[2], "employee,date");
        assert_eq!(lines[4], "'=cmd|'/c calc'!A1,\"a,\"\"b\"\"\"");
        assert_eq!(csv_cell("-3"), "-3", "a negative number stays a number");
    }

    #[test]
    fn html_is_escaped_and_self_contained() {
        let p = printed(vec![vec!["<script>alert(1)</script>", "x"]]);
        let html = p.html();
        assert!(!html.contains("<script>"), "{html}");
        assert!(html.contains("&lt;script&gt;alert(1)&lt;/script&gt;"));
        assert!(
            !html.contains("http://") && !html.contains("https://"),
            "no outside resource"
        );
        assert!(html.contains(&"ab".repeat(32)), "the root is stated");
        assert!(html.contains("size: A4 landscape"));
    }

    #[test]
    fn a_pdf_has_a_page_per_fifty_odd_rows_and_a_valid_cross_reference() {
        let rows: Vec<Vec<String>> = (0..130)
            .map(|i| vec![format!("e{i} (x)"), "2027-04-01".to_owned()])
            .collect();
        let mut p = printed(Vec::new());
        p.rows = rows;
        let pdf = p.pdf();
        let text = String::from_utf8_lossy(&pdf);
        assert!(text.starts_with("%PDF-1.4"));
        assert!(text.contains("/Count 3 "), "three pages");
        assert!(text.contains("(e129 \\(x\\)"), "parentheses escaped");
        // Every offset in the cross-reference table points at its object.
        let xref_at: usize = text
            .rsplit("startxref\n")
            .next()
            .and_then(|t| t.lines().next())
            .and_then(|n| n.parse().ok())
            .expect("startxref");
        let table = &text[xref_at..];
        for (i, line) in table
            .lines()
            .skip(3)
            .take_while(|l| l.ends_with(" n "))
            .enumerate()
        {
            let offset: usize = line[..10].parse().expect("offset");
            assert!(
                text[offset..].starts_with(&format!("{} 0 obj", i + 1)),
                "object {} at {offset}",
                i + 1
            );
        }
    }

    #[test]
    fn long_words_are_cut_to_the_line() {
        assert_eq!(wrap("aaaa bb", 3), vec!["aaa", "a", "bb"]);
        assert_eq!(wrap("a b c", 3), vec!["a b", "c"]);
    }
}
