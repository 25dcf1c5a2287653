//! What a model's tokens cost: a price table per model (input, cached input and output prices
//! per million tokens, in one currency), and the cost of one call computed from its usage.
//!
//! The table starts from [`DEFAULT_PRICES`], for the models ShopMax names, and is layered
//! over, model by model, by a JSON file (`LLM_PRICES_FILE`) and then by JSON in the environment
//! (`LLM_PRICES`); `null` removes a model. Both take the same shape:
//!
//! ```json
//! {"currency": "USD",
//!  "models": {"gpt-4o-mini": {"input": 0.15, "cached_input": 0.075, "output": 0.6},
//!             "llama3.1": null}}
//! ```
//!
//! A model without a price gets no cost, never a guessed one: lookups match the model name
//! exactly, or a dated snapshot of it (`gpt-4o-mini-2024-07-18` is priced as `gpt-4o-mini`), and
//! never by prefix (`gpt-4o` must not price `gpt-4o-mini`). A call that used cached or output
//! tokens its price does not cover gets no cost either. A table that cannot be read is a
//! warning and prices nothing, since falling back to the defaults would price the models the
//! user meant to change with the wrong numbers.

use std::collections::BTreeMap;

use contract::Cost;
use serde::Deserialize;

/// Prices of one model, per million tokens.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ModelPrice {
    /// Uncached input (prompt) tokens.
    pub input: f64,
    /// Input tokens served from the provider's prompt cache; absent where there is no cache.
    #[serde(default)]
    pub cached_input: Option<f64>,
    /// Output (completion) tokens; absent for embedding models.
    #[serde(default)]
    pub output: Option<f64>,
    /// ISO 4217 code; the table's own when absent.
    #[serde(default)]
    pub currency: Option<String>,
}

/// Per million tokens, in US dollars: OpenAI's list prices of the models ShopMax names
/// (gpt-4o-mini and gpt-4o with their cached-input prices; the two text-embedding-3 models),
/// as OpenAI's pricing page gave them when these defaults were written. Check them against your
/// own contract and override them (`LLM_PRICES_FILE`, `LLM_PRICES`).
pub const DEFAULT_PRICES: &str = r#"{
  "currency": "USD",
  "models": {
    "gpt-4o-mini": {"input": 0.15, "cached_input": 0.075, "output": 0.60},
    "gpt-4o": {"input": 2.50, "cached_input": 1.25, "output": 10.00},
    "text-embedding-3-small": {"input": 0.02},
    "text-embedding-3-large": {"input": 0.13}
  }
}"#;

/// The shape of [`DEFAULT_PRICES`], `LLM_PRICES_FILE` and `LLM_PRICES`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct TableFile {
    #[serde(default)]
    currency: Option<String>,
    #[serde(default)]
    models: BTreeMap<String, Option<ModelPrice>>,
}

/// Tokens of one call, as the provider reported them.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct TokenCounts {
    /// All input tokens, cached ones included (as OpenAI counts `prompt_tokens`).
    pub input: u64,
    /// Of `input`, those served from the prompt cache.
    pub cached_input: u64,
    /// Output tokens.
    pub output: u64,
}

/// Model prices, each with its currency settled.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct PriceTable {
    models: BTreeMap<String, (ModelPrice, String)>,
}

impl PriceTable {
    /// The defaults alone.
    pub fn defaults() -> Self {
        let mut table = Self::default();
        table
            .layer(DEFAULT_PRICES)
            .expect("the default price table is valid");
        table
    }

    /// The defaults, then `file` (its text), then `env`; on any problem, an empty table and
    /// the reason.
    pub fn layered(file: Option<(&str, &str)>, env: Option<&str>) -> (Self, Option<String>) {
        let mut table = Self::defaults();
        let mut layers = Vec::new();
        if let Some((path, text)) = file {
            layers.push((format!("LLM_PRICES_FILE ({path})"), text));
        }
        if let Some(text) = env {
            layers.push(("LLM_PRICES".to_owned(), text));
        }
        for (origin, text) in layers {
            if let Err(reason) = table.layer(text) {
                return (
                    Self::default(),
                    Some(format!("{origin}: {reason}; no LLM call will be priced")),
                );
            }
        }
        (table, None)
    }

