//! How the domain's named choices (run statuses, triggers, change kinds, unit kinds, alert kinds) are
//! stored: as their names, in TEXT columns, on both backends.
//!
//! The enums only derive diesel's markers (`AsExpression`, `FromSqlRow` for `Text`); the
//! conversions live here, out of the domain. Writing writes the name, reading parses it back; a
//! name the enum does not know is a deserialisation error, never a silent default.

use diesel::backend::Backend;
use diesel::deserialize::{self, FromSql};
use diesel::serialize::{self, Output, ToSql};
use diesel::sql_types::Text;

use crate::domain::reconciliation::Rule;
use crate::domain::{AlertKind, ChangeKind, RunStatus, Trigger, UnitKind};

macro_rules! stored_as_text {
    ($($type:ty),+ $(,)?) => {$(
        impl<DB: Backend> ToSql<Text, DB> for $type
        where
            str: ToSql<Text, DB>,
        {
            fn to_sql<'b>(&'b self, out: &mut Output<'b, '_, DB>) -> serialize::Result {
                <str as ToSql<Text, DB>>::to_sql(self.as_str(), out)
            }
        }

        impl<DB: Backend> FromSql<Text, DB> for $type
        where
            String: FromSql<Text, DB>,
        {
            fn from_sql(bytes: DB::RawValue<'_>) -> deserialize::Result<Self> {
                Ok(<String as FromSql<Text, DB>>::from_sql(bytes)?.parse()?)
            }
        }
    )+};
}

stored_as_text!(RunStatus, Trigger, ChangeKind, UnitKind, AlertKind, Rule);
