//! The README quotes measured figures (import speed, build time, throughput) and names
//! BENCHMARKS.md as their source; this test keeps the two in step: every figure in a README
//! paragraph that cites BENCHMARKS.md must be written in BENCHMARKS.md too, so a figure that a
//! new measurement moved cannot stay behind in the README.
//!
//! A figure is a number (or a range of two) with a unit of time, size, speed or a ratio, such as
//! `112.7–172.2 s`, `88,826 records/s`, `1.6 M rows/s` or `128×`. It is found in BENCHMARKS.md
//! when the same text is there (bold and line breaks aside), or, for a range, each end with the
//! unit.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::path::Path;

use regex::Regex;

/// A README figure, where it is, and what it reads.
#[derive(Debug)]
struct Figure {
    line: usize,
    text: String,
    ends: Vec<String>,
}

fn read(name: &str) -> String {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join(name);
    std::fs::read_to_string(&path).unwrap_or_else(|error| panic!("cannot read {}: {error}", path.display()))
}

/// Text with Markdown's bold and block-quote marks gone and every run of white space one space.
fn flattened(text: &str) -> String {
    let lines: Vec<&str> =
        text.lines().map(|line| line.trim_start().trim_start_matches('>').trim()).collect();
    lines.join(" ").replace("**", "").split_whitespace().collect::<Vec<_>>().join(" ")
}

/// The figures of the README's paragraphs that cite BENCHMARKS.md.
fn quoted_figures(readme: &str) -> Vec<Figure> {
    let number = r"\d{1,3}(?:,\d{3})+(?:\.\d+)?|\d+(?:\.\d+)?";
    let unit = r"(?:[kM] )?(?:rows/s|records/s|changes/s|ms|s|min|minutes|h|MB|GB)|×";
    let figure =
        Regex::new(&format!(r"(?:^|[^\w.,])(({number})(?:\s?–\s?({number}))?\s?({unit}))(?:$|[^\w/-])"))
            .expect("the figure pattern compiles");
    let mut figures = Vec::new();
    let mut paragraph: Vec<(usize, &str)> = Vec::new();
    for (index, line) in readme.lines().chain(std::iter::once("")).enumerate() {
        let blank = line.trim().trim_start_matches('>').trim().is_empty();
        if !blank {
            paragraph.push((index + 1, line));
            continue;
        }
        if paragraph.iter().any(|(_, text)| text.contains("BENCHMARKS.md")) {
            for (line_number, text) in &paragraph {
                let text = flattened(text);
                for found in figure.captures_iter(&text) {
                    let unit = found[4].to_owned();
                    let glue = if unit == "×" { "" } else { " " };
                    let mut ends = vec![format!("{}{glue}{unit}", &found[2])];
                    if let Some(end) = found.get(3) {
                        ends.push(format!("{}{glue}{unit}", end.as_str()));
                    }
                    figures.push(Figure { line: *line_number, text: found[1].to_owned(), ends });
                }
            }
        }
        paragraph.clear();
    }
    figures
}

#[test]
fn every_figure_the_readme_quotes_from_benchmarks_md_is_written_there() {
    let readme = read("README.md");
    let benchmarks = flattened(&read("BENCHMARKS.md"));
    let figures = quoted_figures(&readme);
    assert!(figures.len() >= 5, "the README quotes figures from BENCHMARKS.md; found only {figures:?}");
    let missing: Vec<String> = figures
        .iter()
        .filter(|figure| {
            !benchmarks.contains(&figure.text) && !figure.ends.iter().all(|end| benchmarks.contains(end))
        })
        .map(|figure| format!("README.md line {}: {}", figure.line, figure.text))
        .collect();
    assert!(
        missing.is_empty(),
        "figures the README quotes that BENCHMARKS.md does not have (measure again or quote the latest entry):\n{}",
        missing.join("\n")
    );
}

#[test]
fn a_figure_is_read_with_its_range_and_unit_and_a_moved_figure_is_caught() {
    let readme = "Fast (1.6 M rows/s, 112.7–172.2 s, 128× Django; BENCHMARKS.md).\n\n60 s by default.\n";
    let figures = quoted_figures(readme);
    let texts: Vec<&str> = figures.iter().map(|figure| figure.text.as_str()).collect();
    assert_eq!(
        texts,
        ["1.6 M rows/s", "112.7–172.2 s", "128×"],
        "the paragraph without a citation is not read"
    );
    assert_eq!(figures[1].ends, ["112.7 s", "172.2 s"]);
    let benchmarks = flattened("| 10 M | **112.7 s** | 1.6 M rows/s |\n 128× and 172.2 s");
    assert!(figures.iter().all(|figure| figure.ends.iter().all(|end| benchmarks.contains(end))));
    assert!(!benchmarks.contains("113 s"), "a rounded figure would not be found");
}
