//! Reading jobs.yaml with positions, on serde-saphyr.
//!
//! serde-saphyr parses, enforces budgets against alias bombs, refuses a
//! second document, and puts a line and column on every error and every
//! `Spanned` value. What it cannot do for us lives here, in two passes over
//! the same text:
//!
//! 1. A tree of every node with its position and tag. From it: duplicate
//!    keys (reported once, at the duplicate, naming the first), `${VAR}`
//!    interpolation of every string value, quoted or not, with every missing
//!    variable reported at once and the interpolated parts of secret values
//!    known, and the `kind` of every mapping that has one.
//! 2. The typed model, deserialized by serde-saphyr. Strings are read as
//!    [`Text`], which looks up its interpolated value by position; a mapping
//!    whose struct depends on its `kind` ([`visit_kinded`]) looks its kind up
//!    by the position of its first key, so nothing is buffered and every
//!    position inside survives. Unknown fields there are reported, with a
//!    "did you mean", and reading goes on.
//!
//! A type error (a list where a string belongs) stops pass 2 at the first
//! one; everything else is collected and reported together.

use std::cell::RefCell;
use std::collections::HashMap;
use std::fmt;
use std::ops::Deref;

use serde::de::{self, DeserializeSeed, IgnoredAny, IntoDeserializer, MapAccess, Visitor};
use serde::{Deserialize, Deserializer};
use serde_saphyr::{Location, Spanned, Tagged};

use crate::model::Dur;

pub mod interpolate;

mod diag;
mod kinded;
mod kinds;
mod tree;
mod values;

pub use diag::*;
pub use kinded::*;
pub use tree::*;
pub use values::*;
// What pass 1 learned, for the readers of pass 2.
use tree::{Item, Node, found_at, kind_at, scalar_at};

#[cfg(test)]
mod tests;
