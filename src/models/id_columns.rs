//! How the domain's typed ids are stored: as the `BIGINT` they wrap, on both backends (and a
//! worker's name as its text).
//!
//! The ids only derive diesel's markers (`AsExpression`, `FromSqlRow` for `BigInt` or `Text`);
//! the conversions live here, out of the domain, and hand the inner value to diesel.

use diesel::backend::Backend;
use diesel::deserialize::{self, FromSql};
use diesel::serialize::{self, Output, ToSql};
use diesel::sql_types::{BigInt, Text};

use crate::domain::ids::{
    ApiTokenId, AuditEntryId, DeliveryId, LoginFailureId, ReconciliationBuildId, RunId, ScheduleId, SkipId,
    SourceFileId, SourceId, UserId, WorkerName,
};

macro_rules! stored_as_bigint {
    ($($type:ident),+ $(,)?) => {$(
        impl<DB: Backend> ToSql<BigInt, DB> for $type
        where
            i64: ToSql<BigInt, DB>,
        {
            fn to_sql<'b>(&'b self, out: &mut Output<'b, '_, DB>) -> serialize::Result {
                <i64 as ToSql<BigInt, DB>>::to_sql(&self.0, out)
            }
        }

        impl<DB: Backend> FromSql<BigInt, DB> for $type
        where
            i64: FromSql<BigInt, DB>,
        {
            fn from_sql(bytes: DB::RawValue<'_>) -> deserialize::Result<Self> {
                <i64 as FromSql<BigInt, DB>>::from_sql(bytes).map($type)
            }
        }
    )+};
}

stored_as_bigint!(
    UserId,
    ScheduleId,
    RunId,
    SourceId,
    ApiTokenId,
    DeliveryId,
    AuditEntryId,
    LoginFailureId,
    SourceFileId,
    SkipId,
    ReconciliationBuildId,
);

impl<DB: Backend> ToSql<Text, DB> for WorkerName
where
    str: ToSql<Text, DB>,
{
    fn to_sql<'b>(&'b self, out: &mut Output<'b, '_, DB>) -> serialize::Result {
        <str as ToSql<Text, DB>>::to_sql(self.as_str(), out)
    }
}

impl<DB: Backend> FromSql<Text, DB> for WorkerName
where
    String: FromSql<Text, DB>,
{
    fn from_sql(bytes: DB::RawValue<'_>) -> deserialize::Result<Self> {
        <String as FromSql<Text, DB>>::from_sql(bytes).map(WorkerName)
    }
}