    /// Puts one layer's models over the table.
    fn layer(&mut self, text: &str) -> Result<(), String> {
        let file: TableFile = serde_json::from_str(text).map_err(|e| e.to_string())?;
        if let Some(currency) = &file.currency {
            check_currency(currency)?;
        }
        for (model, price) in file.models {
            if model.trim().is_empty() {
                return Err("a model name is empty".into());
            }
            let Some(price) = price else {
                self.models.remove(&model);
                continue;
            };
            for (what, value) in [
                ("input", Some(price.input)),
                ("cached_input", price.cached_input),
                ("output", price.output),
            ] {
                if let Some(v) = value
                    && !(v.is_finite() && v >= 0.0)
                {
                    return Err(format!("{model}: {what} must be a price of 0 or more"));
                }
            }
            let currency = price
                .currency
                .clone()
                .or_else(|| file.currency.clone())
                .ok_or_else(|| format!("{model}: no currency (set \"currency\")"))?;
            check_currency(&currency)?;
            self.models.insert(model, (price, currency));
        }
        Ok(())
    }

    /// The price of `model`: its own entry, or that of the model it is a dated snapshot of.
    pub fn price_of(&self, model: &str) -> Option<(&ModelPrice, &str)> {
        let found = self
            .models
            .get(model)
            .or_else(|| self.models.get(undated(model)?));
        found.map(|(price, currency)| (price, currency.as_str()))
    }

    /// What `tokens` of `model` cost, when the table covers every kind of token used.
    pub fn cost(&self, model: &str, tokens: TokenCounts) -> Option<Cost> {
        let (price, currency) = self.price_of(model)?;
        let cached = tokens.cached_input.min(tokens.input);
        #[expect(
            clippy::cast_precision_loss,
            reason = "token counts stay far below 2^52, where f64 is exact"
        )]
        let per_token = |count: u64, per_million: Option<f64>| -> Option<f64> {
            match (count, per_million) {
                (0, _) => Some(0.0),
                (n, Some(p)) => Some(n as f64 * p / 1_000_000.0),
                (_, None) => None,
            }
        };
        let amount = per_token(tokens.input - cached, Some(price.input))?
            + per_token(cached, price.cached_input)?
            + per_token(tokens.output, price.output)?;
        // A price so large that the cost overflows is no cost at all.
        amount.is_finite().then(|| Cost {
            amount: contract::cost::round(amount),
            currency: currency.to_owned(),
        })
    }

    /// How many models have a price.
    pub fn len(&self) -> usize {
        self.models.len()
    }

    /// Whether no model has a price.
    pub fn is_empty(&self) -> bool {
        self.models.is_empty()
    }
}

/// `gpt-4o-mini` for `gpt-4o-mini-2024-07-18`: the name without a trailing `-YYYY-MM-DD`.
fn undated(model: &str) -> Option<&str> {
    let (base, date) = model.split_at_checked(model.len().checked_sub(11)?)?;
    let date = date.strip_prefix('-')?.as_bytes();
    let digits = |r: std::ops::Range<usize>| date[r].iter().all(u8::is_ascii_digit);
    let dated = date.len() == 10
        && digits(0..4)
        && date[4] == b'-'
        && digits(5..7)
        && date[7] == b'-'
        && digits(8..10);
    (dated && !base.is_empty()).then_some(base)
}

