//! Option types by name: one list of values per type, from which parsing, printing and every "valid: …" message come.

use crate::{Result, TrainError};

/// The value of `all` whose `name` is `text`; else an error listing every name.
pub(crate) fn parse<T: Copy, const N: usize>(
    what: &'static str,
    text: &str,
    all: [T; N],
    name: fn(&T) -> &'static str,
) -> Result<T> {
    all.iter().find(|value| name(value) == text).copied().ok_or_else(|| TrainError::UnknownName {
        what,
        name: text.to_owned(),
        valid: all.iter().map(name).collect::<Vec<_>>().join(", "),
    })
}

/// `FromStr` through the type's `parse` and `Display` through its `name`.
macro_rules! from_str_and_display {
    ($($type:ty),+) => {$(
        impl std::str::FromStr for $type {
            type Err = crate::TrainError;
            fn from_str(text: &str) -> crate::Result<$type> {
                <$type>::parse(text)
            }
        }

        impl std::fmt::Display for $type {
            fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str(self.name())
            }
        }
    )+};
}
pub(crate) use from_str_and_display;
