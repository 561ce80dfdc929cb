//! Bar charts as SVG, drawn on the server: no script, no external asset. A chart is
//! always shown beside the table of its figures (the table is what screen readers and
//! exports read); the chart carries a title for those who look.

use maud::{Markup, html};

/// Height of one bar and the space between bars, in SVG units.
const BAR: u32 = 22;
const GAP: u32 = 8;
/// Width given to the labels and to the bars.
const LABEL_WIDTH: u32 = 180;
const BARS_WIDTH: u32 = 420;
/// Most bars drawn (the table lists every row).
pub const MAX_BARS: usize = 40;

/// One bar: its label and value, and an optional second value drawn behind it (a target,
/// such as the scheduled hours behind the connected hours).
#[derive(Debug, Clone)]
pub struct Bar {
    pub label: String,
    pub value: f64,
    pub target: Option<f64>,
}

/// A horizontal bar chart titled `title`, bars scaled to the largest value.
pub fn bars(id: &str, title: &str, bars: &[Bar]) -> Markup {
    let shown = &bars[..bars.len().min(MAX_BARS)];
    let max = shown
        .iter()
        .flat_map(|b| [b.value, b.target.unwrap_or(0.0)])
        .fold(0.0_f64, f64::max)
        .max(f64::MIN_POSITIVE);
    let rows = u32::try_from(shown.len()).unwrap_or(0);
    let height = rows * (BAR + GAP) + GAP;
    let width = LABEL_WIDTH + BARS_WIDTH + 60;
    let scale = |v: f64| ((v / max) * f64::from(BARS_WIDTH)).round().max(0.0);
    let title_id = format!("{id}-title");
    html! {
        svg class="chart" id=(id) role="img" aria-labelledby=(title_id)
            viewBox=(format!("0 0 {width} {height}")) width=(width) height=(height)
            xmlns="http://www.w3.org/2000/svg" {
            title id=(title_id) { (title) }
            @for (i, b) in shown.iter().enumerate() {
                @let y = u32::try_from(i).unwrap_or(0) * (BAR + GAP) + GAP;
                text x=(LABEL_WIDTH - 8) y=(y + BAR / 2 + 5) text-anchor="end" class="label" {
                    (truncate(&b.label, 26))
                }
                @if let Some(t) = b.target {
                    rect x=(LABEL_WIDTH) y=(y) width=(scale(t)) height=(BAR) class="target" {}
                }
                rect x=(LABEL_WIDTH) y=(y + 4) width=(scale(b.value)) height=(BAR - 8) class="bar" {}
                text x=(f64::from(LABEL_WIDTH) + scale(b.value) + 6.0) y=(y + BAR / 2 + 5) class="value" {
                    (format_value(b.value))
                }
            }
        }
    }
}

fn truncate(s: &str, max: usize) -> String {
    if s.chars().count() <= max {
        return s.to_owned();
    }
    let mut t: String = s.chars().take(max - 1).collect();
    t.push('…');
    t
}

fn format_value(v: f64) -> String {
    if (v - v.round()).abs() < 0.05 {
        format!("{v:.0}")
    } else {
        format!("{v:.1}")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bars_are_scaled_to_the_largest_value_and_labels_escaped() {
        let svg = bars(
            "c",
            "Hours <by> employee",
            &[
                Bar {
                    label: "e1<script>".into(),
                    value: 10.0,
                    target: Some(20.0),
                },
                Bar {
                    label: "e2".into(),
                    value: 5.0,
                    target: None,
                },
            ],
        )
        .into_string();
        assert!(
            svg.contains("<title id=\"c-title\">Hours &lt;by&gt; employee</title>"),
            "{svg}"
        );
        assert!(svg.contains("e1&lt;script&gt;"), "{svg}");
        assert!(
            svg.contains(&format!(
                "width=\"{BARS_WIDTH}\" height=\"{BAR}\" class=\"target\""
            )),
            "the target is the largest: {svg}"
        );
        assert!(
            svg.contains(&format!("width=\"{}\"", BARS_WIDTH / 2)),
            "10 of 20: {svg}"
        );
        let empty = bars("e", "nothing", &[]).into_string();
        assert!(
            empty.contains("<title"),
            "an empty chart still has its title"
        );
    }
}
