//! A trace as a terminal waterfall: one line per span, indented under its parent, with its
//! service, start offset, a duration bar drawn to scale, and the attributes a reader needs.
//!
//! ```text
//! trace 4bf92f3577b34da6a3ce929d0e0e4736 · 14 spans · chatbot, fraud, recommendation · 13.2 ms
//!   +0.0 ms  chatbot         POST /v1/chat              ████████████████████████  13.2 ms  HTTP 200 …
//! ```

use std::fmt::Write as _;

use anstyle::{AnsiColor, Style};

use crate::trace::{Kind, SpanRecord, Trace};

/// Width of the duration bar, in columns.
const BAR: usize = 24;
/// Widest name column (indentation included).
const MAX_NAME: usize = 44;

const ERROR: Style = AnsiColor::Red.on_default().bold();
const DIM: Style = Style::new().dimmed();
const BOLD: Style = Style::new().bold();
const SERVICE_COLOURS: [AnsiColor; 6] = [
    AnsiColor::Cyan,
    AnsiColor::Magenta,
    AnsiColor::Yellow,
    AnsiColor::Green,
    AnsiColor::Blue,
    AnsiColor::BrightCyan,
];

/// The colour of `service`, stable for the same name (the `up` prefixes use it too).
pub fn service_style(service: &str) -> Style {
    let index = match service {
        "chatbot" => 0,
        "fraud" => 1,
        "recommendation" => 2,
        "mock-llm" => 3,
        other => 4 + other.bytes().map(usize::from).sum::<usize>() % 2,
    };
    SERVICE_COLOURS[index].on_default()
}

/// `styled` in `style` (ANSI codes; the output stream strips them where colour is off).
fn paint(style: Style, text: &str) -> String {
    format!("{style}{text}{style:#}")
}

/// Renders `trace`. Colour codes are always written; print through an `anstream` stream, which
/// drops them when the output is not a terminal or `NO_COLOR` is set.
pub fn render(trace: &Trace) -> String {
    let mut out = String::new();
    if trace.spans.is_empty() {
        let _ = writeln!(out, "trace {} · no spans", trace.trace_id);
        return out;
    }
    let start = trace.spans.iter().map(|s| s.start_ns).min().unwrap_or(0);
    let end = trace.spans.iter().map(|s| s.end_ns).max().unwrap_or(start);
    let total = end.saturating_sub(start).max(1);
    let errors = trace.spans.iter().filter(|s| s.error).count();
    let _ = write!(
        out,
        "{} {} · {} · {} · {}",
        paint(BOLD, "trace"),
        trace.trace_id,
        count(trace.spans.len(), "span"),
        trace.services().join(", "),
        duration(total)
    );
    if errors > 0 {
        let _ = write!(out, " · {}", paint(ERROR, &format!("{errors} with errors")));
    }
    out.push('\n');

    let rows = ordered(trace);
    let service_width = trace
        .services()
        .iter()
        .map(|s| s.len())
        .max()
        .unwrap_or(7)
        .max(7);
    let name_width = rows
        .iter()
        .map(|(depth, span)| depth * 2 + span.name.chars().count())
        .max()
        .unwrap_or(0)
        .min(MAX_NAME);
    for (depth, span) in rows {
        let offset = span.start_ns.saturating_sub(start);
        let mut name = format!("{}{}", "  ".repeat(depth), span.name);
        if name.chars().count() > name_width {
            name = name
                .chars()
                .take(name_width.saturating_sub(1))
                .collect::<String>()
                + "…";
        }
        let bar = bar(offset, span.duration_ns(), total);
        let marker = if span.error {
            paint(ERROR, "✗")
        } else {
            " ".into()
        };
        let _ = write!(
            out,
            "{marker} {:>9}  {}  {:<name_width$}  {}  {:>9}",
            format!("+{}", duration(offset)),
            paint(
                service_style(&span.service),
                &format!("{:<service_width$}", span.service)
            ),
            name,
            if span.error { paint(ERROR, &bar) } else { bar },
            duration(span.duration_ns()),
        );
        let notes = notes(span);
        if !notes.is_empty() {
            let _ = write!(out, "  {}", notes.join("  "));
        }
        out.push('\n');
    }
    out
}

/// Spans depth-first from the roots, children by start time.
fn ordered(trace: &Trace) -> Vec<(usize, &SpanRecord)> {
    let mut roots = trace.roots();
    roots.sort_by_key(|s| (s.start_ns, s.name.clone()));
    let mut out = Vec::new();
    let mut stack: Vec<(usize, &SpanRecord)> = roots.into_iter().rev().map(|s| (0, s)).collect();
    while let Some((depth, span)) = stack.pop() {
        out.push((depth, span));
        let mut children: Vec<&SpanRecord> = trace
            .spans
            .iter()
            .filter(|c| c.parent_id == span.span_id && !c.parent_id.is_empty())
            .collect();
        children.sort_by_key(|s| (s.start_ns, s.name.clone()));
        stack.extend(children.into_iter().rev().map(|c| (depth + 1, c)));
    }
    out
}

/// The bar of a span starting `offset` into a trace of `total`, lasting `length`: at least one
/// block, so an instant still shows where it happened.
fn bar(offset: u64, length: u64, total: u64) -> String {
    let scale = |ns: u64| -> usize {
        usize::try_from(u128::from(ns) * BAR as u128 / u128::from(total)).unwrap_or(BAR)
    };
    let from = scale(offset).min(BAR - 1);
    let to = scale(offset.saturating_add(length)).clamp(from + 1, BAR);
    let mut bar = String::with_capacity(BAR * 3);
    for i in 0..BAR {
        bar.push(if (from..to).contains(&i) { '█' } else { '·' });
    }
    bar
}