fn check_currency(code: &str) -> Result<(), String> {
    if code.len() == 3 && code.bytes().all(|b| b.is_ascii_uppercase()) {
        Ok(())
    } else {
        Err(format!(
            "currency {code:?} is not an ISO 4217 code such as USD"
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rstest::rstest;

    fn tokens(input: u64, cached_input: u64, output: u64) -> TokenCounts {
        TokenCounts {
            input,
            cached_input,
            output,
        }
    }

    fn amount(table: &PriceTable, model: &str, t: TokenCounts) -> Option<f64> {
        table.cost(model, t).map(|c| c.amount)
    }

    fn close(a: Option<f64>, b: f64) -> bool {
        a.is_some_and(|a| (a - b).abs() < 1e-12)
    }

    #[test]
    fn a_chat_costs_its_input_and_output_tokens_at_the_model_price() {
        let table = PriceTable::defaults();
        let cost = table
            .cost("gpt-4o-mini", tokens(1000, 0, 100))
            .expect("priced");
        assert!((cost.amount - (1000.0 * 0.15 + 100.0 * 0.60) / 1e6).abs() < 1e-12);
        assert_eq!(cost.currency, "USD");
    }

    #[test]
    fn cached_input_tokens_cost_the_cached_price() {
        let table = PriceTable::defaults();
        let got = amount(&table, "gpt-4o-mini", tokens(2000, 1500, 10));
        assert!(close(
            got,
            (500.0 * 0.15 + 1500.0 * 0.075 + 10.0 * 0.60) / 1e6
        ));
    }

    #[test]
    fn an_embedding_costs_its_input_tokens() {
        let table = PriceTable::defaults();
        let got = amount(&table, "text-embedding-3-small", tokens(8, 0, 0));
        assert!(close(got, 8.0 * 0.02 / 1e6));
    }

    #[rstest]
    #[case::dated_snapshot("gpt-4o-mini-2024-07-18", true)]
    #[case::exact("gpt-4o", true)]
    #[case::unknown_model("llama3.1", false)]
    #[case::never_by_prefix("gpt-4o-mini-high", false)]
    #[case::not_a_date("gpt-4o-mini-2024-7-18", false)]
    #[case::only_a_date("2024-07-18", false)]
    #[case::empty("", false)]
    fn a_model_is_priced_by_its_own_name_or_its_dated_snapshot(
        #[case] model: &str,
        #[case] priced: bool,
    ) {
        assert_eq!(PriceTable::defaults().price_of(model).is_some(), priced);
    }

    #[test]
    fn a_cost_too_large_to_represent_is_no_cost() {
        let (table, _) = PriceTable::layered(
            None,
            Some(r#"{"currency":"USD","models":{"m":{"input":1e308}}}"#),
        );
        assert_eq!(amount(&table, "m", tokens(1_000_000_000, 0, 0)), None);
    }

    #[test]
    fn tokens_the_price_does_not_cover_give_no_cost() {
        let (table, warning) = PriceTable::layered(
            None,
            Some(r#"{"currency":"USD","models":{"local":{"input":1.0}}}"#),
        );
        assert_eq!(warning, None);
        assert!(close(amount(&table, "local", tokens(10, 0, 0)), 10.0 / 1e6));
        assert_eq!(amount(&table, "local", tokens(10, 0, 1)), None);
        assert_eq!(amount(&table, "local", tokens(10, 5, 0)), None);
    }

    #[test]
    fn the_file_and_then_the_environment_override_the_defaults_model_by_model() {
        let file = r#"{"currency":"INR","models":{"gpt-4o-mini":{"input":12.0,"output":48.0},"gpt-4o":null}}"#;
        let env = r#"{"models":{"gpt-4o-mini":{"input":13.0,"output":50.0,"currency":"INR"}}}"#;
        let (table, warning) = PriceTable::layered(Some(("prices.json", file)), Some(env));
        assert_eq!(warning, None);
        let (price, currency) = table.price_of("gpt-4o-mini").expect("priced");
        assert_eq!((price.input, currency), (13.0, "INR"));
        assert!(table.price_of("gpt-4o").is_none());
        // Untouched defaults stay.
        assert_eq!(
            table.price_of("text-embedding-3-small").map(|(_, c)| c),
            Some("USD")
        );
    }

    #[rstest]
    #[case::not_json("{", "LLM_PRICES")]
    #[case::typo_in_a_field(
        r#"{"models":{"m":{"input":1,"ouput":2}},"currency":"USD"}"#,
        "unknown field"
    )]
    #[case::negative_price(r#"{"currency":"USD","models":{"m":{"input":-1}}}"#, "0 or more")]
    #[case::no_currency(r#"{"models":{"m":{"input":1}}}"#, "no currency")]
    #[case::bad_currency(r#"{"currency":"usd","models":{}}"#, "ISO 4217")]
    #[case::empty_model(r#"{"currency":"USD","models":{" ":{"input":1}}}"#, "empty")]
    fn a_table_that_cannot_be_read_prices_nothing_and_says_why(
        #[case] env: &str,
        #[case] reason: &str,
    ) {
        let (table, warning) = PriceTable::layered(None, Some(env));
        assert!(table.is_empty());
        let warning = warning.expect("a warning");
        assert!(warning.contains(reason), "{warning}");
        assert!(warning.contains("no LLM call will be priced"), "{warning}");
    }
}
