//! Small SVG charts drawn on the server (no JavaScript): horizontal bars for counts by
//! category, and vertical bars over days or runs, each with its figures as a table (the text
//! alternative of the picture). Only the geometry and the figures live here; the templates draw
//! them.

/// One segment of a bar: where it starts and how long it is (pixels), and its CSS class.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Segment {
    pub offset: i64,
    pub length: i64,
    pub class: &'static str,
}

/// One bar: a label under or beside it, a tooltip, and its stacked segments.
#[derive(Debug, Clone)]
pub struct Bar {
    /// Position across the bars (y for horizontal bars, x for vertical ones).
    pub position: i64,
    pub label: String,
    pub value: String,
    pub title: String,
    pub segments: Vec<Segment>,
    /// Its line in the table of figures: its name, then one figure per column.
    pub name: String,
    pub figures: Vec<String>,
}

/// A bar chart of stacked bars.
#[derive(Debug, Clone)]
pub struct BarChart {
    pub bars: Vec<Bar>,
    pub width: i64,
    pub height: i64,
    /// Thickness of each bar.
    pub thickness: i64,
    /// Where bars start (horizontal: after the labels; vertical: the baseline).
    pub origin: i64,
    /// The headings of the table of figures: what the bars' names are, then what each figure is.
    pub columns: Vec<&'static str>,
}

/// Stacked values of one bar: `(value, class)` from the base outwards.
pub struct Stack {
    /// Drawn beside or under the bar (empty: none); cut to [`LABEL_CHARS`] beside a bar.
    pub label: String,
    /// Its tooltip.
    pub title: String,
    pub parts: Vec<(u64, &'static str)>,
    /// Its name in full and its figures, for the table of figures.
    pub name: String,
    pub figures: Vec<String>,
}

impl Stack {
    fn total(&self) -> u64 {
        self.parts.iter().map(|(n, _)| n).sum()
    }
}

const LABEL_WIDTH: i64 = 140;
const VALUE_WIDTH: i64 = 80;
/// Characters of a label beside a horizontal bar that fit in [`LABEL_WIDTH`] at the charts'
/// type size; a longer one is cut with an ellipsis (the tooltip and the table have it whole).
const LABEL_CHARS: usize = 22;
const ROW: i64 = 22;
const THICK: i64 = 16;

/// Pixels for `n` of `max` on a `length`-pixel scale; anything above zero shows (≥ 1 px).
fn scale(n: u64, max: u64, length: i64) -> i64 {
    if max == 0 || n == 0 {
        return 0;
    }
    let pixels = (u128::from(n) * length as u128).div_ceil(u128::from(max));
    i64::try_from(pixels).unwrap_or(length).max(1)
}

impl BarChart {
    /// One horizontal bar per stack, labels on the left, values on the right.
    pub fn horizontal(stacks: Vec<Stack>, width: i64, value: impl Fn(u64) -> String) -> Self {
        let length = width - LABEL_WIDTH - VALUE_WIDTH;
        let max = stacks.iter().map(Stack::total).max().unwrap_or(0);
        let bars = stacks
            .into_iter()
            .enumerate()
            .map(|(i, stack)| {
                let mut offset = LABEL_WIDTH;
                let segments = stack
                    .parts
                    .iter()
                    .map(|&(n, class)| {
                        let length = scale(n, max, length);
                        let segment = Segment { offset, length, class };
                        offset += length;
                        segment
                    })
                    .filter(|s| s.length > 0)
                    .collect();
                Bar {
                    position: i as i64 * ROW,
                    value: value(stack.total()),
                    label: shortened(stack.label),
                    title: stack.title,
                    segments,
                    name: stack.name,
                    figures: stack.figures,
                }
            })
            .collect::<Vec<_>>();
        BarChart {
            height: (bars.len() as i64 * ROW).max(ROW),
            bars,
            width,
            thickness: THICK,
            origin: LABEL_WIDTH,
            columns: Vec::new(),
        }
    }