/// `850 µs`, `12.3 ms`, `1.24 s`.
pub fn duration(ns: u64) -> String {
    #[expect(
        clippy::cast_precision_loss,
        reason = "durations are far below 2^52 ns"
    )]
    let ns = ns as f64;
    if ns < 1e6 {
        format!("{:.0} µs", ns / 1e3)
    } else if ns < 1e9 {
        format!("{:.1} ms", ns / 1e6)
    } else {
        format!("{:.2} s", ns / 1e9)
    }
}

/// What a reader needs of a span: status, model, tokens, time to first chunk, cost, the fraud
/// verdict, what was degraded, the grounding label, the error.
fn notes(span: &SpanRecord) -> Vec<String> {
    let mut notes = Vec::new();
    if let Some(resend) = span.attr("http.request.resend_count") {
        notes.push(format!("retry {resend}"));
    }
    if let Some(status) = span.attr("http.response.status_code") {
        let text = format!("HTTP {status}");
        let failed =
            status.starts_with('5') || (span.kind == Kind::Client && status.starts_with('4'));
        notes.push(if failed { paint(ERROR, &text) } else { text });
    }
    if let Some(model) = span
        .attr("gen_ai.response.model")
        .or_else(|| span.attr("gen_ai.request.model"))
    {
        notes.push(format!("model {model}"));
    }
    match (
        span.attr("gen_ai.usage.input_tokens"),
        span.attr("gen_ai.usage.output_tokens"),
    ) {
        (Some(input), Some(output)) => notes.push(format!("tokens {input} in, {output} out")),
        (Some(input), None) => notes.push(format!("tokens {input} in")),
        _ => {}
    }
    if let Some(ttfc) = span
        .attr("gen_ai.response.time_to_first_chunk")
        .and_then(|s| s.parse::<f64>().ok())
    {
        notes.push(format!("first chunk {:.0} ms", ttfc * 1e3));
    }
    if let (Some(amount), Some(currency)) = (
        span.attr("gen_ai.usage.cost.amount"),
        span.attr("gen_ai.usage.cost.currency"),
    ) {
        notes.push(format!("cost {} {currency}", money(amount)));
    }
    if let (Some(amount), Some(currency)) = (
        span.attr("shopmax.request.cost.amount"),
        span.attr("shopmax.request.cost.currency"),
    ) {
        notes.push(paint(
            BOLD,
            &format!("request cost {} {currency}", money(amount)),
        ));
    }
    if let Some(decision) = span.attr("fraud.decision") {
        let text = match span.attr("fraud.risk_score") {
            Some(score) => format!("fraud {decision} ({score})"),
            None => format!("fraud {decision}"),
        };
        notes.push(if decision == "allow" {
            text
        } else {
            paint(ERROR, &text)
        });
    }
    if let Some(degraded) = span.attr("chat.degraded") {
        notes.push(paint(ERROR, &format!("degraded: {degraded}")));
    }
    if let Some(label) = span.attr("shopmax.evaluation.grounding.label") {
        notes.push(if label == "grounded" {
            label.to_owned()
        } else {
            paint(ERROR, label)
        });
    }
    if let Some(policy) = span.attr("tailsampling.policy") {
        notes.push(paint(DIM, &format!("kept by {policy}")));
    }
    if let Some(error) = span.attr("error.type") {
        notes.push(paint(ERROR, &format!("error {error}")));
    } else if span.error {
        notes.push(paint(ERROR, "error"));
    }
    notes
}

/// A small amount of money, to the significant digits that matter.
pub fn money(amount: &str) -> String {
    match amount.parse::<f64>() {
        Ok(v) if v != 0.0 && v.abs() < 0.01 => {
            // Three significant digits, however small: 0.0000557, 0.00000000425.
            #[expect(
                clippy::cast_possible_truncation,
                clippy::cast_sign_loss,
                reason = "a small positive count of decimal places"
            )]
            let places = (2.0 - v.abs().log10().floor()).clamp(2.0, 15.0) as usize;
            let text = format!("{v:.places$}");
            text.trim_end_matches('0').trim_end_matches('.').to_owned()
        }
        Ok(v) => format!("{v:.4}"),
        Err(_) => amount.to_owned(),
    }
}

/// `1 span`, `12 spans`.
pub(crate) fn count(n: usize, noun: &str) -> String {
    if n == 1 {
        format!("1 {noun}")
    } else {
        format!("{n} {noun}s")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bars_are_drawn_to_scale_and_never_empty() {
        assert_eq!(bar(0, 100, 100), "█".repeat(BAR));
        assert_eq!(bar(50, 0, 100).chars().filter(|c| *c == '█').count(), 1);
        let half = bar(50, 50, 100);
        assert!(half.starts_with(&"·".repeat(BAR / 2)), "{half}");
        assert!(half.ends_with(&"█".repeat(BAR / 2)), "{half}");
    }

    #[test]
    fn durations_read_in_the_unit_that_fits() {
        assert_eq!(duration(850_000), "850 µs");
        assert_eq!(duration(12_340_000), "12.3 ms");
        assert_eq!(duration(1_240_000_000), "1.24 s");
    }

    #[test]
    fn money_keeps_the_digits_that_matter() {
        assert_eq!(money("0.0000375"), "0.0000375");
        assert_eq!(money("0.00000000425"), "0.00000000425");
        assert_eq!(money("0.00005572"), "0.0000557");
        assert_eq!(money("1.5"), "1.5000");
        assert_eq!(money("x"), "x");
    }
}
