//! flow-options: every option type of the toolkit named one way — its forms, parsing, printing and one "unknown" error.
//!
//! An option type implements [`NamedOption`] (what it is called and the forms
//! it takes), or, when it is a fixed list of values, [`NamedValue`] (the list
//! and each value's name), which gives it [`NamedOption`]. Help lines and
//! "valid: …" messages come from [`NamedOption::forms`]; an unknown name is
//! always the one [`UnknownName`] error, which each crate's error enum wraps.
//! [`named_value!`] makes a type with `const ALL` and `fn name(self)` a
//! [`NamedValue`], with `FromStr` and `Display`.
//!
//! Invariants: pure; no option type lists its names twice.

#![warn(missing_docs)]

/// A name that is none of an option's forms.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("unknown {what} `{name}` (valid: {valid})")]
pub struct UnknownName {
    /// What the option is called ("solver").
    pub what: &'static str,
    /// The name given.
    pub name: String,
    /// Every form the option takes, comma-separated.
    pub valid: String,
}

impl UnknownName {
    /// `name` is none of `T`'s forms.
    pub fn of<T: NamedOption>(name: &str) -> UnknownName {
        UnknownName { what: T::WHAT, name: name.to_owned(), valid: T::valid() }
    }
}

/// An option type of the command line (and of run records and headers).
pub trait NamedOption: Sized {
    /// What messages call the option: "solver", "backend", …
    const WHAT: &'static str;

    /// Every form the option takes, as help lines and messages list them
    /// (`sinkhorn:EPS` for a value with a parameter).
    fn forms() -> Vec<&'static str>;

    /// The value `text` names; `None` when it is none of the forms.
    fn from_form(text: &str) -> Option<Self>;

    /// `text` as a value, or the error that names every form.
    fn parse_option(text: &str) -> Result<Self, UnknownName> {
        Self::from_form(text).ok_or_else(|| UnknownName::of::<Self>(text))
    }

    /// The forms, comma-separated, for messages.
    fn valid() -> String {
        Self::forms().join(", ")
    }
}

/// An option type that is a fixed list of named values.
pub trait NamedValue: Copy + 'static {
    /// What messages call the option.
    const WHAT: &'static str;
    /// Every value, in the order help lines list them.
    const ALL: &'static [Self];

    /// The value's name, as flags, records and headers spell it.
    fn name(&self) -> &'static str;
}

impl<T: NamedValue> NamedOption for T {
    const WHAT: &'static str = <T as NamedValue>::WHAT;

    fn forms() -> Vec<&'static str> {
        T::ALL.iter().map(NamedValue::name).collect()
    }

    fn from_form(text: &str) -> Option<T> {
        T::ALL.iter().copied().find(|value| value.name() == text)
    }
}

/// Makes a fixed list of values an option type: `named_value!(Type, "what")`
/// implements [`NamedValue`] from the type's own `const ALL` and `fn name(self)`,
/// and `FromStr` (error: [`UnknownName`]) and `Display` (the name).
#[macro_export]
macro_rules! named_value {
    ($type:ty, $what:literal) => {
        impl $crate::NamedValue for $type {
            const WHAT: &'static str = $what;
            const ALL: &'static [$type] = &<$type>::ALL;

            fn name(&self) -> &'static str {
                <$type>::name(*self)
            }
        }

        $crate::from_str_by_forms!($type);

        impl std::fmt::Display for $type {
            fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str(<$type>::name(*self))
            }
        }
    };
}

/// `FromStr` through [`NamedOption::parse_option`] (error: [`UnknownName`]), for option types
/// whose forms carry parameters (their `Display` is their own).
#[macro_export]
macro_rules! from_str_by_forms {
    ($($type:ty),+ $(,)?) => {$(
        impl std::str::FromStr for $type {
            type Err = $crate::UnknownName;
            fn from_str(text: &str) -> std::result::Result<$type, $crate::UnknownName> {
                <$type as $crate::NamedOption>::parse_option(text)
            }
        }
    )+};
}
