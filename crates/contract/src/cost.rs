//! What the LLM calls behind an answer cost, as a money amount in one currency.
//!
//! A cost is only ever a sum of priced calls. A call whose model has no price makes the sum
//! unknown ([`Spend::unpriced_calls`]) rather than quietly smaller: a wrong number is worse
//! than none.

use serde::{Deserialize, Serialize};

/// An amount of money.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Cost {
    /// The amount, in units of `currency` (dollars, not cents).
    pub amount: f64,
    /// ISO 4217 code, e.g. `USD`.
    pub currency: String,
}

/// `amount` to 12 decimal places (a millionth of a millionth), so sums of binary fractions read
/// as the decimal amounts they are (`0.00225`, not `0.0022500000000000003`).
pub fn round(amount: f64) -> f64 {
    (amount * 1e12).round() / 1e12
}

impl Cost {
    /// `self + other`, or `None` when their currencies differ (no exchange rates here).
    #[must_use]
    pub fn plus(&self, other: &Self) -> Option<Self> {
        (self.currency == other.currency).then(|| Self {
            amount: round(self.amount + other.amount),
            currency: self.currency.clone(),
        })
    }
}

/// The LLM spend of one piece of work: the priced calls added up, and how many calls could not
/// be priced.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Spend {
    /// The sum of the priced calls; `None` when no call was priced.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub priced: Option<Cost>,
    /// Calls that cost something unknown: their model has no price, or the currencies of the
    /// calls differ.
    #[serde(default, skip_serializing_if = "is_zero")]
    pub unpriced_calls: u32,
}

#[expect(
    clippy::trivially_copy_pass_by_ref,
    reason = "serde's skip_serializing_if passes a reference"
)]
fn is_zero(n: &u32) -> bool {
    *n == 0
}

impl Spend {
    /// Adds one call: `Some(cost)` when it was priced, `None` when it was not.
    pub fn add_call(&mut self, cost: Option<&Cost>) {
        match (cost, &self.priced) {
            (None, _) => self.unpriced_calls += 1,
            (Some(cost), None) => self.priced = Some(cost.clone()),
            (Some(cost), Some(sum)) => match sum.plus(cost) {
                Some(total) => self.priced = Some(total),
                None => self.unpriced_calls += 1,
            },
        }
    }

    /// Adds another piece of work's spend.
    pub fn add(&mut self, other: &Self) {
        if let Some(cost) = &other.priced {
            self.add_call(Some(cost));
        }
        self.unpriced_calls += other.unpriced_calls;
    }

    /// The total when every call was priced and there was at least one; otherwise `None`.
    pub fn total(&self) -> Option<&Cost> {
        if self.unpriced_calls == 0 {
            self.priced.as_ref()
        } else {
            None
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn usd(amount: f64) -> Cost {
        Cost {
            amount,
            currency: "USD".into(),
        }
    }

    #[test]
    fn a_spend_of_priced_calls_totals_them() {
        let mut spend = Spend::default();
        spend.add_call(Some(&usd(0.25)));
        spend.add_call(Some(&usd(0.5)));
        assert_eq!(spend.total(), Some(&usd(0.75)));
    }

    #[test]
    fn one_unpriced_call_makes_the_total_unknown() {
        let mut spend = Spend::default();
        spend.add_call(Some(&usd(0.25)));
        spend.add_call(None);
        assert_eq!(spend.total(), None);
        assert_eq!(spend.priced, Some(usd(0.25)));
    }

    #[test]
    fn costs_in_different_currencies_do_not_add_up() {
        let mut spend = Spend::default();
        spend.add_call(Some(&usd(1.0)));
        spend.add_call(Some(&Cost {
            amount: 80.0,
            currency: "INR".into(),
        }));
        assert_eq!(spend.total(), None);
    }

    #[test]
    fn sums_read_as_the_decimal_amounts_they_are() {
        let mut spend = Spend::default();
        spend.add_call(Some(&usd(0.0000555)));
        spend.add_call(Some(&usd(0.00000475)));
        assert_eq!(
            spend.total().map(|c| c.amount.to_string()).as_deref(),
            Some("0.00006025")
        );
    }

    #[test]
    fn no_calls_cost_nothing_known() {
        assert_eq!(Spend::default().total(), None);
    }

    #[test]
    fn spends_add_up_across_services() {
        let mut here = Spend::default();
        here.add_call(Some(&usd(0.5)));
        let mut there = Spend::default();
        there.add_call(Some(&usd(0.25)));
        here.add(&there);
        assert_eq!(here.total(), Some(&usd(0.75)));
        there.add_call(None);
        here.add(&there);
        assert_eq!(here.total(), None);
    }

    #[test]
    fn an_empty_spend_is_an_empty_object_on_the_wire() {
        assert_eq!(
            serde_json::to_string(&Spend::default()).expect("json"),
            "{}"
        );
        let spend: Spend = serde_json::from_str("{}").expect("json");
        assert_eq!(spend, Spend::default());
    }
}