    /// One vertical bar per stack, labels under them; `plot` pixels tall.
    pub fn vertical(stacks: Vec<Stack>, bar: i64, gap: i64, plot: i64) -> Self {
        let max = stacks.iter().map(Stack::total).max().unwrap_or(0);
        let bars: Vec<Bar> = stacks
            .into_iter()
            .enumerate()
            .map(|(i, stack)| {
                let mut top = plot;
                let segments = stack
                    .parts
                    .iter()
                    .map(|&(n, class)| {
                        let length = scale(n, max, plot);
                        top -= length;
                        Segment { offset: top, length, class }
                    })
                    .filter(|s| s.length > 0)
                    .collect();
                Bar {
                    position: i as i64 * (bar + gap),
                    value: stack.total().to_string(),
                    label: stack.label,
                    title: stack.title,
                    segments,
                    name: stack.name,
                    figures: stack.figures,
                }
            })
            .collect();
        let width = (bars.len() as i64 * (bar + gap) - gap).max(bar);
        BarChart { bars, width, height: plot + 16, thickness: bar, origin: plot, columns: Vec::new() }
    }

    /// The chart with the headings of its table of figures: what the bars are, then one per
    /// figure of a bar.
    pub fn with_columns(mut self, columns: &[&'static str]) -> Self {
        self.columns = columns.to_vec();
        self
    }

    /// Where the labels under vertical bars go.
    pub fn label_y(&self) -> i64 {
        self.origin + 12
    }

    /// Where the value text beside a horizontal bar goes.
    pub fn value_x(&self) -> i64 {
        self.width - VALUE_WIDTH + 6
    }

    /// The baseline of a horizontal bar's text.
    pub fn text_y(&self, bar: &Bar) -> i64 {
        bar.position + THICK - 3
    }
}

/// `label`, cut to [`LABEL_CHARS`] characters with an ellipsis when longer.
fn shortened(label: String) -> String {
    if label.chars().count() <= LABEL_CHARS {
        return label;
    }
    let mut cut: String = label.chars().take(LABEL_CHARS - 1).collect();
    cut.push('…');
    cut
}

#[cfg(test)]
mod tests {
    use super::*;

    fn stack(parts: &[(u64, &'static str)]) -> Stack {
        Stack {
            label: String::new(),
            title: String::new(),
            parts: parts.to_vec(),
            name: String::new(),
            figures: Vec::new(),
        }
    }

    #[test]
    fn the_longest_bar_fills_the_width_and_small_ones_still_show() {
        let chart = BarChart::horizontal(
            vec![stack(&[(900, "a"), (100, "b")]), stack(&[(1, "a")]), stack(&[(0, "a")])],
            400,
            |n| n.to_string(),
        );
        let length = 400 - LABEL_WIDTH - VALUE_WIDTH;
        let first: i64 = chart.bars[0].segments.iter().map(|s| s.length).sum();
        assert!((length..=length + 1).contains(&first), "{first}");
        assert_eq!(chart.bars[1].segments[0].length, 1);
        assert!(chart.bars[2].segments.is_empty());
        assert_eq!(chart.bars[0].segments[1].offset, LABEL_WIDTH + chart.bars[0].segments[0].length);
    }

    #[test]
    fn vertical_bars_stack_upwards_from_the_baseline() {
        let chart = BarChart::vertical(vec![stack(&[(2, "a"), (2, "b")]), stack(&[(1, "a")])], 10, 2, 100);
        let first = &chart.bars[0].segments;
        assert_eq!((first[0].offset, first[0].length), (50, 50));
        assert_eq!((first[1].offset, first[1].length), (0, 50));
        assert_eq!(chart.bars[1].position, 12);
        assert_eq!(chart.width, 22);
    }

    #[test]
    fn a_long_label_is_cut_beside_its_bar_and_kept_whole_in_the_table() {
        let long = "ESMA FIRDS equities and debt, all venues";
        let mut stack = stack(&[(1, "a")]);
        (stack.label, stack.name) = (long.to_owned(), long.to_owned());
        let chart = BarChart::horizontal(vec![stack], 400, |n| n.to_string());
        assert_eq!(chart.bars[0].label, "ESMA FIRDS equities a…");
        assert_eq!(chart.bars[0].label.chars().count(), LABEL_CHARS);
        assert_eq!(chart.bars[0].name, long);
    }
}
