//! What a unit of a publisher's files is: a full set (all parts of one full snapshot), one day's
//! delta, or one day's cancellations. Each unit is imported as one generation.

use super::named_choices::named_choices;

/// The kind of a unit of files, stored in `source_files.kind` and shown on a run's page.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, diesel::AsExpression, diesel::FromSqlRow)]
#[diesel(sql_type = diesel::sql_types::Text)]
pub enum UnitKind {
    /// Every part of one full snapshot (FIRDS FULINS of one date, all CFI letters taken).
    FullSet,
    /// One day's changes, all parts (FIRDS DLTINS).
    Delta,
    /// One day's cancellations, all parts (FIRDS FULCAN).
    Cancellations,
}

named_choices!(UnitKind { FullSet => "full_set", Delta => "delta", Cancellations => "cancellations" });

impl UnitKind {
    /// As a person says it: "full set", "delta", "cancellations".
    pub fn title(self) -> &'static str {
        match self {
            UnitKind::FullSet => "full set",
            UnitKind::Delta => "delta",
            UnitKind::Cancellations => "cancellations",
        }
    }
}

impl<'de> serde::Deserialize<'de> for UnitKind {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let name = String::deserialize(deserializer)?;
        name.parse().map_err(serde::de::Error::custom)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn unit_kinds_round_trip_through_their_names_and_json() {
        for kind in UnitKind::ALL {
            assert_eq!(kind.as_str().parse::<UnitKind>(), Ok(*kind));
            let json = serde_json::to_string(kind).unwrap();
            assert_eq!(serde_json::from_str::<UnitKind>(&json).unwrap(), *kind);
        }
        assert!(serde_json::from_str::<UnitKind>("\"weekly\"").is_err());
    }
}
