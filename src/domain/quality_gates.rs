//! A source's quality gates ([`QualityGates`]): limits on what one import may do before it is
//! published. An import that breaks one is quarantined: written, not published, until an
//! operator publishes it anyway or discards it. The shrink guard (`max_shrink_percent`) stays a
//! setting of its own and keeps refusing the file before anything is written.
//!
//! Pure: what was measured comes in ([`Measured`]), what broke goes out ([`BrokenGate`]).

use serde::{Deserialize, Serialize};

use super::field_errors::FieldErrors;
use super::named_choices::named_choices;

/// One kind of gate.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum GateKind {
    /// At least this many valid rows.
    MinRows,
    /// At most this share of the source's active ISINs added, removed or changed.
    MaxChangedPercent,
    /// At most this share of the source's active ISINs with a changed CFI code.
    MaxCfiChangedPercent,
    /// At most this share of the file's rows invalid.
    MaxInvalidPercent,
    /// At least this share of the active ISINs after the import with an issuer LEI.
    MinLeiCoveragePercent,
}

named_choices!(GateKind {
    MinRows => "min_rows",
    MaxChangedPercent => "max_changed_percent",
    MaxCfiChangedPercent => "max_cfi_changed_percent",
    MaxInvalidPercent => "max_invalid_percent",
    MinLeiCoveragePercent => "min_lei_coverage_percent",
});

impl<'de> Deserialize<'de> for GateKind {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let text = String::deserialize(deserializer)?;
        text.parse().map_err(serde::de::Error::custom)
    }
}

impl GateKind {
    /// What the gate asks, for people ("at least … valid rows").
    pub fn label(self) -> &'static str {
        match self {
            GateKind::MinRows => "Minimum valid rows",
            GateKind::MaxChangedPercent => "Maximum % of ISINs added, removed or changed",
            GateKind::MaxCfiChangedPercent => "Maximum % of ISINs whose CFI code changed",
            GateKind::MaxInvalidPercent => "Maximum % of invalid rows",
            GateKind::MinLeiCoveragePercent => "Minimum % of active ISINs with an LEI",
        }
    }

    /// Whether the gate is a lower bound (the measured value must be at least the limit).
    pub fn is_minimum(self) -> bool {
        matches!(self, GateKind::MinRows | GateKind::MinLeiCoveragePercent)
    }

    /// Whether the gate's limit and value are percentages.
    pub fn is_percent(self) -> bool {
        !matches!(self, GateKind::MinRows)
    }
}

/// A source's gates; `None` is a gate not set. Stored as JSON in `sources.quality_gates`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct QualityGates {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub min_rows: Option<u64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub max_changed_percent: Option<f64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub max_cfi_changed_percent: Option<f64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub max_invalid_percent: Option<f64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub min_lei_coverage_percent: Option<f64>,
}

/// What an import measured, for the gates to judge.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct Measured {
    /// Rows read, and how many of them were valid and invalid.
    pub rows: u64,
    pub valid: u64,
    pub invalid: u64,
    /// ISINs added, removed or changed.
    pub changed: u64,
    /// ISINs whose CFI code changed.
    pub cfi_changed: u64,
    /// The source's active ISINs before the import.
    pub active_before: i64,
    /// Its active ISINs after it, and how many of them have an LEI.
    pub active_after: i64,
    pub with_lei: i64,
}

/// A gate an import broke: its limit and what was measured.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct BrokenGate {
    pub gate: GateKind,
    pub limit: f64,
    pub measured: f64,
}

fn percent(part: u64, whole: u64) -> f64 {
    if whole == 0 { 0.0 } else { part as f64 * 100.0 / whole as f64 }
}

impl QualityGates {
    /// The gates stored as `text` (empty is none).
    pub fn from_json(text: &str) -> Result<Self, String> {
        if text.trim().is_empty() {
            return Ok(Self::default());
        }
        serde_json::from_str(text).map_err(|e| format!("the quality gates are not valid: {e}"))
    }

    /// As stored: `{}` when none is set.
    pub fn to_json(&self) -> String {
        serde_json::to_string(self).unwrap_or_else(|_| "{}".to_owned())
    }

    /// Whether no gate is set.
    pub fn is_empty(&self) -> bool {
        *self == Self::default()
    }

    /// Each gate set, with its limit.
    pub fn limits(&self) -> Vec<(GateKind, f64)> {
        [
            (GateKind::MinRows, self.min_rows.map(|n| n as f64)),
            (GateKind::MaxChangedPercent, self.max_changed_percent),
            (GateKind::MaxCfiChangedPercent, self.max_cfi_changed_percent),
            (GateKind::MaxInvalidPercent, self.max_invalid_percent),
            (GateKind::MinLeiCoveragePercent, self.min_lei_coverage_percent),
        ]
        .into_iter()
        .filter_map(|(gate, limit)| limit.map(|limit| (gate, limit)))
        .collect()
    }

