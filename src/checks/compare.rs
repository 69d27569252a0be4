//! Threshold conditions written in jobs.yaml (`< 0.01`, `>= 5`, `== 0`,
//! `!= 0`, `between 0.1 and 0.5`, `outside 1 and 2`: a
//! [`Condition`], model's plain data, read here with its position). A
//! check has `fail_if` and optionally `warn_if`; the value passes when
//! neither holds. They make the result's typed [`Threshold`].

use serde::Deserialize;

use super::CheckStatus;
pub use crate::model::{Condition, Threshold, fmt_number};

impl<'de> Deserialize<'de> for Condition {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        Ok(crate::yaml::parse_reported(
            &crate::yaml::Text::deserialize(d)?,
        ))
    }
}

/// `fail_if` and `warn_if` of a numeric check.
#[derive(Debug, Clone, Copy, PartialEq, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Thresholds {
    pub fail_if: Option<Condition>,
    pub warn_if: Option<Condition>,
}

impl Thresholds {
    pub fn is_empty(&self) -> bool {
        self.fail_if.is_none() && self.warn_if.is_none()
    }

    /// The typed threshold, its numbers in `unit` ("ms"; none: `None`).
    pub fn threshold(&self, unit: Option<&str>) -> Threshold {
        Threshold::Limits {
            fail: self.fail_if,
            warn: self.warn_if,
            unit: unit.map(str::to_string),
        }
    }

    /// "fail if > 0.05; warn if > 0.01".
    pub fn describe(&self) -> String {
        self.threshold(None).to_string()
    }

    /// The status of `v` and the condition that decided it.
    pub fn assess(&self, v: f64) -> (CheckStatus, Option<Condition>) {
        if v.is_nan() {
            return (CheckStatus::Error, None);
        }
        if let Some(c) = self.fail_if.filter(|c| c.holds(v)) {
            return (CheckStatus::Fail, Some(c));
        }
        if let Some(c) = self.warn_if.filter(|c| c.holds(v)) {
            return (CheckStatus::Warn, Some(c));
        }
        (CheckStatus::Pass, None)
    }

    /// A one-line reason: "0.031 > 0.01" or "0.004 within thresholds".
    pub fn reason(&self, what: &str, v: f64) -> (CheckStatus, String) {
        match self.assess(v) {
            (CheckStatus::Error, _) => {
                (CheckStatus::Error, format!("{what} is not a number (NaN)"))
            }
            (s, Some(c)) => (s, format!("{what} {} is {c}", fmt_number(v))),
            (s, None) => (s, format!("{what} {} is within thresholds", fmt_number(v))),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parse_and_evaluate_table() {
        let cases: &[(&str, f64, bool)] = &[
            ("< 0.01", 0.005, true),
            ("< 0.01", 0.01, false),
            ("<= 5", 5.0, true),
            ("> 0", 0.0, false),
            (">= 1", 1.0, true),
            ("== 0", 0.0, true),
            ("!= 0", 0.0, false),
            ("between 0.1 and 0.5", 0.5, true),
            ("between 0.1 and 0.5", 0.6, false),
            ("outside 1 and 2", 0.5, true),
            (">2", 2.5, true),
        ];
        for (text, v, want) in cases {
            let c: Condition = text.parse().unwrap();
            assert_eq!(c.holds(*v), *want, "{text} with {v}");
        }
    }

    #[test]
    fn bad_conditions_explain_themselves() {
        for (text, want) in [
            ("about 5", "is not a condition"),
            ("< five", "`five` is not a number"),
            ("between 5 and 1", "lower bound comes first"),
            ("between 5", "write `< 0.01`"),
        ] {
            let e = text.parse::<Condition>().unwrap_err();
            assert!(e.contains(want), "{text}: {e}");
        }
    }

    #[test]
    fn thresholds_fail_before_warn() {
        let t = Thresholds {
            fail_if: Some(Condition::Gt(0.05)),
            warn_if: Some(Condition::Gt(0.01)),
        };
        assert_eq!(t.assess(0.005).0, CheckStatus::Pass);
        assert_eq!(t.assess(0.03).0, CheckStatus::Warn);
        assert_eq!(t.assess(0.06).0, CheckStatus::Fail);
        assert_eq!(t.assess(f64::NAN).0, CheckStatus::Error);
        assert_eq!(t.describe(), "fail if > 0.05; warn if > 0.01");
        assert_eq!(t.reason("error rate", 0.03).1, "error rate 0.03 is > 0.01");
    }

    #[test]
    fn numbers_read_well() {
        assert_eq!(fmt_number(3.0), "3");
        assert_eq!(fmt_number(0.005), "0.005");
        assert_eq!(fmt_number(2.34567), "2.3457");
        assert_eq!(fmt_number(0.1234567), "0.123457");
    }
}
