//! `named_choices!`: an enum of a fixed set of choices, each with the one name it is stored,
//! shown and sent under, parsed back from that name.

/// A name that is not one of the allowed ones.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("unknown choice {0:?}")]
pub struct UnknownChoice(pub String);

/// Gives an enum its names: `ALL` (every choice, in the order lists show them), `NAMES` (their
/// names, in the same order), `as_str`, `FromStr`, `Display` and a `Serialize` that writes the
/// name. The names are written once, here in the invocation, and nowhere else.
macro_rules! named_choices {
    ($type:ty { $($variant:ident => $name:literal),+ $(,)? }) => {
        impl $type {
            /// Every choice, in the order forms list them.
            pub const ALL: &'static [$type] = &[$(<$type>::$variant),+];

            /// The name of every choice, in the order of [`Self::ALL`].
            pub const NAMES: &'static [&'static str] = &[$($name),+];

            /// The name stored in the database and used in forms.
            pub fn as_str(self) -> &'static str {
                match self { $(<$type>::$variant => $name),+ }
            }
        }

        impl ::std::str::FromStr for $type {
            type Err = $crate::domain::named_choices::UnknownChoice;

            fn from_str(s: &str) -> Result<Self, Self::Err> {
                match s {
                    $($name => Ok(<$type>::$variant),)+
                    other => Err($crate::domain::named_choices::UnknownChoice(other.to_owned())),
                }
            }
        }

        impl ::std::fmt::Display for $type {
            fn fmt(&self, f: &mut ::std::fmt::Formatter<'_>) -> ::std::fmt::Result {
                f.write_str(self.as_str())
            }
        }

        impl ::serde::Serialize for $type {
            fn serialize<S: ::serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
                serializer.serialize_str(self.as_str())
            }
        }
    };
}

pub(crate) use named_choices;