    /// The gates `measured` breaks. The shares of changed ISINs are of the active ISINs
    /// before the import; a source that had none (its first import) breaks neither.
    pub fn broken_by(&self, measured: &Measured) -> Vec<BrokenGate> {
        let before = u64::try_from(measured.active_before).unwrap_or(0);
        self.limits()
            .into_iter()
            .filter_map(|(gate, limit)| {
                let value = match gate {
                    GateKind::MinRows => measured.valid as f64,
                    GateKind::MaxChangedPercent if before == 0 => return None,
                    GateKind::MaxChangedPercent => percent(measured.changed, before),
                    GateKind::MaxCfiChangedPercent if before == 0 => return None,
                    GateKind::MaxCfiChangedPercent => percent(measured.cfi_changed, before),
                    GateKind::MaxInvalidPercent => percent(measured.invalid, measured.rows),
                    GateKind::MinLeiCoveragePercent => percent(
                        u64::try_from(measured.with_lei).unwrap_or(0),
                        u64::try_from(measured.active_after).unwrap_or(0),
                    ),
                };
                let broken = if gate.is_minimum() { value < limit } else { value > limit };
                broken.then_some(BrokenGate { gate, limit, measured: value })
            })
            .collect()
    }

    /// Parses the gates' form fields (each empty for "not set"), named as [`GateKind`]'s
    /// names; the messages are keyed by those names.
    pub fn parse_fields(field: impl Fn(GateKind) -> String) -> Result<Self, FieldErrors> {
        let mut errors = FieldErrors::default();
        let mut gates = Self::default();
        for gate in GateKind::ALL.iter().copied() {
            let text = field(gate);
            let text = text.trim();
            if text.is_empty() {
                continue;
            }
            if gate == GateKind::MinRows {
                match text.parse::<u64>() {
                    Ok(n) if n >= 1 => gates.min_rows = Some(n),
                    _ => errors
                        .add(gate.as_str(), "Enter a whole number of rows, 1 or more, or leave it empty."),
                }
                continue;
            }
            let value = match text.trim_end_matches('%').trim().parse::<f64>() {
                Ok(v) if v.is_finite() && (0.0..=100.0).contains(&v) => v,
                _ => {
                    errors.add(
                        gate.as_str(),
                        "Enter a percentage from 0 to 100 (e.g. 12.5), or leave it empty.",
                    );
                    continue;
                }
            };
            match gate {
                GateKind::MaxChangedPercent => gates.max_changed_percent = Some(value),
                GateKind::MaxCfiChangedPercent => gates.max_cfi_changed_percent = Some(value),
                GateKind::MaxInvalidPercent => gates.max_invalid_percent = Some(value),
                GateKind::MinLeiCoveragePercent => gates.min_lei_coverage_percent = Some(value),
                GateKind::MinRows => {}
            }
        }
        if errors.is_empty() { Ok(gates) } else { Err(errors) }
    }

    /// The gate's limit as a form shows it (empty when not set).
    pub fn field(&self, gate: GateKind) -> String {
        self.limits()
            .into_iter()
            .find(|(kind, _)| *kind == gate)
            .map(|(_, limit)| limit.to_string())
            .unwrap_or_default()
    }
}

/// A limit or measured value as people read it: no trailing `.0`, at most two decimals.
pub fn format_number(value: f64) -> String {
    let text = format!("{value:.2}");
    text.trim_end_matches('0').trim_end_matches('.').to_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn measured() -> Measured {
        Measured {
            rows: 100,
            valid: 90,
            invalid: 10,
            changed: 30,
            cfi_changed: 5,
            active_before: 100,
            active_after: 90,
            with_lei: 45,
        }
    }

    #[test]
    fn each_gate_breaks_past_its_limit_and_holds_at_it() {
        let strict = QualityGates {
            min_rows: Some(91),
            max_changed_percent: Some(29.0),
            max_cfi_changed_percent: Some(4.0),
            max_invalid_percent: Some(9.0),
            min_lei_coverage_percent: Some(51.0),
        };
        let broken: Vec<GateKind> = strict.broken_by(&measured()).iter().map(|b| b.gate).collect();
        assert_eq!(broken, GateKind::ALL.to_vec());
        let exact = QualityGates {
            min_rows: Some(90),
            max_changed_percent: Some(30.0),
            max_cfi_changed_percent: Some(5.0),
            max_invalid_percent: Some(10.0),
            min_lei_coverage_percent: Some(50.0),
        };
        assert_eq!(exact.broken_by(&measured()), vec![]);
    }

    #[test]
    fn a_first_import_breaks_no_share_of_changes() {
        let gates = QualityGates { max_changed_percent: Some(1.0), ..QualityGates::default() };
        assert!(gates.broken_by(&Measured { active_before: 0, changed: 50, ..measured() }).is_empty());
    }

    #[test]
    fn fields_parse_into_gates_and_bad_ones_are_named() {
        let fields = |gate: GateKind| match gate {
            GateKind::MinRows => "1000".to_owned(),
            GateKind::MaxChangedPercent => "12.5%".to_owned(),
            _ => String::new(),
        };
        let gates = QualityGates::parse_fields(fields).unwrap();
        assert_eq!(gates.min_rows, Some(1000));
        assert_eq!(gates.max_changed_percent, Some(12.5));
        assert_eq!(QualityGates::from_json(&gates.to_json()), Ok(gates.clone()));
        assert_eq!(gates.field(GateKind::MaxChangedPercent), "12.5");
        let bad = QualityGates::parse_fields(|gate| match gate {
            GateKind::MinRows => "0".to_owned(),
            GateKind::MaxInvalidPercent => "150".to_owned(),
            _ => String::new(),
        })
        .unwrap_err();
        assert!(bad.get("min_rows").is_some());
        assert!(bad.get("max_invalid_percent").is_some());
        assert!(bad.get("max_changed_percent").is_none());
        assert_eq!(QualityGates::from_json(""), Ok(QualityGates::default()));
        assert!(QualityGates::from_json(r#"{"min_rowz": 1}"#).is_err());
    }
}
